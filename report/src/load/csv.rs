//! Reading the run folder's CSV files with polars: only the columns the report uses, with
//! their types given (no inference), after checking that the file is whole.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use polars::prelude::*;

use crate::error::ReportError;

/// Read `columns` (name and type) of the CSV file at `path`. The file must end with a
/// newline (a writer cut short leaves a partial last line) and its header must hold every
/// column asked for.
pub fn read(path: &Path, columns: &[(&str, DataType)]) -> Result<DataFrame, ReportError> {
    let header = check_whole(path)?;
    let missing: Vec<&str> = columns
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !header.iter().any(|h| h == name))
        .collect();
    if !missing.is_empty() {
        return Err(ReportError::damaged(
            path,
            format!(
                "the header has no column {} (it has: {})",
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                header.join(", ")
            ),
        ));
    }
    let names: Arc<[PlSmallStr]> = columns.iter().map(|(n, _)| PlSmallStr::from(*n)).collect();
    let schema = Schema::from_iter(columns.iter().map(|(n, t)| Field::new((*n).into(), t.clone())));
    CsvReadOptions::default()
        .with_has_header(true)
        .with_columns(Some(names))
        .with_schema_overwrite(Some(Arc::new(schema)))
        .try_into_reader_with_file_path(Some(path.to_owned()))
        .and_then(|r| r.finish())
        .map_err(|e| ReportError::damaged(path, format!("unreadable: {e}")))
}

/// The header's column names, after checking the file ends with a newline.
fn check_whole(path: &Path) -> Result<Vec<String>, ReportError> {
    let mut f = std::fs::File::open(path).map_err(ReportError::io(path))?;
    let len = f.metadata().map_err(ReportError::io(path))?.len();
    if len == 0 {
        return Err(ReportError::damaged(path, "empty: not even a header line"));
    }
    f.seek(SeekFrom::Start(len - 1)).map_err(ReportError::io(path))?;
    let mut last = [0u8];
    f.read_exact(&mut last).map_err(ReportError::io(path))?;
    if last[0] != b'\n' {
        return Err(ReportError::damaged(
            path,
            "truncated: the last line is incomplete (no line end); the file was cut while being written",
        ));
    }
    f.seek(SeekFrom::Start(0)).map_err(ReportError::io(path))?;
    let mut line = String::new();
    BufReader::new(f).read_line(&mut line).map_err(ReportError::io(path))?;
    Ok(line
        .trim_end()
        .split(',')
        .map(|h| h.trim_matches('"').to_owned())
        .collect())
}

/// A column of `df` (read by [`read`], so it exists).
pub fn column<'a>(df: &'a DataFrame, name: &str, path: &Path) -> Result<&'a Column, ReportError> {
    df.column(name)
        .map_err(|e| ReportError::damaged(path, format!("column `{name}`: {e}")))
}

/// A numeric column as values, each row required.
pub fn required_u64(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<u64>, ReportError> {
    let c = column(df, name, path)?;
    let ca = c
        .u64()
        .map_err(|e| ReportError::damaged(path, format!("column `{name}`: {e}")))?;
    ca.iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| empty_cell(path, name, i)))
        .collect()
}

/// A float column; empty cells read as `None`.
pub fn optional_f64(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Option<f64>>, ReportError> {
    let c = column(df, name, path)?;
    let ca = c
        .f64()
        .map_err(|e| ReportError::damaged(path, format!("column `{name}`: {e}")))?;
    Ok(ca.iter().collect())
}

/// A text column; empty cells read as `None`.
pub fn optional_str(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Option<String>>, ReportError> {
    let c = column(df, name, path)?;
    let ca = c
        .str()
        .map_err(|e| ReportError::damaged(path, format!("column `{name}`: {e}")))?;
    Ok(ca.iter().map(|v| v.map(str::to_owned)).collect())
}

/// A text column, each row required.
pub fn required_str(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<String>, ReportError> {
    optional_str(df, name, path)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| empty_cell(path, name, i)))
        .collect()
}

pub fn empty_cell(path: &Path, name: &str, row: usize) -> ReportError {
    // Data rows count from 1, after the header on line 1.
    ReportError::damaged(path, format!("line {}: no value in column `{name}`", row + 2))
}

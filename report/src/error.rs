//! What can go wrong: a run folder that is missing, incomplete or damaged (the input is
//! invalid: `ballast report` exits 78), or a failure to compute or write the report (exit 1).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: no such run folder", .0.display())]
    NoRunFolder(PathBuf),
    /// A file the report needs is not in the folder.
    #[error("{}: missing ({why})", path.display())]
    Missing { path: PathBuf, why: String },
    /// A file is there but cut short, malformed, or without a column the report reads.
    #[error("{}: {detail}", path.display())]
    Damaged { path: PathBuf, detail: String },
    /// Reading or writing failed at the operating system's level.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The analysis itself failed (a polars error on data that passed the checks).
    #[error("analysis of {}: {source}", path.display())]
    Analysis {
        path: PathBuf,
        source: polars::error::PolarsError,
    },
    #[error("drawing the {chart} chart: {detail}")]
    Chart { chart: &'static str, detail: String },
}

impl ReportError {
    /// True when the run folder is at fault (missing, incomplete or damaged files): invalid
    /// input, as a config error is, rather than a failure of the report itself.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            ReportError::NoRunFolder(_) | ReportError::Missing { .. } | ReportError::Damaged { .. }
        )
    }

    pub(crate) fn damaged(path: &Path, detail: impl Into<String>) -> Self {
        ReportError::Damaged {
            path: path.to_owned(),
            detail: detail.into(),
        }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| ReportError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

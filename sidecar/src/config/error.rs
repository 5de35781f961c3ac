//! Config errors as people want them: every problem at once, each with file:line:column, the
//! field's path, what is wrong (quoting the bad value) and how to fix it.

use std::fmt;
use std::ops::Range;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `routes[1].cluster`; empty for the whole file.
    pub path: String,
    /// Byte range in the source, when known.
    pub span: Option<Range<usize>>,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found in one file, rendered with positions.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    /// The file name as given (used in messages).
    pub file: String,
    source_text: String,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn new(file: impl Into<String>, source_text: impl Into<String>, errors: Vec<ConfigError>) -> Self {
        ConfigErrors {
            file: file.into(),
            source_text: source_text.into(),
            errors,
        }
    }

    /// A file that could not be read at all.
    pub fn unreadable(file: impl Into<String>, err: &std::io::Error) -> Self {
        let file = file.into();
        let error = ConfigError::new("", None, format!("cannot read the file: {err}"))
            .hint("check the path given to --config and its permissions");
        ConfigErrors {
            file,
            source_text: String::new(),
            errors: vec![error],
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        ballast_model::units::line_col(&self.source_text, offset)
    }

    /// `file:line:col` of one error.
    pub fn location(&self, error: &ConfigError) -> String {
        match &error.span {
            Some(span) => {
                let (line, col) = self.line_col(span.start);
                format!("{}:{line}:{col}", self.file)
            }
            None => self.file.clone(),
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{}: {n} error{} in the config",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            let path = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path)
            };
            writeln!(f, "error: {}: {path}{}", self.location(e), e.message)?;
            if let Some(hint) = &e.hint {
                writeln!(f, "  fix: {hint}")?;
            }
        }
        Ok(())
    }
}

/// The known name closest to `input` by edit distance, if it is close enough to be a typo.
pub fn did_you_mean<'a>(input: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (edit_distance(input, k), k))
        .filter(|&(d, k)| d <= (k.len().max(input.len()) / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment),
/// since `shpo` for `shop` is the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let errs = ConfigErrors::new("x.toml", "a = 1\nbb = 2\n", vec![]);
        assert_eq!(errs.line_col(0), (1, 1));
        assert_eq!(errs.line_col(6), (2, 1));
        assert_eq!(errs.line_col(9), (2, 4));
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["cluster", "timeout", "name"];
        assert_eq!(did_you_mean("clustr", known), Some("cluster"));
        assert_eq!(did_you_mean("timeot", known), Some("timeout"));
        assert_eq!(did_you_mean("shpo", ["shop", "auth"]), Some("shop"));
        assert_eq!(did_you_mean("zzzzzz", known), None);
    }
}

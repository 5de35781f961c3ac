//! Config errors as people want them: every problem at once, each with file:line:column, the
//! field's path, what is wrong (quoting the bad value) and how to fix it.

use std::fmt;
use std::ops::Range;

use ballast_model::problems;

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
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.errors.iter().map(|e| problems::Shown {
            line_col: e.span.as_ref().map(|s| self.line_col(s.start)),
            field: &e.path,
            message: &e.message,
            fix: e.hint.as_deref(),
        });
        problems::write(f, &self.file, "config", shown)
    }
}

pub use ballast_model::problems::did_you_mean;

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
}

//! What can go wrong: a profile's problems (every one at once, each with file:line:column, the
//! field, what is wrong and how to fix it, as the sidecar's config errors) and a run's failures.

use std::fmt;
use std::ops::Range;

use ballast_model::problems;

/// One problem in a load profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// Dotted path of the field, e.g. `scenarios[0].transactions[1].think`; empty for the file.
    pub path: String,
    /// Byte range in the source, when known.
    pub span: Option<Range<usize>>,
    pub message: String,
    pub fix: Option<String>,
}

impl ProfileError {
    pub fn new(path: impl Into<String>, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        ProfileError {
            path: path.into(),
            span,
            message: message.into(),
            fix: None,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Every problem found in one profile, rendered with positions.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ProfileErrors {
    /// The file name as given (used in messages).
    pub file: String,
    text: String,
    pub errors: Vec<ProfileError>,
}

impl ProfileErrors {
    pub fn new(file: impl Into<String>, text: impl Into<String>, mut errors: Vec<ProfileError>) -> Self {
        errors.sort_by_key(|e| e.span.as_ref().map_or(0, |s| s.start));
        ProfileErrors {
            file: file.into(),
            text: text.into(),
            errors,
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        ballast_model::units::line_col(&self.text, offset)
    }
}

impl fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.errors.iter().map(|e| problems::Shown {
            line_col: e.span.as_ref().map(|s| self.line_col(s.start)),
            field: &e.path,
            message: &e.message,
            fix: e.fix.as_deref(),
        });
        problems::write(f, &self.file, "load profile", shown)
    }
}

pub use ballast_model::problems::did_you_mean;

/// Why a load run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The profile has problems (from [`crate::load_file`] and friends).
    #[error("{0}")]
    Profile(#[from] ProfileErrors),
    /// A base URL did not accept a TCP connection before the run started.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The HTTP client could not be built (a TLS backend problem, usually).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// goose refused the attack it was given (a bug of ours if it happens).
    #[error("goose refused the load test: {0}")]
    Goose(String),
    /// A result file could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_positions_and_fixes_in_file_order() {
        let errs = ProfileErrors::new(
            "p.toml",
            "a = 1\nbb = 2\n",
            vec![
                ProfileError::new("bb", Some(6..8), "late").fix("do it"),
                ProfileError::new("a", Some(0..1), "early"),
            ],
        );
        assert_eq!(
            errs.to_string(),
            "p.toml: 2 errors in the load profile\nerror: p.toml:1:1: a: early\nerror: p.toml:2:1: bb: late\n  fix: do it\n"
        );
    }
}

//! The crate's errors.

/// What can stop the dashboard from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The terminal could not be set up, drawn to or read from.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    /// The dashboard needs a terminal to draw on.
    #[error("the dashboard needs a terminal, and stdout is not one")]
    NotATerminal,
    /// A run folder is missing a file or holds a line that does not parse.
    #[error("{path}: {message}")]
    Recording { path: String, message: String },
    /// The SLOs given (a `--slos` file or a scenario's `[[slo]]`) are not usable; every
    /// problem, one per line.
    #[error("{0}")]
    Slos(String),
}

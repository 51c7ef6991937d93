//! Errors of input files.

/// A failed input file or a bad option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A bad option (unknown format, malformed `--schema`).
    #[error("{0}")]
    Usage(String),
    /// An unreadable, malformed or mismatched file; names the file (and line, for CSV).
    #[error("{0}")]
    Input(String),
}

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

use std::path::PathBuf;

/// Result alias for the key server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the key server, its client or the certificate maker can refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key-hierarchy error (also what a key-server call failed with on the server).
    #[error(transparent)]
    Key(#[from] sealstore_keyring::Error),
    /// A certificate or private key file could not be read or used.
    #[error("{path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    /// The key server's directory or its registry is not what it should be.
    #[error("key server directory {path}: {reason}")]
    ServerDir { path: PathBuf, reason: String },
    /// The cluster is not registered on this key server.
    #[error("cluster `{0}` is not registered on this key server (sealstore keyserver add-cluster)")]
    UnknownCluster(String),
    /// An option or argument is invalid.
    #[error("{0}")]
    InvalidOption(String),
    /// An I/O error (listening, accepting).
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

use std::path::PathBuf;

/// Result alias for the cluster.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the cluster API can refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key-hierarchy error (wrong master key, tampered key store, …).
    #[error(transparent)]
    Key(#[from] sealstore_keyring::Error),
    /// A key server could not be set up or reached (certificates, address, registration).
    #[error(transparent)]
    KeyServer(#[from] sealstore_keyserver::Error),
    /// A storage error (authentication failure of a block, corrupt manifest, …).
    #[error(transparent)]
    Store(#[from] sealstore_blockstore::Error),
    /// The configuration file is missing or invalid.
    #[error("configuration {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// The data directory holds no cluster.
    #[error("{path} is not a sealstore data directory (no sealstore.json; run `sealstore init` first)")]
    NotACluster { path: PathBuf },
    /// The data directory already holds a cluster.
    #[error("{path} already holds a sealstore cluster")]
    AlreadyInitialized { path: PathBuf },
    /// An invalid layout or option.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// No such database.
    #[error("no database `{0}`")]
    UnknownDatabase(String),
    /// No such table.
    #[error("no table `{0}`")]
    UnknownTable(String),
    /// The table exists.
    #[error("table `{0}` already exists")]
    TableExists(String),
    /// A cluster commit record that does not authenticate or parse.
    #[error("corrupt file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// An I/O error.
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// An Arrow error while splitting batches.
    #[error("arrow: {0}")]
    Arrow(String),
    /// Another write transaction on this database is open (from [`crate::Database::try_begin_write`]).
    #[error("database `{database}` has another write transaction open; retry when it ends")]
    WriteConflict { database: String },
    /// An earlier step of this write transaction failed: it can only be dropped (aborted).
    #[error("an earlier step of this write transaction failed; nothing was committed (start a new transaction)")]
    TransactionFailed,
    /// The input that was being loaded failed (e.g. a CSV parse error); nothing was committed.
    #[error("{0}")]
    Input(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when files older than the key store's binding were restored (see `--accept-rollback`).
    pub fn is_rollback(&self) -> bool {
        match self {
            Error::Key(k) => k.is_rollback(),
            Error::Store(s) => s.is_rollback(),
            _ => false,
        }
    }

    /// True for tampering, replay, wrong-key and wrong-context errors.
    pub fn is_authentication(&self) -> bool {
        match self {
            Error::Key(k) => k.is_authentication(),
            Error::Store(s) => s.is_authentication(),
            _ => false,
        }
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Error::Arrow(e.to_string())
    }
}

use std::path::PathBuf;

/// Result alias for the block store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the block store can refuse. Authentication failures name the table, column,
/// block id, file and offset so an operator can find the damaged bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key-hierarchy error (wrong key, tampered key record, …).
    #[error(transparent)]
    Key(#[from] sealstore_keyring::Error),
    /// A block failed authentication or does not belong where the manifest says.
    #[error(
        "authentication failed for table `{table}` column `{column}` block {block_id} in {path} at offset {offset}: {reason}"
    )]
    BlockAuthentication {
        table: String,
        column: String,
        block_id: u64,
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// An authenticated block could not be decoded (a bug or a wrong key hierarchy).
    #[error("table `{table}` column `{column}` block {block_id}: undecodable payload: {reason}")]
    Decode {
        table: String,
        column: String,
        block_id: u64,
        reason: String,
    },
    /// A scan read a table that a commit dropped (and crypto-shredded) while the scan ran.
    #[error("table `{table}` was dropped while this scan was reading it; its keys are destroyed")]
    TableDropped { table: String },
    /// A slice directory is not the store its place in the cluster names.
    #[error("{path} is not the store expected here: {detail}")]
    WrongStore { path: PathBuf, detail: String },
    /// A file is present but not valid.
    #[error("corrupt file {path}: {reason} (at byte offset {offset})")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    /// A segment file referenced by the manifest is missing or too short.
    #[error("segment file {path} is missing or truncated: {reason}")]
    MissingSegment { path: PathBuf, reason: String },
    /// An object-storage request failed (or a racing writer won: see [`Error::is_conflict`]).
    #[error(transparent)]
    Storage(#[from] sealstore_storage::Error),
    /// An I/O error.
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A column type sealstore does not store.
    #[error(
        "column `{column}` has unsupported type {data_type}; supported: Boolean, Int32, Int64, Float64, Utf8, Binary, Date32, Timestamp(Microsecond, None)"
    )]
    UnsupportedType { column: String, data_type: String },
    /// A schema that cannot be a table schema.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A batch that does not fit its table's schema.
    #[error("batch does not match table `{table}`: {reason}")]
    SchemaMismatch { table: String, reason: String },
    /// The table exists already.
    #[error("table `{0}` already exists")]
    TableExists(String),
    /// No such table.
    #[error("no table `{0}`")]
    UnknownTable(String),
    /// No such column.
    #[error("table `{table}` has no column `{column}`")]
    UnknownColumn { table: String, column: String },
    /// One value is larger than a block can hold.
    #[error(
        "table `{table}` column `{column}` row {row}: a value of {bytes} bytes does not fit a block (limit {limit} bytes with this block size)"
    )]
    ValueTooLarge {
        table: String,
        column: String,
        row: u64,
        bytes: usize,
        limit: usize,
    },
    /// A block size that is not a power of two between 64 KiB and 16 MiB.
    #[error("block size {0} is not a power of two between 64 KiB and 16 MiB")]
    InvalidBlockSize(u64),
    /// A predicate that cannot apply.
    #[error("invalid predicate: {0}")]
    InvalidPredicate(String),
    /// An Arrow error while filtering or assembling batches.
    #[error("arrow: {0}")]
    Arrow(String),
    /// An internal invariant failed (a bug, not bad input): e.g. a writer thread panicked.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True when another writer committed first (an object this commit meant to create exists
    /// already): the caller may retry on the new state.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Storage(e) if e.is_conflict())
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for tampering, replay and wrong-key errors.
    pub fn is_authentication(&self) -> bool {
        match self {
            Error::BlockAuthentication { .. } => true,
            Error::Key(k) => k.is_authentication(),
            _ => false,
        }
    }

    /// True when files older than the key store's binding were restored.
    pub fn is_rollback(&self) -> bool {
        matches!(self, Error::Key(k) if k.is_rollback())
    }
}

impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Error::Arrow(e.to_string())
    }
}

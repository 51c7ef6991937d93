use std::path::PathBuf;

/// Result alias for the keyring.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the keyring can refuse. Variants are distinct so that a caller can tell a wrong key
/// from a tampered record from a corrupt file. No variant ever carries key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The master key offered is not the one the cluster key was wrapped under.
    #[error("wrong master key: the key store was written under master key {expected}, the provider holds {found}")]
    WrongMasterKey { expected: String, found: String },
    /// The encryption context given differs from the one bound into a wrapped key.
    #[error("encryption context mismatch in field `{field}`: wrapped under {expected:?}, unwrap asked for {found:?}")]
    ContextMismatch {
        field: String,
        expected: String,
        found: String,
    },
    /// Authentication of sealed or wrapped bytes failed: they were modified, moved or replayed.
    #[error("authentication failed: {what} was tampered with or does not belong here")]
    Authentication { what: String },
    /// The master key is not a symmetric AES-256 key.
    #[error("master key must be a symmetric AES-256 key; got {spec}")]
    UnsupportedMasterKey { spec: String },
    /// A file could be read but its bytes are not a valid record.
    #[error("corrupt file {path}: {reason} (at byte offset {offset})")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    /// A file was written by a newer or unknown format version.
    #[error("{path}: unsupported {what} format version {version}")]
    UnsupportedVersion {
        path: PathBuf,
        what: &'static str,
        version: u32,
    },
    /// A file is not what sealstore may open there: a symbolic link (or behind one), not a
    /// regular file, hard-linked, or (a key file) owned by someone else.
    #[error("refusing {path}: {reason}")]
    UnsafeFile { path: PathBuf, reason: String },
    /// A write was asked of something opened read-only (read-only commands change nothing).
    #[error("{what} is open read-only")]
    ReadOnly { what: String },
    /// An I/O operation failed.
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The local master key file does not exist.
    #[error("master key file {path} does not exist")]
    KeyFileMissing { path: PathBuf },
    /// The local master key file is readable by group or others.
    #[error("master key file {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)")]
    KeyFileInsecure { path: PathBuf, mode: u32 },
    /// The local master key file has the wrong size.
    #[error("master key file {path} is {len} bytes; a plain master key file holds exactly 32")]
    KeyFileSize { path: PathBuf, len: u64 },
    /// The key file is passphrase-protected and no passphrase was given.
    #[error("master key file {path} is passphrase-protected; give the passphrase")]
    PassphraseRequired { path: PathBuf },
    /// The passphrase does not open the key file.
    #[error("wrong passphrase for master key file {path}")]
    WrongPassphrase { path: PathBuf },
    /// A file that must not exist yet already exists.
    #[error("{path} already exists")]
    AlreadyExists { path: PathBuf },
    /// Another process has the key store open.
    #[error("key store lock {path} is held by another process (is another sealstore running on this cluster?)")]
    Locked { path: PathBuf },
    /// No key store was found at the path.
    #[error("no key store at {path}")]
    NoKeyStore { path: PathBuf },
    /// The database is not in the key store.
    #[error("unknown database `{0}`")]
    UnknownDatabase(String),
    /// The database already exists.
    #[error("database `{0}` already exists")]
    DatabaseExists(String),
    /// A name does not fit the rules for database names.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// No DEK is stored for the block.
    #[error("no data key for block {block_id} in database `{database}`")]
    UnknownBlock { database: String, block_id: u64 },
    /// The audit log's hash chain is broken.
    #[error("audit log {path}: {reason} (record {line})")]
    AuditChainBroken { path: PathBuf, line: u64, reason: String },
    /// A master-key provider (HSM, KMS) reported an error.
    #[error("{provider} provider: {message}")]
    Provider { provider: String, message: String },
    /// A file was replaced (renamed into place), but the directory fsync that makes the
    /// replacement durable failed: the new content is visible now and may or may not survive a
    /// crash. Callers treat the replacement as done.
    #[error("{path} was replaced, but making the replacement durable failed: {source}")]
    NotDurable { path: PathBuf, source: std::io::Error },
    /// Files older than the state bound into the key store were restored (a backup, or an attack).
    #[error(
        "rollback detected: {what} is older than the key store records ({detail}); if this restore is deliberate, reopen with --accept-rollback"
    )]
    RollbackDetected { what: String, detail: String },
    /// A fault injected by a test at a named step of a multi-step key operation (feature
    /// `test-hooks` only).
    #[cfg(feature = "test-hooks")]
    #[error("injected crash at {0}")]
    InjectedCrash(&'static str),
    /// A long-lived key has made as many random-nonce AES-GCM seals as sealstore allows.
    #[error("the {key} has made {seals} seals, near the 2^32 limit of random-nonce AES-GCM; replace it: {action}")]
    KeyWornOut { key: String, seals: u64, action: String },
    /// The key server could not be reached, refused the call (certificate, authorisation,
    /// revocation, an expired lease) or failed it.
    #[error("key server {address}: {reason}")]
    KeyServer { address: String, reason: String },
    /// A bug: an invariant of sealstore itself did not hold.
    #[error("internal error: {0}")]
    Internal(String),
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Rng(String),
}

impl Error {
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

    pub(crate) fn auth(what: impl Into<String>) -> Self {
        Error::Authentication { what: what.into() }
    }

    /// True when a replacement happened but its durability is unknown (see [`Error::NotDurable`]).
    pub fn is_not_durable(&self) -> bool {
        matches!(self, Error::NotDurable { .. })
    }

    /// True when old files were restored behind the key store's back.
    pub fn is_rollback(&self) -> bool {
        matches!(self, Error::RollbackDetected { .. })
    }

    /// True when the error means bytes failed authentication or a wrong key/context was used.
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            Error::Authentication { .. } | Error::WrongMasterKey { .. } | Error::ContextMismatch { .. }
        )
    }
}

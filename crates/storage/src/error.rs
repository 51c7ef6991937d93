//! The storage crate's one error type: every variant names the object (or URL) it is about.

/// Result of a storage operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to an object store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage URL cannot be used.
    #[error("storage URL {url:?} is not valid: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// Plain HTTP to a host other than loopback would send sealed objects and request signatures
    /// over the network in the clear.
    #[error("S3 endpoint {endpoint} uses plain http on a host that is not loopback: use https")]
    InsecureEndpoint { endpoint: String },
    /// An object name the store cannot hold (empty part, `..`, a leading `/`).
    #[error("object name {name:?} is not valid: {reason}")]
    InvalidName { name: String, reason: String },
    /// A create-only put found the object already there (another writer got there first).
    #[error("object {name} already exists (another writer created it first)")]
    AlreadyExists { name: String },
    /// A conditional put found the object changed since the version it was based on.
    #[error("object {name} changed since it was read (conditional put refused)")]
    Changed { name: String },
    /// The object does not exist.
    #[error("object {name} not found")]
    NotFound { name: String },
    /// The store answered a read with fewer (or more) bytes than asked for.
    #[error("object {name}: read of bytes {start}..{end} returned {got} bytes (truncated object or response)")]
    Truncated {
        name: String,
        start: u64,
        end: u64,
        got: u64,
    },
    /// The backend does not offer an operation (e.g. conditional update on local files).
    #[error("object storage {backend} does not support {operation}")]
    Unsupported { backend: String, operation: &'static str },
    /// Anything else the backend reported: network, server, permission errors.
    #[error("object storage {operation} of {name} failed: {message}")]
    Backend {
        operation: &'static str,
        name: String,
        message: String,
    },
}

impl Error {
    /// Maps an `object_store` error on `name` during `operation`.
    pub(crate) fn from_store(operation: &'static str, name: &str, error: object_store::Error) -> Self {
        let name = name.to_string();
        match error {
            object_store::Error::AlreadyExists { .. } => Error::AlreadyExists { name },
            object_store::Error::Precondition { .. } => Error::Changed { name },
            object_store::Error::NotFound { .. } => Error::NotFound { name },
            object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. } => {
                Error::Unsupported {
                    backend: "backend".into(),
                    operation,
                }
            }
            other => Error::Backend {
                operation,
                name,
                message: one_line(&other.to_string()),
            },
        }
    }

    /// True when retrying the whole operation on fresh state may succeed (a racing writer won).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. } | Error::Changed { .. })
    }
}

/// Backend messages can span lines (nested sources); errors here are one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

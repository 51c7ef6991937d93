//! The errors of the SQL layer.
use datafusion::error::DataFusionError;

/// A failed SQL statement or catalog operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A storage or key error from the cluster (authentication failure, unknown table, …).
    #[error(transparent)]
    Cluster(#[from] sealstore_cluster::Error),
    /// A planning or execution error from DataFusion (bad SQL, unknown column, type mismatch, …).
    #[error("{}", one_line(.0))]
    Query(#[from] DataFusionError),
    /// A result column of a type sealstore does not store.
    #[error(
        "column `{column}` has type {ty}, which sealstore does not store (supported: BOOLEAN, INT, BIGINT, DOUBLE, VARCHAR, BINARY, DATE, TIMESTAMP)"
    )]
    UnsupportedType { column: String, ty: String },
    /// A statement form sealstore does not support.
    #[error("{0}")]
    Unsupported(String),
    /// An Arrow error while converting batches.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::Query(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// DataFusion's message without its backtrace, nested "External error:" wrappers collapsed
/// to the innermost cause, on one line.
fn one_line(e: &DataFusionError) -> String {
    let mut inner = e;
    while let DataFusionError::External(boxed) = inner {
        if let Some(ours) = boxed.downcast_ref::<Error>() {
            return ours.to_string();
        }
        match boxed.downcast_ref::<DataFusionError>() {
            Some(df) => inner = df,
            None => return boxed.to_string().replace('\n', " "),
        }
    }
    inner.strip_backtrace().replace('\n', " ")
}

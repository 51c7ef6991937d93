//! Input files for `sealstore load`: CSV, newline-delimited JSON, Arrow IPC and Parquet, each
//! read by a well-kept reader (the `csv` crate and arrow's own JSON, IPC and Parquet readers)
//! into Arrow batches of the types sealstore stores.
//!
//! Every error names the file (and, for CSV, the line). A reader never panics on hostile
//! input; the load it feeds commits nothing when a batch fails.
pub mod csv;
mod error;
mod ipc;
mod json;
#[cfg(feature = "parquet")]
mod parquet;
mod stored;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

pub use error::{Error, Result};
pub use stored::stored_schema;

/// A supported input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    /// Newline-delimited JSON: one object per line.
    Json,
    /// Arrow IPC, file or stream format.
    Ipc,
    Parquet,
}

impl Format {
    /// The format named by `--format`.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "csv" => Self::Csv,
            "json" | "ndjson" | "jsonl" => Self::Json,
            "ipc" | "arrow" | "feather" => Self::Ipc,
            "parquet" => Self::Parquet,
            other => {
                return Err(Error::Usage(format!(
                    "unknown format `{other}` (use csv, json, ipc or parquet)"
                )));
            }
        })
    }

    /// The format a file's extension names (`.json`/`.ndjson`/`.jsonl`, `.arrow`/`.ipc`/
    /// `.feather`, `.parquet`); anything else is read as CSV, as `load` always did.
    pub fn from_path(path: &Path) -> Self {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        Self::parse(ext).unwrap_or(Self::Csv)
    }
}

/// Batches of one input file.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// An opened input file: its schema (in stored types) and its batches.
pub struct Source {
    pub schema: SchemaRef,
    pub batches: Batches,
    /// Bytes of the file read so far (for progress).
    pub bytes_read: Arc<AtomicU64>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The schema a file would load with: for CSV, inferred from the header and a sample of rows;
/// for the typed formats, the file's own schema in stored types.
pub fn infer_schema(path: &Path, format: Format) -> Result<SchemaRef> {
    match format {
        Format::Csv => Ok(Arc::new(csv::infer_schema(path)?)),
        Format::Json => json::infer_schema(path),
        Format::Ipc => ipc::schema(path),
        #[cfg(feature = "parquet")]
        Format::Parquet => parquet::schema(path),
        #[cfg(not(feature = "parquet"))]
        Format::Parquet => Err(Error::Usage("this build reads no Parquet (feature `parquet`)".into())),
    }
}

/// Opens `path` to produce batches of `schema` (a table's schema: columns matched by name, in
/// its order, cast to its types; a missing or extra column is an error).
pub fn open(path: &Path, format: Format, schema: SchemaRef) -> Result<Source> {
    match format {
        Format::Csv => {
            let batches = csv::CsvBatches::open(path, schema.clone())?;
            let bytes_read = batches.bytes_read.clone();
            Ok(Source {
                schema,
                batches: Box::new(batches),
                bytes_read,
            })
        }
        Format::Json => json::open(path, schema),
        Format::Ipc => ipc::open(path, schema),
        #[cfg(feature = "parquet")]
        Format::Parquet => parquet::open(path, schema),
        #[cfg(not(feature = "parquet"))]
        Format::Parquet => Err(Error::Usage("this build reads no Parquet (feature `parquet`)".into())),
    }
}

#[doc(hidden)]
pub mod fuzzing {
    //! Entry point for the `csv_load` fuzz target: any bytes as a CSV file, never a panic.
    use std::sync::Arc;

    /// Infers a schema from `bytes` as a CSV file and streams every batch; also parses the first
    /// line as a `--schema` specification.
    pub fn csv(bytes: &[u8]) {
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = crate::csv::parse_schema(text.lines().next().unwrap_or(""));
        }
        let Ok(file) = tempfile::NamedTempFile::new() else {
            return;
        };
        if std::fs::write(file.path(), bytes).is_err() {
            return;
        }
        let Ok(schema) = crate::csv::infer_schema(file.path()) else {
            return;
        };
        let Ok(batches) = crate::csv::CsvBatches::open(file.path(), Arc::new(schema)) else {
            return;
        };
        for b in batches {
            if b.is_err() {
                break;
            }
        }
    }
}

//! Parquet files by the `parquet` crate's Arrow reader.
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::stored::{check_columns, conform, stored_schema};
use crate::{Error, Result, Source};

const BATCH_ROWS: usize = 65_536;

fn input(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: {e}", path.display()))
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let f = File::open(path).map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
    ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| input(path, e))
}

/// The file's schema in stored types.
pub fn schema(path: &Path) -> Result<SchemaRef> {
    stored_schema(path, builder(path)?.schema())
}

/// Batches cast to the table's schema; progress by row groups.
pub fn open(path: &Path, table: SchemaRef) -> Result<Source> {
    let b = builder(path)?;
    check_columns(path, b.schema(), &table)?;
    let rows = b.metadata().file_metadata().num_rows().max(1) as u64;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let reader = b.with_batch_size(BATCH_ROWS).build().map_err(|e| input(path, e))?;
    let bytes_read = Arc::new(AtomicU64::new(0));
    let progress = bytes_read.clone();
    let owned = path.to_owned();
    let target = table.clone();
    let mut done = 0u64;
    let batches = reader.map(move |b| {
        let b = b.map_err(|e| input(&owned, e))?;
        done += b.num_rows() as u64;
        progress.store(size.saturating_mul(done) / rows, Ordering::Relaxed);
        conform(&owned, &b, &target)
    });
    Ok(Source {
        schema: table,
        batches: Box::new(batches),
        bytes_read,
    })
}

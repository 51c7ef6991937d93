//! Newline-delimited JSON (one object per line) by arrow's JSON reader.
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow_schema::SchemaRef;

use crate::csv::Counting;
use crate::stored::stored_schema;
use crate::{Error, Result, Source};

/// Rows sampled to infer a schema.
const SAMPLE_ROWS: usize = 1000;
const BATCH_ROWS: usize = 65_536;

fn file(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))
}

fn input(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: {e}", path.display()))
}

/// The schema of the first rows, in stored types (integers as i64, numbers as f64).
pub fn infer_schema(path: &Path) -> Result<SchemaRef> {
    let mut reader = BufReader::new(file(path)?);
    let (schema, _) = arrow_json::reader::infer_json_schema_from_seekable(&mut reader, Some(SAMPLE_ROWS))
        .map_err(|e| input(path, e))?;
    reader.rewind().map_err(|e| input(path, e))?;
    if schema.fields().is_empty() {
        return Err(Error::Input(format!("{}: no JSON object with fields", path.display())));
    }
    stored_schema(path, &schema)
}

/// Batches of the table's schema: fields matched by name, a field the table lacks is an error.
pub fn open(path: &Path, schema: SchemaRef) -> Result<Source> {
    let count = Arc::new(AtomicU64::new(0));
    let inner = Counting {
        inner: file(path)?,
        count: count.clone(),
    };
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .with_strict_mode(true)
        .build(BufReader::with_capacity(1 << 20, inner))
        .map_err(|e| input(path, e))?;
    let owned = path.to_owned();
    Ok(Source {
        schema,
        batches: Box::new(reader.map(move |b| b.map_err(|e| input(&owned, e)))),
        bytes_read: count,
    })
}

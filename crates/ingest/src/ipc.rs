//! Arrow IPC files (the file format, `ARROW1` magic) and streams, by arrow's IPC readers.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use crate::stored::{check_columns, conform, stored_schema};
use crate::{Error, Result, Source};

const FILE_MAGIC: &[u8; 6] = b"ARROW1";

fn input(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: {e}", path.display()))
}

fn is_file_format(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 6];
    let mut f = File::open(path).map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
    Ok(f.read(&mut magic).map_err(|e| input(path, e))? == 6 && &magic == FILE_MAGIC)
}

type RawBatches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, ArrowError>> + Send>;

fn reader(path: &Path) -> Result<(SchemaRef, RawBatches)> {
    let f = File::open(path).map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
    if is_file_format(path)? {
        let r = arrow_ipc::reader::FileReader::try_new(BufReader::new(f), None).map_err(|e| input(path, e))?;
        Ok((r.schema(), Box::new(r)))
    } else {
        let r = arrow_ipc::reader::StreamReader::try_new(BufReader::new(f), None).map_err(|e| input(path, e))?;
        Ok((r.schema(), Box::new(r)))
    }
}

/// The file's schema in stored types.
pub fn schema(path: &Path) -> Result<SchemaRef> {
    let (schema, _) = reader(path)?;
    stored_schema(path, &schema)
}

/// Batches cast to the table's schema.
pub fn open(path: &Path, table: SchemaRef) -> Result<Source> {
    let (schema, batches) = reader(path)?;
    check_columns(path, &schema, &table)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bytes_read = Arc::new(AtomicU64::new(0));
    let progress = bytes_read.clone();
    let owned = path.to_owned();
    let target = table.clone();
    let batches = batches.map(move |b| {
        let b = b.map_err(|e| input(&owned, e))?;
        // Progress by rows is unknown up front; the file counts as read at its end.
        progress.store(size / 2, Ordering::Relaxed);
        conform(&owned, &b, &target)
    });
    Ok(Source {
        schema: table,
        batches: Box::new(batches),
        bytes_read,
    })
}

//! The honest unencrypted baseline for benchmarks: the same encoder and fixed-size slots, but
//! encoded bytes are written as they are (no DEK, no AES-GCM, no manifest) and decoded straight
//! from the memory map. Bench-only: nothing here is reachable from the storage API.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;

use crate::block::{HEADER_LEN, capacity};
use crate::types::ColumnType;
use crate::writer::{ColumnWriter, decode_block};
use crate::{Error, Result};

/// Blocks of one column written unsealed: (slot, rows).
#[derive(Debug, Default)]
pub struct UnsealedColumn {
    pub ty: Option<ColumnType>,
    pub blocks: Vec<(u64, u64)>,
}

/// An unsealed table in one file.
#[derive(Debug)]
pub struct UnsealedTable {
    pub path: PathBuf,
    pub block_size: usize,
    pub columns: Vec<UnsealedColumn>,
}

/// Writes `batches` into `path` as unsealed fixed-size slots and `fdatasync`s it.
pub fn write(path: &Path, block_size: usize, batches: &[RecordBatch]) -> Result<UnsealedTable> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let Some(first) = batches.first() else {
        return Ok(UnsealedTable {
            path: path.to_owned(),
            block_size,
            columns: Vec::new(),
        });
    };
    let schema = first.schema();
    let types: Vec<ColumnType> = schema
        .fields()
        .iter()
        .map(|f| ColumnType::from_arrow(f.data_type()).ok_or_else(|| Error::InvalidSchema(f.name().clone())))
        .collect::<Result<_>>()?;
    let mut writers: Vec<ColumnWriter> = types
        .iter()
        .zip(schema.fields())
        .map(|(t, f)| ColumnWriter::new(*t, capacity(block_size), 0, "bench", f.name()))
        .collect();
    let mut columns: Vec<UnsealedColumn> = types
        .iter()
        .map(|t| UnsealedColumn {
            ty: Some(*t),
            blocks: Vec::new(),
        })
        .collect();
    let mut slot_buf = vec![0u8; block_size];
    let mut next_slot = 0u64;
    let mut flush = |w: &mut ColumnWriter, col: &mut UnsealedColumn| -> Result<()> {
        for out in w.ready.drain(..) {
            // Same slot shape as a sealed block: header space, length, payload, zero padding.
            slot_buf[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(out.payload.len() as u32).to_le_bytes());
            slot_buf[HEADER_LEN + 4..HEADER_LEN + 4 + out.payload.len()].copy_from_slice(&out.payload);
            slot_buf[HEADER_LEN + 4 + out.payload.len()..].fill(0);
            file.write_all_at(&slot_buf, next_slot * block_size as u64)
                .map_err(|e| Error::io(path, e))?;
            col.blocks.push((next_slot, out.rows));
            next_slot += 1;
        }
        Ok(())
    };
    for b in batches {
        for (i, (w, col)) in writers.iter_mut().zip(columns.iter_mut()).enumerate() {
            w.push(b.column(i).clone())?;
            flush(w, col)?;
        }
    }
    for (w, col) in writers.iter_mut().zip(columns.iter_mut()) {
        w.finish()?;
        flush(w, col)?;
    }
    file.sync_data().map_err(|e| Error::io(path, e))?;
    Ok(UnsealedTable {
        path: path.to_owned(),
        block_size,
        columns,
    })
}

/// Decodes every block straight from the mapped file; returns the rows of the first column.
pub fn scan(table: &UnsealedTable) -> Result<u64> {
    let file = File::open(&table.path).map_err(|e| Error::io(&table.path, e))?;
    if file.metadata().map_err(|e| Error::io(&table.path, e))?.len() == 0 {
        return Ok(0);
    }
    // SAFETY: bench-only file created by `write` above and not modified while mapped.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&table.path, e))?;
    let mut rows = 0;
    for (ci, col) in table.columns.iter().enumerate() {
        let ty = col.ty.expect("typed column");
        for (slot, n) in &col.blocks {
            let start = *slot as usize * table.block_size + HEADER_LEN;
            let len = u32::from_le_bytes(map[start..start + 4].try_into().expect("4 bytes")) as usize;
            let arrays =
                decode_block(ty, &map[start + 4..start + 4 + len]).map_err(|e| Error::InvalidSchema(e.0.into()))?;
            if ci == 0 {
                rows += arrays.iter().map(|a| a.len() as u64).sum::<u64>();
            }
            debug_assert_eq!(arrays.iter().map(|a| a.len() as u64).sum::<u64>(), *n);
        }
    }
    Ok(rows)
}

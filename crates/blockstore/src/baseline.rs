//! The honest unencrypted baseline for benchmarks: the same encoder, the same fixed-size slots
//! and the same scan iterator, but encoded bytes are written as they are (no DEK, no AES-GCM, no
//! sealed manifest) and decoded straight from the memory map. Bench-only: a [`crate::Store`]
//! can never be opened this way.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};

use crate::block::{PAYLOAD_OFFSET, capacity};
use crate::manifest::{BlockMeta, ColumnMeta, Manifest, TableMeta};
use crate::scan::{ScanStats, Source, plan};
use crate::types::ColumnType;
use crate::writer::{ColumnWriter, decode_block};
use crate::{Error, Result};

/// An unsealed table: its file and the block list a manifest would hold.
#[derive(Debug)]
pub struct UnsealedTable {
    pub path: std::path::PathBuf,
    pub block_size: usize,
    pub manifest: Manifest,
}

/// The mapped file of an unsealed table.
pub(crate) struct UnsealedFile {
    map: Option<memmap2::Mmap>,
    pub block_size: usize,
}

impl UnsealedFile {
    pub fn read_block(&self, ty: ColumnType, slot: u64) -> Result<Vec<ArrayRef>> {
        let map = self
            .map
            .as_ref()
            .ok_or_else(|| Error::InvalidSchema("empty baseline file".into()))?;
        let start = slot as usize * self.block_size;
        let slot_bytes = &map[start..start + self.block_size];
        let len = u32::from_le_bytes(
            slot_bytes[PAYLOAD_OFFSET - 4..PAYLOAD_OFFSET]
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        decode_block(ty, &slot_bytes[PAYLOAD_OFFSET..PAYLOAD_OFFSET + len])
            .map_err(|e| Error::InvalidSchema(e.0.into()))
    }
}

const TABLE: &str = "bench";

/// Writes `batches` into `path` as unsealed fixed-size slots and `fdatasync`s it.
pub fn write(path: &Path, block_size: usize, batches: &[RecordBatch]) -> Result<UnsealedTable> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut table = TableMeta {
        id: 1,
        name: TABLE.into(),
        rows: 0,
        columns: Vec::new(),
    };
    if let Some(first) = batches.first() {
        table.columns = crate::store::table_columns(&first.schema())?;
    }
    let mut writers: Vec<ColumnWriter> = table
        .columns
        .iter()
        .map(|c| ColumnWriter::new(c.ty, capacity(block_size), 0, TABLE, &c.name))
        .collect();
    // The same hand-off as the sealed write path: blocks go over a bounded channel to a writer
    // thread that pwrites them.
    let file = std::sync::Arc::new(file);
    let (tx, rx) = crossbeam_channel::bounded::<(u64, Vec<u8>)>(8);
    let writer = {
        let file = file.clone();
        let path = path.to_owned();
        std::thread::spawn(move || -> Result<()> {
            for (slot, bytes) in rx {
                file.write_all_at(&bytes, slot * bytes.len() as u64)
                    .map_err(|e| Error::io(&path, e))?;
            }
            Ok(())
        })
    };
    let mut next_slot = 0u64;
    {
        let mut flush = |w: &mut ColumnWriter, col: &mut ColumnMeta| -> Result<()> {
            for out in w.ready.drain(..) {
                // Same slot shape as a sealed block (header space, length, payload, zero padding),
                // written as it is.
                let len = out.slot.len() - PAYLOAD_OFFSET;
                let mut slot_buf = out.slot;
                slot_buf[PAYLOAD_OFFSET - 4..PAYLOAD_OFFSET].copy_from_slice(&(len as u32).to_le_bytes());
                slot_buf.resize(block_size, 0);
                file.write_all_at(&slot_buf, next_slot * block_size as u64)
                    .map_err(|e| Error::io(path, e))?;
                col.blocks.push(BlockMeta {
                    block_id: next_slot,
                    slot: next_slot,
                    row_start: out.row_start,
                    rows: out.rows as u32,
                    full: out.full,
                    zone: out.zone,
                    pages: out.pages,
                });
                next_slot += 1;
            }
            Ok(())
        };
        for b in batches {
            table.rows += b.num_rows() as u64;
            for (i, (w, col)) in writers.iter_mut().zip(table.columns.iter_mut()).enumerate() {
                w.push(b.column(i).clone())?;
                flush(w, col)?;
            }
        }
        for (w, col) in writers.iter_mut().zip(table.columns.iter_mut()) {
            w.finish()?;
            flush(w, col)?;
        }
    }
    drop(tx);
    writer
        .join()
        .map_err(|_| Error::Arrow("baseline writer panicked".into()))??;
    file.sync_data().map_err(|e| Error::io(path, e))?;
    let manifest = Manifest {
        generation: 1,
        next_table_id: 2,
        tables: vec![table],
    };
    Ok(UnsealedTable {
        path: path.to_owned(),
        block_size,
        manifest,
    })
}

/// Runs the store's scan iterator over the unsealed table; returns the rows.
pub fn scan(table: &UnsealedTable, stats: Arc<ScanStats>) -> Result<u64> {
    if table.manifest.tables[0].columns.is_empty() {
        return Ok(0);
    }
    let file = File::open(&table.path).map_err(|e| Error::io(&table.path, e))?;
    // SAFETY: bench-only file created by `write` above and not modified while mapped.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&table.path, e))?;
    let source = Source::Unsealed(Arc::new(UnsealedFile {
        map: Some(map),
        block_size: table.block_size,
    }));
    let mut rows = 0;
    for b in plan(source, Arc::new(table.manifest.clone()), TABLE, None, Vec::new(), stats)? {
        rows += b?.num_rows() as u64;
    }
    Ok(rows)
}

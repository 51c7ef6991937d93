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
use crate::manifest::{BlockMeta, Manifest, TableMeta};
use crate::scan::{ScanIter, ScanStats, Source, plan};
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
            .ok_or_else(|| Error::Internal("empty baseline file".into()))?;
        let start = slot as usize * self.block_size;
        let slot_bytes = &map[start..start + self.block_size];
        let len = u32::from_le_bytes(
            slot_bytes[PAYLOAD_OFFSET - 4..PAYLOAD_OFFSET]
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        decode_block(ty, &slot_bytes[PAYLOAD_OFFSET..PAYLOAD_OFFSET + len])
            .map_err(|e| Error::Internal(format!("baseline block undecodable: {}", e.0)))
    }
}

const TABLE: &str = "bench";

/// Writes one unsealed table incrementally, with the same shape as a sealed transaction:
/// column writers cut blocks, a writer thread `pwrite`s them from a bounded channel.
pub struct UnsealedWriter {
    path: std::path::PathBuf,
    block_size: usize,
    table: TableMeta,
    writers: Vec<ColumnWriter>,
    tx: Option<crossbeam_channel::Sender<(u64, Vec<u8>)>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    next_slot: u64,
}

impl std::fmt::Debug for UnsealedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealedWriter").field("path", &self.path).finish()
    }
}

impl UnsealedWriter {
    /// Creates `path` for a table of `schema`.
    pub fn create(
        path: &Path,
        block_size: usize,
        in_flight_blocks: usize,
        schema: &arrow_schema::Schema,
    ) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let columns = crate::store::table_columns(schema)?;
        let writers = columns
            .iter()
            .map(|c| ColumnWriter::new(c.ty, capacity(block_size), 0, TABLE, &c.name))
            .collect();
        let (tx, rx) = crossbeam_channel::bounded::<(u64, Vec<u8>)>(in_flight_blocks.max(1));
        let thread = {
            let path = path.to_owned();
            std::thread::spawn(move || -> Result<()> {
                for (slot, bytes) in rx {
                    let offset = slot * bytes.len() as u64;
                    file.write_all_at(&bytes, offset).map_err(|e| Error::io(&path, e))?;
                    crate::writeback::start(&file, offset, bytes.len());
                }
                file.sync_data().map_err(|e| Error::io(&path, e))
            })
        };
        Ok(Self {
            path: path.to_owned(),
            block_size,
            table: TableMeta {
                id: 1,
                name: TABLE.into(),
                rows: 0,
                columns,
            },
            writers,
            tx: Some(tx),
            thread: Some(thread),
            next_slot: 0,
        })
    }

    /// Appends a batch.
    pub fn append(&mut self, batch: &RecordBatch) -> Result<()> {
        self.table.rows += batch.num_rows() as u64;
        for i in 0..self.writers.len() {
            self.writers[i].push(batch.column(i).clone())?;
            self.flush(i);
        }
        Ok(())
    }

    /// Hands finished blocks of column `i` to the writer thread, as they are (no sealing).
    fn flush(&mut self, i: usize) {
        for out in self.writers[i].ready.drain(..) {
            let len = out.slot.len() - PAYLOAD_OFFSET;
            let mut slot_buf = out.slot;
            slot_buf[PAYLOAD_OFFSET - 4..PAYLOAD_OFFSET].copy_from_slice(&(len as u32).to_le_bytes());
            slot_buf.resize(self.block_size, 0);
            if let Some(tx) = &self.tx {
                let _ = tx.send((self.next_slot, slot_buf));
            }
            self.table.columns[i].blocks.push(BlockMeta {
                block_id: self.next_slot,
                slot: self.next_slot,
                row_start: out.row_start,
                rows: out.rows as u32,
                full: out.full,
                zone: out.zone,
                pages: out.pages,
            });
            self.next_slot += 1;
        }
    }

    /// Writes the partial blocks and closes the channel: the writer thread then writes the
    /// rest and `fdatasync`s on its own (as a sealed transaction's `finish_blocks`).
    pub fn finish_blocks(&mut self) -> Result<()> {
        for i in 0..self.writers.len() {
            self.writers[i].finish()?;
            self.flush(i);
        }
        drop(self.tx.take());
        Ok(())
    }

    /// Finishes the blocks and waits until the writer has written and synced them.
    pub fn finish(mut self) -> Result<UnsealedTable> {
        self.finish_blocks()?;
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| Error::Internal("baseline writer panicked".into()))??;
        }
        let manifest = Manifest {
            generation: 1,
            next_table_id: 2,
            tables: vec![self.table],
        };
        Ok(UnsealedTable {
            path: self.path,
            block_size: self.block_size,
            manifest,
        })
    }
}

/// Writes `batches` into `path` as unsealed fixed-size slots and `fdatasync`s it.
pub fn write(path: &Path, block_size: usize, batches: &[RecordBatch]) -> Result<UnsealedTable> {
    let Some(first) = batches.first() else {
        return Err(Error::InvalidSchema("no batches".into()));
    };
    let mut w = UnsealedWriter::create(path, block_size, 8, &first.schema())?;
    for b in batches {
        w.append(b)?;
    }
    w.finish()
}

/// The store's scan iterator over the unsealed table (every column, no predicate).
pub fn scan_iter(table: &UnsealedTable, stats: Arc<ScanStats>) -> Result<ScanIter> {
    let file = File::open(&table.path).map_err(|e| Error::io(&table.path, e))?;
    // SAFETY: bench-only file created by `write` above and not modified while mapped.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&table.path, e))?;
    let source = Source::Unsealed(Arc::new(UnsealedFile {
        map: Some(map),
        block_size: table.block_size,
    }));
    plan(source, Arc::new(table.manifest.clone()), TABLE, None, Vec::new(), stats)
}

/// Runs the store's scan iterator over the unsealed table; returns the rows.
pub fn scan(table: &UnsealedTable, stats: Arc<ScanStats>) -> Result<u64> {
    if table.manifest.tables[0].columns.is_empty() {
        return Ok(0);
    }
    let mut rows = 0;
    for b in scan_iter(table, stats)? {
        rows += b?.num_rows() as u64;
    }
    Ok(rows)
}

//! The encrypted-Parquet lane of `sealstore bench`: the same rows written with the `parquet`
//! crate (the arrow version in the tree) using Parquet modular encryption — AES-256-GCM, a
//! footer key and one uniform column key for every column, snappy — and read back in full. It
//! is what "just write encrypted Parquet" costs, the anchor sealstore's speed is measured
//! against (issue 18).
//!
//! With `threads` > 1 the rows are written as that many files on that many threads and read
//! back the same way: `ArrowWriter` and a record batch reader are single-threaded, and files
//! per thread is how a user of Parquet spreads work over cores. Every file is synced before a
//! write counts as done, as a sealstore commit is.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::file::properties::WriterProperties;
use sealstore_cluster::datagen::lineitem_schema;

/// Rows per batch read back (what DataFusion asks for).
const READ_BATCH_ROWS: usize = 8192;

/// A lane's key material: one random 256-bit key as footer key and column key of every column.
pub struct ParquetLane {
    key: Vec<u8>,
}

impl std::fmt::Debug for ParquetLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParquetLane")
    }
}

impl ParquetLane {
    /// A lane with a fresh key from the OS RNG.
    pub fn new() -> Result<Self, String> {
        let mut key = vec![0u8; 32];
        sealstore_keyring::fill_random(&mut key).map_err(|e| format!("random key: {e}"))?;
        Ok(Self { key })
    }

    fn encryption(&self, batches: &[RecordBatch]) -> Result<Arc<FileEncryptionProperties>, String> {
        let mut builder = FileEncryptionProperties::builder(self.key.clone());
        if let Some(b) = batches.first() {
            for field in b.schema().fields() {
                builder = builder.with_column_key(field.name(), self.key.clone());
            }
        }
        builder
            .build()
            .map_err(|e| format!("parquet encryption properties: {e}"))
    }

    fn decryption(&self) -> Result<Arc<FileDecryptionProperties>, String> {
        // Column keys are given by name; the lane's tables are lineitem's columns.
        let mut builder = FileDecryptionProperties::builder(self.key.clone());
        for field in lineitem_schema().fields() {
            builder = builder.with_column_key(field.name(), self.key.clone());
        }
        builder
            .build()
            .map_err(|e| format!("parquet decryption properties: {e}"))
    }

    /// Writes `batches` into `threads` encrypted files in `dir` (created), in parallel, each
    /// synced; returns the files.
    pub fn write(&self, dir: &Path, batches: &[RecordBatch], threads: usize) -> Result<Vec<PathBuf>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let threads = threads.max(1);
        let encryption = self.encryption(batches)?;
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let parts: Vec<(PathBuf, Vec<RecordBatch>)> = (0..threads)
            .map(|i| {
                let part = rows(batches, total * i / threads, total * (i + 1) / threads);
                (dir.join(format!("part-{i}.parquet")), part)
            })
            .filter(|(_, part)| !part.is_empty())
            .collect();
        let paths = parts.iter().map(|(p, _)| p.clone()).collect();
        std::thread::scope(|s| {
            let tasks: Vec<_> = parts
                .iter()
                .map(|(path, part)| {
                    let encryption = encryption.clone();
                    s.spawn(move || write_file(path, part, encryption))
                })
                .collect();
            tasks
                .into_iter()
                .try_for_each(|t| t.join().map_err(|_| "parquet writer thread panicked".to_owned())?)
        })?;
        Ok(paths)
    }

    /// Reads every file back in full, one thread per file; returns the rows read.
    pub fn scan(&self, files: &[PathBuf]) -> Result<u64, String> {
        std::thread::scope(|s| {
            let tasks: Vec<_> = files.iter().map(|path| s.spawn(move || self.scan_file(path))).collect();
            tasks.into_iter().try_fold(0u64, |rows, t| {
                Ok(rows + t.join().map_err(|_| "parquet reader thread panicked".to_owned())??)
            })
        })
    }

    fn scan_file(&self, path: &Path) -> Result<u64, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let options = ArrowReaderOptions::new().with_file_decryption_properties(self.decryption()?);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
            .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut rows = 0u64;
        for batch in reader {
            rows += batch.map_err(|e| format!("{}: {e}", path.display()))?.num_rows() as u64;
        }
        Ok(rows)
    }
}

/// Rows `start..end` of `batches`, as zero-copy slices.
fn rows(batches: &[RecordBatch], start: usize, end: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut at = 0;
    for b in batches {
        let (lo, hi) = (start.max(at), end.min(at + b.num_rows()));
        if lo < hi {
            out.push(b.slice(lo - at, hi - lo));
        }
        at += b.num_rows();
    }
    out
}

fn write_file(path: &Path, batches: &[RecordBatch], encryption: Arc<FileEncryptionProperties>) -> Result<(), String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .with_file_encryption_properties(encryption)
        .build();
    let err = |e: parquet::errors::ParquetError| format!("{}: {e}", path.display());
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).map_err(err)?;
    for b in batches {
        writer.write(b).map_err(err)?;
    }
    writer
        .into_inner()
        .map_err(err)?
        .sync_all()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Bytes of the files on disk (apparent size).
pub fn files_bytes(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_reads_back_every_row_it_wrote_and_the_files_are_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let batches: Vec<RecordBatch> = sealstore_cluster::datagen::Lineitem::new(20_000, 3).collect();
        let lane = ParquetLane::new().unwrap();
        let files = lane.write(dir.path(), &batches, 2).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(lane.scan(&files).unwrap(), 20_000);
        // Encrypted footer: the magic is "PARE", and a reader without the key is refused.
        let bytes = std::fs::read(&files[0]).unwrap();
        assert_eq!(&bytes[bytes.len() - 4..], b"PARE");
        let other = ParquetLane::new().unwrap();
        assert!(other.scan(&files).is_err());
    }
}

//! The unsealed baseline of the benchmarks at cluster level: the same split over slices and the
//! same parallelism, with `sealstore_blockstore::baseline` in place of sealed stores.
use std::path::Path;

use arrow_array::RecordBatch;
use rayon::prelude::*;
use sealstore_blockstore::baseline::{self, UnsealedTable};

use crate::distribute::{Distribution, Splitter};
use crate::{Error, Result};

/// Splits `batches` EVEN over `slices` and writes each slice's rows unsealed, in parallel.
pub fn write(
    dir: &Path,
    block_size: usize,
    slices: usize,
    pool: &rayon::ThreadPool,
    batches: &[RecordBatch],
) -> Result<Vec<UnsealedTable>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let mut splitter = Splitter::new(&Distribution::Even, &first.schema(), slices, slices)?;
    let mut per_slice: Vec<Vec<RecordBatch>> = vec![Vec::new(); slices];
    for b in batches {
        for (s, part) in splitter.split(b)?.into_iter().enumerate() {
            per_slice[s].extend(part);
        }
    }
    pool.install(|| {
        per_slice
            .par_iter()
            .enumerate()
            .map(|(s, parts)| {
                baseline::write(&dir.join(format!("unsealed-{s}.dat")), block_size, parts).map_err(Error::from)
            })
            .collect()
    })
}

/// Scans every slice's unsealed table with the store's scan iterator, slices in parallel;
/// returns the rows.
pub fn scan(tables: &[UnsealedTable], pool: &rayon::ThreadPool) -> Result<u64> {
    pool.install(|| {
        tables
            .par_iter()
            .map(|t| baseline::scan(t, Default::default()).map_err(Error::from))
            .sum()
    })
}

/// A thread pool of `threads` workers for benchmarks.
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::InvalidOption(e.to_string()))
}

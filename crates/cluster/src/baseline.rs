//! The unsealed baseline of the benchmarks at cluster level: the same split over slices and the
//! same parallelism, with `sealstore_blockstore::baseline` in place of sealed stores.
use std::path::Path;

use arrow_array::RecordBatch;
use rayon::prelude::*;
use sealstore_blockstore::baseline::{self, UnsealedTable, UnsealedWriter};

use crate::distribute::{Distribution, Splitter};
use crate::{Error, Result};

/// Splits `batches` EVEN over `slices` and writes each slice's rows unsealed, advancing all
/// slices one batch at a time on the pool exactly as `Database::load` does.
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
    let schema = first.schema();
    let mut splitter = Splitter::new(&Distribution::Even, &schema, slices, slices)?;
    let mut writers = (0..slices)
        .map(|s| {
            UnsealedWriter::create(&dir.join(format!("unsealed-{s}.dat")), block_size, &schema).map_err(Error::from)
        })
        .collect::<Result<Vec<_>>>()?;
    for b in batches {
        let parts = splitter.split(b)?;
        pool.install(|| {
            writers.par_iter_mut().zip(parts).try_for_each(|(w, part)| match part {
                Some(p) => w.append(&p).map_err(Error::from),
                None => Ok(()),
            })
        })?;
    }
    pool.install(|| {
        writers
            .into_par_iter()
            .map(|w| w.finish().map_err(Error::from))
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

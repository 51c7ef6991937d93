//! The unsealed baseline of the benchmarks at cluster level: the same split over slices and the
//! same parallelism, with `sealstore_blockstore::baseline` in place of sealed stores.
use std::path::Path;

use arrow_array::RecordBatch;
pub use rayon::ThreadPool;
use rayon::prelude::*;
pub use sealstore_blockstore::baseline::UnsealedTable;
use sealstore_blockstore::baseline::{self, UnsealedWriter};

use crate::database::in_flight_blocks;
use crate::distribute::{Distribution, Splitter};
use crate::{Error, Result};

/// Splits `batches` EVEN over `slices` and writes each slice's rows unsealed, advancing all
/// slices one batch at a time on the pool and finishing them exactly as `Database::load` does,
/// with as many blocks queued per slice writer as a load under `memory_budget` queues.
pub fn write(
    dir: &Path,
    block_size: usize,
    memory_budget: usize,
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
            UnsealedWriter::create(
                &dir.join(format!("unsealed-{s}.dat")),
                block_size,
                in_flight_blocks(memory_budget, slices, block_size),
                &schema,
            )
            .map_err(Error::from)
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
            .par_iter_mut()
            .try_for_each(|w| w.finish_blocks().map_err(Error::from))
    })?;
    pool.install(|| {
        writers
            .into_par_iter()
            .map(|w| w.finish().map_err(Error::from))
            .collect()
    })
}

/// Scans every slice's unsealed table exactly as a cluster scan runs (the store's scan
/// iterator per slice on the pool, batches streamed to the caller over the same bounded
/// channel); the caller counts the rows. Returns the rows.
pub fn scan(tables: &[UnsealedTable], pool: &rayon::ThreadPool) -> Result<u64> {
    let iters = tables
        .iter()
        .map(|t| baseline::scan_iter(t, Default::default()).map_err(Error::from))
        .collect::<Result<Vec<_>>>()?;
    let mut rows = 0;
    for b in crate::scan::fan_out(iters, pool.current_num_threads())? {
        rows += b?.num_rows() as u64;
    }
    Ok(rows)
}

/// A thread pool of `threads` workers for benchmarks.
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::InvalidOption(e.to_string()))
}

//! Cluster scans: every slice scanned in parallel on the pool, batches streamed back over a
//! bounded channel so memory stays bounded however large the table.
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use crossbeam_channel::{Receiver, bounded};
use sealstore_blockstore::{Predicate, ScanStats};

use crate::database::Database;
use crate::{Error, Result};

/// Builds a scan over all slices of a table.
#[derive(Debug)]
pub struct ClusterScan<'a> {
    db: &'a Database,
    table: String,
    columns: Option<Vec<String>>,
    predicates: Vec<Predicate>,
    stats: Arc<ScanStats>,
}

impl Database {
    /// Starts a scan of `table`.
    pub fn scan(&self, table: &str) -> ClusterScan<'_> {
        ClusterScan {
            db: self,
            table: table.to_owned(),
            columns: None,
            predicates: Vec::new(),
            stats: Arc::default(),
        }
    }
}

impl ClusterScan<'_> {
    /// Returns only these columns.
    pub fn columns<S: AsRef<str>>(mut self, cols: &[S]) -> Self {
        self.columns = Some(cols.iter().map(|c| c.as_ref().to_owned()).collect());
        self
    }

    /// Adds a predicate (conjunction).
    pub fn filter(mut self, p: Predicate) -> Self {
        self.predicates.push(p);
        self
    }

    /// Adds predicates (conjunction).
    pub fn filters(mut self, ps: impl IntoIterator<Item = Predicate>) -> Self {
        self.predicates.extend(ps);
        self
    }

    /// Counts blocks read and rows returned into `stats`.
    pub fn stats(mut self, stats: Arc<ScanStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Plans every slice's scan (zone-map pruning first), then streams batches as slices
    /// produce them. Batch order across slices is not defined.
    pub fn run(self) -> Result<ClusterScanIter> {
        let slices = self.db.scan_slices(&self.table)?;
        let mut iters = Vec::with_capacity(slices.len());
        for s in slices {
            let store = self.db.store(s);
            let mut b = store
                .scan(&self.table)
                .filters(self.predicates.clone())
                .stats(self.stats.clone());
            if let Some(cols) = &self.columns {
                b = b.columns(cols);
            }
            iters.push(b.run()?);
        }
        let schema = iters
            .first()
            .map(|i| i.schema())
            .ok_or_else(|| Error::UnknownTable(self.table.clone()))?;
        let rx = fan_out(self.db.pool(), iters);
        Ok(ClusterScanIter { rx, schema })
    }
}

/// Drains every slice's iterator on its own pool task into one bounded channel (two batches
/// per slice in flight), so the caller receives batches as slices produce them.
pub(crate) fn fan_out(
    pool: &rayon::ThreadPool,
    iters: Vec<sealstore_blockstore::ScanIter>,
) -> Receiver<Result<RecordBatch>> {
    let (tx, rx) = bounded(iters.len() * 2);
    for iter in iters {
        let tx = tx.clone();
        pool.spawn(move || {
            for item in iter {
                let stop = item.is_err();
                if tx.send(item.map_err(Error::from)).is_err() || stop {
                    break;
                }
            }
        });
    }
    rx
}

/// Batches from all slices of a scan.
#[derive(Debug)]
pub struct ClusterScanIter {
    rx: Receiver<Result<RecordBatch>>,
    schema: SchemaRef,
}

impl ClusterScanIter {
    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Iterator for ClusterScanIter {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

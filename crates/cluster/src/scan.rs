//! Cluster scans: every slice of one [`ReadSnapshot`] (cut into row ranges when there are
//! fewer slices than threads) scanned in parallel, batches streamed back
//! over a bounded channel so memory stays bounded however large the table.
//!
//! The producers are threads of the scan's own, not tasks of the cluster's worker pool: a scan
//! whose consumer stops reading blocks only itself, never a write or another scan.
use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use crossbeam_channel::{Receiver, bounded};
use sealstore_blockstore::{BytesLayout, Predicate, ScanIter, ScanStats};

use crate::snapshot::ReadSnapshot;
use crate::{Error, Result};

/// Builds a scan over all slices of a table at one snapshot.
#[derive(Debug, Clone)]
pub struct ClusterScan {
    snapshot: ReadSnapshot,
    table: String,
    columns: Option<Vec<String>>,
    predicates: Vec<Predicate>,
    stats: Arc<ScanStats>,
    layout: BytesLayout,
    views: Vec<String>,
}

impl ReadSnapshot {
    /// Starts a scan of `table` at this snapshot.
    pub fn scan(&self, table: &str) -> ClusterScan {
        ClusterScan::new(self.clone(), table)
    }
}

impl ClusterScan {
    pub(crate) fn new(snapshot: ReadSnapshot, table: &str) -> Self {
        Self {
            snapshot,
            table: table.to_owned(),
            columns: None,
            predicates: Vec::new(),
            stats: Arc::default(),
            layout: BytesLayout::Offsets,
            views: Vec::new(),
        }
    }

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

    /// Returns string and binary columns in `layout` (see [`BytesLayout`]; default offsets).
    pub fn bytes_layout(mut self, layout: BytesLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Returns these string or binary columns as views, the others in the
    /// [`Self::bytes_layout`].
    pub fn views<S: AsRef<str>>(mut self, cols: &[S]) -> Self {
        self.views = cols.iter().map(|c| c.as_ref().to_owned()).collect();
        self
    }

    /// The slices this scan reads, one partition each for an engine that drives them itself
    /// ([`Self::run_slice`]); one slice for an ALL table.
    pub fn slices(&self) -> Result<Vec<usize>> {
        self.snapshot.scan_slices(&self.table)
    }

    /// The pieces the scan runs as, one thread or engine partition each: every slice, and
    /// when the table sits on fewer slices than the cluster has threads (a small table kept on
    /// one slice, a cluster with few slices), each slice cut into row ranges at block
    /// boundaries so that every thread still has blocks to decrypt and decode.
    pub fn parts(&self) -> Result<Vec<ScanPart>> {
        let slices = self.slices()?;
        let per_slice = if slices.is_empty() {
            1
        } else {
            self.snapshot.threads().div_ceil(slices.len()).max(1)
        };
        let mut parts = Vec::new();
        for slice in slices {
            for rows in self.snapshot.slice(slice).split_rows(&self.table, per_slice)? {
                parts.push(ScanPart { slice, rows });
            }
        }
        Ok(parts)
    }

    /// Plans and runs the scan of one slice on the caller's thread: for engines (DataFusion)
    /// that schedule partitions themselves. The iterator holds the snapshot.
    pub fn run_slice(&self, slice: usize) -> Result<SliceScanIter> {
        self.check_slice(slice)?;
        Ok(SliceScanIter {
            iter: self.slice_iter(slice, None)?,
            _snapshot: self.snapshot.clone(),
        })
    }

    /// Plans and runs one part of [`Self::parts`] on the caller's thread.
    pub fn run_part(&self, part: &ScanPart) -> Result<SliceScanIter> {
        self.check_slice(part.slice)?;
        Ok(SliceScanIter {
            iter: self.slice_iter(part.slice, Some(part.rows.clone()))?,
            _snapshot: self.snapshot.clone(),
        })
    }

    fn check_slice(&self, slice: usize) -> Result<()> {
        if self.slices()?.contains(&slice) {
            return Ok(());
        }
        Err(Error::InvalidOption(format!(
            "table `{}` has no rows to scan on slice {slice}",
            self.table
        )))
    }

    /// Plans one slice's scan, or part of it (zone-map pruning first).
    fn slice_iter(&self, slice: usize, rows: Option<Range<u64>>) -> Result<ScanIter> {
        let mut b = self
            .snapshot
            .slice(slice)
            .scan(&self.table)
            .filters(self.predicates.clone())
            .stats(self.stats.clone())
            .bytes_layout(self.layout)
            .views(&self.views);
        if let Some(cols) = &self.columns {
            b = b.columns(cols);
        }
        if let Some(rows) = rows {
            b = b.rows(rows);
        }
        Ok(b.run()?)
    }

    /// Plans every part's scan (zone-map pruning first), then streams batches as parts produce
    /// them. Batch order across parts is not defined.
    pub fn run(self) -> Result<ClusterScanIter> {
        let iters = self
            .parts()?
            .into_iter()
            .map(|p| self.slice_iter(p.slice, Some(p.rows)))
            .collect::<Result<Vec<_>>>()?;
        let schema = iters
            .first()
            .map(ScanIter::schema)
            .ok_or_else(|| Error::UnknownTable(self.table.clone()))?;
        let rx = fan_out(iters, self.snapshot.threads())?;
        Ok(ClusterScanIter {
            rx,
            schema,
            _snapshot: self.snapshot,
        })
    }
}

/// A piece of a cluster scan: rows of one slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPart {
    pub slice: usize,
    /// Row numbers within the slice's part of the table.
    pub rows: Range<u64>,
}

/// Drains the parts' iterators on `threads` producer threads (each takes every `threads`-th
/// part) into one bounded channel, two batches per part in flight. A producer stops at the
/// first error or when the receiver is dropped.
fn fan_out(iters: Vec<ScanIter>, threads: usize) -> Result<Receiver<Result<RecordBatch>>> {
    let (tx, rx) = bounded(iters.len() * 2);
    let producers = threads.clamp(1, iters.len().max(1));
    let mut groups: Vec<Vec<ScanIter>> = (0..producers).map(|_| Vec::new()).collect();
    for (i, iter) in iters.into_iter().enumerate() {
        groups[i % producers].push(iter);
    }
    for (i, group) in groups.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("sealstore-scan-{i}"))
            .spawn(move || {
                for iter in group {
                    for item in iter {
                        let stop = item.is_err();
                        if tx.send(item.map_err(Error::from)).is_err() || stop {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| Error::io("scan thread", e))?;
    }
    Ok(rx)
}

/// Batches from all slices of a scan. Holds its snapshot, so what it reads stays readable.
#[derive(Debug)]
pub struct ClusterScanIter {
    rx: Receiver<Result<RecordBatch>>,
    schema: SchemaRef,
    _snapshot: ReadSnapshot,
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

/// Batches of one slice's scan, read on the caller's thread. Holds its snapshot.
#[derive(Debug)]
pub struct SliceScanIter {
    iter: ScanIter,
    _snapshot: ReadSnapshot,
}

impl SliceScanIter {
    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.iter.schema()
    }
}

impl Iterator for SliceScanIter {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.iter.next().map(|r| r.map_err(Error::from))
    }
}

//! Scans: projection, predicates, zone-map pruning before any read, exact filtering after.
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::{ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow_buffer::BooleanBuffer;
use arrow_schema::{Field, Schema, SchemaRef};
use serde::Serialize;

use crate::encoding::BytesLayout;
use crate::manifest::{Manifest, TableMeta};
use crate::predicate::Predicate;
use crate::snapshot::Snapshot;
use crate::store::{Shared, Store};
use crate::{Error, Result};

/// Counters a scan fills in (shareable across the scans of several slices).
#[derive(Debug, Default)]
pub struct ScanStats {
    /// Blocks of the columns the scan needs.
    pub blocks_total: AtomicU64,
    /// Blocks read, authenticated and decrypted.
    pub blocks_read: AtomicU64,
    /// Rows returned.
    pub rows_out: AtomicU64,
    /// Bytes of block slots read.
    pub bytes_read: AtomicU64,
    /// Pages decoded (a read block's pages are decoded only where the scan needs rows of them).
    pub pages_decoded: AtomicU64,
}

/// A plain snapshot of [`ScanStats`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ScanCounts {
    pub blocks_total: u64,
    pub blocks_read: u64,
    pub rows_out: u64,
    pub bytes_read: u64,
    pub pages_decoded: u64,
}

impl ScanStats {
    /// Current values.
    pub fn counts(&self) -> ScanCounts {
        ScanCounts {
            blocks_total: self.blocks_total.load(Ordering::Relaxed),
            blocks_read: self.blocks_read.load(Ordering::Relaxed),
            rows_out: self.rows_out.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            pages_decoded: self.pages_decoded.load(Ordering::Relaxed),
        }
    }
}

/// Builds a scan of one table at one snapshot.
#[derive(Debug)]
pub struct ScanBuilder {
    snapshot: Snapshot,
    table: String,
    columns: Option<Vec<String>>,
    predicates: Vec<Predicate>,
    rows: Option<Range<u64>>,
    stats: Arc<ScanStats>,
    layout: BytesLayout,
    views: Vec<String>,
}

impl Snapshot {
    /// Starts a scan of `table` at this snapshot.
    pub fn scan(&self, table: &str) -> ScanBuilder {
        ScanBuilder {
            snapshot: self.clone(),
            table: table.to_owned(),
            columns: None,
            predicates: Vec::new(),
            rows: None,
            stats: Arc::default(),
            layout: BytesLayout::Offsets,
            views: Vec::new(),
        }
    }

    /// Cuts the rows of `table` into at most `parts` contiguous ranges of about the same bytes,
    /// at the block boundaries of its largest column (so each range reads its own blocks of that
    /// column; blocks of other columns that straddle a cut are read by both neighbours). For
    /// scanning one store's table on several threads with [`ScanBuilder::rows`].
    pub fn split_rows(&self, table: &str, parts: usize) -> Result<Vec<Range<u64>>> {
        let t = self.manifest().table(table)?;
        let Some(widest) = t.columns.iter().max_by_key(|c| c.blocks.len()) else {
            return Ok(std::iter::once(0..t.rows).collect());
        };
        let blocks = &widest.blocks;
        let parts = parts.clamp(1, blocks.len().max(1));
        let mut cuts = vec![0];
        for p in 1..parts {
            let b = &blocks[p * blocks.len() / parts];
            if b.row_start > *cuts.last().expect("starts at 0") {
                cuts.push(b.row_start);
            }
        }
        cuts.push(t.rows);
        // Cuts are block starts above 0 and below the row count: every range holds rows,
        // except the one range of an empty table.
        Ok(cuts.windows(2).map(|w| w[0]..w[1]).collect())
    }
}

impl Store {
    /// Starts a scan of `table` at the latest commit.
    pub fn scan(&self, table: &str) -> ScanBuilder {
        self.snapshot().scan(table)
    }
}

impl ScanBuilder {
    /// Returns only these columns, in this order.
    pub fn columns<S: AsRef<str>>(mut self, cols: &[S]) -> Self {
        self.columns = Some(cols.iter().map(|c| c.as_ref().to_owned()).collect());
        self
    }

    /// Keeps rows where `predicate` holds (conjunction with the others).
    pub fn filter(mut self, predicate: Predicate) -> Self {
        self.predicates.push(predicate);
        self
    }

    /// Adds several predicates.
    pub fn filters(mut self, predicates: impl IntoIterator<Item = Predicate>) -> Self {
        self.predicates.extend(predicates);
        self
    }

    /// Reads only rows in `rows` (row numbers of this store's table, from 0).
    pub fn rows(mut self, rows: Range<u64>) -> Self {
        self.rows = Some(rows);
        self
    }

    /// Counts into `stats`.
    pub fn stats(mut self, stats: Arc<ScanStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Returns string and binary columns in `layout` (default: `Utf8`/`Binary` offsets arrays;
    /// [`BytesLayout::Views`] gives `Utf8View`/`BinaryView`, cheaper to decode, filter and hash).
    pub fn bytes_layout(mut self, layout: BytesLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Returns these string or binary columns as views ([`BytesLayout::Views`]), the others in
    /// the [`Self::bytes_layout`].
    pub fn views<S: AsRef<str>>(mut self, cols: &[S]) -> Self {
        self.views = cols.iter().map(|c| c.as_ref().to_owned()).collect();
        self
    }

    /// Plans the scan: checks columns and predicates, prunes by zone map.
    pub fn run(self) -> Result<ScanIter> {
        let (source, manifest) = self.snapshot.clone().into_parts();
        plan(source, manifest, self)
    }
}

/// Checks columns and predicates, computes the row ranges zone maps cannot exclude.
fn plan(source: Arc<Shared>, manifest: Arc<Manifest>, request: ScanBuilder) -> Result<ScanIter> {
    let ScanBuilder {
        table,
        columns,
        predicates,
        rows,
        stats,
        layout,
        views,
        ..
    } = request;
    let table = table.as_str();
    let table_idx = manifest
        .tables
        .iter()
        .position(|t| t.name == table)
        .ok_or_else(|| Error::UnknownTable(table.to_owned()))?;
    let t = &manifest.tables[table_idx];
    let out_cols: Vec<usize> = match &columns {
        Some(cols) => cols.iter().map(|c| t.column_index(c)).collect::<Result<_>>()?,
        None => (0..t.columns.len()).collect(),
    };
    let view_cols: Vec<usize> = views.iter().map(|c| t.column_index(c)).collect::<Result<_>>()?;
    let mut preds = Vec::new();
    for p in predicates {
        let ci = t.column_index(p.column())?;
        p.check(t.columns[ci].ty)?;
        preds.push((p, ci));
    }
    let mut needed: Vec<usize> = out_cols.clone();
    for (_, ci) in &preds {
        if !needed.contains(ci) {
            needed.push(*ci);
        }
    }
    if needed.is_empty() {
        needed.push(0);
    }
    let (lo, hi) = rows.as_ref().map_or((0, t.rows), |r| (r.start, r.end.min(t.rows)));
    let mut ranges = if lo < hi { vec![(lo, hi)] } else { Vec::new() };
    for (p, ci) in &preds {
        let mut matching: Vec<(u64, u64)> = Vec::new();
        for b in t.columns[*ci].blocks.iter().filter(|b| p.may_match(&b.zone)) {
            let mut s = b.row_start;
            for page in &b.pages {
                let e = s + page.rows;
                if p.may_match(page) {
                    match matching.last_mut() {
                        Some(last) if last.1 == s => last.1 = e,
                        _ => matching.push((s, e)),
                    }
                }
                s = e;
            }
        }
        ranges = intersect(&ranges, &matching);
    }
    // Blocks of the needed columns that meet the rows this scan may read.
    let total: u64 = needed
        .iter()
        .map(|&c| {
            let blocks = &t.columns[c].blocks;
            if rows.is_none() {
                return blocks.len() as u64;
            }
            blocks
                .iter()
                .filter(|b| b.row_start < hi && b.row_start + u64::from(b.rows) > lo)
                .count() as u64
        })
        .sum();
    stats.blocks_total.fetch_add(total, Ordering::Relaxed);
    let layout_of = |c: usize| {
        if view_cols.contains(&c) {
            BytesLayout::Views
        } else {
            layout
        }
    };
    let fields: Vec<_> = out_cols
        .iter()
        .map(|&c| Field::new(&t.columns[c].name, t.columns[c].ty.arrow_as(layout_of(c)), true))
        .collect();
    Ok(ScanIter {
        source,
        schema: Arc::new(Schema::new(fields)),
        cursors: needed.iter().map(|_| Cursor::default()).collect(),
        out_cols: out_cols
            .iter()
            .map(|c| needed.iter().position(|n| n == c).expect("needed"))
            .collect(),
        preds: preds
            .into_iter()
            .map(|(p, c)| (p, needed.iter().position(|n| *n == c).expect("needed")))
            .collect(),
        manifest,
        table_idx,
        ranges,
        range_idx: 0,
        pos: 0,
        stats,
        layouts: needed.iter().map(|&c| layout_of(c)).collect(),
        needed,
        failed: false,
    })
}

/// Sorted, disjoint range intersection.
fn intersect(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let s = a[i].0.max(b[j].0);
        let e = a[i].1.min(b[j].1);
        if s < e {
            out.push((s, e));
        }
        if a[i].1 < b[j].1 { i += 1 } else { j += 1 }
    }
    out
}

/// One needed column's loaded block: its decrypted payload and its pages, each decoded the
/// first time the scan needs rows of it (late materialisation: a page whose rows the zone maps
/// or the predicates exclude is never decoded).
#[derive(Default)]
struct Cursor {
    block: Option<usize>,
    /// The block as read and decrypted (private copy); pages are ranges of it.
    buf: Vec<u8>,
    pages: Vec<PageSlot>,
}

struct PageSlot {
    start: u64,
    rows: u64,
    bytes: std::ops::Range<usize>,
    array: Option<ArrayRef>,
}

/// An iterator of record batches; each item is one slice of rows within one page of every
/// needed column.
pub struct ScanIter {
    /// The store's files and keys: blocks are read, authenticated, decrypted and decoded here.
    source: Arc<Shared>,
    manifest: Arc<Manifest>,
    table_idx: usize,
    schema: SchemaRef,
    needed: Vec<usize>,
    out_cols: Vec<usize>,
    preds: Vec<(Predicate, usize)>,
    ranges: Vec<(u64, u64)>,
    range_idx: usize,
    pos: u64,
    cursors: Vec<Cursor>,
    stats: Arc<ScanStats>,
    /// How each needed column's strings are returned.
    layouts: Vec<BytesLayout>,
    failed: bool,
}

impl std::fmt::Debug for ScanIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanIter")
            .field("schema", &self.schema)
            .field("pos", &self.pos)
            .finish()
    }
}

impl ScanIter {
    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table(&self) -> &TableMeta {
        &self.manifest.tables[self.table_idx]
    }

    /// Ensures cursor `k` holds the block containing row `pos` (read, authenticated,
    /// decrypted, its pages located but not decoded); returns the index of the page holding
    /// `pos`.
    fn page_at(&mut self, k: usize, pos: u64) -> Result<usize> {
        let col = self.needed[k];
        let manifest = self.manifest.clone();
        let t = &manifest.tables[self.table_idx];
        let blocks = &t.columns[col].blocks;
        let bi = blocks.partition_point(|b| b.row_start + u64::from(b.rows) <= pos);
        let meta = blocks.get(bi).ok_or_else(|| Error::Decode {
            table: t.name.clone(),
            column: t.columns[col].name.clone(),
            block_id: 0,
            reason: format!("no block covers row {pos}"),
        })?;
        if self.cursors[k].block != Some(bi) {
            let cursor = &mut self.cursors[k];
            cursor.block = None;
            let payload = self.source.open_block(t, col, meta, &mut cursor.buf)?;
            self.stats.blocks_read.fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes_read
                .fetch_add(self.source.segments.slot_len(meta.slot) as u64, Ordering::Relaxed);
            let decode_error = |e| Shared::decode_error(t, col, meta, e);
            // Pages follow the payload's u32 page count back to back.
            let mut offset = payload.start + 4;
            let mut start = meta.row_start;
            cursor.pages.clear();
            for page in crate::writer::split_pages(&cursor.buf[payload]).map_err(decode_error)? {
                let rows = u64::from(crate::encoding::page_rows(page).map_err(decode_error)?);
                cursor.pages.push(PageSlot {
                    start,
                    rows,
                    bytes: offset..offset + page.len(),
                    array: None,
                });
                offset += page.len();
                start += rows;
            }
            if start != meta.row_start + u64::from(meta.rows) || cursor.pages.iter().any(|p| p.rows == 0) {
                return Err(Error::Decode {
                    table: t.name.clone(),
                    column: t.columns[col].name.clone(),
                    block_id: meta.block_id,
                    reason: "pages do not add up to the block's rows".into(),
                });
            }
            cursor.block = Some(bi);
        }
        let pages = &self.cursors[k].pages;
        Ok(pages.partition_point(|p| p.start + p.rows <= pos))
    }

    /// Forgets the decoded arrays of cursor `k`'s pages that end at or before row `pos`: the
    /// scan never goes back, and the batches handed out keep what they still need. A block's
    /// pages are decoded one at a time, so memory is bounded by a page per column, not by the
    /// rows a well-compressed block holds (a 1 MiB block of a sorted key can hold millions).
    fn release_pages_before(&mut self, k: usize, pos: u64) {
        for page in &mut self.cursors[k].pages {
            if page.start + page.rows > pos {
                break;
            }
            page.array = None;
        }
    }

    /// The decoded array of page `pi` of cursor `k` (decoded now if it was not yet).
    fn page_array(&mut self, k: usize, pi: usize) -> Result<ArrayRef> {
        let col = self.needed[k];
        let cursor = &mut self.cursors[k];
        let page = &mut cursor.pages[pi];
        if let Some(a) = &page.array {
            return Ok(a.clone());
        }
        let t = &self.manifest.tables[self.table_idx];
        let meta = &t.columns[col].blocks[cursor.block.expect("a loaded block")];
        let array =
            crate::encoding::decode_page_as(t.columns[col].ty, &cursor.buf[page.bytes.clone()], self.layouts[k])
                .map_err(|e| Shared::decode_error(t, col, meta, e))?;
        if array.len() as u64 != page.rows {
            return Err(Shared::decode_error(
                t,
                col,
                meta,
                crate::encoding::DecodeError("page decoded to another row count"),
            ));
        }
        self.stats.pages_decoded.fetch_add(1, Ordering::Relaxed);
        page.array = Some(array.clone());
        Ok(array)
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let Some(&(start, end)) = self.ranges.get(self.range_idx) else {
                return Ok(None);
            };
            if self.pos < start {
                self.pos = start;
            }
            if self.pos >= end {
                self.range_idx += 1;
                continue;
            }
            let pos = self.pos;
            let mut chunk_end = end;
            let mut pages = Vec::with_capacity(self.needed.len());
            for k in 0..self.needed.len() {
                let pi = self.page_at(k, pos)?;
                let page = &self.cursors[k].pages[pi];
                chunk_end = chunk_end.min(page.start + page.rows);
                pages.push(pi);
            }
            let len = (chunk_end - pos) as usize;
            self.pos = chunk_end;
            for k in 0..self.needed.len() {
                self.release_pages_before(k, pos);
            }
            // The predicates' columns first; the other columns' pages are decoded only if a
            // row of this chunk survives.
            let slice = |this: &mut Self, k: usize| -> Result<ArrayRef> {
                let a = this.page_array(k, pages[k])?;
                let start = this.cursors[k].pages[pages[k]].start;
                Ok(a.slice((pos - start) as usize, len))
            };
            let mut arrays: Vec<Option<ArrayRef>> = vec![None; self.needed.len()];
            let mut mask: Option<BooleanBuffer> = None;
            for i in 0..self.preds.len() {
                let k = self.preds[i].1;
                if arrays[k].is_none() {
                    arrays[k] = Some(slice(self, k)?);
                }
                let ty = self.table().columns[self.needed[k]].ty;
                let m = self.preds[i].0.evaluate(arrays[k].as_ref().expect("decoded"), ty)?;
                mask = Some(match mask {
                    Some(prev) => &prev & &m,
                    None => m,
                });
            }
            if mask.as_ref().is_some_and(|m| m.count_set_bits() == 0) {
                continue;
            }
            let mut out: Vec<ArrayRef> = Vec::with_capacity(self.out_cols.len());
            for i in 0..self.out_cols.len() {
                let k = self.out_cols[i];
                if arrays[k].is_none() {
                    arrays[k] = Some(slice(self, k)?);
                }
                out.push(arrays[k].clone().expect("decoded"));
            }
            let mut rows = len;
            if let Some(mask) = mask {
                let selected = mask.count_set_bits();
                if selected == 0 {
                    continue;
                }
                if selected < len {
                    let filter = BooleanArray::new(mask, None);
                    out = out
                        .iter()
                        .map(|a| arrow_select::filter::filter(a.as_ref(), &filter))
                        .collect::<Result<_, _>>()?;
                    rows = selected;
                }
            }
            self.stats.rows_out.fetch_add(rows as u64, Ordering::Relaxed);
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            return Ok(Some(RecordBatch::try_new_with_options(
                self.schema.clone(),
                out,
                &options,
            )?));
        }
    }
}

impl Iterator for ScanIter {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => {
                // The unwrap counts of this scan reach the audit log; a failure to append them
                // is not the scan's (the next commit or open appends and anchors again).
                let _ = self.source.keys.flush_audit();
                None
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::intersect;

    #[test]
    fn range_intersection() {
        assert_eq!(intersect(&[(0, 10), (20, 30)], &[(5, 25)]), vec![(5, 10), (20, 25)]);
        assert_eq!(intersect(&[(0, 10)], &[]), vec![]);
        assert_eq!(
            intersect(&[(0, 100)], &[(0, 5), (7, 9), (99, 120)]),
            vec![(0, 5), (7, 9), (99, 100)]
        );
    }
}

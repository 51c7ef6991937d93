//! Read snapshots: one cluster commit, pinned across every slice.
//!
//! A commit builds a [`Committed`] (the sealed commit record's catalog plus every slice's
//! manifest) and swaps it into the database in one step, after every slice installed. A reader
//! clones the `Arc` under a read lock held only for that clone, so it never waits for a running
//! write and never sees one slice at commit N and another at N+1. The slots and DEKs a snapshot
//! can read are released only once it (and every older one) is dropped.
use std::sync::Arc;

use arrow_schema::SchemaRef;
use sealstore_blockstore::{Snapshot, ZoneMap, slot};
use serde::Serialize;

use crate::commit::{CommitRecord, TableEntry};
use crate::distribute::Distribution;
use crate::{Error, Result};

/// One cluster commit: the catalog and every slice's manifest at it.
#[derive(Debug)]
pub(crate) struct Committed {
    pub record: CommitRecord,
    pub slices: Vec<Snapshot>,
}

/// A table as the cluster sees it.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub name: String,
    pub distribution: String,
    pub rows: u64,
    pub blocks: u64,
    pub columns: Vec<(String, String)>,
}

/// What one slice's manifest says about a table, without reading a block: rows and, per
/// column in schema order, the merged zone map (null count, and min/max bounds where every
/// block kept one).
#[derive(Debug, Clone, PartialEq)]
pub struct SliceStatistics {
    pub slice: usize,
    pub rows: u64,
    pub columns: Vec<ZoneMap>,
    /// Bytes of sealed slots per column, in schema order (what its blocks occupy on disk).
    pub stored_bytes: Vec<u64>,
}

/// A consistent, read-only view of one database at one cluster commit. Cheap to clone; scans,
/// counts and schemas all answer at the same commit however long it lives and whatever commits
/// land meanwhile.
#[derive(Debug, Clone)]
pub struct ReadSnapshot {
    database: Arc<str>,
    committed: Arc<Committed>,
    /// Threads a scan may use (the cluster's worker count).
    threads: usize,
}

impl ReadSnapshot {
    pub(crate) fn new(database: Arc<str>, committed: Arc<Committed>, threads: usize) -> Self {
        Self {
            database,
            committed,
            threads,
        }
    }

    /// The database this snapshot reads.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The cluster commit generation this snapshot reads.
    pub fn generation(&self) -> u64 {
        self.committed.record.generation
    }

    /// Table names.
    pub fn tables(&self) -> Vec<String> {
        self.committed.record.tables.iter().map(|t| t.name.clone()).collect()
    }

    fn entry(&self, table: &str) -> Result<&TableEntry> {
        self.committed
            .record
            .table(table)
            .ok_or_else(|| Error::UnknownTable(table.to_owned()))
    }

    /// A table's schema.
    pub fn schema(&self, table: &str) -> Result<SchemaRef> {
        self.entry(table)?;
        Ok(self.committed.slices[0].schema(table)?)
    }

    /// A table's distribution style.
    pub fn distribution(&self, table: &str) -> Result<Distribution> {
        Ok(self.entry(table)?.distribution.clone())
    }

    /// Slices that hold the rows a scan must read (one copy for ALL tables).
    pub(crate) fn scan_slices(&self, table: &str) -> Result<Vec<usize>> {
        Ok(match self.entry(table)?.distribution {
            Distribution::All => vec![0],
            _ => (0..self.committed.slices.len()).collect(),
        })
    }

    /// Rows of a table (one copy for ALL tables).
    pub fn row_count(&self, table: &str) -> Result<u64> {
        let mut rows = 0;
        for s in self.scan_slices(table)? {
            rows += self.committed.slices[s].row_count(table)?;
        }
        Ok(rows)
    }

    /// Rows of a table on each slice.
    pub fn rows_per_slice(&self, table: &str) -> Result<Vec<u64>> {
        self.entry(table)?;
        self.committed.slices.iter().map(|s| Ok(s.row_count(table)?)).collect()
    }

    /// Manifest statistics of a table on every slice a scan reads (one for an ALL table).
    pub fn slice_statistics(&self, table: &str) -> Result<Vec<SliceStatistics>> {
        self.scan_slices(table)?
            .into_iter()
            .map(|slice| {
                let meta = self.committed.slices[slice].manifest().table(table)?;
                let columns = meta
                    .columns
                    .iter()
                    .map(|c| {
                        let mut merged: Option<ZoneMap> = None;
                        for b in &c.blocks {
                            match merged.as_mut() {
                                Some(m) => m.merge(&b.zone),
                                None => merged = Some(b.zone.clone()),
                            }
                        }
                        merged.unwrap_or_default()
                    })
                    .collect();
                let stored_bytes = meta
                    .columns
                    .iter()
                    .map(|c| {
                        c.blocks
                            .iter()
                            .map(|b| slot::class_size(slot::class_of(b.slot)) as u64)
                            .sum()
                    })
                    .collect();
                Ok(SliceStatistics {
                    slice,
                    rows: meta.rows,
                    columns,
                    stored_bytes,
                })
            })
            .collect()
    }

    /// Describes every table.
    pub fn table_infos(&self) -> Result<Vec<TableInfo>> {
        self.committed
            .record
            .tables
            .iter()
            .map(|t| {
                let schema = self.schema(&t.name)?;
                let blocks = self
                    .committed
                    .slices
                    .iter()
                    .map(|s| s.block_count(&t.name))
                    .sum::<Result<u64, _>>()?;
                Ok(TableInfo {
                    name: t.name.clone(),
                    distribution: t.distribution.to_string(),
                    rows: self.row_count(&t.name)?,
                    blocks,
                    columns: schema
                        .fields()
                        .iter()
                        .map(|f| (f.name().clone(), f.data_type().to_string()))
                        .collect(),
                })
            })
            .collect()
    }

    pub(crate) fn slice(&self, s: usize) -> &Snapshot {
        &self.committed.slices[s]
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }
}

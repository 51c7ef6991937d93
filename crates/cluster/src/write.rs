//! Write transactions: create, append to and drop several tables, committed as one atomic
//! cluster commit through blockstore's commit protocol.
//!
//! One writer per database at a time: [`Database::begin_write`] waits for the running one,
//! [`Database::try_begin_write`] refuses with [`Error::WriteConflict`]. Readers never wait: they
//! read [`crate::ReadSnapshot`]s. A transaction dropped without `commit` is aborted: its staged
//! DEKs are forgotten and the slots it wrote stay unreferenced (reused by the next commit; their
//! DEKs, if any reached the disk, reclaimed on open).
use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use parking_lot::MutexGuard;
use rayon::prelude::*;
use sealstore_blockstore::Transaction;
use sealstore_keyring::fsutil;
use serde::Serialize;

use crate::commit::{CommitRecord, TableEntry};
use crate::commit_point::ClusterCommitPoint;
use crate::database::{Database, in_flight_blocks};
use crate::distribute::{Distribution, Splitter};
use crate::{Error, Result};

/// What a commit did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommitReport {
    /// Rows appended (over all tables).
    pub rows: u64,
    /// Bytes of Arrow data appended.
    pub arrow_bytes: u64,
    /// Sealed blocks written.
    pub blocks_written: u64,
    /// The cluster commit generation this commit made.
    pub generation: u64,
}

/// An open write transaction on one database (see the module docs).
pub struct WriteTransaction<'db> {
    db: &'db Database,
    _writer: MutexGuard<'db, ()>,
    record: CommitRecord,
    txns: Vec<Transaction<'db>>,
    splitters: HashMap<String, (SchemaRef, Splitter)>,
    dropped: bool,
    /// An append failed part-way: the transaction can only be aborted.
    failed: bool,
    report: CommitReport,
}

impl std::fmt::Debug for WriteTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTransaction")
            .field("database", &self.db.name())
            .field("base_generation", &self.record.generation)
            .field("rows", &self.report.rows)
            .finish()
    }
}

impl Database {
    /// Creates an empty table (one cluster commit).
    pub fn create_table(&self, table: &str, schema: &arrow_schema::Schema, distribution: Distribution) -> Result<()> {
        let mut w = self.begin_write()?;
        w.create_table(table, schema, distribution)?;
        w.commit()?;
        Ok(())
    }

    /// Appends batches to an existing table as one atomic cluster commit.
    pub fn append(&self, table: &str, batches: impl IntoIterator<Item = RecordBatch>) -> Result<CommitReport> {
        self.load(table, None, batches.into_iter().map(Ok))
    }

    /// Appends a stream of batches as one atomic cluster commit, creating the table first (in
    /// the same commit) when `create` is given. Any error, including one from the input stream,
    /// leaves the database exactly as it was.
    pub fn load(
        &self,
        table: &str,
        create: Option<(arrow_schema::Schema, Distribution)>,
        batches: impl IntoIterator<Item = Result<RecordBatch>>,
    ) -> Result<CommitReport> {
        let mut w = self.begin_write()?;
        if let Some((schema, distribution)) = create {
            w.create_table(table, &schema, distribution)?;
        }
        w.append_stream(table, batches)?;
        w.commit()
    }

    /// Drops a table on every slice (one cluster commit) and crypto-shreds it before returning:
    /// its DEKs leave the DEK table at once (scans still reading it end with a "table was
    /// dropped" error), then the database key is rotated, which rewrites the DEK table without
    /// them and destroys the old DK — so no earlier copy of the DEK table (a backup, a stray
    /// file) can unwrap them either. Leftover temporary files are swept.
    pub fn drop_table(&self, table: &str) -> Result<()> {
        let mut w = self.begin_write()?;
        w.drop_table(table)?;
        w.commit()?;
        Ok(())
    }

    /// Starts a write transaction, waiting while another one on this database is open.
    pub fn begin_write(&self) -> Result<WriteTransaction<'_>> {
        let guard = self.writer_lock().lock();
        WriteTransaction::start(self, guard)
    }

    /// Starts a write transaction, or fails at once with [`Error::WriteConflict`] while another
    /// one on this database is open.
    pub fn try_begin_write(&self) -> Result<WriteTransaction<'_>> {
        let guard = self.writer_lock().try_lock().ok_or_else(|| Error::WriteConflict {
            database: self.name().to_owned(),
        })?;
        WriteTransaction::start(self, guard)
    }
}

impl<'db> WriteTransaction<'db> {
    fn start(db: &'db Database, guard: MutexGuard<'db, ()>) -> Result<Self> {
        db.prepare_to_commit()?;
        let record = db.committed_record();
        let slices = db.stores().len();
        let budget = db.memory_budget().max(db.block_size());
        let queued = in_flight_blocks(budget, slices, db.block_size());
        let txns = db
            .stores()
            .iter()
            .map(|s| s.begin_pipelined(queued))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self {
            db,
            _writer: guard,
            record,
            txns,
            splitters: HashMap::new(),
            dropped: false,
            failed: false,
            report: CommitReport::default(),
        })
    }

    /// Tables as this transaction sees them (its own creates and drops included).
    pub fn tables(&self) -> Vec<String> {
        self.record.tables.iter().map(|t| t.name.clone()).collect()
    }

    /// A table's schema as this transaction sees it.
    pub fn schema(&self, table: &str) -> Result<SchemaRef> {
        self.entry(table)?;
        Ok(self.txns[0].schema(table)?)
    }

    fn entry(&self, table: &str) -> Result<&TableEntry> {
        self.record
            .table(table)
            .ok_or_else(|| Error::UnknownTable(table.to_owned()))
    }

    /// Creates an empty table on every slice.
    pub fn create_table(&mut self, table: &str, schema: &Schema, distribution: Distribution) -> Result<()> {
        self.usable()?;
        if self.record.table(table).is_some() {
            return Err(Error::TableExists(table.to_owned()));
        }
        sealstore_blockstore::validate_table_name(table)?;
        sealstore_blockstore::table_columns(schema)?;
        // Checked before anything changes: a bad distribution key leaves the transaction usable.
        Splitter::new(&distribution, schema, self.txns.len(), self.db.slices_per_node())?;
        for t in &mut self.txns {
            t.create_table(table, schema).inspect_err(|_| self.failed = true)?;
        }
        self.record.tables.push(TableEntry {
            name: table.to_owned(),
            distribution,
        });
        Ok(())
    }

    /// Appends batches to a table.
    pub fn append(&mut self, table: &str, batches: impl IntoIterator<Item = RecordBatch>) -> Result<()> {
        self.append_stream(table, batches.into_iter().map(Ok))
    }

    /// Appends a stream of batches to a table, handed to the slices in steps that fit the
    /// memory budget. An error (including one from the stream) leaves the transaction only
    /// abortable: `commit` then refuses and commits nothing.
    pub fn append_stream(&mut self, table: &str, batches: impl IntoIterator<Item = Result<RecordBatch>>) -> Result<()> {
        self.usable()?;
        let distribution = self.entry(table)?.distribution.clone();
        if !self.splitters.contains_key(table) {
            let schema = self.txns[0].schema(table)?;
            // Round-robin starts where the generation points, so a stream of small commits
            // spreads over the slices instead of always filling the first.
            let rotation = self.record.generation as usize;
            let splitter =
                Splitter::new(&distribution, &schema, self.txns.len(), self.db.slices_per_node())?.rotated(rotation);
            self.splitters.insert(table.to_owned(), (schema, splitter));
        }
        let result = self.append_inner(table, batches);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn append_inner(&mut self, table: &str, batches: impl IntoIterator<Item = Result<RecordBatch>>) -> Result<()> {
        let step_bytes = (self.db.memory_budget().max(self.db.block_size()) / 2).max(1);
        let (_, splitter) = self.splitters.get_mut(table).expect("inserted above");
        for batch in batches {
            let batch = batch?;
            let bytes = crate::datagen::arrow_bytes(&batch);
            self.report.rows += batch.num_rows() as u64;
            self.report.arrow_bytes += bytes as u64;
            // A batch larger than the step budget is handed over in row ranges that fit.
            let steps = bytes.div_ceil(step_bytes).max(1);
            let rows_per_step = batch.num_rows().div_ceil(steps).max(1);
            for start in (0..batch.num_rows()).step_by(rows_per_step) {
                let chunk = batch.slice(start, rows_per_step.min(batch.num_rows() - start));
                let parts = splitter.split(&chunk)?;
                let txns = &mut self.txns;
                self.db.pool().install(|| {
                    txns.par_iter_mut().zip(parts).try_for_each(|(txn, part)| match part {
                        Some(p) => txn.append(table, &p),
                        None => Ok(()),
                    })
                })?;
            }
        }
        Ok(())
    }

    /// Drops a table; at commit its DEKs are crypto-shredded (see [`Database::drop_table`]).
    pub fn drop_table(&mut self, table: &str) -> Result<()> {
        self.usable()?;
        self.entry(table)?;
        for t in &mut self.txns {
            t.drop_table(table).inspect_err(|_| self.failed = true)?;
        }
        self.record.tables.retain(|t| t.name != table);
        self.splitters.remove(table);
        self.dropped = true;
        Ok(())
    }

    fn usable(&self) -> Result<()> {
        if self.failed {
            return Err(Error::TransactionFailed);
        }
        Ok(())
    }

    /// Commits everything as one atomic cluster commit. When a table was dropped, its DEKs are
    /// gone from every DEK-table file before this returns (the database key is rotated).
    pub fn commit(mut self) -> Result<CommitReport> {
        self.usable()?;
        let db = self.db;
        // Every slice's last blocks first, in parallel: each writer thread then syncs its slice
        // while the pool still seals the others.
        let txns = &mut self.txns;
        db.pool()
            .install(|| txns.par_iter_mut().try_for_each(|t| t.finish_blocks()))?;
        let mut point = ClusterCommitPoint::new(db, self.record.clone());
        let outcome =
            sealstore_blockstore::commit::commit(db.database_keys(), std::mem::take(&mut self.txns), &mut point)?;
        let mut report = std::mem::take(&mut self.report);
        report.blocks_written = outcome.blocks_written;
        report.generation = point.record().generation;
        if self.dropped {
            db.shred_released()?;
        }
        Ok(report)
    }
}

impl Database {
    /// After a commit that dropped tables: their DEKs are shredded at once (DEKs that other
    /// snapshots can still read stay), then the database key is rotated, which rewrites the DEK table without them
    /// and destroys the old DK, so no earlier copy of the table can unwrap them either.
    pub(crate) fn shred_released(&self) -> Result<()> {
        for s in self.stores() {
            s.release_dropped_keys()?;
        }
        self.keyring().rotate_database_key(self.database_keys())?;
        fsutil::sweep_temp_files(&self.database_keys().table_dir())?;
        Ok(())
    }
}

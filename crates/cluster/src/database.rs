//! One database across all slices: tables, atomic cluster commits, parallel scans.
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use sealstore_blockstore::{OpenOptions, Prepared, Store, StoreOptions, VerifyFailure};
use sealstore_keyring::{DatabaseKeys, Keyring};
use serde::Serialize;

use crate::commit::{CommitRecord, TableEntry};
use crate::config::ClusterConfig;
use crate::distribute::{Distribution, Splitter};
use crate::{Error, Result};

/// A point in the cluster commit protocol right after which a test can simulate a crash.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Blocks written and fsynced on every slice; nothing else.
    SlicesPrepared,
    /// DEK table appended and fsynced.
    DeksCommitted,
    /// Every slice's manifest N+1 written (not current).
    ManifestsWritten,
    /// The cluster commit record replaced (the commit point), slices not yet switched.
    CommitRecordWritten,
}

/// What an append did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppendReport {
    pub rows: u64,
    pub arrow_bytes: u64,
    pub blocks_written: u64,
    pub generation: u64,
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

/// What every database of a cluster shares: the worker pool and the load memory budget.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    pub pool: Arc<rayon::ThreadPool>,
    pub budget: Arc<std::sync::atomic::AtomicUsize>,
}

/// One database, open on every slice.
pub struct Database {
    name: String,
    dir: PathBuf,
    keys: Arc<DatabaseKeys>,
    slices: Vec<Mutex<Store>>,
    record: RwLock<CommitRecord>,
    slices_per_node: usize,
    pool: Arc<rayon::ThreadPool>,
    commit_lock: Mutex<()>,
    crash_at: Mutex<Option<CrashPoint>>,
    budget: Arc<std::sync::atomic::AtomicUsize>,
    block_size: usize,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .field("slices", &self.slices.len())
            .finish()
    }
}

pub(crate) fn database_dir(data_dir: &std::path::Path, name: &str) -> PathBuf {
    data_dir.join("databases").join(name)
}

impl Database {
    /// Creates the database key, its DEK table, an empty store on every slice, and the first
    /// commit record.
    pub(crate) fn create(
        name: &str,
        data_dir: &std::path::Path,
        config: &ClusterConfig,
        keyring: &Keyring,
        rt: &Runtime,
    ) -> Result<Self> {
        let dir = database_dir(data_dir, name);
        let keys = keyring.create_database(name, &dir.join("deks"))?;
        let mut slices = Vec::new();
        for s in 0..config.slice_count() {
            let options = StoreOptions {
                block_size: config.block_size,
                slice_id: s as u32,
            };
            slices.push(Mutex::new(Store::create(
                &config.slice_dir(s, name),
                keys.clone(),
                options,
            )?));
        }
        let record = CommitRecord {
            generation: 1,
            slices: vec![1; slices.len()],
            tables: Vec::new(),
        };
        record.write(&dir, &keys)?;
        Ok(Self::assemble(name, dir, keys, slices, record, config, rt))
    }

    /// Opens every slice at the generation the commit record names, and reclaims DEKs that no
    /// slice references (left by a crash between the DEK-table append and the commit point).
    pub(crate) fn open(
        name: &str,
        data_dir: &std::path::Path,
        config: &ClusterConfig,
        keyring: &Keyring,
        rt: &Runtime,
    ) -> Result<Self> {
        let dir = database_dir(data_dir, name);
        let keys = keyring.open_database(name, &dir.join("deks"))?;
        let record = CommitRecord::read(&dir, &keys)?;
        if record.slices.len() != config.slice_count() {
            return Err(Error::Corrupt {
                path: dir.join("COMMIT"),
                reason: format!(
                    "{} slices recorded, the layout has {}",
                    record.slices.len(),
                    config.slice_count()
                ),
            });
        }
        let mut slices = Vec::new();
        for (s, generation) in record.slices.iter().enumerate() {
            let options = OpenOptions {
                generation: Some(*generation),
                reclaim_keys: false,
            };
            slices.push(Mutex::new(Store::open(
                &config.slice_dir(s, name),
                keys.clone(),
                options,
            )?));
        }
        let referenced: std::collections::HashSet<u64> = slices
            .iter()
            .flat_map(|s| s.lock().manifest().blocks().map(|b| b.block_id).collect::<Vec<_>>())
            .collect();
        let stale: Vec<u64> = keys
            .block_ids()
            .into_iter()
            .filter(|id| !referenced.contains(id))
            .collect();
        keys.remove(&stale)?;
        Ok(Self::assemble(name, dir, keys, slices, record, config, rt))
    }

    fn assemble(
        name: &str,
        dir: PathBuf,
        keys: Arc<DatabaseKeys>,
        slices: Vec<Mutex<Store>>,
        record: CommitRecord,
        config: &ClusterConfig,
        rt: &Runtime,
    ) -> Self {
        Self {
            name: name.to_owned(),
            dir,
            keys,
            slices,
            record: RwLock::new(record),
            slices_per_node: config.slices_per_node as usize,
            pool: rt.pool.clone(),
            commit_lock: Mutex::new(()),
            crash_at: Mutex::new(None),
            budget: rt.budget.clone(),
            block_size: config.block_size,
        }
    }

    /// Makes the next commit stop dead at `point`, as if the process died there (no cleanup,
    /// no publish). The database must be dropped and reopened afterwards. Tests only.
    #[doc(hidden)]
    pub fn inject_crash(&self, point: Option<CrashPoint>) {
        *self.crash_at.lock() = point;
    }

    fn crash_here(&self, point: CrashPoint) -> Result<()> {
        if *self.crash_at.lock() == Some(point) {
            return Err(Error::Input(format!("injected crash at {point:?}")));
        }
        Ok(())
    }

    /// The in-flight memory budget of loads, in bytes (shared with the cluster).
    pub fn memory_budget(&self) -> usize {
        self.budget.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's keys (DEK table).
    pub fn keys(&self) -> &Arc<DatabaseKeys> {
        &self.keys
    }

    /// Number of slices.
    pub fn slice_count(&self) -> usize {
        self.slices.len()
    }

    /// Runs `f` with one slice's store locked (tests and tools).
    pub fn with_slice<T>(&self, slice: usize, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.slices[slice].lock())
    }

    /// The cluster commit generation.
    pub fn generation(&self) -> u64 {
        self.record.read().generation
    }

    /// Table names.
    pub fn tables(&self) -> Vec<String> {
        self.record.read().tables.iter().map(|t| t.name.clone()).collect()
    }

    fn entry(&self, table: &str) -> Result<TableEntry> {
        self.record
            .read()
            .table(table)
            .cloned()
            .ok_or_else(|| Error::UnknownTable(table.to_owned()))
    }

    /// Slices that hold the rows a scan must read (one copy for ALL tables).
    pub(crate) fn scan_slices(&self, table: &str) -> Result<Vec<usize>> {
        Ok(match self.entry(table)?.distribution {
            Distribution::All => vec![0],
            _ => (0..self.slices.len()).collect(),
        })
    }

    pub(crate) fn store(&self, slice: usize) -> parking_lot::MutexGuard<'_, Store> {
        self.slices[slice].lock()
    }

    pub(crate) fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    /// A table's schema.
    pub fn schema(&self, table: &str) -> Result<SchemaRef> {
        self.entry(table)?;
        Ok(self.slices[0].lock().schema(table)?)
    }

    /// A table's distribution style.
    pub fn distribution(&self, table: &str) -> Result<Distribution> {
        Ok(self.entry(table)?.distribution)
    }

    /// Rows of a table (one copy for ALL tables).
    pub fn row_count(&self, table: &str) -> Result<u64> {
        let mut rows = 0;
        for s in self.scan_slices(table)? {
            rows += self.slices[s].lock().row_count(table)?;
        }
        Ok(rows)
    }

    /// Rows of a table on each slice.
    pub fn rows_per_slice(&self, table: &str) -> Result<Vec<u64>> {
        self.entry(table)?;
        self.slices.iter().map(|s| Ok(s.lock().row_count(table)?)).collect()
    }

    /// Describes every table.
    pub fn table_infos(&self) -> Result<Vec<TableInfo>> {
        let record = self.record.read().clone();
        record
            .tables
            .iter()
            .map(|t| {
                let schema = self.slices[0].lock().schema(&t.name)?;
                let blocks = self
                    .slices
                    .iter()
                    .map(|s| {
                        s.lock()
                            .stats()
                            .tables
                            .iter()
                            .find(|x| x.name == t.name)
                            .map_or(0, |x| x.blocks)
                    })
                    .sum();
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

    /// Creates an empty table (one cluster commit).
    pub fn create_table(&self, table: &str, schema: &arrow_schema::Schema, distribution: Distribution) -> Result<()> {
        self.load(
            table,
            Some((schema.clone(), distribution)),
            std::iter::empty::<Result<RecordBatch>>(),
        )?;
        Ok(())
    }

    /// Appends batches to an existing table as one atomic cluster commit.
    pub fn append(&self, table: &str, batches: impl IntoIterator<Item = RecordBatch>) -> Result<AppendReport> {
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
    ) -> Result<AppendReport> {
        let _commit = self.commit_lock.lock();
        let mut record = self.record.read().clone();
        let (schema, distribution) = match create {
            Some((schema, dist)) => {
                if record.table(table).is_some() {
                    return Err(Error::TableExists(table.to_owned()));
                }
                sealstore_blockstore::validate_table_name(table)?;
                sealstore_blockstore::table_columns(&schema)?;
                record.tables.push(TableEntry {
                    name: table.to_owned(),
                    distribution: dist.clone(),
                });
                (Arc::new(schema), dist)
            }
            None => {
                let entry = record
                    .table(table)
                    .cloned()
                    .ok_or_else(|| Error::UnknownTable(table.to_owned()))?;
                (self.slices[0].lock().schema(table)?, entry.distribution)
            }
        };
        let creating = self.record.read().table(table).is_none();
        let mut splitter = Splitter::new(&distribution, &schema, self.slices.len(), self.slices_per_node)?;
        let mut stores: Vec<_> = self.slices.iter().map(|s| s.lock()).collect();
        let mut report = AppendReport::default();
        // The in-flight budget: sealed blocks queued per slice writer, and Arrow input per step.
        let budget = self
            .budget
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(self.block_size);
        let queued_blocks = (budget / 2 / (self.slices.len() * self.block_size)).max(1);
        let step_bytes = (budget / 2).max(1);
        let prepared: Vec<Prepared> = {
            let mut txns = Vec::with_capacity(stores.len());
            for s in stores.iter_mut() {
                txns.push(s.begin_pipelined(queued_blocks)?);
            }
            if creating {
                for t in &mut txns {
                    t.create_table(table, &schema)?;
                }
            }
            for batch in batches {
                let batch = batch?;
                let bytes = crate::datagen::arrow_bytes(&batch);
                report.rows += batch.num_rows() as u64;
                report.arrow_bytes += bytes as u64;
                // A batch larger than the step budget is handed over in row ranges that fit.
                let steps = bytes.div_ceil(step_bytes).max(1);
                let rows_per_step = batch.num_rows().div_ceil(steps).max(1);
                for start in (0..batch.num_rows()).step_by(rows_per_step) {
                    let chunk = batch.slice(start, rows_per_step.min(batch.num_rows() - start));
                    let parts = splitter.split(&chunk)?;
                    self.pool.install(|| {
                        txns.par_iter_mut().zip(parts).try_for_each(|(txn, part)| match part {
                            Some(p) => txn.append(table, &p),
                            None => Ok(()),
                        })
                    })?;
                }
            }
            self.pool
                .install(|| txns.into_par_iter().map(|t| t.prepare()).collect::<Result<Vec<_>, _>>())?
        };
        self.crash_here(CrashPoint::SlicesPrepared)?;
        let committed = (|| -> Result<CommitRecord> {
            self.keys.commit()?;
            self.crash_here(CrashPoint::DeksCommitted)?;
            self.pool.install(|| {
                stores
                    .par_iter()
                    .zip(&prepared)
                    .try_for_each(|(s, p)| s.write_prepared(p))
            })?;
            self.crash_here(CrashPoint::ManifestsWritten)?;
            record.generation += 1;
            record.slices = prepared.iter().map(Prepared::generation).collect();
            record.write(&self.dir, &self.keys)?;
            Ok(record)
        })();
        let record = match committed {
            Ok(r) => r,
            Err(e) => {
                self.keys.discard_pending();
                return Err(e);
            }
        };
        self.crash_here(CrashPoint::CommitRecordWritten)?;
        // Past the commit point: make it visible everywhere.
        *self.record.write() = record.clone();
        for (store, p) in stores.iter_mut().zip(prepared) {
            report.blocks_written += store.install(p)?.blocks_written;
        }
        report.generation = record.generation;
        Ok(report)
    }

    /// Drops a table on every slice (one cluster commit) and crypto-shreds its DEKs.
    pub fn drop_table(&self, table: &str) -> Result<()> {
        let _commit = self.commit_lock.lock();
        let mut record = self.record.read().clone();
        if record.table(table).is_none() {
            return Err(Error::UnknownTable(table.to_owned()));
        }
        record.tables.retain(|t| t.name != table);
        let mut stores: Vec<_> = self.slices.iter().map(|s| s.lock()).collect();
        let mut prepared = Vec::new();
        for s in stores.iter_mut() {
            let mut t = s.begin();
            t.drop_table(table)?;
            prepared.push(t.prepare()?);
        }
        for (s, p) in stores.iter().zip(&prepared) {
            s.write_prepared(p)?;
        }
        record.generation += 1;
        record.slices = prepared.iter().map(Prepared::generation).collect();
        record.write(&self.dir, &self.keys)?;
        *self.record.write() = record;
        for (s, p) in stores.iter_mut().zip(prepared) {
            s.install(p)?;
        }
        Ok(())
    }

    /// Authenticates every block of every slice; returns the failures.
    pub fn verify(&self) -> Vec<VerifyFailure> {
        self.pool
            .install(|| self.slices.par_iter().flat_map(|s| s.lock().verify()).collect())
    }

    /// Bytes of segment files on disk, over all slices.
    pub fn disk_bytes(&self) -> u64 {
        self.slices.iter().map(|s| s.lock().stats().bytes_on_disk).sum()
    }

    /// Blocks in use over all slices.
    pub fn blocks(&self) -> u64 {
        self.slices.iter().map(|s| s.lock().stats().slots_used).sum()
    }

    /// Segment files of every slice (tests and the demo's tamper step).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.slices.iter().flat_map(|s| s.lock().segment_paths()).collect()
    }
}

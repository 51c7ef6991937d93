//! One database across all slices: tables, atomic cluster commits, parallel scans.
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use sealstore_blockstore::{OpenOptions, Prepared, Store, StoreOptions, VerifyFailure};
use sealstore_keyring::{DatabaseKeys, Keyring, fsutil};
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
    /// Slices switched; the new generation not yet bound into the key store.
    SlicesInstalled,
    /// A re-key batch committed (the re-key is part done).
    RekeyBatchCommitted,
}

/// What a re-key did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RekeyReport {
    /// Blocks re-encrypted under fresh DEKs.
    pub blocks: u64,
    /// Cluster commits it took.
    pub commits: u64,
    /// Bytes of sealed blocks re-encrypted.
    pub bytes: u64,
    /// True when an interrupted re-key was resumed.
    pub resumed: bool,
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

/// Sealed blocks queued per slice writer under a load's in-flight `budget` (half of it; the
/// other half holds Arrow input).
pub(crate) fn in_flight_blocks(budget: usize, slices: usize, block_size: usize) -> usize {
    (budget.max(block_size) / 2 / (slices.max(1) * block_size)).max(1)
}

/// How a database is opened.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OpenMode {
    pub accept_rollback: bool,
    pub read_only: bool,
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
    keyring: Arc<Keyring>,
    keys: Arc<DatabaseKeys>,
    slices: Vec<Mutex<Store>>,
    record: RwLock<CommitRecord>,
    slices_per_node: usize,
    pool: Arc<rayon::ThreadPool>,
    commit_lock: Mutex<()>,
    crash_at: Mutex<Option<CrashPoint>>,
    budget: Arc<std::sync::atomic::AtomicUsize>,
    block_size: usize,
    read_only: bool,
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
        keyring: &Arc<Keyring>,
        rt: &Runtime,
    ) -> Result<Self> {
        let dir = database_dir(data_dir, name);
        let keys = keyring.create_database(name, &dir.join("deks"))?;
        let mut slices = Vec::new();
        let mut stores = Vec::new();
        for s in 0..config.slice_count() {
            let options = StoreOptions {
                block_size: config.block_size,
                slice_id: s as u32,
            };
            let store = Store::create(&config.slice_dir(s, name), keys.clone(), options)?;
            stores.push(store.identity().store_id_hex());
            slices.push(Mutex::new(store));
        }
        let record = CommitRecord {
            generation: 1,
            slices: vec![1; slices.len()],
            stores,
            tables: Vec::new(),
            dek_table: keys.position(),
            rekey: None,
        };
        record.write(&dir, &keys)?;
        keys.bind_generation(record.generation, false)?;
        Ok(Self::assemble(
            name, dir, keyring, keys, slices, record, config, rt, false,
        ))
    }

    /// Opens every slice at the generation the commit record names, and reclaims DEKs that no
    /// slice references (left by a crash between the DEK-table append and the commit point).
    ///
    /// Rollback detection: the commit record's generation must not be older than the one bound
    /// into the key store, the DEK table not older than the commit record says, each slice's
    /// manifest not older than the commit record names, and no referenced slot may hold an older
    /// block. `accept_rollback` accepts a consistently older state (a deliberate restore of the
    /// whole data directory) and re-binds it, audited.
    pub(crate) fn open(
        name: &str,
        data_dir: &std::path::Path,
        config: &ClusterConfig,
        keyring: &Arc<Keyring>,
        rt: &Runtime,
        mode: OpenMode,
    ) -> Result<Self> {
        let OpenMode {
            accept_rollback,
            read_only,
        } = mode;
        let dir = database_dir(data_dir, name);
        let keys = if read_only {
            keyring.open_database_read_only(name, &dir.join("deks"))?
        } else {
            keyring.open_database(name, &dir.join("deks"))?
        };
        let record = CommitRecord::read(&dir, &keys)?;
        let bound = keyring.bound_generation(name)?;
        if record.generation < bound && !accept_rollback {
            return Err(Error::Key(sealstore_keyring::Error::RollbackDetected {
                what: format!("cluster commit record {}", dir.join("COMMIT").display()),
                detail: format!(
                    "it is generation {}, the key store is bound to generation {bound}",
                    record.generation
                ),
            }));
        }
        let (dek_generation, dek_len) = keys.position();
        if (dek_generation, dek_len) < record.dek_table && !accept_rollback {
            return Err(Error::Key(sealstore_keyring::Error::RollbackDetected {
                what: format!("DEK table {}", keys.table_path().display()),
                detail: format!(
                    "it is generation {dek_generation} with {dek_len} bytes, the commit record names generation {} with {} bytes",
                    record.dek_table.0, record.dek_table.1
                ),
            }));
        }
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
            let expected = record.store_identity(s).ok_or_else(|| Error::Corrupt {
                path: dir.join("COMMIT"),
                reason: format!("no valid store id for slice {s}"),
            })?;
            let options = OpenOptions {
                generation: Some(*generation),
                reclaim_keys: false,
                expected: Some(expected),
                read_only,
                accept_rollback: false,
            };
            let store = Store::open(&config.slice_dir(s, name), keys.clone(), options)?;
            if !accept_rollback {
                store.check_segments()?;
            }
            slices.push(Mutex::new(store));
        }
        if record.generation != bound {
            // Forward: a crash between the commit point and binding. Backward: an accepted restore.
            keys.bind_generation(record.generation, accept_rollback)?;
        }
        if !read_only {
            // Every slice's identity and manifest is authenticated by now: DEKs none of them
            // references were left by a commit that crashed before its commit point.
            let referenced: std::collections::HashSet<u64> = slices
                .iter()
                .flat_map(|s| s.lock().manifest().blocks().map(|b| b.block_id).collect::<Vec<_>>())
                .collect();
            keys.remove_unreferenced(&referenced)?;
            fsutil::sweep_temp_files(&dir)?;
        }
        Ok(Self::assemble(
            name, dir, keyring, keys, slices, record, config, rt, read_only,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        name: &str,
        dir: PathBuf,
        keyring: &Arc<Keyring>,
        keys: Arc<DatabaseKeys>,
        slices: Vec<Mutex<Store>>,
        record: CommitRecord,
        config: &ClusterConfig,
        rt: &Runtime,
        read_only: bool,
    ) -> Self {
        Self {
            name: name.to_owned(),
            dir,
            keyring: keyring.clone(),
            keys,
            slices,
            record: RwLock::new(record),
            slices_per_node: config.slices_per_node as usize,
            pool: rt.pool.clone(),
            commit_lock: Mutex::new(()),
            crash_at: Mutex::new(None),
            budget: rt.budget.clone(),
            block_size: config.block_size,
            read_only,
        }
    }

    /// Before any commit: refuses when read-only, and when the key store's rollback binding
    /// lags the commit record (a binding that failed earlier is retried first; while it keeps
    /// failing nothing new commits, so no commit can be rolled back unnoticed).
    fn prepare_to_commit(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::Key(sealstore_keyring::Error::ReadOnly {
                what: format!("database `{}`", self.name),
            }));
        }
        let current = self.record.read().generation;
        if self.keyring.bound_generation(&self.name)? < current {
            self.keys.bind_generation(current, false)?;
        }
        Ok(())
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
        self.prepare_to_commit()?;
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
        let queued_blocks = in_flight_blocks(budget, self.slices.len(), self.block_size);
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
            // Every slice's last blocks first, then the waits: each writer thread syncs its
            // slice while the pool still seals the others.
            self.pool
                .install(|| txns.par_iter_mut().try_for_each(|t| t.finish_blocks()))?;
            self.pool
                .install(|| txns.into_par_iter().map(|t| t.prepare()).collect::<Result<Vec<_>, _>>())?
        };
        let (generation, blocks) = self.commit_slices(&mut stores, prepared, record)?;
        report.blocks_written = blocks;
        report.generation = generation;
        Ok(report)
    }

    /// The cluster commit protocol over prepared slice transactions (every slice): DEK table →
    /// manifests → commit record (the commit point) → slices switched → generation bound into
    /// the key store. Returns the new generation and the blocks written.
    fn commit_slices(
        &self,
        stores: &mut [parking_lot::MutexGuard<'_, Store>],
        prepared: Vec<Prepared>,
        mut record: CommitRecord,
    ) -> Result<(u64, u64)> {
        self.crash_here(CrashPoint::SlicesPrepared)?;
        let committed = (|| -> Result<(CommitRecord, Option<Error>)> {
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
            record.dek_table = self.keys.position();
            // Replaced but not known durable (the directory fsync failed) is still the commit
            // point: the new record is what the disk shows, so memory must follow it.
            let written = record.write(&self.dir, &self.keys);
            Ok((record, written.err()))
        })();
        let (record, not_durable) = match committed {
            Ok((r, None)) => (r, None),
            Ok((r, Some(Error::Key(e)))) if e.is_not_durable() => (r, Some(Error::Key(e))),
            Ok((_, Some(e))) | Err(e) => {
                self.keys.discard_pending();
                return Err(e);
            }
        };
        self.crash_here(CrashPoint::CommitRecordWritten)?;
        // Past the commit point: make it visible on every slice even if releasing old slots
        // and DEKs fails on one (an I/O error there only leaves unreferenced DEKs, which the next
        // open removes), then report the first error: the commit itself stands.
        *self.record.write() = record.clone();
        let mut blocks = 0;
        let mut first_error = None;
        for (store, p) in stores.iter_mut().zip(prepared) {
            blocks += p.allocated_blocks();
            if let Err(e) = store.install(p) {
                first_error.get_or_insert(e);
            }
        }
        self.crash_here(CrashPoint::SlicesInstalled)?;
        self.keys.bind_generation(record.generation, false)?;
        if let Some(e) = not_durable {
            return Err(e);
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        Ok((record.generation, blocks))
    }

    /// Drops a table on every slice (one cluster commit) and crypto-shreds it before returning:
    /// its DEKs leave the DEK table at once (scans still reading it end with a "table was
    /// dropped" error), then the database key is rotated, which rewrites the DEK table without
    /// them and destroys the old DK — so no earlier copy of the DEK table (a backup, a stray
    /// file) can unwrap them either. Leftover temporary files are swept.
    pub fn drop_table(&self, table: &str) -> Result<()> {
        let _commit = self.commit_lock.lock();
        self.prepare_to_commit()?;
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
        self.commit_slices(&mut stores, prepared, record)?;
        for s in stores.iter_mut() {
            s.release_retired_keys()?;
        }
        drop(stores);
        self.keyring.rotate_database_key(&self.keys)?;
        fsutil::sweep_temp_files(&self.keys.table_dir())?;
        Ok(())
    }

    /// Rotates this database's key: every DEK re-wrapped under a new DK, block data untouched
    /// (see [`Keyring::rotate_database_key`]). Scans keep running; loads wait.
    pub fn rotate_key(&self) -> Result<u32> {
        let _commit = self.commit_lock.lock();
        self.prepare_to_commit()?;
        Ok(self.keyring.rotate_database_key(&self.keys)?)
    }

    /// True while an interrupted re-key waits to be resumed.
    pub fn rekey_pending(&self) -> bool {
        self.record.read().rekey.is_some()
    }

    /// Re-encrypts every block (of `table`, or of the whole database) under fresh DEKs into new
    /// slots, in cluster commits of at most `batch_blocks` blocks per slice, so memory stays at
    /// one block buffer per slice and scans and loads interleave between commits. The old slots
    /// are freed and the old DEKs removed; at the end the DEK table is rewritten so no wrapped
    /// copy of an old DEK remains, and (whole database) the metadata key is replaced too.
    /// Resumable: the progress lives in the sealed commit record, and calling `rekey` again
    /// after a crash finishes the job (a different `table` than the interrupted one is refused).
    pub fn rekey(&self, table: Option<&str>, batch_blocks: usize, progress: &dyn Fn(u64, u64)) -> Result<RekeyReport> {
        let mut report = RekeyReport::default();
        if let Some(t) = table {
            self.entry(t)?;
        }
        let state = {
            let _commit = self.commit_lock.lock();
            self.prepare_to_commit()?;
            let record = self.record.read().clone();
            match &record.rekey {
                Some(state) => {
                    if state.table.as_deref() != table {
                        return Err(Error::InvalidOption(format!(
                            "an interrupted re-key of {} must be finished first",
                            state
                                .table
                                .as_deref()
                                .map_or("the whole database".to_owned(), |t| format!("table `{t}`"))
                        )));
                    }
                    report.resumed = true;
                    state.clone()
                }
                None => {
                    let state = crate::commit::RekeyState {
                        below_block_id: self.keys.next_block_id(),
                        table: table.map(str::to_owned),
                    };
                    if table.is_none() {
                        self.keys.add_metadata_key()?;
                    }
                    let mut next = record.clone();
                    next.rekey = Some(state.clone());
                    self.commit_record_only(next)?;
                    state
                }
            }
        };
        let total = self.blocks_below(state.table.as_deref(), state.below_block_id);
        progress(0, total);
        loop {
            let _commit = self.commit_lock.lock();
            let record = self.record.read().clone();
            let mut stores: Vec<_> = self.slices.iter().map(|s| s.lock()).collect();
            let txns: Vec<_> = stores.iter_mut().map(|s| s.begin()).collect();
            let results: Vec<(Prepared, usize)> = self.pool.install(|| {
                txns.into_par_iter()
                    .map(|mut t| {
                        let n = t.rekey(state.table.as_deref(), state.below_block_id, batch_blocks)?;
                        Ok((t.prepare()?, n))
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            let done: usize = results.iter().map(|(_, n)| n).sum();
            let prepared = results.into_iter().map(|(p, _)| p).collect();
            // The first batch always commits, so every manifest is resealed under the newest
            // metadata key before the old one is retired.
            if done == 0 && report.commits > 0 {
                drop(prepared);
                break;
            }
            self.commit_slices(&mut stores, prepared, record)?;
            report.commits += 1;
            report.blocks += done as u64;
            report.bytes += (done * self.block_size) as u64;
            progress(report.blocks, total.max(report.blocks));
            self.crash_here(CrashPoint::RekeyBatchCommitted)?;
            if done == 0 {
                break;
            }
        }
        let _commit = self.commit_lock.lock();
        // Every old DEK leaves the table now, even if a scan still holds a pre-re-key snapshot
        // (it ends with a clear error; its slots stay reserved until it is dropped), then the
        // table is rewritten so no wrapped copy of an old DEK (or old metadata key) remains.
        for s in &self.slices {
            s.lock().release_retired_keys()?;
        }
        if state.table.is_none() {
            self.keys.retire_metadata_keys()?;
        } else {
            self.keys.compact()?;
        }
        let mut next = self.record.read().clone();
        next.rekey = None;
        self.commit_record_only(next)?;
        self.keyring.audit().append(
            sealstore_keyring::AuditRecord::new(sealstore_keyring::AuditOp::Rekey, "data")
                .database(&self.name)
                .count(report.blocks)
                .detail(match &state.table {
                    Some(t) => format!("table `{t}` re-encrypted under fresh DEKs"),
                    None => "database re-encrypted under fresh DEKs and a new metadata key".to_owned(),
                }),
        )?;
        Ok(report)
    }

    /// Blocks with an id below `below` (of `table`, or all), over all slices.
    fn blocks_below(&self, table: Option<&str>, below: u64) -> u64 {
        self.slices
            .iter()
            .map(|s| {
                let m = s.lock().manifest();
                m.tables
                    .iter()
                    .filter(|t| table.is_none_or(|n| n == t.name))
                    .flat_map(|t| t.columns.iter().flat_map(|c| c.blocks.iter()))
                    .filter(|b| b.block_id < below)
                    .count() as u64
            })
            .sum()
    }

    /// Replaces the commit record without touching the slices (a new generation, bound).
    fn commit_record_only(&self, mut record: CommitRecord) -> Result<()> {
        record.generation += 1;
        record.dek_table = self.keys.position();
        let written = record.write(&self.dir, &self.keys);
        match &written {
            Err(Error::Key(e)) if e.is_not_durable() => {}
            Err(_) => return written,
            Ok(()) => {}
        }
        *self.record.write() = record.clone();
        self.keys.bind_generation(record.generation, false)?;
        written
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

//! One database across all slices: the catalog, opening with rollback checks, read snapshots
//! and the write path's entry points (see `write.rs` for transactions, `rekey.rs` for re-keying).
use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use sealstore_blockstore::{OpenOptions, Store, StoreOptions, VerifyFailure};
use sealstore_keyring::{DatabaseKeys, Keyring, fsutil};

use crate::commit::CommitRecord;
use crate::config::ClusterConfig;
use crate::distribute::Distribution;
use crate::scan::ClusterScan;
use crate::snapshot::{Committed, ReadSnapshot, TableInfo};
use crate::{Error, Result};

/// A point in the cluster commit protocol right after which a test can simulate a crash
/// (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
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
    #[cfg(feature = "test-hooks")]
    pub block_cipher: Option<sealstore_blockstore::BlockCipher>,
}

/// One database, open on every slice.
pub struct Database {
    name: Arc<str>,
    dir: PathBuf,
    keyring: Arc<Keyring>,
    keys: Arc<DatabaseKeys>,
    slices: Vec<Store>,
    /// The latest cluster commit, swapped in one step after every slice installed it.
    current: RwLock<Arc<Committed>>,
    slices_per_node: usize,
    pool: Arc<rayon::ThreadPool>,
    /// Held by the one open write transaction (and by key rotation and re-key steps).
    writer: Mutex<()>,
    #[cfg(feature = "test-hooks")]
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

/// Where one block sits on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlockLocation {
    pub slice: usize,
    pub block_id: u64,
    /// The segment file.
    pub path: PathBuf,
    /// Offset of the block's slot in it.
    pub offset: u64,
    /// Bytes of the slot (its size class).
    pub len: u64,
    /// Rows the block holds.
    pub rows: u64,
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
                #[cfg(feature = "test-hooks")]
                block_cipher: rt.block_cipher,
            };
            let store = Store::create(&config.slice_dir(s, name), keys.clone(), options)?;
            stores.push(store.identity().store_id_hex());
            slices.push(store);
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
                tag: 0,
                reclaim_keys: false,
                expected: Some(expected),
                read_only,
                accept_rollback: false,
                #[cfg(feature = "test-hooks")]
                block_cipher: rt.block_cipher,
            };
            let store = Store::open(&config.slice_dir(s, name), keys.clone(), options)?;
            if !accept_rollback {
                store.check_segments()?;
            }
            slices.push(store);
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
                .flat_map(|s| s.manifest().blocks().map(|b| b.block_id).collect::<Vec<_>>())
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
        slices: Vec<Store>,
        record: CommitRecord,
        config: &ClusterConfig,
        rt: &Runtime,
        read_only: bool,
    ) -> Self {
        let committed = Committed {
            record,
            slices: slices.iter().map(Store::snapshot).collect(),
        };
        Self {
            name: name.into(),
            dir,
            keyring: keyring.clone(),
            keys,
            slices,
            current: RwLock::new(Arc::new(committed)),
            slices_per_node: config.slices_per_node as usize,
            pool: rt.pool.clone(),
            writer: Mutex::new(()),
            #[cfg(feature = "test-hooks")]
            crash_at: Mutex::new(None),
            budget: rt.budget.clone(),
            block_size: config.block_size,
            read_only,
        }
    }

    /// Before any commit: refuses when read-only, and when the key store's rollback binding
    /// lags the commit record (a binding that failed earlier is retried first; while it keeps
    /// failing nothing new commits, so no commit can be rolled back unnoticed).
    pub(crate) fn prepare_to_commit(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::Key(sealstore_keyring::Error::ReadOnly {
                what: format!("database `{}`", self.name),
            }));
        }
        let current = self.current.read().record.generation;
        if self.keyring.bound_generation(&self.name)? < current {
            self.keys.bind_generation(current, false)?;
        }
        Ok(())
    }

    /// Makes the next commit stop dead at `point`, as if the process died there (no cleanup,
    /// no publish). The database must be dropped and reopened afterwards (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn inject_crash(&self, point: Option<CrashPoint>) {
        *self.crash_at.lock() = point;
    }

    #[cfg(feature = "test-hooks")]
    pub(crate) fn crash_here(&self, point: CrashPoint) -> Result<()> {
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

    /// The database's keys: DEK table, metadata keys, rollback binding (feature `test-hooks`;
    /// embedders see [`Database::dek_count`] and [`crate::Cluster::info`]).
    #[cfg(feature = "test-hooks")]
    pub fn keys(&self) -> &Arc<DatabaseKeys> {
        &self.keys
    }

    pub(crate) fn database_keys(&self) -> &Arc<DatabaseKeys> {
        &self.keys
    }

    /// Wrapped DEKs in the DEK table (one per live block, plus any a held snapshot still reads).
    pub fn dek_count(&self) -> usize {
        self.keys.len()
    }

    /// Where every block of `table`'s `column` sits at the latest commit: slice, block id,
    /// segment file and offset (for tools and the demo's tamper step; reading them changes
    /// nothing).
    pub fn block_locations(&self, table: &str, column: &str) -> Result<Vec<BlockLocation>> {
        let snapshot = self.begin_read();
        let mut out = Vec::new();
        for s in snapshot.scan_slices(table)? {
            let m = snapshot.slice(s).manifest();
            let t = m.table(table)?;
            let c = &t.columns[t.column_index(column)?];
            for b in &c.blocks {
                let (path, offset) = self.slices[s].slot_location(b.slot);
                out.push(BlockLocation {
                    slice: s,
                    block_id: b.block_id,
                    path,
                    offset,
                    len: self.slices[s].slot_len(b.slot) as u64,
                    rows: u64::from(b.rows),
                });
            }
        }
        Ok(out)
    }

    /// Number of slices.
    pub fn slice_count(&self) -> usize {
        self.slices.len()
    }

    /// Runs `f` with one slice's store (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn with_slice<T>(&self, slice: usize, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.slices[slice])
    }

    /// A read snapshot of the latest cluster commit (see [`ReadSnapshot`]): everything read
    /// through it answers at that one commit.
    pub fn begin_read(&self) -> ReadSnapshot {
        ReadSnapshot::new(
            self.name.clone(),
            self.current.read().clone(),
            self.pool.current_num_threads(),
        )
    }

    /// Starts a scan of `table` at the latest commit.
    pub fn scan(&self, table: &str) -> ClusterScan {
        self.begin_read().scan(table)
    }

    /// The cluster commit generation.
    pub fn generation(&self) -> u64 {
        self.current.read().record.generation
    }

    /// Table names at the latest commit.
    pub fn tables(&self) -> Vec<String> {
        self.begin_read().tables()
    }

    /// A table's schema.
    pub fn schema(&self, table: &str) -> Result<SchemaRef> {
        self.begin_read().schema(table)
    }

    /// A table's distribution style.
    pub fn distribution(&self, table: &str) -> Result<Distribution> {
        self.begin_read().distribution(table)
    }

    /// Rows of a table (one copy for ALL tables).
    pub fn row_count(&self, table: &str) -> Result<u64> {
        self.begin_read().row_count(table)
    }

    /// Rows of a table on each slice.
    pub fn rows_per_slice(&self, table: &str) -> Result<Vec<u64>> {
        self.begin_read().rows_per_slice(table)
    }

    /// Describes every table.
    pub fn table_infos(&self) -> Result<Vec<TableInfo>> {
        self.begin_read().table_infos()
    }

    pub(crate) fn committed_record(&self) -> CommitRecord {
        self.current.read().record.clone()
    }

    /// Makes a cluster commit visible to readers (the one step of a swap).
    pub(crate) fn publish(&self, committed: Arc<Committed>) {
        *self.current.write() = committed;
    }

    pub(crate) fn stores(&self) -> &[Store] {
        &self.slices
    }

    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub(crate) fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    pub(crate) fn writer_lock(&self) -> &Mutex<()> {
        &self.writer
    }

    pub(crate) fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    pub(crate) fn slices_per_node(&self) -> usize {
        self.slices_per_node
    }

    pub(crate) fn block_size(&self) -> usize {
        self.block_size
    }

    /// Rotates this database's key: every DEK re-wrapped under a new DK, block data untouched
    /// (see [`Keyring::rotate_database_key`]). Scans keep running; loads wait.
    pub fn rotate_key(&self) -> Result<u32> {
        let _writer = self.writer.lock();
        self.prepare_to_commit()?;
        Ok(self.keyring.rotate_database_key(&self.keys)?)
    }

    /// Authenticates every block of every slice; returns the failures.
    pub fn verify(&self) -> Vec<VerifyFailure> {
        self.pool
            .install(|| self.slices.par_iter().flat_map(Store::verify).collect())
    }

    /// Bytes of segment files on disk, over all slices.
    pub fn disk_bytes(&self) -> u64 {
        self.slices.iter().map(|s| s.stats().bytes_on_disk).sum()
    }

    /// Blocks in use over all slices.
    pub fn blocks(&self) -> u64 {
        self.slices.iter().map(|s| s.stats().slots_used).sum()
    }

    /// Segment files of every slice (tests and the demo's tamper step).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.slices.iter().flat_map(|s| s.segment_paths()).collect()
    }
}

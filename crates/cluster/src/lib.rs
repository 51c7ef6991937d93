//! sealstore's embedding API: a cluster of nodes and slices over one key hierarchy.
//!
//! ```no_run
//! use sealstore_cluster::{Cluster, InitOptions, Distribution, datagen};
//! # fn main() -> sealstore_cluster::Result<()> {
//! let cluster = Cluster::init("/tmp/sealstore-data".as_ref(), InitOptions::default())?;
//! let db = cluster.database("dev")?;
//! db.create_table("lineitem", &datagen::lineitem_schema(), Distribution::Even)?;
//! db.append("lineitem", datagen::Lineitem::new(100_000, 42))?;
//! let rows: usize = db.scan("lineitem").columns(&["l_orderkey"]).run()?.map(|b| b.map(|b| b.num_rows())).sum::<Result<_, _>>()?;
//! # Ok(()) }
//! ```
mod commit;
mod commit_point;
pub mod config;
mod database;
pub mod datagen;
mod distribute;
mod error;
pub mod import;
mod rekey;
mod scan;
mod snapshot;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sealstore_keyring::{KeyStoreBackend, Keyring, fsutil};
use serde::Serialize;

pub use config::{
    CLUSTER_CONFIG_FILE, CONFIG_FILE, ClusterConfig, DataMarker, KEYSTORE_ENV, ProviderConfig, default_keystore,
    resolve_keystore,
};
#[cfg(feature = "test-hooks")]
pub use database::CrashPoint;
pub use database::{BlockLocation, Database};
pub use distribute::{Distribution, MIN_PART_ROWS};
pub use error::{Error, Result};
pub use rekey::RekeyReport;
pub use scan::{ClusterScan, ClusterScanIter, ScanPart, SliceScanIter};
pub use sealstore_blockstore::{
    BytesLayout, CmpOp, ColumnType, Predicate, Scalar, ScanCounts, ScanStats, VerifyFailure, ZoneMap, parse_filter,
};
#[cfg(feature = "test-hooks")]
pub use sealstore_keyring::RotationStep;
pub use sealstore_keyring::{AuditRecord, AuditVerifyReport, HierarchyInfo};
pub use snapshot::{ReadSnapshot, SliceStatistics, TableInfo};
pub use write::{CommitReport, WriteTransaction};

/// The database every cluster starts with.
pub const DEFAULT_DATABASE: &str = "dev";

/// How to create a cluster.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Key-store directory (default: `<DIR>.keys/keystore`, beside the data directory).
    pub keystore: Option<PathBuf>,
    /// Local master key file, created if absent (default: `<DIR>.keys/master.key`).
    pub master_key: Option<PathBuf>,
    /// Environment variable holding the key file's passphrase (Argon2id); none by default.
    pub passphrase_env: Option<String>,
    pub nodes: u32,
    pub slices_per_node: u32,
    /// Bytes per block, a power of two from 64 KiB to 16 MiB.
    pub block_size: usize,
    /// Cluster id bound into the encryption context (default: random).
    pub cluster_id: Option<String>,
    /// One directory per node (default: `<DIR>/node-<n>`).
    pub node_dirs: Option<Vec<PathBuf>>,
    /// Worker threads (default: available cores).
    pub threads: Option<usize>,
    /// Another master-key provider instead of the local key file (PKCS#11, KMS).
    pub provider: Option<ProviderConfig>,
    /// Create the provider's key if it does not exist (a token key; a local file always is).
    pub create_key: bool,
    /// Blocks sealed by another AEAD than AES-256-GCM (the benchmarks' no-op baseline; feature
    /// `test-hooks` only, never in a product build).
    #[cfg(feature = "test-hooks")]
    pub block_cipher: Option<sealstore_blockstore::BlockCipher>,
}

impl OpenOptions {
    /// Default options with `threads` workers.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: Some(threads),
            ..Default::default()
        }
    }
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            keystore: None,
            master_key: None,
            passphrase_env: None,
            nodes: 2,
            slices_per_node: 2,
            block_size: sealstore_blockstore::block::DEFAULT_BLOCK_SIZE,
            cluster_id: None,
            node_dirs: None,
            threads: None,
            provider: None,
            create_key: false,
            #[cfg(feature = "test-hooks")]
            block_cipher: None,
        }
    }
}

/// How to open a cluster.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Worker threads (default: available cores).
    pub threads: Option<usize>,
    /// Accept data files older than the generation bound into the key store (a deliberate
    /// restore from backup); audited. Without it such a restore is refused as a rollback.
    pub accept_rollback: bool,
    /// The key store directory (default: `$SEALSTORE_KEYSTORE`, else `<DIR>.keys/keystore`).
    /// Never taken from the data directory.
    pub keystore: Option<PathBuf>,
    /// Change nothing in the data directory (scans, counts, `verify`, `info` on a read-only
    /// copy); every write is refused with a read-only error. The key store is still written
    /// (audit records, the rollback binding).
    pub read_only: bool,
    /// Blocks sealed by another AEAD than AES-256-GCM (see [`InitOptions::block_cipher`]).
    #[cfg(feature = "test-hooks")]
    pub block_cipher: Option<sealstore_blockstore::BlockCipher>,
}

/// Which keys [`Cluster::rotate`] renews.
#[derive(Debug, Clone, Default)]
pub struct RotateOptions {
    /// Switch to this master key (see [`ProviderConfig::next_version`] for the default).
    pub master: Option<ProviderConfig>,
    /// Rotate the cluster key.
    pub cluster: bool,
    /// Rotate these databases' keys.
    pub databases: Vec<String>,
}

/// What [`Cluster::rotate`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RotateReport {
    /// The master-key switch, if one was asked for.
    pub master_key: Option<MasterKeyChange>,
    /// The new cluster-key generation.
    pub cluster_key_generation: Option<u32>,
    /// Each rotated database key.
    pub databases: Vec<DatabaseKeyRotation>,
    /// Wall time of the whole rotation, in seconds.
    pub seconds: f64,
}

/// A master-key rotation: the provider key ids before and after.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MasterKeyChange {
    pub old_key_id: String,
    pub new_key_id: String,
}

/// One database-key rotation.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseKeyRotation {
    pub database: String,
    /// The new database-key generation.
    pub generation: u32,
    /// DEKs re-wrapped under the new key.
    pub deks_rewrapped: usize,
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    Ok(fsutil::remove_dir_all(dir)?)
}

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// Blocks that failed.
    pub blocks: Vec<BlockFailure>,
    /// Databases that could not be opened (corrupt manifest, DEK table, commit record, …).
    pub databases: Vec<DatabaseFailure>,
    /// The audit chain check.
    pub audit: std::result::Result<AuditVerifyReport, String>,
    /// Blocks checked.
    pub blocks_checked: u64,
}

/// A block that failed verification, in its database.
#[derive(Debug, Serialize)]
pub struct BlockFailure {
    pub database: String,
    #[serde(flatten)]
    pub failure: VerifyFailure,
}

/// A database that could not be opened.
#[derive(Debug, Serialize)]
pub struct DatabaseFailure {
    pub database: String,
    pub error: String,
}

impl VerifyReport {
    /// True when nothing failed.
    pub fn ok(&self) -> bool {
        self.blocks.is_empty() && self.databases.is_empty() && self.audit.is_ok()
    }
}

/// A summary for `info`.
#[derive(Debug, Serialize)]
pub struct ClusterInfo {
    pub data_dir: PathBuf,
    pub config: ClusterConfig,
    pub provider: String,
    pub hierarchy: HierarchyInfo,
    pub databases: Vec<DatabaseSummary>,
}

/// One database in `info`.
#[derive(Debug, Serialize)]
pub struct DatabaseSummary {
    pub name: String,
    pub tables: usize,
    pub blocks: u64,
    pub deks: usize,
    pub disk_bytes: u64,
    pub generation: u64,
}

/// An open cluster.
pub struct Cluster {
    data_dir: PathBuf,
    config: Mutex<ClusterConfig>,
    keyring: Arc<Keyring>,
    accept_rollback: bool,
    read_only: bool,
    pool: Arc<rayon::ThreadPool>,
    databases: Mutex<BTreeMap<String, Arc<Database>>>,
    budget: Arc<std::sync::atomic::AtomicUsize>,
    /// With a key server (no local key store to lock): the configuration directory's lock,
    /// exclusive for a writer, shared among read-only processes.
    _node_lock: Option<std::fs::File>,
    #[cfg(feature = "test-hooks")]
    block_cipher: Option<sealstore_blockstore::BlockCipher>,
}

/// Locks a key-server node's configuration directory: one writing process per cluster, any
/// number of read-only ones (their audit records go to the server, which orders them).
fn lock_node(config_dir: &Path, exclusive: bool) -> Result<std::fs::File> {
    let path = config_dir.join("LOCK");
    let file = fsutil::open_append(&path, 0o600)?;
    let locked = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Key(sealstore_keyring::Error::Locked { path })),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// Default in-flight memory budget of a load: Arrow input handed to the slices per step plus
/// sealed blocks queued for the slice writers.
pub const DEFAULT_MEMORY_BUDGET: usize = 64 << 20;

/// Blocks re-encrypted per slice and cluster commit during a re-key: bounds the work a crash
/// can lose and how long a load waits, not memory (one block buffer per slice).
pub const REKEY_BATCH_BLOCKS: usize = 64;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("data_dir", &self.data_dir)
            .field("cluster_id", &self.config.lock().cluster_id)
            .finish()
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

fn pool(threads: Option<usize>) -> Result<Arc<rayon::ThreadPool>> {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("sealstore-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| Error::InvalidOption(format!("thread pool: {e}")))
}

impl Cluster {
    /// Creates a cluster in `data_dir`: the master key file (if absent), the cluster key, the
    /// database `dev` on every slice, and `sealstore.json` (written last).
    pub fn init(data_dir: &Path, options: InitOptions) -> Result<Self> {
        let data_dir = absolute(data_dir)?;
        if fsutil::exists(&data_dir.join(CONFIG_FILE)) {
            return Err(Error::AlreadyInitialized { path: data_dir });
        }
        let keystore = absolute(
            &options
                .keystore
                .clone()
                .unwrap_or_else(|| config::default_keystore(&data_dir)),
        )?;
        let keys_dir = config::default_keystore(&data_dir)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let master_key = absolute(
            &options
                .master_key
                .clone()
                .unwrap_or_else(|| keys_dir.join("master.key")),
        )?;
        if keystore.starts_with(&data_dir) {
            return Err(Error::InvalidOption(
                "the key store must be outside the data directory".into(),
            ));
        }
        // A key server names the cluster (the node certificate's) and holds its keys.
        let remote = match &options.provider {
            Some(p) => p.connect_key_server(options.cluster_id.as_deref())?,
            None => None,
        };
        let cluster_id = match (&options.cluster_id, &remote) {
            (_, Some(remote)) => remote.cluster_id(),
            (Some(id), None) => id.clone(),
            (None, None) => {
                let mut r = [0u8; 6];
                sealstore_keyring::fill_random(&mut r)?;
                format!("sealstore-{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        // Every root is created, then canonicalised once: below them nothing follows a link.
        fsutil::create_dir_durable(&data_dir)?;
        let data_dir = fsutil::canonical_root(&data_dir)?;
        let node_dirs = match &options.node_dirs {
            Some(d) => d.iter().map(|p| absolute(p)).collect::<Result<Vec<_>>>()?,
            None => (0..options.nodes).map(|n| data_dir.join(format!("node-{n}"))).collect(),
        };
        let mut canonical_nodes = Vec::with_capacity(node_dirs.len());
        for dir in &node_dirs {
            fsutil::create_dir_durable(dir)?;
            canonical_nodes.push(fsutil::canonical_root(dir)?);
        }
        fsutil::create_dir_durable(&keystore)?;
        let keystore = fsutil::canonical_root(&keystore)?;
        let config = ClusterConfig {
            format: config::CONFIG_VERSION,
            cluster_id: cluster_id.clone(),
            data_dir: data_dir.clone(),
            keystore: keystore.clone(),
            provider: options
                .provider
                .clone()
                .unwrap_or_else(|| ProviderConfig::LocalKeyFile {
                    path: master_key.clone(),
                    passphrase_env: options.passphrase_env.clone(),
                }),
            previous_provider: None,
            nodes: options.nodes,
            slices_per_node: options.slices_per_node,
            node_dirs: canonical_nodes,
            block_size: options.block_size,
        };
        config.validate()?;
        config.require_keystore_outside_data()?;
        let node_lock = match remote {
            Some(_) => Some(lock_node(&keystore, true)?),
            None => None,
        };
        let keyring = match remote {
            Some(remote) => {
                // A fresh cluster on the server: no database yet (not a second `init` of one
                // that is in use elsewhere).
                if !remote.databases()?.is_empty() {
                    return Err(Error::InvalidOption(format!(
                        "cluster `{cluster_id}` on the key server already holds databases: it was initialised before (open its data directory instead)"
                    )));
                }
                Arc::new(Keyring::with_backend(remote))
            }
            None => {
                let local = matches!(config.provider, ProviderConfig::LocalKeyFile { .. });
                if local && let Some(parent) = master_key.parent() {
                    fsutil::create_dir_durable(parent)?;
                }
                let provider = config.provider.open(local || options.create_key)?;
                Arc::new(Keyring::create(&keystore, provider, &cluster_id)?)
            }
        };
        let cluster = Self {
            data_dir: data_dir.clone(),
            config: Mutex::new(config.clone()),
            keyring,
            accept_rollback: false,
            read_only: false,
            pool: pool(options.threads)?,
            databases: Mutex::new(BTreeMap::new()),
            budget: Arc::new(DEFAULT_MEMORY_BUDGET.into()),
            _node_lock: node_lock,
            #[cfg(feature = "test-hooks")]
            block_cipher: options.block_cipher,
        };
        cluster.create_database(DEFAULT_DATABASE)?;
        config.save()?;
        // The marker last: a crash before it leaves no half-made cluster that opens.
        config::DataMarker {
            format: config::CONFIG_VERSION,
            cluster_id,
        }
        .save(&data_dir)?;
        Ok(cluster)
    }

    /// Opens the cluster in `data_dir`, unwrapping the cluster key through the provider. The key store comes from the caller (see
    /// [`OpenOptions::keystore`]); the configuration in it must name this data directory and
    /// agree with the data directory's marker. If a master-key rotation was cut short, the
    /// configuration names both providers; the one the key store is wrapped under is used and
    /// the configuration is settled on it.
    pub fn open(data_dir: &Path, options: OpenOptions) -> Result<Self> {
        let data_dir = fsutil::canonical_root(&absolute(data_dir)?).map_err(|e| match e {
            sealstore_keyring::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::NotACluster {
                    path: data_dir.to_owned(),
                }
            }
            other => other.into(),
        })?;
        let marker = config::DataMarker::load(&data_dir)?;
        let keystore_dir = absolute(&config::resolve_keystore(&data_dir, options.keystore.as_deref()))?;
        let keystore_dir = fsutil::canonical_root(&keystore_dir).map_err(|_| Error::Config {
            path: keystore_dir.clone(),
            reason: "no key store here (give the cluster's key store with --keystore or SEALSTORE_KEYSTORE)".into(),
        })?;
        let mut config = ClusterConfig::load(&keystore_dir)?;
        let config_path = keystore_dir.join(config::CLUSTER_CONFIG_FILE);
        if config.keystore != keystore_dir {
            return Err(Error::Config {
                path: config_path,
                reason: format!(
                    "this configuration belongs to the key store {}, not {}",
                    config.keystore.display(),
                    keystore_dir.display()
                ),
            });
        }
        if config.data_dir != data_dir || config.cluster_id != marker.cluster_id {
            return Err(Error::Config {
                path: config_path,
                reason: format!(
                    "this key store belongs to cluster `{}` at {}, not to `{}` at {}",
                    config.cluster_id,
                    config.data_dir.display(),
                    marker.cluster_id,
                    data_dir.display()
                ),
            });
        }
        config.require_keystore_outside_data()?;
        if matches!(config.provider, ProviderConfig::KeyServer { .. }) {
            let lock = lock_node(&keystore_dir, !options.read_only)?;
            if let Some(remote) = config.provider.connect_key_server(Some(&config.cluster_id))? {
                let keyring = Arc::new(Keyring::with_backend(remote));
                return Self::opened(data_dir, config, keyring, &options, Some(lock));
            }
        }
        let provider = match config.previous_provider.clone() {
            None => config.provider.open(false)?,
            Some(previous) => {
                let stored = Keyring::stored_master_key_id(&config.keystore)?;
                let current = config.provider.open(false).ok();
                let (chosen, settled) = match current {
                    Some(p) if p.key_id() == stored => (p, config.provider.clone()),
                    _ => (previous.open(false)?, previous),
                };
                config.provider = settled;
                config.previous_provider = None;
                config.save()?;
                chosen
            }
        };
        let keyring = Arc::new(Keyring::open(&config.keystore, provider)?);
        Self::opened(data_dir, config, keyring, &options, None)
    }

    fn opened(
        data_dir: PathBuf,
        config: ClusterConfig,
        keyring: Arc<Keyring>,
        options: &OpenOptions,
        node_lock: Option<std::fs::File>,
    ) -> Result<Self> {
        keyring.require_cluster_id(&config.cluster_id)?;
        let cluster = Self {
            data_dir,
            config: Mutex::new(config),
            keyring,
            accept_rollback: options.accept_rollback,
            read_only: options.read_only,
            pool: pool(options.threads)?,
            databases: Mutex::new(BTreeMap::new()),
            budget: Arc::new(DEFAULT_MEMORY_BUDGET.into()),
            _node_lock: node_lock,
            #[cfg(feature = "test-hooks")]
            block_cipher: options.block_cipher,
        };
        if !cluster.read_only {
            cluster.remove_dropped_databases()?;
        }
        Ok(cluster)
    }

    /// Reads the audit log of the cluster in `data_dir` without opening the hierarchy (no
    /// master key needed, nothing written): the key store comes from the caller as in
    /// [`OpenOptions::keystore`] and must belong to this data directory. To check the chain,
    /// open the cluster and call [`Cluster::verify_audit`].
    pub fn read_audit_log(data_dir: &Path, keystore: Option<&Path>) -> Result<Vec<sealstore_keyring::AuditRecord>> {
        let data_dir = fsutil::canonical_root(&absolute(data_dir)?)?;
        let marker = config::DataMarker::load(&data_dir)?;
        let keystore_dir = fsutil::canonical_root(&absolute(&config::resolve_keystore(&data_dir, keystore))?)?;
        let config = ClusterConfig::load(&keystore_dir)?;
        if config.data_dir != data_dir || config.cluster_id != marker.cluster_id {
            return Err(Error::Config {
                path: keystore_dir.join(config::CLUSTER_CONFIG_FILE),
                reason: format!("this key store belongs to the cluster at {}", config.data_dir.display()),
            });
        }
        if let Some(remote) = config.provider.connect_key_server(Some(&config.cluster_id))? {
            return Ok(remote.audit_records()?);
        }
        Ok(sealstore_keyring::read_audit_records(&keystore_dir)?)
    }

    /// True when opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Every record of the audit log, oldest first.
    pub fn audit_records(&self) -> Result<Vec<AuditRecord>> {
        Ok(self.keyring.audit_records()?)
    }

    /// Checks the audit chain: every MAC under the audit key, and that it reaches the anchor in
    /// the key store.
    pub fn verify_audit(&self) -> Result<AuditVerifyReport> {
        Ok(self.keyring.verify_audit()?)
    }

    fn require_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::Key(sealstore_keyring::Error::ReadOnly {
                what: format!("cluster {}", self.data_dir.display()),
            }));
        }
        Ok(())
    }

    /// Deletes the files of databases whose key is gone from the key store (a drop that crashed
    /// after the crypto-shred, the commit point of a drop, but before the files were removed).
    fn remove_dropped_databases(&self) -> Result<()> {
        // The decision rests on the authenticated key store alone (a database it does not hold is
        // gone for good); the names come from the directory, so only valid names are acted on,
        // and removal never follows a link.
        let live = self.keyring.databases()?;
        for name in fsutil::list_dir(&self.data_dir.join("databases"))? {
            if sealstore_keyring::validate_database_name(&name).is_ok() && !live.contains(&name) {
                self.remove_database_files(&name)?;
            }
        }
        Ok(())
    }

    fn remove_database_files(&self, name: &str) -> Result<()> {
        let config = self.config();
        for s in 0..config.slice_count() {
            remove_dir_if_present(&config.slice_dir(s, name))?;
        }
        remove_dir_if_present(&database::database_dir(&self.data_dir, name))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The configuration (a copy: a master-key rotation may change the provider).
    pub fn config(&self) -> ClusterConfig {
        self.config.lock().clone()
    }

    /// The key hierarchy itself (feature `test-hooks`; embedders use [`Cluster::info`],
    /// [`Cluster::audit_records`] and [`Cluster::verify_audit`]).
    #[cfg(feature = "test-hooks")]
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Sets the in-flight memory budget of loads (bytes; at least one block). Loads hand the
    /// slices at most half of it in Arrow input per step and queue at most the other half as
    /// sealed blocks for the slice writers; writer state adds about one block and one page per
    /// column and slice.
    pub fn set_memory_budget(&self, bytes: usize) {
        self.budget.store(
            bytes.max(self.config().block_size),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Database names.
    pub fn databases(&self) -> Result<Vec<String>> {
        Ok(self.keyring.databases()?)
    }

    fn runtime(&self) -> database::Runtime {
        database::Runtime {
            pool: self.pool.clone(),
            budget: self.budget.clone(),
            #[cfg(feature = "test-hooks")]
            block_cipher: self.block_cipher,
        }
    }

    /// Creates a database on every slice.
    pub fn create_database(&self, name: &str) -> Result<Arc<Database>> {
        self.require_writable()?;
        let mut dbs = self.databases.lock();
        let db = Arc::new(Database::create(
            name,
            &self.data_dir,
            &self.config(),
            &self.keyring,
            &self.runtime(),
        )?);
        dbs.insert(name.to_owned(), db.clone());
        Ok(db)
    }

    /// Opens (once) and returns a database.
    pub fn database(&self, name: &str) -> Result<Arc<Database>> {
        let mut dbs = self.databases.lock();
        if let Some(db) = dbs.get(name) {
            return Ok(db.clone());
        }
        if !self.keyring.databases()?.iter().any(|d| d == name) {
            return Err(Error::UnknownDatabase(name.to_owned()));
        }
        let db = Arc::new(Database::open(
            name,
            &self.data_dir,
            &self.config(),
            &self.keyring,
            &self.runtime(),
            database::OpenMode {
                accept_rollback: self.accept_rollback,
                read_only: self.read_only,
            },
        )?);
        dbs.insert(name.to_owned(), db.clone());
        Ok(db)
    }

    /// Rotates the master key: the new provider (a local key file is created if absent) wraps
    /// the cluster key instead of the old one. The configuration names both providers until the
    /// key store is switched, so a crash at any point reopens with whichever one matches. The old
    /// key is not deleted: retire it once no backup of the key store needs it.
    pub fn rotate_master_key(&self, new: ProviderConfig) -> Result<MasterKeyChange> {
        self.require_writable()?;
        let old = self.config();
        let provider = new.open(true)?;
        let old_id = self
            .keyring
            .provider()
            .ok_or_else(|| {
                Error::InvalidOption(
                    "this cluster's master key is on its key server: rotate it there (sealstore keyserver rotate-master, the server stopped)"
                        .into(),
                )
            })?
            .key_id();
        if provider.key_id() == old_id {
            return Err(Error::InvalidOption(
                "the new master key is the current one; give another key".into(),
            ));
        }
        let mut staged = old.clone();
        staged.previous_provider = Some(old.provider.clone());
        staged.provider = new;
        staged.save()?;
        #[cfg(feature = "test-hooks")]
        self.keyring.crash_point(RotationStep::MasterConfigStaged)?;
        if let Err(e) = self.keyring.rotate_master_key(provider.clone()) {
            let _ = old.save();
            return Err(e.into());
        }
        #[cfg(feature = "test-hooks")]
        self.keyring.crash_point(RotationStep::MasterKeyRewrapped)?;
        let mut settled = staged;
        settled.previous_provider = None;
        settled.save()?;
        *self.config.lock() = settled;
        Ok(MasterKeyChange {
            old_key_id: old_id,
            new_key_id: provider.key_id(),
        })
    }

    /// Rotates the cluster key (every database key re-wrapped; one atomic key-store replace).
    pub fn rotate_cluster_key(&self) -> Result<u32> {
        self.require_writable()?;
        Ok(self.keyring.rotate_cluster_key()?)
    }

    /// Rotates one database's key (every DEK re-wrapped; blocks untouched).
    pub fn rotate_database_key(&self, name: &str) -> Result<u32> {
        self.database(name)?.rotate_key()
    }

    /// Rotates the keys `options` names, top tier first.
    pub fn rotate(&self, options: &RotateOptions) -> Result<RotateReport> {
        let start = std::time::Instant::now();
        let mut report = RotateReport::default();
        if let Some(master) = &options.master {
            report.master_key = Some(self.rotate_master_key(master.clone())?);
        }
        if options.cluster {
            report.cluster_key_generation = Some(self.rotate_cluster_key()?);
        }
        for name in &options.databases {
            let db = self.database(name)?;
            let generation = db.rotate_key()?;
            report.databases.push(DatabaseKeyRotation {
                database: name.clone(),
                generation,
                deks_rewrapped: db.dek_count(),
            });
        }
        report.seconds = start.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Re-encrypts a database's blocks (or one table's) under fresh DEKs; see [`Database::rekey`].
    pub fn rekey(&self, database: &str, table: Option<&str>, progress: &dyn Fn(u64, u64)) -> Result<RekeyReport> {
        self.database(database)?.rekey(table, REKEY_BATCH_BLOCKS, progress)
    }

    /// Drops a database and crypto-shreds it: its key leaves the key store first (after that
    /// nothing of it can be decrypted, the commit point of the drop), then its files are deleted
    /// (a crash in between is finished on the next open).
    pub fn drop_database(&self, name: &str) -> Result<()> {
        self.require_writable()?;
        if !self.keyring.databases()?.iter().any(|d| d == name) {
            return Err(Error::UnknownDatabase(name.to_owned()));
        }
        self.databases.lock().remove(name);
        self.keyring.drop_database(name)?;
        self.remove_database_files(name)
    }

    /// Layout, hierarchy and storage numbers (no secrets).
    pub fn info(&self) -> Result<ClusterInfo> {
        let mut databases = Vec::new();
        for name in self.databases()? {
            let db = self.database(&name)?;
            databases.push(DatabaseSummary {
                name,
                tables: db.tables().len(),
                blocks: db.blocks(),
                deks: db.dek_count(),
                disk_bytes: db.disk_bytes(),
                generation: db.generation(),
            });
        }
        let config = self.config();
        Ok(ClusterInfo {
            data_dir: self.data_dir.clone(),
            provider: config.provider.describe(),
            config,
            hierarchy: self.keyring.info()?,
            databases,
        })
    }

    /// Authenticates every block of every database, the manifests, DEK tables and commit
    /// records (by opening them) and the audit chain.
    pub fn verify(&self) -> VerifyReport {
        let mut report = VerifyReport {
            blocks: Vec::new(),
            databases: Vec::new(),
            audit: Err("not checked".into()),
            blocks_checked: 0,
        };
        let names = match self.databases() {
            Ok(names) => names,
            Err(e) => {
                report.databases.push(DatabaseFailure {
                    database: "*".into(),
                    error: e.to_string(),
                });
                Vec::new()
            }
        };
        for name in names {
            match self.database(&name) {
                Ok(db) => {
                    report.blocks_checked += db.blocks();
                    report
                        .blocks
                        .extend(db.verify().into_iter().map(|failure| BlockFailure {
                            database: name.clone(),
                            failure,
                        }));
                }
                Err(e) => report.databases.push(DatabaseFailure {
                    database: name,
                    error: e.to_string(),
                }),
            }
        }
        report.audit = self.keyring.verify_audit().map_err(|e| e.to_string());
        report
    }
}

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
#[doc(hidden)]
pub mod baseline;
mod commit;
pub mod config;
mod database;
pub mod datagen;
mod distribute;
mod error;
mod scan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sealstore_keyring::{AuditVerifyReport, HierarchyInfo, Keyring, fsutil};
use serde::Serialize;

pub use commit::{COMMIT_VERSION, CommitRecord, TableEntry};
pub use config::{CONFIG_FILE, ClusterConfig, ProviderConfig};
pub use database::{AppendReport, CrashPoint, Database, TableInfo};
pub use distribute::Distribution;
pub use error::{Error, Result};
pub use scan::{ClusterScan, ClusterScanIter};
pub use sealstore_blockstore::{Predicate, ScanCounts, ScanStats, VerifyFailure};

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
        }
    }
}

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// Blocks that failed, with their database.
    pub blocks: Vec<(String, VerifyFailure)>,
    /// Databases that could not be opened (corrupt manifest, DEK table, commit record, …).
    pub databases: Vec<(String, String)>,
    /// The audit chain check.
    pub audit: std::result::Result<AuditVerifyReport, String>,
    /// Blocks checked.
    pub blocks_checked: u64,
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
    config: ClusterConfig,
    keyring: Keyring,
    pool: Arc<rayon::ThreadPool>,
    databases: Mutex<BTreeMap<String, Arc<Database>>>,
    budget: Arc<std::sync::atomic::AtomicUsize>,
}

/// Default in-flight memory budget of a load: Arrow input handed to the slices per step plus
/// sealed blocks queued for the slice writers.
pub const DEFAULT_MEMORY_BUDGET: usize = 64 << 20;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("data_dir", &self.data_dir)
            .field("cluster_id", &self.config.cluster_id)
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
        if data_dir.join(CONFIG_FILE).exists() {
            return Err(Error::AlreadyInitialized { path: data_dir });
        }
        let base = data_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("sealstore")
            .to_owned();
        let keys_dir = data_dir.with_file_name(format!("{base}.keys"));
        let keystore = absolute(&options.keystore.clone().unwrap_or_else(|| keys_dir.join("keystore")))?;
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
        let cluster_id = match &options.cluster_id {
            Some(id) => id.clone(),
            None => {
                let mut r = [0u8; 6];
                sealstore_keyring::fill_random(&mut r)?;
                format!("sealstore-{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        let node_dirs = match &options.node_dirs {
            Some(d) => d.iter().map(|p| absolute(p)).collect::<Result<Vec<_>>>()?,
            None => (0..options.nodes).map(|n| data_dir.join(format!("node-{n}"))).collect(),
        };
        let config = ClusterConfig {
            format: config::CONFIG_VERSION,
            cluster_id: cluster_id.clone(),
            keystore: keystore.clone(),
            provider: ProviderConfig::LocalKeyFile {
                path: master_key.clone(),
                passphrase_env: options.passphrase_env.clone(),
            },
            nodes: options.nodes,
            slices_per_node: options.slices_per_node,
            node_dirs,
            block_size: options.block_size,
        };
        config.validate()?;
        fsutil::create_dir_durable(&data_dir)?;
        if let Some(parent) = master_key.parent() {
            fsutil::create_dir_durable(parent)?;
        }
        let provider = config.provider.open(true)?;
        let keyring = Keyring::create(&keystore, provider, &cluster_id)?;
        let cluster = Self {
            data_dir: data_dir.clone(),
            config: config.clone(),
            keyring,
            pool: pool(options.threads)?,
            databases: Mutex::new(BTreeMap::new()),
            budget: Arc::new(DEFAULT_MEMORY_BUDGET.into()),
        };
        cluster.create_database(DEFAULT_DATABASE)?;
        config.save(&data_dir)?;
        Ok(cluster)
    }

    /// Opens the cluster in `data_dir`, unwrapping the cluster key through the provider.
    pub fn open(data_dir: &Path, threads: Option<usize>) -> Result<Self> {
        let data_dir = absolute(data_dir)?;
        let config = ClusterConfig::load(&data_dir)?;
        let provider = config.provider.open(false)?;
        let keyring = Keyring::open(&config.keystore, provider)?;
        keyring.require_cluster_id(&config.cluster_id)?;
        Ok(Self {
            data_dir,
            config,
            keyring,
            pool: pool(threads)?,
            databases: Mutex::new(BTreeMap::new()),
            budget: Arc::new(DEFAULT_MEMORY_BUDGET.into()),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The key hierarchy.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Sets the in-flight memory budget of loads (bytes; at least one block). Loads hand the
    /// slices at most half of it in Arrow input per step and queue at most the other half as
    /// sealed blocks for the slice writers; writer state adds about one block and one page per
    /// column and slice.
    pub fn set_memory_budget(&self, bytes: usize) {
        self.budget
            .store(bytes.max(self.config.block_size), std::sync::atomic::Ordering::Relaxed);
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Database names.
    pub fn databases(&self) -> Vec<String> {
        self.keyring.databases()
    }

    fn runtime(&self) -> database::Runtime {
        database::Runtime {
            pool: self.pool.clone(),
            budget: self.budget.clone(),
        }
    }

    /// Creates a database on every slice.
    pub fn create_database(&self, name: &str) -> Result<Arc<Database>> {
        let mut dbs = self.databases.lock();
        let db = Arc::new(Database::create(
            name,
            &self.data_dir,
            &self.config,
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
        if !self.keyring.databases().iter().any(|d| d == name) {
            return Err(Error::UnknownDatabase(name.to_owned()));
        }
        let db = Arc::new(Database::open(
            name,
            &self.data_dir,
            &self.config,
            &self.keyring,
            &self.runtime(),
        )?);
        dbs.insert(name.to_owned(), db.clone());
        Ok(db)
    }

    /// Layout, hierarchy and storage numbers (no secrets).
    pub fn info(&self) -> Result<ClusterInfo> {
        let mut databases = Vec::new();
        for name in self.databases() {
            let db = self.database(&name)?;
            databases.push(DatabaseSummary {
                name,
                tables: db.tables().len(),
                blocks: db.blocks(),
                deks: db.keys().len(),
                disk_bytes: db.disk_bytes(),
                generation: db.generation(),
            });
        }
        Ok(ClusterInfo {
            data_dir: self.data_dir.clone(),
            config: self.config.clone(),
            provider: self.config.provider.describe(),
            hierarchy: self.keyring.info(),
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
        for name in self.databases() {
            match self.database(&name) {
                Ok(db) => {
                    report.blocks_checked += db.blocks();
                    report.blocks.extend(db.verify().into_iter().map(|f| (name.clone(), f)));
                }
                Err(e) => report.databases.push((name, e.to_string())),
            }
        }
        report.audit = self.keyring.audit().verify().map_err(|e| e.to_string());
        report
    }
}

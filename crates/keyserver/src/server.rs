//! The key server: a directory holding one key store per registered cluster (the cluster key
//! wrapped by the server's master-key provider, database keys wrapped by the cluster key, the
//! keyed audit chain, the authoritative commit generation per database), served to nodes over
//! mutual TLS.
//!
//! Layout of the server directory (see `docs/key-server.md`):
//! ```text
//! keyserver.json            registry: format, clusters [{id, added, revoked}]
//! clusters/<cluster-id>/    that cluster's key store (keystore.ssk, audit.log, LOCK)
//! refusals/                 audit log of calls refused before a cluster could be named
//! admin.sock                the running server's admin socket (see [`crate::admin`])
//! ```
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::CertificateDer;
use sealstore_keyring::backend::KeyStoreBackend;
use sealstore_keyring::{AuditLog, AuditOp, AuditRecord, LocalKeyStore, MasterKeyProvider, fsutil};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::admin::{AdminRequest, AdminResponse};
use crate::protocol::{self, PROTOCOL_VERSION, Reply, Request, Response, WireError};
use crate::tls::{certifies_cluster, identity_of, require_certifiable};
use crate::{Error, Result};

/// The registry file in the server directory.
pub const REGISTRY_FILE: &str = "keyserver.json";
/// Current registry format.
pub const REGISTRY_VERSION: u32 = 1;
const CLUSTERS_DIR: &str = "clusters";
const REFUSALS_DIR: &str = "refusals";
/// How long a node may use keys without hearing from the server, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A failed accept (no file descriptor left) is retried after this, not in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// One registered cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEntry {
    pub id: String,
    pub added: String,
    /// When the cluster's access was revoked (its nodes are refused from then on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Registry {
    format: u32,
    /// The server's master-key provider as its caller describes it (the CLI: its provider
    /// configuration — key file, PKCS#11 token key or KMS key; never a secret). `None`: the
    /// caller's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<serde_json::Value>,
    /// A master-key rotation begun and not finished (its target, recorded before any cluster
    /// key is re-wrapped): the next rotation must finish it with the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotating_to: Option<serde_json::Value>,
    clusters: Vec<ClusterEntry>,
}

/// A key server's directory.
#[derive(Debug, Clone)]
pub struct KeyServerDir {
    root: PathBuf,
}

impl KeyServerDir {
    /// Creates an empty key server directory; `provider` describes its master-key provider
    /// (see [`KeyServerDir::provider_config`]).
    pub fn init(root: &Path, provider: Option<serde_json::Value>) -> Result<Self> {
        fsutil::create_dir_durable(root)?;
        let root = fsutil::canonical_root(root)?;
        let dir = Self { root };
        if fsutil::exists(&dir.registry_path()) {
            return Err(Error::ServerDir {
                path: dir.root.clone(),
                reason: "already a key server directory".into(),
            });
        }
        fsutil::create_dir_durable(&dir.root.join(CLUSTERS_DIR))?;
        dir.save(&Registry {
            format: REGISTRY_VERSION,
            provider,
            rotating_to: None,
            clusters: Vec::new(),
        })?;
        Ok(dir)
    }

    /// Opens an existing key server directory.
    pub fn open(root: &Path) -> Result<Self> {
        let bad = |reason: String| Error::ServerDir {
            path: root.to_owned(),
            reason,
        };
        let root = fsutil::canonical_root(root).map_err(|e| bad(e.to_string()))?;
        let dir = Self { root };
        if !fsutil::exists(&dir.registry_path()) {
            return Err(bad("not a key server directory (sealstore keyserver init)".into()));
        }
        dir.load()?;
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn registry_path(&self) -> PathBuf {
        self.root.join(REGISTRY_FILE)
    }

    /// The key-store directory of a cluster.
    pub fn cluster_dir(&self, id: &str) -> PathBuf {
        self.root.join(CLUSTERS_DIR).join(id)
    }

    fn load(&self) -> Result<Registry> {
        let path = self.registry_path();
        let bytes = fsutil::read(&path)?;
        let registry: Registry = serde_json::from_slice(&bytes).map_err(|e| Error::ServerDir {
            path: path.clone(),
            reason: format!("malformed registry: {e}"),
        })?;
        if registry.format != REGISTRY_VERSION {
            return Err(Error::ServerDir {
                path,
                reason: format!("unsupported registry format {}", registry.format),
            });
        }
        Ok(registry)
    }

    fn save(&self, registry: &Registry) -> Result<()> {
        let json = serde_json::to_vec_pretty(registry).map_err(|e| Error::InvalidOption(e.to_string()))?;
        fsutil::write_atomic(&self.registry_path(), &json, 0o600)?;
        Ok(())
    }

    /// The registered clusters.
    pub fn clusters(&self) -> Result<Vec<ClusterEntry>> {
        Ok(self.load()?.clusters)
    }

    /// Registers a cluster: creates its key store (a fresh cluster key wrapped by `provider`'s
    /// master key), then records it in the registry. Its nodes need a certificate naming it.
    pub fn add_cluster(&self, id: &str, provider: Arc<dyn MasterKeyProvider>) -> Result<()> {
        require_certifiable(id)?;
        let mut registry = self.load()?;
        if registry.rotating_to.is_some() {
            // Its key would be wrapped under the old master key, which the rotation retires.
            return Err(Error::InvalidOption(
                "a master-key rotation is unfinished; finish it (keyserver rotate-master) before adding a cluster"
                    .into(),
            ));
        }
        if registry.clusters.iter().any(|c| c.id == id) {
            return Err(Error::InvalidOption(format!(
                "cluster `{id}` is already registered on this key server"
            )));
        }
        drop(LocalKeyStore::create(&self.cluster_dir(id), provider, id)?);
        registry.clusters.push(ClusterEntry {
            id: id.to_owned(),
            added: sealstore_keyring::now_rfc3339(),
            revoked: None,
        });
        self.save(&registry)
    }

    /// Registers a cluster whose key store already exists in the server directory (moved there
    /// by `keyserver import`).
    pub fn register_existing(&self, id: &str) -> Result<()> {
        let mut registry = self.load()?;
        if !registry.clusters.iter().any(|c| c.id == id) {
            registry.clusters.push(ClusterEntry {
                id: id.to_owned(),
                added: sealstore_keyring::now_rfc3339(),
                revoked: None,
            });
            self.save(&registry)?;
        }
        Ok(())
    }

    /// Records the description of the server's master-key provider.
    pub fn set_provider_config(&self, provider: serde_json::Value) -> Result<()> {
        let mut registry = self.load()?;
        registry.provider = Some(provider);
        self.save(&registry)
    }

    /// The description of the server's master-key provider recorded at `init` or by the last
    /// master-key rotation (`None`: the caller's default).
    pub fn provider_config(&self) -> Result<Option<serde_json::Value>> {
        Ok(self.load()?.provider)
    }

    /// The target of a master-key rotation that was interrupted (some cluster keys may already
    /// be wrapped under it): the next rotation must use this key.
    pub fn unfinished_rotation(&self) -> Result<Option<serde_json::Value>> {
        Ok(self.load()?.rotating_to)
    }

    /// Rotates the server's master key with the server stopped (a running server holds the key
    /// stores' locks: ask it through [`crate::admin`] instead). See [`Self::rotate_master_key_in`].
    pub fn rotate_master_key(
        &self,
        old: Arc<dyn MasterKeyProvider>,
        new: Arc<dyn MasterKeyProvider>,
        new_config: serde_json::Value,
    ) -> Result<usize> {
        let open = |id: &str| Ok(Arc::new(LocalKeyStore::open(&self.cluster_dir(id), old.clone())?));
        self.rotate_master_key_in(old.as_ref(), new, new_config, open)
    }

    /// Every cluster's key re-wrapped by `new` under its own context, each one an atomic
    /// key-store replace through the store `open` gives (opened under `old`), then the registry
    /// records `new_config` as the provider. The target is recorded first (`rotating_to`), and a
    /// cluster already under `new` is left as it is, so an interrupted rotation is finished by
    /// running it again with the same key. Returns how many were re-wrapped.
    fn rotate_master_key_in(
        &self,
        old: &dyn MasterKeyProvider,
        new: Arc<dyn MasterKeyProvider>,
        new_config: serde_json::Value,
        mut open: impl FnMut(&str) -> Result<Arc<LocalKeyStore>>,
    ) -> Result<usize> {
        let mut registry = self.load()?;
        if old.key_id() == new.key_id() {
            return Err(Error::InvalidOption(
                "the new master key is the current one; give another key".into(),
            ));
        }
        if let Some(pending) = registry.rotating_to.as_ref().filter(|p| **p != new_config) {
            return Err(Error::InvalidOption(format!(
                "an interrupted master-key rotation to {pending} is unfinished; finish it first (rotate-master without --new-master-key)"
            )));
        }
        registry.rotating_to = Some(new_config.clone());
        self.save(&registry)?;
        let mut rotated = 0;
        for cluster in &registry.clusters {
            if LocalKeyStore::stored_master_key_id(&self.cluster_dir(&cluster.id))? == new.key_id() {
                continue;
            }
            open(&cluster.id)?.rotate_master_key(new.clone())?;
            rotated += 1;
        }
        registry.provider = Some(new_config);
        registry.rotating_to = None;
        self.save(&registry)?;
        Ok(rotated)
    }

    /// Revokes a cluster: a running server refuses its nodes from the next call on (nodes
    /// stop within their lease).
    pub fn revoke_cluster(&self, id: &str) -> Result<()> {
        let mut registry = self.load()?;
        let entry = registry
            .clusters
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::UnknownCluster(id.to_owned()))?;
        if entry.revoked.is_none() {
            entry.revoked = Some(sealstore_keyring::now_rfc3339());
        }
        self.save(&registry)
    }

    fn modified(&self) -> Option<SystemTime> {
        std::fs::metadata(self.registry_path()).and_then(|m| m.modified()).ok()
    }
}

/// Opens a master-key provider from its registry description (see [`KeyServerDir::provider_config`]);
/// the key must exist. Given to [`serve`] so a running server can switch to a new master key.
#[derive(Clone)]
pub struct ProviderOpener(pub Arc<OpenProvider>);

/// See [`ProviderOpener`]: the error is the line to report.
pub type OpenProvider =
    dyn Fn(&serde_json::Value) -> std::result::Result<Arc<dyn MasterKeyProvider>, String> + Send + Sync;

impl std::fmt::Debug for ProviderOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderOpener")
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    /// How long a node may use its keys between two calls (its lease).
    pub lease: Duration,
    /// How to open a new master key for a rotation asked on the admin socket (`None`: the
    /// server refuses online rotations; stop it and rotate its directory).
    pub open_provider: Option<ProviderOpener>,
}

struct ServerState {
    dir: KeyServerDir,
    /// The current master key (replaced by an online rotation).
    provider: RwLock<Arc<dyn MasterKeyProvider>>,
    open_provider: Option<ProviderOpener>,
    lease: Duration,
    stores: Mutex<HashMap<String, Arc<LocalKeyStore>>>,
    registry: Mutex<(Option<SystemTime>, Registry)>,
    refusals: AuditLog,
}

/// A refused call: the message for the node (already audited).
struct Refusal(String);

impl ServerState {
    /// The registry, re-read when the file changed (`add-cluster`, `revoke-cluster` while the
    /// server runs).
    fn registry(&self) -> Result<Registry> {
        let mut cached = self.registry.lock();
        let modified = self.dir.modified();
        if modified.is_none() || modified != cached.0 {
            *cached = (modified, self.dir.load()?);
        }
        Ok(cached.1.clone())
    }

    fn store(&self, id: &str) -> sealstore_keyring::Result<Arc<LocalKeyStore>> {
        let mut stores = self.stores.lock();
        if let Some(store) = stores.get(id) {
            return Ok(store.clone());
        }
        let store = Arc::new(LocalKeyStore::open(
            &self.dir.cluster_dir(id),
            self.provider.read().clone(),
        )?);
        stores.insert(id.to_owned(), store.clone());
        Ok(store)
    }

    /// An online master-key rotation (the admin socket): the store cache stays locked, so calls
    /// wait the few milliseconds per cluster of the re-wraps instead of failing, and no store is
    /// opened under a key being retired; the server opens stores under the new key from then on.
    fn rotate_master(&self, config: serde_json::Value) -> std::result::Result<AdminResponse, String> {
        let opener = self
            .open_provider
            .as_ref()
            .ok_or("this server cannot open another master key while it serves; stop it and rotate its directory")?;
        let new = (opener.0)(&config)?;
        let mut stores = self.stores.lock();
        let old = self.provider.read().clone();
        let open = |id: &str| -> Result<Arc<LocalKeyStore>> {
            if let Some(store) = stores.get(id) {
                return Ok(store.clone());
            }
            let store = Arc::new(LocalKeyStore::open(&self.dir.cluster_dir(id), old.clone())?);
            stores.insert(id.to_owned(), store.clone());
            Ok(store)
        };
        let clusters = self
            .dir
            .rotate_master_key_in(old.as_ref(), new.clone(), config, open)
            .map_err(|e| e.to_string())?;
        *self.provider.write() = new.clone();
        Ok(AdminResponse::Rotated {
            old_key_id: old.key_id(),
            new_key_id: new.key_id(),
            clusters,
        })
    }

    fn refuse_unattributed(&self, client: &str, what: &str, reason: &str) {
        let mut record = AuditRecord::new(AuditOp::AuthFailure, "cluster")
            .client(client)
            .detail(what.to_owned());
        record.outcome = format!("failed: {reason}");
        let _ = self.refusals.append(record);
    }

    /// Answers one frame from a client whose certificate chain rustls has verified.
    fn handle(&self, cert: &CertificateDer<'_>, client: &str, body: &[u8]) -> Zeroizing<Vec<u8>> {
        let (response, keys) = match protocol::decode::<Request>(body) {
            Err(e) => {
                self.refuse_unattributed(client, "malformed request", &e);
                (Response::Err(WireError::Refused { message: e }), Vec::new())
            }
            Ok((request, keys)) => match self.authorise_and_run(cert, client, request, keys) {
                Ok((reply, keys)) => (Response::Ok(reply), keys),
                Err(Ok(Refusal(message))) => (Response::Err(WireError::Refused { message }), Vec::new()),
                Err(Err(e)) => (Response::Err(WireError::from_key_error(&e)), Vec::new()),
            },
        };
        let refs: Vec<&[u8; 32]> = keys.iter().map(|k| &**k).collect();
        protocol::encode(&response, &refs).unwrap_or_else(|e| {
            protocol::encode(&Response::Err(WireError::Failed { message: e }), &[]).unwrap_or_default()
        })
    }

    #[allow(clippy::type_complexity)]
    fn authorise_and_run(
        &self,
        cert: &CertificateDer<'_>,
        client: &str,
        request: Request,
        keys: protocol::FrameKeys,
    ) -> std::result::Result<(Reply, protocol::FrameKeys), std::result::Result<Refusal, sealstore_keyring::Error>> {
        let registry = self
            .registry()
            .map_err(|e| Err(sealstore_keyring::Error::Internal(e.to_string())))?;
        let Some(cluster) = request.cluster().map(str::to_owned) else {
            let Request::Hello { version } = request else {
                unreachable!("only hello names no cluster")
            };
            if version != PROTOCOL_VERSION {
                let message = format!("protocol version {version} is not {PROTOCOL_VERSION}");
                self.refuse_unattributed(client, "hello", &message);
                return Err(Ok(Refusal(message)));
            }
            let clusters = registry
                .clusters
                .iter()
                .filter(|c| c.revoked.is_none() && certifies_cluster(cert, &c.id))
                .map(|c| c.id.clone())
                .collect();
            return Ok((
                Reply::Hello {
                    version: PROTOCOL_VERSION,
                    clusters,
                },
                Vec::new(),
            ));
        };
        let op = request.name();
        let Some(entry) = registry.clusters.iter().find(|c| c.id == cluster) else {
            let message = format!("cluster `{cluster}` is not registered on this key server");
            self.refuse_unattributed(client, op, &message);
            return Err(Ok(Refusal(message)));
        };
        let store = self.store(&cluster).map_err(Err)?;
        let refuse = |message: String| {
            let mut record = AuditRecord::new(AuditOp::AuthFailure, "cluster")
                .client(client)
                .detail(op.to_owned());
            record.outcome = format!("failed: {message}");
            let _ = store.append_audit(record, true);
            Err(Ok(Refusal(message)))
        };
        if !certifies_cluster(cert, &cluster) {
            return refuse(format!(
                "the client certificate ({client}) does not name cluster `{cluster}` (it needs the name {})",
                crate::tls::cluster_dns_name(&cluster)
            ));
        }
        if let Some(when) = &entry.revoked {
            return refuse(format!("cluster `{cluster}` was revoked on this key server at {when}"));
        }
        if let Request::BindGeneration {
            name,
            generation,
            accept_rollback: true,
            ..
        } = &request
        {
            let bound = store.bound_generation(name).map_err(Err)?;
            if *generation < bound {
                return refuse(format!(
                    "database `{name}` stays at commit generation {bound}: a key server's generation never moves back (to {generation}); restore the data that matches it"
                ));
            }
        }
        if let Request::AppendAudit { record, durable, .. } = request {
            // The node's own record, attributed to its certificate.
            let record = (*record).client(client);
            store.append_audit(record, durable).map_err(Err)?;
            return Ok((Reply::Done, Vec::new()));
        }
        let result = self.run(&store, request, keys);
        let mut record = AuditRecord::new(AuditOp::KeyServerCall, "cluster")
            .client(client)
            .detail(op.to_owned());
        if let Ok(info) = store.info() {
            record = record.context(&info.context);
        }
        if let Err(e) = &result {
            record = record.failed(e);
        }
        // The key operations themselves are durable records already; the call record may
        // wait for the page cache.
        store.append_audit(record, false).map_err(Err)?;
        result.map_err(Err)
    }

    fn run(
        &self,
        store: &LocalKeyStore,
        request: Request,
        keys: protocol::FrameKeys,
    ) -> sealstore_keyring::Result<(Reply, protocol::FrameKeys)> {
        use sealstore_keyring::DatabaseKey;
        let one_key = || -> sealstore_keyring::Result<DatabaseKey> {
            match keys.as_slice() {
                [k] => Ok(DatabaseKey::from_bytes(**k)),
                _ => Err(sealstore_keyring::Error::Internal(format!(
                    "expected one key with the request, got {}",
                    keys.len()
                ))),
            }
        };
        let done = |()| (Reply::Done, Vec::new());
        Ok(match request {
            Request::Hello { .. } | Request::AppendAudit { .. } => unreachable!("answered before"),
            Request::Lease { .. } => (
                Reply::Lease {
                    ttl_ms: self.lease.as_millis() as u64,
                },
                Vec::new(),
            ),
            Request::Info { .. } => (
                Reply::Info {
                    info: Box::new(store.info()?),
                },
                Vec::new(),
            ),
            Request::Databases { .. } => (
                Reply::Names {
                    names: store.databases()?,
                },
                Vec::new(),
            ),
            Request::AddDatabaseKey { name, seals, .. } => done(store.add_database_key(&name, &one_key()?, seals)?),
            Request::DatabaseKeys { name, .. } => {
                let granted = store.database_keys(&name)?;
                let meta = granted.iter().map(|g| (g.generation, g.seals)).collect();
                let keys = granted.iter().map(|g| Zeroizing::new(*g.key.expose_secret())).collect();
                (Reply::Keys { keys: meta }, keys)
            }
            Request::KeepDatabaseKey {
                name,
                generation,
                detail,
                ..
            } => done(store.keep_database_key(&name, generation, &detail)?),
            Request::StageDatabaseKey {
                name,
                live_generation,
                seals,
                ..
            } => (
                Reply::Generation {
                    generation: store
                        .stage_database_key(&name, live_generation, &one_key()?, seals)?
                        .into(),
                },
                Vec::new(),
            ),
            Request::BoundGeneration { name, .. } => (
                Reply::Generation {
                    generation: store.bound_generation(&name)?,
                },
                Vec::new(),
            ),
            Request::BindGeneration {
                name,
                generation,
                accept_rollback,
                seals,
                ..
            } => {
                // A move back was refused above; the counter only moves forward.
                let _ = accept_rollback;
                done(store.bind_generation(&name, generation, false, seals)?)
            }
            Request::DropDatabase { name, .. } => done(store.drop_database(&name)?),
            Request::RotateClusterKey { .. } => (
                Reply::Generation {
                    generation: store.rotate_cluster_key()?.into(),
                },
                Vec::new(),
            ),
            Request::AuditRecords { .. } => (
                Reply::Records {
                    records: store.audit_records()?,
                },
                Vec::new(),
            ),
            Request::VerifyAudit { .. } => (
                Reply::Report {
                    report: store.verify_audit()?,
                },
                Vec::new(),
            ),
        })
    }
}

/// A running key server (see [`serve`]).
#[derive(Debug)]
pub struct Running {
    /// The address it listens on (the port is chosen by the OS for port 0).
    pub address: SocketAddr,
}

/// Serves `dir` until the process ends: every registered cluster's key store, opened with
/// `provider` on first use. `ready` is called with the bound address once it listens.
pub fn serve(
    dir: KeyServerDir,
    provider: Arc<dyn MasterKeyProvider>,
    options: ServeOptions,
    ready: impl FnOnce(&Running),
) -> Result<()> {
    if !options.listen.ip().is_loopback() && std::env::var_os("SEALSTORE_KEYSERVER_ANY_ADDRESS").is_none() {
        // Nothing stops a real deployment, but a test setup must never listen beyond loopback.
        return Err(Error::InvalidOption(format!(
            "--listen {}: not a loopback address (set SEALSTORE_KEYSERVER_ANY_ADDRESS=1 to listen there deliberately)",
            options.listen
        )));
    }
    let tls = crate::tls::server_config(&options.cert, &options.key, &options.client_ca)?;
    let refusals = AuditLog::open(&{
        let d = dir.path().join(REFUSALS_DIR);
        fsutil::create_dir_durable(&d)?;
        d
    })?;
    let registry = dir.load()?;
    let admin = crate::admin::bind(dir.path())?;
    let state = Arc::new(ServerState {
        dir,
        provider: RwLock::new(provider),
        open_provider: options.open_provider.clone(),
        lease: options.lease,
        stores: Mutex::new(HashMap::new()),
        registry: Mutex::new((None, registry)),
        refusals,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .thread_name("sealstore-keyserver")
        .build()
        .map_err(|e| Error::io("starting the key server's runtime", e))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|e| Error::io(format!("listening on {}", options.listen), e))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::io("reading the listening address", e))?;
        let admin =
            tokio::net::UnixListener::from_std(admin).map_err(|e| Error::io("listening on the admin socket", e))?;
        tokio::spawn(admin_loop(state.clone(), admin));
        ready(&Running { address });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await; // e.g. out of file descriptors
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        state.refuse_unattributed(&format!("peer {peer}"), "TLS handshake", &e.to_string());
                        return;
                    }
                    Err(_) => {
                        state.refuse_unattributed(&format!("peer {peer}"), "TLS handshake", "timed out");
                        return;
                    }
                };
                connection(state, stream).await;
            });
        }
    })
}

/// Answers the admin socket: one request per connection, from the server's own user only.
async fn admin_loop(state: Arc<ServerState>, listener: tokio::net::UnixListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(ACCEPT_BACKOFF).await; // e.g. out of file descriptors
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let own_user = stream
                .peer_cred()
                .is_ok_and(|c| c.uid() == rustix::process::geteuid().as_raw());
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read.take(crate::admin::MAX_MESSAGE));
            if tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line)
                .await
                .is_err()
            {
                return;
            }
            let response = if !own_user {
                state.refuse_unattributed("admin socket", "admin request", "not the server's user");
                AdminResponse::Failed {
                    message: "refused: only the key server's own user may use its admin socket".into(),
                }
            } else {
                match crate::admin::read_request(&line) {
                    Err(message) => AdminResponse::Failed { message },
                    Ok(AdminRequest::RotateMaster { provider }) => {
                        let state = state.clone();
                        match tokio::task::spawn_blocking(move || state.rotate_master(provider)).await {
                            Ok(Ok(done)) => done,
                            Ok(Err(message)) => AdminResponse::Failed { message },
                            Err(_) => AdminResponse::Failed {
                                message: "the rotation stopped unexpectedly".into(),
                            },
                        }
                    }
                }
            };
            let _ = write.write_all(&crate::admin::response_line(&response)).await;
        });
    }
}

async fn connection(state: Arc<ServerState>, mut stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    let Some(cert) = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
    else {
        return; // the verifier requires one; nothing to answer without it
    };
    let client = Arc::new(identity_of(&cert));
    let cert = Arc::new(cert);
    loop {
        let mut header = [0u8; 4];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let len = match protocol::frame_len(header) {
            Ok(len) if len <= protocol::MAX_REQUEST => len,
            _ => {
                state.refuse_unattributed(&client, "frame", "request frame length out of bounds");
                return;
            }
        };
        let mut body = Zeroizing::new(vec![0u8; len]);
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let (state2, cert2, client2) = (state.clone(), cert.clone(), client.clone());
        let Ok(frame) = tokio::task::spawn_blocking(move || state2.handle(&cert2, &client2, &body)).await else {
            return;
        };
        if stream.write_all(&frame).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstore_keyring::provider::LocalKeyFile;

    fn key_file(path: &Path) -> Arc<dyn MasterKeyProvider> {
        Arc::new(LocalKeyFile::open_or_create(path, None).unwrap())
    }

    #[test]
    fn an_interrupted_master_key_rotation_is_finished_by_running_it_again_with_its_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = KeyServerDir::init(&tmp.path().join("ks"), None).unwrap();
        let old = key_file(&tmp.path().join("mk1"));
        let new = key_file(&tmp.path().join("mk2"));
        for id in ["shop", "bee"] {
            dir.add_cluster(id, old.clone()).unwrap();
        }
        let target = serde_json::json!({"kind": "local", "path": "mk2"});
        // The first cluster is re-wrapped, then the run dies before the second.
        let mut opened = 0;
        let interrupted = dir.rotate_master_key_in(old.as_ref(), new.clone(), target.clone(), |id| {
            opened += 1;
            if opened == 2 {
                return Err(Error::InvalidOption("crash".into()));
            }
            Ok(Arc::new(LocalKeyStore::open(&dir.cluster_dir(id), old.clone())?))
        });
        assert!(interrupted.is_err());
        assert_eq!(dir.unfinished_rotation().unwrap(), Some(target.clone()));
        let err = dir.add_cluster("late", old.clone()).unwrap_err().to_string();
        assert!(err.contains("rotation is unfinished"), "{err}");
        // Another key is refused while the rotation is unfinished; the same key finishes it.
        let other = key_file(&tmp.path().join("mk3"));
        let err = dir
            .rotate_master_key(old.clone(), other, serde_json::json!({"kind": "local", "path": "mk3"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unfinished"), "{err}");
        assert_eq!(
            dir.rotate_master_key(old.clone(), new.clone(), target.clone()).unwrap(),
            1
        );
        assert_eq!(dir.unfinished_rotation().unwrap(), None);
        assert_eq!(dir.provider_config().unwrap(), Some(target));
        for id in ["shop", "bee"] {
            assert_eq!(
                LocalKeyStore::stored_master_key_id(&dir.cluster_dir(id)).unwrap(),
                new.key_id()
            );
            LocalKeyStore::open(&dir.cluster_dir(id), new.clone()).unwrap();
        }
    }
}

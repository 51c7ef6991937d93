//! `keyserver import`: moves a cluster's local key store to a key server and switches the
//! cluster to it, crash-safe and resumable (run it again after any interruption).
//!
//! 1. The local key store is opened (and so locked: no node process runs meanwhile).
//! 2. Its files are copied to a temporary directory on the server side, opened there, and the
//!    cluster key re-wrapped under the server's master key; the directory is then renamed into
//!    place and the cluster registered.
//! 3. The node's `cluster.json` names the key server (one atomic replace: the commit point).
//! 4. The local key store's files (wrapped keys, audit chain) are deleted.
//!
//! A crash before 3 leaves the cluster on its local key store (a server copy is replaced by the
//! next run); after 3 the next run only finishes 4.
use std::path::Path;
use std::sync::Arc;

use sealstore_keyring::{KeyStoreBackend, LocalKeyStore, MasterKeyProvider, fsutil};
use sealstore_keyserver::KeyServerDir;

use crate::config::{self, ClusterConfig, ProviderConfig};
use crate::{Error, Result};

/// The key-store files that move to the server (and are deleted locally afterwards).
const KEY_STORE_FILES: [&str; 2] = ["keystore.ssk", "audit.log"];

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The key store moved and the cluster now uses the key server.
    Imported { cluster_id: String },
    /// The cluster already used the key server; leftovers of the local key store were removed.
    AlreadyImported { cluster_id: String },
}

/// Moves the key store of the cluster in `data_dir` (its key store from `keystore` as for
/// [`crate::OpenOptions::keystore`]) into the key server directory `server`, whose master key
/// is `server_master_key`; `node` is the [`ProviderConfig::KeyServer`] the node uses from now on.
pub fn import_to_key_server(
    data_dir: &Path,
    keystore: Option<&Path>,
    server: &KeyServerDir,
    server_master_key: Arc<dyn MasterKeyProvider>,
    node: ProviderConfig,
) -> Result<ImportOutcome> {
    if !matches!(node, ProviderConfig::KeyServer { .. }) {
        return Err(Error::InvalidOption(
            "import needs the key server the node will use".into(),
        ));
    }
    let data_dir = fsutil::canonical_root(&std::path::absolute(data_dir).map_err(|e| Error::io(data_dir, e))?)?;
    let marker = config::DataMarker::load(&data_dir)?;
    let keystore_dir = fsutil::canonical_root(&config::resolve_keystore(&data_dir, keystore))?;
    let mut config = ClusterConfig::load(&keystore_dir)?;
    if config.data_dir != data_dir || config.cluster_id != marker.cluster_id {
        return Err(Error::Config {
            path: keystore_dir.join(config::CLUSTER_CONFIG_FILE),
            reason: format!("this key store belongs to the cluster at {}", config.data_dir.display()),
        });
    }
    let id = config.cluster_id.clone();
    if matches!(config.provider, ProviderConfig::KeyServer { .. }) {
        remove_local_key_files(&keystore_dir)?;
        return Ok(ImportOutcome::AlreadyImported { cluster_id: id });
    }
    if config.previous_provider.is_some() {
        return Err(Error::InvalidOption(
            "a master-key rotation of this cluster was interrupted: open the cluster once to settle it, then import"
                .into(),
        ));
    }
    sealstore_keyserver::tls::require_certifiable(&id)?;
    // Held until the configuration is switched: no node process can change the keys meanwhile.
    let local = LocalKeyStore::open(&keystore_dir, config.provider.open(false)?)?;
    let target = server.cluster_dir(&id);
    let registered = server.clusters()?.iter().any(|c| c.id == id);
    if registered {
        return Err(Error::InvalidOption(format!(
            "cluster `{id}` is already registered on the key server, and this node still uses its local key store: remove one of them first"
        )));
    }
    if fsutil::exists(&target) {
        // Left by an import that stopped before registering: this run's copy replaces it.
        fsutil::remove_dir_all(&target)?;
    }
    let staging = target.with_file_name(format!(".import-{id}"));
    if fsutil::exists(&staging) {
        fsutil::remove_dir_all(&staging)?;
    }
    fsutil::create_dir_durable(&staging)?;
    for name in KEY_STORE_FILES {
        let from = keystore_dir.join(name);
        if let Some(bytes) = fsutil::read_optional(&from)? {
            fsutil::write_new(&staging.join(name), &bytes, 0o600)?;
        }
    }
    fsutil::sync_dir(&staging)?;
    {
        // The copy, opened on the server side: the cluster key re-wrapped by the server's
        // master key (audited in the cluster's chain, which moves with it).
        let copy = LocalKeyStore::open(
            &staging,
            local
                .provider()
                .ok_or_else(|| Error::InvalidOption("the local key store has no master-key provider".into()))?,
        )?;
        copy.rotate_master_key(server_master_key)?;
    }
    std::fs::rename(&staging, &target).map_err(|e| Error::io(&target, e))?;
    fsutil::sync_dir(target.parent().unwrap_or(&target))?;
    server.register_existing(&id)?;
    config.provider = node;
    config.save()?;
    drop(local);
    remove_local_key_files(&keystore_dir)?;
    Ok(ImportOutcome::Imported { cluster_id: id })
}

fn remove_local_key_files(keystore_dir: &Path) -> Result<()> {
    for name in KEY_STORE_FILES {
        let path = keystore_dir.join(name);
        if fsutil::exists(&path) {
            fsutil::remove_file(&path)?;
        }
    }
    fsutil::sync_dir(keystore_dir)?;
    Ok(())
}

//! The cluster's configuration — layout, node directories, key-store path and master-key
//! provider — lives in `cluster.json` **in the key store directory**, which the data-directory
//! attacker cannot write: nothing read from the data directory decides where keys come from,
//! which PKCS#11 module is loaded or which files are deleted. The data directory holds only a
//! marker, `sealstore.json` (`{format, cluster_id}`), checked against the configuration.
//! Never a secret: a passphrase or PIN is named by the environment variable that holds it.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealstore_keyring::provider::LocalKeyFile;
use sealstore_keyring::{MasterKeyProvider, fsutil};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Name of the marker file in the data directory.
pub const CONFIG_FILE: &str = "sealstore.json";
/// Name of the configuration file in the key store directory.
pub const CLUSTER_CONFIG_FILE: &str = "cluster.json";
/// Current configuration format.
pub const CONFIG_VERSION: u32 = 2;
/// Environment variable naming the key store directory (like `--keystore`).
pub const KEYSTORE_ENV: &str = "SEALSTORE_KEYSTORE";

/// Where the master key lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProviderConfig {
    /// A local key file (mode 0600), optionally passphrase-protected.
    LocalKeyFile {
        path: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passphrase_env: Option<String>,
    },
    /// An AES-256 key in a PKCS#11 token (feature `pkcs11`); the PIN comes from `pin_env`.
    Pkcs11 {
        module: PathBuf,
        token_label: String,
        key_label: String,
        pin_env: String,
    },
    /// A symmetric key in a KMS reached over the AWS KMS API (feature `kms`); credentials from
    /// the standard AWS chain.
    Kms {
        key_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
    /// No key on this machine: the cluster's key records live on a key server reached over
    /// mutual TLS (`sealstore keyserver`); the master key is the server's. The paths name the
    /// CA that signed the server's certificate and this node's certificate and private key.
    KeyServer {
        address: String,
        ca: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    },
}

/// A feature this binary was built without.
#[allow(dead_code)]
fn not_built(kind: &str, feature: &str) -> Error {
    Error::InvalidOption(format!(
        "this sealstore was built without {kind} support (rebuild with --features {feature})"
    ))
}

impl ProviderConfig {
    /// Opens the provider (creating a local key file, or a token key, when `create` and it is
    /// absent).
    pub fn open(&self, create: bool) -> Result<Arc<dyn MasterKeyProvider>> {
        match self {
            #[cfg(feature = "pkcs11")]
            ProviderConfig::Pkcs11 {
                module,
                token_label,
                key_label,
                pin_env,
            } => {
                let config = sealstore_keyring::provider::Pkcs11Config {
                    module: module.clone(),
                    token_label: token_label.clone(),
                    key_label: key_label.clone(),
                    pin_env: pin_env.clone(),
                };
                Ok(Arc::new(sealstore_keyring::provider::Pkcs11Provider::open(
                    config, create,
                )?))
            }
            #[cfg(not(feature = "pkcs11"))]
            ProviderConfig::Pkcs11 { .. } => Err(not_built("PKCS#11", "pkcs11")),
            #[cfg(feature = "kms")]
            ProviderConfig::Kms {
                key_id,
                endpoint,
                region,
            } => {
                let config = sealstore_keyring::provider::KmsConfig {
                    key_id: key_id.clone(),
                    endpoint: endpoint.clone(),
                    region: region.clone(),
                };
                Ok(Arc::new(sealstore_keyring::provider::KmsProvider::open(config)?))
            }
            #[cfg(not(feature = "kms"))]
            ProviderConfig::Kms { .. } => Err(not_built("KMS", "kms")),
            ProviderConfig::KeyServer { address, .. } => Err(Error::InvalidOption(format!(
                "the master key of this cluster is on its key server {address}, not on this machine"
            ))),
            ProviderConfig::LocalKeyFile { path, passphrase_env } => {
                // Wiped when dropped (argon2 is built with `zeroize` for its own copies).
                let passphrase = match passphrase_env {
                    Some(var) => Some(zeroize::Zeroizing::new(std::env::var(var).map_err(|_| {
                        Error::InvalidOption(format!("the passphrase environment variable {var} is not set"))
                    })?)),
                    None => None,
                };
                let p = passphrase.as_ref().map(|s| s.as_str());
                let provider = if create {
                    LocalKeyFile::open_or_create(path, p)?
                } else {
                    LocalKeyFile::open(path, p)?
                };
                Ok(Arc::new(provider))
            }
        }
    }

    /// The provider a master-key rotation switches to by default: for a local key file, a new
    /// file beside it with the next version suffix (`master.key` → `master.v2.key` → …); for a
    /// token, a new key label (`mk` → `mk.v2`). A KMS key has no default successor: it rotates its
    /// own material behind the same id, or the caller names a new key id.
    pub fn next_version(&self) -> Result<Self> {
        Ok(match self {
            ProviderConfig::LocalKeyFile { path, passphrase_env } => {
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("master");
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("key");
                let (base, version) = match stem.rsplit_once(".v") {
                    Some((b, v)) if v.parse::<u32>().is_ok() => (b, v.parse::<u32>().unwrap_or(1)),
                    _ => (stem, 1),
                };
                let mut next = version + 1;
                let mut candidate = path.with_file_name(format!("{base}.v{next}.{ext}"));
                while candidate.exists() {
                    next += 1;
                    candidate = path.with_file_name(format!("{base}.v{next}.{ext}"));
                }
                ProviderConfig::LocalKeyFile {
                    path: candidate,
                    passphrase_env: passphrase_env.clone(),
                }
            }
            ProviderConfig::Pkcs11 {
                module,
                token_label,
                key_label,
                pin_env,
            } => ProviderConfig::Pkcs11 {
                module: module.clone(),
                token_label: token_label.clone(),
                key_label: next_label(key_label),
                pin_env: pin_env.clone(),
            },
            ProviderConfig::KeyServer { .. } => {
                return Err(Error::InvalidOption(
                    "the master key of this cluster is on its key server: rotate it there (sealstore keyserver rotate-master, the server stopped)".into(),
                ));
            }
            ProviderConfig::Kms { .. } => {
                return Err(Error::InvalidOption(
                    "a KMS master key has no next version to create: name the new key id (--new-master-key), or let the KMS rotate the key material (EnableKeyRotation) under the same id".into(),
                ));
            }
        })
    }

    /// The same provider with another key: a key file path, a token key label, or a KMS key id.
    pub fn with_key(&self, key: &str) -> Self {
        let mut next = self.clone();
        match &mut next {
            ProviderConfig::LocalKeyFile { path, .. } => *path = PathBuf::from(key),
            ProviderConfig::Pkcs11 { key_label, .. } => *key_label = key.to_owned(),
            ProviderConfig::Kms { key_id, .. } => *key_id = key.to_owned(),
            ProviderConfig::KeyServer { .. } => {}
        }
        next
    }

    /// A one-line description (no secrets).
    pub fn describe(&self) -> String {
        match self {
            ProviderConfig::LocalKeyFile {
                path,
                passphrase_env: None,
            } => format!("local key file {}", path.display()),
            ProviderConfig::LocalKeyFile {
                path,
                passphrase_env: Some(v),
            } => {
                format!("local key file {} (passphrase from ${v})", path.display())
            }
            ProviderConfig::Pkcs11 {
                module,
                token_label,
                key_label,
                pin_env,
            } => format!(
                "PKCS#11 token `{token_label}`, key `{key_label}` (module {}, PIN from ${pin_env})",
                module.display()
            ),
            ProviderConfig::Kms {
                key_id,
                endpoint,
                region,
            } => format!(
                "KMS key {key_id} at {} (region {})",
                endpoint.as_deref().unwrap_or("the AWS endpoint"),
                region.as_deref().unwrap_or("from the AWS configuration")
            ),
            ProviderConfig::KeyServer { address, cert, .. } => format!(
                "key server https://{} (node certificate {})",
                address.trim_start_matches("https://"),
                cert.display()
            ),
        }
    }

    /// Connects to the key server this configuration names, as a node of `cluster` (`None`:
    /// the one cluster the node certificate names). `None` for the other providers.
    pub fn connect_key_server(
        &self,
        cluster: Option<&str>,
    ) -> Result<Option<Arc<sealstore_keyserver::RemoteKeyStore>>> {
        match self {
            ProviderConfig::KeyServer { address, ca, cert, key } => Ok(Some(Arc::new(
                sealstore_keyserver::RemoteKeyStore::connect(address, ca, cert, key, cluster)?,
            ))),
            _ => Ok(None),
        }
    }
}

/// `mk` → `mk.v2` → `mk.v3`.
fn next_label(label: &str) -> String {
    match label.rsplit_once(".v") {
        Some((base, v)) if v.parse::<u32>().is_ok() => format!("{base}.v{}", v.parse::<u32>().unwrap_or(1) + 1),
        _ => format!("{label}.v2"),
    }
}

/// The cluster's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub format: u32,
    pub cluster_id: String,
    /// The data directory this configuration belongs to (canonical).
    pub data_dir: PathBuf,
    pub keystore: PathBuf,
    pub provider: ProviderConfig,
    /// The provider being rotated away from, present only while a master-key rotation is in
    /// progress (a crash there is settled on the next open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_provider: Option<ProviderConfig>,
    pub nodes: u32,
    pub slices_per_node: u32,
    /// One directory per node (default `<data>/node-<n>`).
    pub node_dirs: Vec<PathBuf>,
    pub block_size: usize,
}

/// The marker in the data directory: which cluster it belongs to. Unauthenticated, so it only
/// has to agree with the configuration; it never decides anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataMarker {
    pub format: u32,
    pub cluster_id: String,
}

impl DataMarker {
    /// Reads the marker; a missing one means "not a sealstore data directory".
    pub fn load(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(CONFIG_FILE);
        let bytes = fsutil::read_optional(&path)?.ok_or_else(|| Error::NotACluster {
            path: data_dir.to_owned(),
        })?;
        let marker: DataMarker = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
            path: path.clone(),
            reason: format!(
                "{e} (a format-1 directory from an older sealstore kept its configuration here; re-create the cluster with this version)"
            ),
        })?;
        if marker.format != CONFIG_VERSION {
            return Err(Error::Config {
                path,
                reason: format!("unsupported format {}", marker.format),
            });
        }
        Ok(marker)
    }

    /// Writes the marker durably.
    pub fn save(&self, data_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidOption(e.to_string()))?;
        fsutil::write_atomic(&data_dir.join(CONFIG_FILE), &json, 0o644)?;
        Ok(())
    }
}

/// The key store a data directory uses when the caller names none: `<DIR>.keys/keystore`,
/// beside it. Derived from the path the caller gave, never from anything inside it.
pub fn default_keystore(data_dir: &Path) -> PathBuf {
    let base = data_dir.file_name().and_then(|n| n.to_str()).unwrap_or("sealstore");
    data_dir.with_file_name(format!("{base}.keys")).join("keystore")
}

/// The key store the caller chose: `explicit` (a flag or option), else `$SEALSTORE_KEYSTORE`,
/// else [`default_keystore`].
pub fn resolve_keystore(data_dir: &Path, explicit: Option<&Path>) -> PathBuf {
    match explicit {
        Some(p) => p.to_owned(),
        None => match std::env::var_os(KEYSTORE_ENV) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => default_keystore(data_dir),
        },
    }
}

impl ClusterConfig {
    /// Reads `cluster.json` from the key store directory.
    pub fn load(keystore_dir: &Path) -> Result<Self> {
        let path = keystore_dir.join(CLUSTER_CONFIG_FILE);
        let bytes = fsutil::read_optional(&path)?.ok_or_else(|| Error::Config {
            path: path.clone(),
            reason: "no cluster configuration in this key store (wrong --keystore?)".into(),
        })?;
        let config: ClusterConfig = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if config.format != CONFIG_VERSION {
            return Err(Error::Config {
                path,
                reason: format!("unsupported format {}", config.format),
            });
        }
        config.validate().map_err(|e| Error::Config {
            path,
            reason: e.to_string(),
        })?;
        Ok(config)
    }

    /// Checks that the key store lies outside the data directory and every node directory (and
    /// they outside it), all as canonical paths: run at every open, not only at `init`.
    pub fn require_keystore_outside_data(&self) -> Result<()> {
        let ks = &self.keystore;
        for data in std::iter::once(&self.data_dir).chain(&self.node_dirs) {
            if ks.starts_with(data) || data.starts_with(ks) {
                return Err(Error::InvalidOption(format!(
                    "the key store {} must be outside the data directory and every node directory ({} overlaps it)",
                    ks.display(),
                    data.display()
                )));
            }
        }
        Ok(())
    }

    /// Checks the layout numbers.
    pub fn validate(&self) -> Result<()> {
        if self.nodes == 0 || self.nodes > 1024 || self.slices_per_node == 0 || self.slices_per_node > 1024 {
            return Err(Error::InvalidOption(
                "nodes and slices per node must be between 1 and 1024".into(),
            ));
        }
        if self.node_dirs.len() != self.nodes as usize {
            return Err(Error::InvalidOption("one node directory per node is required".into()));
        }
        if !sealstore_blockstore::block::valid_block_size(self.block_size as u64) {
            return Err(Error::InvalidOption(format!(
                "block size {} is not a power of two between 64 KiB and 16 MiB",
                self.block_size
            )));
        }
        Ok(())
    }

    /// Writes `cluster.json` into the key store directory durably.
    pub fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidOption(e.to_string()))?;
        fsutil::write_atomic(&self.keystore.join(CLUSTER_CONFIG_FILE), &json, 0o600)?;
        Ok(())
    }

    /// Total slices.
    pub fn slice_count(&self) -> usize {
        (self.nodes * self.slices_per_node) as usize
    }

    /// Directory of one database's store on one slice.
    pub fn slice_dir(&self, slice: usize, database: &str) -> PathBuf {
        let node = slice / self.slices_per_node as usize;
        self.node_dirs[node].join(format!("slice-{slice}")).join(database)
    }
}

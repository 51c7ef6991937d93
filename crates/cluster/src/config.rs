//! `sealstore.json` in the data directory: layout, key-store path and provider settings.
//! Never a secret: a passphrase is named by the environment variable that holds it.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sealstore_keyring::provider::LocalKeyFile;
use sealstore_keyring::{MasterKeyProvider, fsutil};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Name of the configuration file in the data directory.
pub const CONFIG_FILE: &str = "sealstore.json";
/// Current configuration format.
pub const CONFIG_VERSION: u32 = 1;

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
            ProviderConfig::LocalKeyFile { path, passphrase_env } => {
                let passphrase = match passphrase_env {
                    Some(var) => Some(std::env::var(var).map_err(|_| {
                        Error::InvalidOption(format!("the passphrase environment variable {var} is not set"))
                    })?),
                    None => None,
                };
                let p = passphrase.as_deref();
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

impl ClusterConfig {
    /// Reads `sealstore.json` from `data_dir`.
    pub fn load(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(CONFIG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotACluster {
                    path: data_dir.to_owned(),
                });
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
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

    /// Writes `sealstore.json` durably.
    pub fn save(&self, data_dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidOption(e.to_string()))?;
        fsutil::write_atomic(&data_dir.join(CONFIG_FILE), &json, 0o644)?;
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

//! The keyring: the four-tier hierarchy over a key store — a local key-store directory
//! ([`LocalKeyStore`]) or a key server — and each database's DEK table kept with its data.
//!
//! Rotations (see `docs/operations.md`): the master and cluster keys live in the one key-store
//! record set, so rotating them is a single atomic replace on the key store's side. A
//! database-key rotation also rewrites the DEK table; it stages the new DK record next to the old
//! one first, so a crash at any step reopens to exactly one consistent pair (the DEK table's
//! header names the DK generation it is wrapped under, and the other record is discarded on open).
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use parking_lot::{RwLock, RwLockUpgradableReadGuard};
use serde::Serialize;

use crate::aead::{AeadKey, default_backend};
use crate::backend::KeyStoreBackend;
use crate::keystore::{ClusterRecord, DatabaseRecord, KeystoreFile, WrappedAuditKey};
use crate::{
    AuditKey, AuditLog, AuditOp, AuditRecord, AuditVerifyReport, BlockId, ClusterKey, DataKey, DatabaseKey, DekTable,
    EncryptionContext, Error, MasterKeyProvider, Result, fsutil,
};

mod database_keys;
mod local;
mod rotation;
mod state;

pub use crate::names::validate_name;
pub use database_keys::DatabaseKeys;
pub use local::LocalKeyStore;
#[cfg(feature = "test-hooks")]
pub use rotation::RotationStep;
pub(crate) use state::*;

use crate::lock::lock_keystore;

/// Builds the encryption context bound into every master-key call for the cluster key.
fn cluster_context(cluster_id: &str, createtime: &str, generation: u32) -> EncryptionContext {
    EncryptionContext::new()
        .with("cluster-id", cluster_id)
        .with("createtime", createtime)
        .with("generation", generation.to_string())
}

/// A description of the hierarchy: ids, generations and contexts. No key bytes.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HierarchyInfo {
    pub cluster_id: String,
    pub createtime: String,
    pub provider: String,
    pub provider_secure: bool,
    pub master_key_id: String,
    pub cluster_key_generation: u32,
    /// AES-GCM seals made under the current cluster key (limit: `SEAL_LIMIT`).
    pub cluster_key_seals: u64,
    pub context: EncryptionContext,
    pub databases: Vec<DatabaseInfo>,
    /// Where the key records are: a key-store directory, or a key server's address.
    pub keystore: String,
}

/// One database key's description.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DatabaseInfo {
    pub name: String,
    pub created: String,
    pub database_key_generation: u32,
    pub wrapped_under_cluster_key_generation: u32,
    pub bound_generation: u64,
    /// Seals under the database key and its newest metadata key, as of the last binding.
    pub seals: crate::SealCounts,
}

/// The open key hierarchy of one cluster.
pub struct Keyring {
    backend: Arc<dyn KeyStoreBackend>,
    #[cfg(feature = "test-hooks")]
    crash_after: Mutex<Option<RotationStep>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("backend", &self.backend).finish()
    }
}

impl Keyring {
    /// Creates a new hierarchy in the key-store directory `keystore_dir` (see
    /// [`LocalKeyStore::create`]).
    pub fn create(keystore_dir: &Path, provider: Arc<dyn MasterKeyProvider>, cluster_id: &str) -> Result<Self> {
        Ok(Self::with_backend(Arc::new(LocalKeyStore::create(
            keystore_dir,
            provider,
            cluster_id,
        )?)))
    }

    /// Opens the hierarchy in the key-store directory `keystore_dir` (see [`LocalKeyStore::open`]).
    pub fn open(keystore_dir: &Path, provider: Arc<dyn MasterKeyProvider>) -> Result<Self> {
        Ok(Self::with_backend(Arc::new(LocalKeyStore::open(
            keystore_dir,
            provider,
        )?)))
    }

    /// A keyring over any key store (a key server's client, for one).
    pub fn with_backend(backend: Arc<dyn KeyStoreBackend>) -> Self {
        Self {
            backend,
            #[cfg(feature = "test-hooks")]
            crash_after: Mutex::new(None),
        }
    }

    /// The key store behind this keyring.
    pub fn backend(&self) -> &Arc<dyn KeyStoreBackend> {
        &self.backend
    }

    /// Verifies the audit chain under the audit key and against the key store's anchor.
    pub fn verify_audit(&self) -> Result<AuditVerifyReport> {
        self.backend.verify_audit()
    }

    /// Every record of the cluster's audit log.
    pub fn audit_records(&self) -> Result<Vec<AuditRecord>> {
        self.backend.audit_records()
    }

    /// Appends a record to the cluster's audit log.
    pub fn append_audit(&self, record: AuditRecord) -> Result<()> {
        self.backend.append_audit(record, true)
    }

    /// The master-key id a key-store directory was written under (read without opening it).
    pub fn stored_master_key_id(keystore_dir: &Path) -> Result<String> {
        LocalKeyStore::stored_master_key_id(keystore_dir)
    }

    /// Checks that the cluster id the caller expects is the one in the key store.
    pub fn require_cluster_id(&self, expected: &str) -> Result<()> {
        let found = self.backend.cluster_id();
        if found != expected {
            return Err(Error::ContextMismatch {
                field: "cluster-id".into(),
                expected: found,
                found: expected.to_owned(),
            });
        }
        Ok(())
    }

    /// The master-key provider wrapping the cluster key, where this process holds it (not when
    /// the keys are on a key server).
    pub fn provider(&self) -> Option<Arc<dyn MasterKeyProvider>> {
        self.backend.provider()
    }

    /// Names of all databases.
    pub fn databases(&self) -> Result<Vec<String>> {
        self.backend.databases()
    }

    /// Creates a database key (random, wrapped by the cluster key in the key store) and its
    /// empty DEK table in `dek_dir` (which belongs in the data directory, not the key store).
    pub fn create_database(&self, name: &str, dek_dir: &Path) -> Result<Arc<DatabaseKeys>> {
        validate_name(name)?;
        self.backend.check_access()?;
        if self.backend.databases()?.iter().any(|d| d == name) {
            return Err(Error::DatabaseExists(name.to_owned()));
        }
        let dk = DatabaseKey::generate()?;
        // A new DEK table has sealed its header and one metadata key under the DK.
        let seals = crate::SealCounts {
            database_key: 2,
            metadata_key: 0,
        };
        let mut table = DekTable::create(dek_dir, name, default_backend().key(dk.expose_secret()), 1)?;
        table.set_seal_counts(seals);
        self.backend.add_database_key(name, &dk, seals)?;
        Ok(Arc::new(DatabaseKeys::new(name, table, self.backend.clone())))
    }

    /// Unwraps a database key and opens its DEK table. If a database-key rotation was cut
    /// short, the key store holds two records; the DEK table says which one it is wrapped
    /// under, and the other is discarded (the rotation is either finished or abandoned).
    pub fn open_database(&self, name: &str, dek_dir: &Path) -> Result<Arc<DatabaseKeys>> {
        self.open_database_with(name, dek_dir, true)
    }

    /// Like [`Keyring::open_database`], but changes nothing in `dek_dir` (read-only commands);
    /// every DEK write through the result fails.
    pub fn open_database_read_only(&self, name: &str, dek_dir: &Path) -> Result<Arc<DatabaseKeys>> {
        self.open_database_with(name, dek_dir, false)
    }

    fn open_database_with(&self, name: &str, dek_dir: &Path, writable: bool) -> Result<Arc<DatabaseKeys>> {
        let mut granted = self.backend.database_keys(name)?;
        let chosen = if granted.len() == 1 {
            granted.remove(0)
        } else {
            // Of the records left by an interrupted rotation, the one whose database key
            // authenticates the DEK table's header and metadata keys; nothing unauthenticated
            // decides which record survives.
            let newest = granted.iter().map(|g| g.generation).max().unwrap_or(0);
            let mut last_error = None;
            let mut chosen = None;
            for (i, g) in granted.iter().enumerate() {
                let key = default_backend().key(g.key.expose_secret());
                match DekTable::open_read_only(dek_dir, name, key, g.generation) {
                    Ok(_) => {
                        chosen = Some(i);
                        break;
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            let i = chosen.ok_or_else(|| last_error.unwrap_or_else(|| Error::UnknownDatabase(name.to_owned())))?;
            let chosen = granted.swap_remove(i);
            let what = if chosen.generation == newest {
                "interrupted rotation finished on open: old database key destroyed"
            } else {
                "interrupted rotation abandoned on open: staged database key destroyed"
            };
            self.backend.keep_database_key(name, chosen.generation, what)?;
            chosen
        };
        let key = default_backend().key(chosen.key.expose_secret());
        let mut table = if writable {
            DekTable::open(dek_dir, name, key, chosen.generation)?
        } else {
            DekTable::open_read_only(dek_dir, name, key, chosen.generation)?
        };
        table.set_seal_counts(chosen.seals);
        Ok(Arc::new(DatabaseKeys::new(name, table, self.backend.clone())))
    }

    /// The cluster commit generation bound into a database's key record (0 before the first).
    pub fn bound_generation(&self, name: &str) -> Result<u64> {
        self.backend.bound_generation(name)
    }

    /// Crypto-shreds a database: its key record(s) leave the key store (one atomic replace), so
    /// its DEK table and blocks can never be unwrapped again. The caller then deletes the files.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        self.backend.drop_database(name)
    }

    /// **Tests only** (feature `test-hooks`): the cluster key and every database key,
    /// unwrapped again, so a test can scan files for their bytes.
    #[cfg(feature = "test-hooks")]
    pub fn insecure_key_bytes_for_tests(&self) -> Result<Vec<[u8; 32]>> {
        self.backend.insecure_key_bytes_for_tests()
    }

    /// Describes the hierarchy (no secrets).
    pub fn info(&self) -> Result<HierarchyInfo> {
        self.backend.info()
    }
}

/// Appends `ok` or the error to an audit record.
fn outcome<T>(record: AuditRecord, result: &Result<T>) -> AuditRecord {
    match result {
        Ok(_) => record,
        Err(e) => record.failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeySpec;
    use crate::provider::{InsecureInMemoryProvider, LocalKeyFile};

    fn setup() -> (tempfile::TempDir, Arc<dyn MasterKeyProvider>) {
        let dir = tempfile::tempdir().unwrap();
        let mk: Arc<dyn MasterKeyProvider> = Arc::new(LocalKeyFile::create(&dir.path().join("mk"), None).unwrap());
        (dir, mk)
    }

    #[test]
    fn full_hierarchy_round_trip() {
        let (dir, mk) = setup();
        let ks = dir.path().join("ks");
        let data = dir.path().join("data/dev");
        let ring = Keyring::create(&ks, mk.clone(), "c1").unwrap();
        let db = ring.create_database("dev", &data).unwrap();
        let keys = db.generate(3).unwrap();
        db.commit().unwrap();
        drop(db);
        drop(ring);
        let ring = Keyring::open(&ks, mk).unwrap();
        assert_eq!(ring.databases().unwrap(), vec!["dev".to_owned()]);
        let db = ring.open_database("dev", &data).unwrap();
        for (id, k) in &keys {
            assert_eq!(db.data_key(*id).unwrap().expose_secret(), k.expose_secret());
        }
        let info = ring.info().unwrap();
        assert_eq!(info.cluster_id, "c1");
        assert_eq!(info.context.get("cluster-id"), Some("c1"));
        assert_eq!(info.databases[0].database_key_generation, 1);
        drop(db);
        let report = ring.verify_audit().unwrap();
        assert!(report.records >= 6);
        let ops: Vec<AuditOp> = ring.audit_records().unwrap().iter().map(|r| r.op).collect();
        for op in [
            AuditOp::Wrap,
            AuditOp::CreateClusterKey,
            AuditOp::CreateDatabaseKey,
            AuditOp::GenerateDataKey,
            AuditOp::Unwrap,
            AuditOp::UnwrapDataKey,
        ] {
            assert!(ops.contains(&op), "{op:?} missing from {ops:?}");
        }
    }

    #[test]
    fn wrong_master_key_is_refused_and_audited() {
        let (dir, mk) = setup();
        let ks = dir.path().join("ks");
        Keyring::create(&ks, mk, "c1").unwrap();
        let other: Arc<dyn MasterKeyProvider> = Arc::new(LocalKeyFile::create(&dir.path().join("mk2"), None).unwrap());
        let err = Keyring::open(&ks, other).unwrap_err();
        assert!(matches!(err, Error::WrongMasterKey { .. }), "{err}");
        let records = AuditLog::open(&ks).unwrap().records().unwrap();
        assert!(records.iter().any(|r| r.op == AuditOp::AuthFailure));
        assert!(
            records
                .iter()
                .any(|r| r.op == AuditOp::Unwrap && r.outcome.starts_with("failed"))
        );
    }

    #[test]
    fn asymmetric_master_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for spec in [
            KeySpec::Rsa { bits: 2048 },
            KeySpec::Ec { curve: "P-256".into() },
            KeySpec::Aes { bits: 128 },
        ] {
            let p: Arc<dyn MasterKeyProvider> = Arc::new(InsecureInMemoryProvider::pretending(spec.clone()).unwrap());
            let err = Keyring::create(&dir.path().join("ks"), p, "c1").unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("master key must be a symmetric AES-256 key; got"),
                "{err}"
            );
            assert!(matches!(err, Error::UnsupportedMasterKey { .. }));
        }
    }

    #[test]
    fn context_tampering_in_the_key_store_is_detected() {
        let (dir, mk) = setup();
        let ks = dir.path().join("ks");
        Keyring::create(&ks, mk.clone(), "c1").unwrap();
        // Rewrite the record with a different cluster id but a valid checksum: the context the
        // record implies no longer matches the one the wrap was bound to.
        let mut file = KeystoreFile::load(&ks).unwrap();
        file.cluster.cluster_id = "c2".into();
        file.save(&ks).unwrap();
        let err = Keyring::open(&ks, mk.clone()).unwrap_err();
        assert!(
            matches!(&err, Error::ContextMismatch { field, .. } if field == "cluster-id"),
            "{err}"
        );
        // Consistent but different context: the master-key unwrap itself fails.
        file.cluster.context = cluster_context("c2", &file.cluster.createtime, 1);
        file.save(&ks).unwrap();
        assert!(matches!(
            Keyring::open(&ks, mk).unwrap_err(),
            Error::Authentication { .. }
        ));
    }

    #[test]
    fn every_byte_flip_of_the_key_store_fails_open() {
        let (dir, mk) = setup();
        let ks = dir.path().join("ks");
        let ring = Keyring::create(&ks, mk.clone(), "c1").unwrap();
        ring.create_database("dev", &dir.path().join("d")).unwrap();
        drop(ring);
        let path = KeystoreFile::path(&ks);
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x01;
            std::fs::write(&path, &b).unwrap();
            let opened = Keyring::open(&ks, mk.clone()).and_then(|r| r.open_database("dev", &dir.path().join("d")));
            assert!(opened.is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn a_second_open_of_the_same_key_store_is_refused_while_the_first_is_open() {
        let (dir, mk) = setup();
        let ks = dir.path().join("ks");
        let ring = Keyring::create(&ks, mk.clone(), "c1").unwrap();
        assert!(matches!(Keyring::open(&ks, mk.clone()), Err(Error::Locked { .. })));
        drop(ring);
        Keyring::open(&ks, mk).unwrap();
    }

    #[test]
    fn seal_counts_persist_and_a_worn_out_cluster_key_refuses_until_rotated() {
        let (dir, mk) = setup();
        let ks = dir.path().join("ks");
        let data = dir.path().join("data/dev");
        let ring = Keyring::create(&ks, mk.clone(), "c1").unwrap();
        let db = ring.create_database("dev", &data).unwrap();
        db.generate(5).unwrap();
        db.commit().unwrap();
        db.bind_generation(2, false).unwrap();
        let counted = db.seal_counts();
        assert_eq!(counted.database_key, 2 + 5);
        drop(db);
        drop(ring);
        let ring = Keyring::open(&ks, mk.clone()).unwrap();
        assert_eq!(
            ring.info().unwrap().databases[0].seals,
            counted,
            "persisted at the binding"
        );
        assert_eq!(ring.open_database("dev", &data).unwrap().seal_counts(), counted);
        // The cluster key near its limit: sealing another DK record is refused, naming the fix.
        drop(ring);
        let mut file = KeystoreFile::load(&ks).unwrap();
        file.cluster.ck_seals = crate::SEAL_LIMIT;
        file.save(&ks).unwrap();
        let ring = Keyring::open(&ks, mk).unwrap();
        let err = ring
            .create_database("other", &dir.path().join("data/other"))
            .unwrap_err();
        assert!(err.to_string().contains("sealstore rotate --cluster"), "{err}");
        ring.rotate_cluster_key().unwrap();
        assert_eq!(
            ring.info().unwrap().cluster_key_seals,
            2,
            "one DK record and the audit key"
        );
        ring.create_database("other", &dir.path().join("data/other2")).unwrap();
    }

    #[test]
    fn names_are_validated() {
        let (dir, mk) = setup();
        let ring = Keyring::create(&dir.path().join("ks"), mk, "c1").unwrap();
        for bad in ["", "../x", ".hidden", "a b", &"x".repeat(65)] {
            assert!(matches!(
                ring.create_database(bad, &dir.path().join("d")),
                Err(Error::InvalidName { .. })
            ));
        }
        assert!(matches!(
            ring.open_database("nope", &dir.path().join("d")),
            Err(Error::UnknownDatabase(_))
        ));
    }
}

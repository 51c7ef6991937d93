//! The keyring: the four-tier hierarchy opened over a master-key provider and a key store.
//!
//! Rotations (see `docs/operations.md`): the master and cluster keys live in the one key-store
//! file, so rotating them is a single atomic replace. A database-key rotation also rewrites the
//! DEK table; it stages the new DK record next to the old one first, so a crash at any step
//! reopens to exactly one consistent pair (the DEK table's header names the DK generation it is
//! wrapped under, and the other record is discarded on open).
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use parking_lot::{RwLock, RwLockUpgradableReadGuard};
use serde::Serialize;

use crate::aead::{AeadKey, default_backend};
use crate::keystore::{ClusterRecord, DatabaseRecord, KeystoreFile, WrappedAuditKey};
use crate::{
    AuditKey, AuditLog, AuditOp, AuditRecord, AuditVerifyReport, BlockId, ClusterKey, DataKey, DatabaseKey, DekTable,
    EncryptionContext, Error, MasterKeyProvider, Result, fsutil,
};

mod database_keys;
mod rotation;
mod state;

pub use crate::names::validate_name;
pub use database_keys::DatabaseKeys;
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
#[derive(Debug, Clone, Serialize)]
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
    pub keystore: PathBuf,
}

/// One database key's description.
#[derive(Debug, Clone, Serialize)]
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
    _lock: std::fs::File,
    provider: RwLock<Arc<dyn MasterKeyProvider>>,
    ks: Arc<KeystoreState>,
    #[cfg(feature = "test-hooks")]
    crash_after: Mutex<Option<RotationStep>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("dir", &self.ks.dir)
            .field("provider", &*self.provider.read())
            .finish()
    }
}

impl Keyring {
    /// Creates a new hierarchy in `keystore_dir`: a random cluster key wrapped by the provider's
    /// master key under the context `{cluster-id, createtime, generation}`.
    pub fn create(keystore_dir: &Path, provider: Arc<dyn MasterKeyProvider>, cluster_id: &str) -> Result<Self> {
        validate_name(cluster_id)?;
        provider.key_spec()?.require_symmetric_aes256()?;
        fsutil::create_dir_durable(keystore_dir)?;
        let path = KeystoreFile::path(keystore_dir);
        let lock = lock_keystore(keystore_dir)?;
        if fsutil::exists(&path) {
            return Err(Error::AlreadyExists { path });
        }
        let audit = Arc::new(AuditLog::open(keystore_dir)?);
        let createtime = crate::now_rfc3339();
        let context = cluster_context(cluster_id, &createtime, 1);
        let ck = ClusterKey::generate()?;
        let audit_key = AuditKey::generate()?;
        let wrapped_audit_key = WrappedAuditKey::seal(
            default_backend().key(ck.expose_secret()).as_ref(),
            cluster_id,
            1,
            &audit_key,
        )?;
        audit.set_key(audit_key);
        let wrapped_ck = provider.wrap(ck.expose_secret(), &context);
        audit.append(outcome(
            AuditRecord::new(AuditOp::Wrap, "master")
                .key_id(provider.key_id())
                .context(&context)
                .detail("cluster key"),
            &wrapped_ck,
        ))?;
        let file = KeystoreFile {
            cluster: ClusterRecord {
                cluster_id: cluster_id.to_owned(),
                createtime,
                generation: 1,
                provider_kind: provider.kind().to_owned(),
                mk_key_id: provider.key_id(),
                context: context.clone(),
                wrapped_ck: wrapped_ck?,
                ck_seals: 1,
            },
            audit_key: wrapped_audit_key,
            audit_anchor: audit.anchor(),
            databases: Vec::new(),
        };
        file.save(keystore_dir)?;
        audit.append(
            AuditRecord::new(AuditOp::CreateClusterKey, "cluster")
                .generation(1)
                .context(&context),
        )?;
        Ok(Self::assemble(lock, keystore_dir, provider, audit, file, &ck))
    }

    /// Opens an existing hierarchy: checks the provider's key type and id, the stored context,
    /// and unwraps the cluster key through the provider. Every attempt is audited.
    pub fn open(keystore_dir: &Path, provider: Arc<dyn MasterKeyProvider>) -> Result<Self> {
        if !fsutil::exists(&KeystoreFile::path(keystore_dir)) {
            return Err(Error::NoKeyStore {
                path: keystore_dir.to_owned(),
            });
        }
        // Locked before it is read, so a writer holding the lock cannot change it under us.
        let lock = lock_keystore(keystore_dir)?;
        let file = KeystoreFile::load(keystore_dir)?;
        let audit = Arc::new(AuditLog::open_anchored(keystore_dir, &file.audit_anchor)?);
        let result = Self::unwrap_cluster_key(&file, provider.as_ref()).and_then(|ck| {
            let key = file.audit_key.open(
                default_backend().key(ck.expose_secret()).as_ref(),
                &file.cluster.cluster_id,
                file.cluster.generation,
            )?;
            Ok((ck, key))
        });
        let c = &file.cluster;
        let record = AuditRecord::new(AuditOp::Unwrap, "master")
            .key_id(provider.key_id())
            .generation(c.generation.into())
            .context(&c.context)
            .detail("cluster key");
        let (ck, audit_key) = match result {
            Ok(keys) => keys,
            Err(e) => {
                // Without the cluster key there is no audit key: these records go in unkeyed.
                audit.append(record.failed(&e))?;
                if e.is_authentication() {
                    audit.append(
                        AuditRecord::new(AuditOp::AuthFailure, "master")
                            .key_id(provider.key_id())
                            .failed(&e),
                    )?;
                }
                return Err(e);
            }
        };
        audit.set_key(audit_key);
        audit.append(record)?;
        let ring = Self::assemble(lock, keystore_dir, provider, audit, file, &ck);
        ring.save_anchor()?;
        Ok(ring)
    }

    /// Saves the key store with the audit chain's current anchor.
    fn save_anchor(&self) -> Result<()> {
        let mut state = self.ks.state();
        let next = state.clone();
        self.ks.commit_state(&mut state, next)
    }

    /// Verifies the audit chain under the audit key and against the key store's anchor.
    pub fn verify_audit(&self) -> Result<AuditVerifyReport> {
        let anchor = self.ks.state().audit_anchor.clone();
        self.ks.audit.verify(&anchor)
    }

    /// The master-key id the key store was written under (read without opening the hierarchy),
    /// so a caller holding several candidate providers can pick the right one.
    pub fn stored_master_key_id(keystore_dir: &Path) -> Result<String> {
        Ok(KeystoreFile::load(keystore_dir)?.cluster.mk_key_id)
    }

    fn assemble(
        lock: std::fs::File,
        dir: &Path,
        provider: Arc<dyn MasterKeyProvider>,
        audit: Arc<AuditLog>,
        file: KeystoreFile,
        ck: &ClusterKey,
    ) -> Self {
        Self {
            _lock: lock,
            provider: RwLock::new(provider),
            ks: Arc::new(KeystoreState {
                dir: dir.to_owned(),
                audit,
                state: Mutex::new(file),
                ck: RwLock::new(default_backend().key(ck.expose_secret())),
            }),
            #[cfg(feature = "test-hooks")]
            crash_after: Mutex::new(None),
        }
    }

    fn unwrap_cluster_key(file: &KeystoreFile, provider: &dyn MasterKeyProvider) -> Result<ClusterKey> {
        provider.key_spec()?.require_symmetric_aes256()?;
        let c = &file.cluster;
        if c.mk_key_id != provider.key_id() {
            return Err(Error::WrongMasterKey {
                expected: c.mk_key_id.clone(),
                found: provider.key_id(),
            });
        }
        // The context the record claims must be the one its own fields imply.
        cluster_context(&c.cluster_id, &c.createtime, c.generation).require_equal(&c.context)?;
        let plain = provider.unwrap(&c.wrapped_ck, &c.context)?;
        ClusterKey::from_slice(&plain).ok_or_else(|| Error::auth("cluster key (wrong length after unwrap)"))
    }

    /// Checks that the cluster id the caller expects is the one in the key store.
    pub fn require_cluster_id(&self, expected: &str) -> Result<()> {
        let state = self.ks.state();
        if state.cluster.cluster_id != expected {
            return Err(Error::ContextMismatch {
                field: "cluster-id".into(),
                expected: state.cluster.cluster_id.clone(),
                found: expected.to_owned(),
            });
        }
        Ok(())
    }

    /// The audit log shared by every operation of this hierarchy.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.ks.audit
    }

    /// The key store directory.
    pub fn keystore_dir(&self) -> &Path {
        &self.ks.dir
    }

    /// The master-key provider currently wrapping the cluster key.
    pub fn provider(&self) -> Arc<dyn MasterKeyProvider> {
        self.provider.read().clone()
    }

    /// Names of all databases.
    pub fn databases(&self) -> Vec<String> {
        let mut names: Vec<String> = self.ks.state().databases.iter().map(|d| d.name.clone()).collect();
        names.dedup();
        names
    }

    /// Creates a database key (random, wrapped by the cluster key) and its empty DEK table in
    /// `dek_dir` (which belongs in the data directory, not the key store).
    pub fn create_database(&self, name: &str, dek_dir: &Path) -> Result<Arc<DatabaseKeys>> {
        validate_name(name)?;
        let mut state = self.ks.state();
        if state.database(name).is_some() {
            return Err(Error::DatabaseExists(name.to_owned()));
        }
        let dk = DatabaseKey::generate()?;
        let created = crate::now_rfc3339();
        let cluster_id = state.cluster.cluster_id.clone();
        // A new DEK table has sealed its header and one metadata key under the DK.
        let seals = crate::SealCounts {
            database_key: 2,
            metadata_key: 0,
        };
        let record = DatabaseRecord::seal(
            self.ks.ck.read().as_ref(),
            &cluster_id,
            name,
            &created,
            &dk,
            1,
            state.cluster.generation,
            0,
            seals,
        )?;
        let mut next = state.clone();
        KeystoreState::charge_ck(&mut next, 1)?;
        let mut table = DekTable::create(dek_dir, name, default_backend().key(dk.expose_secret()), 1)?;
        table.set_seal_counts(seals);
        next.databases.push(record);
        self.ks.commit_state(&mut state, next)?;
        self.ks.audit.append(
            AuditRecord::new(AuditOp::CreateDatabaseKey, "database")
                .database(name)
                .generation(1),
        )?;
        Ok(Arc::new(DatabaseKeys::new(name, table, self.ks.clone())))
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

    /// Of the records left by an interrupted rotation, the one whose database key authenticates
    /// the DEK table's header and metadata keys; nothing unauthenticated decides which record
    /// survives.
    fn record_authenticating_table(
        &self,
        state: &KeystoreFile,
        records: &[DatabaseRecord],
        dek_dir: &Path,
    ) -> Result<DatabaseRecord> {
        let mut last_error = None;
        for record in records {
            let dk = record.open(self.ks.ck.read().as_ref(), &state.cluster.cluster_id)?;
            let key = default_backend().key(dk.expose_secret());
            match DekTable::open_read_only(dek_dir, &record.name, key, record.dk_generation) {
                Ok(_) => return Ok(record.clone()),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::UnknownDatabase(String::new())))
    }

    fn open_database_with(&self, name: &str, dek_dir: &Path, writable: bool) -> Result<Arc<DatabaseKeys>> {
        let mut state = self.ks.state();
        let records: Vec<DatabaseRecord> = state.databases.iter().filter(|d| d.name == name).cloned().collect();
        let record = match records.len() {
            0 => return Err(Error::UnknownDatabase(name.to_owned())),
            1 => records[0].clone(),
            _ => {
                let chosen = self.record_authenticating_table(&state, &records, dek_dir)?;
                let newest = records.iter().map(|r| r.dk_generation).max().unwrap_or(0);
                let mut next = state.clone();
                next.databases
                    .retain(|d| d.name != name || d.dk_generation == chosen.dk_generation);
                self.ks.commit_state(&mut state, next)?;
                let what = if chosen.dk_generation == newest {
                    "interrupted rotation finished on open: old database key destroyed"
                } else {
                    "interrupted rotation abandoned on open: staged database key destroyed"
                };
                self.ks.audit.append(
                    AuditRecord::new(AuditOp::RotateDatabaseKey, "database")
                        .database(name)
                        .generation(chosen.dk_generation.into())
                        .detail(what),
                )?;
                chosen
            }
        };
        let result = record.open(self.ks.ck.read().as_ref(), &state.cluster.cluster_id);
        let audit = AuditRecord::new(AuditOp::Unwrap, "cluster")
            .database(name)
            .generation(record.dk_generation.into())
            .detail("database key");
        self.ks.audit.append(outcome(audit, &result))?;
        let dk = result?;
        let key = default_backend().key(dk.expose_secret());
        let mut table = if writable {
            DekTable::open(dek_dir, name, key, record.dk_generation)?
        } else {
            DekTable::open_read_only(dek_dir, name, key, record.dk_generation)?
        };
        table.set_seal_counts(record.seals);
        Ok(Arc::new(DatabaseKeys::new(name, table, self.ks.clone())))
    }

    /// The cluster commit generation bound into a database's key record (0 before the first).
    pub fn bound_generation(&self, name: &str) -> Result<u64> {
        self.ks.bound_generation(name)
    }

    /// Crypto-shreds a database: its key record(s) leave the key store (one atomic replace), so
    /// its DEK table and blocks can never be unwrapped again. The caller then deletes the files.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        let mut state = self.ks.state();
        if state.database(name).is_none() {
            return Err(Error::UnknownDatabase(name.to_owned()));
        }
        let mut next = state.clone();
        next.databases.retain(|d| d.name != name);
        self.ks.commit_state(&mut state, next)?;
        self.ks.audit.append(
            AuditRecord::new(AuditOp::Shred, "database")
                .database(name)
                .detail("database key destroyed (database dropped)"),
        )?;
        Ok(())
    }

    /// **Tests only** (feature `test-hooks`): the cluster key and every database key,
    /// unwrapped again, so a test can scan files for their bytes.
    #[cfg(feature = "test-hooks")]
    pub fn insecure_key_bytes_for_tests(&self) -> Result<Vec<[u8; 32]>> {
        let state = self.ks.state();
        let ck = Self::unwrap_cluster_key(&state, self.provider().as_ref())?;
        let mut keys = vec![*ck.expose_secret()];
        for record in &state.databases {
            keys.push(
                *record
                    .open(self.ks.ck.read().as_ref(), &state.cluster.cluster_id)?
                    .expose_secret(),
            );
        }
        Ok(keys)
    }

    /// Describes the hierarchy (no secrets).
    pub fn info(&self) -> HierarchyInfo {
        let state = self.ks.state();
        let c = &state.cluster;
        HierarchyInfo {
            cluster_id: c.cluster_id.clone(),
            createtime: c.createtime.clone(),
            provider: c.provider_kind.clone(),
            provider_secure: self.provider().is_secure(),
            master_key_id: c.mk_key_id.clone(),
            cluster_key_generation: c.generation,
            cluster_key_seals: c.ck_seals,
            context: c.context.clone(),
            databases: state
                .databases
                .iter()
                .map(|d| DatabaseInfo {
                    name: d.name.clone(),
                    created: d.created.clone(),
                    database_key_generation: d.dk_generation,
                    wrapped_under_cluster_key_generation: d.ck_generation,
                    bound_generation: d.bound_generation,
                    seals: d.seals,
                })
                .collect(),
            keystore: self.ks.dir.clone(),
        }
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
        assert_eq!(ring.databases(), vec!["dev".to_owned()]);
        let db = ring.open_database("dev", &data).unwrap();
        for (id, k) in &keys {
            assert_eq!(db.data_key(*id).unwrap().expose_secret(), k.expose_secret());
        }
        let info = ring.info();
        assert_eq!(info.cluster_id, "c1");
        assert_eq!(info.context.get("cluster-id"), Some("c1"));
        assert_eq!(info.databases[0].database_key_generation, 1);
        drop(db);
        let report = ring.verify_audit().unwrap();
        assert!(report.records >= 6);
        let ops: Vec<AuditOp> = ring.audit().records().unwrap().iter().map(|r| r.op).collect();
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
        assert_eq!(ring.info().databases[0].seals, counted, "persisted at the binding");
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
        assert_eq!(ring.info().cluster_key_seals, 2, "one DK record and the audit key");
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

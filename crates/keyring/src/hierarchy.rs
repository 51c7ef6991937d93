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

/// The key store's lock file.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Builds the encryption context bound into every master-key call for the cluster key.
fn cluster_context(cluster_id: &str, createtime: &str, generation: u32) -> EncryptionContext {
    EncryptionContext::new()
        .with("cluster-id", cluster_id)
        .with("createtime", createtime)
        .with("generation", generation.to_string())
}

/// Database and cluster ids: 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return bad("must be 1 to 64 characters");
    }
    if name.starts_with('.') {
        return bad("must not start with '.'");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
        return bad("only letters, digits, '_', '-' and '.' are allowed");
    }
    Ok(())
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

/// A step of a key rotation after which a test can simulate a crash (feature `test-hooks`).
#[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationStep {
    /// The new DK record is staged in the key store beside the old one.
    DatabaseKeyStaged,
    /// The DEK table was switched to the new DK; the old DK record is still in the key store.
    DekTableRewrapped,
    /// Master-key rotation: the configuration names the new and the old provider.
    MasterConfigStaged,
    /// Master-key rotation: the key store holds the cluster key wrapped by the new master key.
    MasterKeyRewrapped,
}

/// Takes the key store's exclusive lock (released when the keyring is dropped), so two
/// processes never extend the audit chain or rewrite the key store at once.
fn lock_keystore(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = fsutil::open_append(&path, 0o600)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// The open key hierarchy of one cluster.
pub struct Keyring {
    _lock: std::fs::File,
    provider: RwLock<Arc<dyn MasterKeyProvider>>,
    ks: Arc<KeystoreState>,
    #[cfg(feature = "test-hooks")]
    crash_after: Mutex<Option<RotationStep>>,
}

/// The open key store, shared by the keyring and every open database's keys (which bind their
/// commit generation through it).
pub(crate) struct KeystoreState {
    dir: PathBuf,
    audit: Arc<AuditLog>,
    state: Mutex<KeystoreFile>,
    ck: RwLock<Box<dyn AeadKey>>,
}

impl KeystoreState {
    fn state(&self) -> std::sync::MutexGuard<'_, KeystoreFile> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Saves `next` as the key store and makes it the in-memory state.
    fn commit_state(&self, state: &mut KeystoreFile, mut next: KeystoreFile) -> Result<()> {
        next.audit_anchor = self.audit.anchor();
        let saved = next.save(&self.dir);
        // Replaced but not known durable: memory follows the file on disk.
        if saved.as_ref().err().is_none_or(Error::is_not_durable) {
            *state = next;
        }
        saved
    }

    fn bound_generation(&self, name: &str) -> Result<u64> {
        self.state()
            .database(name)
            .map(|d| d.bound_generation)
            .ok_or_else(|| Error::UnknownDatabase(name.to_owned()))
    }

    /// Counts `n` more seals under the cluster key into `next` (refused past the limit).
    fn charge_ck(next: &mut KeystoreFile, n: u64) -> Result<()> {
        next.cluster.ck_seals = crate::seals::charge(
            next.cluster.ck_seals,
            n,
            || "cluster key".to_owned(),
            || "sealstore rotate --cluster".to_owned(),
        )?;
        Ok(())
    }

    /// Binds `generation` into the database's record; with `seals`, also records the seal
    /// counts of its keys (the open DEK table's, authoritative).
    fn bind_generation(
        &self,
        name: &str,
        generation: u64,
        accept_rollback: bool,
        seals: Option<crate::SealCounts>,
    ) -> Result<()> {
        let mut state = self.state();
        let current = state
            .database(name)
            .map(|d| d.bound_generation)
            .ok_or_else(|| Error::UnknownDatabase(name.to_owned()))?;
        if generation == current || (generation < current && !accept_rollback) {
            return Ok(());
        }
        let cluster_id = state.cluster.cluster_id.clone();
        let mut next = state.clone();
        {
            let ck = self.ck.read();
            let records = next.databases.iter().filter(|d| d.name == name).count() as u64;
            Self::charge_ck(&mut next, records)?;
            for rec in next.databases.iter_mut().filter(|d| d.name == name) {
                let dk = rec.open(ck.as_ref(), &cluster_id)?;
                *rec = DatabaseRecord::seal(
                    ck.as_ref(),
                    &cluster_id,
                    &rec.name,
                    &rec.created,
                    &dk,
                    rec.dk_generation,
                    rec.ck_generation,
                    generation,
                    seals.unwrap_or(rec.seals),
                )?;
            }
        }
        self.commit_state(&mut state, next)?;
        if generation < current {
            self.audit.append(
                AuditRecord::new(AuditOp::AcceptRollback, "database")
                    .database(name)
                    .generation(generation)
                    .detail(format!("bound generation {current} -> {generation} (restore accepted)")),
            )?;
        }
        Ok(())
    }
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

    /// Makes the next key rotation stop dead after `step`, as if the process died there. The
    /// keyring must be dropped and reopened afterwards (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn inject_crash(&self, step: Option<RotationStep>) {
        *self.crash_after.lock().unwrap_or_else(|p| p.into_inner()) = step;
    }

    #[cfg(feature = "test-hooks")]
    fn crash_here(&self, step: RotationStep, name: &'static str) -> Result<()> {
        if *self.crash_after.lock().unwrap_or_else(|p| p.into_inner()) == Some(step) {
            return Err(Error::InjectedCrash(name));
        }
        Ok(())
    }

    #[cfg(not(feature = "test-hooks"))]
    #[inline(always)]
    fn crash_here(&self, _step: RotationStep, _name: &'static str) -> Result<()> {
        Ok(())
    }

    /// A crash point of a rotation step run by the caller (the cluster's configuration steps).
    #[cfg(feature = "test-hooks")]
    pub fn crash_point(&self, step: RotationStep) -> Result<()> {
        self.crash_here(step, "a rotation step")
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

    /// Rotates the master key: the cluster key is unwrapped with the current provider and
    /// re-wrapped by `new_provider` under the same context, checked by unwrapping it again, and
    /// the key store is replaced atomically. Nothing else changes.
    pub fn rotate_master_key(&self, new_provider: Arc<dyn MasterKeyProvider>) -> Result<()> {
        new_provider.key_spec()?.require_symmetric_aes256()?;
        let mut state = self.ks.state();
        let old = self.provider();
        let ck = Self::unwrap_cluster_key(&state, old.as_ref())?;
        let context = state.cluster.context.clone();
        let result = new_provider.wrap(ck.expose_secret(), &context).and_then(|wrapped| {
            let back = new_provider.unwrap(&wrapped, &context)?;
            if back.as_slice() != ck.expose_secret().as_slice() {
                return Err(Error::auth("cluster key re-wrapped by the new master key"));
            }
            Ok(wrapped)
        });
        let record = AuditRecord::new(AuditOp::RotateMasterKey, "master")
            .key_id(new_provider.key_id())
            .generation(state.cluster.generation.into())
            .context(&context)
            .detail(format!(
                "cluster key re-wrapped: master key {} -> {}",
                old.key_id(),
                new_provider.key_id()
            ));
        let wrapped = match result {
            Ok(w) => w,
            Err(e) => {
                self.ks.audit.append(record.failed(&e))?;
                return Err(e);
            }
        };
        let mut next = state.clone();
        next.cluster.mk_key_id = new_provider.key_id();
        next.cluster.provider_kind = new_provider.kind().to_owned();
        next.cluster.wrapped_ck = wrapped;
        let saved = self.ks.commit_state(&mut state, next);
        if saved.as_ref().err().is_none_or(Error::is_not_durable) {
            *self.provider.write() = new_provider;
        }
        saved?;
        self.ks.audit.append(record)?;
        Ok(())
    }

    /// Rotates the cluster key: a new random CK (generation + 1, new context) wrapped by the
    /// master key, and every database key re-wrapped under it, in one atomic key-store replace.
    pub fn rotate_cluster_key(&self) -> Result<u32> {
        let mut state = self.ks.state();
        let provider = self.provider();
        let c = state.cluster.clone();
        let new_generation = c.generation + 1;
        let context = cluster_context(&c.cluster_id, &c.createtime, new_generation);
        let new_ck = ClusterKey::generate()?;
        let new_ck_key = default_backend().key(new_ck.expose_secret());
        let mut next = state.clone();
        {
            let old_ck = self.ks.ck.read();
            let audit_key = state.audit_key.open(old_ck.as_ref(), &c.cluster_id, c.generation)?;
            next.audit_key = WrappedAuditKey::seal(new_ck_key.as_ref(), &c.cluster_id, new_generation, &audit_key)?;
            for rec in &mut next.databases {
                let dk = rec.open(old_ck.as_ref(), &c.cluster_id)?;
                *rec = DatabaseRecord::seal(
                    new_ck_key.as_ref(),
                    &c.cluster_id,
                    &rec.name,
                    &rec.created,
                    &dk,
                    rec.dk_generation,
                    new_generation,
                    rec.bound_generation,
                    rec.seals,
                )?;
            }
        }
        // The new cluster key has sealed every database record and the audit key.
        next.cluster.ck_seals = next.databases.len() as u64 + 1;
        let wrapped = provider.wrap(new_ck.expose_secret(), &context);
        self.ks.audit.append(outcome(
            AuditRecord::new(AuditOp::Wrap, "master")
                .key_id(provider.key_id())
                .generation(new_generation.into())
                .context(&context)
                .detail("cluster key"),
            &wrapped,
        ))?;
        next.cluster.generation = new_generation;
        next.cluster.context = context.clone();
        next.cluster.wrapped_ck = wrapped?;
        let databases = next.databases.len();
        let saved = self.ks.commit_state(&mut state, next);
        if saved.as_ref().err().is_none_or(Error::is_not_durable) {
            *self.ks.ck.write() = new_ck_key;
        }
        saved?;
        self.ks.audit.append(
            AuditRecord::new(AuditOp::RotateClusterKey, "cluster")
                .generation(new_generation.into())
                .context(&context)
                .count(databases as u64)
                .detail(format!(
                    "cluster key generation {} -> {new_generation}; database keys re-wrapped",
                    c.generation
                )),
        )?;
        Ok(new_generation)
    }

    /// Rotates a database key: a new random DK, every DEK and metadata key of the database
    /// re-wrapped under it into a new DEK-table generation, then the old DK destroyed. Block data
    /// is untouched. Readers keep reading throughout; writers wait for the switch.
    pub fn rotate_database_key(&self, keys: &DatabaseKeys) -> Result<u32> {
        let name = keys.name().to_owned();
        let mut state = self.ks.state();
        // The live record is the one the open DEK table is wrapped under; another one left by a
        // rotation that failed part-way (an I/O error) is dropped before staging a new one.
        let live = keys.dk_generation();
        let old = state
            .databases
            .iter()
            .find(|d| d.name == name && d.dk_generation == live)
            .cloned()
            .ok_or_else(|| Error::UnknownDatabase(name.clone()))?;
        if state
            .databases
            .iter()
            .any(|d| d.name == name && d.dk_generation != live)
        {
            let mut next = state.clone();
            next.databases.retain(|d| d.name != name || d.dk_generation == live);
            self.ks.commit_state(&mut state, next)?;
        }
        let cluster_id = state.cluster.cluster_id.clone();
        let new_generation = old.dk_generation + 1;
        let new_dk = DatabaseKey::generate()?;
        // What the new DK will have sealed once the table is re-wrapped under it (the binding
        // after the next commit records the exact count).
        let predicted = {
            let t = keys.read();
            crate::SealCounts {
                database_key: (t.len() + t.pending_len() + 2) as u64,
                metadata_key: t.seal_counts().metadata_key,
            }
        };
        let staged = DatabaseRecord::seal(
            self.ks.ck.read().as_ref(),
            &cluster_id,
            &name,
            &old.created,
            &new_dk,
            new_generation,
            state.cluster.generation,
            old.bound_generation,
            predicted,
        )?;
        let mut next = state.clone();
        KeystoreState::charge_ck(&mut next, 1)?;
        next.databases.push(staged.clone());
        self.ks.commit_state(&mut state, next)?;
        self.crash_here(RotationStep::DatabaseKeyStaged, "database key staged")?;

        let table = keys.table.upgradable_read();
        let count = table.len();
        let prepared = table.prepare_rewrap(default_backend().key(new_dk.expose_secret()), new_generation)?;
        let mut table = RwLockUpgradableReadGuard::upgrade(table);
        table.install_rewrap(prepared)?;
        drop(table);
        self.crash_here(RotationStep::DekTableRewrapped, "DEK table re-wrapped")?;

        let mut next = state.clone();
        next.databases
            .retain(|d| d.name != name || d.dk_generation == new_generation);
        self.ks.commit_state(&mut state, next)?;
        self.ks.audit.append(
            AuditRecord::new(AuditOp::RotateDatabaseKey, "database")
                .database(&name)
                .generation(new_generation.into())
                .count(count as u64)
                .detail(format!(
                    "database key generation {} -> {new_generation}; DEKs re-wrapped, old key destroyed",
                    old.dk_generation
                )),
        )?;
        Ok(new_generation)
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

/// One database's open keys: its DEK table (wrapped under the DK) and per-batch audit counting.
pub struct DatabaseKeys {
    name: String,
    table: RwLock<DekTable>,
    audit: Arc<AuditLog>,
    keystore: Arc<KeystoreState>,
    unwrapped: AtomicU64,
}

impl std::fmt::Debug for DatabaseKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseKeys").field("name", &self.name).finish()
    }
}

impl DatabaseKeys {
    fn new(name: &str, table: DekTable, keystore: Arc<KeystoreState>) -> Self {
        Self {
            name: name.to_owned(),
            table: RwLock::new(table),
            audit: keystore.audit.clone(),
            keystore,
            unwrapped: AtomicU64::new(0),
        }
    }

    fn read(&self) -> parking_lot::RwLockReadGuard<'_, DekTable> {
        self.table.read()
    }

    fn write(&self) -> parking_lot::RwLockWriteGuard<'_, DekTable> {
        self.table.write()
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The commit generation bound into this database's key record in the key store.
    pub fn bound_generation(&self) -> Result<u64> {
        self.keystore.bound_generation(&self.name)
    }

    /// Binds this database's latest committed generation into its authenticated key record in
    /// the key store, so a restore of older data files is detected on open, together with the
    /// seal counts of its keys. Only moves forward unless `accept_rollback` (a deliberate
    /// restore, audited). A cluster does this after every commit, a standalone store too.
    pub fn bind_generation(&self, generation: u64, accept_rollback: bool) -> Result<()> {
        let seals = self.read().seal_counts();
        self.keystore
            .bind_generation(&self.name, generation, accept_rollback, Some(seals))
    }

    /// Seals made so far under this database's key and newest metadata key.
    pub fn seal_counts(&self) -> crate::SealCounts {
        self.read().seal_counts()
    }

    /// Fresh DEKs for `n` new blocks (staged until [`DatabaseKeys::commit`]).
    pub fn generate(&self, n: usize) -> Result<Vec<(BlockId, DataKey)>> {
        self.write().generate(n)
    }

    /// Makes staged DEKs durable and records the batch in the audit log.
    pub fn commit(&self) -> Result<()> {
        let mut table = self.write();
        let pending = table.pending_len();
        if pending == 0 {
            return Ok(());
        }
        let result = table.commit();
        let record = AuditRecord::new(AuditOp::GenerateDataKey, "data")
            .database(&self.name)
            .generation(table.dk_generation().into())
            .count(pending as u64);
        self.audit.append(outcome(record, &result))?;
        result
    }

    /// Forgets staged DEKs.
    pub fn discard_pending(&self) {
        self.write().discard_pending();
    }

    /// Unwraps the DEK of one block (counted; see [`DatabaseKeys::flush_audit`]).
    pub fn data_key(&self, block_id: BlockId) -> Result<DataKey> {
        let result = self.read().data_key(block_id);
        match &result {
            Ok(_) => {
                self.unwrapped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.is_authentication() => {
                let _ = self.audit.append(
                    AuditRecord::new(AuditOp::AuthFailure, "data")
                        .database(&self.name)
                        .detail(format!("block {block_id}"))
                        .failed(e),
                );
            }
            Err(_) => {}
        }
        result
    }

    /// Writes one audit record counting the DEK unwraps since the last flush.
    pub fn flush_audit(&self) -> Result<()> {
        let n = self.unwrapped.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.audit.append(
                AuditRecord::new(AuditOp::UnwrapDataKey, "data")
                    .database(&self.name)
                    .count(n),
            )?;
        }
        Ok(())
    }

    /// Durably removes DEKs (e.g. of blocks replaced by a commit).
    pub fn remove(&self, ids: &[BlockId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write().remove(ids)?;
        self.audit.append(
            AuditRecord::new(AuditOp::RemoveDataKey, "data")
                .database(&self.name)
                .count(ids.len() as u64),
        )?;
        Ok(())
    }

    /// Durably removes every committed DEK whose block id is not in `referenced` (left by a
    /// commit that crashed before its commit point); returns how many.
    pub fn remove_unreferenced(&self, referenced: &std::collections::HashSet<BlockId>) -> Result<usize> {
        let stale: Vec<BlockId> = self
            .block_ids()
            .into_iter()
            .filter(|id| !referenced.contains(id))
            .collect();
        self.remove(&stale)?;
        Ok(stale.len())
    }

    /// Crypto-shreds DEKs: removes them and rewrites the table so no wrapped copy remains.
    pub fn shred(&self, ids: &[BlockId]) -> Result<()> {
        self.write().shred(ids)?;
        self.audit.append(
            AuditRecord::new(AuditOp::Shred, "data")
                .database(&self.name)
                .count(ids.len() as u64),
        )?;
        Ok(())
    }

    /// Rewrites the table without the wrapped copies of removed DEKs.
    pub fn compact(&self) -> Result<()> {
        self.write().compact()
    }

    /// The committed wrapped DEKs (no secret: for tests and tools that check re-wrapping).
    pub fn wrapped_entries(&self) -> Vec<crate::WrappedDek> {
        self.read().entries().to_vec()
    }

    /// Block ids with a committed DEK.
    pub fn block_ids(&self) -> Vec<BlockId> {
        self.read().entries().iter().map(|e| e.block_id).collect()
    }

    /// Number of committed DEKs.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True if no DEK is committed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The DK generation the table is wrapped under.
    pub fn dk_generation(&self) -> u32 {
        self.read().dk_generation()
    }

    /// The block id the next generated DEK gets.
    pub fn next_block_id(&self) -> BlockId {
        self.read().next_block_id()
    }

    /// Where the table stands: (table generation, length of its file). Both only grow, so a
    /// commit record can bind them and an older DEK table file is detected as a rollback.
    pub fn position(&self) -> (u64, u64) {
        let t = self.read();
        (t.generation(), t.file_len())
    }

    /// The id of the metadata key new metadata is sealed under.
    pub fn metadata_key_id(&self) -> u32 {
        self.read().metadata_key_id()
    }

    /// Adds a fresh metadata key (see [`DekTable::add_metadata_key`]).
    pub fn add_metadata_key(&self) -> Result<u32> {
        let id = self.write().add_metadata_key()?;
        self.audit.append(
            AuditRecord::new(AuditOp::Rekey, "database")
                .database(&self.name)
                .generation(id.into())
                .detail("new metadata key"),
        )?;
        Ok(id)
    }

    /// Destroys every metadata key but the newest and drops removed DEKs' wrapped copies.
    pub fn retire_metadata_keys(&self) -> Result<()> {
        self.write().retire_metadata_keys()?;
        self.audit.append(
            AuditRecord::new(AuditOp::Shred, "database")
                .database(&self.name)
                .detail("old metadata keys and removed DEKs destroyed"),
        )?;
        Ok(())
    }

    /// Seals metadata under metadata key `key_id` (see [`DekTable::seal_metadata`]).
    pub fn seal_metadata(&self, label: &str, key_id: u32, aad: &[u8], buf: &mut [u8]) -> Result<([u8; 12], [u8; 16])> {
        self.read().seal_metadata(label, key_id, aad, buf)
    }

    /// Opens metadata sealed by [`DatabaseKeys::seal_metadata`].
    pub fn open_metadata(
        &self,
        label: &str,
        key_id: u32,
        aad: &[u8],
        nonce: &[u8; 12],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<()> {
        self.read().open_metadata(label, key_id, aad, nonce, buf, tag)
    }

    /// The file holding the DEK table (for tests and `verify`).
    pub fn table_path(&self) -> PathBuf {
        self.read().current_path()
    }

    /// **Tests only** (feature `test-hooks`): this database's metadata keys.
    #[cfg(feature = "test-hooks")]
    pub fn insecure_metadata_key_bytes_for_tests(&self) -> Result<Vec<[u8; 32]>> {
        self.read().insecure_metadata_key_bytes()
    }

    /// Directory of the DEK table.
    pub fn table_dir(&self) -> PathBuf {
        self.read()
            .current_path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

impl Drop for DatabaseKeys {
    fn drop(&mut self) {
        let _ = self.flush_audit();
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

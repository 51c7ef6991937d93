//! The key records in a key-store directory on this machine: the cluster key wrapped by the
//! master-key provider, the database keys wrapped by the cluster key, the keyed audit chain and
//! the bound commit generations, in one atomically replaced file (see `keystore.rs`). A key
//! server keeps one of these per cluster.
use super::*;
use crate::backend::{GrantedDatabaseKey, KeyStoreBackend};
use crate::{SealCounts, validate_database_name};

/// A key store directory, open and locked.
pub struct LocalKeyStore {
    _lock: std::fs::File,
    provider: RwLock<Arc<dyn MasterKeyProvider>>,
    ks: KeystoreState,
}

impl std::fmt::Debug for LocalKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyStore")
            .field("dir", &self.ks.dir)
            .field("provider", &*self.provider.read())
            .finish()
    }
}

impl LocalKeyStore {
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
        let store = Self::assemble(lock, keystore_dir, provider, audit, file, &ck);
        store.save_anchor()?;
        Ok(store)
    }

    /// The master-key id the key store was written under (read without opening it), so a caller
    /// holding several candidate providers can pick the right one.
    pub fn stored_master_key_id(keystore_dir: &Path) -> Result<String> {
        Ok(KeystoreFile::load(keystore_dir)?.cluster.mk_key_id)
    }

    /// The key store directory.
    pub fn dir(&self) -> &Path {
        &self.ks.dir
    }

    /// The audit log of this key store.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.ks.audit
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
            ks: KeystoreState {
                dir: dir.to_owned(),
                audit,
                state: Mutex::new(file),
                ck: RwLock::new(default_backend().key(ck.expose_secret())),
            },
        }
    }

    /// Saves the key store with the audit chain's current anchor.
    fn save_anchor(&self) -> Result<()> {
        let mut state = self.ks.state();
        let next = state.clone();
        self.ks.commit_state(&mut state, next)
    }

    pub(crate) fn unwrap_cluster_key(file: &KeystoreFile, provider: &dyn MasterKeyProvider) -> Result<ClusterKey> {
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

    #[allow(clippy::too_many_arguments)]
    fn seal_record(
        &self,
        state: &KeystoreFile,
        name: &str,
        created: &str,
        key: &DatabaseKey,
        generation: u32,
        bound_generation: u64,
        seals: SealCounts,
    ) -> Result<DatabaseRecord> {
        DatabaseRecord::seal(
            self.ks.ck.read().as_ref(),
            &state.cluster.cluster_id,
            name,
            created,
            key,
            generation,
            state.cluster.generation,
            bound_generation,
            seals,
        )
    }
}

impl KeyStoreBackend for LocalKeyStore {
    fn cluster_id(&self) -> String {
        self.ks.state().cluster.cluster_id.clone()
    }

    fn location(&self) -> String {
        format!("key store {}", self.ks.dir.display())
    }

    fn info(&self) -> Result<HierarchyInfo> {
        let state = self.ks.state();
        let c = &state.cluster;
        let provider = self.provider.read().clone();
        Ok(HierarchyInfo {
            cluster_id: c.cluster_id.clone(),
            createtime: c.createtime.clone(),
            provider: c.provider_kind.clone(),
            provider_secure: provider.is_secure(),
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
            keystore: self.ks.dir.display().to_string(),
        })
    }

    fn databases(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.ks.state().databases.iter().map(|d| d.name.clone()).collect();
        names.dedup();
        Ok(names)
    }

    fn add_database_key(&self, name: &str, key: &DatabaseKey, seals: SealCounts) -> Result<()> {
        validate_database_name(name)?;
        let mut state = self.ks.state();
        if state.database(name).is_some() {
            return Err(Error::DatabaseExists(name.to_owned()));
        }
        let record = self.seal_record(&state, name, &crate::now_rfc3339(), key, 1, 0, seals)?;
        let mut next = state.clone();
        KeystoreState::charge_ck(&mut next, 1)?;
        next.databases.push(record);
        self.ks.commit_state(&mut state, next)?;
        self.ks.audit.append(
            AuditRecord::new(AuditOp::CreateDatabaseKey, "database")
                .database(name)
                .generation(1),
        )?;
        Ok(())
    }

    fn database_keys(&self, name: &str) -> Result<Vec<GrantedDatabaseKey>> {
        let state = self.ks.state();
        let records: Vec<&DatabaseRecord> = state.databases.iter().filter(|d| d.name == name).collect();
        if records.is_empty() {
            return Err(Error::UnknownDatabase(name.to_owned()));
        }
        let mut keys = Vec::with_capacity(records.len());
        for record in records {
            let result = record.open(self.ks.ck.read().as_ref(), &state.cluster.cluster_id);
            let audit = AuditRecord::new(AuditOp::Unwrap, "cluster")
                .database(name)
                .generation(record.dk_generation.into())
                .detail("database key");
            // A grant changes no key state: its record reaches the page cache before the key
            // leaves (only a machine crash, not a process kill, could lose it), so a key server
            // answering many nodes is not bounded by one fsync per grant. Every state change
            // stays a durable record.
            self.ks.audit.append_with(outcome(audit, &result), false)?;
            keys.push(GrantedDatabaseKey {
                generation: record.dk_generation,
                key: result?,
                seals: record.seals,
            });
        }
        Ok(keys)
    }

    fn keep_database_key(&self, name: &str, generation: u32, detail: &str) -> Result<()> {
        let mut state = self.ks.state();
        if !state
            .databases
            .iter()
            .any(|d| d.name == name && d.dk_generation == generation)
        {
            return Err(Error::UnknownDatabase(format!(
                "{name} (database key generation {generation})"
            )));
        }
        if !state
            .databases
            .iter()
            .any(|d| d.name == name && d.dk_generation != generation)
        {
            return Ok(());
        }
        let mut next = state.clone();
        next.databases
            .retain(|d| d.name != name || d.dk_generation == generation);
        self.ks.commit_state(&mut state, next)?;
        self.ks.audit.append(
            AuditRecord::new(AuditOp::RotateDatabaseKey, "database")
                .database(name)
                .generation(generation.into())
                .detail(detail),
        )?;
        Ok(())
    }

    fn stage_database_key(
        &self,
        name: &str,
        live_generation: u32,
        key: &DatabaseKey,
        seals: SealCounts,
    ) -> Result<u32> {
        let mut state = self.ks.state();
        let old = state
            .databases
            .iter()
            .find(|d| d.name == name && d.dk_generation == live_generation)
            .cloned()
            .ok_or_else(|| Error::UnknownDatabase(name.to_owned()))?;
        // Another record left by a rotation that failed part-way (an I/O error) goes first.
        if state
            .databases
            .iter()
            .any(|d| d.name == name && d.dk_generation != live_generation)
        {
            let mut next = state.clone();
            next.databases
                .retain(|d| d.name != name || d.dk_generation == live_generation);
            self.ks.commit_state(&mut state, next)?;
        }
        let new_generation = old.dk_generation + 1;
        let staged = self.seal_record(
            &state,
            name,
            &old.created,
            key,
            new_generation,
            old.bound_generation,
            seals,
        )?;
        let mut next = state.clone();
        KeystoreState::charge_ck(&mut next, 1)?;
        next.databases.push(staged);
        self.ks.commit_state(&mut state, next)?;
        Ok(new_generation)
    }

    fn bound_generation(&self, name: &str) -> Result<u64> {
        self.ks.bound_generation(name)
    }

    fn bind_generation(
        &self,
        name: &str,
        generation: u64,
        accept_rollback: bool,
        seals: Option<SealCounts>,
    ) -> Result<()> {
        self.ks.bind_generation(name, generation, accept_rollback, seals)
    }

    fn drop_database(&self, name: &str) -> Result<()> {
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

    fn rotate_cluster_key(&self) -> Result<u32> {
        let mut state = self.ks.state();
        let provider = self.provider.read().clone();
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

    fn rotate_master_key(&self, new_provider: Arc<dyn MasterKeyProvider>) -> Result<()> {
        new_provider.key_spec()?.require_symmetric_aes256()?;
        let mut state = self.ks.state();
        let old = self.provider.read().clone();
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

    fn provider(&self) -> Option<Arc<dyn MasterKeyProvider>> {
        Some(self.provider.read().clone())
    }

    fn append_audit(&self, record: AuditRecord, durable: bool) -> Result<()> {
        self.ks.audit.append_with(record, durable).map(|_| ())
    }

    fn audit_records(&self) -> Result<Vec<AuditRecord>> {
        self.ks.audit.records()
    }

    fn verify_audit(&self) -> Result<AuditVerifyReport> {
        let anchor = self.ks.state().audit_anchor.clone();
        self.ks.audit.verify(&anchor)
    }

    #[cfg(feature = "test-hooks")]
    fn insecure_key_bytes_for_tests(&self) -> Result<Vec<[u8; 32]>> {
        let state = self.ks.state();
        let ck = Self::unwrap_cluster_key(&state, self.provider.read().as_ref())?;
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
}

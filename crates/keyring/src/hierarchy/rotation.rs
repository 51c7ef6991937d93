//! Online rotations: master key, cluster key, database key; and their crash points (feature
//! `test-hooks`).
use super::*;

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

impl Keyring {
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
}

//! The open key store shared by the keyring and every database's keys: its state, the rollback
//! binding and the cluster key's seal count.
use super::*;

/// The open key store, shared by the keyring and every open database's keys (which bind their
/// commit generation through it).
pub(crate) struct KeystoreState {
    pub(crate) dir: PathBuf,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) state: Mutex<KeystoreFile>,
    pub(crate) ck: RwLock<Box<dyn AeadKey>>,
}

impl KeystoreState {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, KeystoreFile> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Saves `next` as the key store and makes it the in-memory state.
    pub(crate) fn commit_state(&self, state: &mut KeystoreFile, mut next: KeystoreFile) -> Result<()> {
        next.audit_anchor = self.audit.anchor();
        let saved = next.save(&self.dir);
        // Replaced but not known durable: memory follows the file on disk.
        if saved.as_ref().err().is_none_or(Error::is_not_durable) {
            *state = next;
        }
        saved
    }

    pub(crate) fn bound_generation(&self, name: &str) -> Result<u64> {
        self.state()
            .database(name)
            .map(|d| d.bound_generation)
            .ok_or_else(|| Error::UnknownDatabase(name.to_owned()))
    }

    /// Counts `n` more seals under the cluster key into `next` (refused past the limit).
    pub(crate) fn charge_ck(next: &mut KeystoreFile, n: u64) -> Result<()> {
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
    pub(crate) fn bind_generation(
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

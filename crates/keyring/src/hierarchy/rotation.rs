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
        self.backend.rotate_master_key(new_provider)
    }

    /// Rotates the cluster key: a new random CK (generation + 1, new context) wrapped by the
    /// master key, and every database key re-wrapped under it, in one atomic key-store replace.
    pub fn rotate_cluster_key(&self) -> Result<u32> {
        self.backend.check_access()?;
        self.backend.rotate_cluster_key()
    }

    /// Rotates a database key: a new random DK, every DEK and metadata key of the database
    /// re-wrapped under it into a new DEK-table generation, then the old DK destroyed. Block data
    /// is untouched. Readers keep reading throughout; writers wait for the switch.
    pub fn rotate_database_key(&self, keys: &DatabaseKeys) -> Result<u32> {
        let name = keys.name().to_owned();
        self.backend.check_access()?;
        // The live record is the one the open DEK table is wrapped under.
        let live = keys.dk_generation();
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
        let new_generation = self.backend.stage_database_key(&name, live, &new_dk, predicted)?;
        self.crash_here(RotationStep::DatabaseKeyStaged, "database key staged")?;

        let table = keys.table.upgradable_read();
        let count = table.len();
        let prepared = table.prepare_rewrap(default_backend().key(new_dk.expose_secret()), new_generation)?;
        let mut table = RwLockUpgradableReadGuard::upgrade(table);
        table.install_rewrap(prepared)?;
        drop(table);
        self.crash_here(RotationStep::DekTableRewrapped, "DEK table re-wrapped")?;

        // One audit record, written by the key store as it destroys the old key.
        self.backend.keep_database_key(
            &name,
            new_generation,
            &format!("database key generation {live} -> {new_generation}; {count} DEKs re-wrapped, old key destroyed"),
        )?;
        Ok(new_generation)
    }
}

//! One database's open keys: the DEK table under its database key, metadata sealing, the
//! rollback binding, per-batch audit counting.
use super::*;

/// One database's open keys: its DEK table (wrapped under the DK) and per-batch audit counting.
pub struct DatabaseKeys {
    pub(crate) name: String,
    pub(crate) table: RwLock<DekTable>,
    pub(crate) backend: Arc<dyn KeyStoreBackend>,
    pub(crate) unwrapped: AtomicU64,
}

impl std::fmt::Debug for DatabaseKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseKeys").field("name", &self.name).finish()
    }
}

impl DatabaseKeys {
    pub(crate) fn new(name: &str, table: DekTable, backend: Arc<dyn KeyStoreBackend>) -> Self {
        Self {
            name: name.to_owned(),
            table: RwLock::new(table),
            backend,
            unwrapped: AtomicU64::new(0),
        }
    }

    pub(crate) fn read(&self) -> parking_lot::RwLockReadGuard<'_, DekTable> {
        self.table.read()
    }

    pub(crate) fn write(&self) -> parking_lot::RwLockWriteGuard<'_, DekTable> {
        self.table.write()
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The commit generation bound into this database's key record in the key store.
    pub fn bound_generation(&self) -> Result<u64> {
        self.backend.bound_generation(&self.name)
    }

    /// Binds this database's latest committed generation into its authenticated key record in
    /// the key store, so a restore of older data files is detected on open, together with the
    /// seal counts of its keys. Only moves forward unless `accept_rollback` (a deliberate
    /// restore, audited). A cluster does this after every commit, a standalone store too.
    pub fn bind_generation(&self, generation: u64, accept_rollback: bool) -> Result<()> {
        let seals = self.read().seal_counts();
        self.backend
            .bind_generation(&self.name, generation, accept_rollback, Some(seals))
    }

    /// Seals made so far under this database's key and newest metadata key.
    pub fn seal_counts(&self) -> crate::SealCounts {
        self.read().seal_counts()
    }

    /// Fresh DEKs for `n` new blocks (staged until [`DatabaseKeys::commit`]).
    pub fn generate(&self, n: usize) -> Result<Vec<(BlockId, DataKey)>> {
        self.backend.check_access()?;
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
        self.backend.append_audit(outcome(record, &result), true)?;
        result
    }

    /// Forgets staged DEKs.
    pub fn discard_pending(&self) {
        self.write().discard_pending();
    }

    /// Unwraps the DEK of one block (counted; see [`DatabaseKeys::flush_audit`]).
    pub fn data_key(&self, block_id: BlockId) -> Result<DataKey> {
        // A key server's lease: reads stop within its TTL once access is revoked.
        self.backend.check_access()?;
        let result = self.read().data_key(block_id);
        match &result {
            Ok(_) => {
                self.unwrapped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.is_authentication() => {
                let _ = self.backend.append_audit(
                    AuditRecord::new(AuditOp::AuthFailure, "data")
                        .database(&self.name)
                        .detail(format!("block {block_id}"))
                        .failed(e),
                    true,
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
            self.backend.append_audit(
                AuditRecord::new(AuditOp::UnwrapDataKey, "data")
                    .database(&self.name)
                    .count(n),
                true,
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
        self.backend.append_audit(
            AuditRecord::new(AuditOp::RemoveDataKey, "data")
                .database(&self.name)
                .count(ids.len() as u64),
            true,
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
        self.backend.append_audit(
            AuditRecord::new(AuditOp::Shred, "data")
                .database(&self.name)
                .count(ids.len() as u64),
            true,
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
        self.backend.append_audit(
            AuditRecord::new(AuditOp::Rekey, "database")
                .database(&self.name)
                .generation(id.into())
                .detail("new metadata key"),
            true,
        )?;
        Ok(id)
    }

    /// Destroys every metadata key but the newest and drops removed DEKs' wrapped copies.
    pub fn retire_metadata_keys(&self) -> Result<()> {
        self.write().retire_metadata_keys()?;
        self.backend.append_audit(
            AuditRecord::new(AuditOp::Shred, "database")
                .database(&self.name)
                .detail("old metadata keys and removed DEKs destroyed"),
            true,
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

//! Retention: slots and DEKs of replaced manifests are released only once no snapshot holds
//! them (a drop or re-key releases its keys at once).
use super::*;

/// The writer's bookkeeping of slots and retired manifests.
pub(crate) struct WriteState {
    /// Slots referenced by the committed manifest or by a retired one a reader still holds.
    pub(crate) in_use: std::collections::HashSet<u64>,
    /// Replaced manifests, oldest first, with the slots and DEKs their successor released.
    pub(crate) retired: std::collections::VecDeque<Retired>,
}

/// A replaced manifest and what its successor freed: released only once no scan holds the
/// manifest (or an older one), so a scan that started before a commit reads a consistent
/// snapshot even while re-keying, compaction of the last block or a drop reuses slots.
pub(crate) struct Retired {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) freed: Vec<(u64, u64)>,
    pub(crate) dropped: Vec<(u64, u64)>,
    /// True once the DEKs of `freed` left the DEK table (a re-key releases them at once; the
    /// slots stay reserved until no scan holds the manifest).
    pub(crate) freed_released: bool,
    /// True once the DEKs of `dropped` were shredded (a drop does so at once).
    pub(crate) dropped_released: bool,
}

pub(crate) fn block_ids(blocks: &[(u64, u64)]) -> Vec<u64> {
    blocks.iter().map(|(id, _)| *id).collect()
}

/// DEKs whose blocks no snapshot can read any more, gathered over one or more stores of a
/// database so they leave the DEK table in one removal (one frame, one audit record).
#[derive(Debug, Default)]
pub(crate) struct Released {
    freed: Vec<u64>,
    dropped: Vec<u64>,
}

impl Released {
    /// Removes the freed DEKs and crypto-shreds the dropped ones.
    pub(crate) fn release(self, keys: &DatabaseKeys) -> Result<()> {
        keys.remove(&self.freed)?;
        if !self.dropped.is_empty() {
            keys.shred(&self.dropped)?;
        }
        Ok(())
    }
}

/// Releases what no snapshot of `stores` (all of one database) holds any more, with one
/// removal from the DEK table for all of them.
pub(crate) fn reclaim_stores(stores: &[&Store], keys: &DatabaseKeys) -> Result<()> {
    let mut released = Released::default();
    for store in stores {
        store.collect_released(&mut store.state.lock(), &mut released);
    }
    released.release(keys)
}

impl Store {
    /// Makes a written, prepared commit current after the commit point. What it replaced is
    /// retired, released once no snapshot holds it (see [`reclaim_stores`]).
    pub(crate) fn install(&self, state: &mut WriteState, prepared: Prepared) -> CommitInfo {
        let generation = prepared.manifest.generation;
        state.in_use.extend(prepared.allocated.iter().copied());
        let old = std::mem::replace(&mut *self.manifest.write(), Arc::new(prepared.manifest));
        manifest::remove_older(&self.shared.medium, generation.saturating_sub(1));
        state.retired.push_back(Retired {
            manifest: old,
            freed: prepared.freed,
            dropped: prepared.dropped,
            freed_released: false,
            dropped_released: false,
        });
        CommitInfo {
            generation,
            rows: prepared.rows,
            blocks_written: prepared.allocated.len() as u64,
        }
    }

    /// Releases the slots and DEKs of retired manifests no scan or snapshot holds any more,
    /// oldest first (a slot freed by commit N+1 may still be read through manifest N or older).
    /// Freed DEKs are removed; those of dropped tables are crypto-shredded. Waits for a running
    /// transaction (which reclaims when it begins and after it commits anyway).
    pub fn reclaim(&self) -> Result<()> {
        self.reclaim_locked(&mut self.state.lock())
    }

    pub(crate) fn reclaim_locked(&self, state: &mut WriteState) -> Result<()> {
        let mut released = Released::default();
        self.collect_released(state, &mut released);
        released.release(&self.shared.keys)?;
        self.trim_free_tails(state)
    }

    /// Cuts every class's segment files after its highest slot in use (see
    /// [`crate::segment::Segments::trim`]); runs with the write state held, so no transaction
    /// has slots in flight.
    fn trim_free_tails(&self, state: &WriteState) -> Result<()> {
        let segments = &self.shared.segments;
        let mut keep = vec![0u64; usize::from(segments.top_class()) + 1];
        for &slot in &state.in_use {
            let (class, index) = (crate::slot::class_of(slot), crate::slot::index_of(slot));
            if let Some(k) = keep.get_mut(usize::from(class)) {
                *k = (*k).max(index + 1);
            }
        }
        for (class, &k) in keep.iter().enumerate() {
            segments.trim(class as u8, k)?;
        }
        Ok(())
    }

    /// Frees the slots of retired manifests no snapshot holds any more and adds their DEKs (not
    /// released yet) to `out`.
    pub(crate) fn collect_released(&self, state: &mut WriteState, out: &mut Released) {
        while state
            .retired
            .front()
            .is_some_and(|r| Arc::strong_count(&r.manifest) == 1)
        {
            let r = state.retired.pop_front().expect("checked");
            for (_, s) in r.freed.iter().chain(r.dropped.iter()) {
                state.in_use.remove(s);
            }
            if !r.freed_released {
                out.freed.extend(block_ids(&r.freed));
            }
            if !r.dropped_released {
                out.dropped.extend(block_ids(&r.dropped));
            }
        }
    }

    /// Crypto-shreds the DEKs of dropped tables *now*, without waiting for the scans that still
    /// hold older manifests (they end with a "table was dropped" error when they reach such a
    /// block). DEKs that appends or re-keys freed stay until no snapshot can read them. A drop
    /// calls this so its keys are gone when it returns; the wrapped copies leave the file at the
    /// compaction or key rotation the caller runs next.
    pub fn release_dropped_keys(&self) -> Result<()> {
        let mut state = self.state.lock();
        for r in state.retired.iter_mut().filter(|r| !r.dropped_released) {
            // Removed from the live table here; the caller's compaction or key rotation
            // rewrites the file without them (one rewrite for every slice of a drop).
            self.shared.keys.remove(&block_ids(&r.dropped))?;
            r.dropped_released = true;
        }
        self.reclaim_locked(&mut state)
    }

    /// Removes the DEKs every replaced manifest freed or dropped *now*, without waiting for the
    /// scans that still hold those manifests (they end with a clear error when they reach a
    /// block whose key is gone); the slots stay reserved until the scans are dropped. A re-key
    /// calls this so its old keys are gone when it returns. The wrapped copies leave the file at
    /// the next compaction or key rotation, which the caller runs.
    pub fn release_retired_keys(&self) -> Result<()> {
        let mut state = self.state.lock();
        for r in state.retired.iter_mut() {
            if !r.freed_released {
                self.shared.keys.remove(&block_ids(&r.freed))?;
                r.freed_released = true;
            }
            if !r.dropped_released {
                self.shared.keys.remove(&block_ids(&r.dropped))?;
                r.dropped_released = true;
            }
        }
        self.reclaim_locked(&mut state)
    }
}

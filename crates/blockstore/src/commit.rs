//! The commit protocol, in one place for every caller.
//!
//! One commit spans one or more stores that share a DEK table (a standalone store, or every
//! slice of a cluster database). The order is fixed here:
//!
//! 1. every store's new blocks durable (`fdatasync` per touched segment, slices in parallel);
//! 2. the staged DEKs appended to the DEK table and synced (once for all stores);
//! 3. every *changed* store's manifest N+1 written and synced (in parallel; an untouched store
//!    keeps its generation and writes nothing);
//! 4. the [`CommitPoint`] written — the standalone store's `CURRENT`, the cluster's sealed commit
//!    record: after this the commit exists, before it nothing of it is referenced;
//! 5. every store installs its manifest (readers of the store see it), then the commit point is
//!    told, so a caller with its own read view (the cluster's snapshot) swaps it in one step;
//! 6. the new generation is bound into the key store (rollback detection).
//!
//! A failure before step 4 leaves the previous commit whole: the staged DEKs are discarded and
//! the slots written are unreferenced, reused by the next commit and their DEKs reclaimed on
//! open. A failure after step 4 still makes the commit visible in memory (the disk shows it),
//! and the error is reported.

use sealstore_keyring::DatabaseKeys;

use crate::medium::ManifestId;
use crate::store::{CommitInfo, Prepared, Store, Transaction, reclaim_stores};
use crate::{Error, Result};

/// A point of the protocol right after which a test can stop it dead, as if the process died
/// there (see [`CommitPoint::crash_here`]; feature `test-hooks`).
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitStep {
    /// Blocks written and durable on every store; nothing else.
    BlocksDurable,
    /// DEK table appended and durable.
    DeksDurable,
    /// Every changed store's manifest N+1 written (not current).
    ManifestsWritten,
    /// The commit point written; no store installed yet.
    CommitPointWritten,
    /// Every store installed; the new generation not yet bound into the key store.
    Installed,
}

/// Whether the commit point reached the disk durably.
#[derive(Debug)]
pub enum Durability<E> {
    /// Written and synced.
    Durable,
    /// Replaced, but the sync that makes the replacement durable failed: it is still the commit
    /// point the disk shows, so the commit is installed and this error reported afterwards.
    NotDurable(E),
}

/// The caller's commit point: what makes a prepared commit *the* commit.
pub trait CommitPoint {
    /// The caller's error type (the protocol's own errors convert into it).
    type Error: From<Error>;

    /// Makes the commit the one the disk shows, atomically. `manifests[i]` is store `i`'s
    /// manifest (generation and, on object storage, tag) after this commit, `dek_position` the
    /// DEK table's (generation, length) with this commit's DEKs durable.
    fn write(
        &mut self,
        manifests: &[ManifestId],
        dek_position: (u64, u64),
    ) -> std::result::Result<Durability<Self::Error>, Self::Error>;

    /// Every store installed its new manifest: readers may see the commit (a caller with its
    /// own read view swaps it here, in one step for all stores).
    fn installed(&mut self) {}

    /// Binds the new generation into the key store.
    fn bind(&mut self) -> std::result::Result<(), Self::Error>;

    /// Returns an error to stop the protocol dead at `step` (crash tests; feature
    /// `test-hooks`); `Ok` otherwise.
    #[cfg(feature = "test-hooks")]
    fn crash_here(&self, _step: CommitStep) -> std::result::Result<(), Self::Error> {
        Ok(())
    }
}

/// A crash point of the protocol: compiled only into builds with `test-hooks`.
macro_rules! crash_point {
    ($point:expr, $step:ident) => {
        #[cfg(feature = "test-hooks")]
        $point.crash_here(CommitStep::$step)?;
    };
}

/// What one commit did, per store and in total.
#[derive(Debug, Clone, Default)]
pub struct CommitOutcome {
    /// Per store, in the order given.
    pub stores: Vec<CommitInfo>,
    /// Blocks written over all stores.
    pub blocks_written: u64,
}

/// Runs the protocol over `txns` (one per store, all sealing under `keys`), with `point` as the
/// commit point. Stores whose transaction changed nothing keep their generation.
pub fn commit<P: CommitPoint>(
    keys: &DatabaseKeys,
    mut txns: Vec<Transaction<'_>>,
    point: &mut P,
) -> std::result::Result<CommitOutcome, P::Error> {
    let prepared = match prepare_all(keys, &mut txns, point) {
        Ok(p) => p,
        Err(e) => {
            keys.discard_pending();
            return Err(e);
        }
    };
    for t in &mut txns {
        t.mark_finished();
    }
    let durability = prepared.durability;
    crash_point!(point, CommitPointWritten);
    // Past the commit point: every store installs (nothing there can fail), readers are let
    // in, then what no snapshot holds any more is released in one batch for all stores (a
    // failure there only leaves unreferenced DEKs, which the next open removes; it is reported,
    // the commit stands).
    let mut outcome = CommitOutcome::default();
    for (t, p) in txns.iter_mut().zip(prepared.stores) {
        let store = t.store();
        let info = match p {
            Some(p) => {
                outcome.blocks_written += p.allocated_blocks();
                store.install(t.state_mut(), p)
            }
            None => CommitInfo {
                generation: store.generation(),
                ..Default::default()
            },
        };
        outcome.stores.push(info);
    }
    let stores: Vec<&Store> = txns.iter().map(|t| t.store()).collect();
    // The writer state is released before readers see the commit.
    drop(txns);
    point.installed();
    let reclaimed = reclaim_stores(&stores, keys);
    crash_point!(point, Installed);
    point.bind()?;
    if let Durability::NotDurable(e) = durability {
        return Err(e);
    }
    reclaimed?;
    Ok(outcome)
}

struct PreparedCommit<E> {
    /// Per store: its prepared commit, or `None` when it changed nothing.
    stores: Vec<Option<Prepared>>,
    durability: Durability<E>,
}

/// Steps 1–4: everything up to and including the commit point.
fn prepare_all<P: CommitPoint>(
    keys: &DatabaseKeys,
    txns: &mut [Transaction<'_>],
    point: &mut P,
) -> std::result::Result<PreparedCommit<P::Error>, P::Error> {
    for t in txns.iter() {
        if !std::ptr::eq(&**t.store().keys(), keys) {
            return Err(Error::Internal("a commit spans stores of different databases".into()).into());
        }
    }
    // Every store's last blocks first (each writer thread then syncs its slice on its own),
    // then the waits.
    for t in txns.iter_mut() {
        t.finish_blocks()?;
    }
    let mut stores = Vec::with_capacity(txns.len());
    for t in txns.iter_mut() {
        let changed = t.changed();
        let p = t.prepare()?;
        stores.push(changed.then_some(p));
    }
    crash_point!(point, BlocksDurable);
    keys.commit().map_err(Error::from)?;
    crash_point!(point, DeksDurable);
    write_manifests(txns, &stores)?;
    crash_point!(point, ManifestsWritten);
    let manifests: Vec<ManifestId> = txns
        .iter()
        .zip(&stores)
        .map(|(t, p)| {
            p.as_ref()
                .map_or_else(|| t.store().manifest().id(), Prepared::manifest_id)
        })
        .collect();
    let durability = point.write(&manifests, keys.position())?;
    Ok(PreparedCommit { stores, durability })
}

/// Seals and syncs every changed store's new manifest, stores in parallel.
fn write_manifests(txns: &[Transaction<'_>], stores: &[Option<Prepared>]) -> Result<()> {
    let work: Vec<_> = txns
        .iter()
        .zip(stores)
        .filter_map(|(t, p)| p.as_ref().map(|p| (t.store(), p)))
        .collect();
    match work.as_slice() {
        [] => Ok(()),
        [(store, p)] => store.write_prepared(p),
        _ => std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .iter()
                .map(|(store, p)| scope.spawn(move || store.write_prepared(p)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Internal("a manifest writer panicked".into())))
                })
                .collect::<Result<Vec<()>>>()
                .map(drop)
        }),
    }
}

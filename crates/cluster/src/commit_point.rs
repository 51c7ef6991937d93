//! The cluster's commit point for blockstore's commit protocol: the sealed commit record that
//! names every slice's manifest generation. Writing it is the cluster commit; once every slice
//! installed, the database's read snapshot is swapped in one step.
use std::sync::Arc;

#[cfg(feature = "test-hooks")]
use sealstore_blockstore::CommitStep;
use sealstore_blockstore::{CommitPoint, Durability, ManifestId, Store, Transaction};

use crate::commit::CommitRecord;
use crate::database::Database;
use crate::snapshot::Committed;
use crate::{Error, Result};

/// Commits `record` (the next catalog; its generation is the current one and is advanced here).
pub(crate) struct ClusterCommitPoint<'a> {
    db: &'a Database,
    record: CommitRecord,
    /// Whether injected crashes apply (the data commits; not the catalog-only ones).
    #[cfg(feature = "test-hooks")]
    crashable: bool,
}

impl<'a> ClusterCommitPoint<'a> {
    pub(crate) fn new(db: &'a Database, record: CommitRecord) -> Self {
        Self {
            db,
            record,
            #[cfg(feature = "test-hooks")]
            crashable: true,
        }
    }

    /// A commit point no injected crash stops (catalog-only commits such as a re-key's state).
    pub(crate) fn uncrashable(self) -> Self {
        Self {
            #[cfg(feature = "test-hooks")]
            crashable: false,
            ..self
        }
    }

    /// The record as committed (after the protocol ran).
    pub(crate) fn record(&self) -> &CommitRecord {
        &self.record
    }
}

impl CommitPoint for ClusterCommitPoint<'_> {
    type Error = Error;

    fn write(&mut self, manifests: &[ManifestId], dek_position: (u64, u64)) -> Result<Durability<Error>> {
        self.record.generation += 1;
        self.record.slices = manifests.iter().map(|m| m.generation).collect();
        self.record.dek_table = dek_position;
        match self.record.write(self.db.dir(), self.db.database_keys()) {
            Ok(()) => Ok(Durability::Durable),
            // Replaced but not known durable (the directory fsync failed) is still the commit
            // point: the new record is what the disk shows, so memory must follow it.
            Err(Error::Key(e)) if e.is_not_durable() => Ok(Durability::NotDurable(Error::Key(e))),
            Err(e) => Err(e),
        }
    }

    fn installed(&mut self) {
        let committed = Committed {
            record: self.record.clone(),
            slices: self.db.stores().iter().map(Store::snapshot).collect(),
        };
        self.db.publish(Arc::new(committed));
    }

    fn bind(&mut self) -> Result<()> {
        Ok(self.db.database_keys().bind_generation(self.record.generation, false)?)
    }

    #[cfg(feature = "test-hooks")]
    fn crash_here(&self, step: CommitStep) -> Result<()> {
        use crate::database::CrashPoint;
        if !self.crashable {
            return Ok(());
        }
        self.db.crash_here(match step {
            CommitStep::BlocksDurable => CrashPoint::SlicesPrepared,
            CommitStep::DeksDurable => CrashPoint::DeksCommitted,
            CommitStep::ManifestsWritten => CrashPoint::ManifestsWritten,
            CommitStep::CommitPointWritten => CrashPoint::CommitRecordWritten,
            CommitStep::Installed => CrashPoint::SlicesInstalled,
        })
    }
}

impl Database {
    /// Runs the commit protocol over `txns` (one per slice) with `record` as the next catalog.
    pub(crate) fn commit_txns(&self, txns: Vec<Transaction<'_>>, record: CommitRecord) -> Result<(CommitRecord, u64)> {
        let mut point = ClusterCommitPoint::new(self, record);
        let outcome = sealstore_blockstore::commit::commit(self.database_keys(), txns, &mut point)?;
        Ok((point.record().clone(), outcome.blocks_written))
    }

    /// Commits a new catalog without touching any slice's data (a new generation, bound).
    pub(crate) fn commit_record_only(&self, record: CommitRecord) -> Result<()> {
        let txns = self.stores().iter().map(Store::begin).collect();
        let mut point = ClusterCommitPoint::new(self, record).uncrashable();
        sealstore_blockstore::commit::commit(self.database_keys(), txns, &mut point)?;
        Ok(())
    }
}

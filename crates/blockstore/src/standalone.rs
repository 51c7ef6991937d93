//! The standalone store: one slice committed on its own, with `CURRENT` as its commit point,
//! and the one-commit conveniences (`create_table`, `append`, `drop_table`) over it. Built on
//! [`crate::store`] and [`crate::commit`]; neither knows it.
use arrow_array::RecordBatch;
use arrow_schema::Schema;

use crate::commit::{CommitPoint, Durability};
use crate::medium::ManifestId;
use crate::store::{CommitInfo, Store, Transaction};
use crate::{Error, Result};

impl Store {
    /// Creates a table (one commit).
    pub fn create_table(&self, name: &str, schema: &Schema) -> Result<CommitInfo> {
        let mut t = self.begin();
        t.create_table(name, schema)?;
        t.commit()
    }

    /// Drops a table and crypto-shreds its blocks' DEKs (one commit): when this returns, no
    /// wrapped copy of them remains in the DEK table's files, whatever scans still run.
    pub fn drop_table(&self, name: &str) -> Result<CommitInfo> {
        let mut t = self.begin();
        t.drop_table(name)?;
        let info = t.commit()?;
        self.release_dropped_keys()?;
        self.shared.keys.compact()?;
        Ok(info)
    }

    /// Appends one batch as one commit.
    pub fn append(&self, table: &str, batch: &RecordBatch) -> Result<CommitInfo> {
        self.append_all(table, std::iter::once(batch.clone()))
    }

    /// Appends all batches as one atomic commit.
    pub fn append_all(&self, table: &str, batches: impl IntoIterator<Item = RecordBatch>) -> Result<CommitInfo> {
        let mut t = self.begin();
        for b in batches {
            t.append(table, &b)?;
        }
        t.commit()
    }
}

impl Transaction<'_> {
    /// Commits a standalone store through [`crate::commit`] with `CURRENT` as the commit point:
    /// blocks → DEK table → manifest → `CURRENT` → the new generation bound into the key store.
    /// Refused while the binding lags the committed generation and cannot be brought up to
    /// date, so no commit can be rolled back unnoticed.
    pub fn commit(mut self) -> Result<CommitInfo> {
        let keys = self.store.shared.keys.clone();
        let current = self.store.generation();
        if keys.bound_generation()? < current {
            keys.bind_generation(current, false)?;
        }
        // A standalone commit always makes a new generation, even an empty one.
        self.touch();
        let store = self.store;
        let mut point = CurrentFile::new(store);
        let mut outcome = crate::commit::commit(&keys, vec![self], &mut point)?;
        Ok(outcome.stores.pop().unwrap_or_default())
    }
}

/// The standalone store's commit point: `CURRENT` names the committed manifest generation.
#[derive(Debug)]
pub struct CurrentFile<'s> {
    store: &'s crate::Store,
    generation: u64,
}

impl<'s> CurrentFile<'s> {
    /// The commit point of `store`.
    pub fn new(store: &'s crate::Store) -> Self {
        Self {
            store,
            generation: store.generation(),
        }
    }
}

impl CommitPoint for CurrentFile<'_> {
    type Error = Error;

    fn write(&mut self, manifests: &[ManifestId], _dek_position: (u64, u64)) -> Result<Durability<Error>> {
        self.generation = manifests[0].generation;
        match crate::manifest::write_current(self.store.medium(), manifests[0]) {
            Ok(()) => Ok(Durability::Durable),
            Err(Error::Key(e)) if e.is_not_durable() => Ok(Durability::NotDurable(Error::Key(e))),
            Err(e) => Err(e),
        }
    }

    fn bind(&mut self) -> Result<()> {
        Ok(self.store.keys().bind_generation(self.generation, false)?)
    }
}

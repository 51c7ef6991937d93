//! A read view of one store at one committed generation: an `Arc` of the manifest, never a lock
//! held while reading. The slots and DEKs it can read stay reserved until the last clone is
//! dropped (the store's retention counts the manifest's holders).
use std::sync::Arc;

use arrow_schema::SchemaRef;

use crate::Result;
use crate::manifest::Manifest;
use crate::store::{Shared, Store};

/// One store at one commit.
#[derive(Clone)]
pub struct Snapshot {
    shared: Arc<Shared>,
    manifest: Arc<Manifest>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("dir", &self.shared.dir)
            .field("generation", &self.manifest.generation)
            .finish()
    }
}

impl Store {
    /// The latest commit, pinned for as long as the snapshot lives.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            shared: self.shared.clone(),
            manifest: self.manifest(),
        }
    }
}

impl Snapshot {
    /// The manifest this snapshot reads.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// The store generation this snapshot reads.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
    }

    /// Table names.
    pub fn tables(&self) -> Vec<String> {
        self.manifest.tables.iter().map(|t| t.name.clone()).collect()
    }

    /// A table's schema.
    pub fn schema(&self, table: &str) -> Result<SchemaRef> {
        Ok(self.manifest.table(table)?.schema())
    }

    /// Rows in a table.
    pub fn row_count(&self, table: &str) -> Result<u64> {
        Ok(self.manifest.table(table)?.rows)
    }

    /// Blocks a table holds (every column).
    pub fn block_count(&self, table: &str) -> Result<u64> {
        let t = self.manifest.table(table)?;
        Ok(t.columns.iter().map(|c| c.blocks.len() as u64).sum())
    }

    pub(crate) fn into_parts(self) -> (Arc<Shared>, Arc<Manifest>) {
        (self.shared, self.manifest)
    }
}

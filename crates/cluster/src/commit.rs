//! The cluster commit record of one database: the manifest generation of every slice and the
//! table catalog (distribution styles), sealed under the database key. Replacing it atomically
//! is the commit point of a cluster-wide commit.
//!
//! `COMMIT` is a sealed envelope (`sealstore_blockstore::envelope`): magic `SSCC`, scope 0, the
//! JSON body below.
use std::path::Path;

use sealstore_blockstore::envelope;
use sealstore_keyring::{DatabaseKeys, fsutil};
use serde::{Deserialize, Serialize};

use crate::distribute::Distribution;
use crate::{Error, Result};

/// Current commit-record version (4: the shared envelope; 3 had a 36-byte header of its own).
pub(crate) const COMMIT_VERSION: u16 = 4;
const KIND: envelope::Kind = envelope::Kind {
    magic: b"SSCC",
    version: COMMIT_VERSION,
    label: "cluster-commit",
    what: "cluster commit record",
};

/// One table in the cluster catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub distribution: Distribution,
}

/// The state a cluster commit makes current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub generation: u64,
    /// Manifest generation of each slice, by slice index.
    pub slices: Vec<u64>,
    /// The store id (hex) each slice directory must hold, by slice index: a slice directory
    /// copied over another, or from another database or cluster, fails to open.
    pub stores: Vec<String>,
    pub tables: Vec<TableEntry>,
    /// The DEK table's (generation, file length) right after this commit's DEKs were made
    /// durable: an older DEK table file is a rollback.
    pub dek_table: (u64, u64),
    /// A data re-key in progress, so a restart resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekey: Option<RekeyState>,
}

/// A re-key in progress: every block with an id below `below_block_id` (of `table`, or of every
/// table) is still sealed under its old DEK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekeyState {
    pub below_block_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

impl CommitRecord {
    /// Seals and atomically replaces `COMMIT` in `dir`.
    pub fn write(&self, dir: &Path, keys: &DatabaseKeys) -> Result<()> {
        let body = serde_json::to_vec(self).map_err(|e| Error::InvalidOption(e.to_string()))?;
        let sealed = envelope::seal(&KIND, self.generation, 0, &[], body, keys)?;
        fsutil::write_atomic(&dir.join("COMMIT"), &sealed, 0o600)?;
        Ok(())
    }

    /// Reads and authenticates `COMMIT`.
    pub fn read(dir: &Path, keys: &DatabaseKeys) -> Result<Self> {
        let path = dir.join("COMMIT");
        let bytes = fsutil::read(&path)?;
        let corrupt = |reason: &str| Error::Corrupt {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let (header, body) = envelope::open(&KIND, &bytes, &[], keys, &path)?;
        let record: CommitRecord = serde_json::from_slice(&body).map_err(|e| corrupt(&e.to_string()))?;
        if record.generation != header.generation || header.scope != 0 {
            return Err(corrupt("generation in the body differs from the header"));
        }
        if record.stores.len() != record.slices.len() {
            return Err(corrupt("store ids do not match the slices"));
        }
        Ok(record)
    }

    /// The identity slice `slice` must have.
    pub fn store_identity(&self, slice: usize) -> Option<sealstore_blockstore::StoreIdentity> {
        let hex = self.stores.get(slice)?;
        let mut store_id = [0u8; sealstore_blockstore::STORE_ID_LEN];
        if hex.len() != 2 * store_id.len() {
            return None;
        }
        for (i, b) in store_id.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(sealstore_blockstore::StoreIdentity {
            slice_id: u32::try_from(slice).ok()?,
            store_id,
        })
    }

    /// The catalog entry of a table.
    pub fn table(&self, name: &str) -> Option<&TableEntry> {
        self.tables.iter().find(|t| t.name == name)
    }
}

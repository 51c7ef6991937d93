//! The cluster commit record of one database: the manifest generation of every slice and the
//! table catalog (distribution styles), sealed under the database key. Replacing it atomically
//! is the commit point of a cluster-wide commit.
//!
//! `COMMIT`: `"SSCC" | version u16 | 0 u16 | generation u64 | metadata_key_id u32 | nonce[12] | len u32
//! | sealed JSON | tag[16]`.
use std::path::Path;

use sealstore_keyring::{DatabaseKeys, fsutil};
use serde::{Deserialize, Serialize};

use crate::distribute::Distribution;
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"SSCC";
/// Current commit-record version.
pub const COMMIT_VERSION: u16 = 3;
const HEADER_LEN: usize = 36;
const LABEL: &str = "cluster-commit";

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

fn header(generation: u64, key_id: u32, nonce: &[u8; 12], len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&COMMIT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&generation.to_le_bytes());
    h[16..20].copy_from_slice(&key_id.to_le_bytes());
    h[20..32].copy_from_slice(nonce);
    h[32..36].copy_from_slice(&len.to_le_bytes());
    h
}

impl CommitRecord {
    /// Seals and atomically replaces `COMMIT` in `dir`.
    pub fn write(&self, dir: &Path, keys: &DatabaseKeys) -> Result<()> {
        let mut body = serde_json::to_vec(self).map_err(|e| Error::InvalidOption(e.to_string()))?;
        let key_id = keys.metadata_key_id();
        let aad = header(self.generation, key_id, &[0; 12], body.len() as u32);
        let (nonce, tag) = keys.seal_metadata(LABEL, key_id, &aad, &mut body)?;
        let mut out = header(self.generation, key_id, &nonce, body.len() as u32).to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        fsutil::write_atomic(&dir.join("COMMIT"), &out, 0o600)?;
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
        if bytes.len() < HEADER_LEN + 16 || &bytes[..4] != MAGIC {
            return Err(corrupt("not a cluster commit record"));
        }
        if u16::from_le_bytes([bytes[4], bytes[5]]) != COMMIT_VERSION {
            return Err(corrupt("unsupported commit record version"));
        }
        let generation = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let key_id = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
        let nonce: [u8; 12] = bytes[20..32].try_into().expect("12 bytes");
        let len = u32::from_le_bytes(bytes[32..36].try_into().expect("4 bytes")) as usize;
        if bytes.len() != HEADER_LEN + len + 16 {
            return Err(corrupt("length does not match the header"));
        }
        let mut body = bytes[HEADER_LEN..HEADER_LEN + len].to_vec();
        let tag: [u8; 16] = bytes[HEADER_LEN + len..].try_into().expect("16 bytes");
        keys.open_metadata(
            LABEL,
            key_id,
            &header(generation, key_id, &[0; 12], len as u32),
            &nonce,
            &mut body,
            &tag,
        )
        .map_err(|_| sealstore_keyring::Error::Authentication {
            what: format!(
                "cluster commit record {} (tampered, or sealed under another database key)",
                path.display()
            ),
        })?;
        let record: CommitRecord = serde_json::from_slice(&body).map_err(|e| corrupt(&e.to_string()))?;
        if record.generation != generation {
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

//! The cluster commit record of one database: the manifest generation of every slice and the
//! table catalog (distribution styles), sealed under the database key. Replacing it atomically
//! is the commit point of a cluster-wide commit.
//!
//! `COMMIT`: `"SSCC" | version u16 | 0 u16 | generation u64 | nonce[12] | len u32 | sealed JSON | tag[16]`.
use std::path::Path;

use sealstore_keyring::{DatabaseKeys, fsutil};
use serde::{Deserialize, Serialize};

use crate::distribute::Distribution;
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"SSCC";
/// Current commit-record version.
pub const COMMIT_VERSION: u16 = 1;
const HEADER_LEN: usize = 32;
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
    pub tables: Vec<TableEntry>,
}

fn header(generation: u64, nonce: &[u8; 12], len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&COMMIT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&generation.to_le_bytes());
    h[16..28].copy_from_slice(nonce);
    h[28..32].copy_from_slice(&len.to_le_bytes());
    h
}

impl CommitRecord {
    /// Seals and atomically replaces `COMMIT` in `dir`.
    pub fn write(&self, dir: &Path, keys: &DatabaseKeys) -> Result<()> {
        let mut body = serde_json::to_vec(self).map_err(|e| Error::InvalidOption(e.to_string()))?;
        let aad = header(self.generation, &[0; 12], body.len() as u32);
        let (nonce, tag) = keys.seal_metadata(LABEL, &aad, &mut body)?;
        let mut out = header(self.generation, &nonce, body.len() as u32).to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        fsutil::write_atomic(&dir.join("COMMIT"), &out, 0o600)?;
        Ok(())
    }

    /// Reads and authenticates `COMMIT`.
    pub fn read(dir: &Path, keys: &DatabaseKeys) -> Result<Self> {
        let path = dir.join("COMMIT");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
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
        let nonce: [u8; 12] = bytes[16..28].try_into().expect("12 bytes");
        let len = u32::from_le_bytes(bytes[28..32].try_into().expect("4 bytes")) as usize;
        if bytes.len() != HEADER_LEN + len + 16 {
            return Err(corrupt("length does not match the header"));
        }
        let mut body = bytes[HEADER_LEN..HEADER_LEN + len].to_vec();
        let tag: [u8; 16] = bytes[HEADER_LEN + len..].try_into().expect("16 bytes");
        keys.open_metadata(
            LABEL,
            &header(generation, &[0; 12], len as u32),
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
        Ok(record)
    }

    /// The catalog entry of a table.
    pub fn table(&self, name: &str) -> Option<&TableEntry> {
        self.tables.iter().find(|t| t.name == name)
    }
}

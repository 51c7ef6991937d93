//! The manifest (catalog) of one store: tables, schemas and every column's blocks with their
//! zone maps, sealed under the database key so nothing in it leaks on disk.
//!
//! `manifest-<generation:020>.ssm` is a sealed envelope (`crate::envelope`): magic `SSMF`, the
//! slice id as its scope, and the store id of the slice (from `STORE`, checked against the
//! cluster's commit record) bound into the AAD with the database name the keyring adds: a
//! manifest copied to another slice, store or database fails to open. `CURRENT` names
//! the committed generation: `"SSCU" | generation u64 | crc32 u32`, replaced atomically.
use std::sync::Arc;

use sealstore_keyring::DatabaseKeys;
use serde::{Deserialize, Serialize};

use crate::envelope;
use crate::identity::StoreIdentity;
use crate::medium::{ManifestId, StoreMedium};
use crate::types::ColumnType;
use crate::zone::ZoneMap;
use crate::{Error, Result};

/// Current manifest format version.
pub const MANIFEST_VERSION: u16 = 4;
const MANIFEST_MAGIC: &[u8; 4] = b"SSMF";
const CURRENT_MAGIC: &[u8; 4] = b"SSCU";
const SEAL_LABEL: &str = "manifest";
/// Highest slot number a manifest may name: 2^32 slots per size class (`crate::slot`).
pub const MAX_SLOT: u64 = 1 << (32 + crate::slot::CLASS_BITS);

/// One block of a column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub block_id: u64,
    /// Size class and index of the block's slot (`crate::slot::compose`).
    pub slot: u64,
    pub row_start: u64,
    pub rows: u32,
    /// False for the last, partly filled block of a column (rewritten by the next append).
    pub full: bool,
    /// Zone map of the whole block.
    pub zone: ZoneMap,
    /// Zone map of each page, in order (finer pruning than whole blocks).
    pub pages: Vec<ZoneMap>,
}

/// One column and its blocks in row order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMeta {
    pub name: String,
    pub ty: ColumnType,
    pub blocks: Vec<BlockMeta>,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    pub id: u32,
    pub name: String,
    pub rows: u64,
    pub columns: Vec<ColumnMeta>,
}

impl TableMeta {
    /// The Arrow schema of the table.
    pub fn schema(&self) -> arrow_schema::SchemaRef {
        Arc::new(arrow_schema::Schema::new(
            self.columns
                .iter()
                .map(|c| arrow_schema::Field::new(&c.name, c.ty.arrow(), true))
                .collect::<Vec<_>>(),
        ))
    }

    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| Error::UnknownColumn {
                table: self.name.clone(),
                column: name.to_owned(),
            })
    }

    /// Every block id of the table.
    pub fn block_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.columns.iter().flat_map(|c| c.blocks.iter().map(|b| b.block_id))
    }
}

/// The catalog at one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub generation: u64,
    /// On object storage, the random tag of the commit that wrote this generation (part of the
    /// object's name, sealed here so an object renamed onto another tag fails to open); 0 and
    /// absent in a directory store.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tag: u64,
    pub next_table_id: u32,
    pub tables: Vec<TableMeta>,
}

fn is_zero(tag: &u64) -> bool {
    *tag == 0
}

impl Manifest {
    /// The generation and tag naming this manifest.
    pub fn id(&self) -> ManifestId {
        ManifestId {
            generation: self.generation,
            tag: self.tag,
        }
    }

    pub fn table(&self, name: &str) -> Result<&TableMeta> {
        self.tables
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::UnknownTable(name.to_owned()))
    }

    pub fn table_mut(&mut self, name: &str) -> Result<&mut TableMeta> {
        self.tables
            .iter_mut()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::UnknownTable(name.to_owned()))
    }

    /// Checks the invariants the store relies on: slots in range and used once, block ids
    /// unique, table ids and names unique, row ranges of each column contiguous. An
    /// authenticated manifest always passes; this is defence in depth for the decoder.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mut slots = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        let mut table_ids = std::collections::HashSet::new();
        for t in &self.tables {
            if !names.insert(t.name.as_str()) || !table_ids.insert(t.id) {
                return Err(format!("table `{}` appears twice", t.name));
            }
            for c in &t.columns {
                let mut next_row = 0u64;
                for b in &c.blocks {
                    if b.slot >= MAX_SLOT || !slots.insert(b.slot) {
                        return Err(format!("slot {} out of range or used twice", b.slot));
                    }
                    if !ids.insert(b.block_id) {
                        return Err(format!("block {} appears twice", b.block_id));
                    }
                    if b.row_start != next_row {
                        return Err(format!("block {} does not continue its column's rows", b.block_id));
                    }
                    next_row = b.row_start.saturating_add(u64::from(b.rows));
                }
                if next_row != t.rows {
                    return Err(format!(
                        "column `{}` of `{}` does not hold the table's rows",
                        c.name, t.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Decodes a manifest body (the JSON inside the seal) and checks it.
    pub fn decode(body: &[u8]) -> std::result::Result<Self, String> {
        let m: Manifest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        m.validate()?;
        Ok(m)
    }

    /// Every (block id, slot) referenced.
    pub fn blocks(&self) -> impl Iterator<Item = &BlockMeta> {
        self.tables
            .iter()
            .flat_map(|t| t.columns.iter().flat_map(|c| c.blocks.iter()))
    }
}

/// File (or object) name of a manifest generation.
pub(crate) fn manifest_name(id: ManifestId) -> String {
    match id.tag {
        0 => format!("manifest-{:020}.ssm", id.generation),
        tag => format!("manifest-{:020}-{tag:016x}.ssm", id.generation),
    }
}

/// What a manifest is, as a sealed envelope (`crate::envelope`).
const KIND: envelope::Kind = envelope::Kind {
    magic: MANIFEST_MAGIC,
    version: MANIFEST_VERSION,
    label: SEAL_LABEL,
    what: "manifest",
};

/// Seals and durably writes a manifest generation (not yet current). The envelope's scope is
/// the slice id; its AAD also binds the store id.
pub(crate) fn write(
    medium: &StoreMedium,
    manifest: &Manifest,
    identity: &StoreIdentity,
    keys: &DatabaseKeys,
) -> Result<()> {
    let name = manifest_name(manifest.id());
    let body = serde_json::to_vec(manifest).map_err(|e| Error::corrupt(medium.path_of(&name), 0, e.to_string()))?;
    let sealed = envelope::seal(
        &KIND,
        manifest.generation,
        identity.slice_id,
        &identity.store_id,
        body,
        keys,
    )?;
    medium.write_durable(&name, &sealed)
}

/// Splits a manifest file into its envelope parts; checks magic, version and lengths (no key
/// needed: the fuzz target calls this on arbitrary bytes).
#[cfg(feature = "test-hooks")]
pub(crate) fn parse_image(bytes: &[u8]) -> std::result::Result<envelope::Image<'_>, (u64, String)> {
    envelope::parse(&KIND, bytes)
}

/// Reads, authenticates and parses one manifest generation.
pub(crate) fn read(
    medium: &StoreMedium,
    id: ManifestId,
    identity: &StoreIdentity,
    keys: &DatabaseKeys,
) -> Result<Manifest> {
    let slice_id = identity.slice_id;
    let generation = id.generation;
    let name = manifest_name(id);
    let path = medium.path_of(&name);
    let bytes = medium.read(&name)?;
    let (header, body) = envelope::open(&KIND, &bytes, &identity.store_id, keys, &path)?;
    let (file_gen, file_slice) = (header.generation, header.scope);
    if file_slice == slice_id && file_gen < generation {
        return Err(Error::Key(sealstore_keyring::Error::RollbackDetected {
            what: format!("manifest {}", path.display()),
            detail: format!("it is generation {file_gen}, the commit record names generation {generation}"),
        }));
    }
    if file_gen != generation || file_slice != slice_id {
        return Err(Error::Key(sealstore_keyring::Error::Authentication {
            what: format!(
                "manifest {} (it is generation {file_gen} of slice {file_slice}, expected {generation} of slice {slice_id}: moved or replayed)",
                path.display()
            ),
        }));
    }
    let manifest = Manifest::decode(&body).map_err(|e| Error::corrupt(&path, envelope::HEADER_LEN as u64, e))?;
    if manifest.generation != generation || manifest.tag != id.tag {
        return Err(Error::corrupt(
            &path,
            envelope::HEADER_LEN as u64,
            "manifest body generation or tag differs from its name",
        ));
    }
    Ok(manifest)
}

/// Reads the commit pointer: `CURRENT` in a directory; on objects the highest
/// `CURRENT-<generation:020>` object (each created once, by the commit it names).
pub(crate) fn read_current(medium: &StoreMedium) -> Result<ManifestId> {
    let name = match medium {
        StoreMedium::Dir(_) => CURRENT_FILE.to_owned(),
        StoreMedium::Objects { .. } => medium
            .list()?
            .into_iter()
            .filter(|n| {
                n.strip_prefix("CURRENT-")
                    .is_some_and(|g| g.len() == 20 && g.bytes().all(|b| b.is_ascii_digit()))
            })
            .max()
            .ok_or_else(|| Error::corrupt(medium.path_of("CURRENT-*"), 0, "no commit pointer object"))?,
    };
    let path = medium.path_of(&name);
    let b = medium.read(&name)?;
    let tagged = medium.is_objects();
    let len = if tagged { CURRENT_LEN + 8 } else { CURRENT_LEN };
    if b.len() != len || &b[..4] != CURRENT_MAGIC || crc32fast::hash(&b[..len - 4]).to_le_bytes() != b[len - 4..] {
        return Err(Error::corrupt(&path, 0, "CURRENT pointer is damaged"));
    }
    let generation = u64::from_le_bytes(b[4..12].try_into().expect("8 bytes"));
    let tag = if tagged {
        u64::from_le_bytes(b[12..20].try_into().expect("8 bytes"))
    } else {
        0
    };
    if tagged && name != current_object_name(generation) {
        return Err(Error::corrupt(&path, 4, format!("it names generation {generation}")));
    }
    Ok(ManifestId { generation, tag })
}

const CURRENT_FILE: &str = "CURRENT";
/// `"SSCU" | generation u64 | crc32 u32` (objects: `| tag u64` before the crc).
const CURRENT_LEN: usize = 16;

fn current_object_name(generation: u64) -> String {
    format!("CURRENT-{generation:020}")
}

/// Points the commit pointer at `id`: `CURRENT` replaced atomically, or a new
/// `CURRENT-<generation>` object created (refused if a racing writer created it first).
pub(crate) fn write_current(medium: &StoreMedium, id: ManifestId) -> Result<()> {
    let mut b = Vec::with_capacity(CURRENT_LEN + 8);
    b.extend_from_slice(CURRENT_MAGIC);
    b.extend_from_slice(&id.generation.to_le_bytes());
    if medium.is_objects() {
        b.extend_from_slice(&id.tag.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    match medium {
        StoreMedium::Dir(_) => medium.write_durable(CURRENT_FILE, &b),
        StoreMedium::Objects { .. } => medium.write_new(&current_object_name(id.generation), &b),
    }
}

/// Deletes manifest files older than `keep_from` (directories only: on object storage a
/// vacuum removes what no commit references).
pub(crate) fn remove_older(medium: &StoreMedium, keep_from: u64) {
    if medium.is_objects() {
        return;
    }
    let Ok(names) = medium.list() else { return };
    for name in names {
        if let Some(g) = name
            .strip_prefix("manifest-")
            .and_then(|n| n.strip_suffix(".ssm"))
            .and_then(|n| n.parse::<u64>().ok())
            && g < keep_from
        {
            medium.remove(&name);
        }
    }
}

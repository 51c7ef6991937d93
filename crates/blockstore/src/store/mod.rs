//! One slice's store: tables, transactions and the commit protocol.
//!
//! Commit order (docs/format.md, "Commit protocol"): blocks → fdatasync segments → DEK-table append + fdatasync →
//! manifest generation N+1 (temp, fsync, rename, fsync dir) → atomic switch of `CURRENT`.
//! A crash before the switch leaves generation N whole; slots and DEKs that only the unfinished
//! commit used are unreferenced and reclaimed on open.
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use parking_lot::{Mutex, MutexGuard, RwLock};
use sealstore_keyring::aead::{AeadBackend, default_backend};
use sealstore_keyring::{DatabaseKeys, fsutil};
use serde::Serialize;

use crate::block::{self, BlockHeader};
use crate::identity::{STORE_ID_LEN, StoreIdentity};
use crate::manifest::{self, BlockMeta, ColumnMeta, Manifest, TableMeta};
use crate::medium::{ManifestId, StoreMedium};
use crate::segment::{FileSegments, ObjectSegments, Segments};
use crate::types::ColumnType;
use crate::writer::{BlockOut, ColumnWriter, split_pages};
use crate::{Error, Result};

mod read;
mod retention;
mod schema;
mod slot_writer;
mod txn;

pub(crate) use read::*;
pub(crate) use retention::*;
pub(crate) use schema::*;
pub use schema::{table_columns, validate_table_name};
pub(crate) use slot_writer::*;
pub use txn::{Prepared, Transaction};

/// Store layout file: `"SSST" | version u16 | 0 u16 | block_size u32 | slice_id u32 |
/// slots_per_segment u32 | store_id[16] | crc32 u32`. Unauthenticated by itself: the slice id
/// and store id are bound into every manifest's AAD, and the cluster's sealed commit record
/// names the store id each slice must have, so an edited or copied `STORE` fails to open.
const STORE_FILE: &str = "STORE";
const STORE_MAGIC: &[u8; 4] = b"SSST";
/// Current store layout version.
pub const STORE_VERSION: u16 = 4;
const STORE_FILE_LEN: usize = 40;

/// Named offsets of the `STORE` file's fields.
mod store_file {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const BLOCK_SIZE: usize = 8;
    pub const SLICE_ID: usize = 12;
    pub const SLOTS_PER_SEGMENT: usize = 16;
    pub const STORE_ID: usize = 20;
    pub const CRC: usize = 36;
}

/// Another AEAD for the blocks of a store than the build's default AES-256-GCM backend: the
/// benchmarks' unsealed baseline runs the real pipeline with a no-op one. Feature `test-hooks`
/// only — no product build can switch a store's cipher.
#[cfg(feature = "test-hooks")]
#[derive(Clone, Copy)]
pub struct BlockCipher(pub &'static dyn AeadBackend);

#[cfg(feature = "test-hooks")]
impl std::fmt::Debug for BlockCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BlockCipher").field(&self.0.name()).finish()
    }
}

/// How to create a store.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Bytes per block: a power of two from 64 KiB to 16 MiB.
    pub block_size: usize,
    /// The slice this store is (bound into every block header).
    pub slice_id: u32,
    /// The blocks' AEAD (default: the build's AES-256-GCM backend).
    #[cfg(feature = "test-hooks")]
    pub block_cipher: Option<BlockCipher>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            block_size: block::DEFAULT_BLOCK_SIZE,
            slice_id: 0,
            #[cfg(feature = "test-hooks")]
            block_cipher: None,
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Open this manifest generation instead of the one `CURRENT` names (the cluster passes the
    /// generation its own commit record holds).
    pub generation: Option<u64>,
    /// With `generation`, on object storage: the tag of the commit that wrote it.
    pub tag: u64,
    /// Remove DEKs no manifest references (only when this store owns its DEK table alone).
    pub reclaim_keys: bool,
    /// The identity the store must have (the cluster passes the one its sealed commit record
    /// names): a slice directory copied or moved to another index fails to open.
    pub expected: Option<StoreIdentity>,
    /// Change nothing in the directory: no `CURRENT` catch-up, no key reclaim, segments opened
    /// read-only, every transaction refused.
    pub read_only: bool,
    /// Standalone stores only: accept a manifest older than the generation bound into the key
    /// store (a deliberate restore), re-binding it.
    pub accept_rollback: bool,
    /// The blocks' AEAD (default: the build's AES-256-GCM backend).
    #[cfg(feature = "test-hooks")]
    pub block_cipher: Option<BlockCipher>,
}

/// What a commit did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommitInfo {
    pub generation: u64,
    pub rows: u64,
    pub blocks_written: u64,
}

/// One block that failed verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyFailure {
    pub table: String,
    pub column: String,
    pub block_id: u64,
    pub path: PathBuf,
    pub offset: u64,
    pub error: String,
}

/// Per-table numbers.
#[derive(Debug, Clone, Serialize)]
pub struct TableStats {
    pub name: String,
    pub rows: u64,
    pub columns: usize,
    pub blocks: u64,
}

/// Storage numbers of a store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    pub generation: u64,
    pub block_size: usize,
    pub slots_total: u64,
    pub slots_used: u64,
    pub segments: usize,
    pub bytes_on_disk: u64,
    pub tables: Vec<TableStats>,
}

/// The block store of one slice of one database. Shared by reference: readers take
/// [`Store::snapshot`]s (an `Arc` clone of the committed manifest, never a lock held while
/// reading), and one [`Transaction`] at a time holds the write state.
pub struct Store {
    pub(crate) shared: Arc<Shared>,
    pub(crate) manifest: RwLock<Arc<Manifest>>,
    /// What only the writer touches; a transaction holds it from `begin` to its end.
    state: Mutex<WriteState>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.shared.dir)
            .field("generation", &self.manifest.read().generation)
            .finish()
    }
}

fn write_store_file(medium: &StoreMedium, block_size: usize, identity: &StoreIdentity, spp: u32) -> Result<()> {
    let mut b = Vec::with_capacity(STORE_FILE_LEN);
    b.extend_from_slice(STORE_MAGIC);
    b.extend_from_slice(&STORE_VERSION.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(block_size as u32).to_le_bytes());
    b.extend_from_slice(&identity.slice_id.to_le_bytes());
    b.extend_from_slice(&spp.to_le_bytes());
    b.extend_from_slice(&identity.store_id);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    medium.write_new(STORE_FILE, &b).map_err(|e| match e {
        Error::Key(sealstore_keyring::Error::AlreadyExists { path }) => {
            Error::corrupt(path, 0, "a store already exists here")
        }
        Error::Storage(sealstore_storage::Error::AlreadyExists { .. }) => {
            Error::corrupt(medium.path_of(STORE_FILE), 0, "a store already exists here")
        }
        other => other,
    })
}

/// A fresh random tag for a manifest written on object storage (0 in a directory).
pub(crate) fn new_tag(medium: &StoreMedium) -> Result<u64> {
    if !medium.is_objects() {
        return Ok(0);
    }
    let mut b = [0u8; 8];
    loop {
        sealstore_keyring::fill_random(&mut b)?;
        let tag = u64::from_le_bytes(b);
        if tag != 0 {
            return Ok(tag);
        }
    }
}

/// Slots per segment file of the store's full-size class (recorded in `STORE`; the smaller
/// classes follow from their sizes).
fn slots_per_segment(block_size: usize) -> u32 {
    crate::segment::slots_per_segment(crate::slot::top_class(block_size)) as u32
}

fn read_store_file(medium: &StoreMedium) -> Result<(usize, StoreIdentity)> {
    let path = medium.path_of(STORE_FILE);
    let b = medium.read(STORE_FILE)?;
    use store_file::*;
    let version_at = |b: &[u8]| u16::from_le_bytes([b[VERSION], b[VERSION + 1]]);
    if b.len() >= VERSION + 2 && &b[MAGIC..MAGIC + 4] == STORE_MAGIC && version_at(&b) != STORE_VERSION {
        return Err(Error::corrupt(
            &path,
            VERSION as u64,
            format!(
                "store format {} is not supported by this sealstore (format {STORE_VERSION}); re-create the store and load its data again",
                version_at(&b)
            ),
        ));
    }
    if b.len() != STORE_FILE_LEN
        || &b[MAGIC..MAGIC + 4] != STORE_MAGIC
        || crc32fast::hash(&b[..CRC]).to_le_bytes() != b[CRC..]
    {
        return Err(Error::corrupt(&path, 0, "store layout file is damaged"));
    }
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let block_size = u32_at(BLOCK_SIZE) as usize;
    // The segment size is derived from the block size: a hostile count cannot size allocations.
    if !block::valid_block_size(block_size as u64) || u32_at(SLOTS_PER_SEGMENT) != slots_per_segment(block_size) {
        return Err(Error::corrupt(
            &path,
            BLOCK_SIZE as u64,
            "invalid block size or segment size",
        ));
    }
    let identity = StoreIdentity {
        slice_id: u32_at(SLICE_ID),
        store_id: b[STORE_ID..STORE_ID + STORE_ID_LEN].try_into().expect("16 bytes"),
    };
    Ok((block_size, identity))
}

impl Store {
    /// Creates an empty store in `dir` (which must not hold one).
    pub fn create(dir: &Path, keys: Arc<DatabaseKeys>, options: StoreOptions) -> Result<Self> {
        Self::create_in(StoreMedium::Dir(dir.to_owned()), keys, options)
    }

    /// Creates an empty store in a directory or under an object-storage prefix.
    pub fn create_in(medium: StoreMedium, keys: Arc<DatabaseKeys>, options: StoreOptions) -> Result<Self> {
        if !block::valid_block_size(options.block_size as u64) {
            return Err(Error::InvalidBlockSize(options.block_size as u64));
        }
        if let Some(dir) = medium.dir() {
            fsutil::create_dir_durable(dir)?;
        }
        let spp = slots_per_segment(options.block_size);
        let mut identity = StoreIdentity {
            slice_id: options.slice_id,
            store_id: [0; STORE_ID_LEN],
        };
        sealstore_keyring::fill_random(&mut identity.store_id)?;
        write_store_file(&medium, options.block_size, &identity, spp)?;
        let m = Manifest {
            generation: 1,
            tag: new_tag(&medium)?,
            next_table_id: 1,
            tables: Vec::new(),
        };
        manifest::write(&medium, &m, &identity, &keys)?;
        manifest::write_current(&medium, m.id())?;
        // Opened at generation 1 explicitly: a cluster's slices never bind on their own; a
        // standalone store binds at its first commit.
        Self::open_in(
            medium,
            keys,
            OpenOptions {
                expected: Some(identity),
                generation: Some(1),
                tag: m.tag,
                #[cfg(feature = "test-hooks")]
                block_cipher: options.block_cipher,
                ..Default::default()
            },
        )
    }

    /// Opens a store at its committed generation (or the one given).
    pub fn open(dir: &Path, keys: Arc<DatabaseKeys>, options: OpenOptions) -> Result<Self> {
        Self::open_in(StoreMedium::Dir(dir.to_owned()), keys, options)
    }

    /// Opens a store in a directory or under an object-storage prefix.
    pub fn open_in(medium: StoreMedium, keys: Arc<DatabaseKeys>, options: OpenOptions) -> Result<Self> {
        let dir = &medium.display_path();
        let (block_size, identity) = read_store_file(&medium)?;
        if let Some(expected) = options.expected
            && expected != identity
        {
            let detail = if expected.slice_id != identity.slice_id {
                format!(
                    "it holds slice {}, this is slice {}",
                    identity.slice_id, expected.slice_id
                )
            } else {
                "its store id differs from the one the commit record names (copied from another store)".to_owned()
            };
            return Err(Error::WrongStore {
                path: dir.to_owned(),
                detail,
            });
        }
        let slice_id = identity.slice_id;
        let current = manifest::read_current(&medium);
        let id = match options.generation {
            Some(generation) => ManifestId {
                generation,
                tag: options.tag,
            },
            None => current
                .as_ref()
                .copied()
                .map_err(|e| Error::corrupt(dir.join("CURRENT"), 0, e.to_string()))?,
        };
        let m = manifest::read(&medium, id, &identity, &keys)?;
        if options.generation.is_none() {
            // A standalone store: `CURRENT` is its commit point, checked against the binding in
            // the key store before anything is trusted or reclaimed.
            let bound = keys.bound_generation()?;
            if m.generation < bound && !options.accept_rollback {
                return Err(Error::Key(sealstore_keyring::Error::RollbackDetected {
                    what: format!("store {} (CURRENT and its manifest)", dir.display()),
                    detail: format!(
                        "it is at generation {}, the key store is bound to generation {bound}",
                        m.generation
                    ),
                }));
            }
            if m.generation != bound {
                keys.bind_generation(m.generation, options.accept_rollback)?;
            }
        }
        if !options.read_only
            && let Some(dir) = medium.dir()
        {
            // A cluster's slice: keep `CURRENT` in step with the commit record (on objects the
            // record alone names the generation).
            if options.generation.is_some() && current.ok() != Some(id) {
                manifest::write_current(&medium, id)?;
            }
            fsutil::sweep_temp_files(dir)?;
        }
        let segments = match &medium {
            StoreMedium::Dir(dir) => Segments::Files(FileSegments::open(dir, block_size, !options.read_only)?),
            StoreMedium::Objects { storage, prefix } => Segments::Objects(Box::new(ObjectSegments::open(
                storage.clone(),
                prefix,
                block_size,
                !options.read_only,
                m.blocks().map(|b| b.slot),
            )?)),
        };
        let mut in_use = std::collections::HashSet::new();
        for b in m.blocks() {
            // The manifest is authenticated; a class this store cannot have is a bug or a
            // forged key, reported rather than read with a wrong slot size.
            if crate::slot::class_of(b.slot) > segments.top_class() {
                return Err(Error::corrupt(
                    medium.path_of(&manifest::manifest_name(m.id())),
                    0,
                    format!(
                        "block {} names size class {} above the store's largest",
                        b.block_id,
                        crate::slot::class_of(b.slot)
                    ),
                ));
            }
            in_use.insert(b.slot);
        }
        if options.reclaim_keys && !options.read_only {
            keys.remove_unreferenced(&m.blocks().map(|b| b.block_id).collect())?;
        }
        let shared = Shared {
            dir: dir.to_owned(),
            medium,
            block_size,
            slice_id,
            identity,
            read_only: options.read_only,
            keys,
            segments,
            backend: block_backend(&options),
        };
        Ok(Self {
            shared: Arc::new(shared),
            manifest: RwLock::new(Arc::new(m)),
            state: Mutex::new(WriteState {
                in_use,
                retired: Default::default(),
            }),
        })
    }

    /// Who this store is (slice index and store id).
    pub fn identity(&self) -> StoreIdentity {
        self.shared.identity
    }

    /// The store directory (on object storage: `<url>/<prefix>`, for messages).
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Where the store's files live.
    pub fn medium(&self) -> &StoreMedium {
        &self.shared.medium
    }

    /// Bytes per block.
    pub fn block_size(&self) -> usize {
        self.shared.block_size
    }

    /// The database keys this store seals under.
    pub fn keys(&self) -> &Arc<DatabaseKeys> {
        &self.shared.keys
    }

    /// A snapshot of the committed manifest.
    pub fn manifest(&self) -> Arc<Manifest> {
        self.manifest.read().clone()
    }

    /// Committed generation.
    pub fn generation(&self) -> u64 {
        self.manifest.read().generation
    }

    /// Table names.
    pub fn tables(&self) -> Vec<String> {
        self.manifest.read().tables.iter().map(|t| t.name.clone()).collect()
    }

    /// A table's schema.
    pub fn schema(&self, table: &str) -> Result<arrow_schema::SchemaRef> {
        Ok(self.manifest.read().table(table)?.schema())
    }

    /// Rows in a table.
    pub fn row_count(&self, table: &str) -> Result<u64> {
        Ok(self.manifest.read().table(table)?.rows)
    }

    /// Starts a transaction; nothing is visible until it commits. Waits while another
    /// transaction on this store is open (one writer at a time; readers never wait).
    pub fn begin(&self) -> Transaction<'_> {
        let mut state = self.state.lock();
        // Scans that finished since the last commit release their snapshot's slots now. A
        // failure only leaves unreferenced DEKs behind, which the next open reclaims.
        let _ = self.reclaim_locked(&mut state);
        let manifest = (**self.manifest.read()).clone();
        Transaction {
            store: self,
            state,
            changed: false,
            manifest,
            writers: HashMap::new(),
            allocated: Vec::new(),
            cursor: Vec::new(),
            freed: Vec::new(),
            dropped: Vec::new(),
            finished: false,
            rows: 0,
            io: None,
        }
    }

    /// Starts a transaction whose sealed blocks go to a dedicated writer thread over a channel
    /// holding at most `in_flight_blocks` blocks (the cluster's write path).
    pub fn begin_pipelined(&self, in_flight_blocks: usize) -> Result<Transaction<'_>> {
        let io = SlotWriter::spawn(self.shared.clone(), in_flight_blocks)?;
        let mut t = self.begin();
        t.io = Some(io);
        Ok(t)
    }

    /// Seals the new manifest of a prepared commit (durable, not yet current).
    pub(crate) fn write_prepared(&self, prepared: &Prepared) -> Result<()> {
        self.require_writable()?;
        manifest::write(
            &self.shared.medium,
            &prepared.manifest,
            &self.shared.identity,
            &self.shared.keys,
        )
    }

    pub(crate) fn require_writable(&self) -> Result<()> {
        if self.shared.read_only {
            return Err(Error::Key(sealstore_keyring::Error::ReadOnly {
                what: format!("store {}", self.shared.dir.display()),
            }));
        }
        Ok(())
    }

    /// Checks, without decrypting, that every referenced slot still holds the block the manifest
    /// names. A slot holding an *older* block (block ids only grow) or never written at all means
    /// the segment file was restored from an older copy: a rollback. Other mismatches are left to
    /// scans and `verify`, which report them as authentication failures.
    pub fn check_segments(&self) -> Result<()> {
        let m = self.manifest();
        let mut head = [0u8; block::HEADER_LEN];
        for b in m.blocks() {
            // Segment files grow as slots are written: a slot past the end was never written.
            let found = if self.shared.segments.past_end(b.slot, head.len()) {
                Ok((true, None))
            } else {
                self.shared.segments.read_slot(b.slot, &mut head).map(|()| {
                    let never_written = head.iter().all(|&x| x == 0);
                    (never_written, BlockHeader::decode(&head).map(|h| h.block_id).ok())
                })
            };
            let (path, offset) = self.shared.segments.location(b.slot);
            let stale = |detail: String| {
                Error::Key(sealstore_keyring::Error::RollbackDetected {
                    what: format!("segment file {}", path.display()),
                    detail,
                })
            };
            match found {
                Ok((true, _)) => {
                    return Err(stale(format!(
                        "offset {offset} was never written, the manifest names block {} there",
                        b.block_id
                    )));
                }
                Ok((false, Some(id))) if id < b.block_id => {
                    return Err(stale(format!(
                        "offset {offset} holds block {id}, the manifest names the newer block {}",
                        b.block_id
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Authenticates and decodes every block; returns every failure found.
    pub fn verify(&self) -> Vec<VerifyFailure> {
        let m = self.manifest();
        let mut failures = Vec::new();
        let mut buf = Vec::new();
        for t in &m.tables {
            for (ci, c) in t.columns.iter().enumerate() {
                for b in &c.blocks {
                    if let Err(e) = self.shared.read_block(t, ci, b, &mut buf) {
                        let (path, offset) = self.shared.segments.location(b.slot);
                        failures.push(VerifyFailure {
                            table: t.name.clone(),
                            column: c.name.clone(),
                            block_id: b.block_id,
                            path,
                            offset,
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
        failures
    }

    /// Storage numbers.
    pub fn stats(&self) -> StoreStats {
        let m = self.manifest();
        let bytes_on_disk = self.shared.segments.stored_bytes();
        StoreStats {
            generation: m.generation,
            block_size: self.shared.block_size,
            slots_total: self.shared.segments.total_slots(),
            slots_used: m.blocks().count() as u64,
            segments: self.shared.segments.segment_count(),
            bytes_on_disk,
            tables: m
                .tables
                .iter()
                .map(|t| TableStats {
                    name: t.name.clone(),
                    rows: t.rows,
                    columns: t.columns.len(),
                    blocks: t.columns.iter().map(|c| c.blocks.len() as u64).sum(),
                })
                .collect(),
        }
    }

    /// Paths of this store's segment files.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.shared.segments.paths()
    }

    /// File and offset of a slot (for tests and tools).
    pub fn slot_location(&self, slot: u64) -> (PathBuf, u64) {
        self.shared.segments.location(slot)
    }

    /// Bytes of a slot: the size class its block was sealed in (for tests and tools).
    pub fn slot_len(&self, slot: u64) -> usize {
        self.shared.segments.slot_len(slot)
    }
}

#[cfg(feature = "test-hooks")]
fn block_backend(options: &OpenOptions) -> &'static dyn AeadBackend {
    options.block_cipher.map_or_else(default_backend, |c| c.0)
}

#[cfg(not(feature = "test-hooks"))]
fn block_backend(_options: &OpenOptions) -> &'static dyn AeadBackend {
    default_backend()
}

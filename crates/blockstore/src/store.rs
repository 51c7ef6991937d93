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
use crate::manifest::{self, BlockMeta, ColumnMeta, Manifest, TableMeta};
use crate::segment::Segments;
use crate::types::ColumnType;
use crate::writer::{BlockOut, ColumnWriter, split_pages};
use crate::{Error, Result};

/// Store layout file: `"SSST" | version u16 | 0 u16 | block_size u32 | slice_id u32 |
/// slots_per_segment u32 | store_id[16] | crc32 u32`. Unauthenticated by itself: the slice id
/// and store id are bound into every manifest's AAD, and the cluster's sealed commit record
/// names the store id each slice must have, so an edited or copied `STORE` fails to open.
const STORE_FILE: &str = "STORE";
const STORE_MAGIC: &[u8; 4] = b"SSST";
/// Current store layout version.
pub const STORE_VERSION: u16 = 2;
const STORE_FILE_LEN: usize = 40;
/// Bytes of a store id.
pub const STORE_ID_LEN: usize = 16;

/// Who a store is: its slice index and the random id it was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreIdentity {
    pub slice_id: u32,
    pub store_id: [u8; STORE_ID_LEN],
}

impl StoreIdentity {
    /// The store id in hex (how the commit record names it).
    pub fn store_id_hex(&self) -> String {
        self.store_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}
/// Bytes of segment file per segment (slots per segment = this / block size).
const SEGMENT_BYTES: usize = 64 << 20;

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

/// What readers share: files, keys, layout.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub block_size: usize,
    pub slice_id: u32,
    pub identity: StoreIdentity,
    pub read_only: bool,
    pub keys: Arc<DatabaseKeys>,
    pub segments: Segments,
    pub backend: &'static dyn AeadBackend,
}

impl Shared {
    /// Copies one block into `buf` (a private copy: nobody else can change it from here on),
    /// checks its header against the manifest, then authenticates and decrypts it in place;
    /// returns the payload range.
    pub fn open_block(
        &self,
        table: &TableMeta,
        column: usize,
        meta: &BlockMeta,
        buf: &mut Vec<u8>,
    ) -> Result<Range<usize>> {
        buf.resize(self.block_size, 0);
        let (path, offset) = self.segments.location(meta.slot);
        let col = &table.columns[column];
        let fail = |reason: String| Error::BlockAuthentication {
            table: table.name.clone(),
            column: col.name.clone(),
            block_id: meta.block_id,
            path: path.clone(),
            offset,
            reason,
        };
        self.segments.read_slot(meta.slot, buf)?;
        let header = BlockHeader::decode(buf).map_err(|r| fail(r.to_owned()))?;
        let expected = (
            meta.block_id,
            table.id,
            column as u32,
            self.slice_id,
            meta.row_start,
            meta.rows,
            col.ty.code(),
        );
        let found = (
            header.block_id,
            header.table_id,
            header.column_id,
            header.slice_id,
            header.row_start,
            header.row_count,
            header.column_type,
        );
        if expected != found {
            return Err(fail(format!(
                "header does not match the manifest (block moved, swapped or replayed): found block {} of table {} column {} slice {} rows {}+{}",
                header.block_id, header.table_id, header.column_id, header.slice_id, header.row_start, header.row_count
            )));
        }
        let dek = self.keys.data_key(meta.block_id).map_err(|e| match e {
            sealstore_keyring::Error::UnknownBlock { .. } => Error::TableDropped {
                table: table.name.clone(),
            },
            e => fail(e.to_string()),
        })?;
        let key = self.backend.key(dek.expose_secret());
        drop(dek);
        block::open(buf, key.as_ref()).map_err(|r| fail(r.to_owned()))
    }

    fn decode_error(table: &TableMeta, column: usize, meta: &BlockMeta, e: crate::encoding::DecodeError) -> Error {
        Error::Decode {
            table: table.name.clone(),
            column: table.columns[column].name.clone(),
            block_id: meta.block_id,
            reason: e.0.to_owned(),
        }
    }

    /// Decodes a block into its pages' arrays.
    pub fn read_block(
        &self,
        table: &TableMeta,
        column: usize,
        meta: &BlockMeta,
        buf: &mut Vec<u8>,
    ) -> Result<Vec<arrow_array::ArrayRef>> {
        let range = self.open_block(table, column, meta, buf)?;
        crate::writer::decode_block(table.columns[column].ty, &buf[range])
            .map_err(|e| Self::decode_error(table, column, meta, e))
    }
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

/// The writer's bookkeeping of slots and retired manifests.
pub(crate) struct WriteState {
    /// Slots referenced by the committed manifest or by a retired one a reader still holds.
    in_use: Vec<bool>,
    /// Replaced manifests, oldest first, with the slots and DEKs their successor released.
    retired: std::collections::VecDeque<Retired>,
}

/// A replaced manifest and what its successor freed: released only once no scan holds the
/// manifest (or an older one), so a scan that started before a commit reads a consistent
/// snapshot even while re-keying, compaction of the last block or a drop reuses slots.
struct Retired {
    manifest: Arc<Manifest>,
    freed: Vec<(u64, u64)>,
    dropped: Vec<(u64, u64)>,
    /// True once the DEKs of `freed` left the DEK table (a re-key releases them at once; the
    /// slots stay reserved until no scan holds the manifest).
    freed_released: bool,
    /// True once the DEKs of `dropped` were shredded (a drop does so at once).
    dropped_released: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.shared.dir)
            .field("generation", &self.manifest.read().generation)
            .finish()
    }
}

fn write_store_file(dir: &Path, block_size: usize, identity: &StoreIdentity, spp: u32) -> Result<()> {
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
    fsutil::write_new(&dir.join(STORE_FILE), &b, 0o600).map_err(|e| match e {
        sealstore_keyring::Error::AlreadyExists { path } => Error::corrupt(path, 0, "a store already exists here"),
        other => Error::Key(other),
    })
}

fn slots_per_segment(block_size: usize) -> u32 {
    (SEGMENT_BYTES / block_size).max(1) as u32
}

fn read_store_file(dir: &Path) -> Result<(usize, StoreIdentity, u64)> {
    let path = dir.join(STORE_FILE);
    let b = fsutil::read(&path)?;
    if b.len() >= 6 && &b[..4] == STORE_MAGIC && u16::from_le_bytes([b[4], b[5]]) != STORE_VERSION {
        return Err(Error::corrupt(
            &path,
            4,
            format!(
                "store format {} is not supported by this sealstore (format {STORE_VERSION}); re-create the store and load its data again",
                u16::from_le_bytes([b[4], b[5]])
            ),
        ));
    }
    let end = STORE_FILE_LEN - 4;
    if b.len() != STORE_FILE_LEN || &b[..4] != STORE_MAGIC || crc32fast::hash(&b[..end]).to_le_bytes() != b[end..] {
        return Err(Error::corrupt(&path, 0, "store layout file is damaged"));
    }
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let block_size = u32_at(8) as usize;
    // The segment size is derived from the block size: a hostile count cannot size allocations.
    if !block::valid_block_size(block_size as u64) || u32_at(16) != slots_per_segment(block_size) {
        return Err(Error::corrupt(&path, 8, "invalid block size or segment size"));
    }
    let identity = StoreIdentity {
        slice_id: u32_at(12),
        store_id: b[20..36].try_into().expect("16 bytes"),
    };
    Ok((block_size, identity, u64::from(u32_at(16))))
}

impl Store {
    /// Creates an empty store in `dir` (which must not hold one).
    pub fn create(dir: &Path, keys: Arc<DatabaseKeys>, options: StoreOptions) -> Result<Self> {
        if !block::valid_block_size(options.block_size as u64) {
            return Err(Error::InvalidBlockSize(options.block_size as u64));
        }
        fsutil::create_dir_durable(dir)?;
        let spp = slots_per_segment(options.block_size);
        let mut identity = StoreIdentity {
            slice_id: options.slice_id,
            store_id: [0; STORE_ID_LEN],
        };
        sealstore_keyring::fill_random(&mut identity.store_id)?;
        write_store_file(dir, options.block_size, &identity, spp)?;
        let m = Manifest {
            generation: 1,
            next_table_id: 1,
            tables: Vec::new(),
        };
        manifest::write(dir, &m, &identity, &keys)?;
        manifest::write_current(dir, 1)?;
        // Opened at generation 1 explicitly: a cluster's slices never bind on their own; a
        // standalone store binds at its first commit.
        Self::open(
            dir,
            keys,
            OpenOptions {
                expected: Some(identity),
                generation: Some(1),
                #[cfg(feature = "test-hooks")]
                block_cipher: options.block_cipher,
                ..Default::default()
            },
        )
    }

    /// Opens a store at its committed generation (or the one given).
    pub fn open(dir: &Path, keys: Arc<DatabaseKeys>, options: OpenOptions) -> Result<Self> {
        let (block_size, identity, spp) = read_store_file(dir)?;
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
        let current = manifest::read_current(dir);
        let generation = match options.generation {
            Some(g) => g,
            None => current
                .as_ref()
                .copied()
                .map_err(|e| Error::corrupt(dir.join("CURRENT"), 0, e.to_string()))?,
        };
        let m = manifest::read(dir, generation, &identity, &keys)?;
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
        if !options.read_only {
            if options.generation.is_some() && current.ok() != Some(generation) {
                manifest::write_current(dir, generation)?;
            }
            fsutil::sweep_temp_files(dir)?;
        }
        let segments = Segments::open(dir, block_size, spp, !options.read_only)?;
        let max_slot = m.blocks().map(|b| b.slot + 1).max().unwrap_or(0);
        let mut in_use = vec![false; segments.slot_count().max(max_slot) as usize];
        for b in m.blocks() {
            in_use[b.slot as usize] = true;
        }
        if options.reclaim_keys && !options.read_only {
            keys.remove_unreferenced(&m.blocks().map(|b| b.block_id).collect())?;
        }
        let shared = Shared {
            dir: dir.to_owned(),
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

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
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
            cursor: 0,
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

    /// Seals the new manifest of a prepared commit (durable, not yet current).
    pub(crate) fn write_prepared(&self, prepared: &Prepared) -> Result<()> {
        self.require_writable()?;
        manifest::write(
            &self.shared.dir,
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

    /// Makes a written, prepared commit current after the commit point, and releases what no
    /// reader holds any more.
    pub(crate) fn install(&self, state: &mut WriteState, prepared: Prepared) -> Result<CommitInfo> {
        let generation = prepared.manifest.generation;
        let max_slot = prepared.allocated.iter().map(|s| s + 1).max().unwrap_or(0) as usize;
        if state.in_use.len() < max_slot {
            state.in_use.resize(max_slot, false);
        }
        for s in &prepared.allocated {
            state.in_use[*s as usize] = true;
        }
        let old = std::mem::replace(&mut *self.manifest.write(), Arc::new(prepared.manifest));
        manifest::remove_older(&self.shared.dir, generation.saturating_sub(1));
        state.retired.push_back(Retired {
            manifest: old,
            freed: prepared.freed,
            dropped: prepared.dropped,
            freed_released: false,
            dropped_released: false,
        });
        self.reclaim_locked(state)?;
        Ok(CommitInfo {
            generation,
            rows: prepared.rows,
            blocks_written: prepared.allocated.len() as u64,
        })
    }

    /// Releases the slots and DEKs of retired manifests no scan or snapshot holds any more,
    /// oldest first (a slot freed by commit N+1 may still be read through manifest N or older).
    /// Freed DEKs are removed; those of dropped tables are crypto-shredded. Waits for a running
    /// transaction (which reclaims when it begins and installs anyway).
    pub fn reclaim(&self) -> Result<()> {
        self.reclaim_locked(&mut self.state.lock())
    }

    fn reclaim_locked(&self, state: &mut WriteState) -> Result<()> {
        while state
            .retired
            .front()
            .is_some_and(|r| Arc::strong_count(&r.manifest) == 1)
        {
            let r = state.retired.pop_front().expect("checked");
            for (_, s) in r.freed.iter().chain(r.dropped.iter()) {
                state.in_use[*s as usize] = false;
            }
            if !r.freed_released {
                self.shared.keys.remove(&block_ids(&r.freed))?;
            }
            if !r.dropped_released && !r.dropped.is_empty() {
                self.shared.keys.shred(&block_ids(&r.dropped))?;
            }
        }
        Ok(())
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

    /// Checks, without decrypting, that every referenced slot still holds the block the manifest
    /// names. A slot holding an *older* block (block ids only grow) or never written at all means
    /// the segment file was restored from an older copy: a rollback. Other mismatches are left to
    /// scans and `verify`, which report them as authentication failures.
    pub fn check_segments(&self) -> Result<()> {
        let m = self.manifest();
        let mut head = [0u8; block::HEADER_LEN];
        for b in m.blocks() {
            let found = self.shared.segments.read_slot(b.slot, &mut head).map(|()| {
                let never_written = head.iter().all(|&x| x == 0);
                (never_written, BlockHeader::decode(&head).map(|h| h.block_id).ok())
            });
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
        let bytes_on_disk = self
            .shared
            .segments
            .paths()
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|md| {
                use std::os::unix::fs::MetadataExt;
                md.blocks() * 512
            })
            .sum();
        StoreStats {
            generation: m.generation,
            block_size: self.shared.block_size,
            slots_total: self.shared.segments.slot_count(),
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
}

/// A commit that wrote its blocks but is not yet visible (see [`Transaction::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    manifest: Manifest,
    allocated: Vec<u64>,
    freed: Vec<(u64, u64)>,
    dropped: Vec<(u64, u64)>,
    rows: u64,
}

impl Prepared {
    /// Blocks this commit wrote.
    pub fn allocated_blocks(&self) -> u64 {
        self.allocated.len() as u64
    }

    /// The generation this commit creates.
    pub fn generation(&self) -> u64 {
        self.manifest.generation
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

fn block_ids(blocks: &[(u64, u64)]) -> Vec<u64> {
    blocks.iter().map(|(id, _)| *id).collect()
}

/// Validates an Arrow schema for a new table.
pub fn table_columns(schema: &Schema) -> Result<Vec<ColumnMeta>> {
    if schema.fields().is_empty() {
        return Err(Error::InvalidSchema("a table needs at least one column".into()));
    }
    let mut seen = std::collections::HashSet::new();
    schema
        .fields()
        .iter()
        .map(|f| {
            if f.name().is_empty() || !seen.insert(f.name().clone()) {
                return Err(Error::InvalidSchema(format!(
                    "column names must be unique and non-empty: `{}`",
                    f.name()
                )));
            }
            let ty = ColumnType::from_arrow(f.data_type()).ok_or_else(|| Error::UnsupportedType {
                column: f.name().clone(),
                data_type: f.data_type().to_string(),
            })?;
            Ok(ColumnMeta {
                name: f.name().clone(),
                ty,
                blocks: Vec::new(),
            })
        })
        .collect()
}

/// Table names: 1–128 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn validate_table_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSchema(format!(
            "invalid table name {name:?}: use 1-128 of [A-Za-z0-9_.-]"
        )))
    }
}

/// A set of changes committed atomically.
pub struct Transaction<'s> {
    store: &'s Store,
    /// Held for the transaction's life: one writer per store.
    state: MutexGuard<'s, WriteState>,
    /// False while nothing changed: the commit protocol leaves such a store at its generation.
    changed: bool,
    manifest: Manifest,
    writers: HashMap<String, Vec<ColumnWriter>>,
    allocated: Vec<u64>,
    cursor: u64,
    freed: Vec<(u64, u64)>,
    dropped: Vec<(u64, u64)>,
    finished: bool,
    rows: u64,
    io: Option<SlotWriter>,
}

/// A writer thread that receives sealed blocks over a bounded channel and `pwrite`s them, so
/// sealing the next block overlaps with writing the last one; the channel bound caps the sealed
/// blocks in flight. When the channel closes it `fdatasync`s what it wrote, so the slices of a
/// cluster commit make their blocks durable concurrently while the pool finishes other slices.
struct SlotWriter {
    tx: Option<crossbeam_channel::Sender<(u64, Vec<u8>)>>,
    handle: std::thread::JoinHandle<Result<()>>,
}

impl SlotWriter {
    fn spawn(shared: Arc<Shared>, in_flight: usize) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded::<(u64, Vec<u8>)>(in_flight.max(1));
        let handle = std::thread::Builder::new()
            .name(format!("sealstore-writer-{}", shared.slice_id))
            .spawn(move || {
                let mut written = Vec::new();
                for (slot, sealed) in rx {
                    shared.segments.write_slot(slot, &sealed)?;
                    written.push(slot);
                }
                shared.segments.sync(written)
            })
            .map_err(|e| Error::io("writer thread", e))?;
        Ok(Self { tx: Some(tx), handle })
    }

    fn send(&self, slot: u64, sealed: Vec<u8>) -> Result<()> {
        match &self.tx {
            // A send error means the writer stopped on an error; `finish` reports it.
            Some(tx) => {
                let _ = tx.send((slot, sealed));
                Ok(())
            }
            None => Err(Error::Internal(
                "block written after the transaction's blocks were finished".into(),
            )),
        }
    }

    /// No more blocks: the thread drains the channel and syncs on its own.
    fn close(&mut self) {
        self.tx = None;
    }

    /// Waits until every block is written and durable.
    fn finish(mut self) -> Result<()> {
        self.close();
        self.handle
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the slot writer thread panicked".into())))
    }
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("generation", &self.manifest.generation)
            .field("rows", &self.rows)
            .finish()
    }
}

impl<'s> Transaction<'s> {
    /// Adds a table.
    pub fn create_table(&mut self, name: &str, schema: &Schema) -> Result<()> {
        validate_table_name(name)?;
        if self.manifest.tables.iter().any(|t| t.name == name) {
            return Err(Error::TableExists(name.to_owned()));
        }
        let columns = table_columns(schema)?;
        let id = self.manifest.next_table_id;
        self.manifest.next_table_id += 1;
        self.manifest.tables.push(TableMeta {
            id,
            name: name.to_owned(),
            rows: 0,
            columns,
        });
        self.changed = true;
        Ok(())
    }

    /// Removes a table; its DEKs are shredded when the commit is published.
    pub fn drop_table(&mut self, name: &str) -> Result<()> {
        let idx = self
            .manifest
            .tables
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| Error::UnknownTable(name.to_owned()))?;
        self.writers.remove(name);
        self.changed = true;
        let t = self.manifest.tables.remove(idx);
        let committed: std::collections::HashSet<u64> =
            self.store.manifest.read().blocks().map(|b| b.block_id).collect();
        for c in &t.columns {
            for b in &c.blocks {
                if committed.contains(&b.block_id) {
                    self.dropped.push((b.block_id, b.slot));
                }
            }
        }
        Ok(())
    }

    /// Appends a batch whose schema matches the table's (names and types, in order).
    pub fn append(&mut self, table: &str, batch: &RecordBatch) -> Result<()> {
        let t = self.manifest.table(table)?;
        check_batch(t, batch)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.changed = true;
        if !self.writers.contains_key(table) {
            let writers = self.open_writers(table)?;
            self.writers.insert(table.to_owned(), writers);
        }
        let writers = self.writers.get_mut(table).expect("inserted above");
        for (w, col) in writers.iter_mut().zip(batch.columns()) {
            w.push(col.clone())?;
        }
        self.manifest.table_mut(table)?.rows += batch.num_rows() as u64;
        self.rows += batch.num_rows() as u64;
        self.seal_ready(table)
    }

    /// Column writers for a table; each column's partial last block is taken over
    /// copy-on-write (its pages reused, its slot and DEK freed when this commit publishes).
    fn open_writers(&mut self, table: &str) -> Result<Vec<ColumnWriter>> {
        let capacity = block::capacity(self.store.shared.block_size);
        let t = self.manifest.table(table)?.clone();
        let mut writers = Vec::with_capacity(t.columns.len());
        let mut buf = Vec::new();
        for (ci, c) in t.columns.iter().enumerate() {
            let mut w = ColumnWriter::new(c.ty, capacity, t.rows, &t.name, &c.name);
            if let Some(last) = c.blocks.last().filter(|b| !b.full) {
                let range = self.store.shared.open_block(&t, ci, last, &mut buf)?;
                let pages: Vec<Vec<u8>> = split_pages(&buf[range])
                    .map_err(|e| Shared::decode_error(&t, ci, last, e))?
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect();
                let encoding = pages
                    .first()
                    .and_then(|p| p.get(4))
                    .and_then(|&e| crate::encoding::Encoding::from_u8(e).ok())
                    .unwrap_or(crate::encoding::Encoding::Plain);
                w.seed(
                    pages,
                    last.pages.clone(),
                    last.row_start,
                    u64::from(last.rows),
                    last.zone.clone(),
                    encoding,
                );
                self.freed.push((last.block_id, last.slot));
                self.manifest.table_mut(table)?.columns[ci].blocks.pop();
            }
            writers.push(w);
        }
        Ok(writers)
    }

    /// Re-encrypts up to `limit` blocks whose id is below `below_block_id` (of `table`, or of
    /// every table) under fresh DEKs into new slots. Each block is authenticated and decrypted,
    /// then sealed again as it was (same payload, rows and zone map) with a new block id, DEK and
    /// nonce; the old slot and DEK are freed when the commit is installed. One block buffer at a
    /// time. Returns how many blocks were re-sealed.
    pub fn rekey(&mut self, table: Option<&str>, below_block_id: u64, limit: usize) -> Result<usize> {
        let shared = self.store.shared.clone();
        let mut buf = Vec::new();
        let mut done = 0;
        for ti in 0..self.manifest.tables.len() {
            if table.is_some_and(|t| t != self.manifest.tables[ti].name) {
                continue;
            }
            for ci in 0..self.manifest.tables[ti].columns.len() {
                for bi in 0..self.manifest.tables[ti].columns[ci].blocks.len() {
                    if done == limit {
                        return Ok(done);
                    }
                    let t = &self.manifest.tables[ti];
                    let meta = &t.columns[ci].blocks[bi];
                    if meta.block_id >= below_block_id {
                        continue;
                    }
                    let (old_id, old_slot) = (meta.block_id, meta.slot);
                    let payload = shared.open_block(t, ci, meta, &mut buf)?;
                    // The header as authenticated, from the private copy (never re-read).
                    let old_header = BlockHeader::decode(&buf).map_err(|r| Error::Internal(r.to_owned()))?;
                    let (block_id, dek) = shared.keys.generate(1)?.pop().expect("one key");
                    let slot = self.alloc_slot()?;
                    let mut header = old_header;
                    header.block_id = block_id;
                    header.dk_generation = shared.keys.dk_generation();
                    sealstore_keyring::fill_random(&mut header.nonce)?;
                    let key = shared.backend.key(dek.expose_secret());
                    drop(dek);
                    block::seal_in_place(&mut buf, &header, payload.len(), key.as_ref())
                        .map_err(|r| Error::Internal(format!("re-sealing block {old_id}: {r}")))?;
                    shared.segments.write_slot(slot, &buf)?;
                    let meta = &mut self.manifest.tables[ti].columns[ci].blocks[bi];
                    meta.block_id = block_id;
                    meta.slot = slot;
                    self.freed.push((old_id, old_slot));
                    self.changed = true;
                    done += 1;
                }
            }
        }
        buf.fill(0);
        Ok(done)
    }

    fn alloc_slot(&mut self) -> Result<u64> {
        self.store.require_writable()?;
        let segments = &self.store.shared.segments;
        loop {
            let slot = self.cursor;
            self.cursor += 1;
            if slot >= segments.slot_count() {
                segments.grow()?;
            }
            if !self.state.in_use.get(slot as usize).copied().unwrap_or(false) {
                self.allocated.push(slot);
                return Ok(slot);
            }
        }
    }

    /// Seals and writes the blocks the table's writers finished.
    fn seal_ready(&mut self, table: &str) -> Result<()> {
        let ready: Vec<(usize, BlockOut)> = self
            .writers
            .get_mut(table)
            .map(|ws| {
                ws.iter_mut()
                    .enumerate()
                    .flat_map(|(ci, w)| w.ready.drain(..).map(move |b| (ci, b)))
                    .collect()
            })
            .unwrap_or_default();
        if ready.is_empty() {
            return Ok(());
        }
        // One key-table lock and one RNG call for all the blocks that are ready.
        let keys = self.store.shared.keys.generate(ready.len())?;
        for ((ci, out), key) in ready.into_iter().zip(keys) {
            self.write_block(table, ci, out, key)?;
        }
        Ok(())
    }

    fn write_block(
        &mut self,
        table: &str,
        column: usize,
        out: BlockOut,
        (block_id, dek): (u64, sealstore_keyring::DataKey),
    ) -> Result<()> {
        let shared = self.store.shared.clone();
        let (table_id, ty) = {
            let t = self.manifest.table(table)?;
            (t.id, t.columns[column].ty)
        };
        let slot = self.alloc_slot()?;
        let mut nonce = [0u8; 12];
        sealstore_keyring::fill_random(&mut nonce)?;
        let header = BlockHeader {
            column_type: ty.code(),
            encoding: out.encoding as u8,
            block_id,
            table_id,
            column_id: column as u32,
            slice_id: shared.slice_id,
            dk_generation: shared.keys.dk_generation(),
            row_start: out.row_start,
            row_count: out.rows as u32,
            nonce,
        };
        let payload_len = out.slot.len() - block::PAYLOAD_OFFSET;
        let mut sealed = out.slot;
        sealed.resize(shared.block_size, 0);
        let key = shared.backend.key(dek.expose_secret());
        drop(dek);
        block::seal_in_place(&mut sealed, &header, payload_len, key.as_ref())
            .map_err(|r| Error::Internal(format!("sealing block {block_id}: {r}")))?;
        match &self.io {
            Some(io) => io.send(slot, sealed)?,
            None => shared.segments.write_slot(slot, &sealed)?,
        }
        self.manifest.table_mut(table)?.columns[column].blocks.push(BlockMeta {
            block_id,
            slot,
            row_start: out.row_start,
            rows: out.rows as u32,
            full: out.full,
            zone: out.zone,
            pages: out.pages,
        });
        Ok(())
    }

    /// Cuts and seals every column's last partial block and, when pipelined, tells the writer
    /// thread that no more blocks come (it then writes and syncs the rest on its own). A cluster
    /// calls this on every slice before [`Transaction::prepare`], so one slice's sync overlaps
    /// the next slice's sealing. In a pipelined transaction a block cut afterwards is an error
    /// (`Error::Internal`), never silently dropped.
    pub fn finish_blocks(&mut self) -> Result<()> {
        let tables: Vec<String> = self.writers.keys().cloned().collect();
        for table in tables {
            for w in self.writers.get_mut(&table).expect("listed").iter_mut() {
                w.finish()?;
            }
            self.seal_ready(&table)?;
        }
        if let Some(io) = &mut self.io {
            io.close();
        }
        Ok(())
    }

    /// Finishes every writer and makes the blocks durable (their DEKs stay staged).
    pub(crate) fn prepare(&mut self) -> Result<Prepared> {
        self.finish_blocks()?;
        match self.io.take() {
            Some(io) => io.finish()?,
            None => self.store.shared.segments.sync(self.allocated.iter().copied())?,
        }
        self.manifest.generation = self.store.generation() + 1;
        Ok(Prepared {
            manifest: std::mem::take(&mut self.manifest),
            allocated: std::mem::take(&mut self.allocated),
            freed: std::mem::take(&mut self.freed),
            dropped: std::mem::take(&mut self.dropped),
            rows: self.rows,
        })
    }

    /// True once the transaction changed something (a store it left alone keeps its generation).
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Makes the commit write a new manifest generation even if nothing else changed (a re-key
    /// reseals every manifest under the newest metadata key this way).
    pub fn touch(&mut self) {
        self.changed = true;
    }

    /// The store this transaction writes.
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// A table's schema as this transaction sees it (tables it created included).
    pub fn schema(&self, table: &str) -> Result<arrow_schema::SchemaRef> {
        Ok(self.manifest.table(table)?.schema())
    }

    /// The protocol is past its commit point: the staged DEKs belong to the commit.
    pub(crate) fn mark_finished(&mut self) {
        self.finished = true;
    }

    /// The write state this transaction holds (to install its commit).
    pub(crate) fn state_mut(&mut self) -> &mut WriteState {
        &mut self.state
    }

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
        let mut point = crate::commit::CurrentFile::new(store);
        let mut outcome = crate::commit::commit(&keys, vec![self], &mut point)?;
        Ok(outcome.stores.pop().unwrap_or_default())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.store.shared.keys.discard_pending();
        }
    }
}

fn check_batch(t: &TableMeta, batch: &RecordBatch) -> Result<()> {
    let mismatch = |reason: String| Error::SchemaMismatch {
        table: t.name.clone(),
        reason,
    };
    if batch.num_columns() != t.columns.len() {
        return Err(mismatch(format!(
            "{} columns given, the table has {}",
            batch.num_columns(),
            t.columns.len()
        )));
    }
    for (field, col) in batch.schema().fields().iter().zip(&t.columns) {
        if field.name() != &col.name {
            return Err(mismatch(format!(
                "column `{}` where `{}` was expected",
                field.name(),
                col.name
            )));
        }
        if field.data_type() != &col.ty.arrow() {
            return Err(mismatch(format!(
                "column `{}` is {}, the table stores {}",
                col.name,
                field.data_type(),
                col.ty.arrow()
            )));
        }
    }
    Ok(())
}

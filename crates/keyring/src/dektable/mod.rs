//! The DEK table: per database, block id → DEK wrapped under the database key.
//!
//! On disk it is one log file per table generation, `dek-<generation>.log`, in the database's data
//! directory: a header authenticated under the DK (a GMAC tag over its bytes, so its database,
//! DK generation, table generation and next block id cannot be edited), then frames appended
//! with `fdatasync`. A frame is `len u32 | crc32 u32 |
//! payload`; a torn final frame (a crash mid-append) is dropped on open, so truncating the file
//! anywhere inside the last append reopens to the state before it. Compaction (and shredding)
//! writes generation N+1 complete, fsyncs, renames it into place, then deletes generation N.
//! The header also carries the database's *metadata keys* (random AES-256 keys wrapped under the
//! DK, each with an id) that seal manifests and commit records: re-wrapped with the DEKs at a
//! database-key rotation, so sealed metadata stays valid, and replaced by a data re-key.
//! In memory an entry is 72 bytes in a sorted vector (block ids are allocated ascending).
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::aead::{AeadKey, NONCE_LEN, TAG_LEN};
use crate::codec::{ReadError, Reader, Writer};
use crate::{DataKey, Error, Result, fsutil};

mod format;
mod generation;
mod metadata;

pub(crate) use format::*;
pub use format::{BlockId, DEK_TABLE_VERSION, WrappedDek};
pub use generation::PreparedRewrap;
pub(crate) use generation::*;
pub(crate) use metadata::*;

/// The DEK table of one database, open for reading and appending.
pub struct DekTable {
    /// False when opened read-only: every write is refused.
    writable: bool,
    dir: PathBuf,
    database: String,
    dk: Box<dyn AeadKey>,
    dk_generation: u32,
    /// Metadata keys by ascending id (the last one seals new metadata) and their wrapped forms.
    metadata: Vec<(u32, Box<dyn AeadKey>)>,
    metadata_wrapped: Vec<WrappedMetadataKey>,
    generation: u64,
    file: File,
    file_len: u64,
    entries: Vec<WrappedDek>,
    pending: Vec<WrappedDek>,
    next_block_id: u64,
    /// Seals made under `dk` (see `seals`): kept here, persisted in the key store at each binding.
    dk_seals: u64,
    /// Seals made under the newest metadata key (sealing runs under a shared lock).
    metadata_seals: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for DekTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DekTable")
            .field("dir", &self.dir)
            .field("database", &self.database)
            .field("dk_generation", &self.dk_generation)
            .field("generation", &self.generation)
            .field("entries", &self.entries.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl DekTable {
    /// Creates an empty table (generation 1) in `dir`.
    pub fn create(dir: &Path, database: &str, dk: Box<dyn AeadKey>, dk_generation: u32) -> Result<Self> {
        crate::names::validate_name(database)?;
        fsutil::create_dir_durable(dir)?;
        if !generations_in(dir)?.is_empty() {
            return Err(Error::AlreadyExists {
                path: dir.join(file_name(1)),
            });
        }
        let header = Header {
            database: database.to_owned(),
            dk_generation,
            generation: 1,
            next_block_id: 1,
            metadata_keys: vec![new_metadata_key(database, dk.as_ref(), dk_generation, 1)?],
        };
        let staged = write_generation_tmp(dir, &header, &[], dk.as_ref())?;
        publish_generation(dir, &staged.dir, &staged.tmp, header.generation)?;
        Self::open(dir, database, dk, dk_generation)
    }

    /// Opens the newest complete generation in `dir` for writing: drops a torn tail, stale
    /// generations and leftover temporary files.
    pub fn open(dir: &Path, database: &str, dk: Box<dyn AeadKey>, dk_generation: u32) -> Result<Self> {
        Self::open_with(dir, database, dk, dk_generation, true)
    }

    /// Opens the newest generation in `dir` without changing any file (a torn tail is ignored,
    /// not cut; nothing is swept). Every write through it fails.
    pub fn open_read_only(dir: &Path, database: &str, dk: Box<dyn AeadKey>, dk_generation: u32) -> Result<Self> {
        Self::open_with(dir, database, dk, dk_generation, false)
    }

    fn open_with(dir: &Path, database: &str, dk: Box<dyn AeadKey>, dk_generation: u32, writable: bool) -> Result<Self> {
        crate::names::validate_name(database)?;
        let gens = generations_in(dir)?;
        let Some(&generation) = gens.last() else {
            return Err(Error::corrupt(
                dir,
                0,
                format!("no DEK table for database `{database}`"),
            ));
        };
        let path = dir.join(file_name(generation));
        let file = if writable {
            fsutil::open_rw(&path)?
        } else {
            fsutil::open_read(&path)?
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| Error::io(&path, e))?;
        let replayed = replay(&bytes, &path)?;
        if replayed.header.database != database {
            return Err(Error::auth(format!(
                "DEK table {} belongs to database `{}`, not `{database}`",
                path.display(),
                replayed.header.database
            )));
        }
        if replayed.header.generation != generation {
            return Err(Error::corrupt(&path, 0, "generation in header differs from file name"));
        }
        if replayed.header.dk_generation != dk_generation {
            return Err(Error::auth(format!(
                "DEK table {} is wrapped under database key generation {}, the key store holds generation {dk_generation}",
                path.display(),
                replayed.header.dk_generation
            )));
        }
        authenticate_header(&replayed, &bytes, dk.as_ref(), &path)?;
        let metadata = open_metadata_keys(database, dk.as_ref(), dk_generation, &replayed.header.metadata_keys)?;
        if writable {
            if replayed.valid_len < bytes.len() as u64 {
                file.set_len(replayed.valid_len).map_err(|e| Error::io(&path, e))?;
                file.sync_all().map_err(|e| Error::io(&path, e))?;
            }
            // Only now, with the newest generation authenticated, are older ones removed.
            for old in &gens[..gens.len() - 1] {
                fsutil::remove_file(&dir.join(file_name(*old)))?;
            }
            fsutil::sweep_temp_files(dir)?;
        }
        Ok(Self {
            writable,
            dir: dir.to_owned(),
            database: database.to_owned(),
            dk,
            dk_generation,
            metadata,
            metadata_wrapped: replayed.header.metadata_keys,
            generation,
            file,
            file_len: replayed.valid_len,
            entries: replayed.entries,
            pending: Vec::new(),
            next_block_id: replayed.next_block_id,
            dk_seals: 0,
            metadata_seals: Default::default(),
        })
    }

    /// AAD of one wrapped DEK, built on the stack (no allocation on the unwrap hot path).
    fn aad(&self, block_id: BlockId, dk_generation: u32) -> DekAad {
        let mut a = DekAad {
            bytes: [0; DEK_AAD_MAX],
            len: 0,
        };
        for part in [
            DEK_AAD_LABEL,
            &(self.database.len() as u32).to_le_bytes(),
            self.database.as_bytes(),
            &block_id.to_le_bytes(),
            &dk_generation.to_le_bytes(),
        ] {
            a.bytes[a.len..a.len + part.len()].copy_from_slice(part);
            a.len += part.len();
        }
        a
    }

    fn wrap(
        &self,
        dk: &dyn AeadKey,
        dk_generation: u32,
        block_id: BlockId,
        key: &[u8; 32],
        nonce: [u8; NONCE_LEN],
    ) -> Result<WrappedDek> {
        let mut wrapped = *key;
        let tag = dk
            .seal_in_place(&nonce, &self.aad(block_id, dk_generation), &mut wrapped)
            .map_err(|_| Error::auth("DEK wrap"))?;
        Ok(WrappedDek {
            block_id,
            dk_generation,
            nonce,
            wrapped,
            tag,
        })
    }

    fn open_entry(&self, e: &WrappedDek) -> Result<DataKey> {
        let mut buf = e.wrapped;
        let result = self
            .dk
            .open_in_place(&e.nonce, &self.aad(e.block_id, e.dk_generation), &mut buf, &e.tag);
        let key = DataKey::from_bytes(buf);
        zeroize::Zeroize::zeroize(&mut buf); // `from_bytes` copied the array; wipe the stack copy too
        result.map_err(|_| {
            Error::auth(format!(
                "wrapped DEK of block {} in database `{}`",
                e.block_id, self.database
            ))
        })?;
        Ok(key)
    }

    /// Allocates `n` new block ids, each with a fresh random DEK. The plaintext DEKs are returned
    /// once; only the wrapped forms are kept, staged until [`DekTable::commit`].
    pub fn generate(&mut self, n: usize) -> Result<Vec<(BlockId, DataKey)>> {
        self.require_writable()?;
        self.dk_seals = self.charge_dk(n as u64)?;
        let mut out = Vec::with_capacity(n);
        let mut random = Zeroizing::new(vec![0u8; RNG_CHUNK.min(n.max(1)) * (32 + NONCE_LEN)]);
        let mut done = 0;
        while done < n {
            let batch = RNG_CHUNK.min(n - done);
            let bytes = &mut random[..batch * (32 + NONCE_LEN)];
            crate::fill_random(bytes)?;
            for chunk in bytes.chunks_exact(32 + NONCE_LEN) {
                let key = DataKey::from_slice(&chunk[..32]).expect("32 bytes");
                let nonce: [u8; NONCE_LEN] = chunk[32..].try_into().expect("12 bytes");
                let block_id = self.next_block_id;
                self.next_block_id += 1;
                let entry = self.wrap(
                    self.dk.as_ref(),
                    self.dk_generation,
                    block_id,
                    key.expose_secret(),
                    nonce,
                )?;
                self.pending.push(entry);
                out.push((block_id, key));
            }
            done += batch;
        }
        Ok(out)
    }

    /// Makes staged DEKs durable: one PUT frame, then `fdatasync`.
    pub fn commit(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut w = Writer::new();
        w.u8(FRAME_PUT).u32(self.pending.len() as u32);
        for e in &self.pending {
            e.encode(&mut w);
        }
        self.append_frame(&w.buf)?;
        for e in self.pending.drain(..) {
            insert_sorted(&mut self.entries, e).map_err(|r| Error::corrupt(&self.dir, 0, r))?;
        }
        Ok(())
    }

    /// Seals made so far under this table's database key and newest metadata key.
    pub fn seal_counts(&self) -> crate::SealCounts {
        crate::SealCounts {
            database_key: self.dk_seals,
            metadata_key: self.metadata_seals.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Takes over the persisted counts (from the key store record) after opening.
    pub fn set_seal_counts(&mut self, counts: crate::SealCounts) {
        self.dk_seals = counts.database_key;
        *self.metadata_seals.get_mut() = counts.metadata_key;
    }

    fn charge_dk(&self, n: u64) -> Result<u64> {
        crate::seals::charge(
            self.dk_seals,
            n,
            || format!("database key of `{}`", self.database),
            || format!("sealstore rotate --database {}", self.database),
        )
    }

    /// The id of the metadata key that seals new metadata (callers bind it into their headers).
    pub fn metadata_key_id(&self) -> u32 {
        self.metadata.last().map_or(0, |(id, _)| *id)
    }

    fn metadata_key(&self, label: &str, key_id: u32) -> Result<&dyn AeadKey> {
        self.metadata
            .iter()
            .find(|(id, _)| *id == key_id)
            .map(|(_, k)| k.as_ref())
            .ok_or_else(|| {
                Error::auth(format!(
                    "{label} of database `{}` is sealed under metadata key {key_id}, which this DEK table does not hold",
                    self.database
                ))
            })
    }

    /// Seals metadata (e.g. a manifest) under metadata key `key_id`. `label` separates the
    /// domains; returns the nonce and tag.
    pub fn seal_metadata(
        &self,
        label: &str,
        key_id: u32,
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<([u8; NONCE_LEN], [u8; TAG_LEN])> {
        let before = self.metadata_seals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = crate::seals::charge(
            before,
            1,
            || format!("metadata key of `{}`", self.database),
            || format!("sealstore rekey --database {}", self.database),
        ) {
            self.metadata_seals.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            return Err(e);
        }
        let mut nonce = [0u8; NONCE_LEN];
        crate::fill_random(&mut nonce)?;
        let aad = metadata_aad(label, &self.database, key_id, aad);
        let tag = self
            .metadata_key(label, key_id)?
            .seal_in_place(&nonce, &aad, buf)
            .map_err(|_| Error::auth(label.to_owned()))?;
        Ok((nonce, tag))
    }

    /// Opens metadata sealed by [`DekTable::seal_metadata`].
    pub fn open_metadata(
        &self,
        label: &str,
        key_id: u32,
        aad: &[u8],
        nonce: &[u8; NONCE_LEN],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        let aad = metadata_aad(label, &self.database, key_id, aad);
        self.metadata_key(label, key_id)?
            .open_in_place(nonce, &aad, buf, tag)
            .map_err(|_| Error::auth(format!("{label} of database `{}`", self.database)))
    }

    /// Adds a fresh metadata key (new generation); new metadata is sealed under it, the older
    /// keys still open what they sealed until [`DekTable::retire_metadata_keys`].
    pub fn add_metadata_key(&mut self) -> Result<u32> {
        let id = self.metadata_key_id() + 1;
        let wrapped = new_metadata_key(&self.database, self.dk.as_ref(), self.dk_generation, id)?;
        let mut keys = self.metadata_wrapped.clone();
        keys.push(wrapped);
        if keys.len() > MAX_METADATA_KEYS {
            return Err(Error::corrupt(&self.dir, 0, "too many metadata keys"));
        }
        self.commit()?;
        self.dk_seals = self.charge_dk(1)?;
        let entries = self.entries.clone();
        self.install_generation(entries, self.dk_generation, keys)?;
        // New metadata is sealed under the new key from now on: its count starts afresh.
        *self.metadata_seals.get_mut() = 0;
        Ok(id)
    }

    /// Keeps only the newest metadata key and drops the wrapped copies of removed DEKs (a new
    /// generation): what the old keys sealed can no longer be opened.
    pub fn retire_metadata_keys(&mut self) -> Result<()> {
        let newest = *self.metadata_wrapped.last().expect("at least one metadata key");
        self.commit()?;
        let entries = self.entries.clone();
        self.install_generation(entries, self.dk_generation, vec![newest])
    }

    /// **Tests only**: the metadata keys' bytes, unwrapped again (see the keyring's hook).
    #[cfg(feature = "test-hooks")]
    pub fn insecure_metadata_key_bytes(&self) -> Result<Vec<[u8; 32]>> {
        self.metadata_wrapped
            .iter()
            .map(|m| unwrap_metadata_key(&self.database, self.dk.as_ref(), self.dk_generation, m).map(|k| *k))
            .collect()
    }

    /// Block id the next generated DEK will get (ids below it existed when this was read).
    pub fn next_block_id(&self) -> BlockId {
        self.next_block_id
    }

    /// Length of the current generation file (the table only ever grows within a generation).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Number of staged, not yet durable DEKs.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Forgets staged DEKs (their block ids are not reused by this process).
    pub fn discard_pending(&mut self) {
        self.pending.clear();
    }

    fn require_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::ReadOnly {
                what: format!("DEK table of database `{}`", self.database),
            })
        }
    }

    fn append_frame(&mut self, payload: &[u8]) -> Result<()> {
        self.require_writable()?;
        let path = self.current_path();
        let mut frame = Vec::with_capacity(8 + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        let written = crate::faults::write_at(&self.file, &frame, self.file_len)
            .and_then(|_| crate::faults::sync_data(&self.file));
        if let Err(e) = written {
            // Cut back to the last good frame so a later append does not follow garbage.
            let _ = self.file.set_len(self.file_len);
            return Err(Error::io(path, e));
        }
        self.file_len += frame.len() as u64;
        Ok(())
    }

    /// Index of a committed entry: O(1) while ids are dense (the common case, ids are
    /// allocated ascending), else a binary search.
    fn find(&self, block_id: BlockId) -> Option<usize> {
        let first = self.entries.first()?.block_id;
        let guess = block_id
            .checked_sub(first)
            .map(|d| d as usize)
            .filter(|&i| i < self.entries.len());
        if let Some(i) = guess
            && self.entries[i].block_id == block_id
        {
            return Some(i);
        }
        self.entries.binary_search_by_key(&block_id, |e| e.block_id).ok()
    }

    /// Unwraps the DEK of `block_id` (committed or staged).
    pub fn data_key(&self, block_id: BlockId) -> Result<DataKey> {
        let entry = match self.find(block_id) {
            Some(i) => &self.entries[i],
            None => self
                .pending
                .iter()
                .find(|e| e.block_id == block_id)
                .ok_or_else(|| Error::UnknownBlock {
                    database: self.database.clone(),
                    block_id,
                })?,
        };
        self.open_entry(entry)
    }

    /// Durably removes the DEKs of `ids` (one REMOVE frame). Their wrapped copies remain in the
    /// file until [`DekTable::compact`]; [`DekTable::shred`] does both.
    pub fn remove(&mut self, ids: &[BlockId]) -> Result<()> {
        let mut ids: Vec<BlockId> = ids.iter().copied().filter(|id| self.contains(*id)).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let mut w = Writer::new();
        w.u8(FRAME_REMOVE).u32(ids.len() as u32);
        for id in &ids {
            w.u64(*id);
        }
        self.append_frame(&w.buf)?;
        remove_sorted(&mut self.entries, &mut ids);
        Ok(())
    }

    /// Removes the DEKs and rewrites the table so no wrapped copy of them remains in a live file.
    pub fn shred(&mut self, ids: &[BlockId]) -> Result<()> {
        self.remove(ids)?;
        self.compact()
    }

    /// Rewrites the live entries into generation N+1 and deletes generation N.
    pub fn compact(&mut self) -> Result<()> {
        self.commit()?;
        let entries = self.entries.clone();
        let keys = self.metadata_wrapped.clone();
        self.install_generation(entries, self.dk_generation, keys)
    }

    /// Re-wraps every DEK under `new_dk` (database-key rotation) into a new table generation.
    /// Block data is untouched: the DEKs themselves do not change.
    pub fn rewrap(&mut self, new_dk: Box<dyn AeadKey>, new_dk_generation: u32) -> Result<()> {
        self.commit()?;
        let prepared = self.prepare_rewrap(new_dk, new_dk_generation)?;
        self.install_rewrap(prepared)
    }

    /// The slow half of a rewrap, which needs only shared access (readers keep reading): every
    /// committed DEK and metadata key re-wrapped under `new_dk`, written to a temporary file.
    pub fn prepare_rewrap(&self, new_dk: Box<dyn AeadKey>, new_dk_generation: u32) -> Result<PreparedRewrap> {
        let entries = self.rewrap_entries(&self.entries, new_dk.as_ref(), new_dk_generation)?;
        let mut metadata_keys = Vec::with_capacity(self.metadata.len());
        for (id, _) in &self.metadata {
            let plain = self.unwrap_metadata_key(*id)?;
            metadata_keys.push(wrap_metadata_key(
                &self.database,
                new_dk.as_ref(),
                new_dk_generation,
                *id,
                &plain,
            )?);
        }
        let header = Header {
            database: self.database.clone(),
            dk_generation: new_dk_generation,
            generation: self.generation + 1,
            next_block_id: self.next_block_id,
            metadata_keys,
        };
        let generation = NewGeneration::stage(&self.dir, header, entries, new_dk.as_ref(), new_dk_generation)?;
        Ok(PreparedRewrap {
            new_dk,
            generation,
            based_on: (self.generation, self.file_len),
        })
    }

    /// The quick half of a rewrap (exclusive access): switches to the prepared generation. If
    /// the table changed since [`DekTable::prepare_rewrap`], the rewrap is redone here.
    pub fn install_rewrap(&mut self, prepared: PreparedRewrap) -> Result<()> {
        let PreparedRewrap {
            new_dk,
            generation,
            based_on,
        } = prepared;
        if based_on != (self.generation, self.file_len) {
            let dk_generation = generation.header.dk_generation;
            let _ = rustix::fs::unlinkat(&generation.dir, generation.tmp.as_str(), rustix::fs::AtFlags::empty());
            drop(generation);
            let again = self.prepare_rewrap(new_dk, dk_generation)?;
            return self.install_rewrap(again);
        }
        let pending = self.rewrap_entries(&self.pending, new_dk.as_ref(), generation.header.dk_generation)?;
        // Everything the new generation holds was sealed under the new DK, plus its header.
        let seals = (generation.entries.len() + pending.len() + generation.header.metadata_keys.len() + 1) as u64;
        self.switch_generation(generation, |t| {
            t.pending = pending;
            t.dk = new_dk;
            t.dk_seals = seals;
        })
    }

    /// Publishes a written generation and switches to it — also when only the directory sync
    /// after the rename failed, since the disk then shows the new generation and later appends
    /// must go to it — then deletes the old file. `also` updates the rest of the state with it.
    fn switch_generation(&mut self, new: NewGeneration, also: impl FnOnce(&mut Self)) -> Result<()> {
        self.require_writable()?;
        let publish = publish_generation(&self.dir, &new.dir, &new.tmp, new.header.generation);
        if !published(&publish) {
            return publish;
        }
        let old = self.current_path();
        self.generation = new.header.generation;
        self.dk_generation = new.header.dk_generation;
        self.file = new.file;
        self.file_len = new.len;
        self.entries = new.entries;
        self.metadata = new.metadata;
        self.metadata_wrapped = new.header.metadata_keys;
        also(self);
        publish?;
        fsutil::remove_file(&old)?;
        fsutil::sync_dir(&self.dir)
    }

    fn rewrap_entries(
        &self,
        from: &[WrappedDek],
        new_dk: &dyn AeadKey,
        new_dk_generation: u32,
    ) -> Result<Vec<WrappedDek>> {
        let mut rewrapped = Vec::with_capacity(from.len());
        let mut nonces = Zeroizing::new(vec![0u8; RNG_CHUNK * NONCE_LEN]);
        for chunk in from.chunks(RNG_CHUNK) {
            crate::fill_random(&mut nonces[..chunk.len() * NONCE_LEN])?;
            for (e, nonce) in chunk.iter().zip(nonces.chunks_exact(NONCE_LEN)) {
                let key = self.open_entry(e)?;
                let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("12 bytes");
                rewrapped.push(self.wrap(new_dk, new_dk_generation, e.block_id, key.expose_secret(), nonce)?);
            }
        }
        Ok(rewrapped)
    }

    fn unwrap_metadata_key(&self, id: u32) -> Result<Zeroizing<[u8; 32]>> {
        let m = self
            .metadata_wrapped
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| Error::corrupt(&self.dir, 0, "metadata key missing"))?;
        unwrap_metadata_key(&self.database, self.dk.as_ref(), self.dk_generation, m)
    }

    fn install_generation(
        &mut self,
        entries: Vec<WrappedDek>,
        dk_generation: u32,
        metadata_keys: Vec<WrappedMetadataKey>,
    ) -> Result<()> {
        let header = Header {
            database: self.database.clone(),
            dk_generation,
            generation: self.generation + 1,
            next_block_id: self.next_block_id,
            metadata_keys,
        };
        let seals = self.charge_dk(1)?;
        let new = NewGeneration::stage(&self.dir, header, entries, self.dk.as_ref(), dk_generation)?;
        self.switch_generation(new, |t| t.dk_seals = seals)
    }

    /// True if a committed DEK exists for `block_id`.
    pub fn contains(&self, block_id: BlockId) -> bool {
        self.find(block_id).is_some()
    }

    /// Committed entries, by ascending block id.
    pub fn entries(&self) -> &[WrappedDek] {
        &self.entries
    }

    /// Number of committed entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no DEK is committed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The table generation (bumped by compaction and re-wrapping).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The database-key generation the entries are wrapped under.
    pub fn dk_generation(&self) -> u32 {
        self.dk_generation
    }

    /// The file currently holding the table.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(file_name(self.generation))
    }

    /// Bytes of heap memory held by the entries (for the ≤ 100 bytes/entry budget).
    pub fn memory_bytes(&self) -> usize {
        (self.entries.capacity() + self.pending.capacity()) * std::mem::size_of::<WrappedDek>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aead::default_backend;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::fs;

    fn dk() -> Box<dyn AeadKey> {
        default_backend().key(&[0x11; 32])
    }

    #[test]
    fn generate_commit_reopen_unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
        let keys = t.generate(10).unwrap();
        assert_eq!(keys[0].0, 1);
        t.commit().unwrap();
        let t2 = DekTable::open(dir.path(), "dev", dk(), 1).unwrap();
        for (id, key) in &keys {
            assert_eq!(t2.data_key(*id).unwrap().expose_secret(), key.expose_secret());
        }
        assert!(matches!(t2.data_key(99), Err(Error::UnknownBlock { .. })));
        // The plaintext DEK bytes are not in the file.
        let raw = fs::read(t2.current_path()).unwrap();
        for (_, key) in &keys {
            assert!(!raw.windows(32).any(|w| w == key.expose_secret()));
        }
    }

    #[test]
    fn wrong_database_key_or_name_fails_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
        t.generate(1).unwrap();
        t.commit().unwrap();
        // The header tag fails at once under a wrong DK: it never opens.
        let err = DekTable::open(dir.path(), "dev", default_backend().key(&[0x22; 32]), 1).unwrap_err();
        assert!(err.is_authentication(), "{err}");
        assert!(err.to_string().contains("DEK table header"), "{err}");
        assert!(
            DekTable::open(dir.path(), "prod", dk(), 1)
                .unwrap_err()
                .is_authentication()
        );
    }

    #[test]
    fn every_byte_flip_in_a_wrapped_entry_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
        t.generate(1).unwrap();
        t.commit().unwrap();
        let entry = t.entries()[0];
        let mut bytes = Writer::new();
        entry.encode(&mut bytes);
        for i in 0..bytes.buf.len() {
            let mut b = bytes.buf.clone();
            b[i] ^= 0x01;
            let flipped = WrappedDek::decode(&mut Reader::new(&b)).unwrap();
            if flipped.block_id != entry.block_id {
                // Moving a DEK to another block id must not open either.
                assert!(t.open_entry(&flipped).is_err());
                continue;
            }
            assert!(t.open_entry(&flipped).unwrap_err().is_authentication(), "flip at {i}");
        }
    }

    #[test]
    fn truncating_the_last_append_at_every_offset_reopens_to_the_state_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
        t.generate(3).unwrap();
        t.commit().unwrap();
        let before_len = fs::metadata(t.current_path()).unwrap().len();
        t.generate(4).unwrap();
        t.commit().unwrap();
        t.remove(&[2]).unwrap();
        let path = t.current_path();
        let full = fs::read(&path).unwrap();
        // The last append is the REMOVE frame; the one before it the PUT of 4.
        let remove_start = {
            let r = replay(&full[..], &path).unwrap();
            assert_eq!(r.entries.len(), 6);
            full.len() - (8 + 1 + 4 + 8)
        };
        for cut in remove_start..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let t = DekTable::open(dir.path(), "dev", dk(), 1).unwrap();
            assert_eq!(t.len(), 7, "cut at {cut}");
            assert!(t.contains(2));
        }
        for cut in before_len as usize..remove_start {
            fs::write(&path, &full[..cut]).unwrap();
            let t = DekTable::open(dir.path(), "dev", dk(), 1).unwrap();
            assert_eq!(t.len(), 3, "cut at {cut}");
            // Reopening cut the torn tail; new appends follow the last good frame.
            assert_eq!(fs::metadata(&path).unwrap().len(), before_len);
        }
    }

    #[test]
    fn mid_file_corruption_is_an_error_with_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
        t.generate(2).unwrap();
        t.commit().unwrap();
        t.generate(2).unwrap();
        t.commit().unwrap();
        let path = t.current_path();
        let mut bytes = fs::read(&path).unwrap();
        let header_len = Header {
            database: "dev".into(),
            dk_generation: 1,
            generation: 1,
            next_block_id: 1,
            metadata_keys: t.metadata_wrapped.clone(),
        }
        .body()
        .len()
            + NONCE_LEN
            + TAG_LEN;
        bytes[header_len + 20] ^= 0xFF;
        fs::write(&path, &bytes).unwrap();
        match DekTable::open(dir.path(), "dev", dk(), 1) {
            Err(Error::Corrupt { offset, .. }) => assert_eq!(offset, header_len as u64),
            other => panic!("expected corrupt, got {other:?}"),
        }
    }

    #[test]
    fn shred_leaves_no_wrapped_copy_and_rewrap_changes_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
        let keys = t.generate(5).unwrap();
        t.commit().unwrap();
        let victim = t.entries()[1];
        t.shred(&[victim.block_id]).unwrap();
        let files: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1);
        let raw = fs::read(&files[0]).unwrap();
        assert!(!raw.windows(32).any(|w| w == victim.wrapped));
        let before: Vec<WrappedDek> = t.entries().to_vec();
        t.rewrap(default_backend().key(&[0x33; 32]), 2).unwrap();
        for (old, new) in before.iter().zip(t.entries()) {
            assert_ne!(old.wrapped, new.wrapped);
            assert_eq!(new.dk_generation, 2);
        }
        let t2 = DekTable::open(dir.path(), "dev", default_backend().key(&[0x33; 32]), 2).unwrap();
        assert_eq!(
            t2.data_key(keys[0].0).unwrap().expose_secret(),
            keys[0].1.expose_secret()
        );
        assert!(
            DekTable::open(dir.path(), "dev", dk(), 1)
                .unwrap_err()
                .is_authentication()
        );
    }

    #[test]
    fn a_rewrap_prepared_before_a_commit_is_redone_at_install_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
        let mut keys = t.generate(3).unwrap();
        t.commit().unwrap();
        let prepared = t.prepare_rewrap(default_backend().key(&[0x44; 32]), 2).unwrap();
        keys.extend(t.generate(2).unwrap());
        t.commit().unwrap();
        t.install_rewrap(prepared).unwrap();
        assert_eq!(t.len(), 5);
        assert!(t.entries().iter().all(|e| e.dk_generation == 2));
        let t2 = DekTable::open(dir.path(), "dev", default_backend().key(&[0x44; 32]), 2).unwrap();
        for (id, k) in &keys {
            assert_eq!(t2.data_key(*id).unwrap().expose_secret(), k.expose_secret());
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn metadata_survives_rotation_and_old_metadata_keys_retire() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
        let mut sealed = b"manifest".to_vec();
        let (nonce, tag) = t.seal_metadata("m", 1, b"aad", &mut sealed).unwrap();
        t.rewrap(default_backend().key(&[0x55; 32]), 2).unwrap();
        let mut buf = sealed.clone();
        t.open_metadata("m", 1, b"aad", &nonce, &mut buf, &tag).unwrap();
        assert_eq!(buf, b"manifest");
        assert_eq!(t.add_metadata_key().unwrap(), 2);
        assert_eq!(t.metadata_key_id(), 2);
        let mut buf = sealed.clone();
        t.open_metadata("m", 1, b"aad", &nonce, &mut buf, &tag).unwrap();
        t.retire_metadata_keys().unwrap();
        let mut buf = sealed.clone();
        let err = t.open_metadata("m", 1, b"aad", &nonce, &mut buf, &tag).unwrap_err();
        assert!(err.is_authentication(), "{err}");
        let t2 = DekTable::open(dir.path(), "dev", default_backend().key(&[0x55; 32]), 2).unwrap();
        assert_eq!(t2.metadata_key_id(), 2);
    }

    #[test]
    fn a_worn_out_database_key_or_metadata_key_refuses_to_seal_more() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
        t.set_seal_counts(crate::SealCounts {
            database_key: crate::SEAL_LIMIT - 2,
            metadata_key: crate::SEAL_LIMIT - 1,
        });
        t.generate(2).unwrap();
        let err = t.generate(1).unwrap_err();
        assert!(
            matches!(&err, Error::KeyWornOut { action, .. } if action == "sealstore rotate --database dev"),
            "{err}"
        );
        let mut buf = b"m".to_vec();
        t.seal_metadata("m", 1, b"", &mut buf).unwrap();
        let err = t.seal_metadata("m", 1, b"", &mut buf).unwrap_err();
        assert!(err.to_string().contains("sealstore rekey --database dev"), "{err}");
        // A rotation resets the database key's count to what the new key sealed.
        t.rewrap(default_backend().key(&[0x66; 32]), 2).unwrap();
        assert_eq!(t.seal_counts().database_key, 2 + 1 + 1);
        t.generate(1).unwrap();
        // A new metadata key resets its count.
        t.add_metadata_key().unwrap();
        assert_eq!(t.seal_counts().metadata_key, 0);
        t.seal_metadata("m", 2, b"", &mut buf).unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Generate(usize),
        Commit,
        Discard,
        Remove(usize),
        Compact,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1usize..20).prop_map(Op::Generate),
            Just(Op::Commit),
            Just(Op::Discard),
            (0usize..30).prop_map(Op::Remove),
            Just(Op::Compact),
            Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn matches_an_in_memory_model(ops in proptest::collection::vec(op(), 1..30)) {
            let dir = tempfile::tempdir().unwrap();
            let mut t = DekTable::create(dir.path(), "dev", dk(), 1).unwrap();
            let mut model: std::collections::BTreeMap<u64, [u8; 32]> = Default::default();
            let mut staged: Vec<(u64, [u8; 32])> = Vec::new();
            let mut seen_ids = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Generate(n) => {
                        for (id, k) in t.generate(n).unwrap() {
                            // Ids that never became durable may come back after a reopen; a
                            // committed id never does.
                            prop_assert!(!seen_ids.contains(&id), "committed block id reused");
                            staged.push((id, *k.expose_secret()));
                        }
                    }
                    Op::Commit => {
                        t.commit().unwrap();
                        seen_ids.extend(staged.iter().map(|(id, _)| *id));
                        model.extend(staged.drain(..));
                    }
                    Op::Discard => { t.discard_pending(); staged.clear(); }
                    Op::Remove(i) => {
                        if let Some(&id) = model.keys().nth(i % model.len().max(1)) {
                            t.remove(&[id]).unwrap();
                            model.remove(&id);
                        }
                    }
                    Op::Compact => {
                        t.compact().unwrap();
                        seen_ids.extend(staged.iter().map(|(id, _)| *id));
                        model.extend(staged.drain(..));
                    }
                    Op::Reopen => {
                        t = DekTable::open(dir.path(), "dev", dk(), 1).unwrap();
                        staged.clear();
                    }
                }
                prop_assert_eq!(t.len(), model.len());
            }
            let t = DekTable::open(dir.path(), "dev", dk(), 1).unwrap();
            prop_assert_eq!(t.len(), model.len());
            for (id, key) in &model {
                let k = t.data_key(*id).unwrap();
                prop_assert_eq!(k.expose_secret(), key);
            }
        }

        #[test]
        fn arbitrary_images_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = replay_image(&bytes);
        }
    }
}

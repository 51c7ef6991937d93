//! Segment files: each holds a fixed number of block slots, written with positioned writes and
//! `fdatasync` (writeback started per slot, see `writeback`), read through memory maps.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use parking_lot::RwLock;
use sealstore_keyring::{faults, fsutil};

use crate::{Error, Result};

struct Segment {
    file: File,
    /// `None` for an empty file (nothing to map).
    map: Option<Mmap>,
}

/// The segment files of one store.
pub(crate) struct Segments {
    dir: PathBuf,
    block_size: usize,
    slots_per_segment: u64,
    files: RwLock<Vec<Option<Segment>>>,
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segments")
            .field("dir", &self.dir)
            .field("count", &self.files.read().len())
            .finish()
    }
}

fn segment_name(index: u64) -> String {
    format!("seg-{index:06}.dat")
}

fn map(file: &File, path: &Path) -> Result<Option<Mmap>> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: the mapping is read-only and sealstore never truncates or shrinks a segment file
    // (slots are rewritten in place with pwrite, which the shared mapping observes coherently).
    // Bytes read through it are authenticated (AES-GCM) before use, so concurrent modification
    // by another process can yield an authentication error but never unsound Rust values. The
    // remaining hazard, truncation by another process while mapped (SIGBUS), is documented in
    // docs/format.md.
    #[allow(unsafe_code)]
    let m = unsafe { Mmap::map(file) }.map_err(|e| Error::io(path, e))?;
    Ok(Some(m))
}

impl Segments {
    /// Opens the segment files present in `dir` (gaps are allowed: a missing file is reported
    /// when a slot in it is read).
    pub fn open(dir: &Path, block_size: usize, slots_per_segment: u64) -> Result<Self> {
        let mut indexes = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name();
            if let Some(i) = name
                .to_str()
                .and_then(|n| n.strip_prefix("seg-")?.strip_suffix(".dat")?.parse::<u64>().ok())
            {
                indexes.push(i);
            }
        }
        let count = indexes.iter().max().map_or(0, |m| m + 1) as usize;
        let mut files: Vec<Option<Segment>> = (0..count).map(|_| None).collect();
        for i in indexes {
            let path = dir.join(segment_name(i));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            let map = map(&file, &path)?;
            files[i as usize] = Some(Segment { file, map });
        }
        Ok(Self {
            dir: dir.to_owned(),
            block_size,
            slots_per_segment,
            files: RwLock::new(files),
        })
    }

    /// Total slots in existing segment files.
    pub fn slot_count(&self) -> u64 {
        self.files.read().len() as u64 * self.slots_per_segment
    }

    /// Number of segment files (including gaps).
    pub fn segment_count(&self) -> usize {
        self.files.read().len()
    }

    /// The file and byte offset of a slot.
    pub fn location(&self, slot: u64) -> (PathBuf, u64) {
        let seg = slot / self.slots_per_segment;
        (
            self.dir.join(segment_name(seg)),
            (slot % self.slots_per_segment) * self.block_size as u64,
        )
    }

    /// Adds one segment file (full size, sparse), durably.
    pub fn grow(&self) -> Result<()> {
        let mut files = self.files.write();
        let index = files.len() as u64;
        let path = self.dir.join(segment_name(index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.set_len(self.slots_per_segment * self.block_size as u64)
            .map_err(|e| Error::io(&path, e))?;
        faults::sync_all(&file).map_err(|e| Error::io(&path, e))?;
        fsutil::sync_dir(&self.dir)?;
        let map = map(&file, &path)?;
        files.push(Some(Segment { file, map }));
        Ok(())
    }

    /// Writes one sealed block into its slot (not yet durable: see [`Segments::sync`]).
    pub fn write_slot(&self, slot: u64, bytes: &[u8]) -> Result<()> {
        debug_assert_eq!(bytes.len(), self.block_size);
        let (path, offset) = self.location(slot);
        let files = self.files.read();
        let seg = files
            .get((slot / self.slots_per_segment) as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::MissingSegment {
                path: path.clone(),
                reason: "no such segment".into(),
            })?;
        faults::write_at(&seg.file, bytes, offset).map_err(|e| Error::io(&path, e))?;
        crate::writeback::start(&seg.file, offset, bytes.len());
        Ok(())
    }

    /// Runs `f` on a slot's mapped bytes (one block long), without copying them.
    pub fn with_slot<T>(&self, slot: u64, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let (path, offset) = self.location(slot);
        let files = self.files.read();
        let Some(seg) = files
            .get((slot / self.slots_per_segment) as usize)
            .and_then(Option::as_ref)
        else {
            return Err(Error::MissingSegment {
                path,
                reason: "file not found".into(),
            });
        };
        let end = offset as usize + self.block_size;
        match seg.map.as_ref().filter(|m| m.len() >= end) {
            Some(m) => Ok(f(&m[offset as usize..end])),
            None => Err(Error::MissingSegment {
                path,
                reason: format!("shorter than {end} bytes"),
            }),
        }
    }

    /// `fdatasync`s every segment file holding one of `slots`.
    pub fn sync(&self, slots: impl IntoIterator<Item = u64>) -> Result<()> {
        let mut segs: Vec<u64> = slots.into_iter().map(|s| s / self.slots_per_segment).collect();
        segs.sort_unstable();
        segs.dedup();
        let files = self.files.read();
        for s in segs {
            if let Some(Some(seg)) = files.get(s as usize) {
                faults::sync_data(&seg.file).map_err(|e| Error::io(self.dir.join(segment_name(s)), e))?;
            }
        }
        Ok(())
    }

    /// Paths of all segment files present.
    pub fn paths(&self) -> Vec<PathBuf> {
        let files = self.files.read();
        (0..files.len() as u64)
            .filter(|i| files[*i as usize].is_some())
            .map(|i| self.dir.join(segment_name(i)))
            .collect()
    }
}

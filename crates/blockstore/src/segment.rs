//! Segment files: each holds a fixed number of block slots, written with positioned writes and
//! `fdatasync` (writeback started per slot, see `writeback`).
//!
//! Slots are read with `pread` into the caller's buffer — a private copy — and only then
//! authenticated and decrypted in place. Another process writing or truncating the file while we
//! read can therefore change what we copy, never the bytes between authentication and
//! decryption, and a truncated file is a short read (an error), never a SIGBUS from a map.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use sealstore_keyring::{faults, fsutil};

use crate::{Error, Result};

/// Most segment files a store may have (with the smallest slots, 2^32 slots: see `MAX_SLOT`).
/// Bounds what a hostile segment name (`seg-18446744073709551615.dat`) can make us allocate.
pub(crate) const MAX_SEGMENTS: u64 = 1 << 16;

/// The segment files of one store.
pub(crate) struct Segments {
    dir: PathBuf,
    block_size: usize,
    slots_per_segment: u64,
    writable: bool,
    files: RwLock<Vec<Option<File>>>,
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

/// The index a segment file name stands for (`seg-000012.dat` → 12).
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".dat")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Segments {
    /// Opens the segment files present in `dir` (gaps are allowed: a missing file is reported
    /// when a slot in it is read). Read-only stores open them read-only.
    pub fn open(dir: &Path, block_size: usize, slots_per_segment: u64, writable: bool) -> Result<Self> {
        let mut indexes = Vec::new();
        for name in fsutil::list_dir(dir)? {
            if let Some(i) = parse_segment_name(&name) {
                if i >= MAX_SEGMENTS {
                    return Err(Error::corrupt(
                        dir.join(&name),
                        0,
                        format!("segment index {i} is beyond the largest a store has ({MAX_SEGMENTS})"),
                    ));
                }
                indexes.push(i);
            }
        }
        let count = indexes.iter().max().map_or(0, |m| m + 1) as usize;
        let mut files: Vec<Option<File>> = (0..count).map(|_| None).collect();
        for i in indexes {
            let path = dir.join(segment_name(i));
            let file = if writable {
                fsutil::open_rw(&path)?
            } else {
                fsutil::open_read(&path)?
            };
            files[i as usize] = Some(file);
        }
        Ok(Self {
            dir: dir.to_owned(),
            block_size,
            slots_per_segment,
            writable,
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

    /// Adds one segment file, created exclusively and empty, durably. It grows as its slots are
    /// written: never a large sparse file that a copy or an upload would expand.
    pub fn grow(&self) -> Result<()> {
        if !self.writable {
            return Err(Error::Key(sealstore_keyring::Error::ReadOnly {
                what: format!("store {}", self.dir.display()),
            }));
        }
        let mut files = self.files.write();
        let index = files.len() as u64;
        if index >= MAX_SEGMENTS {
            return Err(Error::corrupt(
                &self.dir,
                0,
                "the store has its largest number of segments",
            ));
        }
        let path = self.dir.join(segment_name(index));
        // `create_new` already made the new name durable (it syncs the directory).
        let file = fsutil::create_new(&path, 0o600)?;
        faults::sync_all(&file).map_err(|e| Error::io(&path, e))?;
        files.push(Some(file));
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
        faults::write_at(seg, bytes, offset).map_err(|e| Error::io(&path, e))?;
        crate::writeback::start(seg, offset, bytes.len());
        Ok(())
    }

    /// Copies the first `out.len()` bytes of a slot (at most one block) into `out`. A file too
    /// short to hold them — missing, or truncated, even while we read — is an error.
    pub fn read_slot(&self, slot: u64, out: &mut [u8]) -> Result<()> {
        debug_assert!(out.len() <= self.block_size);
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
        seg.read_exact_at(out, offset).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::MissingSegment {
                path,
                reason: format!("shorter than {} bytes (truncated)", offset + out.len() as u64),
            },
            _ => Error::io(self.dir.join(segment_name(slot / self.slots_per_segment)), e),
        })
    }

    /// Whether the first `len` bytes of `slot` lie (partly) past the end of its existing segment
    /// file: a slot never written since the file grows as slots are written. `false` when the
    /// file is missing or cannot be measured (reads report those).
    pub fn past_end(&self, slot: u64, len: usize) -> bool {
        let (_, offset) = self.location(slot);
        let files = self.files.read();
        files
            .get((slot / self.slots_per_segment) as usize)
            .and_then(Option::as_ref)
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.len() < offset + len as u64)
    }

    /// `fdatasync`s every segment file holding one of `slots`.
    pub fn sync(&self, slots: impl IntoIterator<Item = u64>) -> Result<()> {
        let mut segs: Vec<u64> = slots.into_iter().map(|s| s / self.slots_per_segment).collect();
        segs.sort_unstable();
        segs.dedup();
        let files = self.files.read();
        for s in segs {
            if let Some(Some(seg)) = files.get(s as usize) {
                faults::sync_data(seg).map_err(|e| Error::io(self.dir.join(segment_name(s)), e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_parse_strictly() {
        assert_eq!(parse_segment_name("seg-000012.dat"), Some(12));
        assert_eq!(parse_segment_name("seg-18446744073709551615.dat"), Some(u64::MAX));
        assert_eq!(parse_segment_name("seg-+00001.dat"), None);
        assert_eq!(parse_segment_name("seg-1.dat"), None);
        assert_eq!(parse_segment_name("seg-99999999999999999999999.dat"), None);
    }

    #[test]
    fn a_hostile_segment_name_is_a_clear_error_not_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seg-18446744073709551615.dat"), b"").unwrap();
        let err = Segments::open(dir.path(), 1 << 16, 1024, false).unwrap_err();
        assert!(err.to_string().contains("beyond the largest"), "{err}");
    }

    #[test]
    fn a_segment_file_grows_with_its_written_slots_not_to_full_size() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path(), 1 << 16, 64, true).unwrap();
        segs.grow().unwrap();
        let path = dir.path().join(segment_name(0));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        segs.write_slot(0, &vec![1u8; 1 << 16]).unwrap();
        segs.write_slot(2, &vec![2u8; 1 << 16]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 16);
        let mut out = vec![0u8; 1 << 16];
        segs.read_slot(2, &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 2));
        let err = segs.read_slot(5, &mut out).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn a_truncated_segment_reads_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path(), 1 << 16, 4, true).unwrap();
        segs.grow().unwrap();
        segs.write_slot(1, &vec![7u8; 1 << 16]).unwrap();
        let mut out = vec![0u8; 1 << 16];
        segs.read_slot(1, &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 7));
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(segment_name(0)))
            .unwrap()
            .set_len(100_000)
            .unwrap();
        assert!(matches!(segs.read_slot(1, &mut out), Err(Error::MissingSegment { .. })));
    }
}

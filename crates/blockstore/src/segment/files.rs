//! Segment files on a local file system: each holds a fixed number of block slots, written with positioned writes and
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

use super::{MAX_SEGMENTS, parse_segment_name, segment_name, slots_per_segment};
use crate::{Error, Result, slot};

/// The segment files of one store: one family of files per size class.
pub(crate) struct FileSegments {
    dir: PathBuf,
    top_class: u8,
    writable: bool,
    /// Indexed by class, then by segment index (`None`: a gap, reported when read).
    files: RwLock<Vec<Vec<Option<File>>>>,
}

impl std::fmt::Debug for FileSegments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSegments")
            .field("dir", &self.dir)
            .field("count", &self.segment_count())
            .finish()
    }
}

impl FileSegments {
    /// Opens the segment files present in `dir` (gaps are allowed: a missing file is reported
    /// when a slot in it is read). Read-only stores open them read-only. A name whose class is
    /// above the store's largest, or whose index is beyond [`MAX_SEGMENTS`], is an error.
    pub fn open(dir: &Path, block_size: usize, writable: bool) -> Result<Self> {
        let top_class = slot::top_class(block_size);
        let mut files: Vec<Vec<Option<File>>> = (0..=top_class).map(|_| Vec::new()).collect();
        for name in fsutil::list_dir(dir)? {
            let Some((class, i)) = parse_segment_name(&name) else {
                continue;
            };
            if class > top_class || i >= MAX_SEGMENTS {
                return Err(Error::corrupt(
                    dir.join(&name),
                    0,
                    format!(
                        "segment class {class} index {i} is beyond the largest this store has (class {top_class}, {MAX_SEGMENTS} files)"
                    ),
                ));
            }
            let path = dir.join(&name);
            let file = if writable {
                fsutil::open_rw(&path)?
            } else {
                fsutil::open_read(&path)?
            };
            let family = &mut files[usize::from(class)];
            if family.len() <= i as usize {
                family.resize_with(i as usize + 1, || None);
            }
            family[i as usize] = Some(file);
        }
        Ok(Self {
            dir: dir.to_owned(),
            top_class,
            writable,
            files: RwLock::new(files),
        })
    }

    /// The class of the store's full-size blocks.
    pub fn top_class(&self) -> u8 {
        self.top_class
    }

    /// Bytes of `slot` (the size of its class). The class must be at most [`Self::top_class`]
    /// (a store checks every slot of a manifest when it opens it).
    pub fn slot_len(&self, slot: u64) -> usize {
        slot::class_size(slot::class_of(slot))
    }

    /// Slots in existing segment files of `class`.
    pub fn slot_count(&self, class: u8) -> u64 {
        self.files.read().get(usize::from(class)).map_or(0, Vec::len) as u64 * slots_per_segment(class)
    }

    /// Slots in existing segment files of every class.
    pub fn total_slots(&self) -> u64 {
        (0..=self.top_class).map(|c| self.slot_count(c)).sum()
    }

    /// Number of segment files (including gaps).
    pub fn segment_count(&self) -> usize {
        self.files.read().iter().map(Vec::len).sum()
    }

    /// The file and byte offset of a slot.
    pub fn location(&self, slot: u64) -> (PathBuf, u64) {
        let (class, seg, offset) = super::place(slot);
        (self.dir.join(segment_name(class, seg)), offset)
    }

    /// Adds one segment file to `class`, created exclusively and empty, durably. It grows as its
    /// slots are written: never a large sparse file that a copy or an upload would expand.
    pub fn grow(&self, class: u8) -> Result<()> {
        if !self.writable {
            return Err(Error::Key(sealstore_keyring::Error::ReadOnly {
                what: format!("store {}", self.dir.display()),
            }));
        }
        if class > self.top_class {
            return Err(Error::Internal(format!(
                "size class {class} is above the store's largest"
            )));
        }
        let mut files = self.files.write();
        let family = &mut files[usize::from(class)];
        let index = family.len() as u64;
        if index >= MAX_SEGMENTS {
            return Err(Error::corrupt(
                &self.dir,
                0,
                "the store has its largest number of segments",
            ));
        }
        let path = self.dir.join(segment_name(class, index));
        // `create_new` already made the new name durable (it syncs the directory).
        let file = match fsutil::create_new(&path, 0o600) {
            Ok(file) => file,
            // Left by an earlier `grow` of this process that failed after creating the file
            // (or planted): it was not here when the store opened, so no committed manifest
            // references it, and it is taken over empty. Links and non-files are still refused.
            Err(sealstore_keyring::Error::AlreadyExists { .. }) => {
                let file = fsutil::open_rw(&path)?;
                file.set_len(0).map_err(|e| Error::io(&path, e))?;
                fsutil::sync_dir(&self.dir)?;
                file
            }
            Err(e) => return Err(e.into()),
        };
        faults::sync_all(&file).map_err(|e| Error::io(&path, e))?;
        family.push(Some(file));
        Ok(())
    }

    /// Gives back the space of `class`'s slots from index `keep` on (all free: the caller holds
    /// the write state and has no slot at or above `keep` in use): each file is cut to the end of
    /// its last slot below `keep`, files past it to zero. Without this, slots a table grew out of
    /// (its partial blocks move up through the classes as it is appended to) would keep their
    /// space for good. Not synced: a cut lost in a crash only leaves free space in place.
    pub fn trim(&self, class: u8, keep: u64) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        let spp = slots_per_segment(class);
        let size = slot::class_size(class) as u64;
        let files = self.files.read();
        let Some(family) = files.get(usize::from(class)) else {
            return Ok(());
        };
        for (i, file) in family.iter().enumerate() {
            let Some(file) = file else { continue };
            let len = keep.saturating_sub(i as u64 * spp).min(spp) * size;
            let path = || self.dir.join(segment_name(class, i as u64));
            if file.metadata().map_err(|e| Error::io(path(), e))?.len() > len {
                file.set_len(len).map_err(|e| Error::io(path(), e))?;
            }
        }
        Ok(())
    }

    /// Runs `f` on the open file holding `slot`, or reports it missing.
    fn with_file<T>(&self, slot: u64, missing: &str, f: impl FnOnce(&File, PathBuf, u64) -> Result<T>) -> Result<T> {
        let (class, seg, offset) = super::place(slot);
        let path = self.dir.join(segment_name(class, seg));
        let files = self.files.read();
        match files
            .get(usize::from(class))
            .and_then(|family| family.get(seg as usize))
            .and_then(Option::as_ref)
        {
            Some(file) => f(file, path, offset),
            None => Err(Error::MissingSegment {
                path,
                reason: missing.into(),
            }),
        }
    }

    /// Writes one sealed block into its slot (not yet durable: see [`Segments::sync`]).
    pub fn write_slot(&self, slot: u64, bytes: &[u8]) -> Result<()> {
        debug_assert_eq!(bytes.len(), self.slot_len(slot));
        self.with_file(slot, "no such segment", |seg, path, offset| {
            faults::write_at(seg, bytes, offset).map_err(|e| Error::io(&path, e))?;
            crate::writeback::start(seg, offset, bytes.len());
            Ok(())
        })
    }

    /// Copies the first `out.len()` bytes of a slot (at most the slot) into `out`. A file too
    /// short to hold them — missing, or truncated, even while we read — is an error.
    pub fn read_slot(&self, slot: u64, out: &mut [u8]) -> Result<()> {
        debug_assert!(out.len() <= self.slot_len(slot));
        self.with_file(slot, "file not found", |seg, path, offset| {
            seg.read_exact_at(out, offset).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::MissingSegment {
                    reason: format!("shorter than {} bytes (truncated)", offset + out.len() as u64),
                    path,
                },
                _ => Error::io(path, e),
            })
        })
    }

    /// Whether the first `len` bytes of `slot` lie (partly) past the end of its existing segment
    /// file: a slot never written since the file grows as slots are written. `false` when the
    /// file is missing or cannot be measured (reads report those).
    pub fn past_end(&self, slot: u64, len: usize) -> bool {
        self.with_file(slot, "", |f, _, offset| {
            Ok(f.metadata().ok().is_some_and(|m| m.len() < offset + len as u64))
        })
        .unwrap_or(false)
    }

    /// `fdatasync`s every segment file holding one of `slots`.
    pub fn sync(&self, slots: impl IntoIterator<Item = u64>) -> Result<()> {
        let mut segs: Vec<(u8, u64)> = slots
            .into_iter()
            .map(|s| {
                let (class, seg, _) = super::place(s);
                (class, seg)
            })
            .collect();
        segs.sort_unstable();
        segs.dedup();
        let files = self.files.read();
        for (class, s) in segs {
            if let Some(Some(seg)) = files.get(usize::from(class)).and_then(|f| f.get(s as usize)) {
                faults::sync_data(seg).map_err(|e| Error::io(self.dir.join(segment_name(class, s)), e))?;
            }
        }
        Ok(())
    }

    /// Paths of all segment files present.
    pub fn paths(&self) -> Vec<PathBuf> {
        let files = self.files.read();
        let mut out = Vec::new();
        for (class, family) in files.iter().enumerate() {
            for (i, f) in family.iter().enumerate() {
                if f.is_some() {
                    out.push(self.dir.join(segment_name(class as u8, i as u64)));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: usize = 1 << 16;

    #[test]
    fn segment_names_parse_strictly() {
        assert_eq!(parse_segment_name("seg-004-000012.dat"), Some((4, 12)));
        assert_eq!(
            parse_segment_name("seg-000-18446744073709551615.dat"),
            Some((0, u64::MAX))
        );
        assert_eq!(parse_segment_name("seg-000012.dat"), None);
        assert_eq!(parse_segment_name("seg-04-000012.dat"), None);
        assert_eq!(parse_segment_name("seg-004-+00001.dat"), None);
        assert_eq!(parse_segment_name("seg-004-1.dat"), None);
        assert_eq!(parse_segment_name("seg-004-99999999999999999999999.dat"), None);
    }

    #[test]
    fn a_hostile_segment_name_is_a_clear_error_not_an_allocation() {
        for name in ["seg-000-18446744073709551615.dat", "seg-127-000000.dat"] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(name), b"").unwrap();
            let err = FileSegments::open(dir.path(), BLOCK, false).unwrap_err();
            assert!(err.to_string().contains("beyond the largest"), "{err}");
        }
    }

    #[test]
    fn a_segment_file_grows_with_its_written_slots_not_to_full_size() {
        let dir = tempfile::tempdir().unwrap();
        let segs = FileSegments::open(dir.path(), BLOCK, true).unwrap();
        let top = segs.top_class();
        segs.grow(top).unwrap();
        let path = dir.path().join(segment_name(top, 0));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        segs.write_slot(slot::compose(top, 0), &vec![1u8; BLOCK]).unwrap();
        segs.write_slot(slot::compose(top, 2), &vec![2u8; BLOCK]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * BLOCK as u64);
        let mut out = vec![0u8; BLOCK];
        segs.read_slot(slot::compose(top, 2), &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 2));
        let err = segs.read_slot(slot::compose(top, 5), &mut out).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn each_size_class_has_its_own_files_and_slot_size() {
        let dir = tempfile::tempdir().unwrap();
        let segs = FileSegments::open(dir.path(), BLOCK, true).unwrap();
        segs.grow(16).unwrap();
        segs.grow(26).unwrap();
        let (a, b) = (slot::compose(16, 1), slot::compose(26, 1));
        assert_eq!((segs.slot_len(a), segs.slot_len(b)), (4 << 10, 10 << 10));
        segs.write_slot(a, &vec![3u8; 4 << 10]).unwrap();
        segs.write_slot(b, &vec![4u8; 10 << 10]).unwrap();
        assert_eq!(segs.location(a), (dir.path().join("seg-016-000000.dat"), 4 << 10));
        assert_eq!(segs.location(b), (dir.path().join("seg-026-000000.dat"), 10 << 10));
        assert_eq!(
            std::fs::metadata(dir.path().join("seg-026-000000.dat")).unwrap().len(),
            20 << 10
        );
        let reopened = FileSegments::open(dir.path(), BLOCK, false).unwrap();
        let mut out = vec![0u8; 10 << 10];
        reopened.read_slot(b, &mut out).unwrap();
        assert!(out.iter().all(|&x| x == 4));
        assert_eq!(reopened.paths().len(), 2);
    }

    #[test]
    fn trimming_cuts_free_slots_off_the_end_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let segs = FileSegments::open(dir.path(), BLOCK, true).unwrap();
        segs.grow(16).unwrap();
        for i in 0..4 {
            segs.write_slot(slot::compose(16, i), &vec![i as u8 + 1; 4 << 10])
                .unwrap();
        }
        let file = dir.path().join("seg-016-000000.dat");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 16 << 10);
        segs.trim(16, 2).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 8 << 10);
        let mut out = vec![0u8; 4 << 10];
        segs.read_slot(slot::compose(16, 1), &mut out).unwrap();
        assert!(out.iter().all(|&x| x == 2));
        assert!(matches!(
            segs.read_slot(slot::compose(16, 2), &mut out),
            Err(Error::MissingSegment { .. })
        ));
        // A trimmed slot is written again like any slot past the end.
        segs.write_slot(slot::compose(16, 3), &vec![9u8; 4 << 10]).unwrap();
        segs.read_slot(slot::compose(16, 3), &mut out).unwrap();
        assert!(out.iter().all(|&x| x == 9));
        segs.trim(16, 0).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
    }

    #[test]
    fn a_truncated_segment_reads_as_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let segs = FileSegments::open(dir.path(), BLOCK, true).unwrap();
        let top = segs.top_class();
        segs.grow(top).unwrap();
        let s = slot::compose(top, 1);
        segs.write_slot(s, &vec![7u8; BLOCK]).unwrap();
        let mut out = vec![0u8; BLOCK];
        segs.read_slot(s, &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 7));
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(segment_name(top, 0)))
            .unwrap()
            .set_len(100_000)
            .unwrap();
        assert!(matches!(segs.read_slot(s, &mut out), Err(Error::MissingSegment { .. })));
    }
}

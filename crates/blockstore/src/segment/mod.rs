//! Where a store's sealed blocks live: segment files in a directory (slots written in place),
//! or write-once segment objects on an object store ([`objects`]). Both address a block by the
//! manifest's slot number (size class and index, `crate::slot`): slot `k` of a class lives in
//! segment `k div slots_per_segment` at byte `(k mod slots_per_segment) × class size`.
use std::path::PathBuf;

use crate::{Result, slot};

mod files;
mod objects;

pub(crate) use files::FileSegments;
pub(crate) use objects::ObjectSegments;

/// Most segment files one size class of a store may have. Bounds what a hostile segment name
/// (`seg-000-18446744073709551615.dat`) can make us allocate.
pub(crate) const MAX_SEGMENTS: u64 = 1 << 16;
/// Bytes of segment file per segment (slots per segment = this / slot size, at least one).
pub(crate) const SEGMENT_BYTES: usize = 64 << 20;

/// Slots per segment file of `class`.
pub(crate) fn slots_per_segment(class: u8) -> u64 {
    (SEGMENT_BYTES / slot::class_size(class)).max(1) as u64
}

/// Segments of a class a slot number can address: slot indexes are below 2^32
/// (`manifest::MAX_SLOT`).
pub(crate) fn segment_limit(class: u8) -> u64 {
    ((1u64 << 32) / slots_per_segment(class)).min(MAX_SEGMENTS)
}

pub(crate) fn segment_name(class: u8, index: u64) -> String {
    format!("seg-{class:03}-{index:06}.dat")
}

/// The class and index a segment file name stands for (`seg-004-000012.dat` → (4, 12)).
pub(crate) fn parse_segment_name(name: &str) -> Option<(u8, u64)> {
    let rest = name.strip_prefix("seg-")?.strip_suffix(".dat")?;
    let (class, digits) = rest.split_once('-')?;
    let decimal = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if class.len() != 3 || !decimal(class) || digits.len() < 6 || !decimal(digits) {
        return None;
    }
    Some((class.parse().ok()?, digits.parse().ok()?))
}

/// (class, segment index, byte offset) of a slot.
pub(crate) fn place(slot: u64) -> (u8, u64, u64) {
    let class = slot::class_of(slot);
    let spp = slots_per_segment(class);
    let index = slot::index_of(slot);
    (class, index / spp, (index % spp) * slot::class_size(class) as u64)
}

/// The segments of one store.
#[derive(Debug)]
pub(crate) enum Segments {
    Files(FileSegments),
    Objects(Box<ObjectSegments>),
}

impl Segments {
    /// The class of the store's full-size blocks.
    pub fn top_class(&self) -> u8 {
        match self {
            Segments::Files(s) => s.top_class(),
            Segments::Objects(s) => s.top_class(),
        }
    }

    /// Bytes of `slot` (the size of its class).
    pub fn slot_len(&self, slot: u64) -> usize {
        slot::class_size(slot::class_of(slot))
    }

    /// Slots in existing segments of every class.
    pub fn total_slots(&self) -> u64 {
        match self {
            Segments::Files(s) => s.total_slots(),
            Segments::Objects(s) => s.total_slots(),
        }
    }

    /// Number of segments (files including gaps, or objects).
    pub fn segment_count(&self) -> usize {
        match self {
            Segments::Files(s) => s.segment_count(),
            Segments::Objects(s) => s.segment_count(),
        }
    }

    /// Where a slot's bytes are: file (or object URL) and byte offset.
    pub fn location(&self, slot: u64) -> (PathBuf, u64) {
        match self {
            Segments::Files(s) => s.location(slot),
            Segments::Objects(s) => s.location(slot),
        }
    }

    /// Writes one sealed block into its slot (durable after [`Segments::sync`]).
    pub fn write_slot(&self, slot: u64, bytes: &[u8]) -> Result<()> {
        match self {
            Segments::Files(s) => s.write_slot(slot, bytes),
            Segments::Objects(s) => s.write_slot(slot, bytes),
        }
    }

    /// Copies the first `out.len()` bytes of a slot into `out` (a private copy).
    pub fn read_slot(&self, slot: u64, out: &mut [u8]) -> Result<()> {
        match self {
            Segments::Files(s) => s.read_slot(slot, out),
            Segments::Objects(s) => s.read_slot(slot, out),
        }
    }

    /// Whether a slot lies past the end of its segment (never written); reads report the rest.
    pub fn past_end(&self, slot: u64, len: usize) -> bool {
        match self {
            Segments::Files(s) => s.past_end(slot, len),
            Segments::Objects(_) => false,
        }
    }

    /// Makes every slot written so far durable (files: `fdatasync`; objects: the remaining
    /// segment objects are uploaded).
    pub fn sync(&self, slots: impl IntoIterator<Item = u64>) -> Result<()> {
        match self {
            Segments::Files(s) => s.sync(slots),
            Segments::Objects(s) => s.flush(),
        }
    }

    /// Gives back the space of free slots at the end of `class` (files only: segment objects
    /// are never modified; unreferenced ones are deleted by a vacuum).
    pub fn trim(&self, class: u8, keep: u64) -> Result<()> {
        match self {
            Segments::Files(s) => s.trim(class, keep),
            Segments::Objects(_) => Ok(()),
        }
    }

    /// Bytes the segments occupy: allocated blocks of the files, sizes of the objects.
    pub fn stored_bytes(&self) -> u64 {
        match self {
            Segments::Files(s) => s
                .paths()
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|md| {
                    use std::os::unix::fs::MetadataExt;
                    md.blocks() * 512
                })
                .sum(),
            Segments::Objects(s) => s.stored_bytes(),
        }
    }

    /// Paths (or object URLs) of every segment present.
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            Segments::Files(s) => s.paths(),
            Segments::Objects(s) => s.paths(),
        }
    }
}

//! Write-once segment objects on an object store.
//!
//! Objects are never modified: a transaction puts its new blocks into **fresh** segments —
//! indexes no existing object and no committed manifest uses, chosen at random so racing
//! writers rarely pick the same one — buffers each segment's slots in memory, and uploads a
//! segment with a create-only put once it is full (at most [`OBJECT_BYTES`]) or when the
//! transaction makes its blocks durable. A segment object holds slots `0..n` of its segment, so a
//! slot's bytes are one ranged read at the same offset as in a segment file. A create refused
//! because the object exists means another writer is writing the same store: the commit fails
//! with a conflict and nothing it wrote is referenced. Slots are never reused; segment objects no
//! live manifest references are deleted by a vacuum.
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use sealstore_storage::ObjectStorage;

use super::{parse_segment_name, place, segment_limit, segment_name, slots_per_segment};
use crate::{Error, Result, slot};

/// Largest segment object: a transaction's buffered slots are uploaded at this size.
pub(crate) const OBJECT_BYTES: usize = 16 << 20;

/// Slots in one segment object of `class`.
fn object_slots(class: u8) -> u64 {
    ((OBJECT_BYTES / slot::class_size(class)).max(1) as u64).min(slots_per_segment(class))
}

/// A segment being filled by the open transaction.
#[derive(Default)]
struct Pending {
    /// Slot bytes by position; `None` while allocated but not yet written.
    slots: Vec<Option<Vec<u8>>>,
    /// No more slots will be allocated in it: upload once every slot is written.
    closed: bool,
}

/// What the open transaction is writing.
#[derive(Default)]
struct WriteSide {
    /// Per class: the segment new slots go to.
    open: HashMap<u8, u64>,
    pending: HashMap<(u8, u64), Pending>,
}

/// The segment objects of one store, under `prefix` in `storage`.
pub(crate) struct ObjectSegments {
    storage: ObjectStorage,
    prefix: String,
    top_class: u8,
    writable: bool,
    /// Segments that exist or that a manifest referenced when the store opened, plus those
    /// uploaded since: never chosen again.
    taken: RwLock<BTreeSet<(u8, u64)>>,
    /// Segment objects known to exist, with their sizes.
    sizes: RwLock<HashMap<(u8, u64), u64>>,
    write: Mutex<WriteSide>,
}

impl std::fmt::Debug for ObjectSegments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSegments")
            .field("storage", &self.storage.location().url())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl ObjectSegments {
    /// Lists the segment objects under `prefix` (names that are not segments of this store's
    /// classes are ignored: nothing refers to them). `referenced` are the committed manifest's
    /// slots — their segments are never chosen for new blocks, even if their objects are gone.
    pub fn open(
        storage: ObjectStorage,
        prefix: &str,
        block_size: usize,
        writable: bool,
        referenced: impl IntoIterator<Item = u64>,
    ) -> Result<Self> {
        let top_class = slot::top_class(block_size);
        let mut sizes = HashMap::new();
        for object in storage.list(prefix)? {
            let Some(name) = object.name.strip_prefix(prefix).and_then(|n| n.strip_prefix('/')) else {
                continue;
            };
            if let Some((class, index)) = parse_segment_name(name)
                && class <= top_class
                && index < segment_limit(class)
            {
                sizes.insert((class, index), object.size);
            }
        }
        let mut taken: BTreeSet<(u8, u64)> = sizes.keys().copied().collect();
        taken.extend(referenced.into_iter().map(|s| {
            let (class, index, _) = place(s);
            (class, index)
        }));
        Ok(Self {
            storage,
            prefix: prefix.to_owned(),
            top_class,
            writable,
            taken: RwLock::new(taken),
            sizes: RwLock::new(sizes),
            write: Mutex::default(),
        })
    }

    pub fn top_class(&self) -> u8 {
        self.top_class
    }

    fn object_name(&self, class: u8, index: u64) -> String {
        format!("{}/{}", self.prefix, segment_name(class, index))
    }

    fn url(&self, class: u8, index: u64) -> PathBuf {
        PathBuf::from(format!(
            "{}/{}",
            self.storage.location().url(),
            self.object_name(class, index)
        ))
    }

    pub fn total_slots(&self) -> u64 {
        self.sizes
            .read()
            .iter()
            .map(|(&(class, _), &size)| size / slot::class_size(class) as u64)
            .sum()
    }

    pub fn stored_bytes(&self) -> u64 {
        self.sizes.read().values().sum()
    }

    pub fn segment_count(&self) -> usize {
        self.sizes.read().len()
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        let mut keys: Vec<_> = self.sizes.read().keys().copied().collect();
        keys.sort_unstable();
        keys.into_iter().map(|(class, index)| self.url(class, index)).collect()
    }

    pub fn location(&self, slot: u64) -> (PathBuf, u64) {
        let (class, index, offset) = place(slot);
        (self.url(class, index), offset)
    }

    /// A slot no object and no committed manifest uses, for a block of `class`.
    pub fn fresh_slot(&self, class: u8) -> Result<u64> {
        if !self.writable {
            return Err(Error::Key(sealstore_keyring::Error::ReadOnly {
                what: format!("store {}", self.prefix),
            }));
        }
        let mut write = self.write.lock();
        if let Some(&index) = write.open.get(&class) {
            let pending = write
                .pending
                .get_mut(&(class, index))
                .expect("open segments are pending");
            let position = pending.slots.len() as u64;
            if position < object_slots(class) {
                pending.slots.push(None);
                return Ok(slot::compose(class, index * slots_per_segment(class) + position));
            }
            pending.closed = true;
        }
        let index = self.choose_index(class)?;
        write.open.insert(class, index);
        write.pending.insert(
            (class, index),
            Pending {
                slots: vec![None],
                closed: false,
            },
        );
        Ok(slot::compose(class, index * slots_per_segment(class)))
    }

    /// A random segment index of `class` that is not taken (and takes it).
    fn choose_index(&self, class: u8) -> Result<u64> {
        let limit = segment_limit(class);
        let mut taken = self.taken.write();
        if taken.range((class, 0)..(class, limit)).count() as u64 >= limit {
            return Err(Error::Internal(format!(
                "size class {class} of store {} has no free segment index left (vacuum the cluster)",
                self.prefix
            )));
        }
        loop {
            let mut bytes = [0u8; 8];
            sealstore_keyring::fill_random(&mut bytes)?;
            let index = u64::from_le_bytes(bytes) % limit;
            if taken.insert((class, index)) {
                return Ok(index);
            }
        }
    }

    /// Buffers a sealed block; uploads its segment once the segment is closed and complete.
    pub fn write_slot(&self, slot: u64, bytes: &[u8]) -> Result<()> {
        let (class, index, offset) = place(slot);
        let position = (offset / slot::class_size(class) as u64) as usize;
        let ready = {
            let mut write = self.write.lock();
            let pending = write
                .pending
                .get_mut(&(class, index))
                .and_then(|p| p.slots.get_mut(position).map(|s| (s, p.closed)));
            let Some((entry, _)) = pending else {
                return Err(Error::Internal(format!(
                    "slot {slot} was not allocated by this transaction"
                )));
            };
            *entry = Some(bytes.to_vec());
            let complete = write
                .pending
                .get(&(class, index))
                .is_some_and(|p| p.closed && p.slots.iter().all(Option::is_some));
            if complete {
                write.pending.remove(&(class, index))
            } else {
                None
            }
        };
        match ready {
            Some(segment) => self.upload(class, index, segment),
            None => Ok(()),
        }
    }

    fn upload(&self, class: u8, index: u64, segment: Pending) -> Result<()> {
        let mut object = Vec::with_capacity(segment.slots.len() * slot::class_size(class));
        for (position, bytes) in segment.slots.into_iter().enumerate() {
            let bytes = bytes.ok_or_else(|| {
                Error::Internal(format!(
                    "slot {position} of segment {} was allocated but never written",
                    self.object_name(class, index)
                ))
            })?;
            object.extend_from_slice(&bytes);
        }
        let size = object.len() as u64;
        self.storage
            .put_new(&self.object_name(class, index), Bytes::from(object))?;
        self.sizes.write().insert((class, index), size);
        Ok(())
    }

    /// Uploads every segment the transaction wrote (its blocks are then durable) and starts the
    /// next transaction on fresh segments.
    pub fn flush(&self) -> Result<()> {
        let pending: Vec<_> = {
            let mut write = self.write.lock();
            write.open.clear();
            write.pending.drain().collect()
        };
        for ((class, index), segment) in pending {
            self.upload(class, index, segment)?;
        }
        Ok(())
    }

    /// Forgets what an aborted transaction buffered (its segment indexes stay taken).
    pub fn discard(&self) {
        let mut write = self.write.lock();
        write.open.clear();
        write.pending.clear();
    }

    /// Copies the first `out.len()` bytes of a slot into `out` with one ranged read.
    pub fn read_slot(&self, slot: u64, out: &mut [u8]) -> Result<()> {
        let (class, index, offset) = place(slot);
        let name = self.object_name(class, index);
        match self.storage.get_range(&name, offset..offset + out.len() as u64) {
            Ok(bytes) => {
                out.copy_from_slice(&bytes);
                Ok(())
            }
            Err(e) => Err(self.read_error(class, index, e)),
        }
    }

    /// A failed read of segment `(class, index)` as the block store reports it.
    fn read_error(&self, class: u8, index: u64, e: sealstore_storage::Error) -> Error {
        match e {
            sealstore_storage::Error::NotFound { .. } => Error::MissingSegment {
                path: self.url(class, index),
                reason: "object not found".into(),
            },
            sealstore_storage::Error::Truncated { end, got, start, .. } => Error::MissingSegment {
                path: self.url(class, index),
                reason: format!("read of bytes {start}..{end} returned {got} (truncated)"),
            },
            other => Error::Storage(other),
        }
    }
}

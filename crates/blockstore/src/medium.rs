//! Where a store keeps its files: a local directory, or objects under a prefix of an object
//! store. Only the few whole-file operations the store's metadata needs go through here
//! (`STORE`, manifests, the commit pointer); blocks go through [`crate::segment`].
//!
//! On objects nothing is replaced in place: a manifest generation is a new object named with the
//! commit's random tag (`manifest-<generation:020>-<tag:016x>.ssm`), so writers racing for the
//! same generation never overwrite each other and a crashed writer's object never blocks the
//! next one; the commit point (`CURRENT-<generation:020>` for a standalone store, the cluster's
//! commit record otherwise) is a create-only put naming the tag.
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sealstore_keyring::fsutil;
use sealstore_storage::ObjectStorage;

use crate::{Error, Result};

/// A manifest generation and, on object storage, the tag of the commit that wrote it (0 in a
/// directory, where the generation alone names the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ManifestId {
    pub generation: u64,
    pub tag: u64,
}

impl ManifestId {
    /// A generation in a directory store (no tag).
    pub fn untagged(generation: u64) -> Self {
        Self { generation, tag: 0 }
    }
}

/// Where a store's files live.
#[derive(Debug, Clone)]
pub enum StoreMedium {
    /// A local directory: segment files written in place, `CURRENT` replaced atomically.
    Dir(PathBuf),
    /// Objects under `prefix` (no leading or trailing `/`) of an object store: every object
    /// written once.
    Objects { storage: ObjectStorage, prefix: String },
}

impl StoreMedium {
    /// The directory, or `<storage url>/<prefix>`: what errors and listings name.
    pub fn display_path(&self) -> PathBuf {
        match self {
            StoreMedium::Dir(dir) => dir.clone(),
            StoreMedium::Objects { storage, prefix } => PathBuf::from(format!("{}/{prefix}", storage.location().url())),
        }
    }

    /// The directory of a directory store.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            StoreMedium::Dir(dir) => Some(dir),
            StoreMedium::Objects { .. } => None,
        }
    }

    /// True for object storage.
    pub fn is_objects(&self) -> bool {
        matches!(self, StoreMedium::Objects { .. })
    }

    /// The path (or URL) of file `name` of this store.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.display_path().join(name)
    }

    fn object_name(prefix: &str, name: &str) -> String {
        format!("{prefix}/{name}")
    }

    /// Reads file `name` whole. A missing object is a `Corrupt` error naming it, as a missing
    /// file is an I/O error naming it.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        match self {
            StoreMedium::Dir(dir) => Ok(fsutil::read(&dir.join(name))?),
            StoreMedium::Objects { storage, prefix } => match storage.get(&Self::object_name(prefix, name)) {
                Ok(object) => Ok(object.bytes.to_vec()),
                Err(sealstore_storage::Error::NotFound { .. }) => {
                    Err(Error::corrupt(self.path_of(name), 0, "object not found"))
                }
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Creates file `name`; an existing one is an error (`AlreadyExists`, a conflict on
    /// objects).
    pub fn write_new(&self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            StoreMedium::Dir(dir) => Ok(fsutil::write_new(&dir.join(name), bytes, 0o600)?),
            StoreMedium::Objects { storage, prefix } => {
                storage.put_new(&Self::object_name(prefix, name), Bytes::copy_from_slice(bytes))?;
                Ok(())
            }
        }
    }

    /// Writes file `name` durably: in a directory atomically replacing any older file; on
    /// objects as a new object (names written here are unique per commit).
    pub fn write_durable(&self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            StoreMedium::Dir(dir) => Ok(fsutil::write_atomic(&dir.join(name), bytes, 0o600)?),
            StoreMedium::Objects { .. } => self.write_new(name, bytes),
        }
    }

    /// Names of the files directly in the store (objects: every object under the prefix,
    /// relative to it; segment objects included).
    pub fn list(&self) -> Result<Vec<String>> {
        match self {
            StoreMedium::Dir(dir) => Ok(fsutil::list_dir(dir)?),
            StoreMedium::Objects { storage, prefix } => Ok(storage
                .list(prefix)?
                .into_iter()
                .filter_map(|o| {
                    o.name
                        .strip_prefix(prefix.as_str())?
                        .strip_prefix('/')
                        .map(str::to_owned)
                })
                .collect()),
        }
    }

    /// Deletes file `name` if present (failures are left for the next cleanup).
    pub fn remove(&self, name: &str) {
        match self {
            StoreMedium::Dir(dir) => {
                let _ = fsutil::remove_file(&dir.join(name));
            }
            StoreMedium::Objects { storage, prefix } => {
                let _ = storage.delete(&Self::object_name(prefix, name));
            }
        }
    }
}

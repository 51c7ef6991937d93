//! New generations of the table file: written complete to a temporary file, synced, renamed
//! into place (compaction, shredding, re-wrapping under a new database key).
use super::*;

/// A complete generation written to a temporary file, with the state that goes with it.
pub(crate) struct NewGeneration {
    /// Handle of the table's directory and the temp file's name in it.
    pub(crate) dir: OwnedFd,
    pub(crate) tmp: String,
    pub(crate) header: Header,
    pub(crate) file: File,
    pub(crate) len: u64,
    pub(crate) entries: Vec<WrappedDek>,
    pub(crate) metadata: Vec<(u32, Box<dyn AeadKey>)>,
}

impl NewGeneration {
    /// Writes `header` and `entries` to the generation's temporary file (synced) and opens the
    /// header's metadata keys under `dk`, checking they unwrap before anything is switched.
    pub(crate) fn stage(
        dir: &Path,
        header: Header,
        entries: Vec<WrappedDek>,
        dk: &dyn AeadKey,
        dk_generation: u32,
    ) -> Result<Self> {
        let metadata = open_metadata_keys(&header.database, dk, dk_generation, &header.metadata_keys)?;
        let StagedFile { dir, tmp, file, len } = write_generation_tmp(dir, &header, &entries, dk)?;
        Ok(Self {
            dir,
            tmp,
            header,
            file,
            len,
            entries,
            metadata,
        })
    }
}

/// A rewrapped generation written to a temporary file, ready for [`DekTable::install_rewrap`].
pub struct PreparedRewrap {
    pub(crate) new_dk: Box<dyn AeadKey>,
    pub(crate) generation: NewGeneration,
    /// (table generation, file length) it was prepared from: a change since means redo.
    pub(crate) based_on: (u64, u64),
}

impl std::fmt::Debug for PreparedRewrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedRewrap")
            .field("generation", &self.generation.header.generation)
            .field("entries", &self.generation.entries.len())
            .finish()
    }
}

/// Renames a temporary generation file into place and syncs the directory. A failed sync after
/// the rename is `NotDurable`: the new generation is the one on disk, so callers switch to it.
pub(crate) fn publish_generation(dir: &Path, dir_fd: &OwnedFd, tmp: &str, generation: u64) -> Result<()> {
    fsutil::publish_temp(dir_fd, tmp, &dir.join(file_name(generation)))
}

/// A generation written to a temporary file (random name, fsynced), not yet renamed into place.
pub(crate) struct StagedFile {
    pub(crate) dir: OwnedFd,
    pub(crate) tmp: String,
    pub(crate) file: File,
    pub(crate) len: u64,
}

/// `Ok` and `NotDurable` both mean the new generation is in place.
pub(crate) fn published(result: &Result<()>) -> bool {
    result.as_ref().err().is_none_or(Error::is_not_durable)
}

/// Writes a complete generation to a temporary file (fsynced); returns it open, with its length.
pub(crate) fn write_generation_tmp(
    dir: &Path,
    header: &Header,
    entries: &[WrappedDek],
    dk: &dyn AeadKey,
) -> Result<StagedFile> {
    let mut w = Writer::new();
    w.bytes(&header.seal(dk)?);
    for chunk in entries.chunks(1 << 20) {
        let mut payload = Writer::new();
        payload.u8(FRAME_PUT).u32(chunk.len() as u32);
        for e in chunk {
            e.encode(&mut payload);
        }
        w.u32(payload.buf.len() as u32)
            .u32(crc32fast::hash(&payload.buf))
            .bytes(&payload.buf);
    }
    let (dir_fd, tmp, file) = fsutil::write_temp(&dir.join(file_name(header.generation)), &w.buf, 0o600)?;
    Ok(StagedFile {
        dir: dir_fd,
        tmp,
        file,
        len: w.buf.len() as u64,
    })
}

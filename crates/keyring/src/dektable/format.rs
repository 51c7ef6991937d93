//! The DEK table's file format: the authenticated header, wrapped entries, frames and their
//! replay, file names of generations.
use super::*;

/// Identifies a block within a database. An id is never reused once its DEK was committed; ids
/// staged but lost in a crash may be handed out again (their blocks were never referenced).
pub type BlockId = u64;

/// Current DEK-table format version.
pub const DEK_TABLE_VERSION: u16 = 3;
pub(crate) const DEK_MAGIC: &[u8; 4] = b"SSDT";
pub(crate) const DEK_AAD_LABEL: &[u8] = b"sealstore/dek/v1";
pub(crate) const HEADER_AAD_LABEL: &[u8] = b"sealstore/dek-table-header/v3";
pub(crate) const METADATA_KEY_AAD_LABEL: &str = "sealstore/metadata-key/v1";
/// Most metadata keys a header may hold (normally 1; 2 while a re-key is in progress).
pub(crate) const MAX_METADATA_KEYS: usize = 16;
pub(crate) const FRAME_PUT: u8 = 1;
pub(crate) const FRAME_REMOVE: u8 = 2;
pub(crate) const ENTRY_LEN: usize = 8 + 4 + NONCE_LEN + 32 + TAG_LEN;
/// Largest frame accepted when replaying (bounds allocation on hostile input).
pub(crate) const MAX_FRAME: usize = 1 << 30;
/// Entries per random-bytes request when generating DEKs in bulk.
pub(crate) const RNG_CHUNK: usize = 4096;

/// Longest DEK AAD: label, length, a database name of at most 64 bytes, block id, generation.
pub(crate) const DEK_AAD_MAX: usize = 16 + 4 + 64 + 8 + 4;

pub(crate) struct DekAad {
    pub(crate) bytes: [u8; DEK_AAD_MAX],
    pub(crate) len: usize,
}

impl std::ops::Deref for DekAad {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// One wrapped data key as stored: 72 bytes, no secret in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrappedDek {
    pub block_id: BlockId,
    pub dk_generation: u32,
    pub nonce: [u8; NONCE_LEN],
    pub wrapped: [u8; 32],
    pub tag: [u8; TAG_LEN],
}

impl WrappedDek {
    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u64(self.block_id)
            .u32(self.dk_generation)
            .bytes(&self.nonce)
            .bytes(&self.wrapped)
            .bytes(&self.tag);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, ReadError> {
        Ok(Self {
            block_id: r.u64()?,
            dk_generation: r.u32()?,
            nonce: r.array()?,
            wrapped: r.array()?,
            tag: r.array()?,
        })
    }
}

/// A metadata key as stored in the header: wrapped under the DK with its id as AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrappedMetadataKey {
    pub(crate) id: u32,
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) wrapped: [u8; 32],
    pub(crate) tag: [u8; TAG_LEN],
}

/// Header fields of a DEK-table file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) database: String,
    pub(crate) dk_generation: u32,
    pub(crate) generation: u64,
    pub(crate) next_block_id: u64,
    pub(crate) metadata_keys: Vec<WrappedMetadataKey>,
}

impl Header {
    /// The header's bytes as authenticated (everything before its nonce and tag).
    pub(crate) fn body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(DEK_MAGIC)
            .u16(DEK_TABLE_VERSION)
            .u16(0)
            .str(&self.database)
            .u32(self.dk_generation)
            .u64(self.generation)
            .u64(self.next_block_id)
            .u16(self.metadata_keys.len() as u16);
        for m in &self.metadata_keys {
            w.u32(m.id).bytes(&m.nonce).bytes(&m.wrapped).bytes(&m.tag);
        }
        w.buf
    }

    /// The header as written: body, then a fresh nonce and the GMAC tag over the body under `dk`.
    pub(crate) fn seal(&self, dk: &dyn AeadKey) -> Result<Vec<u8>> {
        let mut out = self.body();
        let mut nonce = [0u8; NONCE_LEN];
        crate::fill_random(&mut nonce)?;
        let tag = dk
            .seal_in_place(&nonce, &header_aad(&out), &mut [])
            .map_err(|_| Error::auth("DEK table header seal"))?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        Ok(out)
    }
}

pub(crate) fn header_aad(body: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_AAD_LABEL.len() + body.len());
    aad.extend_from_slice(HEADER_AAD_LABEL);
    aad.extend_from_slice(body);
    aad
}

/// Checks a replayed header's tag under `dk`: a header edited in any field (and its checksum
/// recomputed) or sealed under another key fails here.
pub(crate) fn authenticate_header(replayed: &Replayed, bytes: &[u8], dk: &dyn AeadKey, path: &Path) -> Result<()> {
    let body = &bytes[..replayed.header_len];
    dk.open_in_place(&replayed.header_nonce, &header_aad(body), &mut [], &replayed.header_tag)
        .map_err(|_| {
            Error::auth(format!(
                "DEK table header {} (edited, or not sealed under this database key)",
                path.display()
            ))
        })
}

/// The state a DEK-table image replays to.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub(crate) header: Header,
    /// Length of the authenticated header body, then its nonce and tag.
    pub(crate) header_len: usize,
    pub(crate) header_nonce: [u8; NONCE_LEN],
    pub(crate) header_tag: [u8; TAG_LEN],
    pub(crate) entries: Vec<WrappedDek>,
    pub(crate) next_block_id: u64,
    /// Bytes that form complete, valid frames (the rest is a torn tail).
    pub(crate) valid_len: u64,
}

/// Replays a DEK-table file image without any key (the fuzzer's entry point).
#[cfg(any(test, feature = "test-hooks"))]
pub(crate) fn replay_image(bytes: &[u8]) -> Result<Replayed> {
    replay(bytes, Path::new("<image>"))
}

pub(crate) fn replay(bytes: &[u8], path: &Path) -> Result<Replayed> {
    let corrupt = |e: ReadError| Error::corrupt(path, e.offset, e.reason);
    let mut r = Reader::new(bytes);
    if r.take(4).map_err(corrupt)? != DEK_MAGIC {
        return Err(Error::corrupt(path, 0, "not a sealstore DEK table (bad magic)"));
    }
    let version = r.u16().map_err(corrupt)?;
    if version != DEK_TABLE_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_owned(),
            what: "DEK table",
            version: version.into(),
        });
    }
    let _flags = r.u16().map_err(corrupt)?;
    let database = r.str().map_err(corrupt)?.to_owned();
    let dk_generation = r.u32().map_err(corrupt)?;
    let generation = r.u64().map_err(corrupt)?;
    let next_block_id = r.u64().map_err(corrupt)?;
    let count = usize::from(r.u16().map_err(corrupt)?);
    if count == 0 || count > MAX_METADATA_KEYS {
        return Err(Error::corrupt(path, r.position() as u64, "bad metadata key count"));
    }
    let mut metadata_keys = Vec::with_capacity(count);
    for _ in 0..count {
        metadata_keys.push(WrappedMetadataKey {
            id: r.u32().map_err(corrupt)?,
            nonce: r.array().map_err(corrupt)?,
            wrapped: r.array().map_err(corrupt)?,
            tag: r.array().map_err(corrupt)?,
        });
    }
    let header = Header {
        database,
        dk_generation,
        generation,
        next_block_id,
        metadata_keys,
    };
    let header_len = r.position();
    let header_nonce: [u8; NONCE_LEN] = r.array().map_err(corrupt)?;
    let header_tag: [u8; TAG_LEN] = r.array().map_err(corrupt)?;
    let mut entries: Vec<WrappedDek> = Vec::new();
    let mut next_block_id = header.next_block_id;
    let mut valid_len = r.position() as u64;
    loop {
        let frame_start = r.position();
        if r.remaining() == 0 {
            break;
        }
        let (Ok(len), Ok(crc)) = (r.u32(), r.u32()) else { break };
        let len = len as usize;
        if len > MAX_FRAME || len > r.remaining() {
            // A frame running past the end is a torn append.
            break;
        }
        let payload = r.take(len).map_err(corrupt)?;
        if crc32fast::hash(payload) != crc {
            if r.remaining() == 0 {
                break; // torn final frame
            }
            return Err(Error::corrupt(
                path,
                frame_start as u64,
                "DEK table frame checksum mismatch",
            ));
        }
        apply_frame(payload, &mut entries, &mut next_block_id)
            .map_err(|reason| Error::corrupt(path, frame_start as u64, reason))?;
        valid_len = r.position() as u64;
    }
    Ok(Replayed {
        header,
        header_len,
        header_nonce,
        header_tag,
        entries,
        next_block_id,
        valid_len,
    })
}

pub(crate) fn apply_frame(
    payload: &[u8],
    entries: &mut Vec<WrappedDek>,
    next_block_id: &mut u64,
) -> Result<(), &'static str> {
    let mut r = Reader::new(payload);
    let kind = r.u8().map_err(|e| e.reason)?;
    let count = r.u32().map_err(|e| e.reason)? as usize;
    match kind {
        FRAME_PUT => {
            if count.checked_mul(ENTRY_LEN) != Some(r.remaining()) {
                return Err("PUT frame length does not match its entry count");
            }
            entries.reserve(count);
            for _ in 0..count {
                let e = WrappedDek::decode(&mut r).map_err(|e| e.reason)?;
                insert_sorted(entries, e)?;
                *next_block_id = (*next_block_id).max(e.block_id.saturating_add(1));
            }
        }
        FRAME_REMOVE => {
            if count.checked_mul(8) != Some(r.remaining()) {
                return Err("REMOVE frame length does not match its entry count");
            }
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                ids.push(r.u64().map_err(|e| e.reason)?);
            }
            remove_sorted(entries, &mut ids);
        }
        _ => return Err("unknown DEK table frame kind"),
    }
    Ok(())
}

pub(crate) fn insert_sorted(entries: &mut Vec<WrappedDek>, e: WrappedDek) -> Result<(), &'static str> {
    match entries.last() {
        Some(last) if last.block_id < e.block_id => entries.push(e),
        None => entries.push(e),
        _ => match entries.binary_search_by_key(&e.block_id, |x| x.block_id) {
            Ok(_) => return Err("duplicate block id in DEK table"),
            Err(pos) => entries.insert(pos, e),
        },
    }
    Ok(())
}

pub(crate) fn remove_sorted(entries: &mut Vec<WrappedDek>, ids: &mut [BlockId]) {
    ids.sort_unstable();
    entries.retain(|e| ids.binary_search(&e.block_id).is_err());
}

pub(crate) fn file_name(generation: u64) -> String {
    format!("dek-{generation:020}.log")
}

pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("dek-")?.strip_suffix(".log")?.parse().ok()
}

/// Generations of DEK-table files present in `dir`, ascending.
pub(crate) fn generations_in(dir: &Path) -> Result<Vec<u64>> {
    let mut gens: Vec<u64> = fsutil::list_dir(dir)?
        .iter()
        .filter_map(|n| parse_file_name(n))
        .collect();
    gens.sort_unstable();
    Ok(gens)
}

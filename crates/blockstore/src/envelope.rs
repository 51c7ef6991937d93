//! The sealed envelope of sealstore's metadata files — a store's manifest and a cluster's commit
//! record: a fixed header, then the body sealed with AES-256-GCM under the database's metadata
//! key, then the tag.
//!
//! ```text
//! offset  size  field
//!      0     4  magic (which file this is)
//!      4     2  format version
//!      6     2  flags (0)
//!      8     8  generation
//!     16     4  scope (a manifest's slice id; 0 for a commit record)
//!     20     4  metadata key id
//!     24    12  nonce
//!     36     4  body length n
//!     40     n  sealed body (JSON)
//!   40+n    16  tag
//! ```
//!
//! The AAD is the header with the nonce zeroed (GCM checks the nonce itself), followed by the
//! caller's binding bytes (a manifest binds its store id), under a label naming the file kind; the
//! keyring adds the database name. So a header edit, a body edit, a file moved to another slice,
//! store, database or kind all fail authentication, and so does a truncated or extended file.
use std::path::Path;

use sealstore_keyring::DatabaseKeys;

use crate::{Error, Result};

/// Bytes of the header.
pub const HEADER_LEN: usize = 40;
/// Bytes of the GCM tag after the body.
pub const TAG_LEN: usize = 16;

/// Named offsets of the header fields.
pub mod offset {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const FLAGS: usize = 6;
    pub const GENERATION: usize = 8;
    pub const SCOPE: usize = 16;
    pub const KEY_ID: usize = 20;
    pub const NONCE: usize = 24;
    pub const BODY_LEN: usize = 36;
}

/// One kind of sealed metadata file.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub magic: &'static [u8; 4],
    pub version: u16,
    /// Bound into the AAD (a manifest never opens as a commit record).
    pub label: &'static str,
    /// How errors name the file, e.g. "manifest".
    pub what: &'static str,
}

/// The header fields of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub generation: u64,
    pub scope: u32,
    pub key_id: u32,
    pub nonce: [u8; 12],
    pub body_len: u32,
}

impl Header {
    fn encode(&self, kind: &Kind) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[offset::MAGIC..offset::MAGIC + 4].copy_from_slice(kind.magic);
        h[offset::VERSION..offset::VERSION + 2].copy_from_slice(&kind.version.to_le_bytes());
        h[offset::GENERATION..offset::GENERATION + 8].copy_from_slice(&self.generation.to_le_bytes());
        h[offset::SCOPE..offset::SCOPE + 4].copy_from_slice(&self.scope.to_le_bytes());
        h[offset::KEY_ID..offset::KEY_ID + 4].copy_from_slice(&self.key_id.to_le_bytes());
        h[offset::NONCE..offset::NONCE + 12].copy_from_slice(&self.nonce);
        h[offset::BODY_LEN..offset::BODY_LEN + 4].copy_from_slice(&self.body_len.to_le_bytes());
        h
    }

    fn aad(&self, kind: &Kind, bind: &[u8]) -> Vec<u8> {
        let mut a = Header {
            nonce: [0; 12],
            ..*self
        }
        .encode(kind)
        .to_vec();
        a.extend_from_slice(bind);
        a
    }
}

/// An envelope split into its parts, before authentication.
#[derive(Debug)]
pub struct Image<'a> {
    pub header: Header,
    pub body: &'a [u8],
    pub tag: [u8; TAG_LEN],
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Splits `bytes` into header, sealed body and tag, checking magic, version and lengths (no key
/// needed; the fuzz target runs it on arbitrary bytes). On failure: the offset and the reason.
pub fn parse<'a>(kind: &Kind, bytes: &'a [u8]) -> std::result::Result<Image<'a>, (u64, String)> {
    if bytes.len() < HEADER_LEN + TAG_LEN || &bytes[offset::MAGIC..offset::MAGIC + 4] != kind.magic {
        return Err((0, format!("not a sealstore {} (bad magic or too short)", kind.what)));
    }
    let version = u16::from_le_bytes([bytes[offset::VERSION], bytes[offset::VERSION + 1]]);
    if version != kind.version {
        return Err((
            offset::VERSION as u64,
            format!(
                "{} format {version} is not supported by this sealstore (format {})",
                kind.what, kind.version
            ),
        ));
    }
    let body_len = u32_at(bytes, offset::BODY_LEN);
    if bytes.len() as u64 != (HEADER_LEN + TAG_LEN) as u64 + u64::from(body_len) {
        return Err((
            offset::BODY_LEN as u64,
            format!("{} length does not match its header (truncated or extended)", kind.what),
        ));
    }
    let body_end = HEADER_LEN + body_len as usize;
    Ok(Image {
        header: Header {
            generation: u64::from_le_bytes(
                bytes[offset::GENERATION..offset::GENERATION + 8]
                    .try_into()
                    .expect("8 bytes"),
            ),
            scope: u32_at(bytes, offset::SCOPE),
            key_id: u32_at(bytes, offset::KEY_ID),
            nonce: bytes[offset::NONCE..offset::NONCE + 12].try_into().expect("12 bytes"),
            body_len,
        },
        body: &bytes[HEADER_LEN..body_end],
        tag: bytes[body_end..].try_into().expect("16 bytes"),
    })
}

/// Seals `body` into an envelope of `kind` under the newest metadata key.
pub fn seal(
    kind: &Kind,
    generation: u64,
    scope: u32,
    bind: &[u8],
    mut body: Vec<u8>,
    keys: &DatabaseKeys,
) -> Result<Vec<u8>> {
    let key_id = keys.metadata_key_id();
    let body_len = u32::try_from(body.len()).map_err(|_| Error::Internal(format!("{} too large", kind.what)))?;
    let mut header = Header {
        generation,
        scope,
        key_id,
        nonce: [0; 12],
        body_len,
    };
    let (nonce, tag) = keys.seal_metadata(kind.label, key_id, &header.aad(kind, bind), &mut body)?;
    header.nonce = nonce;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(&header.encode(kind));
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Authenticates and decrypts the envelope in `bytes` (read from `path`); returns its header and
/// plaintext body. A file of another kind or an unsupported version is `Corrupt`; anything that
/// fails authentication — an edited header or body, a truncated or extended file, one sealed for
/// another slice, store or database — is an `Authentication` error naming the file.
pub fn open(kind: &Kind, bytes: &[u8], bind: &[u8], keys: &DatabaseKeys, path: &Path) -> Result<(Header, Vec<u8>)> {
    let authentication = |detail: &str| {
        Error::Key(sealstore_keyring::Error::Authentication {
            what: format!("{} {} ({detail})", kind.what, path.display()),
        })
    };
    let image = match parse(kind, bytes) {
        Ok(image) => image,
        Err((at, reason)) if at == offset::BODY_LEN as u64 => return Err(authentication(&reason)),
        Err((at, reason)) => return Err(Error::corrupt(path, at, reason)),
    };
    let mut body = image.body.to_vec();
    keys.open_metadata(
        kind.label,
        image.header.key_id,
        &image.header.aad(kind, bind),
        &image.header.nonce,
        &mut body,
        &image.tag,
    )
    .map_err(|e| match e {
        sealstore_keyring::Error::Authentication { .. } => {
            authentication("tampered, from another slice, store or database, or sealed under another database key")
        }
        other => Error::Key(other),
    })?;
    Ok((image.header, body))
}

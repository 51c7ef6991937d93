//! Metadata keys: random AES-256 keys wrapped under the database key in the table's header,
//! sealing manifests and commit records.
use super::*;

pub(crate) fn metadata_aad(label: &str, database: &str, key_id: u32, aad: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.str("sealstore/metadata/v2")
        .str(label)
        .str(database)
        .u32(key_id)
        .blob(aad);
    w.buf
}

pub(crate) fn metadata_key_aad(database: &str, dk_generation: u32, id: u32) -> Vec<u8> {
    let mut w = Writer::new();
    w.str(METADATA_KEY_AAD_LABEL).str(database).u32(dk_generation).u32(id);
    w.buf
}

pub(crate) fn wrap_metadata_key(
    database: &str,
    dk: &dyn AeadKey,
    dk_generation: u32,
    id: u32,
    key: &[u8; 32],
) -> Result<WrappedMetadataKey> {
    let mut m = WrappedMetadataKey {
        id,
        nonce: [0; NONCE_LEN],
        wrapped: *key,
        tag: [0; TAG_LEN],
    };
    crate::fill_random(&mut m.nonce)?;
    m.tag = dk
        .seal_in_place(&m.nonce, &metadata_key_aad(database, dk_generation, id), &mut m.wrapped)
        .map_err(|_| Error::auth("metadata key wrap"))?;
    Ok(m)
}

/// A fresh random metadata key, returned wrapped (its plaintext is wiped at once).
pub(crate) fn new_metadata_key(
    database: &str,
    dk: &dyn AeadKey,
    dk_generation: u32,
    id: u32,
) -> Result<WrappedMetadataKey> {
    let mut key = Zeroizing::new([0u8; 32]);
    crate::fill_random(key.as_mut())?;
    wrap_metadata_key(database, dk, dk_generation, id, &key)
}

pub(crate) fn unwrap_metadata_key(
    database: &str,
    dk: &dyn AeadKey,
    dk_generation: u32,
    m: &WrappedMetadataKey,
) -> Result<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new(m.wrapped);
    dk.open_in_place(
        &m.nonce,
        &metadata_key_aad(database, dk_generation, m.id),
        key.as_mut(),
        &m.tag,
    )
    .map_err(|_| {
        Error::auth(format!(
            "metadata key {} of database `{database}` (wrong database key, or tampered DEK table header)",
            m.id
        ))
    })?;
    Ok(key)
}

pub(crate) fn open_metadata_keys(
    database: &str,
    dk: &dyn AeadKey,
    dk_generation: u32,
    wrapped: &[WrappedMetadataKey],
) -> Result<Vec<(u32, Box<dyn AeadKey>)>> {
    let mut out = Vec::with_capacity(wrapped.len());
    for m in wrapped {
        let key = unwrap_metadata_key(database, dk, dk_generation, m)?;
        out.push((m.id, crate::aead::default_backend().key(&key)));
    }
    Ok(out)
}

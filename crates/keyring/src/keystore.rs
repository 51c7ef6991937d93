//! The key store file: the cluster key wrapped by the master key, and each database key wrapped
//! by the cluster key. It lives in a directory apart from the data directory and is always
//! replaced atomically as a whole, so a rotation touching several records is all-or-nothing.
//!
//! Layout (little-endian; `str`/`blob` are u32-length-prefixed), see `docs/key-hierarchy.md`:
//! ```text
//! "SSKS" | version u16 | flags u16
//! cluster: cluster_id str | createtime str | ck_generation u32 | provider_kind str
//!          | mk_key_id str | context blob | wrapped_ck blob | ck_seals u64
//!          | audit_key: nonce[12] | wrapped[32] | tag[16]   (under the CK)
//! audit_seq u64 | audit_mac[32] | db_count u32
//! db × db_count: name str | created str | dk_generation u32 | ck_generation u32
//!          | bound_generation u64 | dk_seals u64 | metadata_seals u64
//!          | nonce[12] | wrapped_dk[32] | tag[16]
//! sha256[32] over everything before it
//! ```
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::aead::{AeadKey, NONCE_LEN, TAG_LEN};
use crate::audit::AuditAnchor;
use crate::codec::{ReadError, Reader, Writer};
use crate::{AuditKey, DatabaseKey, EncryptionContext, Error, Result, SealCounts, fsutil};

/// Current key-store format version.
pub const KEYSTORE_VERSION: u16 = 2;
const KEYSTORE_MAGIC: &[u8; 4] = b"SSKS";
pub(crate) const KEYSTORE_FILE: &str = "keystore.ssk";
const DK_AAD_LABEL: &str = "sealstore/database-key/v1";
const AUDIT_KEY_AAD_LABEL: &str = "sealstore/audit-key/v1";

/// The audit chain's key, wrapped under the cluster key (re-wrapped when the CK rotates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrappedAuditKey {
    pub nonce: [u8; NONCE_LEN],
    pub wrapped: [u8; 32],
    pub tag: [u8; TAG_LEN],
}

impl WrappedAuditKey {
    fn aad(cluster_id: &str, ck_generation: u32) -> Vec<u8> {
        let mut w = Writer::new();
        w.str(AUDIT_KEY_AAD_LABEL).str(cluster_id).u32(ck_generation);
        w.buf
    }

    pub fn seal(ck: &dyn AeadKey, cluster_id: &str, ck_generation: u32, key: &AuditKey) -> Result<Self> {
        let mut rec = Self {
            nonce: [0; NONCE_LEN],
            wrapped: *key.expose_secret(),
            tag: [0; TAG_LEN],
        };
        crate::fill_random(&mut rec.nonce)?;
        rec.tag = ck
            .seal_in_place(&rec.nonce, &Self::aad(cluster_id, ck_generation), &mut rec.wrapped)
            .map_err(|_| Error::auth("audit key wrap"))?;
        Ok(rec)
    }

    pub fn open(&self, ck: &dyn AeadKey, cluster_id: &str, ck_generation: u32) -> Result<AuditKey> {
        let mut buf = self.wrapped;
        let result = ck.open_in_place(&self.nonce, &Self::aad(cluster_id, ck_generation), &mut buf, &self.tag);
        let key = AuditKey::from_bytes(buf);
        zeroize::Zeroize::zeroize(&mut buf);
        result.map_err(|_| Error::auth("audit key record in the key store"))?;
        Ok(key)
    }
}

/// The cluster key record (tier 3, wrapped by the master key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterRecord {
    pub cluster_id: String,
    pub createtime: String,
    pub generation: u32,
    pub provider_kind: String,
    pub mk_key_id: String,
    pub context: EncryptionContext,
    pub wrapped_ck: Vec<u8>,
    /// AES-GCM seals made under the current cluster key (DK records, the audit key).
    pub ck_seals: u64,
}

/// One database key record (tier 2, wrapped by the cluster key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseRecord {
    pub name: String,
    pub created: String,
    pub dk_generation: u32,
    pub ck_generation: u32,
    /// The latest committed data generation, bound here so old data files are detectable.
    pub bound_generation: u64,
    /// Seals made under this DK and under the database's newest metadata key.
    pub seals: SealCounts,
    pub nonce: [u8; NONCE_LEN],
    pub wrapped: [u8; 32],
    pub tag: [u8; TAG_LEN],
}

impl DatabaseRecord {
    fn aad(&self, cluster_id: &str) -> Vec<u8> {
        let mut w = Writer::new();
        w.str(DK_AAD_LABEL)
            .str(cluster_id)
            .str(&self.name)
            .str(&self.created)
            .u32(self.dk_generation)
            .u32(self.ck_generation)
            .u64(self.bound_generation)
            .u64(self.seals.database_key)
            .u64(self.seals.metadata_key);
        w.buf
    }

    /// Wraps `dk` under the cluster key with this record's identity as AAD.
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        ck: &dyn AeadKey,
        cluster_id: &str,
        name: &str,
        created: &str,
        dk: &DatabaseKey,
        dk_generation: u32,
        ck_generation: u32,
        bound_generation: u64,
        seals: SealCounts,
    ) -> Result<Self> {
        let mut rec = DatabaseRecord {
            name: name.to_owned(),
            created: created.to_owned(),
            dk_generation,
            ck_generation,
            bound_generation,
            seals,
            nonce: [0; NONCE_LEN],
            wrapped: *dk.expose_secret(),
            tag: [0; TAG_LEN],
        };
        crate::fill_random(&mut rec.nonce)?;
        let aad = rec.aad(cluster_id);
        rec.tag = ck
            .seal_in_place(&rec.nonce, &aad, &mut rec.wrapped)
            .map_err(|_| Error::auth("database key wrap"))?;
        Ok(rec)
    }

    /// Unwraps the database key; fails if any byte of the record or its identity changed.
    pub fn open(&self, ck: &dyn AeadKey, cluster_id: &str) -> Result<DatabaseKey> {
        let mut buf = self.wrapped;
        let result = ck.open_in_place(&self.nonce, &self.aad(cluster_id), &mut buf, &self.tag);
        let key = DatabaseKey::from_bytes(buf);
        zeroize::Zeroize::zeroize(&mut buf); // `from_bytes` copied the array; wipe the stack copy too
        result.map_err(|_| {
            Error::auth(format!(
                "database key record `{}` (generation {})",
                self.name, self.dk_generation
            ))
        })?;
        Ok(key)
    }
}

/// The whole key-store file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeystoreFile {
    pub cluster: ClusterRecord,
    pub audit_key: WrappedAuditKey,
    /// The audit chain's last record when this file was saved.
    pub audit_anchor: AuditAnchor,
    pub databases: Vec<DatabaseRecord>,
}

impl KeystoreFile {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(KEYSTORE_FILE)
    }

    pub fn database(&self, name: &str) -> Option<&DatabaseRecord> {
        self.databases.iter().find(|d| d.name == name)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        let c = &self.cluster;
        w.bytes(KEYSTORE_MAGIC).u16(KEYSTORE_VERSION).u16(0);
        w.str(&c.cluster_id)
            .str(&c.createtime)
            .u32(c.generation)
            .str(&c.provider_kind)
            .str(&c.mk_key_id)
            .blob(&c.context.canonical_bytes())
            .blob(&c.wrapped_ck)
            .u64(c.ck_seals);
        w.bytes(&self.audit_key.nonce)
            .bytes(&self.audit_key.wrapped)
            .bytes(&self.audit_key.tag);
        w.u64(self.audit_anchor.seq)
            .bytes(&self.audit_anchor.mac)
            .u32(self.databases.len() as u32);
        for d in &self.databases {
            w.str(&d.name)
                .str(&d.created)
                .u32(d.dk_generation)
                .u32(d.ck_generation)
                .u64(d.bound_generation)
                .u64(d.seals.database_key)
                .u64(d.seals.metadata_key)
                .bytes(&d.nonce)
                .bytes(&d.wrapped)
                .bytes(&d.tag);
        }
        let digest = Sha256::digest(&w.buf);
        w.bytes(&digest);
        w.buf
    }

    pub fn decode(bytes: &[u8], path: &Path) -> Result<Self> {
        let corrupt = |e: ReadError| Error::corrupt(path, e.offset, e.reason);
        if bytes.len() < KEYSTORE_MAGIC.len() + 4 + 32 || &bytes[..4] != KEYSTORE_MAGIC {
            return Err(Error::corrupt(
                path,
                0,
                "not a sealstore key store (bad magic or too short)",
            ));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(Error::auth(format!("key store {} (checksum mismatch)", path.display())));
        }
        let mut r = Reader::new(body);
        r.take(4).map_err(corrupt)?;
        let version = r.u16().map_err(corrupt)?;
        if version != KEYSTORE_VERSION {
            return Err(Error::UnsupportedVersion {
                path: path.to_owned(),
                what: "key store",
                version: version.into(),
            });
        }
        let _flags = r.u16().map_err(corrupt)?;
        let cluster_id = r.str().map_err(corrupt)?.to_owned();
        let createtime = r.str().map_err(corrupt)?.to_owned();
        let generation = r.u32().map_err(corrupt)?;
        let provider_kind = r.str().map_err(corrupt)?.to_owned();
        let mk_key_id = r.str().map_err(corrupt)?.to_owned();
        let ctx_offset = r.position() as u64;
        let context = EncryptionContext::from_canonical_bytes(r.blob().map_err(corrupt)?)
            .ok_or_else(|| Error::corrupt(path, ctx_offset, "invalid encryption context"))?;
        let wrapped_ck = r.blob().map_err(corrupt)?.to_vec();
        let ck_seals = r.u64().map_err(corrupt)?;
        let audit_key = WrappedAuditKey {
            nonce: r.array().map_err(corrupt)?,
            wrapped: r.array().map_err(corrupt)?,
            tag: r.array().map_err(corrupt)?,
        };
        let audit_anchor = AuditAnchor {
            seq: r.u64().map_err(corrupt)?,
            mac: r.array().map_err(corrupt)?,
        };
        let count = r.u32().map_err(corrupt)?;
        // Each record is at least 104 bytes: a hostile count allocates nothing up front.
        if u64::from(count) * 104 > r.remaining() as u64 {
            return Err(Error::corrupt(
                path,
                r.position() as u64,
                "database count exceeds the file",
            ));
        }
        let mut databases = Vec::new();
        for _ in 0..count {
            databases.push(DatabaseRecord {
                name: r.str().map_err(corrupt)?.to_owned(),
                created: r.str().map_err(corrupt)?.to_owned(),
                dk_generation: r.u32().map_err(corrupt)?,
                ck_generation: r.u32().map_err(corrupt)?,
                bound_generation: r.u64().map_err(corrupt)?,
                seals: SealCounts {
                    database_key: r.u64().map_err(corrupt)?,
                    metadata_key: r.u64().map_err(corrupt)?,
                },
                nonce: r.array().map_err(corrupt)?,
                wrapped: r.array().map_err(corrupt)?,
                tag: r.array().map_err(corrupt)?,
            });
        }
        if r.remaining() != 0 {
            return Err(Error::corrupt(path, r.position() as u64, "trailing bytes"));
        }
        let cluster = ClusterRecord {
            cluster_id,
            createtime,
            generation,
            provider_kind,
            mk_key_id,
            context,
            wrapped_ck,
            ck_seals,
        };
        Ok(Self {
            cluster,
            audit_key,
            audit_anchor,
            databases,
        })
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let bytes = fsutil::read_optional(&path)?.ok_or_else(|| Error::NoKeyStore { path: dir.to_owned() })?;
        Self::decode(&bytes, &path)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        fsutil::write_atomic(&Self::path(dir), &self.encode(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aead::default_backend;

    fn sample() -> (KeystoreFile, Box<dyn AeadKey>, DatabaseKey) {
        let ck = default_backend().key(&[3u8; 32]);
        let dk = DatabaseKey::from_bytes([9u8; 32]);
        let seals = SealCounts {
            database_key: 3,
            metadata_key: 4,
        };
        let rec = DatabaseRecord::seal(ck.as_ref(), "cid", "dev", "t0", &dk, 1, 1, 0, seals).unwrap();
        let file = KeystoreFile {
            cluster: ClusterRecord {
                cluster_id: "cid".into(),
                createtime: "t0".into(),
                generation: 1,
                provider_kind: "local-key-file".into(),
                mk_key_id: "local:00".into(),
                context: EncryptionContext::new().with("cluster-id", "cid"),
                wrapped_ck: vec![1, 2, 3],
                ck_seals: 9,
            },
            audit_key: WrappedAuditKey {
                nonce: [4; NONCE_LEN],
                wrapped: [5; 32],
                tag: [6; TAG_LEN],
            },
            audit_anchor: AuditAnchor { seq: 7, mac: [8; 32] },
            databases: vec![rec],
        };
        (file, ck, dk)
    }

    #[test]
    fn encode_decode_round_trip() {
        let (file, ck, dk) = sample();
        let bytes = file.encode();
        let back = KeystoreFile::decode(&bytes, Path::new("ks")).unwrap();
        assert_eq!(back, file);
        assert_eq!(
            back.databases[0].open(ck.as_ref(), "cid").unwrap().expose_secret(),
            dk.expose_secret()
        );
        assert!(
            back.databases[0]
                .open(ck.as_ref(), "other-cluster")
                .unwrap_err()
                .is_authentication()
        );
    }

    #[test]
    fn every_byte_flip_is_detected() {
        let (file, _, _) = sample();
        let bytes = file.encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(KeystoreFile::decode(&b, Path::new("ks")).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn flips_in_the_dk_record_fail_authentication_even_with_a_fixed_checksum() {
        let (file, ck, _) = sample();
        let rec = &file.databases[0];
        let fields: Vec<fn(&mut DatabaseRecord)> = vec![
            (|r| r.name.push('x')),
            (|r| r.created.push('x')),
            (|r| r.dk_generation += 1),
            (|r| r.ck_generation += 1),
            (|r| r.bound_generation += 1),
            (|r| r.seals.database_key -= 1),
            (|r| r.seals.metadata_key = 0),
            (|r| r.nonce[0] ^= 1),
            (|r| r.wrapped[31] ^= 1),
            (|r| r.tag[5] ^= 1),
        ];
        for change in fields {
            let mut r = rec.clone();
            change(&mut r);
            assert!(r.open(ck.as_ref(), "cid").unwrap_err().is_authentication());
        }
    }

    #[test]
    fn truncation_and_garbage_are_errors_not_panics() {
        let (file, _, _) = sample();
        let bytes = file.encode();
        for len in 0..bytes.len() {
            assert!(KeystoreFile::decode(&bytes[..len], Path::new("ks")).is_err());
        }
    }
}

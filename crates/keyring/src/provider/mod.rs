//! Master-key providers (tier 4). A provider holds a symmetric AES-256 key and wraps/unwraps the
//! cluster key under an encryption context; the key itself never leaves the provider.
#[cfg(feature = "test-hooks")]
mod insecure;
#[cfg(feature = "kms")]
mod kms;
mod local;
#[cfg(feature = "pkcs11")]
mod pkcs11;

#[cfg(feature = "test-hooks")]
pub use insecure::InsecureInMemoryProvider;
#[cfg(feature = "kms")]
pub use kms::{KmsConfig, KmsProvider};
pub use local::LocalKeyFile;
#[cfg(feature = "pkcs11")]
pub use pkcs11::{Pkcs11Config, Pkcs11Provider};
use zeroize::Zeroizing;

use crate::aead::{AeadKey, NONCE_LEN, TAG_LEN};
use crate::{EncryptionContext, Error, Result};

/// What kind of key a provider holds. Only [`KeySpec::Aes256`] may be a master key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySpec {
    /// Symmetric AES-256 (the only accepted master key).
    Aes256,
    /// Symmetric AES with another length.
    Aes { bits: u32 },
    /// An RSA key pair.
    Rsa { bits: u32 },
    /// An elliptic-curve key pair.
    Ec { curve: String },
    /// Anything else, described by the provider.
    Other(String),
}

impl std::fmt::Display for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySpec::Aes256 => f.write_str("AES-256"),
            KeySpec::Aes { bits } => write!(f, "AES-{bits}"),
            KeySpec::Rsa { bits } => write!(f, "RSA ({bits}-bit, asymmetric)"),
            KeySpec::Ec { curve } => write!(f, "EC {curve} (asymmetric)"),
            KeySpec::Other(s) => f.write_str(s),
        }
    }
}

impl KeySpec {
    /// Refuses anything but a symmetric AES-256 key.
    pub fn require_symmetric_aes256(&self) -> Result<()> {
        match self {
            KeySpec::Aes256 => Ok(()),
            other => Err(Error::UnsupportedMasterKey {
                spec: other.to_string(),
            }),
        }
    }
}

/// A holder of the master key.
pub trait MasterKeyProvider: Send + Sync {
    /// Provider kind, e.g. `local-key-file`.
    fn kind(&self) -> &'static str;
    /// A stable, non-secret identifier of the current master key (version included).
    fn key_id(&self) -> String;
    /// What kind of key the provider holds.
    fn key_spec(&self) -> Result<KeySpec>;
    /// False for providers that must never hold production keys.
    fn is_secure(&self) -> bool {
        true
    }
    /// Wraps `plaintext` under the master key with `context` as authenticated data.
    fn wrap(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>>;
    /// Unwraps bytes made by [`MasterKeyProvider::wrap`] under the same key and context.
    fn unwrap(&self, wrapped: &[u8], context: &EncryptionContext) -> Result<Zeroizing<Vec<u8>>>;
}

impl std::fmt::Debug for dyn MasterKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeyProvider")
            .field("kind", &self.kind())
            .field("key_id", &self.key_id())
            .finish()
    }
}

const WRAP_VERSION: u8 = 1;
const WRAP_AAD_LABEL: &[u8] = b"sealstore/master-key-wrap/v1";

/// Wrap format shared by the in-process providers: version, nonce, ciphertext, tag;
/// AAD = label ‖ canonical context.
pub(crate) fn wrap_with(key: &dyn AeadKey, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    crate::fill_random(&mut nonce)?;
    let aad = [WRAP_AAD_LABEL, &context.canonical_bytes()].concat();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.push(WRAP_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place(&nonce, &aad, &mut out[1 + NONCE_LEN..])
        .map_err(|_| Error::auth("master-key wrap"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

pub(crate) fn unwrap_with(
    key: &dyn AeadKey,
    wrapped: &[u8],
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>> {
    let what = "cluster key wrapped under the master key";
    if wrapped.len() < 1 + NONCE_LEN + TAG_LEN || wrapped[0] != WRAP_VERSION {
        return Err(Error::auth(what));
    }
    let nonce: [u8; NONCE_LEN] = wrapped[1..1 + NONCE_LEN].try_into().expect("length checked");
    let tag: [u8; TAG_LEN] = wrapped[wrapped.len() - TAG_LEN..].try_into().expect("length checked");
    let mut plain = Zeroizing::new(wrapped[1 + NONCE_LEN..wrapped.len() - TAG_LEN].to_vec());
    let aad = [WRAP_AAD_LABEL, &context.canonical_bytes()].concat();
    key.open_in_place(&nonce, &aad, &mut plain, &tag)
        .map_err(|_| Error::auth(what))?;
    Ok(plain)
}

/// A non-secret identifier derived from key bytes: SHA-256 over a label and the key, 8 bytes hex.
pub(crate) fn fingerprint(label: &str, key: &[u8; 32]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(label.as_bytes())
        .chain_update(key)
        .finalize();
    hex::encode(&digest[..8])
}

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};

use super::{AeadBackend, AeadKey, AuthFailed, KEY_LEN, Nonce, Tag};

/// AES-256-GCM through RustCrypto `aes-gcm` (pure Rust; `zeroize` feature on).
#[derive(Debug, Clone, Copy)]
pub struct RustCrypto;

struct Key(Aes256Gcm);

impl AeadBackend for RustCrypto {
    fn name(&self) -> &'static str {
        "rustcrypto-aes-gcm"
    }

    fn key(&self, key: &[u8; KEY_LEN]) -> Box<dyn AeadKey> {
        Box::new(Key(Aes256Gcm::new(&(*key).into())))
    }
}

impl AeadKey for Key {
    fn seal_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag, AuthFailed> {
        let tag = self
            .0
            .encrypt_inout_detached(&(*nonce).into(), aad, buf.into())
            .map_err(|_| AuthFailed)?;
        Ok(tag.into())
    }

    fn open_to(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        ciphertext: &[u8],
        tag: &Tag,
        out: &mut [u8],
    ) -> Result<(), AuthFailed> {
        let Ok(inout) = aes_gcm::aead::inout::InOutBuf::new(ciphertext, out) else {
            return Err(AuthFailed);
        };
        if self
            .0
            .decrypt_inout_detached(&(*nonce).into(), aad, inout, &(*tag).into())
            .is_err()
        {
            out.fill(0);
            return Err(AuthFailed);
        }
        Ok(())
    }

    fn open_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], tag: &Tag) -> Result<(), AuthFailed> {
        if self
            .0
            .decrypt_inout_detached(&(*nonce).into(), aad, buf.into(), &(*tag).into())
            .is_err()
        {
            buf.fill(0);
            return Err(AuthFailed);
        }
        Ok(())
    }
}

//! The no-op sealing step of the benchmarks' unsealed baseline: an [`AeadBackend`] that leaves
//! the bytes as they are and returns a zero tag. A cluster opened with it (through the
//! `test-hooks` option `block_cipher`) runs the real write and scan pipeline — the same encoder,
//! slot writer, commit protocol, read path and decoder — minus AES-GCM on blocks, so the sealed
//! and unsealed lanes differ in nothing but the cipher. It exists only here: no product build
//! can name it.
use sealstore_keyring::aead::{AeadBackend, AeadKey, AuthFailed, KEY_LEN, Nonce, Tag};

/// Blocks "sealed" as plaintext.
#[derive(Debug)]
pub struct NoSeal;

/// The baseline's block cipher.
pub static NO_SEAL: NoSeal = NoSeal;

struct Plain;

impl AeadBackend for NoSeal {
    fn name(&self) -> &'static str {
        "none (benchmark baseline)"
    }

    fn key(&self, _key: &[u8; KEY_LEN]) -> Box<dyn AeadKey> {
        Box::new(Plain)
    }
}

impl AeadKey for Plain {
    fn seal_in_place(&self, _nonce: &Nonce, _aad: &[u8], _buf: &mut [u8]) -> Result<Tag, AuthFailed> {
        Ok([0; 16])
    }

    fn open_in_place(&self, _nonce: &Nonce, _aad: &[u8], _buf: &mut [u8], _tag: &Tag) -> Result<(), AuthFailed> {
        Ok(())
    }

    fn open_to(
        &self,
        _nonce: &Nonce,
        _aad: &[u8],
        ciphertext: &[u8],
        _tag: &Tag,
        out: &mut [u8],
    ) -> Result<(), AuthFailed> {
        out.copy_from_slice(ciphertext);
        Ok(())
    }
}

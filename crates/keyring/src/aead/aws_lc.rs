use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce as AwsNonce, UnboundKey};

use super::{AeadBackend, AeadKey, AuthFailed, KEY_LEN, Nonce, TAG_LEN, Tag};

/// AES-256-GCM through aws-lc-rs (AES-NI/VAES + VPCLMULQDQ code paths).
#[derive(Debug, Clone, Copy)]
pub struct AwsLc;

struct Key(LessSafeKey);

impl AeadBackend for AwsLc {
    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }

    fn key(&self, key: &[u8; KEY_LEN]) -> Box<dyn AeadKey> {
        // A 32-byte key is always valid for AES_256_GCM.
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("AES-256 key length is 32");
        Box::new(Key(LessSafeKey::new(unbound)))
    }
}

impl AeadKey for Key {
    fn seal_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag, AuthFailed> {
        let tag = self
            .0
            .seal_in_place_separate_tag(AwsNonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| AuthFailed)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open_to(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        ciphertext: &[u8],
        tag: &Tag,
        out: &mut [u8],
    ) -> Result<(), AuthFailed> {
        if ciphertext.len() != out.len()
            || self
                .0
                .open_separate_gather(
                    AwsNonce::assume_unique_for_key(*nonce),
                    Aad::from(aad),
                    ciphertext,
                    tag,
                    out,
                )
                .is_err()
        {
            out.fill(0);
            return Err(AuthFailed);
        }
        Ok(())
    }

    fn open_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], tag: &Tag) -> Result<(), AuthFailed> {
        let result =
            self.0
                .open_in_place_separate_tag(AwsNonce::assume_unique_for_key(*nonce), Aad::from(aad), tag, buf);
        if result.is_err() {
            buf.fill(0);
            return Err(AuthFailed);
        }
        Ok(())
    }
}

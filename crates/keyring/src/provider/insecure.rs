use zeroize::Zeroizing;

use super::{KeySpec, MasterKeyProvider, fingerprint, unwrap_with, wrap_with};
use crate::aead::{AeadKey, default_backend};
use crate::{EncryptionContext, MasterKeyMaterial, Result};

/// A master key that lives only in this process's memory. **For tests only**: it is lost at exit
/// and reports `is_secure() == false`. It can pretend to hold another key type, to test refusal.
pub struct InsecureInMemoryProvider {
    key: Box<dyn AeadKey>,
    id: String,
    spec: KeySpec,
}

impl std::fmt::Debug for InsecureInMemoryProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsecureInMemoryProvider")
            .field("id", &self.id)
            .field("spec", &self.spec)
            .finish()
    }
}

impl InsecureInMemoryProvider {
    /// A fresh random AES-256 key.
    pub fn new() -> Result<Self> {
        Ok(Self::from_material(&MasterKeyMaterial::generate()?))
    }

    /// A provider over the given key bytes.
    pub fn from_material(material: &MasterKeyMaterial) -> Self {
        Self {
            key: default_backend().key(material.expose_secret()),
            id: format!(
                "insecure-memory:{}",
                fingerprint("sealstore insecure mk", material.expose_secret())
            ),
            spec: KeySpec::Aes256,
        }
    }

    /// Claims to hold a key of `spec` (to test that non-AES-256 master keys are refused).
    pub fn pretending(spec: KeySpec) -> Result<Self> {
        Ok(Self { spec, ..Self::new()? })
    }
}

impl MasterKeyProvider for InsecureInMemoryProvider {
    fn kind(&self) -> &'static str {
        "insecure-in-memory"
    }
    fn key_id(&self) -> String {
        self.id.clone()
    }
    fn key_spec(&self) -> Result<KeySpec> {
        Ok(self.spec.clone())
    }
    fn is_secure(&self) -> bool {
        false
    }
    fn wrap(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>> {
        wrap_with(self.key.as_ref(), plaintext, context)
    }
    fn unwrap(&self, wrapped: &[u8], context: &EncryptionContext) -> Result<Zeroizing<Vec<u8>>> {
        unwrap_with(self.key.as_ref(), wrapped, context)
    }
}

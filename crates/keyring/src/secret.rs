//! Secret key newtypes: fixed 32-byte arrays that zeroize on drop and never print their bytes.
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Result;

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; 32]);

        impl $name {
            /// A fresh key from the operating system's random number generator.
            pub fn generate() -> Result<Self> {
                let mut key = Self([0u8; 32]);
                crate::rng::fill_random(&mut key.0)?;
                Ok(key)
            }

            /// Takes ownership of raw key bytes (the caller's copy should be zeroized).
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// Copies key bytes out of a slice; `None` unless it holds exactly 32 bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                let array: [u8; 32] = bytes.try_into().ok()?;
                Some(Self(array))
            }

            /// The raw key bytes. Every use is a place where a secret is handled.
            pub fn expose_secret(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_key!(
    /// Tier 1: the data key of one block.
    DataKey
);
secret_key!(
    /// Tier 2: a database key, wrapping that database's DEKs.
    DatabaseKey
);
secret_key!(
    /// Tier 3: the cluster key, wrapping the database keys.
    ClusterKey
);
secret_key!(
    /// The key of the audit chain's HMAC (random, wrapped by the cluster key in the key store).
    AuditKey
);
secret_key!(
    /// Tier 4 material of a local key file (other providers never expose it).
    MasterKeyMaterial
);

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_redacted(debug: String, bytes: &[u8; 32]) {
        assert!(debug.contains("redacted"), "{debug}");
        let hex = hex::encode(bytes);
        assert!(!debug.contains(&hex));
        assert!(!debug.contains(&format!("{:?}", bytes)));
        // No run of 4 key bytes appears in decimal, hex or raw form.
        for window in bytes.windows(4) {
            assert!(!debug.contains(&hex::encode(window)));
            assert!(!debug.contains(&format!("{}, {}, {}, {}", window[0], window[1], window[2], window[3])));
        }
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let dek = DataKey::generate().unwrap();
        assert_redacted(format!("{dek:?}"), dek.expose_secret());
        let dk = DatabaseKey::generate().unwrap();
        assert_redacted(format!("{dk:?}"), dk.expose_secret());
        let ck = ClusterKey::generate().unwrap();
        assert_redacted(format!("{ck:?}"), ck.expose_secret());
        let mk = MasterKeyMaterial::generate().unwrap();
        assert_redacted(format!("{mk:#?}"), mk.expose_secret());
    }

    #[test]
    fn zeroize_clears_bytes() {
        let mut key = DataKey::from_bytes([0xAB; 32]);
        key.zeroize();
        assert_eq!(key.expose_secret(), &[0u8; 32]);
    }

    #[test]
    fn generated_keys_differ() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn from_slice_requires_32_bytes() {
        assert!(DataKey::from_slice(&[1; 31]).is_none());
        assert!(DataKey::from_slice(&[1; 33]).is_none());
        assert_eq!(DataKey::from_slice(&[7; 32]).unwrap().expose_secret(), &[7; 32]);
    }
}

//! How many AES-GCM seals each long-lived key has made. With random 96-bit nonces one key may
//! seal at most 2^32 messages (NIST SP 800-38D, 8.3); sealstore refuses well before that, at
//! [`SEAL_LIMIT`], with an error naming the rotation that replaces the key. The counts live in
//! authenticated state: the cluster key's in the key store, each database's in its key record
//! (inside the record's AAD), persisted at every commit's binding. A crash can lose at most the
//! seals of one commit from the persisted count, which the margin below 2^32 absorbs.
use serde::Serialize;

use crate::{Error, Result};

/// Seals a long-lived key may make before sealstore refuses to seal more under it (2^31: half
/// the 2^32 bound, so lost counts and concurrent sealers can never reach the bound itself).
pub const SEAL_LIMIT: u64 = 1 << 31;

/// Seals made under one database's long-lived keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SealCounts {
    /// Under the database key: DEK wraps, metadata-key wraps, DEK-table header tags.
    pub database_key: u64,
    /// Under the newest metadata key: manifests and commit records.
    pub metadata_key: u64,
}

/// `count + adding`, or [`Error::KeyWornOut`] past the limit.
pub(crate) fn charge(
    count: u64,
    adding: u64,
    key: impl FnOnce() -> String,
    action: impl FnOnce() -> String,
) -> Result<u64> {
    match count.checked_add(adding) {
        Some(total) if total <= SEAL_LIMIT => Ok(total),
        _ => Err(Error::KeyWornOut {
            key: key(),
            seals: count,
            action: action(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charging_past_the_limit_is_refused_with_the_rotation_to_run() {
        assert_eq!(charge(10, 5, String::new, String::new).unwrap(), 15);
        assert_eq!(charge(SEAL_LIMIT - 1, 1, String::new, String::new).unwrap(), SEAL_LIMIT);
        let err = charge(
            SEAL_LIMIT,
            1,
            || "cluster key".into(),
            || "sealstore rotate --cluster".into(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("sealstore rotate --cluster"), "{err}");
        assert!(charge(u64::MAX, 1, String::new, String::new).is_err());
    }
}

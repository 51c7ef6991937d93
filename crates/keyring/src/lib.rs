//! The sealstore key hierarchy.
//!
//! Four tiers, as in a cloud data warehouse:
//! 1. one random data key (DEK) per block, stored only wrapped in the [`DekTable`];
//! 2. one database key (DK) per database, wrapping that database's DEKs;
//! 3. one cluster key (CK), wrapping the database keys;
//! 4. a symmetric master key (MK) held by a [`MasterKeyProvider`], wrapping the cluster key
//!    under an [`EncryptionContext`].
//!
//! Every key operation is recorded in a hash-chained [`AuditLog`]. Key bytes never leave this
//! crate unwrapped except through explicit, greppable `expose_secret` calls.
#![forbid(unsafe_code)]

pub mod aead;
mod audit;
pub mod backend;
mod codec;
mod context;
mod dektable;
mod error;
#[doc(hidden)]
pub mod faults;
pub mod fsutil;
mod hierarchy;
mod keystore;
mod lock;
mod names;
pub mod provider;
mod rng;
mod seals;
mod secret;
mod time;

pub use audit::{AuditAnchor, AuditLog, AuditOp, AuditRecord, AuditVerifyReport, read_records as read_audit_records};
pub use backend::{GrantedDatabaseKey, KeyStoreBackend, LocalKeyStore};
pub use context::EncryptionContext;
pub use dektable::{BlockId, DEK_TABLE_VERSION, DekTable, PreparedRewrap, WrappedDek};
pub use error::{Error, Result};
#[cfg(feature = "test-hooks")]
pub use hierarchy::RotationStep;
pub use hierarchy::{DatabaseInfo, DatabaseKeys, HierarchyInfo, Keyring};
pub use keystore::KEYSTORE_VERSION;
pub use names::validate_name as validate_database_name;
pub use provider::{KeySpec, MasterKeyProvider};
pub use rng::fill_random;
pub use seals::{SEAL_LIMIT, SealCounts};
pub use secret::{AuditKey, ClusterKey, DataKey, DatabaseKey, MasterKeyMaterial};
pub use time::{civil_from_days, now_rfc3339};

#[cfg(feature = "test-hooks")]
pub mod fuzzing {
    //! Entry points for the fuzz targets (feature `test-hooks`): parse untrusted bytes, never
    //! panic.
    pub use crate::codec::Reader;

    /// Parses a key-store file image.
    pub fn parse_keystore(bytes: &[u8]) {
        let _ = crate::keystore::KeystoreFile::decode(bytes, std::path::Path::new("fuzz"));
    }

    /// Replays a DEK-table log image.
    pub fn parse_dek_table(bytes: &[u8]) {
        let _ = crate::dektable::replay_image(bytes);
    }

    /// Verifies an audit-log image.
    pub fn parse_audit(bytes: &[u8]) {
        let _ = crate::audit::verify_bytes(bytes, None, &crate::AuditAnchor::default());
    }
}

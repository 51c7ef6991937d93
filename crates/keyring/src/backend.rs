//! Where the key records live: a key-store directory on this machine ([`LocalKeyStore`]) or a
//! key server reached over mutual TLS (crate `sealstore-keyserver`). The keyring's DEK tables stay
//! with the data; everything above them — the database-key records, the cluster key, the master
//! key, the keyed audit chain and the bound commit generation — is behind this trait, so a node
//! using a key server never holds a wrapped or unwrapped cluster key and never writes a database
//! key anywhere.
//!
//! The operations are the key store's, not storage steps: every one is atomic on its side (one
//! key-store replace), so a node that dies between two of them leaves a state the next open
//! settles (see [`crate::Keyring::open_database`]).
use std::sync::Arc;

use crate::{AuditRecord, AuditVerifyReport, DatabaseKey, HierarchyInfo, MasterKeyProvider, Result, SealCounts};

pub use crate::hierarchy::LocalKeyStore;

/// A database key handed out by the key store, with its record's generation and seal counts.
#[derive(Debug)]
pub struct GrantedDatabaseKey {
    /// The database-key generation of the record.
    pub generation: u32,
    /// The unwrapped key (zeroized on drop).
    pub key: DatabaseKey,
    /// Seals under the key and the database's newest metadata key, as of the last binding.
    pub seals: SealCounts,
}

/// The key records of one cluster, wherever they are kept.
pub trait KeyStoreBackend: Send + Sync + std::fmt::Debug {
    /// The cluster id the records belong to.
    fn cluster_id(&self) -> String;

    /// Where the records are, for messages and `info` (a directory, or a key-server address).
    fn location(&self) -> String;

    /// Ids, generations and contexts (no secrets).
    fn info(&self) -> Result<HierarchyInfo>;

    /// Names of all databases.
    fn databases(&self) -> Result<Vec<String>>;

    /// Stores a new database's key (generation 1), wrapped under the cluster key. The caller made
    /// the key (OS RNG) and its DEK table first, so a crash in between leaves a table no record
    /// opens rather than a record without a table.
    fn add_database_key(&self, name: &str, key: &DatabaseKey, seals: SealCounts) -> Result<()>;

    /// The database's key records, unwrapped: one, or two after a database-key rotation cut
    /// short (the caller keeps the one that authenticates its DEK table).
    fn database_keys(&self, name: &str) -> Result<Vec<GrantedDatabaseKey>>;

    /// Destroys every record of `name` but generation `generation` (`detail` goes to the audit
    /// record when one was destroyed).
    fn keep_database_key(&self, name: &str, generation: u32, detail: &str) -> Result<()>;

    /// Stages `key` as generation `live_generation + 1` beside the live record (destroying any
    /// other record left by a failed rotation); returns the new generation.
    fn stage_database_key(&self, name: &str, live_generation: u32, key: &DatabaseKey, seals: SealCounts)
    -> Result<u32>;

    /// The cluster commit generation bound into a database's record (0 before the first).
    fn bound_generation(&self, name: &str) -> Result<u64>;

    /// Binds `generation` (and the keys' seal counts). Only moves forward unless
    /// `accept_rollback`, which a key server refuses: its counter never moves back.
    fn bind_generation(
        &self,
        name: &str,
        generation: u64,
        accept_rollback: bool,
        seals: Option<SealCounts>,
    ) -> Result<()>;

    /// Crypto-shreds a database: its key records leave the store.
    fn drop_database(&self, name: &str) -> Result<()>;

    /// A new cluster key; every database key re-wrapped under it. Returns its generation.
    fn rotate_cluster_key(&self) -> Result<u32>;

    /// Re-wraps the cluster key under `new_provider`'s master key (only where the master key is
    /// reachable: a local key store).
    fn rotate_master_key(&self, new_provider: Arc<dyn MasterKeyProvider>) -> Result<()>;

    /// The master-key provider, where this process holds one (not behind a key server).
    fn provider(&self) -> Option<Arc<dyn MasterKeyProvider>>;

    /// Appends a record to the cluster's keyed audit chain (`durable == false`: page cache only).
    fn append_audit(&self, record: AuditRecord, durable: bool) -> Result<()>;

    /// Every audit record.
    fn audit_records(&self) -> Result<Vec<AuditRecord>>;

    /// Verifies the audit chain under its key and against its anchor.
    fn verify_audit(&self) -> Result<AuditVerifyReport>;

    /// Fails once this process's access to the keys has lapsed (a key server's lease ran out and
    /// could not be renewed, or the cluster was revoked). Called before keys are used; cheap.
    fn check_access(&self) -> Result<()> {
        Ok(())
    }

    /// **Tests only** (feature `test-hooks`): every cluster and database key this backend can
    /// unwrap, so a test can scan files for their bytes. (A default, so that an implementor
    /// built without the feature still compiles where another crate turns it on.)
    #[cfg(feature = "test-hooks")]
    fn insecure_key_bytes_for_tests(&self) -> Result<Vec<[u8; 32]>> {
        Err(crate::Error::Internal(format!(
            "{} cannot re-derive key bytes",
            self.location()
        )))
    }
}

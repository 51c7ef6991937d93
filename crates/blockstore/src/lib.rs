//! sealstore storage for one slice: tables stored as columns cut into fixed-size blocks, each
//! sealed with AES-256-GCM under its own data key from the keyring, read back into private
//! buffers, skipped by zone maps, and never silently wrong.
//!
//! ```text
//! Store ── Transaction (create/drop/append) ── ColumnWriter ─ pages ─ blocks ─ seal ─ segment slot
//!   │                      └── commit::commit(transactions, commit point) ── DEK table ─ manifest ─ point
//!   └──── snapshot() ── scan() ── zone-map pruning ── pread slot ─ authenticate+decrypt ─ decode ─ filter
//! ```
#![deny(unsafe_code)]

pub mod block;
pub mod commit;
pub mod encoding;
pub mod envelope;
mod error;
mod filter_text;
mod identity;
pub mod manifest;
mod medium;
pub mod predicate;
mod scan;
mod segment;
pub mod slot;
mod snapshot;
mod standalone;
mod store;
pub mod types;
mod writeback;
mod writer;
pub mod zone;

#[cfg(feature = "test-hooks")]
pub use commit::CommitStep;
pub use commit::{CommitOutcome, CommitPoint, Durability};
pub use encoding::BytesLayout;
pub use error::{Error, Result};
pub use filter_text::parse_filter;
pub use identity::{STORE_ID_LEN, StoreIdentity};
pub use manifest::{BlockMeta, ColumnMeta, Manifest, TableMeta};
pub use medium::{ManifestId, StoreMedium};
pub use predicate::{CmpOp, Predicate};
pub use scan::{ScanBuilder, ScanCounts, ScanIter, ScanStats};
pub use snapshot::Snapshot;
pub use standalone::CurrentFile;
#[cfg(feature = "test-hooks")]
pub use store::BlockCipher;
pub use store::{
    CommitInfo, OpenOptions, Prepared, STORE_VERSION, Store, StoreOptions, StoreStats, TableStats, Transaction,
    VerifyFailure, table_columns, validate_table_name,
};
pub use types::ColumnType;
pub use writer::PAGE_ROWS;
pub use zone::{Scalar, ZoneMap};

#[cfg(feature = "test-hooks")]
pub mod fuzzing {
    //! Entry points for the fuzz targets (feature `test-hooks`): untrusted bytes in, never a
    //! panic.
    use crate::types::ColumnType;

    /// Decodes a page of every column type, strings and binary in both layouts (a view
    /// array is built unchecked from entries the decoder checked: a wrong check would surface
    /// here as an invalid array).
    pub fn decode_page(bytes: &[u8]) {
        for code in 1..=8 {
            let ty = ColumnType::from_code(code).expect("valid code");
            let _ = crate::encoding::decode_page(ty, bytes);
            if let Ok(views) = crate::encoding::decode_page_as(ty, bytes, crate::BytesLayout::Views) {
                views.to_data().validate_full().expect("a decoded view array is valid");
            }
        }
    }

    /// Decodes a block payload (page list).
    pub fn decode_block(bytes: &[u8]) {
        let _ = crate::writer::decode_block(ColumnType::Utf8, bytes);
        let _ = crate::writer::decode_block(ColumnType::Int64, bytes);
    }

    /// Parses a block header and tries to open the block under a fixed key.
    pub fn open_block(bytes: &[u8]) {
        let _ = crate::block::BlockHeader::decode(bytes);
        let key = sealstore_keyring::aead::default_backend().key(&[0u8; 32]);
        let mut b = bytes.to_vec();
        let _ = crate::block::open(&mut b, key.as_ref());
    }

    /// Decodes a manifest: the bytes as a file image (magic, version, lengths) and as a plaintext
    /// body (the JSON decoder and the invariant checks), so the parser is exercised past the
    /// seal too (authentication itself is AES-GCM, fuzzed by `open_block`).
    pub fn manifest(bytes: &[u8]) {
        if let Ok(m) = crate::manifest::Manifest::decode(bytes) {
            // A decoded manifest must be usable: walking it must not panic.
            let _ = m.blocks().map(|b| b.slot).max();
            for t in &m.tables {
                let _ = t.schema();
            }
        }
        let _ = crate::manifest::parse_image(bytes);
    }

    /// Parses a filter expression against a fixed schema.
    pub fn parse_filter(text: &str) {
        let cols = [
            ("a".to_owned(), ColumnType::Int64),
            ("b".to_owned(), ColumnType::Utf8),
            ("c".to_owned(), ColumnType::Date32),
            ("d".to_owned(), ColumnType::Float64),
            ("e".to_owned(), ColumnType::TimestampMicros),
            ("f".to_owned(), ColumnType::Boolean),
        ];
        let _ = crate::filter_text::parse_filter(text, &cols);
    }
}

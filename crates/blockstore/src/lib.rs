//! sealstore storage for one slice: tables stored as columns cut into fixed-size blocks, each
//! sealed with AES-256-GCM under its own data key from the keyring.
#![deny(unsafe_code)]

pub mod encoding;
pub mod types;
pub mod zone;

pub use types::ColumnType;
pub use zone::{Scalar, ZoneMap};

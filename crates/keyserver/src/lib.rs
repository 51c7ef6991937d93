//! sealstore's key server: database keys live on a separate machine and reach nodes only over
//! mutual TLS (see `docs/key-server.md`).
//!
//! - [`server`]: `sealstore keyserver` — a directory of per-cluster key stores (the cluster key
//!   wrapped by the server's master-key provider, the database keys, the keyed audit chain, the
//!   authoritative commit generation), served over TLS 1.3 with client certificates.
//! - [`client`]: [`RemoteKeyStore`], the keyring's key store on a node: no key byte on the
//!   node's disk, keys in memory under a lease.
//! - [`admin`]: the admin socket through which a running server rotates its master key.
//! - [`certs`]: throw-away certificates for development and tests (rcgen).
#![forbid(unsafe_code)]

pub mod admin;
pub mod certs;
pub mod client;
mod error;
pub mod protocol;
pub mod server;
pub mod tls;

pub use client::RemoteKeyStore;
pub use error::{Error, Result};
pub use server::{KeyServerDir, ServeOptions};

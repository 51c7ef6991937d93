//! SQL over sealed tables: sealstore as an Apache DataFusion data source.
//!
//! Every database of a cluster is a schema, every table a `TableProvider` that reads one
//! snapshot with one DataFusion partition per slice, prunes blocks by zone map before
//! decrypting them, applies the filters it can row-exactly, and answers statistics from its
//! manifests. `INSERT`, `CREATE TABLE [AS]` and `DROP TABLE` are single sealed commits.
//! DataFusion never spills: its disk manager is disabled and its memory bounded.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sealstore_cluster::{Cluster, OpenOptions};
//! use sealstore_sql::{Engine, SqlOptions};
//! # async fn run() -> sealstore_sql::Result<()> {
//! let cluster = Arc::new(Cluster::open("/tmp/sealstore-data".as_ref(), OpenOptions::default())?);
//! let engine = Engine::new(cluster, SqlOptions::database("dev"))?;
//! engine.sql("CREATE TABLE t AS SELECT 1 AS id, 'a' AS name").await?;
//! let batches = engine.sql("SELECT name, count(*) FROM t GROUP BY name").await?.collect().await?;
//! # Ok(()) }
//! ```
mod catalog;
mod engine;
mod error;
mod exec;
pub mod pushdown;
mod stats;
mod table;
#[cfg(feature = "tpch")]
pub mod tpch;
pub mod types;
mod write;

pub use catalog::{DatabaseSchema, SealstoreCatalog};
pub use engine::{CATALOG, DEFAULT_MEMORY_LIMIT, Engine, SqlOptions, register, runtime_env, session_config};
pub use error::{Error, Result};
pub use exec::SealedScanExec;
pub use table::SealedTable;

/// The README's embedding examples (storage and SQL), compiled and run as doctests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// DataFusion, as this crate builds it (one version in the tree).
pub use datafusion;

//! sealstore's benchmarks, outside the product crates: the end-to-end bench driver
//! ([`driver`], reached as `sealstore bench` in a build with the CLI's `bench` feature) and its
//! unsealed baseline ([`noseal`]: the real pipeline with a no-op block cipher) and encrypted-Parquet
//! lane ([`parquet_lane`]); `commit-bench`
//! (small commits, scan latency during a load); `append-stream` (peak memory of one long
//! transaction); `tpch` (feature `tpch`: the 22 TPC-H queries against encrypted Parquet);
//! `fuzz-seeds`; `sizes` (bytes on disk next to snappy Parquet, tables from [`flights`] and the
//! lineitem generator); and the criterion benches in `benches/`.
pub mod driver;
pub mod flights;
pub mod noseal;
pub mod parquet_lane;
#[cfg(feature = "tpch")]
pub mod tpch;

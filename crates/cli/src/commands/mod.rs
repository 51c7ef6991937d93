//! The bodies of the `sealstore` commands, one module per group; `main.rs` parses the
//! arguments and dispatches here.
pub(crate) mod audit;
pub(crate) mod init;
pub(crate) mod inspect;
pub(crate) mod keys;
pub(crate) mod keyserver;
pub(crate) mod load;
pub(crate) mod scan;
pub(crate) mod sql;

use std::path::Path;

use sealstore_cluster::Cluster;

use crate::{ACCEPT_ROLLBACK, CliResult, KEYSTORE};

pub(crate) fn open_options(read_only: bool) -> sealstore_cluster::OpenOptions {
    sealstore_cluster::OpenOptions {
        threads: None,
        accept_rollback: ACCEPT_ROLLBACK.load(std::sync::atomic::Ordering::Relaxed),
        keystore: KEYSTORE.get().cloned().flatten(),
        read_only,
        ..Default::default()
    }
}

/// Opens the cluster for a command that writes.
pub(crate) fn open(dir: &Path) -> CliResult<Cluster> {
    Ok(Cluster::open(dir, open_options(false))?)
}

/// Opens the cluster for a command that only reads: nothing in the data directory changes.
pub(crate) fn open_read_only(dir: &Path) -> CliResult<Cluster> {
    Ok(Cluster::open(dir, open_options(true))?)
}

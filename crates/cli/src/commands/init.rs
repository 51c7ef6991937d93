//! `init`.
use std::path::Path;

use sealstore_cluster::{Cluster, InitOptions};

use crate::CliResult;

pub(crate) fn init(dir: &Path, options: InitOptions) -> CliResult {
    let cluster = Cluster::init(dir, options)?;
    let info = cluster.info()?;
    println!("initialized sealstore cluster in {}", info.data_dir.display());
    print_hierarchy(&info);
    Ok(())
}

pub(crate) fn print_hierarchy(info: &sealstore_cluster::ClusterInfo) {
    let h = &info.hierarchy;
    let c = &info.config;
    println!(
        "layout:      {} nodes x {} slices, block size {} bytes",
        c.nodes, c.slices_per_node, c.block_size
    );
    println!("key store:   {}", h.keystore);
    println!(
        "master key:  {} ({}), id {}",
        info.provider,
        if h.provider_secure {
            "symmetric AES-256"
        } else {
            "INSECURE test provider"
        },
        h.master_key_id
    );
    println!(
        "cluster key: generation {}, wrapped under context {}",
        h.cluster_key_generation, h.context
    );
    for d in &h.databases {
        println!(
            "database key `{}`: generation {}, wrapped under cluster key generation {}",
            d.name, d.database_key_generation, d.wrapped_under_cluster_key_generation
        );
    }
}

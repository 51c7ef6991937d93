//! `rotate` and `rekey`.
use std::path::Path;
use std::time::Instant;

use super::open;
use crate::CliResult;

pub(crate) fn rotate(
    dir: &Path,
    master: bool,
    new_master_key: Option<String>,
    cluster_key: bool,
    databases: Vec<String>,
    all: bool,
) -> CliResult {
    let cluster = open(dir)?;
    let default = !master && !cluster_key && databases.is_empty();
    let mut options = sealstore_cluster::RotateOptions {
        master: None,
        cluster: cluster_key || all || default,
        databases: if all || default {
            cluster.databases()?
        } else {
            databases
        },
    };
    if master || all {
        let current = cluster.config().provider;
        options.master = Some(match new_master_key {
            Some(key) if matches!(current, sealstore_cluster::ProviderConfig::LocalKeyFile { .. }) => {
                current.with_key(&std::path::absolute(&key)?.to_string_lossy())
            }
            Some(key) => current.with_key(&key),
            None => current.next_version()?,
        });
    }
    let report = cluster.rotate(&options)?;
    if let Some(m) = &report.master_key {
        println!(
            "master key rotated: {} -> {} (cluster key re-wrapped; keep the old key until no key-store backup needs it)",
            m.old_key_id, m.new_key_id
        );
    }
    if let Some(g) = report.cluster_key_generation {
        println!("cluster key rotated: now generation {g} (every database key re-wrapped)");
    }
    for d in &report.databases {
        println!(
            "database key `{}` rotated: now generation {}, {} DEKs re-wrapped, old key destroyed",
            d.database, d.generation, d.deks_rewrapped
        );
    }
    println!("rotation done in {:.3} s; no block was re-encrypted", report.seconds);
    Ok(())
}

pub(crate) fn rekey(dir: &Path, database: &str, table: Option<&str>) -> CliResult {
    let cluster = open(dir)?;
    let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} blocks re-encrypted, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let report = cluster.rekey(database, table, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let report = report?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "re-keyed {} blocks of {database}{} in {secs:.2} s ({:.1} MB/s, {} commits{}); old DEKs removed and shredded",
        report.blocks,
        table.map(|t| format!(".{t}")).unwrap_or_default(),
        report.bytes as f64 / 1e6 / secs.max(1e-9),
        report.commits,
        if report.resumed {
            ", resumed an interrupted re-key"
        } else {
            ""
        }
    );
    Ok(())
}

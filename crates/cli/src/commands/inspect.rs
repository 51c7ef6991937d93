//! `tables`, `info` and `verify`.
use crate::CliError;
use std::path::Path;

use super::init::print_hierarchy;
use super::open_read_only;
use crate::CliResult;

pub(crate) fn tables(dir: &Path, database: Option<&str>) -> CliResult {
    let cluster = open_read_only(dir)?;
    let names = match database {
        Some(d) => vec![d.to_owned()],
        None => cluster.databases()?,
    };
    for name in names {
        let db = cluster.database(&name)?;
        for t in db.table_infos()? {
            let cols: Vec<String> = t.columns.iter().map(|(n, ty)| format!("{n}:{ty}")).collect();
            println!(
                "{name}.{}\trows={}\tblocks={}\tdist={}\t{}",
                t.name,
                t.rows,
                t.blocks,
                t.distribution,
                cols.join(",")
            );
        }
    }
    Ok(())
}

pub(crate) fn info(dir: &Path, json: bool) -> CliResult {
    let cluster = open_read_only(dir)?;
    let info = cluster.info()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&info).map_err(|e| CliError::Failure(e.to_string()))?
        );
        return Ok(());
    }
    println!("data directory: {}", info.data_dir.display());
    println!("cluster id:  {}", info.config.cluster_id);
    for (n, d) in info.config.node_dirs.iter().enumerate() {
        println!("node {n}:      {}", d.display());
    }
    print_hierarchy(&info);
    for d in &info.databases {
        println!(
            "database `{}`: {} tables, {} blocks, {} wrapped DEKs, {} bytes on disk, commit generation {}",
            d.name, d.tables, d.blocks, d.deks, d.disk_bytes, d.generation
        );
    }
    Ok(())
}

pub(crate) fn verify(dir: &Path) -> CliResult {
    let cluster = open_read_only(dir)?;
    let report = cluster.verify();
    for b in &report.blocks {
        let f = &b.failure;
        println!(
            "FAIL {}.{} column {} block {} in {} at offset {}: {}",
            b.database,
            f.table,
            f.column,
            f.block_id,
            f.path.display(),
            f.offset,
            f.error
        );
    }
    for d in &report.databases {
        println!("FAIL database {}: {}", d.database, d.error);
    }
    match &report.audit {
        Ok(a) => println!("audit chain intact: {} records", a.records),
        Err(e) => println!("FAIL audit log: {e}"),
    }
    let failures = report.blocks.len() + report.databases.len() + usize::from(report.audit.is_err());
    println!("{} blocks checked, {failures} failures", report.blocks_checked);
    if failures > 0 {
        return Err(CliError::Failure(format!("verification failed: {failures} failures")));
    }
    Ok(())
}

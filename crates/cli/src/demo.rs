//! `sealstore demo`: the main job on the embedded default (a local master key file).
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sealstore_cluster::datagen::{Lineitem, arrow_bytes, lineitem_schema};
use sealstore_cluster::{
    Cluster, ClusterConfig, CmpOp, Distribution, InitOptions, OpenOptions, Predicate, Scalar, ScanStats,
};

use crate::{CliError, CliResult};

fn step(n: u32, what: &str) {
    println!("\n[{n}/8] {what}");
}

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failure(e.to_string())
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

pub fn run(rows: usize, dir: Option<PathBuf>) -> CliResult {
    if rows == 0 {
        return Err(CliError::Usage("--rows must be at least 1".into()));
    }
    let _temp;
    let root = match dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d).map(|mut r| r.next().is_some()).unwrap_or(true) {
                return Err(CliError::Usage(format!(
                    "--dir {} must not exist or be empty",
                    d.display()
                )));
            }
            d
        }
        None => {
            _temp = tempfile::Builder::new().prefix("sealstore-demo-").tempdir()?;
            _temp.path().to_owned()
        }
    };
    let data = root.join("data");
    let started = Instant::now();
    println!(
        "sealstore demo: {rows} lineitem-like rows on 2 nodes x 2 slices, local master key, in {}",
        root.display()
    );

    step(1, "init: master key file (0600), cluster key, database key `dev`");
    let options = InitOptions {
        master_key: Some(root.join("keys/master.key")),
        keystore: Some(root.join("keys/keystore")),
        cluster_id: Some("demo-cluster".into()),
        ..Default::default()
    };
    let cluster = Arc::new(Cluster::init(&data, options)?);
    let info = cluster.info()?;
    crate::commands::init::print_hierarchy(&info);

    step(
        2,
        "load: generate Arrow batches, seal every block under its own DEK, one atomic commit",
    );
    let batches: Vec<_> = Lineitem::new(rows, 42).collect();
    let input_bytes: usize = batches.iter().map(arrow_bytes).sum();
    let db = cluster.database("dev")?;
    let t = Instant::now();
    let report = db.load(
        "lineitem",
        Some(((*lineitem_schema()).clone(), Distribution::Even)),
        batches.into_iter().map(Ok),
    )?;
    let write_s = t.elapsed().as_secs_f64();
    let write_mb_s = input_bytes as f64 / 1e6 / write_s;
    println!(
        "loaded {} rows ({:.1} MB of Arrow data) in {write_s:.2} s = {write_mb_s:.0} MB/s; {} blocks sealed, {} wrapped DEKs, {:.1} MB on disk",
        report.rows,
        input_bytes as f64 / 1e6,
        db.blocks(),
        db.dek_count(),
        db.disk_bytes() as f64 / 1e6
    );

    step(3, "full scan: authenticate + decrypt + decode every block in parallel");
    let t = Instant::now();
    let mut scanned = 0usize;
    for b in db.scan("lineitem").run()? {
        scanned += b?.num_rows();
    }
    let scan_s = t.elapsed().as_secs_f64();
    let scan_mb_s = input_bytes as f64 / 1e6 / scan_s;
    println!("scanned {scanned} rows in {scan_s:.2} s = {scan_mb_s:.0} MB/s");
    if scanned != rows {
        return Err(fail(format!("scan returned {scanned} rows, {rows} were loaded")));
    }

    step(
        4,
        "selective scan: zone maps skip blocks before they are read or decrypted",
    );
    let max_order = (rows as i64 / 4).max(1);
    let (lo, hi) = (max_order / 2, max_order / 2 + max_order / 100);
    let stats = Arc::new(ScanStats::default());
    let t = Instant::now();
    let mut selected = 0usize;
    let iter = db
        .scan("lineitem")
        .columns(&["l_orderkey", "l_extendedprice", "l_shipdate"])
        .filter(Predicate::between("l_orderkey", Scalar::Int(lo), Scalar::Int(hi)))
        .filter(Predicate::compare("l_discount", CmpOp::Ge, Scalar::Float(0.05)))
        .stats(stats.clone())
        .run()?;
    for b in iter {
        selected += b?.num_rows();
    }
    let zone = stats.counts();
    println!(
        "l_orderkey BETWEEN {lo} AND {hi} AND l_discount >= 0.05: {selected} rows in {:.3} s; read {} of {} blocks ({:.1}%)",
        t.elapsed().as_secs_f64(),
        zone.blocks_read,
        zone.blocks_total,
        100.0 * zone.blocks_read as f64 / zone.blocks_total.max(1) as f64
    );

    step(
        5,
        "SQL (DataFusion): one partition per slice, filters pushed below decryption",
    );
    let query = format!(
        "SELECT l_returnflag, l_linestatus, count(*) AS n, round(sum(l_extendedprice * (1 - l_discount)), 2) AS revenue \
         FROM lineitem WHERE l_shipdate >= DATE '1998-01-01' OR l_orderkey < {lo} \
         GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"
    );
    println!("{query}");
    let t = Instant::now();
    let sql_rows = crate::commands::sql::demo_query(cluster.clone(), &query)?;
    println!("{sql_rows} result rows in {:.3} s", t.elapsed().as_secs_f64());

    step(6, "key hierarchy (ids, generations, contexts; no key bytes)");
    let info = cluster.info()?;
    crate::commands::init::print_hierarchy(&info);
    for d in &info.databases {
        println!(
            "database `{}`: {} blocks, each under its own DEK ({} DEKs wrapped under the database key)",
            d.name, d.blocks, d.deks
        );
    }

    step(
        7,
        "verify: authenticate every block, manifest, DEK table and the audit chain",
    );
    let v = cluster.verify();
    let audit_records = v.audit.as_ref().map(|a| a.records).map_err(fail)?;
    if !v.ok() {
        return Err(fail(format!("verification failed: {:?}", v.blocks)));
    }
    println!(
        "{} blocks authenticated, 0 failures; audit chain intact ({audit_records} records)",
        v.blocks_checked
    );
    let keystore = cluster.config().keystore;
    drop(db);
    drop(cluster);

    step(8, "tamper: flip one byte of one block in a scratch copy, then read it");
    let scratch = root.join("scratch");
    copy_tree(&data, &scratch)?;
    // The copy gets its own key store (same master key), whose configuration names it.
    let scratch_keys = sealstore_cluster::default_keystore(&scratch);
    copy_tree(&keystore, &scratch_keys)?;
    let mut config = ClusterConfig::load(&scratch_keys)?;
    let (data, scratch) = (std::fs::canonicalize(&data)?, std::fs::canonicalize(&scratch)?);
    config.data_dir = scratch.clone();
    config.keystore = std::fs::canonicalize(&scratch_keys)?;
    config.node_dirs = config
        .node_dirs
        .iter()
        .map(|d| scratch.join(d.strip_prefix(&data).unwrap_or(d)))
        .collect();
    config.save()?;
    let victim = {
        let c = Cluster::open(&scratch, OpenOptions::default())?;
        let db = c.database("dev")?;
        let block = db
            .block_locations("lineitem", "l_comment")?
            .into_iter()
            .find(|b| b.slice == 1)
            .ok_or_else(|| fail("no l_comment block on slice 1"))?;
        (block.path, block.offset + block.len / 2, block.block_id)
    };
    let mut bytes = std::fs::read(&victim.0)?;
    bytes[victim.1 as usize] ^= 0x01;
    std::fs::write(&victim.0, &bytes)?;
    println!(
        "flipped the byte at offset {} of {} (block {}, column l_comment)",
        victim.1,
        victim.0.display(),
        victim.2
    );
    let c = Cluster::open(&scratch, OpenOptions::default())?;
    let db = c.database("dev")?;
    let outcome = db.scan("lineitem").run()?.find_map(|b| b.err());
    match outcome {
        Some(e) if e.is_authentication() => println!("scan refused the data: {e}"),
        Some(e) => return Err(fail(format!("expected an authentication failure, got: {e}"))),
        None => return Err(fail("the tampered block was not detected")),
    }
    let failures = c.verify().blocks.len();
    println!("verify on the scratch copy: {failures} failing block(s), the original is untouched");
    drop(db);
    drop(c);

    let (seal, open) = sealstore_keyring::aead::throughput(sealstore_keyring::aead::default_backend(), 0.3);
    println!("\nreport");
    println!("  rows                 {rows}");
    println!("  write (sealed)       {write_mb_s:.0} MB/s of Arrow input");
    println!("  full scan (sealed)   {scan_mb_s:.0} MB/s of Arrow output");
    println!(
        "  AES-256-GCM 1 core   seal {seal:.2} GB/s, open {open:.2} GB/s ({})",
        sealstore_keyring::aead::default_backend().name()
    );
    println!(
        "  zone-map scan        read {} of {} blocks",
        zone.blocks_read, zone.blocks_total
    );
    println!("  demo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

//! `sealstore bench`: sealed vs unsealed write and scan throughput, parallel scaling, AES-GCM speed.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use sealstore_blockstore::Scalar;
use sealstore_cluster::datagen::{Lineitem, arrow_bytes, lineitem_schema};
use sealstore_cluster::{Cluster, Distribution, InitOptions, Predicate, ScanStats, baseline};
use serde::Serialize;

use crate::{CliError, CliResult};

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::Failure(e.to_string())
}

/// Single-thread AES-256-GCM seal and open of a 1 MiB buffer, GB/s (open always on real
/// ciphertext: each iteration re-seals untimed, then times the open).
pub fn aead_speed(seconds: f64) -> (f64, f64) {
    let backend = sealstore_keyring::aead::default_backend();
    let key = backend.key(&[0x5a; 32]);
    let nonce = [7u8; 12];
    let mut buf = vec![0x42u8; 1 << 20];
    let (mut sealed, mut opened) = (0.0f64, 0.0f64);
    let mut n = 0u32;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds || n < 3 {
        let t = Instant::now();
        let tag = key.seal_in_place(&nonce, b"aad", &mut buf).expect("seal");
        sealed += t.elapsed().as_secs_f64();
        let t = Instant::now();
        key.open_in_place(&nonce, b"aad", &mut buf, &tag)
            .expect("open of real ciphertext");
        opened += t.elapsed().as_secs_f64();
        n += 1;
    }
    let gb = f64::from(n) * (1 << 20) as f64 / 1e9;
    (gb / sealed, gb / opened)
}

#[derive(Debug, Serialize)]
struct Run {
    threads: usize,
    write_mb_s: f64,
    write_rows_s: f64,
    scan_rows_s: f64,
    rekey_mb_s: f64,
    scan_mb_s: f64,
    write_unsealed_mb_s: f64,
    scan_unsealed_mb_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    rows: usize,
    threads: usize,
    arrow_bytes: usize,
    block_size: usize,
    memory_budget: usize,
    backend: &'static str,
    write_mb_s: f64,
    scan_mb_s: f64,
    write_rows_s: f64,
    scan_rows_s: f64,
    write_unsealed_mb_s: f64,
    scan_unsealed_mb_s: f64,
    write_ratio: f64,
    scan_ratio: f64,
    /// Re-key throughput over end-to-end write throughput (same table, same run).
    rekey_ratio: f64,
    aead_seal_gb_s: f64,
    aead_open_gb_s: f64,
    disk_bytes: u64,
    blocks: u64,
    write_scaling: f64,
    scan_scaling: f64,
    selective_blocks_read: u64,
    selective_blocks_total: u64,
    runs: Vec<Run>,
}

/// Best (shortest) of `n` timings of `f`.
fn best_of<T>(n: usize, mut f: impl FnMut() -> CliResult<T>) -> CliResult<(f64, T)> {
    let mut best: Option<(f64, T)> = None;
    for _ in 0..n {
        let t = Instant::now();
        let v = f()?;
        let s = t.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|(b, _)| s < *b) {
            best = Some((s, v));
        }
    }
    best.ok_or_else(|| fail("no runs"))
}

pub fn run(
    rows: usize,
    threads: Option<usize>,
    json: bool,
    dir: Option<PathBuf>,
    block_size: usize,
    memory_budget: usize,
) -> CliResult {
    if rows == 0 {
        return Err(CliError::Usage("--rows must be at least 1".into()));
    }
    let max_threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    if max_threads == 0 || max_threads > 1024 {
        return Err(CliError::Usage("--threads must be between 1 and 1024".into()));
    }
    let _temp;
    let root = match dir {
        Some(d) => d,
        None => {
            _temp = tempfile::Builder::new().prefix("sealstore-bench-").tempdir()?;
            _temp.path().to_owned()
        }
    };
    let batches: Vec<RecordBatch> = Lineitem::new(rows, 42).collect();
    let input: usize = batches.iter().map(arrow_bytes).sum();
    let mb = input as f64 / 1e6;
    let mut runs = Vec::new();
    let mut disk_bytes = 0;
    let mut blocks = 0;
    let mut selective = (0, 0);
    let mut counts = vec![1];
    if max_threads > 1 {
        counts.push(max_threads);
    }
    for &t in &counts {
        let run_dir = root.join(format!("threads-{t}"));
        let options = InitOptions {
            threads: Some(t),
            block_size,
            master_key: Some(run_dir.join("keys/master.key")),
            keystore: Some(run_dir.join("keys/keystore")),
            ..Default::default()
        };
        let cluster = Cluster::init(&run_dir.join("data"), options)?;
        cluster.set_memory_budget(memory_budget);
        let db = cluster.database("dev")?;
        let start = Instant::now();
        db.load(
            "lineitem",
            Some(((*lineitem_schema()).clone(), Distribution::Even)),
            batches.iter().cloned().map(Ok),
        )?;
        let write_s = start.elapsed().as_secs_f64();
        let (scan_s, scanned) = best_of(3, || {
            let mut n = 0;
            for b in db.scan("lineitem").run()? {
                n += b?.num_rows();
            }
            Ok(n)
        })?;
        if scanned != rows {
            return Err(fail(format!("scan returned {scanned} rows, expected {rows}")));
        }
        disk_bytes = db.disk_bytes();
        blocks = db.blocks();
        let max_order = (rows as i64 / 4).max(1);
        let stats = Arc::new(ScanStats::default());
        let lo = max_order / 2;
        for b in db
            .scan("lineitem")
            .filter(Predicate::between(
                "l_orderkey",
                Scalar::Int(lo),
                Scalar::Int(lo + max_order / 100),
            ))
            .stats(stats.clone())
            .run()?
        {
            b?;
        }
        selective = (stats.counts().blocks_read, stats.counts().blocks_total);
        let start = Instant::now();
        let rekeyed = db.rekey(None, sealstore_cluster::REKEY_BATCH_BLOCKS, &|_, _| {})?;
        let rekey_s = start.elapsed().as_secs_f64();
        if rekeyed.blocks != blocks {
            return Err(fail(format!("re-key re-sealed {} of {blocks} blocks", rekeyed.blocks)));
        }
        drop(db);
        drop(cluster);

        let pool = baseline::pool(t)?;
        let unsealed_dir = run_dir.join("unsealed");
        std::fs::create_dir_all(&unsealed_dir)?;
        baseline::write(&unsealed_dir, block_size, 4, &pool, &batches[..batches.len().min(2)])?;
        let (write_unsealed_s, tables) = best_of(2, || {
            Ok(baseline::write(&unsealed_dir, block_size, 4, &pool, &batches)?)
        })?;
        let (scan_unsealed_s, unsealed_rows) = best_of(3, || Ok(baseline::scan(&tables, &pool)?))?;
        if unsealed_rows != rows as u64 {
            return Err(fail(format!("unsealed scan returned {unsealed_rows} rows")));
        }
        runs.push(Run {
            threads: t,
            write_mb_s: mb / write_s,
            write_rows_s: rows as f64 / write_s,
            scan_rows_s: rows as f64 / scan_s,
            rekey_mb_s: mb / rekey_s,
            scan_mb_s: mb / scan_s,
            write_unsealed_mb_s: mb / write_unsealed_s,
            scan_unsealed_mb_s: mb / scan_unsealed_s,
        });
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    let (seal, open) = aead_speed(0.5);
    let last = runs.last().expect("at least one run");
    let first = &runs[0];
    let report = Report {
        rows,
        threads: last.threads,
        arrow_bytes: input,
        block_size,
        memory_budget,
        backend: sealstore_keyring::aead::default_backend().name(),
        write_mb_s: last.write_mb_s,
        scan_mb_s: last.scan_mb_s,
        write_rows_s: last.write_rows_s,
        scan_rows_s: last.scan_rows_s,
        write_unsealed_mb_s: last.write_unsealed_mb_s,
        scan_unsealed_mb_s: last.scan_unsealed_mb_s,
        write_ratio: last.write_mb_s / last.write_unsealed_mb_s,
        scan_ratio: last.scan_mb_s / last.scan_unsealed_mb_s,
        rekey_ratio: last.rekey_mb_s / last.write_mb_s,
        aead_seal_gb_s: seal,
        aead_open_gb_s: open,
        disk_bytes,
        blocks,
        write_scaling: last.write_mb_s / first.write_mb_s,
        scan_scaling: last.scan_mb_s / first.scan_mb_s,
        selective_blocks_read: selective.0,
        selective_blocks_total: selective.1,
        runs,
    };
    if json {
        println!("{}", serde_json::to_string(&report).map_err(fail)?);
    } else {
        println!(
            "sealstore bench: {rows} lineitem-like rows ({mb:.1} MB Arrow), block size {block_size}, in-flight budget {} MiB, backend {}",
            memory_budget >> 20,
            report.backend
        );
        for r in &report.runs {
            println!(
                "  threads {}: write {:.0} MB/s (unsealed {:.0}, ratio {:.3}), scan {:.0} MB/s (unsealed {:.0}, ratio {:.3})",
                r.threads,
                r.write_mb_s,
                r.write_unsealed_mb_s,
                r.write_mb_s / r.write_unsealed_mb_s,
                r.scan_mb_s,
                r.scan_unsealed_mb_s,
                r.scan_mb_s / r.scan_unsealed_mb_s
            );
            println!(
                "  threads {}: write {:.2} M rows/s, scan {:.2} M rows/s",
                r.threads,
                r.write_rows_s / 1e6,
                r.scan_rows_s / 1e6
            );
            println!(
                "  threads {}: re-key {:.0} MB/s of table data = {:.2}x the write throughput",
                r.threads,
                r.rekey_mb_s,
                r.rekey_mb_s / r.write_mb_s
            );
        }
        println!(
            "  scaling {} threads vs 1: write {:.2}x, scan {:.2}x",
            report.threads, report.write_scaling, report.scan_scaling
        );
        println!("  AES-256-GCM single core: seal {seal:.2} GB/s, open {open:.2} GB/s");
        println!(
            "  on disk: {disk_bytes} bytes in {blocks} blocks ({:.1} bytes/row)",
            disk_bytes as f64 / rows as f64
        );
        println!(
            "  selective scan (1% of l_orderkey): read {} of {} blocks",
            selective.0, selective.1
        );
    }
    Ok(())
}

//! Commit and concurrency numbers of a cluster (2 nodes × 2 slices, local master key, files on
//! the machine's disk), through the public API only:
//!
//! - `small-commits ROWS COMMITS`: COMMITS appends of ROWS lineitem rows each, one commit each;
//!   prints commits per second and `fsync`/`fdatasync` calls per commit.
//! - `scan-during-load ROWS`: loads ROWS lineitem rows in one commit on one thread while another
//!   repeatedly scans a 10,000-row table of the same database; prints the scans' latency (p50,
//!   p99, max) during the load and whether scans finished before the load did.
//!
//! Output: one JSON object per run. `docs/benchmarks.md` has the method and the figures.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sealstore_cluster::datagen::{Lineitem, lineitem_schema};
use sealstore_cluster::{Cluster, Distribution, InitOptions};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn cluster(dir: &std::path::Path) -> Res<Cluster> {
    let options = InitOptions {
        nodes: 2,
        slices_per_node: 2,
        threads: Some(2),
        ..Default::default()
    };
    Ok(Cluster::init(&dir.join("data"), options)?)
}

fn small_commits(rows: usize, commits: usize) -> Res<()> {
    let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
    let cluster = cluster(dir.path())?;
    let db = cluster.database("dev")?;
    db.create_table("lineitem", &lineitem_schema(), Distribution::Even)?;
    let batches: Vec<_> = (0..commits)
        .map(|i| Lineitem::new(rows, i as u64).next().expect("a batch"))
        .collect();
    let syncs_before = sealstore_keyring::fsutil::sync_count();
    let started = Instant::now();
    for b in batches {
        db.append("lineitem", [b])?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let syncs = sealstore_keyring::fsutil::sync_count() - syncs_before;
    assert_eq!(db.row_count("lineitem")?, (rows * commits) as u64);
    println!(
        "{}",
        serde_json::json!({
            "mode": "small-commits",
            "slices": 4,
            "rows_per_commit": rows,
            "commits": commits,
            "seconds": seconds,
            "commits_per_second": commits as f64 / seconds,
            "syncs_per_commit": syncs as f64 / commits as f64,
        })
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn scan_during_load(rows: usize) -> Res<()> {
    let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
    let cluster = cluster(dir.path())?;
    let db = cluster.database("dev")?;
    db.create_table("small", &lineitem_schema(), Distribution::Even)?;
    db.append("small", Lineitem::new(10_000, 1))?;
    db.create_table("lineitem", &lineitem_schema(), Distribution::Even)?;
    let loading = Arc::new(AtomicBool::new(true));
    let load = {
        let (db, loading) = (db.clone(), loading.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let result = db.append("lineitem", Lineitem::new(rows, 7)).map(drop);
            loading.store(false, Ordering::SeqCst);
            (result, started.elapsed())
        })
    };
    // Let the load get going before the first scan.
    std::thread::sleep(Duration::from_millis(200));
    let mut latencies = Vec::new();
    let mut finished_during_load = 0usize;
    while loading.load(Ordering::SeqCst) {
        let started = Instant::now();
        let mut scanned = 0;
        for b in db.scan("small").columns(&["l_orderkey", "l_quantity"]).run()? {
            scanned += b?.num_rows();
        }
        assert_eq!(scanned, 10_000);
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        if loading.load(Ordering::SeqCst) {
            finished_during_load += 1;
        }
    }
    let (result, load_time) = load.join().map_err(|_| "the load panicked")?;
    result?;
    latencies.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "mode": "scan-during-load",
            "load_rows": rows,
            "load_seconds": load_time.as_secs_f64(),
            "scans": latencies.len(),
            "scans_finished_during_load": finished_during_load,
            "scan_ms_p50": percentile(&latencies, 0.50),
            "scan_ms_p99": percentile(&latencies, 0.99),
            "scan_ms_max": latencies.last().copied().unwrap_or(f64::NAN),
        })
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: commit-bench small-commits ROWS COMMITS | scan-during-load ROWS";
    match args.get(1).map(String::as_str) {
        Some("small-commits") => small_commits(args.get(2).ok_or(usage)?.parse()?, args.get(3).ok_or(usage)?.parse()?),
        Some("scan-during-load") => scan_during_load(args.get(2).ok_or(usage)?.parse()?),
        _ => Err(usage.into()),
    }
}

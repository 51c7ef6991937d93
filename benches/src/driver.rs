//! The end-to-end bench (`sealstore bench`, built with the CLI's `bench` feature): sealed vs
//! unsealed write and scan throughput, parallel scaling, re-key and AES-GCM speed.
//!
//! Both lanes run the real pipeline — a cluster, its loads and scans — one with AES-256-GCM on
//! its blocks, the other with the no-op [`crate::noseal::NoSeal`] in its place, so they differ
//! in the cipher alone.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use sealstore_blockstore::{BlockCipher, Scalar};
use sealstore_cluster::datagen::{Lineitem, arrow_bytes, lineitem_schema};
use sealstore_cluster::{Cluster, CmpOp, Distribution, InitOptions, Predicate, ScanCounts, ScanStats};
use serde::Serialize;

use crate::parquet_lane::ParquetLane;

/// Why the bench stopped.
#[derive(Debug)]
pub enum BenchError {
    /// Bad arguments.
    Usage(String),
    /// The run failed.
    Failure(String),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Usage(m) | BenchError::Failure(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BenchError {}

impl From<sealstore_cluster::Error> for BenchError {
    fn from(e: sealstore_cluster::Error) -> Self {
        BenchError::Failure(e.to_string())
    }
}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> Self {
        BenchError::Failure(e.to_string())
    }
}

type CliResult<T = ()> = Result<T, BenchError>;

fn fail(e: impl std::fmt::Display) -> BenchError {
    BenchError::Failure(e.to_string())
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
    write_parquet_mb_s: f64,
    scan_parquet_mb_s: f64,
    /// Every round's seconds, in order (the figures above use their medians).
    write_rounds_s: Vec<f64>,
    write_unsealed_rounds_s: Vec<f64>,
    write_parquet_rounds_s: Vec<f64>,
    scan_rounds_s: Vec<f64>,
    scan_unsealed_rounds_s: Vec<f64>,
    scan_parquet_rounds_s: Vec<f64>,
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
    /// The encrypted-Parquet lane (`parquet_lane`): throughput, and sealstore's over it.
    write_parquet_mb_s: f64,
    scan_parquet_mb_s: f64,
    write_vs_parquet: f64,
    scan_vs_parquet: f64,
    /// Bytes of the encrypted Parquet files, and sealstore's bytes on disk over them.
    parquet_bytes: u64,
    disk_vs_parquet: f64,
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
    /// A ~0.5%-selective scan of every column: a 1% range of `l_shipdate` (a sorted-ish column)
    /// and `l_quantity <= 25`; its rows, blocks decrypted, pages decoded, and how many times
    /// faster than the full scan (medians, same lane).
    date_scan_rows: u64,
    date_scan_blocks_read: u64,
    date_scan_blocks_total: u64,
    date_scan_pages_decoded: u64,
    date_scan_speedup: f64,
    runs: Vec<Run>,
}

/// Timed runs of the selective date scan (the median is reported).
const DATE_SCAN_RUNS: usize = 5;

/// The `l_shipdate` range holding 1% of the rows, from the 50th percentile up.
fn one_percent_of_shipdates(batches: &[RecordBatch]) -> CliResult<(i64, i64)> {
    let mut days: Vec<i32> = Vec::new();
    for b in batches {
        let col = b
            .column_by_name("l_shipdate")
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::Date32Array>())
            .ok_or_else(|| fail("no l_shipdate column"))?;
        days.extend(col.values().iter());
    }
    days.sort_unstable();
    let at = |q: f64| i64::from(days[((days.len() - 1) as f64 * q) as usize]);
    Ok((at(0.50), at(0.51)))
}

/// Timed writes per pipeline and thread count (the median is reported).
const WRITE_RUNS: usize = 6;
/// Timed full scans per pipeline and thread count (the median is reported).
const SCAN_RUNS: usize = 8;

/// The three pipelines every round times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipeline {
    Sealed,
    Unsealed,
    Parquet,
}

/// One thread count's measurements: a sealed and an unsealed cluster (their pools live as long
/// as a real one's would) and the encrypted-Parquet lane, the newest round's database and files,
/// and the timings of every round.
struct Lane {
    threads: usize,
    dir: PathBuf,
    cluster: Cluster,
    unsealed: Cluster,
    parquet: ParquetLane,
    /// The newest round's database name (in both clusters).
    kept: Option<String>,
    /// The newest round's Parquet files.
    parquet_files: Vec<PathBuf>,
    write_s: Vec<f64>,
    write_unsealed_s: Vec<f64>,
    write_parquet_s: Vec<f64>,
    scan_s: Vec<f64>,
    scan_unsealed_s: Vec<f64>,
    scan_parquet_s: Vec<f64>,
}

impl Lane {
    fn new(
        root: &std::path::Path,
        threads: usize,
        block_size: usize,
        memory_budget: usize,
        batches: &[RecordBatch],
    ) -> CliResult<Self> {
        let dir = root.join(format!("threads-{threads}"));
        let cluster = lane_cluster(&dir.join("sealed"), threads, block_size, memory_budget, None)?;
        let no_seal = BlockCipher(&crate::noseal::NO_SEAL);
        let unsealed = lane_cluster(&dir.join("unsealed"), threads, block_size, memory_budget, Some(no_seal))?;
        // Warm-up of both pipelines (threads, allocator, file system) on a little data.
        let few = &batches[..batches.len().min(2)];
        for c in [&cluster, &unsealed] {
            c.database("dev")?.load(
                "warm_up",
                Some(((*lineitem_schema()).clone(), Distribution::Even)),
                few.iter().cloned().map(Ok),
            )?;
            c.drop_database("dev")?;
        }
        let parquet = ParquetLane::new().map_err(fail)?;
        parquet
            .write(&dir.join("parquet-warm-up"), few, threads)
            .map_err(fail)?;
        std::fs::remove_dir_all(dir.join("parquet-warm-up"))?;
        Ok(Self {
            threads,
            dir,
            cluster,
            unsealed,
            parquet,
            kept: None,
            parquet_files: Vec::new(),
            write_s: Vec::new(),
            write_unsealed_s: Vec::new(),
            write_parquet_s: Vec::new(),
            scan_s: Vec::new(),
            scan_unsealed_s: Vec::new(),
            scan_parquet_s: Vec::new(),
        })
    }

    /// One sealed and one unsealed load of the same batches into a new database (fresh slice
    /// files) of each cluster, and one write of them as encrypted Parquet files, in an order
    /// that rotates from round to round (none always runs on another's heels); then the
    /// previous round's databases and files are dropped, so freeing (and discarding) their
    /// blocks happens outside every timed section.
    fn write_round(&mut self, round: usize, batches: &[RecordBatch]) -> CliResult {
        let name = format!("round{round}");
        for pipeline in order(round) {
            if pipeline == Pipeline::Parquet {
                let start = Instant::now();
                let files = self
                    .parquet
                    .write(&self.dir.join(format!("parquet-{name}")), batches, self.threads)
                    .map_err(fail)?;
                self.write_parquet_s.push(start.elapsed().as_secs_f64());
                if let Some(old) = std::mem::replace(&mut self.parquet_files, files).first() {
                    std::fs::remove_dir_all(old.parent().expect("a file in a directory"))?;
                }
                continue;
            }
            let sealed = pipeline == Pipeline::Sealed;
            let cluster = if sealed { &self.cluster } else { &self.unsealed };
            let db = cluster.create_database(&name)?;
            let start = Instant::now();
            db.load(
                "lineitem",
                Some(((*lineitem_schema()).clone(), Distribution::Even)),
                batches.iter().cloned().map(Ok),
            )?;
            let seconds = start.elapsed().as_secs_f64();
            if sealed {
                self.write_s.push(seconds);
            } else {
                self.write_unsealed_s.push(seconds);
            }
        }
        if let Some(old_db) = self.kept.replace(name) {
            self.cluster.drop_database(&old_db)?;
            self.unsealed.drop_database(&old_db)?;
            std::fs::File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// One full scan of the sealed and of the unsealed table and of the Parquet files (page
    /// cache), in rotating order.
    fn scan_round(&mut self, round: usize, rows: usize) -> CliResult {
        let name = self.kept.as_ref().ok_or_else(|| fail("no write runs"))?;
        for pipeline in order(round) {
            if pipeline == Pipeline::Parquet {
                let start = Instant::now();
                let scanned = self.parquet.scan(&self.parquet_files).map_err(fail)?;
                self.scan_parquet_s.push(start.elapsed().as_secs_f64());
                if scanned != rows as u64 {
                    return Err(fail(format!("parquet scan returned {scanned} rows, expected {rows}")));
                }
                continue;
            }
            let sealed = pipeline == Pipeline::Sealed;
            let cluster = if sealed { &self.cluster } else { &self.unsealed };
            let db = cluster.database(name)?;
            let start = Instant::now();
            let mut scanned = 0;
            for b in db.scan("lineitem").run()? {
                scanned += b?.num_rows() as u64;
            }
            let seconds = start.elapsed().as_secs_f64();
            if sealed {
                self.scan_s.push(seconds);
            } else {
                self.scan_unsealed_s.push(seconds);
            }
            if scanned != rows as u64 {
                let what = if sealed { "sealed" } else { "unsealed" };
                return Err(fail(format!("{what} scan returned {scanned} rows, expected {rows}")));
            }
        }
        Ok(())
    }
}

/// A lane's cluster: its own key store and master key under `dir`, blocks sealed by
/// `block_cipher` (AES-256-GCM when `None`).
fn lane_cluster(
    dir: &Path,
    threads: usize,
    block_size: usize,
    memory_budget: usize,
    block_cipher: Option<BlockCipher>,
) -> CliResult<Cluster> {
    let options = InitOptions {
        threads: Some(threads),
        block_size,
        master_key: Some(dir.join("keys/master.key")),
        keystore: Some(dir.join("keys/keystore")),
        block_cipher,
        ..Default::default()
    };
    let cluster = Cluster::init(&dir.join("data"), options)?;
    cluster.set_memory_budget(memory_budget);
    Ok(cluster)
}

/// The median of timings (the mean of the middle two for an even count): robust against a
/// stall in one round and against one lucky round alike.
fn median(times: &[f64]) -> f64 {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    match t.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => t[n / 2],
        n => (t[n / 2 - 1] + t[n / 2]) / 2.0,
    }
}

/// The order of the pipelines in a round: rotated by one each round.
fn order(round: usize) -> [Pipeline; 3] {
    let mut all = [Pipeline::Sealed, Pipeline::Unsealed, Pipeline::Parquet];
    all.rotate_left(round % 3);
    all
}

/// What `sealstore bench` runs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Lineitem-like rows loaded per round.
    pub rows: usize,
    /// Worker threads (also measured against 1 thread; default: available cores).
    pub threads: Option<usize>,
    /// Print one JSON object instead of text.
    pub json: bool,
    /// Directory for the bench's files (default: a temporary directory).
    pub dir: Option<PathBuf>,
    pub block_size: usize,
    /// In-flight memory budget of a load, in bytes.
    pub memory_budget: usize,
}

/// Runs the bench and prints its report (human-readable, or one JSON object with `json`).
pub fn run(options: &BenchOptions) -> CliResult {
    let BenchOptions {
        rows,
        threads,
        json,
        ref dir,
        block_size,
        memory_budget,
    } = *options;
    if rows == 0 {
        return Err(BenchError::Usage("--rows must be at least 1".into()));
    }
    let max_threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    if max_threads == 0 || max_threads > 1024 {
        return Err(BenchError::Usage("--threads must be between 1 and 1024".into()));
    }
    let _temp;
    let root = match dir {
        Some(d) => d.clone(),
        None => {
            _temp = tempfile::Builder::new().prefix("sealstore-bench-").tempdir()?;
            _temp.path().to_owned()
        }
    };
    let batches: Vec<RecordBatch> = Lineitem::new(rows, 42).collect();
    let input: usize = batches.iter().map(arrow_bytes).sum();
    let mb = input as f64 / 1e6;
    let mut counts = vec![1];
    if max_threads > 1 {
        counts.push(max_threads);
    }
    let mut lanes = counts
        .iter()
        .map(|&t| Lane::new(&root, t, block_size, memory_budget, &batches))
        .collect::<CliResult<Vec<_>>>()?;
    // Rounds alternate sealed and unsealed, and every thread count, so that drift of the
    // machine (other tenants, the page cache, the disk) hits every figure alike; the median
    // time of each is reported.
    for round in 0..WRITE_RUNS {
        for lane in &mut lanes {
            lane.write_round(round, &batches)?;
        }
    }
    for round in 0..SCAN_RUNS {
        for lane in &mut lanes {
            lane.scan_round(round, rows)?;
        }
    }
    let mut runs = Vec::new();
    let mut parquet_bytes = 0;
    let mut disk_bytes = 0;
    let mut blocks = 0;
    let mut selective = (0, 0);
    let mut date_scan = (0u64, ScanCounts::default(), f64::NAN);
    let (day_lo, day_hi) = one_percent_of_shipdates(&batches)?;
    for lane in lanes {
        let name = lane.kept.as_ref().ok_or_else(|| fail("no write runs"))?;
        let db = lane.cluster.database(name)?;
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
        let mut times = Vec::new();
        for _ in 0..DATE_SCAN_RUNS {
            let stats = Arc::new(ScanStats::default());
            let start = Instant::now();
            let mut rows_out = 0u64;
            for b in db
                .scan("lineitem")
                .filter(Predicate::between(
                    "l_shipdate",
                    Scalar::Int(day_lo),
                    Scalar::Int(day_hi),
                ))
                .filter(Predicate::compare("l_quantity", CmpOp::Le, Scalar::Int(25)))
                .stats(stats.clone())
                .run()?
            {
                rows_out += b?.num_rows() as u64;
            }
            times.push(start.elapsed().as_secs_f64());
            date_scan = (rows_out, stats.counts(), median(&lane.scan_s) / median(&times));
        }
        parquet_bytes = crate::parquet_lane::files_bytes(&lane.parquet_files);
        let start = Instant::now();
        let rekeyed = db.rekey(None, sealstore_cluster::REKEY_BATCH_BLOCKS, &|_, _| {})?;
        let rekey_s = start.elapsed().as_secs_f64();
        if rekeyed.blocks != blocks {
            return Err(fail(format!("re-key re-sealed {} of {blocks} blocks", rekeyed.blocks)));
        }
        drop(db);
        let t = lane.threads;
        runs.push(Run {
            threads: t,
            write_mb_s: mb / median(&lane.write_s),
            write_rows_s: rows as f64 / median(&lane.write_s),
            scan_rows_s: rows as f64 / median(&lane.scan_s),
            rekey_mb_s: mb / rekey_s,
            scan_mb_s: mb / median(&lane.scan_s),
            write_unsealed_mb_s: mb / median(&lane.write_unsealed_s),
            scan_unsealed_mb_s: mb / median(&lane.scan_unsealed_s),
            write_parquet_mb_s: mb / median(&lane.write_parquet_s),
            scan_parquet_mb_s: mb / median(&lane.scan_parquet_s),
            write_rounds_s: lane.write_s.clone(),
            write_unsealed_rounds_s: lane.write_unsealed_s.clone(),
            write_parquet_rounds_s: lane.write_parquet_s.clone(),
            scan_rounds_s: lane.scan_s.clone(),
            scan_unsealed_rounds_s: lane.scan_unsealed_s.clone(),
            scan_parquet_rounds_s: lane.scan_parquet_s.clone(),
        });
        drop(lane.cluster);
        drop(lane.unsealed);
        let _ = std::fs::remove_dir_all(&lane.dir);
    }
    let (seal, open) = sealstore_keyring::aead::throughput(sealstore_keyring::aead::default_backend(), 0.5);
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
        write_parquet_mb_s: last.write_parquet_mb_s,
        scan_parquet_mb_s: last.scan_parquet_mb_s,
        write_vs_parquet: last.write_mb_s / last.write_parquet_mb_s,
        scan_vs_parquet: last.scan_mb_s / last.scan_parquet_mb_s,
        parquet_bytes,
        disk_vs_parquet: disk_bytes as f64 / parquet_bytes as f64,
        rekey_ratio: last.rekey_mb_s / last.write_mb_s,
        aead_seal_gb_s: seal,
        aead_open_gb_s: open,
        disk_bytes,
        blocks,
        write_scaling: last.write_mb_s / first.write_mb_s,
        scan_scaling: last.scan_mb_s / first.scan_mb_s,
        selective_blocks_read: selective.0,
        selective_blocks_total: selective.1,
        date_scan_rows: date_scan.0,
        date_scan_blocks_read: date_scan.1.blocks_read,
        date_scan_blocks_total: date_scan.1.blocks_total,
        date_scan_pages_decoded: date_scan.1.pages_decoded,
        date_scan_speedup: date_scan.2,
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
                "  threads {}: encrypted Parquet write {:.0} MB/s, scan {:.0} MB/s; sealstore over it: write {:.2}x, scan {:.2}x",
                r.threads,
                r.write_parquet_mb_s,
                r.scan_parquet_mb_s,
                r.write_mb_s / r.write_parquet_mb_s,
                r.scan_mb_s / r.scan_parquet_mb_s
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
            "  on disk: {disk_bytes} bytes in {blocks} blocks ({:.1} bytes/row); encrypted Parquet {parquet_bytes} bytes ({:.2}x)",
            disk_bytes as f64 / rows as f64,
            report.disk_vs_parquet
        );
        println!(
            "  selective scan (1% of l_orderkey): read {} of {} blocks",
            selective.0, selective.1
        );
        println!(
            "  selective scan (1% of l_shipdate and l_quantity <= 25, every column): {} rows, {} of {} blocks decrypted, {} pages decoded, {:.1}x faster than the full scan",
            report.date_scan_rows,
            report.date_scan_blocks_read,
            report.date_scan_blocks_total,
            report.date_scan_pages_decoded,
            report.date_scan_speedup
        );
    }
    Ok(())
}

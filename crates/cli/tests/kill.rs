//! Crash consistency with real process kills: a child `sealstore load` is SIGKILLed at random
//! moments, over and over; after each kill the parent reopens the cluster and checks that every
//! acknowledged load is present, no load is partly visible, and `verify` is clean.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: usize = 200;
const ROWS_PER_LOAD: u64 = 400;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealstore"));
    c.env_remove("RUST_BACKTRACE");
    c
}

/// A small deterministic RNG for kill delays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn write_csv(path: &Path) {
    let mut text = String::from("id,name,amount\n");
    for i in 0..ROWS_PER_LOAD {
        text.push_str(&format!("{i},name-{},{}.{:02}\n", i % 13, i * 7 % 1000, i % 100));
    }
    std::fs::write(path, text).unwrap();
}

fn row_count(data: &Path) -> u64 {
    let cluster = sealstore_cluster_open(data);
    let db = cluster.database("dev").unwrap();
    let rows = if db.tables().iter().any(|t| t == "t") {
        db.row_count("t").unwrap()
    } else {
        0
    };
    let report = cluster.verify();
    assert!(
        report.ok(),
        "verify after a kill: {:?} {:?} {:?}",
        report.blocks,
        report.databases,
        report.audit
    );
    if rows > 0 {
        let scanned: usize = db.scan("t").run().unwrap().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(scanned as u64, rows, "scan and manifest agree");
    }
    rows
}

fn sealstore_cluster_open(data: &Path) -> sealstore_cluster::Cluster {
    sealstore_cluster::Cluster::open(data, sealstore_cluster::OpenOptions::with_threads(1)).unwrap()
}

#[test]
fn sigkill_at_random_moments_never_loses_or_tears_a_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv);
    let out = bin()
        .args(["init", data.to_str().unwrap(), "--block-size", "64KiB"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut acknowledged = 0u64;
    let (mut killed, mut completed, mut committed_then_killed) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    // Measure one undisturbed load to aim the kills inside it.
    let t = Instant::now();
    let ok = bin()
        .args(["load", data.to_str().unwrap(), "t", csv.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    acknowledged += ROWS_PER_LOAD;
    let load_micros = t.elapsed().as_micros().max(1000) as u64;
    while killed < KILLS && started.elapsed() < Duration::from_secs(240) {
        let mut child = bin()
            .args(["load", data.to_str().unwrap(), "t", csv.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.next() % (load_micros * 12 / 10)));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "an undisturbed load failed");
                acknowledged += ROWS_PER_LOAD;
                completed += 1;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                let status = child.wait().unwrap();
                if status.success() {
                    acknowledged += ROWS_PER_LOAD; // it finished before the signal landed
                    completed += 1;
                } else {
                    killed += 1;
                }
            }
        }
        let rows = row_count(&data);
        assert_eq!(rows % ROWS_PER_LOAD, 0, "a load is partly visible: {rows} rows");
        assert!(
            rows >= acknowledged,
            "an acknowledged load was lost: {rows} < {acknowledged}"
        );
        assert!(rows <= acknowledged + ROWS_PER_LOAD, "more rows than loads: {rows}");
        // A killed load that reached its commit point counts as done.
        if rows > acknowledged {
            committed_then_killed += 1;
        }
        acknowledged = rows;
    }
    eprintln!(
        "survived {killed} SIGKILLs ({committed_then_killed} after their commit point, {completed} loads completed) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed >= KILLS,
        "only {killed} kills landed inside a load in the time budget"
    );
}

/// (rows, sum of ids) of table `t`, after checking the cluster opens and verifies.
fn content(data: &Path) -> (u64, i64) {
    let cluster = sealstore_cluster_open(data);
    let report = cluster.verify();
    assert!(
        report.ok(),
        "verify after a kill: {:?} {:?}",
        report.blocks,
        report.databases
    );
    let db = cluster.database("dev").unwrap();
    let mut out = (0, 0);
    for b in db.scan("t").columns(&["id"]).run().unwrap() {
        let b = b.unwrap();
        let ids = b.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
        out.0 += b.num_rows() as u64;
        out.1 += ids.values().iter().sum::<i64>();
    }
    out
}

#[test]
fn sigkill_during_key_rotation_and_rekey_never_loses_data_or_keys() {
    const KILLS_EACH: usize = 60;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let csv = tmp.path().join("rows.csv");
    write_csv(&csv);
    let init = bin().args(["init", d, "--block-size", "64KiB"]).output().unwrap();
    assert!(init.status.success());
    for _ in 0..3 {
        let load = bin().args(["load", d, "t", csv.to_str().unwrap()]).output().unwrap();
        assert!(load.status.success());
    }
    let want = content(&data);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let started = Instant::now();
    for (command, extra) in [("rotate", &[][..]), ("rotate", &["--all"][..]), ("rekey", &[][..])] {
        let args: Vec<&str> = [command, d].iter().copied().chain(extra.iter().copied()).collect();
        let t = Instant::now();
        let ok = bin().args(&args).stdout(Stdio::null()).status().unwrap();
        assert!(ok.success(), "{args:?}");
        let micros = t.elapsed().as_micros().max(1000) as u64;
        let mut killed = 0;
        while killed < KILLS_EACH && started.elapsed() < Duration::from_secs(240) {
            let mut child = bin()
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_micros(rng.next() % micros));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                if !child.wait().unwrap().success() {
                    killed += 1;
                }
            }
            assert_eq!(content(&data), want, "{args:?}: data changed after a kill");
        }
        assert_eq!(
            killed, KILLS_EACH,
            "{args:?}: not enough kills landed in the time budget"
        );
        eprintln!("survived {killed} SIGKILLs during `{}`", args.join(" "));
    }
    // An interrupted re-key finishes when run again; everything still reads and verifies.
    let ok = bin().args(["rekey", d]).stdout(Stdio::null()).status().unwrap();
    assert!(ok.success());
    assert_eq!(content(&data), want);
}

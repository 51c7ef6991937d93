//! Read snapshots and write transactions: readers see whole commits only and never wait for a
//! writer; several tables commit atomically, across a crash at every step of the protocol.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use arrow_array::{Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use sealstore_cluster::{Cluster, CrashPoint, Database, Distribution, Error, InitOptions, ReadSnapshot};

/// Rows per committed batch: every table's row count is a multiple of it at every commit.
const BATCH: usize = 1_000;

fn init(dir: &std::path::Path) -> Cluster {
    let options = InitOptions {
        // The smallest blocks: every small append rewrites partial blocks copy-on-write, so freed
        // slots and DEKs come up for reuse at once.
        block_size: 64 << 10,
        threads: Some(2),
        cluster_id: Some("txn-test".into()),
        ..Default::default()
    };
    Cluster::init(&dir.join("data"), options).unwrap()
}

fn reopen(dir: &std::path::Path) -> Cluster {
    Cluster::open(&dir.join("data"), sealstore_cluster::OpenOptions::with_threads(2)).unwrap()
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ])
}

/// Commit number `n`'s batch: keys `n*BATCH..`, every value `n`.
fn batch(n: u64) -> RecordBatch {
    let k = Int64Array::from_iter_values((0..BATCH as i64).map(|i| n as i64 * BATCH as i64 + i));
    let v = Int64Array::from_iter_values(std::iter::repeat_n(n as i64, BATCH));
    RecordBatch::try_new(Arc::new(schema()), vec![Arc::new(k), Arc::new(v)]).unwrap()
}

/// (rows, sum of v) of a table at a snapshot.
fn digest(snapshot: &ReadSnapshot, table: &str) -> sealstore_cluster::Result<(u64, i64)> {
    let (mut rows, mut sum) = (0u64, 0i64);
    for b in snapshot.scan(table).columns(&["v"]).run()? {
        let b = b?;
        let v = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        rows += v.len() as u64;
        sum += v.values().iter().sum::<i64>();
    }
    Ok((rows, sum))
}

/// The digest a table holding batches `0..n` must have.
fn model(n: u64) -> (u64, i64) {
    let n = n as i64;
    ((n as u64) * BATCH as u64, BATCH as i64 * n * (n - 1) / 2)
}

fn setup(db: &Database) {
    let mut w = db.begin_write().unwrap();
    w.create_table("a", &schema(), Distribution::Even).unwrap();
    w.create_table("b", &schema(), Distribution::Key("k".into())).unwrap();
    w.commit().unwrap();
}

/// One transaction appending batch `n` to both `a` and `b`.
fn append_both(db: &Database, n: u64) {
    let mut w = db.begin_write().unwrap();
    w.append("a", [batch(n)]).unwrap();
    w.append("b", [batch(n)]).unwrap();
    w.commit().unwrap();
}

#[test]
fn readers_see_whole_commits_of_several_tables_while_a_writer_appends_drops_and_creates() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let db = cluster.database("dev").unwrap();
    setup(&db);
    let commits: u64 = 120;
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let rescans = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (db, done, reads, rescans) = (db.clone(), done.clone(), reads.clone(), rescans.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let snap = db.begin_read();
                    // Counts, schemas and scans of two tables, all at one commit.
                    let rows_a = snap.row_count("a").unwrap();
                    let rows_b = snap.row_count("b").unwrap();
                    assert_eq!(rows_a, rows_b, "a and b commit together");
                    assert_eq!(rows_a % BATCH as u64, 0, "a whole number of batches");
                    assert_eq!(snap.schema("a").unwrap().fields().len(), 2);
                    let n = rows_a / BATCH as u64;
                    let da = digest(&snap, "a").unwrap();
                    assert_eq!(da, model(n), "scan of a at generation {}", snap.generation());
                    assert_eq!(digest(&snap, "b").unwrap(), model(n));
                    // The dropped-and-recreated table: whole or gone, never half.
                    if snap.tables().iter().any(|t| t == "c") {
                        match digest(&snap, "c") {
                            Ok((rows, _)) => assert_eq!(rows, snap.row_count("c").unwrap()),
                            Err(Error::Store(e)) if e.to_string().contains("dropped") => {}
                            Err(e) => panic!("scan of c: {e}"),
                        }
                    }
                    // Hold the snapshot across later commits, then read it again: its slots and
                    // DEKs were not reused meanwhile.
                    let generation = snap.generation();
                    while db.generation() < generation + 2 && !done.load(Ordering::Relaxed) {
                        std::thread::yield_now();
                    }
                    assert_eq!(digest(&snap, "a").unwrap(), da, "a held snapshot reads the same");
                    rescans.fetch_add(1, Ordering::Relaxed);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for n in 0..commits {
        append_both(&db, n);
        if n % 10 == 0 {
            if db.tables().iter().any(|t| t == "c") {
                db.drop_table("c").unwrap();
            } else {
                let mut w = db.begin_write().unwrap();
                w.create_table("c", &schema(), Distribution::Even).unwrap();
                w.append("c", [batch(n)]).unwrap();
                w.commit().unwrap();
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) >= 3, "readers ran");
    assert!(rescans.load(Ordering::Relaxed) >= 3, "held snapshots were read again");
    assert_eq!(digest(&db.begin_read(), "a").unwrap(), model(commits));
    assert!(db.verify().is_empty());
    drop(db);
    drop(cluster);
    let cluster = reopen(dir.path());
    let db = cluster.database("dev").unwrap();
    assert_eq!(digest(&db.begin_read(), "b").unwrap(), model(commits));
    assert!(cluster.verify().ok());
}

/// Interleavings of snapshot reads with commits: a stress loop, thousands of reads against a
/// writer committing small appends, each read checked against the model.
#[test]
fn thousands_of_interleaved_reads_and_small_commits_never_see_half_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let db = cluster.database("dev").unwrap();
    setup(&db);
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (db, done, reads) = (db.clone(), done.clone(), reads.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                let snap = db.begin_read();
                let rows = snap.row_count("a").unwrap();
                assert_eq!(rows, snap.row_count("b").unwrap());
                assert!(snap.generation() >= last, "generations never go back");
                last = snap.generation();
                let per_slice: u64 = snap.rows_per_slice("a").unwrap().iter().sum();
                assert_eq!(per_slice, rows, "every slice at the same commit");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut n = 0;
    while reads.load(Ordering::Relaxed) < 3_000 || n < 50 {
        append_both(&db, n);
        n += 1;
    }
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(digest(&db.begin_read(), "a").unwrap(), model(n));
}

#[test]
fn a_scan_started_mid_load_finishes_before_the_load_does() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let db = cluster.database("dev").unwrap();
    setup(&db);
    append_both(&db, 0);
    let started = Arc::new(Barrier::new(2));
    let (scanned_tx, scanned_rx) = crossbeam_channel::bounded::<(u64, i64)>(1);
    let loader = {
        let (db, started) = (db.clone(), started.clone());
        std::thread::spawn(move || {
            // The load's input: some batches, then it waits for the reader's scan to finish
            // before handing over the rest. A reader that waited for the load would never let
            // it finish; the timeout turns that deadlock into a failure.
            let mut sent = 0u64;
            let input = std::iter::from_fn(move || {
                sent += 1;
                match sent {
                    1..=5 => Some(Ok(batch(sent))),
                    6 => {
                        started.wait();
                        let scanned = scanned_rx
                            .recv_timeout(Duration::from_secs(120))
                            .expect("the scan finished while the load was running");
                        Some(Ok(batch(100 + scanned.0 / BATCH as u64)))
                    }
                    _ => None,
                }
            });
            db.load("a", None, input).unwrap()
        })
    };
    started.wait();
    // The load holds the writer and has sealed blocks on every slice: this read must not wait.
    let snap = db.begin_read();
    let scanned = digest(&snap, "a").unwrap();
    assert_eq!(
        scanned,
        model(1),
        "the scan sees the last commit, none of the running load"
    );
    assert_eq!(db.row_count("a").unwrap(), BATCH as u64);
    assert!(!loader.is_finished(), "the load is still running");
    scanned_tx.send(scanned).unwrap();
    let report = loader.join().unwrap();
    assert_eq!(report.rows, 6 * BATCH as u64);
    assert_eq!(db.row_count("a").unwrap(), 7 * BATCH as u64);
}

#[test]
fn a_transaction_over_two_tables_survives_a_crash_at_every_step_as_all_or_nothing() {
    for point in [
        CrashPoint::SlicesPrepared,
        CrashPoint::DeksCommitted,
        CrashPoint::ManifestsWritten,
        CrashPoint::CommitRecordWritten,
        CrashPoint::SlicesInstalled,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = init(dir.path());
        let db = cluster.database("dev").unwrap();
        setup(&db);
        append_both(&db, 0);
        let deks = db.keys().len();
        db.inject_crash(Some(point));
        let mut w = db.begin_write().unwrap();
        w.append("a", [batch(1)]).unwrap();
        w.append("b", [batch(1), batch(2)]).unwrap();
        w.create_table("c", &schema(), Distribution::All).unwrap();
        w.append("c", [batch(3)]).unwrap();
        assert!(w.commit().is_err(), "{point:?}");
        drop(db);
        drop(cluster);
        let cluster = reopen(dir.path());
        let db = cluster.database("dev").unwrap();
        let snap = db.begin_read();
        let committed = matches!(point, CrashPoint::CommitRecordWritten | CrashPoint::SlicesInstalled);
        if committed {
            assert_eq!(digest(&snap, "a").unwrap(), model(2), "{point:?}");
            assert_eq!(digest(&snap, "b").unwrap(), model(3), "{point:?}");
            assert_eq!(
                digest(&snap, "c").unwrap(),
                (BATCH as u64, 3 * BATCH as i64),
                "{point:?}"
            );
        } else {
            assert_eq!(digest(&snap, "a").unwrap(), model(1), "{point:?}");
            assert_eq!(digest(&snap, "b").unwrap(), model(1), "{point:?}");
            assert!(!snap.tables().contains(&"c".to_owned()), "{point:?}");
            assert_eq!(
                db.keys().len(),
                deks,
                "{point:?}: the lost commit's DEKs were reclaimed"
            );
        }
        assert!(cluster.verify().ok(), "{point:?}");
        // Writing goes on.
        append_both(&db, 9);
        assert_eq!(
            db.row_count("a").unwrap(),
            db.row_count("b").unwrap() - u64::from(committed) * BATCH as u64
        );
    }
}

#[test]
fn an_aborted_transaction_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let db = cluster.database("dev").unwrap();
    setup(&db);
    append_both(&db, 0);
    let (generation, deks) = (db.generation(), db.keys().len());
    let before = digest(&db.begin_read(), "a").unwrap();
    {
        let mut w = db.begin_write().unwrap();
        w.append("a", (1..20).map(batch)).unwrap();
        w.create_table("gone", &schema(), Distribution::Even).unwrap();
        w.drop_table("b").unwrap();
        assert_eq!(w.tables(), vec!["a".to_owned(), "gone".to_owned()]);
        // Dropped here without commit.
    }
    assert_eq!(db.generation(), generation);
    assert_eq!(db.keys().len(), deks, "no DEK of the aborted transaction remains");
    assert_eq!(digest(&db.begin_read(), "a").unwrap(), before);
    assert_eq!(db.tables(), vec!["a".to_owned(), "b".to_owned()]);
    append_both(&db, 1);
    drop(db);
    drop(cluster);
    let cluster = reopen(dir.path());
    let db = cluster.database("dev").unwrap();
    assert_eq!(digest(&db.begin_read(), "a").unwrap(), model(2));
    assert!(cluster.verify().ok());
}

#[test]
fn a_failed_append_makes_the_transaction_commit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let db = cluster.database("dev").unwrap();
    setup(&db);
    let mut w = db.begin_write().unwrap();
    w.append("a", [batch(0)]).unwrap();
    let input = vec![Ok(batch(1)), Err(Error::Input("line 7: not a number".into()))];
    assert!(w.append_stream("b", input).is_err());
    assert!(matches!(w.append("a", [batch(2)]), Err(Error::TransactionFailed)));
    assert!(matches!(w.commit(), Err(Error::TransactionFailed)));
    assert_eq!(db.row_count("a").unwrap(), 0);
    assert_eq!(db.row_count("b").unwrap(), 0);
}

#[test]
fn one_writer_at_a_time_try_begin_write_refuses_and_begin_write_waits() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let db = cluster.database("dev").unwrap();
    setup(&db);
    let mut first = db.begin_write().unwrap();
    first.append("a", [batch(0)]).unwrap();
    assert!(matches!(db.try_begin_write(), Err(Error::WriteConflict { .. })));
    let waiter = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut w = db.begin_write().unwrap();
            // It starts only after the first committed, so it sees its rows.
            let rows = db.row_count("a").unwrap();
            w.append("a", [batch(1)]).unwrap();
            w.commit().unwrap();
            rows
        })
    };
    // Reads go on while both writers exist.
    assert_eq!(db.row_count("a").unwrap(), 0);
    first.commit().unwrap();
    assert_eq!(waiter.join().unwrap(), BATCH as u64);
    assert_eq!(digest(&db.begin_read(), "a").unwrap(), model(2));
}

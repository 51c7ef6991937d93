//! I/O fault injection through the keyring's I/O seam: at every write or sync of a load, a
//! database-key rotation and a re-key, the disk fails (EIO on write, EIO on fsync, ENOSPC, torn
//! write). Each time the operation returns a clear error, the database shows its last commit
//! (the old state, or the new one when the fault hit after the commit point), and once the fault
//! clears, writing continues; a reopen agrees and `verify` is clean.
//!
//! Faults are process-wide, so this binary holds exactly one test.
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use sealstore_cluster::{Cluster, Database, Distribution, InitOptions};
use sealstore_keyring::faults::{self, Fault};
use std::sync::Arc;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::Utf8, true),
    ])
}

fn batch(start: i64, rows: i64) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(schema()),
        vec![
            Arc::new(Int64Array::from_iter_values(start..start + rows)),
            Arc::new(StringArray::from_iter_values(
                (start..start + rows).map(|i| format!("row {i}")),
            )),
        ],
    )
    .unwrap()
}

/// Sum of ids over a full scan (so the content is checked, not just the count).
fn checksum(db: &Database) -> (u64, i64) {
    let mut rows = 0;
    let mut sum = 0;
    for b in db.scan("t").columns(&["id"]).run().unwrap() {
        let b = b.unwrap();
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        rows += b.num_rows() as u64;
        sum += ids.values().iter().sum::<i64>();
    }
    (rows, sum)
}

fn expect_clear_io_error(e: &sealstore_cluster::Error, fault: Fault) {
    let msg = e.to_string();
    let wanted = match fault {
        Fault::NoSpace => "No space left on device",
        _ => "Input/output error",
    };
    // A failed fsync of a directory after a rename reports the replacement as not durable.
    let io = msg.contains("I/O error on") || msg.contains("was replaced, but making the replacement durable failed");
    assert!(io && msg.contains(wanted), "{fault:?}: {msg}");
    assert_eq!(msg.lines().count(), 1, "{msg}");
}

/// Fails `op` at every I/O point in turn until it goes through; after each failure the data
/// must read exactly as before. Returns how many points failed.
fn sweep_unchanged(
    fault: Fault,
    what: &str,
    db: &Database,
    state: (u64, i64),
    mut op: impl FnMut() -> sealstore_cluster::Result<()>,
) -> u64 {
    for skip in 0.. {
        faults::inject(fault, skip);
        let result = op();
        faults::clear();
        assert_eq!(checksum(db), state, "{fault:?} at {skip}: {what} changed data");
        match result {
            Ok(()) => {
                assert!(skip >= 2, "{fault:?}: {what} went through only {skip} fault points");
                return skip;
            }
            Err(e) => expect_clear_io_error(&e, fault),
        }
    }
    unreachable!("the sweep ends when the operation goes through")
}

#[test]
fn io_faults_at_every_point_leave_the_last_commit_and_writing_continues() {
    const ROWS: i64 = 3_000;
    for fault in [Fault::WriteError, Fault::FsyncError, Fault::NoSpace, Fault::TornWrite] {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            nodes: 1,
            slices_per_node: 2,
            block_size: 64 << 10,
            threads: Some(2),
            ..Default::default()
        };
        let data = dir.path().join("data");
        let cluster = Cluster::init(&data, options).unwrap();
        let db = cluster.database("dev").unwrap();
        db.create_table("t", &schema(), Distribution::Even).unwrap();
        let mut next_id = 0;
        db.append("t", [batch(next_id, ROWS)]).unwrap();
        next_id += ROWS;
        let mut state = checksum(&db);
        let added = |from: i64| (ROWS as u64, (from..from + ROWS).sum::<i64>());

        // A load, failing at each write/sync in turn.
        let mut points = 0;
        let mut lagged = 0;
        let bound = || cluster.keyring().bound_generation("dev").unwrap();
        for skip in 0.. {
            faults::inject(fault, skip);
            let result = db.append("t", [batch(next_id, ROWS)]);
            faults::clear();
            let (rows, sum) = added(next_id);
            let grown = (state.0 + rows, state.1 + sum);
            next_id += ROWS;
            match result {
                Ok(_) => {
                    assert_eq!(checksum(&db), grown);
                    state = grown;
                    break;
                }
                Err(e) => {
                    expect_clear_io_error(&e, fault);
                    let now = checksum(&db);
                    assert!(
                        now == state || now == grown,
                        "{fault:?} at {skip}: partial commit visible"
                    );
                    state = now;
                    // A fault past the commit point can leave the rollback binding behind.
                    assert!(bound() <= db.generation());
                    lagged += usize::from(bound() < db.generation());
                }
            }
            points += 1;
            // The fault cleared: the next load works, and it first brings the binding up to
            // date (no commit goes in while the binding lags).
            let before = db.generation();
            db.append("t", [batch(next_id, ROWS)]).unwrap();
            assert_eq!(db.generation(), before + 1);
            assert_eq!(
                bound(),
                db.generation(),
                "{fault:?} at {skip}: binding did not catch up"
            );
            let (rows, sum) = added(next_id);
            next_id += ROWS;
            state = (state.0 + rows, state.1 + sum);
            assert_eq!(checksum(&db), state, "{fault:?} at {skip}");
        }
        assert!(points > 5, "{fault:?}: a load went through only {points} fault points");
        if fault != Fault::FsyncError {
            assert!(lagged > 0, "{fault:?}: no fault point hit the binding");
        }
        let load_points = points;

        // A database-key rotation, then a re-key (resumed each time), failing at each write/sync
        // in turn; neither may change what a scan returns.
        let rotation_points = sweep_unchanged(fault, "a rotation", &db, state, || db.rotate_key().map(|_| ()));
        let points = sweep_unchanged(fault, "a re-key", &db, state, || {
            db.rekey(None, 2, &|_, _| {}).map(|_| ())
        });
        eprintln!(
            "{fault:?}: failed at {load_points} points of a load, {rotation_points} of a rotation, {points} of a re-key"
        );
        if db.rekey_pending() {
            db.rekey(None, 2, &|_, _| {}).unwrap();
        }

        let report = cluster.verify();
        assert!(report.ok(), "{fault:?}: {report:?}");
        drop(db);
        drop(cluster);
        let cluster = Cluster::open(&data, sealstore_cluster::OpenOptions::with_threads(2)).unwrap();
        let db = cluster.database("dev").unwrap();
        assert_eq!(checksum(&db), state, "{fault:?}: reopen disagrees");
        assert!(cluster.verify().ok(), "{fault:?}");
        db.append("t", [batch(next_id, ROWS)]).unwrap();
    }
}

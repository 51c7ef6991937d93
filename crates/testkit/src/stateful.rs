//! The stateful fuzz target's engine: random sequences of create / append / scan / drop /
//! rotate / re-key / reopen, with injected I/O faults, run against a real cluster and checked
//! against an in-memory model after every step. Any divergence or panic is a bug.
//!
//! Faults are process-wide (see `sealstore_keyring::faults`): run one sequence at a time.
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use sealstore_keyring::faults::{self, Fault};

use sealstore_cluster::{Cluster, Database, Distribution, InitOptions};

const TABLES: usize = 3;

fn schema() -> Schema {
    Schema::new(vec![Field::new("v", DataType::Int64, false)])
}

fn table(i: u8) -> String {
    format!("t{}", usize::from(i) % TABLES)
}

/// (rows, sum) of a table as the model holds it.
type Content = (u64, i64);

fn content(db: &Database, name: &str) -> Option<Content> {
    if !db.tables().iter().any(|t| t == name) {
        return None;
    }
    let mut out = (0u64, 0i64);
    for b in db.scan(name).run().expect("scan starts") {
        let b = b.expect("every committed block reads back");
        let v = b.column(0).as_any().downcast_ref::<Int64Array>().expect("int64");
        out.0 += b.num_rows() as u64;
        out.1 = out
            .1
            .wrapping_add(v.values().iter().fold(0i64, |a, x| a.wrapping_add(*x)));
    }
    Some(out)
}

fn open(dir: &Path) -> (Cluster, Arc<Database>) {
    let cluster =
        Cluster::open(dir, sealstore_cluster::OpenOptions::with_threads(1)).expect("a committed cluster reopens");
    let db = cluster.database("dev").expect("the database reopens");
    (cluster, db)
}

/// Runs the operation sequence `bytes` describes in a fresh cluster under `dir`.
pub fn run(dir: &Path, bytes: &[u8]) {
    faults::clear();
    let data = dir.join("data");
    let options = InitOptions {
        nodes: 1,
        slices_per_node: 2,
        block_size: 64 << 10,
        threads: Some(1),
        cluster_id: Some("fuzz".into()),
        ..Default::default()
    };
    let cluster = Cluster::init(&data, options).expect("init");
    let db = cluster.database("dev").expect("dev");
    let mut state = Some((cluster, db));
    let mut model: BTreeMap<String, Content> = BTreeMap::new();
    let mut next_value: i64 = 1;
    let mut fault: Option<(Fault, u64)> = None;
    for op in bytes.chunks(3).take(24) {
        let (kind, a, b) = (
            op[0] % 9,
            op.get(1).copied().unwrap_or(0),
            op.get(2).copied().unwrap_or(0),
        );
        if kind == 8 {
            let f = [Fault::WriteError, Fault::FsyncError, Fault::NoSpace, Fault::TornWrite][usize::from(a) % 4];
            fault = Some((f, u64::from(b % 32)));
            continue;
        }
        if let Some((f, skip)) = fault.take() {
            faults::inject(f, skip);
        }
        let (cluster, db) = state.as_ref().expect("open");
        let db = db.clone();
        let name = table(a);
        // What the model holds after the operation if it succeeds.
        let mut after = model.clone();
        let result: sealstore_cluster::Result<()> = match kind {
            0 => {
                after.entry(name.clone()).or_insert((0, 0));
                if model.contains_key(&name) {
                    Ok(())
                } else {
                    db.create_table(&name, &schema(), Distribution::Even)
                }
            }
            1 if model.contains_key(&name) => {
                let rows = usize::from(b) * 37 + 1;
                let values: Vec<i64> = (0..rows as i64).map(|i| next_value + i).collect();
                next_value += rows as i64;
                let sum = values.iter().fold(0i64, |a, x| a.wrapping_add(*x));
                let e = after.get_mut(&name).expect("present");
                *e = (e.0 + rows as u64, e.1.wrapping_add(sum));
                let batch =
                    RecordBatch::try_new(Arc::new(schema()), vec![Arc::new(Int64Array::from(values))]).expect("batch");
                db.append(&name, [batch]).map(|_| ())
            }
            2 => Ok(()),
            3 if model.contains_key(&name) => {
                after.remove(&name);
                db.drop_table(&name)
            }
            4 => db.rotate_key().map(|_| ()),
            5 => cluster.rotate_cluster_key().map(|_| ()),
            6 => db.rekey(None, 2, &|_, _| {}).map(|_| ()),
            7 => {
                faults::clear();
                drop(db);
                drop(state.take()); // releases the key-store lock
                state = Some(open(&data));
                Ok(())
            }
            _ => Ok(()),
        };
        faults::clear();
        let db = state.as_ref().expect("open").1.clone();
        // Every table must now be in the old or the new model state — never anything else.
        let names: std::collections::BTreeSet<String> = model.keys().chain(after.keys()).cloned().collect();
        let mut seen = BTreeMap::new();
        for n in &names {
            if let Some(c) = content(&db, n) {
                seen.insert(n.clone(), c);
            }
        }
        if result.is_ok() {
            assert_eq!(seen, after, "after a successful op {kind}");
            model = after;
        } else {
            assert!(
                seen == model || seen == after,
                "op {kind} failed and left a mixed state: {seen:?}"
            );
            model = seen;
        }
        if kind == 6 && result.is_ok() && db.rekey_pending() {
            panic!("a successful re-key left its state behind");
        }
    }
    // The end state survives a reopen and verifies.
    faults::clear();
    drop(state);
    let (cluster, db) = open(&data);
    if db.rekey_pending() {
        db.rekey(None, 2, &|_, _| {}).expect("a re-key resumes");
    }
    for (n, c) in &model {
        assert_eq!(content(&db, n).as_ref(), Some(c), "table {n} after reopen");
    }
    let report = cluster.verify();
    assert!(report.ok(), "verify after the sequence: {report:?}");
}

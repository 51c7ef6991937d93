//! Bytes on disk: small tables cost about what their data needs, not a full block per column on
//! every slice, and files are never inflated sparse files (apparent size ≈ allocated size).
//! Sizes are deterministic, so these are assertions, not benchmarks.
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use sealstore_cluster::{Cluster, Distribution, InitOptions};

/// Bytes on disk of every file under a directory.
#[derive(Default, Clone, Copy)]
struct Usage {
    allocated: u64,
    apparent: u64,
    files: u64,
}

fn usage(dir: &Path, total: &mut Usage) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let md = entry.metadata().unwrap();
        if md.is_dir() {
            usage(&entry.path(), total);
        } else {
            total.allocated += md.blocks() * 512;
            total.apparent += md.len();
            total.files += 1;
        }
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    keys: std::path::PathBuf,
    cluster: Cluster,
}

/// The default cluster a new user gets (2 nodes × 2 slices, 1 MiB blocks).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cluster = Cluster::init(
        &data,
        InitOptions {
            cluster_id: Some("sizes".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let keys = dir.path().join("data.keys");
    assert!(keys.is_dir(), "the key store sits beside the data directory");
    Fixture {
        _dir: dir,
        data,
        keys,
        cluster,
    }
}

impl Fixture {
    /// Allocated bytes of the data directory and the key store together, after checking that
    /// apparent size may exceed allocated only by the partial filesystem block of each file, and
    /// allocated may exceed apparent only by that much too: no sparse holes, no preallocation.
    fn allocated(&self) -> u64 {
        let mut u = Usage::default();
        usage(&self.data, &mut u);
        usage(&self.keys, &mut u);
        let slack = u.files * 4096;
        assert!(
            u.apparent <= u.allocated + slack && u.allocated <= u.apparent + slack,
            "allocated {} vs apparent {} over {} files",
            u.allocated,
            u.apparent,
            u.files
        );
        u.allocated
    }
}

fn orders_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("customer", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, true),
        Field::new("quantity", DataType::Int64, false),
        Field::new("ordered_at", DataType::Timestamp(TimeUnit::Microsecond, None), false),
    ]))
}

fn orders(start: i64, rows: i64) -> RecordBatch {
    let ids = start..start + rows;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone())),
        Arc::new(StringArray::from_iter_values(
            ids.clone().map(|i| format!("customer-{}", i % 977)),
        )),
        Arc::new(StringArray::from_iter_values(
            ids.clone()
                .map(|i| ["north", "south", "east", "west"][(i % 4) as usize]),
        )),
        Arc::new(Float64Array::from_iter(
            ids.clone()
                .map(|i| (i % 13 != 0).then_some((i * 7919 % 100_000) as f64 / 100.0)),
        )),
        Arc::new(Int64Array::from_iter_values(ids.clone().map(|i| i % 50 + 1))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            ids.map(|i| 1_700_000_000_000_000 + i * 61_000_000),
        )),
    ];
    RecordBatch::try_new(orders_schema(), columns).unwrap()
}

#[test]
fn a_ten_row_table_takes_at_most_256_kib_with_every_metadata_file() {
    let f = fixture();
    let db = f.cluster.database("dev").unwrap();
    db.create_table("orders", &orders_schema(), Distribution::Even).unwrap();
    db.append("orders", [orders(0, 10)]).unwrap();
    let allocated = f.allocated();
    assert!(allocated <= 256 << 10, "{allocated} bytes allocated");
    assert_eq!(db.row_count("orders").unwrap(), 10);
}

#[test]
fn a_ten_thousand_row_table_costs_about_its_encoded_data() {
    let f = fixture();
    let db = f.cluster.database("dev").unwrap();
    let empty = f.allocated();
    db.create_table("orders", &orders_schema(), Distribution::Even).unwrap();
    db.append("orders", [orders(0, 10_000)]).unwrap();
    let allocated = f.allocated();
    // 10,000 rows of six columns encode to roughly 100 KB; a block per column per slice would be
    // 24 MiB.
    assert!(
        allocated - empty <= 512 << 10,
        "{} bytes for the table",
        allocated - empty
    );
}

#[test]
fn a_wide_table_with_few_rows_costs_a_small_slot_per_column() {
    let f = fixture();
    let db = f.cluster.database("dev").unwrap();
    let empty = f.allocated();
    let fields: Vec<Field> = (0..200)
        .map(|i| Field::new(format!("c{i}"), DataType::Int64, true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let columns: Vec<ArrayRef> = (0..200)
        .map(|i| Arc::new(Int64Array::from_iter_values((0..5).map(|r| r * i))) as ArrayRef)
        .collect();
    db.create_table("wide", &schema, Distribution::Even).unwrap();
    db.append("wide", [RecordBatch::try_new(schema, columns).unwrap()])
        .unwrap();
    let allocated = f.allocated();
    // 200 slots of 1 KiB plus a manifest naming 200 columns; 1 MiB blocks would be 200 MiB.
    assert!(
        allocated - empty <= 1 << 20,
        "{} bytes for the table",
        allocated - empty
    );
}

#[test]
fn many_small_appends_do_not_accumulate_space() {
    let f = fixture();
    let db = f.cluster.database("dev").unwrap();
    db.create_table("orders", &orders_schema(), Distribution::Even).unwrap();
    for i in 0..200 {
        db.append("orders", [orders(i * 10, 10)]).unwrap();
    }
    let allocated = f.allocated();
    assert_eq!(db.row_count("orders").unwrap(), 2000);
    // Each append rewrites the partial last blocks copy-on-write; the replaced slots are reused.
    assert!(allocated <= 1 << 20, "{allocated} bytes allocated after 200 appends");
    let rows: usize = db.scan("orders").run().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 2000);
}

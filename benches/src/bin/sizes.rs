//! Bytes on disk of sealed tables next to the same rows as snappy Parquet, in one run.
//!
//! `sizes [--lineitem-rows N] [--flights-rows N] [--flights-csv F] [--dir D] [--only TABLE]
//! [--per-column]`: for each table — the README's
//! 10-row, 6-column orders shape, a year of flight records (336,776 rows × 19 columns, see
//! `flights`; or the real nycflights13 `flights.csv` given as F) and N lineitem rows (default 6,000,000) — a fresh default cluster (2 nodes × 2
//! slices, 1 MiB blocks, local master key) is created in a temporary directory under D (default
//! the current one), the table loaded in one commit, and the data directory plus its key store
//! measured (allocated = `st_blocks` × 512, and apparent = file lengths, every file). The same
//! batches are written with the `parquet` crate's `ArrowWriter` (snappy, default properties)
//! and measured the same way. Prints one JSON object per table (and with `--per-column`, one per
//! column: slot bytes over all slices next to the Parquet column chunks' compressed bytes);
//! `docs/benchmarks.md` has the figures.
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sealstore_benches::flights::{FLIGHTS_ROWS, flights};
use sealstore_cluster::datagen::Lineitem;
use sealstore_cluster::{Cluster, Distribution, InitOptions};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// (allocated, apparent) bytes of every file under `path`.
fn usage(path: &Path) -> (u64, u64) {
    let md = std::fs::symlink_metadata(path).expect("measurable");
    if !md.is_dir() {
        return (md.blocks() * 512, md.len());
    }
    std::fs::read_dir(path)
        .expect("a directory")
        .map(|e| usage(&e.expect("an entry").path()))
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
}

/// The shape of `examples/orders.csv`: order_id, customer, order_date, amount, express, note.
fn orders() -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer", DataType::Utf8, false),
        Field::new("order_date", DataType::Date32, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("express", DataType::Boolean, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    let names = ["alice", "bob", "carol", "dave", "erin"];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(1..=10)),
        Arc::new(StringArray::from_iter_values((0..10).map(|i| names[i % 5]))),
        Arc::new(Date32Array::from_iter_values((0..10).map(|i| 19_725 + i))),
        Arc::new(Float64Array::from_iter_values(
            (0..10).map(|i| 20.0 + f64::from(i) * 12.25),
        )),
        Arc::new(BooleanArray::from_iter((0..10).map(|i| Some(i % 3 == 0)))),
        Arc::new(StringArray::from_iter(
            (0..10).map(|i| (i % 4 == 0).then_some("first order")),
        )),
    ];
    vec![RecordBatch::try_new(schema, columns).expect("schema matches")]
}

fn measure(name: &str, batches: Vec<RecordBatch>, root: &Path, per_column: bool) -> Res<()> {
    let schema = batches[0].schema();
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let dir = tempfile::tempdir_in(root)?;
    let data = dir.path().join("data");
    let cluster = Cluster::init(
        &data,
        InitOptions {
            cluster_id: Some("sizes".into()),
            ..Default::default()
        },
    )?;
    let db = cluster.database("dev")?;
    db.create_table(name, &schema, Distribution::Even)?;
    db.append(name, batches.iter().cloned())?;
    let (a1, b1) = usage(&data);
    let (a2, b2) = usage(&dir.path().join("data.keys"));
    let (sealed_allocated, sealed_apparent) = (a1 + a2, b1 + b2);
    // Slot bytes per column over every slice (what the column costs, padding included).
    let mut slot_bytes = vec![0u64; schema.fields().len()];
    let mut blocks = vec![0u64; schema.fields().len()];
    for s in 0..db.slice_count() {
        db.with_slice(s, |store| {
            let m = store.manifest();
            if let Ok(t) = m.table(name) {
                for (i, c) in t.columns.iter().enumerate() {
                    slot_bytes[i] += c.blocks.iter().map(|b| store.slot_len(b.slot) as u64).sum::<u64>();
                    blocks[i] += c.blocks.len() as u64;
                }
            }
        });
    }
    drop(db);
    drop(cluster);

    let parquet_path = dir.path().join(format!("{name}.parquet"));
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(&parquet_path)?, schema.clone(), Some(props))?;
    for b in &batches {
        writer.write(b)?;
    }
    writer.close()?;
    let (parquet_allocated, parquet_apparent) = usage(&parquet_path);
    if per_column {
        use parquet::file::reader::FileReader;
        let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&parquet_path)?)?;
        let meta = reader.metadata();
        for (i, field) in schema.fields().iter().enumerate() {
            let parquet: i64 = meta.row_groups().iter().map(|rg| rg.column(i).compressed_size()).sum();
            println!(
                "{}",
                serde_json::json!({
                    "table": name,
                    "column": field.name(),
                    "sealed_slot_bytes": slot_bytes[i],
                    "sealed_blocks": blocks[i],
                    "parquet_bytes": parquet,
                    "ratio": slot_bytes[i] as f64 / parquet as f64,
                })
            );
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "table": name,
            "rows": rows,
            "columns": batches[0].num_columns(),
            "sealed_allocated": sealed_allocated,
            "sealed_apparent": sealed_apparent,
            "parquet_allocated": parquet_allocated,
            "parquet_apparent": parquet_apparent,
            "ratio_allocated": sealed_allocated as f64 / parquet_allocated as f64,
            "ratio_apparent": sealed_apparent as f64 / parquet_apparent as f64,
        })
    );
    Ok(())
}

fn main() -> Res<()> {
    let mut lineitem_rows = 6_000_000usize;
    let mut flights_rows = FLIGHTS_ROWS;
    let mut root = std::env::current_dir()?;
    let mut per_column = false;
    let mut only: Option<String> = None;
    let mut flights_csv: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--lineitem-rows" => lineitem_rows = value()?.parse()?,
            "--flights-rows" => flights_rows = value()?.parse()?,
            "--dir" => root = value()?.into(),
            "--per-column" => per_column = true,
            "--only" => only = Some(value()?),
            "--flights-csv" => flights_csv = Some(value()?.into()),
            other => return Err(format!("unknown argument `{other}` (see the module docs)").into()),
        }
    }
    let wanted = |t: &str| only.as_deref().is_none_or(|o| o == t);
    if wanted("orders") {
        measure("orders", orders(), &root, per_column)?;
    }
    if wanted("flights") {
        let batches = match &flights_csv {
            // The real data set (nycflights13's flights.csv, same columns as the generator's).
            Some(path) => arrow_csv::ReaderBuilder::new(sealstore_benches::flights::flights_schema())
                .with_header(true)
                .with_null_regex(regex::Regex::new("^(NA)?$")?)
                .with_batch_size(65_536)
                .build(std::fs::File::open(path)?)?
                .collect::<Result<Vec<_>, _>>()?,
            None => flights(flights_rows, 2013),
        };
        measure("flights", batches, &root, per_column)?;
    }
    if wanted("lineitem") {
        measure("lineitem", Lineitem::new(lineitem_rows, 1).collect(), &root, per_column)?;
    }
    Ok(())
}

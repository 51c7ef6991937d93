//! `sealstore load` reads CSV, newline-delimited JSON, Arrow IPC and Parquet, by extension or
//! `--format`; a bad file commits nothing.
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use arrow_array::{Date32Array, Float32Array, Int16Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealstore"))
        .args(args)
        .output()
        .unwrap()
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn fails(args: &[&str], code: i32) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

/// Narrow Arrow types on purpose: they are widened to the stored ones.
fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int16, false),
        Field::new("city", DataType::Utf8, true),
        Field::new("temp", DataType::Float32, true),
        Field::new("day", DataType::Date32, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int16Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("Oslo"), None, Some("Lima")])),
            Arc::new(Float32Array::from(vec![Some(-3.5), Some(20.0), None])),
            Arc::new(Date32Array::from(vec![Some(19_000), Some(19_001), None])),
        ],
    )
    .unwrap()
}

fn write_ipc(path: &Path) {
    let b = batch();
    let mut w = arrow_ipc::writer::FileWriter::try_new(std::fs::File::create(path).unwrap(), &b.schema()).unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();
}

fn write_parquet(path: &Path) {
    let b = batch();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), b.schema(), None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
}

#[test]
fn json_ipc_and_parquet_load_with_their_own_schemas_widened_to_stored_types() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    ok(&["init", data, "--block-size", "64KiB"]);
    let json = tmp.path().join("w.ndjson");
    std::fs::write(
        &json,
        "{\"id\": 1, \"city\": \"Oslo\", \"temp\": -3.5}\n{\"id\": 2, \"city\": null, \"temp\": 20}\n{\"id\": 3}\n",
    )
    .unwrap();
    let ipc = tmp.path().join("w.arrow");
    write_ipc(&ipc);
    let pq = tmp.path().join("w.parquet");
    write_parquet(&pq);
    let pq_as_data = tmp.path().join("w.data");
    std::fs::copy(&pq, &pq_as_data).unwrap();
    ok(&[
        "load",
        data,
        "--table",
        &format!("j={}", json.display()),
        "--table",
        &format!("i={}", ipc.display()),
        "--table",
        &format!("p={}", pq.display()),
    ]);
    ok(&["load", data, "p", pq_as_data.to_str().unwrap(), "--format", "parquet"]);
    let q = |sql: &str| ok(&["sql", data, sql, "--format", "csv"]);
    assert_eq!(q("SELECT count(*) AS n, sum(temp) AS t FROM j"), "n,t\n3,16.5\n");
    assert_eq!(
        q("SELECT id, city, temp, day FROM i ORDER BY id"),
        "id,city,temp,day\n1,Oslo,-3.5,2022-01-08\n2,,20,2022-01-09\n3,Lima,,\n"
    );
    assert_eq!(q("SELECT count(*) AS n, min(day) AS d FROM p"), "n,d\n6,2022-01-08\n");
    let tables = ok(&["tables", data]);
    assert!(
        tables.contains("Int32") || tables.contains("i32") || tables.contains("Int64"),
        "{tables}"
    );
}

#[test]
fn a_bad_typed_file_or_format_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    ok(&["init", data, "--block-size", "64KiB"]);
    let good = tmp.path().join("good.arrow");
    write_ipc(&good);
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"id\": 1}\n{\"id\": \"not a number\"\n").unwrap();
    let err = fails(
        &[
            "load",
            data,
            "--table",
            &format!("a={}", good.display()),
            "--table",
            &format!("b={}", bad.display()),
        ],
        1,
    );
    assert!(err.contains("bad.json"), "{err}");
    assert!(
        !ok(&["tables", data]).contains(" a "),
        "nothing of the failed load is committed"
    );
    let err = fails(&["load", data, "x", good.to_str().unwrap(), "--format", "xml"], 2);
    assert!(err.contains("unknown format `xml`"), "{err}");
    let err = fails(&["load", data, "x", good.to_str().unwrap(), "--schema", "id:i64"], 2);
    assert!(err.contains("--schema applies to CSV"), "{err}");
    let truncated = tmp.path().join("cut.parquet");
    let mut bytes = Vec::new();
    write_parquet(&truncated);
    bytes.extend(std::fs::read(&truncated).unwrap());
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&["load", data, "x", truncated.to_str().unwrap()], 1);
    assert!(err.contains("cut.parquet"), "{err}");
}

/// Larger than several parse chunks (4 MiB each), with quoted newlines throughout: every row
/// arrives, in order; one bad row near the end names its line and commits nothing.
#[test]
fn a_csv_larger_than_many_parse_chunks_loads_whole_and_a_late_bad_row_names_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    ok(&["init", data]);
    let rows = 400_000;
    let mut text = String::from("id,note,day\n");
    for i in 0..rows {
        text.push_str(&format!(
            "{i},\"line one, {i}\nline two \"\"quoted\"\"\",2024-01-{:02}\n",
            i % 28 + 1
        ));
    }
    assert!(text.len() > 3 * (4 << 20), "{} bytes", text.len());
    let good = tmp.path().join("big.csv");
    std::fs::write(&good, &text).unwrap();
    ok(&["load", data, "big", good.to_str().unwrap()]);
    let out = ok(&[
        "sql",
        data,
        "SELECT count(*), sum(id), min(note), max(day) FROM big",
        "--format",
        "csv",
    ]);
    let sum: u64 = (0..rows as u64).sum();
    assert!(out.contains(&format!("{rows},{sum},")), "{out}");
    assert!(out.contains("line two \"\"quoted\"\""), "{out}");
    let out = ok(&[
        "sql",
        data,
        "SELECT id FROM big WHERE id = 399999 AND note LIKE 'line one, 399999%'",
        "--format",
        "count",
    ]);
    assert!(out.contains('1'), "{out}");

    // Each record spans two lines after the header: record i starts at line 2 + 2i.
    let bad_index = rows - 7;
    let bad = text.replacen(&format!("\n{bad_index},"), &format!("\n{bad_index}x,"), 1);
    let bad_path = tmp.path().join("bad.csv");
    std::fs::write(&bad_path, bad).unwrap();
    let err = fails(
        &[
            "load",
            data,
            "later",
            bad_path.to_str().unwrap(),
            "--schema",
            "id:i64,note:utf8,day:date",
        ],
        1,
    );
    assert!(
        err.contains(&format!(
            "line {}: column `id`: `{bad_index}x` is not a 64-bit integer",
            2 + 2 * bad_index
        )),
        "{err}"
    );
    assert!(
        !ok(&["tables", data]).contains("later"),
        "nothing of the failed load is committed"
    );
}

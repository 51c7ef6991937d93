//! `sealstore sql` through the real binary.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealstore"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = run(args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{args:?}\nstdout: {out}\nstderr: {err}");
    out.into_owned()
}

/// Runs and expects `code` with exactly one line on stderr.
#[track_caller]
fn fails(args: &[&str], code: i32) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{args:?}\nstderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    err
}

struct Data {
    _tmp: tempfile::TempDir,
    dir: String,
}

fn data() -> Data {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data").to_str().unwrap().to_owned();
    ok(&["init", &dir, "--block-size", "64KiB"]);
    Data { _tmp: tmp, dir }
}

fn orders_csv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/orders.csv")
}

#[test]
fn sql_creates_inserts_and_queries_loaded_tables() {
    let d = data();
    ok(&["load", &d.dir, "orders", orders_csv().to_str().unwrap()]);
    let out = ok(&[
        "sql",
        &d.dir,
        "SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer ORDER BY n DESC, customer LIMIT 2",
        "--format",
        "csv",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>()[..2],
        ["customer,n,total", "alice,3,673.5"],
        "{out}"
    );
    ok(&[
        "sql",
        &d.dir,
        "CREATE TABLE big_orders AS SELECT * FROM orders WHERE amount > 100; INSERT INTO big_orders SELECT * FROM orders WHERE amount IS NULL",
    ]);
    let n = ok(&[
        "sql",
        &d.dir,
        "SELECT count(*) AS n FROM dev.big_orders",
        "--format",
        "json",
    ]);
    assert_eq!(n.trim(), r#"{"n":6}"#);
    let plan = ok(&["sql", &d.dir, "EXPLAIN ANALYZE SELECT * FROM orders WHERE order_id > 8"]);
    assert!(
        plan.contains("SealedScanExec") && plan.contains("blocks_decrypted="),
        "{plan}"
    );
    ok(&["sql", &d.dir, "DROP TABLE big_orders"]);
    assert!(!ok(&["tables", &d.dir]).contains("big_orders"));
}

#[test]
fn bad_sql_unknown_tables_and_type_mismatches_fail_with_one_line_and_change_nothing() {
    let d = data();
    ok(&["load", &d.dir, "orders", orders_csv().to_str().unwrap()]);
    let before = ok(&["info", &d.dir, "--json"]);
    let err = fails(&["sql", &d.dir, "SELEC * FROM orders"], 1);
    assert!(err.contains("SQL error"), "{err}");
    let err = fails(&["sql", &d.dir, "SELECT * FROM nope"], 1);
    assert!(err.contains("nope") && err.contains("not found"), "{err}");
    let err = fails(&["sql", &d.dir, "SELECT amount + customer FROM orders"], 1);
    assert!(err.contains("Cannot coerce"), "{err}");
    fails(&["sql", &d.dir, "INSERT INTO orders (order_id) VALUES ('x')"], 1);
    fails(&["sql", &d.dir, "SELECT 1", "--format", "xml"], 2);
    fails(&["sql", &d.dir, "SELECT 1", "--memory-limit", "lots"], 2);
    fails(&["sql", &d.dir, ";"], 2);
    assert_eq!(ok(&["info", &d.dir, "--json"]), before);
}

#[test]
fn a_piped_script_runs_multi_line_statements_and_reports_failures() {
    let d = data();
    let mut child = bin()
        .args(["sql", &d.dir, "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"CREATE TABLE t AS\n  SELECT value AS v\n  FROM generate_series(1, 5);\nSELECT nope FROM t;\nSELECT sum(v)\nFROM t;\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("sum(t.v)\n15"), "{out}");
    assert!(err.contains("nope") && err.contains("1 statement(s) failed"), "{err}");
    assert_eq!(o.status.code(), Some(1));
}

//! Drives the real `sealstore` binary through every command and its error paths.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealstore"));
    c.env_remove("RUST_BACKTRACE");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs and expects `code`, with exactly one line on stderr (no panic, no backtrace).
#[track_caller]
fn fails(args: &[&str], code: i32) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}\nstdout: {}\nstderr: {err}",
        stdout(&o)
    );
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    err
}

fn sample_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/orders.csv")
}

struct Cluster {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: String,
}

fn cluster() -> Cluster {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let data = root.join("data").to_str().unwrap().to_owned();
    let out = ok(&["init", &data, "--block-size", "64KiB", "--cluster-id", "cli-test"]);
    assert!(out.contains("cluster key: generation 1"), "{out}");
    assert!(out.contains("cluster-id=cli-test"), "{out}");
    Cluster { _tmp: tmp, root, data }
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn init_creates_a_0600_key_outside_the_data_dir_and_a_config_without_secrets() {
    let c = cluster();
    let key = c.root.join("data.keys/master.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key_bytes = std::fs::read(&key).unwrap();
    let config = std::fs::read(c.root.join("data/sealstore.json")).unwrap();
    assert!(!config.windows(32).any(|w| w == key_bytes.as_slice()));
    let hex: String = key_bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!String::from_utf8_lossy(&config).contains(&hex));
    let err = fails(&["init", &c.data], 1);
    assert!(err.contains("already"), "{err}");
}

#[test]
fn node_directories_can_live_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, n0, n1) = (tmp.path().join("d"), tmp.path().join("vol0"), tmp.path().join("vol1"));
    let (d, a, b) = (data.to_str().unwrap(), n0.to_str().unwrap(), n1.to_str().unwrap());
    fails(&["init", d, "--node-dir", a], 2);
    ok(&["init", d, "--node-dir", a, "--node-dir", b, "--block-size", "64KiB"]);
    ok(&["load", d, "orders", sample_csv().to_str().unwrap()]);
    assert!(n0.join("slice-0/dev/STORE").exists() && n1.join("slice-3/dev/STORE").exists());
    assert!(!data.join("node-0").exists());
    assert_eq!(ok(&["scan", d, "orders", "--format", "count"]).trim(), "10");
}

#[test]
fn init_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    let d = d.to_str().unwrap();
    fails(&["init", d, "--block-size", "100000"], 2);
    fails(&["init", d, "--block-size", "1GiB"], 2);
    fails(&["init", d, "--block-size", "lots"], 2);
    fails(&["init", d, "--nodes", "0"], 2);
    fails(&["init", d, "--nodes", "-3"], 2);
    fails(&[], 2);
    fails(&["frobnicate"], 2);
    fails(&["scan"], 2);
    assert!(!tmp.path().join("d/sealstore.json").exists());
}

#[test]
fn load_then_every_scan_format_tables_info() {
    let c = cluster();
    let csv = sample_csv();
    let out = ok(&[
        "load",
        &c.data,
        "orders",
        csv.to_str().unwrap(),
        "--dist",
        "key:customer",
    ]);
    assert!(out.contains("loaded 10 rows"), "{out}");
    let tables = ok(&["tables", &c.data]);
    assert!(
        tables.contains("dev.orders") && tables.contains("rows=10") && tables.contains("dist=key:customer"),
        "{tables}"
    );
    assert!(
        tables.contains("order_date:Date32") && tables.contains("amount:Float64") && tables.contains("express:Boolean"),
        "{tables}"
    );
    assert_eq!(ok(&["scan", &c.data, "orders", "--format", "count"]).trim(), "10");
    let csv_out = ok(&[
        "scan",
        &c.data,
        "orders",
        "--format",
        "csv",
        "--where",
        "order_id = 8",
        "--columns",
        "order_id,note",
    ]);
    assert_eq!(csv_out, "order_id,note\n8,\"note with \"\"quotes\"\"\"\n");
    let json = ok(&[
        "scan",
        &c.data,
        "orders",
        "--format",
        "json",
        "--where",
        "customer = 'alice' AND amount > 100",
    ]);
    let lines: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{json}");
    assert!(lines.iter().all(|v| v["customer"] == "alice"));
    let nulls = ok(&[
        "scan",
        &c.data,
        "orders",
        "--format",
        "count",
        "--where",
        "amount IS NULL",
    ]);
    assert_eq!(nulls.trim(), "1");
    let between = ok(&[
        "scan",
        &c.data,
        "orders",
        "--format",
        "count",
        "--where",
        "order_date BETWEEN '2024-02-01' AND DATE '2024-03-31'",
    ]);
    assert_eq!(between.trim(), "5");
    // --limit caps a count, with or without a filter.
    assert_eq!(
        ok(&["scan", &c.data, "orders", "--format", "count", "--limit", "3"]).trim(),
        "3"
    );
    let capped = [
        "scan",
        &c.data,
        "orders",
        "--format",
        "count",
        "--limit",
        "4",
        "--where",
        "amount > 0",
    ];
    assert_eq!(ok(&capped).trim(), "4");
    let table = ok(&[
        "scan",
        &c.data,
        "orders",
        "--limit",
        "3",
        "--columns",
        "order_id,customer",
    ]);
    assert!(
        table.contains("order_id | customer") && table.contains("(3 rows)"),
        "{table}"
    );
    let info = ok(&["info", &c.data]);
    assert!(
        info.contains("master key:") && info.contains("database key `dev`: generation 1"),
        "{info}"
    );
    let info_json: serde_json::Value = serde_json::from_str(&ok(&["info", &c.data, "--json"])).unwrap();
    assert_eq!(info_json["hierarchy"]["cluster_id"], "cli-test");
    // Appending the same file again goes to the existing table.
    ok(&["load", &c.data, "orders", csv.to_str().unwrap()]);
    assert_eq!(ok(&["scan", &c.data, "orders", "--format", "count"]).trim(), "20");
}

#[test]
fn explicit_schema_and_bad_schemas() {
    let c = cluster();
    let csv = sample_csv();
    let csv = csv.to_str().unwrap();
    ok(&[
        "load",
        &c.data,
        "o2",
        csv,
        "--schema",
        "order_id:i32,customer:utf8,order_date:date,amount:f64,express:bool,note:utf8",
    ]);
    assert!(ok(&["tables", &c.data]).contains("order_id:Int32"));
    fails(&["load", &c.data, "o3", csv, "--schema", "order_id:int128"], 2);
    fails(&["load", &c.data, "o3", csv, "--schema", "nonsense"], 2);
    fails(&["load", &c.data, "o3", csv, "--dist", "hash"], 2);
    fails(&["load", &c.data, "o3", csv, "--memory-budget", "0"], 2);
    ok(&["load", &c.data, "o4", csv, "--memory-budget", "1"]);
    let err = fails(&["load", &c.data, "o3", csv, "--dist", "key:nope"], 2);
    assert!(err.contains("nope"), "{err}");
    let err = fails(
        &[
            "load",
            &c.data,
            "o3",
            csv,
            "--schema",
            "a:i64,b:i64,c:i64,d:i64,e:i64,f:i64",
        ],
        1,
    );
    assert!(err.contains("header"), "{err}");
}

#[test]
fn bad_csv_input_is_refused_with_its_line_and_commits_nothing() {
    let c = cluster();
    let csv = sample_csv();
    ok(&["load", &c.data, "orders", csv.to_str().unwrap()]);
    let good = std::fs::read_to_string(&csv).unwrap();
    let mut wrong_type = good.clone();
    wrong_type.push_str("11,zed,2024-05-01,not-a-number,true,x\n");
    let f = write(&c.root.join("wrong_type.csv"), &wrong_type);
    let err = fails(&["load", &c.data, "orders", &f], 1);
    assert!(
        err.contains("line 12") && err.contains("amount") && err.contains("not-a-number"),
        "{err}"
    );
    let mut short = good.clone();
    short.push_str("12,zed\n");
    let f = write(&c.root.join("short.csv"), &short);
    let err = fails(&["load", &c.data, "orders", &f], 1);
    assert!(err.contains("line 12") && err.contains("expected 6 fields"), "{err}");
    let f = write(&c.root.join("date.csv"), &good.replace("2024-03-20", "2024-13-45"));
    let err = fails(&["load", &c.data, "orders", &f], 1);
    assert!(err.contains("line 9") && err.contains("date"), "{err}");
    let f = write(&c.root.join("empty.csv"), "");
    fails(&["load", &c.data, "orders", &f], 1);
    let f = write(
        &c.root.join("utf8.csv"),
        "order_id,customer,order_date,amount,express,note\n1,\u{0}\u{FFFD},2024-01-01,1,true,x\n",
    );
    let _ = run(&["load", &c.data, "orders", &f]);
    let mut invalid = good.into_bytes();
    invalid.extend_from_slice(b"13,\xff\xfe,2024-01-01,1,true,x\n");
    let f = c.root.join("invalid.csv");
    std::fs::write(&f, invalid).unwrap();
    let err = fails(&["load", &c.data, "orders", f.to_str().unwrap()], 1);
    assert!(err.contains("UTF-8"), "{err}");
    fails(
        &["load", &c.data, "orders", c.root.join("missing.csv").to_str().unwrap()],
        1,
    );
    fails(&["load", &c.data, "orders", c.root.to_str().unwrap()], 1);
    // A failed load into a new table leaves no table behind.
    fails(
        &["load", &c.data, "fresh", c.root.join("short.csv").to_str().unwrap()],
        1,
    );
    let tables = ok(&["tables", &c.data]);
    assert!(!tables.contains("fresh"), "{tables}");
    // The store is unchanged by every failed load.
    let count = ok(&["scan", &c.data, "orders", "--format", "count"]);
    assert_eq!(
        count.trim(),
        "11",
        "the utf8 file with a NUL is valid and loaded one row"
    );
    ok(&["verify", &c.data]);
}

#[test]
fn scan_errors() {
    let c = cluster();
    ok(&["load", &c.data, "orders", sample_csv().to_str().unwrap()]);
    fails(&["scan", &c.data, "nope"], 1);
    fails(&["scan", &c.data, "orders", "--database", "prod"], 1);
    fails(&["scan", &c.data, "orders", "--where", "amount >"], 2);
    fails(&["scan", &c.data, "orders", "--where", "nope = 1"], 2);
    fails(&["scan", &c.data, "orders", "--where", "amount = abc"], 2);
    fails(&["scan", &c.data, "orders", "--columns", "order_id,nope"], 2);
    fails(&["scan", &c.data, "orders", "--format", "xml"], 2);
    fails(&["scan", &c.data, "orders", "--limit", "-1"], 2);
    fails(&["scan", c.root.to_str().unwrap(), "orders"], 1);
}

#[test]
fn a_where_is_sql_so_or_in_like_and_not_answer_what_they_say() {
    let c = cluster();
    ok(&["load", &c.data, "orders", sample_csv().to_str().unwrap()]);
    let count = |filter: &str| ok(&["scan", &c.data, "orders", "--where", filter, "--format", "count"]);
    // Once this silently returned 0 rows with exit 0: `OR …` became part of the string literal.
    assert_eq!(count("customer = 'alice' OR customer = 'bob'").trim(), "5");
    assert_eq!(count("customer IN ('alice', 'bob')").trim(), "5");
    assert_eq!(count("customer LIKE 'al%'").trim(), "3");
    assert_eq!(count("NOT customer = 'alice'").trim(), "7");
    assert_eq!(count("customer = 'alice' AND amount > 100").trim(), "2");
    assert_eq!(
        count("amount * 2 > 200 OR note IS NULL").trim(),
        count("NOT (amount <= 100) OR note IS NULL").trim()
    );
    // Keywords inside quotes are text.
    assert_eq!(count("note = 'x OR y'").trim(), "0");
    // Anything that is not one complete expression is refused, never guessed at.
    for bad in [
        "customer = 'alice' OR",
        "customer = ",
        "amount > 1) UNION SELECT 1",
        "customer == 'x' ;",
    ] {
        let err = fails(&["scan", &c.data, "orders", "--where", bad], 2);
        assert!(
            err.starts_with("sealstore: --where:") && err.lines().count() == 1,
            "{bad}: {err}"
        );
    }
}

#[test]
fn verify_and_audit_detect_tampering() {
    let c = cluster();
    ok(&["load", &c.data, "orders", sample_csv().to_str().unwrap()]);
    let out = ok(&["verify", &c.data]);
    assert!(
        out.contains("0 failures") && out.contains("audit chain intact"),
        "{out}"
    );
    let audit = ok(&["audit", &c.data, "--verify"]);
    assert!(
        audit.contains("Wrap") && audit.contains("GenerateDataKey") && audit.contains("audit chain intact"),
        "{audit}"
    );
    let unwraps = ok(&["audit", &c.data, "--op", "unwrap"]);
    assert!(unwraps.lines().all(|l| l.contains("Unwrap")), "{unwraps}");
    let json = ok(&["audit", &c.data, "--json"]);
    assert!(
        json.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    // Flip a ciphertext byte of some block.
    let seg = walk(Path::new(&c.data))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "dat"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let pos = bytes.iter().position(|_| true).unwrap() + 200;
    bytes[pos] ^= 0x80;
    std::fs::write(&seg, &bytes).unwrap();
    let o = run(&["verify", &c.data]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("FAIL dev.orders") && stdout(&o).contains("block"),
        "{}",
        stdout(&o)
    );
    let err = fails(&["scan", &c.data, "orders"], 1);
    assert!(err.contains("authentication failed"), "{err}");
    // A count without a filter reads no block: the authenticated manifests answer it.
    assert_eq!(ok(&["scan", &c.data, "orders", "--format", "count"]).trim(), "10");
    // An edited audit record breaks the chain.
    let log = c.root.join("data.keys/keystore/audit.log");
    let text = std::fs::read_to_string(&log).unwrap().replacen("\"ok\"", "\"OK\"", 1);
    std::fs::write(&log, text).unwrap();
    let err = fails(&["audit", &c.data, "--verify"], 1);
    assert!(err.contains("edited"), "{err}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}

#[test]
fn passphrase_protected_master_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let data = data.to_str().unwrap();
    let o = bin()
        .args(["init", data, "--passphrase-env", "SEALSTORE_TEST_PASS"])
        .env("SEALSTORE_TEST_PASS", "hunter2 hunter2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = bin()
        .args(["info", data])
        .env("SEALSTORE_TEST_PASS", "hunter2 hunter2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = bin()
        .args(["info", data])
        .env("SEALSTORE_TEST_PASS", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    let o = bin()
        .args(["info", data])
        .env_remove("SEALSTORE_TEST_PASS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("SEALSTORE_TEST_PASS"), "{}", stderr(&o));
}

#[test]
fn wrong_master_key_is_a_clear_error() {
    let c = cluster();
    let key = c.root.join("data.keys/master.key");
    std::fs::write(&key, [9u8; 32]).unwrap();
    let err = fails(&["info", &c.data], 1);
    assert!(err.contains("wrong master key"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = fails(&["info", &c.data], 1);
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::remove_file(&key).unwrap();
    let err = fails(&["info", &c.data], 1);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn demo_and_bench_run_small() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("demo");
    let out = ok(&["demo", "--rows", "30000", "--dir", d.to_str().unwrap()]);
    for needle in [
        "[8/8] tamper",
        "[5/8] SQL",
        "l_returnflag | l_linestatus | n",
        "scan refused the data: authentication failed",
        "0 failures",
        "report",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in\n{out}");
    }
    fails(&["demo", "--rows", "10", "--dir", d.to_str().unwrap()], 2);
    fails(&["demo", "--rows", "0"], 2);
    let json = ok(&[
        "bench",
        "--rows",
        "30000",
        "--threads",
        "2",
        "--json",
        "--dir",
        tmp.path().join("b").to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    for key in [
        "write_mb_s",
        "scan_mb_s",
        "write_unsealed_mb_s",
        "scan_unsealed_mb_s",
        "aead_seal_gb_s",
        "aead_open_gb_s",
        "disk_bytes",
        "rows",
        "threads",
        "write_parquet_mb_s",
        "scan_parquet_mb_s",
        "write_vs_parquet",
        "scan_vs_parquet",
        "parquet_bytes",
        "disk_vs_parquet",
        "date_scan_rows",
        "date_scan_speedup",
        "date_scan_pages_decoded",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(v["rows"], 30000);
    assert_eq!(v["threads"], 2);
    assert!(v["parquet_bytes"].as_u64().unwrap() > 0, "{json}");
    assert!(v["scan_vs_parquet"].as_f64().unwrap() > 0.0, "{json}");
    assert!(v["date_scan_rows"].as_u64().unwrap() > 0, "{json}");
}

#[test]
fn rotate_rekey_drop_and_rollback_through_the_cli() {
    let c = cluster();
    let d = c.data.as_str();
    let csv = sample_csv();
    ok(&["load", d, "orders", csv.to_str().unwrap()]);
    let count = || ok(&["scan", d, "orders", "--format", "count"]).trim().to_owned();
    assert_eq!(count(), "10");

    let out = ok(&["rotate", d]);
    assert!(out.contains("cluster key rotated: now generation 2"), "{out}");
    assert!(out.contains("database key `dev` rotated: now generation 2"), "{out}");
    let out = ok(&["rotate", d, "--master"]);
    assert!(out.contains("master key rotated"), "{out}");
    assert!(c.root.join("data.keys/master.v2.key").exists());
    let new_key = c.root.join("elsewhere.key");
    let out = ok(&["rotate", d, "--master", "--new-master-key", new_key.to_str().unwrap()]);
    assert!(out.contains("master key rotated"), "{out}");
    let mode = std::fs::metadata(&new_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    ok(&["rotate", d, "--all"]);
    ok(&["rotate", d, "--database", "dev"]);
    let info = ok(&["info", d]);
    assert!(info.contains("elsewhere.v2.key"), "{info}");
    assert!(info.contains("cluster key: generation 3"), "{info}");
    assert!(info.contains("database key `dev`: generation 4"), "{info}");
    assert_eq!(count(), "10");

    let out = ok(&["rekey", d]);
    assert!(out.contains("re-keyed"), "{out}");
    ok(&["rekey", d, "--table", "orders"]);
    assert_eq!(count(), "10");
    ok(&["verify", d]);
    let audit = ok(&["audit", d, "--verify"]);
    for op in ["RotateMasterKey", "RotateClusterKey", "RotateDatabaseKey", "Rekey"] {
        assert!(audit.contains(op), "{op} missing from the audit log");
    }

    // Usage and data errors: one line, right exit code, nothing changed.
    fails(&["rotate", d, "--new-master-key", "x.key"], 2);
    fails(&["rotate", d, "--all", "--cluster"], 2);
    fails(&["rotate", d, "--database", "nope"], 1);
    fails(&["rekey", d, "--table", "nope"], 1);
    fails(&["drop", d, "nope"], 1);
    fails(&["drop-database", d, "nope"], 1);
    assert_eq!(count(), "10");

    // Rollback: an older commit record is refused; a deliberate restore is accepted.
    let commit = c.root.join("data/databases/dev/COMMIT");
    let old_commit = std::fs::read(&commit).unwrap();
    ok(&["load", d, "orders", csv.to_str().unwrap()]);
    assert_eq!(count(), "20");
    let newer = std::fs::read(&commit).unwrap();
    std::fs::write(&commit, &old_commit).unwrap();
    let err = fails(&["scan", d, "orders", "--format", "count"], 1);
    assert!(
        err.contains("rollback detected") && err.contains("commit record"),
        "{err}"
    );
    std::fs::write(&commit, &newer).unwrap();
    assert_eq!(count(), "20");

    ok(&["create-database", d, "prod"]);
    fails(&["create-database", d, "prod"], 1);
    fails(&["create-database", d, "../x"], 1);
    ok(&["load", d, "orders", csv.to_str().unwrap(), "--database", "prod"]);
    assert_eq!(
        ok(&["scan", d, "orders", "--database", "prod", "--format", "count"]).trim(),
        "10"
    );
    ok(&["drop-database", d, "prod"]);
    fails(&["scan", d, "orders", "--database", "prod"], 1);
    ok(&["load", d, "second", csv.to_str().unwrap()]);
    ok(&["drop", d, "second"]);
    assert!(!ok(&["tables", d]).contains("second"));
    ok(&["drop-database", d, "dev"]);
    fails(&["scan", d, "orders"], 1);
    assert!(!c.root.join("data/databases/dev").exists());
}

#[cfg(not(feature = "pkcs11"))]
#[test]
fn a_build_without_pkcs11_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    let err = fails(
        &[
            "init",
            d.to_str().unwrap(),
            "--pkcs11-module",
            "/usr/lib/softhsm/libsofthsm2.so",
            "--pkcs11-token",
            "t",
            "--pkcs11-key",
            "k",
        ],
        2,
    );
    assert!(err.contains("built without PKCS#11 support"), "{err}");
    assert!(!d.join("sealstore.json").exists());
}

#[cfg(not(feature = "kms"))]
#[test]
fn a_build_without_kms_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    let err = fails(&["init", d.to_str().unwrap(), "--kms-key-id", "alias/x"], 2);
    assert!(err.contains("built without KMS support"), "{err}");
    assert!(!d.join("sealstore.json").exists());
}

#[test]
fn every_command_refuses_hostile_arguments_with_one_line_and_changes_nothing() {
    let c = cluster();
    let d = c.data.as_str();
    ok(&["load", d, "orders", sample_csv().to_str().unwrap()]);
    // Rows come back in no defined order across slices: compare them sorted.
    let rows = || {
        let mut lines: Vec<String> = ok(&["scan", d, "orders", "--format", "csv"])
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let before = rows();
    let long = "x".repeat(5000);
    let missing = c.root.join("no-such-dir");
    let missing = missing.to_str().unwrap();
    let not_a_cluster = c.root.join("plain");
    std::fs::create_dir_all(&not_a_cluster).unwrap();
    let plain = not_a_cluster.to_str().unwrap();
    let empty = write(&c.root.join("empty.csv"), "");
    let binary = c.root.join("binary.csv");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x01, b'\n', 0x80]).unwrap();
    let binary = binary.to_str().unwrap();
    let sample = sample_csv();
    let sample = sample.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["scan", missing, "orders"],
        vec!["scan", plain, "orders"],
        vec!["scan", d, "../../etc/passwd"],
        vec!["scan", d, &long],
        vec!["scan", d, "orders", "--limit", "-1"],
        vec!["scan", d, "orders", "--limit", "99999999999999999999999"],
        vec!["scan", d, "orders", "--format", "xml"],
        vec!["scan", d, "orders", "--where", &long],
        vec!["scan", d, "orders", "--database", "../dev"],
        vec!["load", d, "orders", &empty],
        vec!["load", d, "orders", binary],
        vec!["load", d, "../evil", sample],
        vec!["load", d, &long, sample],
        vec!["load", d, "orders", missing],
        vec!["load", d, "orders", sample, "--memory-budget", "0"],
        vec!["load", d, "new", sample, "--dist", "key:nope"],
        vec!["load", d, "new", sample, "--schema", "a:i64,b"],
        vec!["tables", missing],
        vec!["tables", d, "--database", &long],
        vec!["info", plain],
        vec!["verify", missing],
        vec!["audit", plain],
        vec!["rotate", missing],
        vec!["rotate", d, "--database", "../dev"],
        vec!["rotate", d, "--master", "--new-master-key", ""],
        vec!["rekey", d, "--database", &long],
        vec!["rekey", d, "--table", ""],
        vec!["drop", d, ""],
        vec!["drop", d, "orders", "--database", "nope"],
        vec!["drop-database", d, "../../x"],
        vec!["drop-database", plain, "dev"],
        vec!["demo", "--rows", "0"],
        vec!["bench", "--rows", "0"],
        vec!["init", d],
    ];
    for args in &cases {
        let o = run(args);
        let err = stderr(&o);
        assert!(
            matches!(o.status.code(), Some(1 | 2)),
            "{args:?}: {:?} {err}",
            o.status.code()
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    assert_eq!(rows(), before);
    ok(&["verify", d]);
    assert!(c.root.join("data.keys/master.key").exists());
}

#[test]
fn load_of_several_tables_commits_all_of_them_or_none() {
    let c = cluster();
    let csv = sample_csv();
    let csv = csv.to_str().unwrap();
    let first = format!("orders={csv}");
    let second = format!("archive={csv}");
    let out = ok(&["load", &c.data, "--table", &first, "--table", &second]);
    assert!(out.contains("dev.orders, dev.archive"), "{out}");
    let generation = |c: &Cluster| {
        let info = ok(&["info", &c.data, "--json"]);
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        v["databases"][0]["generation"].as_u64().unwrap()
    };
    let before = generation(&c);
    // A positional pair plus one more: the bad second file aborts the whole load.
    let mut short = std::fs::read_to_string(csv).unwrap();
    short.push_str("12,zed\n");
    let bad = write(&c.root.join("short.csv"), &short);
    let err = fails(&["load", &c.data, "orders", csv, "--table", &format!("fresh={bad}")], 1);
    assert!(err.contains("line 12"), "{err}");
    assert_eq!(generation(&c), before, "nothing was committed");
    let tables = ok(&["tables", &c.data]);
    assert!(!tables.contains("fresh"), "{tables}");
    for table in ["orders", "archive"] {
        let count = ok(&["scan", &c.data, table, "--format", "count"]);
        assert_eq!(count.trim(), "10", "{table}");
    }
    fails(&["load", &c.data, "--table", "no-equals-sign"], 2);
    fails(&["load", &c.data], 2);
    ok(&["verify", &c.data]);
}

//! A cluster whose keys live on a key server, through real processes on loopback: the server
//! (`sealstore keyserver serve`) and the nodes (`sealstore …`) are separate processes talking
//! mutual TLS. Every refusal is one clear line.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealstore_keyring::{KeyStoreBackend, LocalKeyStore, provider::LocalKeyFile};

mod common;
use common::{ok, refused, run, sealstore, text};

/// A running `sealstore keyserver serve`, killed when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(dir: &Path, certs: &Path, listen: &str, lease_seconds: f64) -> Self {
        let mut child = sealstore()
            .args(["keyserver", "serve"])
            .arg(dir)
            .args(["--listen", listen, "--lease-seconds", &lease_seconds.to_string()])
            .arg("--cert")
            .arg(certs.join("server.pem"))
            .arg("--key")
            .arg(certs.join("server.key"))
            .arg("--client-ca")
            .arg(certs.join("ca.pem"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("server said {line:?}"))
            .to_owned();
        Self { child, address }
    }

    fn url(&self) -> String {
        format!("https://{}", self.address)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A key server directory with cluster `shop` registered, development certificates and a
/// running server.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    certs: PathBuf,
    server_dir: PathBuf,
    server: Server,
}

impl Setup {
    fn new(lease_seconds: f64) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let certs = root.join("certs");
        let server_dir = root.join("server");
        ok(&["certs", s(&certs), "--cluster", "shop"]);
        ok(&["keyserver", "init", s(&server_dir)]);
        ok(&["keyserver", "add-cluster", s(&server_dir), "--cluster", "shop"]);
        let server = Server::start(&server_dir, &certs, "127.0.0.1:0", lease_seconds);
        Self {
            _tmp: tmp,
            root,
            certs,
            server_dir,
            server,
        }
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn cert(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }

    /// `sealstore init DATA --keyserver …` with the node certificate `node`.
    fn init_args(&self, data: &Path, node: &str) -> Vec<String> {
        vec![
            "init".into(),
            data.display().to_string(),
            "--nodes".into(),
            "1".into(),
            "--keyserver".into(),
            self.server.url(),
            "--ca".into(),
            self.cert("ca.pem"),
            "--cert".into(),
            self.cert(&format!("{node}.pem")),
            "--key".into(),
            self.cert(&format!("{node}.key")),
        ]
    }

    fn init(&self) {
        let args = self.init_args(&self.data(), "node-shop");
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    fn csv(&self, rows: usize) -> PathBuf {
        let path = self.root.join(format!("rows-{rows}.csv"));
        let mut body = String::from("id,name\n");
        for i in 0..rows {
            body.push_str(&format!("{i},MARKER-keyserver-{i}\n"));
        }
        std::fs::write(&path, body).unwrap();
        path
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn count(data: &Path, table: &str) -> String {
    ok(&["scan", s(data), table, "--format", "count"]).trim().to_owned()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn a_cluster_runs_its_whole_key_hierarchy_through_the_key_server_with_no_key_on_its_machine() {
    let mut setup = Setup::new(60.0);
    setup.init();
    let data = setup.data();
    let csv = setup.csv(5_000);
    ok(&["load", s(&data), "t", s(&csv)]);
    ok(&["load", s(&data), "u", s(&csv)]);
    assert_eq!(count(&data, "t"), "5000");

    // Two node processes of the cluster read at once.
    let readers: Vec<Child> = (0..2)
        .map(|_| {
            sealstore()
                .args(["scan", s(&data), "t", "--format", "csv"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for reader in readers {
        let out = reader.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(text(&out.stdout).lines().count(), 5_001);
    }

    // Every tier the server holds rotates; data is re-keyed; a table and a database dropped.
    let rotated = ok(&["rotate", s(&data)]);
    assert!(rotated.contains("cluster key rotated: now generation 2"), "{rotated}");
    let master = run(&["rotate", s(&data), "--master"]);
    assert_eq!(master.status.code(), Some(2));
    assert!(text(&master.stderr).contains("key server"));
    ok(&["rekey", s(&data)]);
    ok(&["drop", s(&data), "u"]);
    ok(&["create-database", s(&data), "scratch"]);
    ok(&["drop-database", s(&data), "scratch"]);
    assert_eq!(count(&data, "t"), "5000");
    assert!(ok(&["verify", s(&data)]).contains("0 failures"));
    let sql = ok(&["sql", s(&data), "SELECT count(*) AS n, max(id) AS top FROM t"]);
    assert!(sql.contains("5000") && sql.contains("4999"), "{sql}");
    let info = ok(&["info", s(&data)]);
    assert!(info.contains("key server https://127.0.0.1:"), "{info}");

    // The audit chain lives on the server, verifies, and names the node's certificate.
    let audit = ok(&["audit", s(&data), "--verify", "--json"]);
    assert!(audit.contains("\"client\":\"cert-sha256:"), "{audit}");
    for op in [
        "RotateClusterKey",
        "RotateDatabaseKey",
        "Rekey",
        "Shred",
        "KeyServerCall",
    ] {
        assert!(audit.contains(op), "{op} missing");
    }

    // The node's machine: the configuration directory holds no key store, no audit log.
    let config_dir = setup.root.join("data.keys/keystore");
    let mut names: Vec<String> = std::fs::read_dir(&config_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["LOCK", "cluster.json"]);

    // Read the server's cluster and database keys back (test hooks) and look for any half of
    // them in every file of the node: data directory and configuration.
    setup.server.kill();
    let mk = Arc::new(LocalKeyFile::open(&setup.server_dir.join("master.key"), None).unwrap());
    let store = LocalKeyStore::open(&setup.server_dir.join("clusters/shop"), mk).unwrap();
    let keys = store.insecure_key_bytes_for_tests().unwrap();
    assert_eq!(keys.len(), 2, "the cluster key and the database key of `dev`");
    let mut files = Vec::new();
    files_under(&data, &mut files);
    files_under(&setup.root.join("data.keys"), &mut files);
    assert!(files.len() > 10);
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for key in &keys {
            for half in [&key[..16], &key[16..]] {
                assert!(
                    !bytes.windows(16).any(|w| w == half),
                    "{} holds key bytes",
                    file.display()
                );
            }
        }
        assert!(
            !bytes.windows(16).any(|w| w == b"MARKER-keyserver"),
            "{} holds plaintext",
            file.display()
        );
    }
}

#[test]
fn certificates_of_another_ca_another_cluster_or_past_their_date_are_refused_in_one_line() {
    let setup = Setup::new(60.0);
    let other_ca = setup.root.join("other-ca");
    ok(&["certs", s(&other_ca), "--cluster", "shop"]);
    ok(&["certs", s(&setup.certs), "--cluster", "bee"]);
    ok(&[
        "certs",
        s(&setup.certs),
        "--cluster",
        "old",
        "--not-after",
        "2020-01-01",
    ]);
    // A node certificate of another CA.
    let mut args = setup.init_args(&setup.root.join("d1"), "node-shop");
    let (cert, key) = (
        other_ca.join("node-shop.pem").display().to_string(),
        other_ca.join("node-shop.key").display().to_string(),
    );
    args[9] = cert;
    args[11] = key;
    let err = refused(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("refused the TLS connection"), "{err}");
    // A certificate of cluster `bee` asking for cluster `shop`'s keys.
    let mut args = setup.init_args(&setup.root.join("d2"), "node-bee");
    args.extend(["--cluster-id".into(), "shop".into()]);
    let err = refused(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("does not name cluster `shop`"), "{err}");
    // `bee` is not registered at all.
    let args = setup.init_args(&setup.root.join("d3"), "node-bee");
    let err = refused(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("names no registered"), "{err}");
    // An expired certificate.
    let mut args = setup.init_args(&setup.root.join("d4"), "node-old");
    args.extend(["--cluster-id".into(), "shop".into()]);
    let err = refused(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("CertificateExpired"), "{err}");
    // No client certificate at all (a TLS client of our own, without one).
    let config = sealstore_keyserver::tls::client_config(&setup.certs.join("ca.pem"), None).unwrap();
    let address = sealstore_keyserver::client::KeyServerAddress::parse(&setup.server.url()).unwrap();
    let connection = sealstore_keyserver::client::Connection::new(address, config);
    let err = connection.hello().unwrap_err().to_string();
    assert!(
        err.contains("refused") || err.contains("closed the connection"),
        "{err}"
    );
    assert!(
        err.contains("CertificateRequired") || err.contains("certificate"),
        "{err}"
    );
    // The server recorded every refusal: handshakes in its own log, the wrong cluster in
    // `shop`'s keyed chain with the client's fingerprint.
    // (The server writes a handshake refusal after the client has seen the alert: wait for it.)
    let read_refusals = || std::fs::read_to_string(setup.server_dir.join("refusals/audit.log")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refusals = read_refusals();
    while refusals.matches("\"op\":\"AuthFailure\"").count() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        refusals = read_refusals();
    }
    assert!(refusals.matches("\"op\":\"AuthFailure\"").count() >= 3, "{refusals}");
    let shop = std::fs::read_to_string(setup.server_dir.join("clusters/shop/audit.log")).unwrap();
    assert!(
        shop.contains("does not name cluster") && shop.contains("cert-sha256:"),
        "{shop}"
    );
    // Nothing was created on the refused nodes' machines but their empty directories.
    assert!(!setup.root.join("d2/sealstore.json").exists());
}

#[test]
fn a_revoked_cluster_stops_within_its_lease_and_a_stopped_server_fails_opening_in_one_line() {
    let mut setup = Setup::new(1.0);
    setup.init();
    let data = setup.data();
    let csv = setup.csv(100_000);
    ok(&["load", s(&data), "t", s(&csv)]);
    // A reader that keeps reading: the scan streams to a pipe that is read slowly.
    let mut reader = sealstore()
        .args(["scan", s(&data), "t", "--format", "csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(reader.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    ok(&["keyserver", "revoke-cluster", s(&setup.server_dir), "--cluster", "shop"]);
    let revoked_at = Instant::now();
    let err = refused(&["scan", s(&data), "t", "--format", "count"]);
    assert!(err.contains("was revoked"), "{err}");
    // The running reader: it holds every key it has unwrapped so far, but the next block after
    // its lease (1 s) ran out asks the server and fails.
    std::thread::sleep(Duration::from_millis(1_500));
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    let status = reader.wait().unwrap();
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut reader.stderr.take().unwrap(), &mut stderr);
    if status.success() {
        // It finished before its lease ran out: then within the lease.
        assert!(revoked_at.elapsed() < Duration::from_secs(30));
    } else {
        assert!(stderr.contains("revoked"), "{stderr}");
    }
    // The server down: opening fails in one line naming it.
    setup.server.kill();
    let err = refused(&["scan", s(&data), "t", "--format", "count"]);
    assert!(err.contains("key server") && err.contains("unreachable"), "{err}");
}

#[test]
fn a_restored_data_directory_is_a_rollback_the_key_server_never_accepts() {
    let setup = Setup::new(60.0);
    setup.init();
    let data = setup.data();
    let csv = setup.csv(1_000);
    ok(&["load", s(&data), "t", s(&csv)]);
    // Back up everything on the node's machine: data and its configuration.
    let backup = setup.root.join("backup");
    std::fs::create_dir(&backup).unwrap();
    let cp = |from: &Path, to: &Path| {
        assert!(
            Command::new("cp")
                .arg("-a")
                .arg(from)
                .arg(to)
                .status()
                .unwrap()
                .success()
        );
    };
    cp(&data, &backup.join("data"));
    cp(&setup.root.join("data.keys"), &backup.join("data.keys"));
    ok(&["load", s(&data), "t", s(&csv)]);
    assert_eq!(count(&data, "t"), "2000");
    // Restore both together.
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_dir_all(setup.root.join("data.keys")).unwrap();
    cp(&backup.join("data"), &data);
    cp(&backup.join("data.keys"), &setup.root.join("data.keys"));
    let err = refused(&["scan", s(&data), "t", "--format", "count"]);
    assert!(err.contains("rollback detected"), "{err}");
    let err = refused(&["--accept-rollback", "scan", s(&data), "t", "--format", "count"]);
    assert!(err.contains("never moves back"), "{err}");
}

#[test]
fn a_load_cut_off_by_killing_the_server_commits_all_or_nothing_and_can_be_retried() {
    let mut setup = Setup::new(60.0);
    setup.init();
    let data = setup.data();
    let small = setup.csv(1_000);
    ok(&["load", s(&data), "t", s(&small)]);
    let big = setup.csv(400_000);
    let listen = setup.server.address.clone();
    let load = sealstore()
        .args(["load", s(&data), "t", s(&big)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SIGKILL: no goodbye to the node.
    setup.server.kill();
    let out = load.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    if !out.status.success() {
        assert!(err.contains("key server"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // The server back on the same address: the cluster holds the old rows or all of them.
    setup.server = Server::start(&setup.server_dir, &setup.certs, &listen, 60.0);
    let rows = count(&data, "t");
    assert!(rows == "1000" || rows == "401000", "{rows}");
    assert!(ok(&["verify", s(&data)]).contains("0 failures"));
    if rows == "1000" {
        ok(&["load", s(&data), "t", s(&big)]);
        assert_eq!(count(&data, "t"), "401000");
    }
    assert!(ok(&["verify", s(&data)]).contains("0 failures"));
}

#[test]
fn importing_a_local_key_store_moves_every_key_to_the_server_and_can_be_run_again() {
    let setup = Setup::new(60.0);
    let data = setup.root.join("local");
    ok(&["init", s(&data), "--nodes", "1", "--cluster-id", "shop2"]);
    let csv = setup.csv(3_000);
    ok(&["load", s(&data), "t", s(&csv)]);
    ok(&["rotate", s(&data)]);
    ok(&["certs", s(&setup.certs), "--cluster", "shop2"]);
    // Leftovers of an import that stopped before registering the cluster are replaced.
    let clusters = setup.server_dir.join("clusters");
    std::fs::create_dir_all(clusters.join(".import-shop2")).unwrap();
    std::fs::create_dir_all(clusters.join("shop2")).unwrap();
    std::fs::write(clusters.join("shop2/keystore.ssk"), b"garbage").unwrap();
    let import = [
        "keyserver",
        "import",
        s(&setup.server_dir),
        s(&data),
        "--keyserver",
        &setup.server.url(),
        "--ca",
        &setup.cert("ca.pem"),
        "--cert",
        &setup.cert("node-shop2.pem"),
        "--key",
        &setup.cert("node-shop2.key"),
    ];
    assert!(ok(&import).contains("imported"));
    let config_dir = setup.root.join("local.keys/keystore");
    assert!(!config_dir.join("keystore.ssk").exists() && !config_dir.join("audit.log").exists());
    assert_eq!(count(&data, "t"), "3000");
    ok(&["load", s(&data), "t", s(&csv)]);
    assert_eq!(count(&data, "t"), "6000");
    assert!(ok(&["verify", s(&data)]).contains("0 failures"));
    // The chain moved with the keys: the local history and the import are in it.
    let audit = ok(&["audit", s(&data), "--verify"]);
    assert!(
        audit.contains("RotateMasterKey") && audit.contains("RotateDatabaseKey"),
        "{audit}"
    );
    assert!(ok(&import).contains("already uses the key server"));
    assert_eq!(count(&data, "t"), "6000");
}

#[test]
fn the_servers_master_key_rotates_with_the_server_stopped_and_every_cluster_reopens() {
    let mut setup = Setup::new(60.0);
    setup.init();
    let data = setup.data();
    let csv = setup.csv(500);
    ok(&["load", s(&data), "t", s(&csv)]);
    let listen = setup.server.address.clone();
    setup.server.kill();
    // The killed server left its admin socket: nobody answers, the directory is rotated here.
    assert!(setup.server_dir.join("admin.sock").exists());
    let out = ok(&["keyserver", "rotate-master", s(&setup.server_dir)]);
    assert!(
        out.contains("the server was stopped")
            && out.contains("1 cluster keys re-wrapped")
            && out.contains("master.v2.key"),
        "{out}"
    );
    let again = run(&["keyserver", "rotate-master", s(&setup.server_dir), "--new-master-key"]);
    assert_eq!(again.status.code(), Some(2), "--new-master-key needs a value");
    // The old key wraps nothing any more.
    std::fs::remove_file(setup.server_dir.join("master.key")).unwrap();
    setup.server = Server::start(&setup.server_dir, &setup.certs, &listen, 60.0);
    assert_eq!(count(&data, "t"), "500");
    let info = ok(&["info", s(&data)]);
    let audit = ok(&["audit", s(&data), "--verify"]);
    assert!(audit.contains("RotateMasterKey"), "{audit}");
    assert!(info.contains("cluster key: generation 1"), "{info}");
}

#[test]
fn the_servers_master_key_rotates_while_it_serves_and_its_nodes_keep_working() {
    let mut setup = Setup::new(60.0);
    setup.init();
    let data = setup.data();
    let csv = setup.csv(500);
    ok(&["load", s(&data), "t", s(&csv)]);
    // A second cluster the running server has not opened yet is re-wrapped too.
    ok(&["keyserver", "add-cluster", s(&setup.server_dir), "--cluster", "bee"]);
    let out = ok(&["keyserver", "rotate-master", s(&setup.server_dir)]);
    assert!(
        out.contains("the server kept serving")
            && out.contains("2 cluster keys re-wrapped")
            && out.contains("master.v2.key"),
        "{out}"
    );
    // The same server process goes on: a load, a scan, a cluster-key rotation (which unwraps
    // the cluster key under the new master key), then a second master-key rotation.
    ok(&["load", s(&data), "u", s(&csv)]);
    assert_eq!(count(&data, "t"), "500");
    assert!(ok(&["rotate", s(&data)]).contains("cluster key rotated: now generation 2"));
    let out = ok(&["keyserver", "rotate-master", s(&setup.server_dir)]);
    assert!(
        out.contains("master.v3.key") && out.contains("2 cluster keys re-wrapped"),
        "{out}"
    );
    // Restarted without the retired key files, the server opens every store under the key its
    // registry names.
    let listen = setup.server.address.clone();
    setup.server.kill();
    for retired in ["master.key", "master.v2.key"] {
        std::fs::remove_file(setup.server_dir.join(retired)).unwrap();
    }
    setup.server = Server::start(&setup.server_dir, &setup.certs, &listen, 60.0);
    assert_eq!(count(&data, "u"), "500");
    let audit = ok(&["audit", s(&data), "--verify"]);
    assert!(audit.matches("RotateMasterKey").count() >= 2, "{audit}");
    assert!(ok(&["verify", s(&data)]).contains("0 failures"));
}

#[test]
fn a_second_server_on_the_same_directory_is_refused_in_one_line() {
    let setup = Setup::new(60.0);
    let err = refused(&[
        "keyserver",
        "serve",
        s(&setup.server_dir),
        "--listen",
        "127.0.0.1:0",
        "--cert",
        &setup.cert("server.pem"),
        "--key",
        &setup.cert("server.key"),
        "--client-ca",
        &setup.cert("ca.pem"),
    ]);
    assert!(err.contains("another key server serves it"), "{err}");
}

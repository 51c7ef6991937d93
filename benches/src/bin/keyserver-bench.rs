//! Key-server numbers (issue 15), through real mutual TLS on loopback:
//!
//! - `requests CLIENTS SECONDS`: CLIENTS threads, each with its own connection and node
//!   certificate, ask for a database's keys as fast as they can; prints requests per second and
//!   the latency percentiles.
//! - `load ROWS`: loads ROWS lineitem rows into a cluster whose keys are in a local key store
//!   and into one whose keys are on a key server, twice each, alternating, in one run; prints
//!   each throughput and the ratio keyserver / local.
//!
//! The server runs in this process (`sealstore_keyserver::server::serve` on a thread), the
//! clients talk TLS 1.3 to it over 127.0.0.1. Output: one JSON object per run; method and
//! figures in `docs/benchmarks.md`.
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealstore_cluster::datagen::{Lineitem, lineitem_schema};
use sealstore_cluster::{Cluster, Distribution, InitOptions, ProviderConfig};
use sealstore_keyring::provider::LocalKeyFile;
use sealstore_keyring::{KeyStoreBackend, Keyring, MasterKeyProvider};
use sealstore_keyserver::certs::{CertOptions, make_dev_certs};
use sealstore_keyserver::client::{Connection, KeyServerAddress};
use sealstore_keyserver::{KeyServerDir, RemoteKeyStore, ServeOptions};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A server directory with cluster `bench`, its certificates, and the server on a thread.
fn start_server(root: &Path) -> Res<String> {
    let certs = root.join("certs");
    make_dev_certs(
        &certs,
        &CertOptions {
            cluster: Some("bench".into()),
            not_after: None,
        },
    )?;
    let server = KeyServerDir::init(&root.join("server"), None)?;
    let mk: Arc<dyn MasterKeyProvider> = Arc::new(LocalKeyFile::create(&server.path().join("master.key"), None)?);
    server.add_cluster("bench", mk.clone())?;
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse()?,
        cert: certs.join("server.pem"),
        key: certs.join("server.key"),
        client_ca: certs.join("ca.pem"),
        lease: Duration::from_secs(60),
        open_provider: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = sealstore_keyserver::server::serve(server, mk, options, |running| {
            let _ = tx.send(running.address.to_string());
        });
        if let Err(e) = result {
            eprintln!("key server: {e}");
        }
    });
    Ok(rx.recv_timeout(Duration::from_secs(10))?)
}

fn connect(root: &Path, address: &str) -> Res<RemoteKeyStore> {
    let certs = root.join("certs");
    Ok(RemoteKeyStore::connect(
        address,
        &certs.join("ca.pem"),
        &certs.join("node-bench.pem"),
        &certs.join("node-bench.key"),
        Some("bench"),
    )?)
}

fn requests(clients: usize, seconds: f64) -> Res<()> {
    let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
    let address = start_server(dir.path())?;
    let store = Arc::new(connect(dir.path(), &address)?);
    let ring = Keyring::with_backend(store.clone());
    drop(ring.create_database("dev", &dir.path().join("deks"))?);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let certs = dir.path().join("certs");
            let address = address.clone();
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let config = sealstore_keyserver::tls::client_config(
                    &certs.join("ca.pem"),
                    Some((&certs.join("node-bench.pem"), &certs.join("node-bench.key"))),
                )
                .map_err(|e| e.to_string())?;
                let conn = Connection::new(KeyServerAddress::parse(&address).map_err(|e| e.to_string())?, config);
                let store = RemoteKeyStore::with_connection(conn, Some("bench")).map_err(|e| e.to_string())?;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let keys = store.database_keys("dev").map_err(|e| e.to_string())?;
                    latencies.push(t.elapsed());
                    assert_eq!(keys.len(), 1);
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        all.extend(t.join().map_err(|_| "a client thread panicked")??);
    }
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{}",
        serde_json::json!({
            "mode": "requests",
            "clients": clients,
            "seconds": seconds,
            "requests": all.len(),
            "requests_per_second": all.len() as f64 / seconds,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
        })
    );
    Ok(())
}

fn load_once(data: &Path, provider: Option<ProviderConfig>, cluster_id: Option<&str>, rows: usize) -> Res<f64> {
    let options = InitOptions {
        nodes: 2,
        slices_per_node: 2,
        threads: Some(2),
        provider,
        cluster_id: cluster_id.map(str::to_owned),
        ..Default::default()
    };
    let cluster = Cluster::init(data, options)?;
    let db = cluster.database("dev")?;
    db.create_table("lineitem", &lineitem_schema(), Distribution::Even)?;
    let batches: Vec<_> = Lineitem::new(rows, 7).collect();
    let started = Instant::now();
    db.append("lineitem", batches)?;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(db.row_count("lineitem")?, rows as u64);
    Ok(rows as f64 / seconds)
}

fn load(rows: usize) -> Res<()> {
    let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
    let root = dir.path();
    let address = start_server(root)?;
    let certs = root.join("certs");
    let remote = |n: usize| -> Res<f64> {
        // A fresh server cluster per round (init needs one without databases).
        let server = KeyServerDir::open(&root.join("server"))?;
        let id = format!("bench{n}");
        make_dev_certs(
            &certs,
            &CertOptions {
                cluster: Some(id.clone()),
                not_after: None,
            },
        )?;
        let mk: Arc<dyn MasterKeyProvider> = Arc::new(LocalKeyFile::open(&server.path().join("master.key"), None)?);
        server.add_cluster(&id, mk)?;
        let provider = ProviderConfig::KeyServer {
            address: address.clone(),
            ca: certs.join("ca.pem"),
            cert: certs.join(format!("node-{id}.pem")),
            key: certs.join(format!("node-{id}.key")),
        };
        load_once(&root.join(format!("remote-{n}")), Some(provider), Some(&id), rows)
    };
    let mut local = Vec::new();
    let mut keyserver = Vec::new();
    for round in 0..2 {
        local.push(load_once(&root.join(format!("local-{round}")), None, None, rows)?);
        keyserver.push(remote(round)?);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!(
        "{}",
        serde_json::json!({
            "mode": "load",
            "rows": rows,
            "local_rows_per_second": local,
            "keyserver_rows_per_second": keyserver,
            "ratio_best": best(&keyserver) / best(&local),
        })
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: f64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("requests") => requests(arg(1, 8.0) as usize, arg(2, 5.0)),
        Some("load") => load(arg(1, 6_000_000.0) as usize),
        _ => Err("usage: keyserver-bench requests CLIENTS SECONDS | load ROWS".into()),
    }
}

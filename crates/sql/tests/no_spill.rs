//! Nothing a query computes reaches disk in plaintext: a sort and a join far larger than the
//! memory limit fail with a clear error instead of spilling, and no file under the temporary
//! directory (nor the data directory) holds the rows' marker.
mod common;

use std::path::Path;
use std::sync::Arc;

use sealstore_cluster::{Cluster, InitOptions};
use sealstore_sql::{Engine, SqlOptions};

const MARKER: &str = "PLAINTEXT-MARKER-7f3a";

fn files_holding(root: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn a_sort_and_a_join_beyond_the_memory_limit_fail_instead_of_spilling_plaintext() {
    // This test binary's only test: the temporary directory is its own.
    let tmp = tempfile::tempdir().unwrap();
    set_tmpdir(tmp.path());
    let data = tempfile::tempdir().unwrap();
    let options = InitOptions {
        threads: Some(2),
        ..InitOptions::default()
    };
    let cluster = Arc::new(Cluster::init(&data.path().join("data"), options).unwrap());
    let engine = Engine::new(cluster, SqlOptions::database("dev").with_memory_limit(8 << 20)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let load = format!(
            "CREATE TABLE big AS SELECT value AS id, concat('{MARKER}', value, repeat('x', 100)) AS payload FROM generate_series(1, 400000)"
        );
        engine.sql(&load).await.unwrap();
        for query in [
            "SELECT payload FROM big ORDER BY payload DESC",
            "SELECT a.payload, b.payload FROM big a JOIN big b ON a.id = b.id + 1",
        ] {
            let err = engine.sql(query).await.unwrap().collect().await.unwrap_err();
            let text = sealstore_sql::Error::from(err).to_string();
            assert!(text.contains("Resources exhausted") || text.contains("memory"), "{query}: {text}");
        }
    });
    assert_eq!(
        files_holding(tmp.path(), MARKER.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        files_holding(data.path(), MARKER.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );
}

/// Points TMPDIR (where DataFusion's default disk manager would spill) at `dir`.
fn set_tmpdir(dir: &Path) {
    // The test harness runs this binary's single test on one thread before any runtime exists.
    #[allow(unsafe_code)]
    // SAFETY: no other thread exists yet that reads or writes the environment.
    unsafe {
        std::env::set_var("TMPDIR", dir);
    }
}

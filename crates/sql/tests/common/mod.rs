//! Shared helpers: a fresh cluster and results as comparable rows.
#![allow(dead_code)]
use std::sync::Arc;

use arrow_array::RecordBatch;
use sealstore_cluster::{Cluster, InitOptions};
use sealstore_sql::datafusion::common::ScalarValue;
use sealstore_sql::{Engine, SqlOptions};

/// A cluster in a temporary directory (4 slices, 2 threads).
pub fn cluster(dir: &tempfile::TempDir) -> Arc<Cluster> {
    let options = InitOptions {
        threads: Some(2),
        ..InitOptions::default()
    };
    Arc::new(Cluster::init(&dir.path().join("data"), options).unwrap())
}

pub fn engine(cluster: &Arc<Cluster>) -> Engine {
    Engine::new(cluster.clone(), SqlOptions::database("dev")).unwrap()
}

/// Runs one statement and collects its result.
pub async fn run(engine: &Engine, sql: &str) -> sealstore_sql::Result<Vec<RecordBatch>> {
    Ok(engine.sql(sql).await?.collect().await?)
}

/// Every row of `batches`, each value as a DataFusion scalar; strings and binary as their
/// plain scalars whether they came as views (sealed tables) or offsets (`MemTable`s).
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<ScalarValue>> {
    let plain = |v: ScalarValue| match v {
        ScalarValue::Utf8View(s) => ScalarValue::Utf8(s),
        ScalarValue::BinaryView(b) => ScalarValue::Binary(b),
        other => other,
    };
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| plain(ScalarValue::try_from_array(c, r).unwrap()))
                    .collect(),
            );
        }
    }
    out
}

/// Equal, floats within 1e-9 relative.
pub fn same_value(a: &ScalarValue, b: &ScalarValue) -> bool {
    match (a, b) {
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => {
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        _ => a == b,
    }
}

pub fn same_rows(a: &[Vec<ScalarValue>], b: &[Vec<ScalarValue>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q)))
}

/// Rows in a canonical order (for results without ORDER BY).
pub fn sorted(mut rows: Vec<Vec<ScalarValue>>) -> Vec<Vec<ScalarValue>> {
    rows.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    rows
}

//! Pushed-down filters answer exactly what DataFusion answers without pushdown: random data
//! with nulls, random predicates, sealed tables against `MemTable`s over the same batches.
mod common;

use std::sync::Arc;

use arrow_array::{Date32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::*;
use proptest::prelude::*;
use sealstore_cluster::{Cluster, Distribution, InitOptions};
use sealstore_sql::datafusion::datasource::MemTable;
use sealstore_sql::datafusion::prelude::SessionContext;
use sealstore_sql::{Engine, SqlOptions};

const ROWS: usize = 20_000;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("f", DataType::Float64, true),
        Field::new("d", DataType::Date32, true),
    ]))
}

/// Sorted-ish data (so zone maps prune) with nulls every few rows.
fn batches(seed: u64) -> Vec<RecordBatch> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = ["apple", "apricot", "banana", "cherry", "PROMO a", "PROMO b", "zeta"];
    (0..ROWS / 5_000)
        .map(|chunk| {
            let base = chunk * 5_000;
            let mut i = Vec::new();
            let mut s = Vec::new();
            let mut f = Vec::new();
            let mut d = Vec::new();
            for r in base..base + 5_000 {
                let n = next();
                let null = n % 11 == 0;
                i.push((!null).then_some(r as i64 / 7));
                s.push((n % 13 != 0).then(|| words[(r / 3_000 + (n as usize % 2)) % words.len()]));
                f.push((n % 17 != 0).then_some((n % 1000) as f64 / 10.0));
                d.push((n % 19 != 0).then_some(9_000 + (r / 20) as i32));
            }
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(i)),
                    Arc::new(StringArray::from(s)),
                    Arc::new(Float64Array::from(f)),
                    Arc::new(Date32Array::from(d)),
                ],
            )
            .unwrap()
        })
        .collect()
}

fn atom() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]);
    prop_oneof![
        (op.clone(), 0i64..3_000).prop_map(|(op, v)| format!("i {op} {v}")),
        (op.clone(), 0i64..3_000).prop_map(|(op, v)| format!("{v} {op} i")),
        (0i64..3_000, 0i64..400).prop_map(|(a, w)| format!("i BETWEEN {a} AND {}", a + w)),
        (
            op.clone(),
            prop::sample::select(vec!["apple", "banana", "PROMO a", "b", "zz"])
        )
            .prop_map(|(op, v)| format!("s {op} '{v}'")),
        (op, 0u32..1000).prop_map(|(op, v)| format!("f {op} {}", f64::from(v) / 10.0)),
        (0i32..300).prop_map(|v| format!("d >= DATE '1994-08-24' + INTERVAL '{v}' DAY")),
        prop::sample::select(vec!["i", "s", "f", "d"]).prop_map(|c| format!("{c} IS NULL")),
        prop::sample::select(vec!["i", "s", "f", "d"]).prop_map(|c| format!("{c} IS NOT NULL")),
        prop::collection::vec(0i64..3_000, 1..4).prop_map(|vs| {
            let list: Vec<String> = vs.iter().map(ToString::to_string).collect();
            format!("i IN ({})", list.join(", "))
        }),
        prop::sample::select(vec!["ap%", "PROMO%", "PROMO%b", "%a", "b_nana", "zeta"])
            .prop_map(|p| format!("s LIKE '{p}'")),
    ]
}

fn predicate() -> impl Strategy<Value = String> {
    prop_oneof![
        atom(),
        (atom(), atom()).prop_map(|(a, b)| format!("{a} AND {b}")),
        (atom(), atom()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
        (atom(), atom(), atom()).prop_map(|(a, b, c)| format!("{a} AND ({b} OR {c})")),
    ]
}

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    reference: SessionContext,
    rt: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let options = InitOptions {
        threads: Some(2),
        block_size: 64 << 10,
        ..InitOptions::default()
    };
    let cluster = Arc::new(Cluster::init(&dir.path().join("data"), options).unwrap());
    let data = batches(7);
    let db = cluster.database("dev").unwrap();
    db.load(
        "t",
        Some((schema().as_ref().clone(), Distribution::Even)),
        data.iter().cloned().map(Ok),
    )
    .unwrap();
    let reference = SessionContext::new();
    reference
        .register_table("t", Arc::new(MemTable::try_new(schema(), vec![data]).unwrap()))
        .unwrap();
    Fixture {
        engine: Engine::new(cluster, SqlOptions::database("dev")).unwrap(),
        reference,
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        _dir: dir,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn pushed_filters_return_exactly_what_datafusion_returns_unpushed(p in predicate()) {
        thread_local!(static FIXTURE: Fixture = fixture());
        FIXTURE.with(|fx| {
            let sql = format!("SELECT i, s, f, d FROM t WHERE {p}");
            let ours = fx.rt.block_on(run(&fx.engine, &sql)).unwrap();
            let theirs = fx.rt.block_on(async { fx.reference.sql(&sql).await?.collect().await }).unwrap();
            let (ours, theirs) = (sorted(rows(&ours)), sorted(rows(&theirs)));
            prop_assert!(same_rows(&ours, &theirs), "{p}: {} rows vs {}", ours.len(), theirs.len());
            Ok(())
        })?;
    }
}

#[test]
fn explain_analyze_shows_blocks_pruned_before_decryption() {
    let fx = fixture();
    let plan = fx
        .rt
        .block_on(run(
            &fx.engine,
            "EXPLAIN ANALYZE SELECT count(*) FROM t WHERE i BETWEEN 10 AND 20",
        ))
        .unwrap();
    let text = sealstore_sql::datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(
        text.contains("SealedScanExec") && text.contains("predicates=[i >= 10 AND i <= 20]"),
        "{text}"
    );
    let metric = |name: &str| -> usize {
        let at = text
            .find(&format!("{name}="))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            + name.len()
            + 1;
        text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(metric("blocks_pruned") > 0, "{text}");
    assert!(metric("blocks_decrypted") < metric("blocks_total"), "{text}");
}

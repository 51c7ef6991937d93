//! Write statements through SQL: each is one sealed commit, a failed one commits nothing, and
//! a query reads one snapshot.
mod common;

use common::*;
use sealstore_sql::datafusion::arrow::array::{AsArray, RecordBatch};
use sealstore_sql::datafusion::arrow::datatypes::Int64Type;
use sealstore_sql::datafusion::common::ScalarValue;

fn count(batches: &[RecordBatch]) -> i64 {
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

async fn rows_of(engine: &sealstore_sql::Engine, table: &str) -> i64 {
    count(&run(engine, &format!("SELECT count(*) FROM {table}")).await.unwrap())
}

/// A statement whose input fails at row 250,000 of 300,000: several batches reached the
/// transaction before the failure.
const FAILING_ROWS: &str = "SELECT value AS id, 10 / (value - 250000) AS x FROM generate_series(1, 300000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_whose_input_fails_midway_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(&dir);
    let engine = engine(&cluster);
    run(&engine, "CREATE TABLE t (id BIGINT, x BIGINT)").await.unwrap();
    run(&engine, "INSERT INTO t VALUES (1, 1), (2, 2)").await.unwrap();
    let generation = cluster.database("dev").unwrap().generation();
    let err = run(&engine, &format!("INSERT INTO t {FAILING_ROWS}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Divide by zero"), "{err}");
    assert_eq!(rows_of(&engine, "t").await, 2);
    assert_eq!(cluster.database("dev").unwrap().generation(), generation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_as_select_that_fails_midway_leaves_no_table() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(&dir);
    let engine = engine(&cluster);
    let err = run(&engine, &format!("CREATE TABLE c AS {FAILING_ROWS}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Divide by zero"), "{err}");
    assert!(!cluster.database("dev").unwrap().tables().contains(&"c".to_owned()));
    run(
        &engine,
        "CREATE TABLE c AS SELECT value AS id FROM generate_series(1, 100000)",
    )
    .await
    .unwrap();
    assert_eq!(rows_of(&engine, "c").await, 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_or_replace_swaps_the_table_in_one_commit_and_a_failed_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(&dir);
    let engine = engine(&cluster);
    run(
        &engine,
        "CREATE TABLE r AS SELECT value AS id FROM generate_series(1, 10)",
    )
    .await
    .unwrap();
    let err = run(&engine, &format!("CREATE OR REPLACE TABLE r AS {FAILING_ROWS}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Divide by zero"), "{err}");
    assert_eq!(rows_of(&engine, "r").await, 10);
    let before = cluster.database("dev").unwrap().generation();
    run(&engine, "CREATE OR REPLACE TABLE r AS SELECT 'a' AS name")
        .await
        .unwrap();
    assert_eq!(
        cluster.database("dev").unwrap().generation(),
        before + 1,
        "drop and create are one commit"
    );
    let names = run(&engine, "SELECT name FROM r").await.unwrap();
    assert_eq!(rows(&names), vec![vec![ScalarValue::Utf8(Some("a".into()))]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_table_through_a_plain_session_context_is_one_commit_too() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(&dir);
    let ctx = sealstore_sql::datafusion::prelude::SessionContext::new();
    sealstore_sql::register(&ctx, cluster.clone());
    ctx.sql("CREATE TABLE dev.p AS SELECT value AS id FROM generate_series(1, 1000)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let n = ctx
        .sql("SELECT count(*) FROM dev.p")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(count(&n), 1000);
    assert_eq!(cluster.database("dev").unwrap().row_count("p").unwrap(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_table_through_sql_shreds_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(&dir);
    let engine = engine(&cluster);
    run(
        &engine,
        "CREATE TABLE keep AS SELECT value AS id FROM generate_series(1, 10)",
    )
    .await
    .unwrap();
    let with_keep = cluster.database("dev").unwrap().dek_count();
    run(
        &engine,
        "CREATE TABLE gone AS SELECT value AS id, 'secret' AS s FROM generate_series(1, 200000)",
    )
    .await
    .unwrap();
    assert!(cluster.database("dev").unwrap().dek_count() > with_keep);
    run(&engine, "DROP TABLE gone").await.unwrap();
    assert_eq!(cluster.database("dev").unwrap().dek_count(), with_keep);
    let err = run(&engine, "SELECT * FROM gone").await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_reads_one_commit_while_inserts_land() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(&dir);
    let engine = engine(&cluster);
    run(
        &engine,
        "CREATE TABLE a AS SELECT value AS id FROM generate_series(1, 100)",
    )
    .await
    .unwrap();
    run(
        &engine,
        "CREATE TABLE b AS SELECT value AS id FROM generate_series(1, 100)",
    )
    .await
    .unwrap();
    // Planned (both tables pinned) before the inserts, executed after them.
    let ctx = engine.context();
    let join = ctx
        .sql("SELECT (SELECT count(*) FROM a) AS a, (SELECT count(*) FROM b) AS b")
        .await
        .unwrap();
    run(&engine, "INSERT INTO a SELECT value FROM generate_series(1, 50)")
        .await
        .unwrap();
    run(&engine, "INSERT INTO b SELECT value FROM generate_series(1, 50)")
        .await
        .unwrap();
    let seen = join.collect().await.unwrap();
    let a = seen[0].column(0).as_primitive::<Int64Type>().value(0);
    let b = seen[0].column(1).as_primitive::<Int64Type>().value(0);
    assert_eq!((a, b), (100, 100));
    assert_eq!(rows_of(&engine, "a").await, 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_types_and_statements_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(&dir);
    let engine = engine(&cluster);
    let generation = cluster.database("dev").unwrap().generation();
    let err = run(&engine, "CREATE TABLE d (price DECIMAL(10, 2))").await.unwrap_err();
    assert!(err.to_string().contains("`price` has type Decimal128(10, 2)"), "{err}");
    let err = run(&engine, "CREATE TABLE k (id INT PRIMARY KEY)").await.unwrap_err();
    assert!(err.to_string().contains("constraints"), "{err}");
    run(&engine, "CREATE TABLE t (id INT, name VARCHAR)").await.unwrap();
    let err = run(&engine, "INSERT INTO t VALUES ('not a number', 'x')")
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("cast"), "{err}");
    let err = run(&engine, "CREATE TABLE t (id INT)").await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(cluster.database("dev").unwrap().generation(), generation + 1);
    assert_eq!(rows_of(&engine, "t").await, 0);
}

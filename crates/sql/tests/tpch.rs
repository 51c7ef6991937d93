//! TPC-H end to end: the 22 queries on sealed tables give the same answers as DataFusion's
//! in-memory tables over the same generated batches.
mod common;

use std::sync::Arc;

use common::*;
use sealstore_sql::datafusion::datasource::MemTable;
use sealstore_sql::datafusion::prelude::SessionContext;
use sealstore_sql::tpch;

const SCALE_FACTOR: f64 = 0.01;

fn memtable_context() -> SessionContext {
    let ctx = SessionContext::new();
    for table in tpch::TABLES {
        let (schema, batches) = tpch::generate_all(table, SCALE_FACTOR).unwrap();
        let mem = MemTable::try_new(schema, vec![batches]).unwrap();
        ctx.register_table(table, Arc::new(mem)).unwrap();
    }
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_22_tpch_queries_match_datafusion_over_memory_tables() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(&dir);
    tpch::load(&cluster.database("dev").unwrap(), SCALE_FACTOR).unwrap();
    let engine = engine(&cluster);
    let reference = memtable_context();
    let mut mismatches = Vec::new();
    for (i, query) in tpch::QUERIES.iter().enumerate() {
        let ours = rows(&run(&engine, query).await.unwrap_or_else(|e| panic!("Q{}: {e}", i + 1)));
        let theirs = rows(&reference.sql(query).await.unwrap().collect().await.unwrap());
        assert!(
            !theirs.is_empty() || i + 1 == 15 || i + 1 == 20,
            "Q{} returned no rows at all",
            i + 1
        );
        let ordered = query.to_lowercase().contains("order by");
        let equal = if ordered {
            same_rows(&ours, &theirs)
        } else {
            same_rows(&sorted(ours.clone()), &sorted(theirs.clone()))
        };
        if !equal {
            mismatches.push(format!(
                "Q{}: sealstore {:?}\n  memtable {:?}",
                i + 1,
                ours.first(),
                theirs.first()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

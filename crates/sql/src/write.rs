//! Statements that write: every one is a single sealed commit through a `WriteTransaction`.
//!
//! The transaction runs on a blocking thread (it waits for the database's writer lock, seals
//! and syncs); the statement's result batches reach it over a bounded channel, so an
//! `INSERT … SELECT` of any size streams through without being materialised. Any error (in the
//! query producing the rows, a cast, or the commit) drops the transaction: nothing of the
//! statement is committed.
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use parking_lot::Mutex;
use sealstore_cluster::{Database, Distribution};

use crate::types::to_storable;
use crate::{Error, Result};

/// What a write statement does to its table before appending the rows.
#[derive(Debug, Clone)]
pub enum WriteTarget {
    /// `INSERT INTO table`.
    Append { table: String },
    /// `CREATE [OR REPLACE] TABLE table [AS …]`: created (after dropping the old one when
    /// `replace`) in the same commit as its rows.
    Create {
        table: String,
        schema: SchemaRef,
        replace: bool,
    },
}

impl WriteTarget {
    fn table(&self) -> &str {
        match self {
            WriteTarget::Append { table } | WriteTarget::Create { table, .. } => table,
        }
    }
}

/// Writes every batch of `input` as one commit; returns the rows written.
pub async fn write_stream(db: Arc<Database>, target: WriteTarget, mut input: SendableRecordBatchStream) -> Result<u64> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DataFusionError>>(2);
    let worker =
        tokio::task::spawn_blocking(move || commit_rows(&db, &target, std::iter::from_fn(move || rx.blocking_recv())));
    while let Some(item) = input.next().await {
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    worker
        .await
        .map_err(|e| Error::Unsupported(format!("write task failed: {e}")))?
}

/// Writes already computed batches as one commit (a `CREATE TABLE … AS` through a plain
/// `SessionContext`, which hands its result over as a `MemTable`).
pub fn write_batches(db: &Database, target: &WriteTarget, batches: Vec<RecordBatch>) -> Result<u64> {
    commit_rows(db, target, batches.into_iter().map(Ok))
}

fn commit_rows(
    db: &Database,
    target: &WriteTarget,
    rows: impl Iterator<Item = Result<RecordBatch, DataFusionError>>,
) -> Result<u64> {
    let mut txn = db.begin_write()?;
    if let WriteTarget::Create { table, schema, replace } = target {
        if *replace && txn.tables().iter().any(|t| t == table) {
            txn.drop_table(table)?;
        }
        txn.create_table(table, schema, Distribution::Even)?;
    }
    let table = target.table();
    let schema = txn.schema(table)?;
    // The input's own error is kept aside: the transaction only learns that the stream failed.
    let input_error: Mutex<Option<Error>> = Mutex::new(None);
    let batches = rows.map(|item| {
        item.map_err(Error::from)
            .and_then(|b| to_storable(&b, &schema))
            .map_err(|e| {
                input_error.lock().get_or_insert(e);
                sealstore_cluster::Error::Input("the statement's input failed".into())
            })
    });
    let appended = txn.append_stream(table, batches);
    if let Some(e) = input_error.lock().take() {
        return Err(e);
    }
    appended?;
    Ok(txn.commit()?.rows)
}

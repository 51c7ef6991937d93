//! `scan`: rows of one table, filtered by a SQL WHERE expression.
//!
//! The filter is parsed as one SQL expression by DataFusion's parser (sqlparser) and planned
//! against the table, so OR, IN, NOT, LIKE, arithmetic and casts mean what they mean in `sql`;
//! what sealstore can apply while scanning is pushed down, the rest DataFusion evaluates. Text
//! that is not one complete expression is refused.
//!
//! `--format count` never materialises rows: without a filter it answers from the manifests,
//! with one it reads only the filter's columns.
use std::path::Path;

use sealstore_sql::datafusion::common::TableReference;
use sealstore_sql::{CATALOG, Engine, SqlOptions};

use super::open_read_only;
use super::sql::{print_stream, query_error, runtime};
use crate::{CliError, CliResult, output};

/// What to scan and how to print it.
#[derive(Debug)]
pub(crate) struct ScanArgs<'a> {
    pub table: &'a str,
    pub database: &'a str,
    pub columns: Option<Vec<String>>,
    pub filter: Option<&'a str>,
    pub limit: Option<u64>,
    pub format: output::Format,
}

pub(crate) fn scan(dir: &Path, args: &ScanArgs) -> CliResult {
    let cluster = std::sync::Arc::new(open_read_only(dir)?);
    let db = cluster.database(args.database)?;
    let schema = db.schema(args.table)?;
    if let Some(cs) = &args.columns
        && let Some(bad) = cs.iter().find(|c| schema.field_with_name(c).is_err())
    {
        return Err(CliError::Usage(format!(
            "--columns: table `{}` has no column `{bad}`",
            args.table
        )));
    }
    if args.format == output::Format::Count && args.filter.is_none() {
        // The authenticated manifests know every table's row count: no block is read.
        let rows = db.begin_read().row_count(args.table)?;
        println!("{}", args.limit.map_or(rows, |l| rows.min(l)));
        return Ok(());
    }
    let rt = runtime(cluster.threads())?;
    let engine = Engine::new(cluster, SqlOptions::database(args.database)).map_err(query_error)?;
    rt.block_on(async {
        let ctx = engine.context();
        let table = TableReference::full(CATALOG, args.database, args.table);
        let mut df = ctx.table(table).await.map_err(|e| query_error(e.into()))?;
        if let Some(filter) = args.filter {
            let usage = |e: sealstore_sql::datafusion::error::DataFusionError| {
                CliError::Usage(format!("--where: {}", sealstore_sql::Error::from(e)))
            };
            let expr = df.parse_sql_expr(filter).map_err(usage)?;
            df = df.filter(expr).map_err(usage)?;
        }
        if args.format == output::Format::Count {
            // Counting reads only the filter's columns (DataFusion projects nothing else).
            if let Some(limit) = args.limit {
                let fetch = usize::try_from(limit).unwrap_or(usize::MAX);
                df = df.limit(0, Some(fetch)).map_err(|e| query_error(e.into()))?;
            }
            let rows = df.count().await.map_err(|e| query_error(e.into()))?;
            println!("{rows}");
            return Ok(());
        }
        if let Some(cs) = &args.columns {
            let names: Vec<&str> = cs.iter().map(String::as_str).collect();
            df = df.select_columns(&names).map_err(|e| query_error(e.into()))?;
        }
        if let Some(limit) = args.limit {
            let fetch = usize::try_from(limit).unwrap_or(usize::MAX);
            df = df.limit(0, Some(fetch)).map_err(|e| query_error(e.into()))?;
        }
        let stream = df.execute_stream().await.map_err(|e| query_error(e.into()))?;
        print_stream(stream, args.format).await
    })
}

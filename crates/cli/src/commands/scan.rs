//! `scan`.
use crate::CliError;
use std::path::Path;

use super::open_read_only;
use crate::{CliResult, output};

#[allow(clippy::too_many_arguments)]
pub(crate) fn scan(
    dir: &Path,
    table: &str,
    database: &str,
    columns: Option<Vec<String>>,
    filter: Option<&str>,
    limit: Option<u64>,
    format: output::Format,
) -> CliResult {
    let cluster = open_read_only(dir)?;
    let db = cluster.database(database)?;
    let schema = db.schema(table)?;
    let cols: Vec<(String, sealstore_blockstore::ColumnType)> = schema
        .fields()
        .iter()
        .map(|f| {
            (
                f.name().clone(),
                sealstore_blockstore::ColumnType::from_arrow(f.data_type()).expect("stored type"),
            )
        })
        .collect();
    if let Some(cs) = &columns
        && let Some(bad) = cs.iter().find(|c| !cols.iter().any(|(n, _)| n == *c))
    {
        return Err(CliError::Usage(format!(
            "--columns: table `{table}` has no column `{bad}`"
        )));
    }
    let predicates = match filter {
        Some(f) => sealstore_blockstore::parse_filter(f, &cols)?,
        None => Vec::new(),
    };
    let mut builder = db.scan(table).filters(predicates);
    if let Some(cs) = &columns {
        builder = builder.columns(cs);
    }
    let iter = builder.run()?;
    let headers: Vec<String> = iter.schema().fields().iter().map(|f| f.name().clone()).collect();
    let stdout = std::io::stdout();
    let mut printer = output::Printer::new(format, std::io::BufWriter::new(stdout.lock()), headers);
    let mut remaining = limit.unwrap_or(u64::MAX);
    for batch in iter {
        if remaining == 0 {
            break;
        }
        let batch = batch?;
        let batch = if (batch.num_rows() as u64) > remaining {
            batch.slice(0, remaining as usize)
        } else {
            batch
        };
        remaining -= batch.num_rows() as u64;
        if let Err(e) = printer.batch(&batch) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    match printer.finish() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

//! `load`: files (CSV, JSON, Arrow IPC, Parquet) into tables, all in one atomic commit.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow_schema::Schema;
use sealstore_cluster::{Distribution, WriteTransaction};

use super::open;
use sealstore_ingest::Format;

use crate::{CliError, CliResult};

/// One table to load and the CSV file its rows come from.
#[derive(Debug, Clone)]
pub(crate) struct TableFile {
    pub table: String,
    pub file: PathBuf,
}

impl TableFile {
    /// Parses `TABLE=FILE`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((table, file)) if !table.is_empty() && !file.is_empty() => Ok(Self {
                table: table.to_owned(),
                file: PathBuf::from(file),
            }),
            _ => Err(format!("`{s}`: expected TABLE=FILE")),
        }
    }
}

/// How `load` creates tables that do not exist yet.
#[derive(Debug)]
pub(crate) struct LoadOptions<'a> {
    pub database: &'a str,
    /// Distribution of new tables: even, key:COLUMN or all.
    pub dist: &'a str,
    /// Schema of new tables from CSV files (else inferred from each file).
    pub schema: Option<&'a str>,
    /// Format of every file (else from each file's extension).
    pub format: Option<Format>,
    pub budget_mib: usize,
}

/// Loads every `(table, file)` pair in one write transaction: either every file's rows are
/// committed, or (on any error, bad input included) nothing is.
pub(crate) fn load(dir: &Path, pairs: &[TableFile], options: &LoadOptions<'_>) -> CliResult {
    let dist = Distribution::parse(options.dist)?;
    let explicit = options.schema.map(sealstore_ingest::csv::parse_schema).transpose()?;
    if options.budget_mib == 0 || options.budget_mib > 1 << 20 {
        return Err(CliError::Usage(
            "--memory-budget must be between 1 and 1048576 MiB".into(),
        ));
    }
    if pairs.is_empty() {
        return Err(CliError::Usage(
            "nothing to load: give TABLE FILE or --table TABLE=FILE".into(),
        ));
    }
    let cluster = open(dir)?;
    cluster.set_memory_budget(options.budget_mib << 20);
    let db = cluster.database(options.database)?;
    let total: u64 = pairs
        .iter()
        .map(|p| std::fs::metadata(&p.file).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut txn = db.begin_write()?;
    let done_before = AtomicU64::new(0);
    for pair in pairs {
        let format = match options.format {
            Some(f) => f,
            None => Format::from_path(&pair.file),
        };
        if explicit.is_some() && format != Format::Csv {
            return Err(CliError::Usage(format!(
                "--schema applies to CSV files; {} carries its own schema",
                pair.file.display()
            )));
        }
        load_one(&mut txn, pair, format, explicit.as_ref(), &dist, &bar, &done_before)?;
    }
    let report = txn.commit()?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let names: Vec<String> = pairs
        .iter()
        .map(|p| format!("{}.{}", options.database, p.table))
        .collect();
    println!(
        "loaded {} rows ({} input bytes) into {} in {secs:.2} s: {:.1} MB/s, {} blocks sealed, commit generation {}",
        report.rows,
        total,
        names.join(", "),
        total as f64 / 1e6 / secs.max(1e-9),
        report.blocks_written,
        report.generation
    );
    Ok(())
}

/// Appends one file to one table of the open transaction, creating the table if absent.
fn load_one(
    txn: &mut WriteTransaction<'_>,
    pair: &TableFile,
    format: Format,
    explicit: Option<&Schema>,
    dist: &Distribution,
    bar: &indicatif::ProgressBar,
    done_before: &AtomicU64,
) -> CliResult {
    let (table, file) = (pair.table.as_str(), pair.file.as_path());
    let schema = if txn.tables().iter().any(|t| t == table) {
        let s = txn.schema(table)?;
        if let Some(e) = explicit
            && e.fields() != s.fields()
        {
            return Err(CliError::Usage(format!(
                "--schema does not match the existing table `{table}`"
            )));
        }
        s
    } else {
        let s = match explicit {
            Some(s) => Arc::new(s.clone()),
            None => sealstore_ingest::infer_schema(file, format)?,
        };
        txn.create_table(table, &s, dist.clone())?;
        s
    };
    let source = sealstore_ingest::open(file, format, schema)?;
    let counter = source.bytes_read.clone();
    let batches = source.batches;
    let base = done_before.load(Ordering::Relaxed);
    let input_error = std::cell::RefCell::new(None);
    let stream = batches.map(|b| {
        bar.set_position(base + counter.load(Ordering::Relaxed));
        b.map_err(|e| {
            let msg = e.to_string();
            *input_error.borrow_mut() = Some(CliError::from(e));
            sealstore_cluster::Error::Input(msg)
        })
    });
    let result = txn.append_stream(table, stream);
    done_before.store(base + counter.load(Ordering::Relaxed), Ordering::Relaxed);
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            bar.finish_and_clear();
            Err(input_error.into_inner().unwrap_or_else(|| CliError::from(e)))
        }
    }
}

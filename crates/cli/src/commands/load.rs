//! `load`: CSV files into tables, all in one atomic commit.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow_schema::Schema;
use sealstore_cluster::{Distribution, WriteTransaction};

use super::open;
use crate::{CliError, CliResult, csvload};

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
    /// Schema of new tables (else inferred from each file).
    pub schema: Option<&'a str>,
    pub budget_mib: usize,
}

/// Loads every `(table, file)` pair in one write transaction: either every file's rows are
/// committed, or (on any error, bad input included) nothing is.
pub(crate) fn load(dir: &Path, pairs: &[TableFile], options: &LoadOptions<'_>) -> CliResult {
    let dist = Distribution::parse(options.dist)?;
    let explicit = options.schema.map(csvload::parse_schema).transpose()?;
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
        load_one(&mut txn, pair, explicit.as_ref(), &dist, &bar, &done_before)?;
    }
    let report = txn.commit()?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let names: Vec<String> = pairs
        .iter()
        .map(|p| format!("{}.{}", options.database, p.table))
        .collect();
    println!(
        "loaded {} rows ({} CSV bytes) into {} in {secs:.2} s: {:.1} MB/s, {} blocks sealed, commit generation {}",
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
            Some(s) => s.clone(),
            None => csvload::infer_schema(file)?,
        };
        txn.create_table(table, &s, dist.clone())?;
        Arc::new(s)
    };
    let batches = csvload::CsvBatches::open(file, schema)?;
    let counter = batches.bytes_read.clone();
    let base = done_before.load(Ordering::Relaxed);
    let input_error = std::cell::RefCell::new(None);
    let stream = batches.map(|b| {
        bar.set_position(base + counter.load(Ordering::Relaxed));
        b.map_err(|e| {
            let msg = match &e {
                CliError::Usage(m) | CliError::Failure(m) => m.clone(),
            };
            *input_error.borrow_mut() = Some(e);
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

//! `sql`: statements through DataFusion over the cluster, one-shot or at an interactive prompt.
use std::io::Write;
use std::path::Path;

use arrow_array::RecordBatch;
use sealstore_sql::datafusion::execution::SendableRecordBatchStream;
use sealstore_sql::{Engine, SqlOptions};

use super::open;
use crate::{CliError, CliResult, output};

/// How `sql` runs.
#[derive(Debug)]
pub(crate) struct SqlArgs<'a> {
    pub database: &'a str,
    pub format: output::Format,
    pub memory_limit: usize,
}

/// A tokio runtime with one worker per core the cluster uses.
pub(crate) fn runtime(threads: usize) -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| CliError::Failure(format!("cannot start the query runtime: {e}")))
}

pub(crate) fn sql(dir: &Path, query: Option<&str>, args: &SqlArgs) -> CliResult {
    let cluster = std::sync::Arc::new(open(dir)?);
    let rt = runtime(cluster.threads())?;
    let options = SqlOptions::database(args.database).with_memory_limit(args.memory_limit);
    let engine = Engine::new(cluster, options).map_err(query_error)?;
    match query {
        Some(text) => rt.block_on(run_script(&engine, text, args.format)),
        None => interactive(&rt, &engine, args.format),
    }
}

/// A failed statement: exit 1 with the error on one line.
pub(crate) fn query_error(e: sealstore_sql::Error) -> CliError {
    CliError::Failure(e.to_string())
}

/// Runs every statement of `text` in order; stops at the first failure.
async fn run_script(engine: &Engine, text: &str, format: output::Format) -> CliResult {
    let statements = Engine::split(text).map_err(query_error)?;
    if statements.is_empty() {
        return Err(CliError::Usage("no SQL statement given".into()));
    }
    for statement in statements {
        run_statement(engine, &statement, format).await?;
    }
    Ok(())
}

async fn run_statement(engine: &Engine, statement: &str, format: output::Format) -> CliResult {
    let df = engine.sql(statement).await.map_err(query_error)?;
    let stream = df.execute_stream().await.map_err(|e| query_error(e.into()))?;
    print_stream(stream, format).await
}

/// Prints a result as it arrives (EXPLAIN's plans as plain text).
pub(crate) async fn print_stream(mut stream: SendableRecordBatchStream, format: output::Format) -> CliResult {
    use futures::StreamExt;
    let schema = stream.schema();
    let headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    if headers.is_empty() {
        // DDL: nothing to print but that it happened.
        while let Some(b) = stream.next().await {
            b.map_err(|e| query_error(e.into()))?;
        }
        println!("OK");
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if headers == ["plan_type", "plan"] {
        while let Some(b) = stream.next().await {
            let b = b.map_err(|e| query_error(e.into()))?;
            write_plans(&mut out, &b)?;
        }
        out.flush()?;
        return Ok(());
    }
    let mut printer = output::Printer::new(format, out, headers);
    while let Some(b) = stream.next().await {
        let b = b.map_err(|e| query_error(e.into()))?;
        if let Err(e) = printer.batch(&b) {
            return broken_pipe_is_fine(e);
        }
    }
    printer.finish().map(|_| ()).or_else(broken_pipe_is_fine)
}

fn broken_pipe_is_fine(e: std::io::Error) -> CliResult {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e.into())
    }
}

fn write_plans(out: &mut impl Write, batch: &RecordBatch) -> std::io::Result<()> {
    for r in 0..batch.num_rows() {
        let kind = output::value(batch.column(0).as_ref(), r).unwrap_or_default();
        let plan = output::value(batch.column(1).as_ref(), r).unwrap_or_default();
        writeln!(out, "{kind}:\n{plan}")?;
    }
    Ok(())
}

/// The prompt: statements end with `;` and may span lines; history lives for the session only
/// (never written to disk: statements can hold sensitive literals).
fn interactive(rt: &tokio::runtime::Runtime, engine: &Engine, format: output::Format) -> CliResult {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| CliError::Failure(format!("prompt: {e}")))?;
    let mut pending = String::new();
    let mut failed = 0usize;
    loop {
        let prompt = if pending.is_empty() {
            "sealstore> "
        } else {
            "       -> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if pending.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
                    return Ok(());
                }
                if trimmed.is_empty() {
                    continue;
                }
                pending.push_str(&line);
                pending.push('\n');
                if !trimmed.ends_with(';') {
                    continue;
                }
                let _ = editor.add_history_entry(pending.trim_end());
                let text = std::mem::take(&mut pending);
                // A failed statement is reported and the prompt goes on.
                if let Err(e) = rt.block_on(run_script(engine, &text, format)) {
                    let (CliError::Usage(m) | CliError::Failure(m)) = e;
                    eprintln!("error: {m}");
                    failed += 1;
                }
            }
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(ReadlineError::Eof) => {
                if !pending.trim().is_empty() {
                    let text = std::mem::take(&mut pending);
                    rt.block_on(run_script(engine, &text, format))?;
                }
                // Piped scripts keep going past a failed statement, like psql, but the exit
                // status still says something failed.
                return match failed {
                    0 => Ok(()),
                    n => Err(CliError::Failure(format!("{n} statement(s) failed"))),
                };
            }
            Err(e) => return Err(CliError::Failure(format!("prompt: {e}"))),
        }
    }
}

/// Runs one query for the demo, printing its result as a table; returns the result's rows.
pub(crate) fn demo_query(cluster: std::sync::Arc<sealstore_cluster::Cluster>, query: &str) -> CliResult<usize> {
    let rt = runtime(cluster.threads())?;
    let engine = Engine::new(cluster, SqlOptions::default()).map_err(query_error)?;
    rt.block_on(async {
        let batches = engine
            .sql(query)
            .await
            .map_err(query_error)?
            .collect()
            .await
            .map_err(|e| query_error(e.into()))?;
        let headers = batches
            .first()
            .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
            .unwrap_or_default();
        let mut printer = output::Printer::new(output::Format::Table, std::io::stdout().lock(), headers);
        for b in &batches {
            printer.batch(b)?;
        }
        Ok(printer.finish()? as usize)
    })
}

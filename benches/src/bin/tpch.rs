//! `tpch`: the 22 TPC-H queries on sealstore and on encrypted Parquet, side by side.
//!
//! `cargo run --release -p sealstore-benches --features tpch --bin tpch -- [--sf 1] [--runs 3]
//! [--threads 2] [--dir DIR] [--queries 1,6,14] [--explain]`, or `-- --write-csv DIR [--sf 1]` to write the
//! tables as CSV files (the input of `sealstore load` measurements).
use std::path::PathBuf;
use std::process::ExitCode;

use sealstore_benches::tpch::{TpchOptions, run, write_csv};

fn parse() -> Result<(TpchOptions, Option<PathBuf>), String> {
    let mut options = TpchOptions {
        scale_factor: 1.0,
        runs: 3,
        threads: 2,
        dir: None,
        queries: Vec::new(),
        explain: false,
    };
    let mut csv = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let bad = |v: &str| format!("{flag}: bad value `{v}`");
        match flag.as_str() {
            "--sf" => {
                let v = value()?;
                options.scale_factor = v.parse().map_err(|_| bad(&v))?;
            }
            "--runs" => {
                let v = value()?;
                options.runs = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad(&v))?;
            }
            "--threads" => {
                let v = value()?;
                options.threads = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad(&v))?;
            }
            "--dir" => options.dir = Some(PathBuf::from(value()?)),
            "--queries" => {
                let v = value()?;
                options.queries = v
                    .split(',')
                    .map(|q| q.trim().trim_start_matches(['q', 'Q']).parse().map_err(|_| bad(&v)))
                    .collect::<Result<_, _>>()?;
            }
            "--write-csv" => csv = Some(PathBuf::from(value()?)),
            "--explain" => options.explain = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((options, csv))
}

fn main() -> ExitCode {
    let (options, csv) = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tpch: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match csv {
        Some(dir) => write_csv(&dir, options.scale_factor),
        None => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))
            .and_then(|rt| rt.block_on(run(&options))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpch: {e}");
            ExitCode::FAILURE
        }
    }
}

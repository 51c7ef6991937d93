//! `sealstore`: the command-line tool. Exit codes: 0 success, 1 data/key/authentication
//! failure, 2 usage error. Errors are one line on stderr.
mod bench;
mod demo;
mod output;

pub(crate) use sealstore_cli::{CliError, CliResult, csvload, parse_size};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use sealstore_cluster::{Cluster, DEFAULT_DATABASE, Distribution, InitOptions};

#[derive(Parser, Debug)]
#[command(
    name = "sealstore",
    version,
    about = "Encrypted columnar block storage: every block sealed under its own key"
)]
struct Cli {
    /// Accept data files older than the generation bound into the key store (a deliberate
    /// restore from backup); recorded in the audit log.
    #[arg(long, global = true)]
    accept_rollback: bool,
    /// The cluster's key store directory (default: $SEALSTORE_KEYSTORE, else DIR.keys/keystore
    /// beside the data directory). Never read from the data directory.
    #[arg(long = "keystore", global = true, value_name = "KDIR")]
    keystore_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Set once from `--accept-rollback` before any command opens the cluster.
static ACCEPT_ROLLBACK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Set once from the global `--keystore` before any command opens the cluster.
static KEYSTORE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a cluster: master key file (if absent), cluster key, database `dev`.
    Init {
        dir: PathBuf,
        /// Local master key file, created with mode 0600 if absent (default: DIR.keys/master.key).
        #[arg(long)]
        master_key: Option<PathBuf>,
        /// Environment variable holding a passphrase that protects the master key file (Argon2id).
        #[arg(long)]
        passphrase_env: Option<String>,
        #[arg(long, default_value_t = 2)]
        nodes: u32,
        #[arg(long, default_value_t = 2)]
        slices_per_node: u32,
        /// Block size: a power of two from 64KiB to 16MiB (e.g. 1MiB, 256KiB, 65536).
        #[arg(long, default_value = "1MiB")]
        block_size: String,
        #[arg(long)]
        cluster_id: Option<String>,
        /// Directory of one node, repeated once per node in order (default: DIR/node-N).
        #[arg(long = "node-dir")]
        node_dirs: Vec<PathBuf>,
        /// Master key in a PKCS#11 token: the module (shared library) to load.
        #[arg(long, requires_all = ["pkcs11_token", "pkcs11_key"], conflicts_with_all = ["master_key", "passphrase_env"])]
        pkcs11_module: Option<PathBuf>,
        /// Label of the token holding the master key.
        #[arg(long, requires = "pkcs11_module")]
        pkcs11_token: Option<String>,
        /// Label of the AES-256 key in the token.
        #[arg(long, requires = "pkcs11_module")]
        pkcs11_key: Option<String>,
        /// Environment variable holding the token's user PIN.
        #[arg(long, default_value = "SEALSTORE_PKCS11_PIN", requires = "pkcs11_module")]
        pkcs11_pin_env: String,
        /// Create the AES-256 key in the token if it has no key with that label.
        #[arg(long, requires = "pkcs11_module")]
        pkcs11_create_key: bool,
        /// Master key in a KMS (AWS KMS API): key id, ARN or alias of a SYMMETRIC_DEFAULT key.
        #[arg(long, conflicts_with_all = ["master_key", "passphrase_env", "pkcs11_module"])]
        kms_key_id: Option<String>,
        /// Endpoint URL of the KMS (default: the AWS endpoint of the region).
        #[arg(long, requires = "kms_key_id")]
        kms_endpoint: Option<String>,
        /// Region of the KMS (default: from the AWS configuration, e.g. AWS_REGION).
        #[arg(long, requires = "kms_key_id")]
        kms_region: Option<String>,
    },
    /// Load a CSV file into a table as one atomic commit (creating the table if absent).
    Load {
        dir: PathBuf,
        table: String,
        file: PathBuf,
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        /// Distribution of a new table: even, key:COLUMN or all.
        #[arg(long, default_value = "even")]
        dist: String,
        /// Schema of a new table: "col:type,…" (types: bool i32 i64 f64 utf8 binary date timestamp).
        #[arg(long)]
        schema: Option<String>,
        /// In-flight memory budget of the load in MiB (Arrow input per step + queued sealed blocks).
        #[arg(long, default_value_t = 64)]
        memory_budget: usize,
    },
    /// Print rows of a table.
    Scan {
        dir: PathBuf,
        table: String,
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        /// Columns to print, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
        /// Filter: `col OP literal` (= != < <= > >=), `col BETWEEN a AND b`, `col IS [NOT] NULL`, joined by AND.
        #[arg(long = "where")]
        filter: Option<String>,
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long, value_enum, default_value = "table")]
        format: output::Format,
    },
    /// List tables.
    Tables {
        dir: PathBuf,
        #[arg(long)]
        database: Option<String>,
    },
    /// Show layout, key hierarchy (ids, generations, contexts; never key bytes) and storage.
    Info {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Authenticate every block, manifest, DEK table and the audit chain; exit 1 on any failure.
    Verify { dir: PathBuf },
    /// Print the audit log.
    Audit {
        dir: PathBuf,
        /// Check the hash chain.
        #[arg(long)]
        verify: bool,
        /// Only records of this operation (e.g. Unwrap, GenerateDataKey).
        #[arg(long)]
        op: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Rotate keys without re-encrypting data. Default: the cluster key and every database key
    /// (the warehouse's "rotate encryption key").
    Rotate {
        dir: PathBuf,
        /// Rotate the master key: a new local key file (FILE given by --new-master-key, default
        /// the next version beside the current one) re-wraps the cluster key.
        #[arg(long)]
        master: bool,
        /// The new master key for --master: a key file path (created with mode 0600 if absent),
        /// a PKCS#11 key label (created in the token if absent) or a KMS key id, after the
        /// cluster's provider kind. Default: the next version of the current one.
        #[arg(long, requires = "master")]
        new_master_key: Option<String>,
        /// Rotate the cluster key (every database key re-wrapped).
        #[arg(long)]
        cluster: bool,
        /// Rotate this database's key (every DEK re-wrapped); repeatable.
        #[arg(long)]
        database: Vec<String>,
        /// Rotate every tier: master, cluster and every database key.
        #[arg(long, conflicts_with_all = ["master", "cluster", "database"])]
        all: bool,
    },
    /// Re-encrypt every block under fresh DEKs (resumable after a crash: run it again).
    Rekey {
        dir: PathBuf,
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        /// Only this table (default: the whole database, metadata key included).
        #[arg(long)]
        table: Option<String>,
    },
    /// Drop a table and crypto-shred its DEKs.
    Drop {
        dir: PathBuf,
        table: String,
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
    },
    /// Create a database: a new database key and an empty store on every slice.
    CreateDatabase { dir: PathBuf, database: String },
    /// Drop a database and crypto-shred its database key.
    DropDatabase { dir: PathBuf, database: String },
    /// The main job: load, scan, verify and tamper with a lineitem-like table on the embedded default.
    Demo {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Directory to use (must not exist or be empty; default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Measure sealed vs unsealed write/scan throughput and AES-GCM speed.
    Bench {
        #[arg(long, default_value_t = 6_000_000)]
        rows: usize,
        /// Worker threads (also measured against 1 thread).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        json: bool,
        /// Directory for the benchmark's files (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Block size.
        #[arg(long, default_value = "1MiB")]
        block_size: String,
        /// In-flight memory budget of the load in MiB (sealed blocks queued for the slice
        /// writers get half of it; more queue depth smooths this VM's disk stalls).
        #[arg(long, default_value_t = 256)]
        memory_budget: usize,
    },
}

fn open_options(read_only: bool) -> sealstore_cluster::OpenOptions {
    sealstore_cluster::OpenOptions {
        threads: None,
        accept_rollback: ACCEPT_ROLLBACK.load(std::sync::atomic::Ordering::Relaxed),
        keystore: KEYSTORE.get().cloned().flatten(),
        read_only,
    }
}

/// Opens the cluster for a command that writes.
fn open(dir: &Path) -> CliResult<Cluster> {
    Ok(Cluster::open_with(dir, open_options(false))?)
}

/// Opens the cluster for a command that only reads: nothing in the data directory changes.
fn open_read_only(dir: &Path) -> CliResult<Cluster> {
    Ok(Cluster::open_with(dir, open_options(true))?)
}

fn rotate(
    dir: &Path,
    master: bool,
    new_master_key: Option<String>,
    cluster_key: bool,
    databases: Vec<String>,
    all: bool,
) -> CliResult {
    let cluster = open(dir)?;
    let default = !master && !cluster_key && databases.is_empty();
    let mut options = sealstore_cluster::RotateOptions {
        master: None,
        cluster: cluster_key || all || default,
        databases: if all || default { cluster.databases() } else { databases },
    };
    if master || all {
        let current = cluster.config().provider;
        options.master = Some(match new_master_key {
            Some(key) if matches!(current, sealstore_cluster::ProviderConfig::LocalKeyFile { .. }) => {
                current.with_key(&std::path::absolute(&key)?.to_string_lossy())
            }
            Some(key) => current.with_key(&key),
            None => current.next_version()?,
        });
    }
    let report = cluster.rotate(&options)?;
    if let Some((old, new)) = &report.master_key {
        println!(
            "master key rotated: {old} -> {new} (cluster key re-wrapped; keep the old key until no key-store backup needs it)"
        );
    }
    if let Some(g) = report.cluster_key_generation {
        println!("cluster key rotated: now generation {g} (every database key re-wrapped)");
    }
    for (name, g, deks) in &report.databases {
        println!("database key `{name}` rotated: now generation {g}, {deks} DEKs re-wrapped, old key destroyed");
    }
    println!("rotation done in {:.3} s; no block was re-encrypted", report.seconds);
    Ok(())
}

fn rekey(dir: &Path, database: &str, table: Option<&str>) -> CliResult {
    let cluster = open(dir)?;
    let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} blocks re-encrypted, eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let report = cluster.rekey(database, table, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let report = report?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "re-keyed {} blocks of {database}{} in {secs:.2} s ({:.1} MB/s, {} commits{}); old DEKs removed and shredded",
        report.blocks,
        table.map(|t| format!(".{t}")).unwrap_or_default(),
        report.bytes as f64 / 1e6 / secs.max(1e-9),
        report.commits,
        if report.resumed {
            ", resumed an interrupted re-key"
        } else {
            ""
        }
    );
    Ok(())
}

fn init(dir: &Path, options: InitOptions) -> CliResult {
    let cluster = Cluster::init(dir, options)?;
    let info = cluster.info()?;
    println!("initialized sealstore cluster in {}", info.data_dir.display());
    print_hierarchy(&info);
    Ok(())
}

fn print_hierarchy(info: &sealstore_cluster::ClusterInfo) {
    let h = &info.hierarchy;
    let c = &info.config;
    println!(
        "layout:      {} nodes x {} slices, block size {} bytes",
        c.nodes, c.slices_per_node, c.block_size
    );
    println!("key store:   {}", h.keystore.display());
    println!(
        "master key:  {} ({}), id {}",
        info.provider,
        if h.provider_secure {
            "symmetric AES-256"
        } else {
            "INSECURE test provider"
        },
        h.master_key_id
    );
    println!(
        "cluster key: generation {}, wrapped under context {}",
        h.cluster_key_generation, h.context
    );
    for d in &h.databases {
        println!(
            "database key `{}`: generation {}, wrapped under cluster key generation {}",
            d.name, d.database_key_generation, d.wrapped_under_cluster_key_generation
        );
    }
}

fn load(
    dir: &Path,
    table: &str,
    file: &Path,
    database: &str,
    dist: &str,
    schema: Option<&str>,
    budget_mib: usize,
) -> CliResult {
    let dist = Distribution::parse(dist)?;
    let explicit = schema.map(csvload::parse_schema).transpose()?;
    if budget_mib == 0 || budget_mib > 1 << 20 {
        return Err(CliError::Usage(
            "--memory-budget must be between 1 and 1048576 MiB".into(),
        ));
    }
    let cluster = open(dir)?;
    cluster.set_memory_budget(budget_mib << 20);
    let db = cluster.database(database)?;
    let exists = db.tables().iter().any(|t| t == table);
    let (schema, create) = if exists {
        let s = db.schema(table)?;
        if let Some(e) = &explicit
            && e.fields() != s.fields()
        {
            return Err(CliError::Usage(format!(
                "--schema does not match the existing table `{table}`"
            )));
        }
        (s, None)
    } else {
        let s = match explicit {
            Some(s) => s,
            None => csvload::infer_schema(file)?,
        };
        (Arc::new(s.clone()), Some((s, dist)))
    };
    let batches = csvload::CsvBatches::open(file, schema)?;
    let counter = batches.bytes_read.clone();
    let total = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let input_error = std::cell::RefCell::new(None);
    let started = Instant::now();
    let stream = batches.map(|b| {
        bar.set_position(counter.load(std::sync::atomic::Ordering::Relaxed));
        b.map_err(|e| {
            let msg = match &e {
                CliError::Usage(m) | CliError::Failure(m) => m.clone(),
            };
            *input_error.borrow_mut() = Some(e);
            sealstore_cluster::Error::Input(msg)
        })
    });
    let result = db.load(table, create, stream);
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            return Err(input_error.into_inner().unwrap_or_else(|| CliError::from(e)));
        }
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "loaded {} rows ({} CSV bytes) into {database}.{table} in {secs:.2} s: {:.1} MB/s, {} blocks sealed, commit generation {}",
        report.rows,
        total,
        total as f64 / 1e6 / secs.max(1e-9),
        report.blocks_written,
        report.generation
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn scan(
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

fn tables(dir: &Path, database: Option<&str>) -> CliResult {
    let cluster = open_read_only(dir)?;
    let names = match database {
        Some(d) => vec![d.to_owned()],
        None => cluster.databases(),
    };
    for name in names {
        let db = cluster.database(&name)?;
        for t in db.table_infos()? {
            let cols: Vec<String> = t.columns.iter().map(|(n, ty)| format!("{n}:{ty}")).collect();
            println!(
                "{name}.{}\trows={}\tblocks={}\tdist={}\t{}",
                t.name,
                t.rows,
                t.blocks,
                t.distribution,
                cols.join(",")
            );
        }
    }
    Ok(())
}

fn info(dir: &Path, json: bool) -> CliResult {
    let cluster = open_read_only(dir)?;
    let info = cluster.info()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&info).map_err(|e| CliError::Failure(e.to_string()))?
        );
        return Ok(());
    }
    println!("data directory: {}", info.data_dir.display());
    println!("cluster id:  {}", info.config.cluster_id);
    for (n, d) in info.config.node_dirs.iter().enumerate() {
        println!("node {n}:      {}", d.display());
    }
    print_hierarchy(&info);
    for d in &info.databases {
        println!(
            "database `{}`: {} tables, {} blocks, {} wrapped DEKs, {} bytes on disk, commit generation {}",
            d.name, d.tables, d.blocks, d.deks, d.disk_bytes, d.generation
        );
    }
    Ok(())
}

fn verify(dir: &Path) -> CliResult {
    let cluster = open_read_only(dir)?;
    let report = cluster.verify();
    for (db, f) in &report.blocks {
        println!(
            "FAIL {db}.{} column {} block {} in {} at offset {}: {}",
            f.table,
            f.column,
            f.block_id,
            f.path.display(),
            f.offset,
            f.error
        );
    }
    for (db, e) in &report.databases {
        println!("FAIL database {db}: {e}");
    }
    match &report.audit {
        Ok(a) => println!("audit chain intact: {} records", a.records),
        Err(e) => println!("FAIL audit log: {e}"),
    }
    let failures = report.blocks.len() + report.databases.len() + usize::from(report.audit.is_err());
    println!("{} blocks checked, {failures} failures", report.blocks_checked);
    if failures > 0 {
        return Err(CliError::Failure(format!("verification failed: {failures} failures")));
    }
    Ok(())
}

fn audit(dir: &Path, check: bool, op: Option<&str>, json: bool) -> CliResult {
    // Checking the chain needs the audit key, so the hierarchy is opened (read-only); listing
    // only reads the log under the key store's shared lock.
    let cluster = if check { Some(open_read_only(dir)?) } else { None };
    let records = match &cluster {
        Some(c) => c.keyring().audit().records().map_err(sealstore_cluster::Error::from)?,
        None => Cluster::read_audit_log(dir, KEYSTORE.get().cloned().flatten().as_deref())?,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for r in records
        .iter()
        .filter(|r| op.is_none_or(|o| r.op.name().eq_ignore_ascii_case(o)))
    {
        if json {
            writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())?;
        } else {
            let mut line = format!("{:>6} {} {:<18} {:<8}", r.seq, r.time, r.op.name(), r.tier);
            if let Some(k) = &r.key_id {
                line.push_str(&format!(" key={k}"));
            }
            if let Some(g) = r.generation {
                line.push_str(&format!(" gen={g}"));
            }
            if let Some(d) = &r.database {
                line.push_str(&format!(" db={d}"));
            }
            if let Some(c) = r.count {
                line.push_str(&format!(" count={c}"));
            }
            if let Some(c) = &r.context {
                line.push_str(&format!(" context={c}"));
            }
            if let Some(d) = &r.detail {
                line.push_str(&format!(" ({d})"));
            }
            line.push_str(&format!(" {}", r.outcome));
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    if let Some(c) = &cluster {
        let report = c.keyring().verify_audit().map_err(sealstore_cluster::Error::from)?;
        println!(
            "audit chain intact: {} records ({} unkeyed failure records), anchored in the key store, last MAC {}",
            report.records, report.unkeyed, report.last_mac
        );
    }
    Ok(())
}

fn run(cli: Cli) -> CliResult {
    ACCEPT_ROLLBACK.store(cli.accept_rollback, std::sync::atomic::Ordering::Relaxed);
    let _ = KEYSTORE.set(cli.keystore_dir.clone());
    match cli.command {
        Command::Init {
            dir,
            master_key,
            passphrase_env,
            nodes,
            slices_per_node,
            block_size,
            cluster_id,
            node_dirs,
            pkcs11_module,
            pkcs11_token,
            pkcs11_key,
            pkcs11_pin_env,
            pkcs11_create_key,
            kms_key_id,
            kms_endpoint,
            kms_region,
        } => {
            if !node_dirs.is_empty() && node_dirs.len() != nodes as usize {
                return Err(CliError::Usage(format!(
                    "--node-dir given {} times for {nodes} nodes",
                    node_dirs.len()
                )));
            }
            let options = InitOptions {
                keystore: cli.keystore_dir.clone().or_else(|| {
                    std::env::var_os(sealstore_cluster::KEYSTORE_ENV)
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                }),
                master_key,
                passphrase_env,
                nodes,
                slices_per_node,
                block_size: parse_size(&block_size)?,
                cluster_id,
                node_dirs: (!node_dirs.is_empty()).then_some(node_dirs),
                provider: match (pkcs11_module, kms_key_id) {
                    (Some(module), _) => Some(sealstore_cluster::ProviderConfig::Pkcs11 {
                        module,
                        token_label: pkcs11_token.unwrap_or_default(),
                        key_label: pkcs11_key.unwrap_or_default(),
                        pin_env: pkcs11_pin_env,
                    }),
                    (None, Some(key_id)) => Some(sealstore_cluster::ProviderConfig::Kms {
                        key_id,
                        endpoint: kms_endpoint,
                        region: kms_region,
                    }),
                    (None, None) => None,
                },
                create_key: pkcs11_create_key,
                ..Default::default()
            };
            init(&dir, options)
        }
        Command::Load {
            dir,
            table,
            file,
            database,
            dist,
            schema,
            memory_budget,
        } => load(&dir, &table, &file, &database, &dist, schema.as_deref(), memory_budget),
        Command::Scan {
            dir,
            table,
            database,
            columns,
            filter,
            limit,
            format,
        } => scan(&dir, &table, &database, columns, filter.as_deref(), limit, format),
        Command::Tables { dir, database } => tables(&dir, database.as_deref()),
        Command::Info { dir, json } => info(&dir, json),
        Command::Verify { dir } => verify(&dir),
        Command::Audit { dir, verify, op, json } => audit(&dir, verify, op.as_deref(), json),
        Command::Rotate {
            dir,
            master,
            new_master_key,
            cluster,
            database,
            all,
        } => rotate(&dir, master, new_master_key, cluster, database, all),
        Command::Rekey { dir, database, table } => rekey(&dir, &database, table.as_deref()),
        Command::Drop { dir, table, database } => {
            open(&dir)?.database(&database)?.drop_table(&table)?;
            println!("dropped {database}.{table}; its DEKs are shredded");
            Ok(())
        }
        Command::CreateDatabase { dir, database } => {
            open(&dir)?.create_database(&database)?;
            println!("created database `{database}` with its own database key");
            Ok(())
        }
        Command::DropDatabase { dir, database } => {
            open(&dir)?.drop_database(&database)?;
            println!("dropped database `{database}`; its database key is destroyed");
            Ok(())
        }
        Command::Demo { rows, dir } => demo::run(rows, dir),
        Command::Bench {
            rows,
            threads,
            json,
            dir,
            block_size,
            memory_budget,
        } => {
            if memory_budget == 0 || memory_budget > 1 << 20 {
                return Err(CliError::Usage(
                    "--memory-budget must be between 1 and 1048576 MiB".into(),
                ));
            }
            bench::run(rows, threads, json, dir, parse_size(&block_size)?, memory_budget << 20)
        }
    }
}

fn main() -> ExitCode {
    // A bug must still end in one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let _ = writeln!(std::io::stderr(), "sealstore: internal error: {msg}");
        std::process::exit(1);
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line: the error and its details up to the first blank line.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!(
                "sealstore: {} (see --help)",
                first.join(" ").trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(m)) => {
            eprintln!("sealstore: {m}");
            ExitCode::from(2)
        }
        Err(CliError::Failure(m)) => {
            eprintln!("sealstore: {}", m.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

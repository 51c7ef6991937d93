//! `sealstore`: the command-line tool. Exit codes: 0 success, 1 data/key/authentication
//! failure, 2 usage error. Errors are one line on stderr.
mod commands;
mod demo;
mod output;

pub(crate) use sealstore_cli::{CliError, CliResult, parse_size};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sealstore_cluster::{DEFAULT_DATABASE, InitOptions};

use commands::audit::audit;
use commands::init::init;
use commands::inspect::{info, tables, verify};
use commands::keys::{rekey, rotate};
use commands::open;
use commands::scan::scan;

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

// Parsed once per process: the size of the largest variant (`init`'s many options) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Create a cluster: master key file (if absent), cluster key, database `dev`.
    Init {
        dir: PathBuf,
        #[command(flatten)]
        master: MasterKeyArgs,
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
        /// Keep no key on this machine: the cluster's keys live on this key server
        /// (`https://HOST:PORT`), reached over mutual TLS with --ca, --cert and --key.
        #[arg(long, requires_all = ["ca", "cert", "key"], conflicts_with_all = ["master_key", "passphrase_env", "pkcs11_module", "kms_key_id"])]
        keyserver: Option<String>,
        /// The CA certificate (PEM) the key server's certificate is signed by.
        #[arg(long, requires = "keyserver")]
        ca: Option<PathBuf>,
        /// This node's certificate (PEM), naming the cluster (`<cluster-id>.cluster.sealstore`).
        #[arg(long, requires = "keyserver")]
        cert: Option<PathBuf>,
        /// This node's private key (PEM).
        #[arg(long, requires = "keyserver")]
        key: Option<PathBuf>,
    },
    /// Run or administer a key server: the cluster and database keys of one or more clusters,
    /// served to their nodes over mutual TLS.
    Keyserver {
        #[command(subcommand)]
        command: KeyserverCommand,
    },
    /// Make throw-away development certificates (TESTING ONLY): a CA, a server certificate for
    /// 127.0.0.1/localhost and, with --cluster, a node certificate naming that cluster.
    Certs {
        dir: PathBuf,
        #[arg(long)]
        cluster: Option<String>,
        /// Last valid day of the node certificate (YYYY-MM-DD; a past day makes an expired one).
        #[arg(long, requires = "cluster")]
        not_after: Option<String>,
    },
    /// Load files (CSV, newline-delimited JSON, Arrow IPC, Parquet) into tables as one atomic
    /// commit (creating tables that are absent): `load DIR TABLE FILE`, and/or
    /// `--table TABLE=FILE` once per further table.
    Load {
        dir: PathBuf,
        table: Option<String>,
        #[arg(requires = "table")]
        file: Option<PathBuf>,
        /// Another table and its CSV file, loaded in the same commit (repeatable).
        #[arg(long = "table", value_name = "TABLE=FILE", value_parser = commands::load::TableFile::parse)]
        more: Vec<commands::load::TableFile>,
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        /// Distribution of new tables: even, key:COLUMN or all.
        #[arg(long, default_value = "even")]
        dist: String,
        /// Schema of new tables from CSV: "col:type,…" (types: bool i32 i64 f64 utf8 binary date timestamp).
        #[arg(long)]
        schema: Option<String>,
        /// Input format of every file: csv, json (one object per line), ipc (Arrow IPC file or
        /// stream) or parquet (default: from each file's extension).
        #[arg(long)]
        format: Option<String>,
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
        /// Filter: a SQL WHERE expression (comparisons, AND/OR/NOT, IN, LIKE, BETWEEN, IS NULL,
        /// arithmetic, casts), e.g. "origin = 'JFK' OR origin = 'LGA'".
        #[arg(long = "where")]
        filter: Option<String>,
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long, value_enum, default_value = "table")]
        format: output::Format,
    },
    /// Run SQL over the cluster (DataFusion): a statement or a `;`-separated script, or with no
    /// QUERY an interactive prompt. Writes (INSERT, CREATE TABLE [AS], DROP TABLE) commit
    /// atomically, one commit per statement.
    Sql {
        dir: PathBuf,
        query: Option<String>,
        /// The database unqualified table names resolve in (others: `db.table`).
        #[arg(long, default_value = DEFAULT_DATABASE)]
        database: String,
        #[arg(long, value_enum, default_value = "table")]
        format: output::Format,
        /// Memory all operators of a statement may hold; more fails the statement (nothing
        /// spills to disk, where it would be plaintext).
        #[arg(long, default_value = "2GiB")]
        memory_limit: String,
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
    /// Measure sealed vs unsealed write/scan throughput and AES-GCM speed (a build with the
    /// `bench` feature: `cargo run --release -p sealstore-cli --features bench -- bench`).
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

/// Where a master key lives (`init`, `keyserver init`): a key file (by default beside the data
/// directory for `init`, `DIR/master.key` for a key server), a PKCS#11 token key or a KMS key.
#[derive(clap::Args, Debug)]
struct MasterKeyArgs {
    /// Local master key file, created with mode 0600 if absent (default: DIR.keys/master.key;
    /// for `keyserver init`, DIR/master.key).
    #[arg(long)]
    master_key: Option<PathBuf>,
    /// Environment variable holding a passphrase that protects the master key file (Argon2id).
    #[arg(long)]
    passphrase_env: Option<String>,
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
}

impl MasterKeyArgs {
    /// A token or KMS key (`None`: a key file, see `master_key`).
    fn token_or_kms(&mut self) -> Option<sealstore_cluster::ProviderConfig> {
        use sealstore_cluster::ProviderConfig;
        match (self.pkcs11_module.take(), self.kms_key_id.take()) {
            (Some(module), _) => Some(ProviderConfig::Pkcs11 {
                module,
                token_label: self.pkcs11_token.take().unwrap_or_default(),
                key_label: self.pkcs11_key.take().unwrap_or_default(),
                pin_env: std::mem::take(&mut self.pkcs11_pin_env),
            }),
            (None, Some(key_id)) => Some(ProviderConfig::Kms {
                key_id,
                endpoint: self.kms_endpoint.take(),
                region: self.kms_region.take(),
            }),
            (None, None) => None,
        }
    }

    /// The provider the options name (`None`: the caller's default key file) and whether a
    /// token key may be created.
    fn config(mut self) -> (Option<sealstore_cluster::ProviderConfig>, bool) {
        let config = self.token_or_kms().or_else(|| {
            (self.master_key.is_some() || self.passphrase_env.is_some()).then(|| {
                sealstore_cluster::ProviderConfig::LocalKeyFile {
                    path: self.master_key.take().unwrap_or_default(),
                    passphrase_env: self.passphrase_env.take(),
                }
            })
        });
        (config, self.pkcs11_create_key)
    }
}

#[derive(Subcommand, Debug)]
enum KeyserverCommand {
    /// Create a key server directory and its master key (default: the file DIR/master.key,
    /// mode 0600; or a PKCS#11 token key, or a KMS key), recorded in its registry.
    Init {
        dir: PathBuf,
        #[command(flatten)]
        master_key: MasterKeyArgs,
    },
    /// Serve the directory's clusters over mutual TLS until killed.
    Serve(commands::keyserver::Serve),
    /// Register a cluster: a fresh cluster key wrapped by the server's master key.
    AddCluster {
        dir: PathBuf,
        #[arg(long)]
        cluster: String,
    },
    /// Revoke a cluster: its nodes are refused from their next call, and stop within their lease.
    RevokeCluster {
        dir: PathBuf,
        #[arg(long)]
        cluster: String,
    },
    /// List the registered clusters.
    List { dir: PathBuf },
    /// Rotate the server's master key (the server stopped): every cluster key re-wrapped by a
    /// new key (default: the next version — a key file beside the current one, a token label
    /// `.v2`; a KMS needs a key id); resumable.
    RotateMaster {
        dir: PathBuf,
        /// The new key: a key file path, token key label or KMS key id, after the current kind.
        #[arg(long)]
        new_master_key: Option<String>,
    },
    /// Move a cluster's local key store into this key server and switch the cluster to it
    /// (crash-safe; run again after an interruption). The node's key store comes from
    /// --keystore as for every command; afterwards its machine holds no key.
    Import {
        dir: PathBuf,
        /// The cluster's data directory.
        data: PathBuf,
        /// The key server the node will use from now on (`https://HOST:PORT`).
        #[arg(long)]
        keyserver: String,
        #[arg(long)]
        ca: PathBuf,
        /// The node's certificate, naming the cluster.
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

fn keyserver(command: KeyserverCommand) -> CliResult {
    use commands::keyserver as ks;
    match command {
        KeyserverCommand::Init { dir, master_key } => {
            let (config, create) = master_key.config();
            ks::init(&dir, config, create)
        }
        KeyserverCommand::Serve(args) => ks::serve(args),
        KeyserverCommand::AddCluster { dir, cluster } => ks::add_cluster(&dir, &cluster),
        KeyserverCommand::RevokeCluster { dir, cluster } => ks::revoke_cluster(&dir, &cluster),
        KeyserverCommand::List { dir } => ks::list(&dir),
        KeyserverCommand::RotateMaster { dir, new_master_key } => ks::rotate_master(&dir, new_master_key),
        KeyserverCommand::Import {
            dir,
            data,
            keyserver,
            ca,
            cert,
            key,
        } => ks::import(
            &dir,
            &data,
            sealstore_cluster::ProviderConfig::KeyServer {
                address: keyserver,
                ca: std::path::absolute(ca)?,
                cert: std::path::absolute(cert)?,
                key: std::path::absolute(key)?,
            },
        ),
    }
}

fn run(cli: Cli) -> CliResult {
    ACCEPT_ROLLBACK.store(cli.accept_rollback, std::sync::atomic::Ordering::Relaxed);
    let _ = KEYSTORE.set(cli.keystore_dir.clone());
    match cli.command {
        Command::Init {
            dir,
            mut master,
            nodes,
            slices_per_node,
            block_size,
            cluster_id,
            node_dirs,
            keyserver,
            ca,
            cert,
            key,
        } => {
            if !node_dirs.is_empty() && node_dirs.len() != nodes as usize {
                return Err(CliError::Usage(format!(
                    "--node-dir given {} times for {nodes} nodes",
                    node_dirs.len()
                )));
            }
            let provider = match keyserver {
                Some(address) => Some(sealstore_cluster::ProviderConfig::KeyServer {
                    address,
                    ca: std::path::absolute(ca.unwrap_or_default())?,
                    cert: std::path::absolute(cert.unwrap_or_default())?,
                    key: std::path::absolute(key.unwrap_or_default())?,
                }),
                None => master.token_or_kms(),
            };
            let options = InitOptions {
                keystore: cli.keystore_dir.clone().or_else(|| {
                    std::env::var_os(sealstore_cluster::KEYSTORE_ENV)
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                }),
                master_key: master.master_key,
                passphrase_env: master.passphrase_env,
                nodes,
                slices_per_node,
                block_size: parse_size(&block_size)?,
                cluster_id,
                node_dirs: (!node_dirs.is_empty()).then_some(node_dirs),
                provider,
                create_key: master.pkcs11_create_key,
                ..Default::default()
            };
            init(&dir, options)
        }
        Command::Load {
            dir,
            table,
            file,
            more,
            database,
            dist,
            schema,
            format,
            memory_budget,
        } => {
            let first = match (table, file) {
                (Some(table), Some(file)) => Some(commands::load::TableFile { table, file }),
                (Some(_), None) => return Err(CliError::Usage("load: TABLE needs a FILE".into())),
                _ => None,
            };
            let pairs: Vec<_> = first.into_iter().chain(more).collect();
            let options = commands::load::LoadOptions {
                database: &database,
                dist: &dist,
                schema: schema.as_deref(),
                format: format.as_deref().map(sealstore_ingest::Format::parse).transpose()?,
                budget_mib: memory_budget,
            };
            commands::load::load(&dir, &pairs, &options)
        }
        Command::Scan {
            dir,
            table,
            database,
            columns,
            filter,
            limit,
            format,
        } => scan(
            &dir,
            &commands::scan::ScanArgs {
                table: &table,
                database: &database,
                columns,
                filter: filter.as_deref(),
                limit,
                format,
            },
        ),
        Command::Sql {
            dir,
            query,
            database,
            format,
            memory_limit,
        } => {
            let args = commands::sql::SqlArgs {
                database: &database,
                format,
                memory_limit: parse_size(&memory_limit)?,
            };
            commands::sql::sql(&dir, query.as_deref(), &args)
        }
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
        Command::Keyserver { command } => keyserver(command),
        Command::Certs {
            dir,
            cluster,
            not_after,
        } => commands::keyserver::certs(&dir, cluster, not_after),
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
            let block_size = parse_size(&block_size)?;
            // The driver lives in the `sealstore-benches` crate, linked only into a build with
            // the `bench` feature: its baseline runs a cluster with a no-op block cipher, which
            // no product build can do.
            #[cfg(feature = "bench")]
            {
                let options = sealstore_benches::driver::BenchOptions {
                    rows,
                    threads,
                    json,
                    dir,
                    block_size,
                    memory_budget: memory_budget << 20,
                };
                sealstore_benches::driver::run(&options).map_err(|e| match e {
                    sealstore_benches::driver::BenchError::Usage(m) => CliError::Usage(m),
                    sealstore_benches::driver::BenchError::Failure(m) => CliError::Failure(m),
                })
            }
            #[cfg(not(feature = "bench"))]
            {
                let _ = (rows, threads, json, dir, block_size);
                Err(CliError::Usage(
                    "this sealstore was built without the benchmark; run `cargo run --release -p sealstore-cli --features bench -- bench`".into(),
                ))
            }
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

//! `keyserver …` (the key server's side) and `certs` (development certificates).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sealstore_cluster::ProviderConfig;
use sealstore_keyring::MasterKeyProvider;
use sealstore_keyserver::admin::{AdminRequest, AdminResponse};
use sealstore_keyserver::certs::{CertOptions, make_dev_certs};
use sealstore_keyserver::server::ProviderOpener;
use sealstore_keyserver::{KeyServerDir, ServeOptions};

use crate::{CliError, CliResult};

fn failure(e: sealstore_keyserver::Error) -> CliError {
    match e {
        sealstore_keyserver::Error::InvalidOption(m) => CliError::Usage(m),
        other => CliError::Failure(other.to_string()),
    }
}

/// The server's master-key provider: the configuration recorded in its registry (a key file,
/// a PKCS#11 token key or a KMS key), by default the key file `DIR/master.key`.
pub(crate) fn server_provider_config(server: &KeyServerDir) -> CliResult<ProviderConfig> {
    match server.provider_config().map_err(failure)? {
        Some(value) => serde_json::from_value(value).map_err(|e| {
            CliError::Failure(format!(
                "key server directory {}: its master-key provider is not readable: {e}",
                server.path().display()
            ))
        }),
        None => Ok(ProviderConfig::LocalKeyFile {
            path: server.path().join("master.key"),
            passphrase_env: None,
        }),
    }
}

fn open_provider(config: &ProviderConfig, create: bool) -> CliResult<Arc<dyn MasterKeyProvider>> {
    Ok(config.open(create)?)
}

fn master_key(server: &KeyServerDir) -> CliResult<Arc<dyn MasterKeyProvider>> {
    open_provider(&server_provider_config(server)?, false)
}

fn to_json(config: &ProviderConfig) -> CliResult<serde_json::Value> {
    serde_json::to_value(config).map_err(|e| CliError::Failure(e.to_string()))
}

/// `keyserver init`: the directory, then its master key (a key file is created; a token key
/// with `create_key`).
pub(crate) fn init(dir: &Path, provider: Option<ProviderConfig>, create_key: bool) -> CliResult {
    let explicit = provider.is_some();
    let mut config = provider.unwrap_or(ProviderConfig::LocalKeyFile {
        path: PathBuf::new(),
        passphrase_env: None,
    });
    let server = KeyServerDir::init(dir, None).map_err(failure)?;
    if let ProviderConfig::LocalKeyFile { path, .. } = &mut config {
        *path = if explicit && !path.as_os_str().is_empty() {
            std::path::absolute(&*path)?
        } else {
            server.path().join("master.key")
        };
    }
    let local = matches!(config, ProviderConfig::LocalKeyFile { .. });
    let provider = open_provider(&config, local || create_key)?;
    server.set_provider_config(to_json(&config)?).map_err(failure)?;
    println!(
        "initialized key server directory {} (master key: {}, id {})",
        server.path().display(),
        config.describe(),
        provider.key_id()
    );
    Ok(())
}

pub(crate) fn add_cluster(dir: &Path, cluster: &str) -> CliResult {
    let server = KeyServerDir::open(dir).map_err(failure)?;
    let provider = master_key(&server)?;
    server.add_cluster(cluster, provider).map_err(failure)?;
    println!(
        "cluster `{cluster}` registered; its nodes need a certificate naming {}",
        sealstore_keyserver::tls::cluster_dns_name(cluster)
    );
    Ok(())
}

pub(crate) fn revoke_cluster(dir: &Path, cluster: &str) -> CliResult {
    let server = KeyServerDir::open(dir).map_err(failure)?;
    server.revoke_cluster(cluster).map_err(failure)?;
    println!("cluster `{cluster}` revoked: its nodes are refused from their next call on");
    Ok(())
}

pub(crate) fn list(dir: &Path) -> CliResult {
    let server = KeyServerDir::open(dir).map_err(failure)?;
    for c in server.clusters().map_err(failure)? {
        match &c.revoked {
            Some(when) => println!("{}\tadded {}\trevoked {when}", c.id, c.added),
            None => println!("{}\tadded {}", c.id, c.added),
        }
    }
    Ok(())
}

/// `keyserver serve`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Serve {
    pub dir: PathBuf,
    /// Address to listen on (loopback; port 0 lets the OS choose, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: String,
    /// The server's certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// The server's private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// CA certificate (PEM) that node certificates must be signed by.
    #[arg(long)]
    pub client_ca: PathBuf,
    /// How long a node may use its keys without hearing from the server (revocation takes
    /// effect within it).
    #[arg(long, default_value_t = 60.0)]
    pub lease_seconds: f64,
}

pub(crate) fn serve(args: Serve) -> CliResult {
    let server = KeyServerDir::open(&args.dir).map_err(failure)?;
    let provider = master_key(&server)?;
    let listen = args
        .listen
        .parse()
        .map_err(|_| CliError::Usage(format!("--listen {}: expected IP:PORT", args.listen)))?;
    if !(args.lease_seconds > 0.0 && args.lease_seconds <= 86_400.0) {
        return Err(CliError::Usage("--lease-seconds must be in (0, 86400]".into()));
    }
    let options = ServeOptions {
        listen,
        cert: args.cert,
        key: args.key,
        client_ca: args.client_ca,
        lease: Duration::from_secs_f64(args.lease_seconds),
        open_provider: Some(ProviderOpener(Arc::new(|value: &serde_json::Value| {
            let config: ProviderConfig = serde_json::from_value(value.clone())
                .map_err(|e| format!("the new master key's description is not readable: {e}"))?;
            config.open(false).map_err(|e| e.to_string())
        }))),
    };
    sealstore_keyserver::server::serve(server, provider, options, |running| {
        // The line scripts and tests wait for (the port is the OS's choice for port 0).
        println!("listening on {}", running.address);
        let _ = std::io::stdout().flush();
    })
    .map_err(failure)
}

pub(crate) fn certs(dir: &Path, cluster: Option<String>, not_after: Option<String>) -> CliResult {
    let files = make_dev_certs(dir, &CertOptions { cluster, not_after }).map_err(failure)?;
    println!("development certificates (testing only) in {}", dir.display());
    println!("CA certificate:     {}", files.ca_cert.display());
    println!(
        "server certificate: {} (key {})",
        files.server_cert.display(),
        files.server_key.display()
    );
    if let (Some(cert), Some(key)) = (&files.node_cert, &files.node_key) {
        println!("node certificate:   {} (key {})", cert.display(), key.display());
    }
    Ok(())
}

pub(crate) fn import(dir: &Path, data: &Path, node: sealstore_cluster::ProviderConfig) -> CliResult {
    let server = KeyServerDir::open(dir).map_err(failure)?;
    let provider = master_key(&server)?;
    let keystore = crate::KEYSTORE.get().cloned().flatten().or_else(|| {
        std::env::var_os(sealstore_cluster::KEYSTORE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let outcome = sealstore_cluster::import::import_to_key_server(data, keystore.as_deref(), &server, provider, node)?;
    match outcome {
        sealstore_cluster::import::ImportOutcome::Imported { cluster_id } => {
            println!("cluster `{cluster_id}` imported: its keys are on the key server, none remain on this machine")
        }
        sealstore_cluster::import::ImportOutcome::AlreadyImported { cluster_id } => {
            println!("cluster `{cluster_id}` already uses the key server; local key-store leftovers removed")
        }
    }
    Ok(())
}

/// `keyserver rotate-master`: the next version of the current key (a key file beside it, a
/// token label `.v2`, …) or `new_key` (a key file, token label or KMS key id, after the current
/// provider's kind); created if absent (a file or token key). A running server does it while it
/// serves (asked on its admin socket); otherwise the stopped server's directory is rotated here.
pub(crate) fn rotate_master(dir: &Path, new_key: Option<String>) -> CliResult {
    let server = KeyServerDir::open(dir).map_err(failure)?;
    let current = server_provider_config(&server)?;
    // An interrupted rotation is finished with its own key (some clusters may be under it).
    let unfinished = match server.unfinished_rotation().map_err(failure)? {
        Some(value) => Some(
            serde_json::from_value::<ProviderConfig>(value)
                .map_err(|e| CliError::Failure(format!("the unfinished rotation's master key is not readable: {e}")))?,
        ),
        None => None,
    };
    let next = match (new_key, unfinished) {
        (Some(key), _) => current.with_key(&key),
        (None, Some(pending)) => pending,
        (None, None) => current.next_version()?,
    };
    let created = matches!(&next, ProviderConfig::LocalKeyFile { path, .. } if !path.exists());
    let new = open_provider(&next, true)?;
    let request = AdminRequest::RotateMaster {
        provider: to_json(&next)?,
    };
    let outcome = match sealstore_keyserver::admin::request(server.path(), &request).map_err(failure)? {
        Some(AdminResponse::Rotated {
            old_key_id, clusters, ..
        }) => Ok((old_key_id, clusters, "the server kept serving")),
        Some(AdminResponse::Failed { message }) => Err(CliError::Failure(format!("the running key server: {message}"))),
        None => open_provider(&current, false).and_then(|old| {
            let rotated = server
                .rotate_master_key(old.clone(), new.clone(), to_json(&next)?)
                .map_err(failure)?;
            Ok((old.key_id(), rotated, "the server was stopped"))
        }),
    };
    let (old_key_id, rotated, how) = match outcome {
        Ok(done) => done,
        Err(e) => {
            // A key file this run made and no cluster is wrapped under goes again.
            let in_use = server.clusters().is_ok_and(|cs| {
                cs.iter().any(|c| {
                    sealstore_keyring::LocalKeyStore::stored_master_key_id(&server.cluster_dir(&c.id))
                        .is_ok_and(|id| id == new.key_id())
                })
            });
            if let (true, false, ProviderConfig::LocalKeyFile { path, .. }) = (created, in_use, &next) {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    println!(
        "master key rotated ({how}): {old_key_id} -> {} ({}); {rotated} cluster keys re-wrapped; retire the old key once no backup needs it",
        new.key_id(),
        next.describe()
    );
    Ok(())
}

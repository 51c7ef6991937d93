//! `keyserver …` (the key server's side) and `certs` (development certificates).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sealstore_keyring::MasterKeyProvider;
use sealstore_keyring::provider::LocalKeyFile;
use sealstore_keyserver::certs::{CertOptions, make_dev_certs};
use sealstore_keyserver::{KeyServerDir, ServeOptions};

use crate::{CliError, CliResult};

fn failure(e: sealstore_keyserver::Error) -> CliError {
    match e {
        sealstore_keyserver::Error::InvalidOption(m) => CliError::Usage(m),
        other => CliError::Failure(other.to_string()),
    }
}

/// The server's master key: a local key file (default: the one the registry names, at first
/// `DIR/master.key`), optionally passphrase-protected.
pub(crate) fn master_key(
    server: &KeyServerDir,
    path: Option<PathBuf>,
    passphrase_env: Option<&str>,
    create: bool,
) -> CliResult<Arc<dyn MasterKeyProvider>> {
    let path = match path {
        Some(p) => p,
        None => server.master_key_file().map_err(failure)?,
    };
    let passphrase = match passphrase_env {
        Some(var) => Some(zeroize_string(std::env::var(var).map_err(|_| {
            CliError::Usage(format!("the passphrase environment variable {var} is not set"))
        })?)),
        None => None,
    };
    let p = passphrase.as_ref().map(|s| s.as_str());
    let provider = if create {
        LocalKeyFile::open_or_create(&path, p)
    } else {
        LocalKeyFile::open(&path, p)
    }
    .map_err(|e| CliError::Failure(e.to_string()))?;
    Ok(Arc::new(provider))
}

fn zeroize_string(s: String) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(s)
}

pub(crate) fn init(dir: &Path, key: Option<PathBuf>, passphrase_env: Option<&str>) -> CliResult {
    let server = KeyServerDir::init(dir, key.as_deref()).map_err(failure)?;
    let provider = master_key(&server, None, passphrase_env, true)?;
    println!(
        "initialized key server directory {} (master key {})",
        server.path().display(),
        provider.key_id()
    );
    Ok(())
}

pub(crate) fn add_cluster(dir: &Path, cluster: &str, key: Option<PathBuf>, passphrase_env: Option<&str>) -> CliResult {
    let server = KeyServerDir::open(dir).map_err(failure)?;
    let provider = master_key(&server, key, passphrase_env, false)?;
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

pub(crate) struct Serve {
    pub dir: PathBuf,
    pub listen: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub lease_seconds: f64,
    pub master_key: Option<PathBuf>,
    pub passphrase_env: Option<String>,
}

pub(crate) fn serve(args: Serve) -> CliResult {
    let server = KeyServerDir::open(&args.dir).map_err(failure)?;
    let provider = master_key(&server, args.master_key, args.passphrase_env.as_deref(), false)?;
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

pub(crate) fn import(
    dir: &Path,
    data: &Path,
    node: sealstore_cluster::ProviderConfig,
    key: Option<PathBuf>,
    passphrase_env: Option<&str>,
) -> CliResult {
    let server = KeyServerDir::open(dir).map_err(failure)?;
    let provider = master_key(&server, key, passphrase_env, false)?;
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

pub(crate) fn rotate_master(
    dir: &Path,
    new_key: Option<PathBuf>,
    key: Option<PathBuf>,
    passphrase_env: Option<&str>,
) -> CliResult {
    let server = KeyServerDir::open(dir).map_err(failure)?;
    let old = master_key(&server, key, passphrase_env, false)?;
    let current = server.master_key_file().map_err(failure)?;
    let new_file = match new_key {
        Some(p) => std::path::absolute(p)?,
        None => next_key_file(&current),
    };
    let created = !new_file.exists();
    let new = master_key(&server, Some(new_file.clone()), passphrase_env, true)?;
    let rotated = match server.rotate_master_key(old.clone(), new.clone(), &new_file) {
        Ok(n) => n,
        Err(e) => {
            // Nothing was re-wrapped under a key this run made (the first cluster failed), or
            // some were and the key must stay: keep it unless no cluster uses it.
            let in_use = server.clusters().is_ok_and(|cs| {
                cs.iter().any(|c| {
                    sealstore_keyring::LocalKeyStore::stored_master_key_id(&server.cluster_dir(&c.id))
                        .is_ok_and(|id| id == new.key_id())
                })
            });
            if created && !in_use {
                let _ = std::fs::remove_file(&new_file);
            }
            return Err(failure(e));
        }
    };
    println!(
        "master key rotated: {} -> {} ({}); {rotated} cluster keys re-wrapped; retire the old key file once no backup needs it",
        old.key_id(),
        new.key_id(),
        new_file.display()
    );
    Ok(())
}

/// `master.key` → `master.v2.key` → `master.v3.key` (the first that does not exist).
fn next_key_file(current: &Path) -> PathBuf {
    let stem = current.file_stem().and_then(|s| s.to_str()).unwrap_or("master");
    let base = match stem.rsplit_once(".v") {
        Some((b, v)) if v.parse::<u32>().is_ok() => b,
        _ => stem,
    };
    (2..)
        .map(|n| current.with_file_name(format!("{base}.v{n}.key")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| current.with_file_name(format!("{base}.next.key")))
}

//! Throw-away certificates for development and tests (`sealstore certs`): a CA, a server
//! certificate for `127.0.0.1`/`localhost`, and node certificates naming their cluster. **For
//! testing only**: the CA's private key sits in a file next to them. Production deployments
//! issue certificates from their own PKI with the same names (see `docs/key-server.md`).
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sealstore_keyring::fsutil;

use crate::tls::{cluster_dns_name, require_certifiable};
use crate::{Error, Result};

/// The files of a development certificate set.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The node certificate and key, when a cluster was named.
    pub node_cert: Option<PathBuf>,
    pub node_key: Option<PathBuf>,
}

/// Options of [`make_dev_certs`].
#[derive(Debug, Clone, Default)]
pub struct CertOptions {
    /// A node certificate for this cluster (`node-<cluster>.pem`).
    pub cluster: Option<String>,
    /// The node certificate's last valid day (`YYYY-MM-DD`); default one year from now. A past
    /// date makes an expired certificate, to test that it is refused.
    pub not_after: Option<String>,
}

fn cert_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Certificate {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<()> {
    fsutil::write_atomic(path, contents.as_bytes(), mode)?;
    Ok(())
}

fn parse_day(day: &str) -> Result<(i32, u8, u8)> {
    let bad = || Error::InvalidOption(format!("--not-after {day}: expected YYYY-MM-DD"));
    let mut parts = day.splitn(3, '-');
    let y: i32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let m: u8 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let d: u8 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok((y, m, d))
}

/// The CA's parameters: rebuilt the same way each time, so a CA key kept from an earlier run
/// signs with the same issuer name.
fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| Error::InvalidOption(e.to_string()))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(DnType::CommonName, "sealstore development CA (testing only)");
    Ok(params)
}

/// Makes (or extends) a development certificate set in `dir`: `ca.pem`/`ca.key` and
/// `server.pem`/`server.key` when absent (kept when present, so several clusters share one CA),
/// and with a cluster, `node-<cluster>.pem`/`.key`. Keys are written mode 0600.
pub fn make_dev_certs(dir: &Path, options: &CertOptions) -> Result<CertFiles> {
    fsutil::create_dir_durable(dir)?;
    let ca_cert = dir.join("ca.pem");
    let ca_key_path = dir.join("ca.key");
    let (ca_params, ca_key) = if ca_cert.exists() && ca_key_path.exists() {
        let pem = std::fs::read_to_string(&ca_key_path).map_err(|e| cert_error(&ca_key_path, e))?;
        let key = KeyPair::from_pem(&pem).map_err(|e| cert_error(&ca_key_path, e))?;
        (ca_params()?, key)
    } else {
        let key = KeyPair::generate().map_err(|e| cert_error(&ca_key_path, e))?;
        let params = ca_params()?;
        let cert = params.self_signed(&key).map_err(|e| cert_error(&ca_cert, e))?;
        write(&ca_key_path, &key.serialize_pem(), 0o600)?;
        write(&ca_cert, &cert.pem(), 0o644)?;
        (params, key)
    };
    let issuer = Issuer::new(ca_params, ca_key);

    let server_cert = dir.join("server.pem");
    let server_key = dir.join("server.key");
    if !server_cert.exists() || !server_key.exists() {
        let key = KeyPair::generate().map_err(|e| cert_error(&server_key, e))?;
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(|e| cert_error(&server_cert, e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "sealstore key server (testing only)");
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| cert_error(&server_cert, e))?;
        write(&server_key, &key.serialize_pem(), 0o600)?;
        write(&server_cert, &cert.pem(), 0o644)?;
    }

    let (mut node_cert, mut node_key) = (None, None);
    if let Some(cluster) = &options.cluster {
        require_certifiable(cluster)?;
        let cert_path = dir.join(format!("node-{cluster}.pem"));
        let key_path = dir.join(format!("node-{cluster}.key"));
        let key = KeyPair::generate().map_err(|e| cert_error(&key_path, e))?;
        let mut params =
            CertificateParams::new(vec![cluster_dns_name(cluster)]).map_err(|e| cert_error(&cert_path, e))?;
        params.distinguished_name.push(
            DnType::CommonName,
            format!("sealstore node of {cluster} (testing only)"),
        );
        if let Some(day) = &options.not_after {
            let (y, m, d) = parse_day(day)?;
            params.not_after = rcgen::date_time_ymd(y, m, d);
            if params.not_before > params.not_after {
                params.not_before = params.not_after - std::time::Duration::from_secs(86_400 * 30);
            }
        }
        let cert = params.signed_by(&key, &issuer).map_err(|e| cert_error(&cert_path, e))?;
        write(&key_path, &key.serialize_pem(), 0o600)?;
        write(&cert_path, &cert.pem(), 0o644)?;
        node_cert = Some(cert_path);
        node_key = Some(key_path);
    }
    Ok(CertFiles {
        ca_cert,
        server_cert,
        server_key,
        node_cert,
        node_key,
    })
}

//! Mutual TLS with rustls and its aws-lc-rs provider (the AES-GCM backend the project already
//! builds): TLS 1.3 only; both ends present certificates signed by the CA each side is given.
//!
//! A node's certificate names its cluster as the DNS subject-alternative name
//! `<cluster-id>.cluster.sealstore` ([`cluster_dns_name`]); the server authorises every call by
//! checking the verified certificate against the name of the cluster the call is for.
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The DNS-name suffix that marks a certificate as a node of a cluster.
pub const CLUSTER_NAME_SUFFIX: &str = "cluster.sealstore";

/// The subject-alternative name a node certificate of `cluster` carries.
pub fn cluster_dns_name(cluster: &str) -> String {
    format!("{}.{CLUSTER_NAME_SUFFIX}", cluster.to_ascii_lowercase())
}

/// Checks that a cluster id can be named in a certificate (a DNS label sequence).
pub fn require_certifiable(cluster: &str) -> Result<()> {
    sealstore_keyring::validate_database_name(cluster)?;
    ServerName::try_from(cluster_dns_name(cluster)).map_err(|_| {
        Error::InvalidOption(format!(
            "cluster id `{cluster}` cannot be named in a certificate (`{}` is not a DNS name); use letters, digits, '-' and single dots",
            cluster_dns_name(cluster)
        ))
    })?;
    Ok(())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |reason: String| Error::Certificate {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("cannot read certificates: {e}")))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("malformed certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(certs)
}

/// Reads a PEM private key.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::Certificate {
        path: path.to_owned(),
        reason: format!("cannot read a private key: {e}"),
    })
}

fn roots(ca: &Path) -> Result<Arc<RootCertStore>> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(ca)? {
        store.add(cert).map_err(|e| Error::Certificate {
            path: ca.to_owned(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(Arc::new(store))
}

fn tls_error(path: &Path, e: rustls::Error) -> Error {
    Error::Certificate {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// The server's TLS configuration: its certificate, and client certificates required and
/// verified against `client_ca`.
pub fn server_config(cert: &Path, key: &Path, client_ca: &Path) -> Result<Arc<ServerConfig>> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(client_ca)?, provider())
        .build()
        .map_err(|e| Error::Certificate {
            path: client_ca.to_owned(),
            reason: e.to_string(),
        })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error(cert, e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| tls_error(cert, e))?;
    Ok(Arc::new(config))
}

/// A node's TLS configuration: the server verified against `ca`, and the node's own
/// certificate (`None` only to test that the server refuses a client without one).
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error(ca, e))?
        .with_root_certificates(roots(ca)?);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| tls_error(cert, e))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Who a verified client certificate is, for audit records: the SHA-256 of its DER (first 16
/// hex digits).
pub fn identity_of(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    format!("cert-sha256:{}", hex::encode(&digest[..8]))
}

/// True when the (already chain-verified) client certificate names `cluster`.
pub fn certifies_cluster(cert: &CertificateDer<'_>, cluster: &str) -> bool {
    let Ok(name) = ServerName::try_from(cluster_dns_name(cluster)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert).is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
}

//! Where a cluster's objects live: a storage URL plus the S3 options a URL cannot carry.
//!
//! - `s3://bucket/prefix` — any S3-compatible endpoint (`with_endpoint`), region and
//!   credentials from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `AWS_REGION`, web identity, ECS / EC2 instance metadata);
//! - `file:///absolute/path` — `object_store`'s local-file backend (tests and single-machine
//!   setups that want the object layout);
//! - `memory://name` — a process-wide in-memory store (tests): every open of the same name in
//!   one process shares its objects.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::{Error, Result};

/// The backend a location names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// An S3 bucket.
    S3 {
        bucket: String,
        /// Endpoint URL of an S3-compatible server (default: AWS for the region).
        endpoint: Option<String>,
        /// Region (default: `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`).
        region: Option<String>,
    },
    /// A local directory, through `object_store`'s local-file backend.
    File { root: PathBuf },
    /// A named in-memory store of this process.
    Memory { name: String },
}

/// A backend and the prefix under which every object of one cluster lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageLocation {
    backend: Backend,
    prefix: String,
}

impl StorageLocation {
    /// Parses `s3://bucket/prefix`, `file:///path` or `memory://name[/prefix]`.
    pub fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected s3://, file:// or memory://"))?;
        match scheme {
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                validate_bucket(bucket).map_err(|reason| invalid(&reason))?;
                let prefix = normalize_prefix(prefix).map_err(|reason| invalid(&reason))?;
                Ok(Self {
                    backend: Backend::S3 {
                        bucket: bucket.to_string(),
                        endpoint: None,
                        region: None,
                    },
                    prefix,
                })
            }
            "file" => {
                let root = PathBuf::from(rest);
                if !root.is_absolute() {
                    return Err(invalid("a file:// URL needs an absolute path (file:///dir)"));
                }
                Ok(Self {
                    backend: Backend::File { root },
                    prefix: String::new(),
                })
            }
            "memory" => {
                let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if name.is_empty() {
                    return Err(invalid("memory:// needs a store name"));
                }
                let prefix = normalize_prefix(prefix).map_err(|reason| invalid(&reason))?;
                Ok(Self {
                    backend: Backend::Memory { name: name.to_string() },
                    prefix,
                })
            }
            _ => Err(invalid("unknown scheme: expected s3://, file:// or memory://")),
        }
    }

    /// The S3 endpoint to talk to: `https://…` anywhere, `http://…` on loopback only.
    pub fn with_s3_endpoint(mut self, endpoint: &str) -> Result<Self> {
        match &mut self.backend {
            Backend::S3 { endpoint: slot, .. } => {
                check_endpoint(endpoint)?;
                *slot = Some(endpoint.trim_end_matches('/').to_string());
                Ok(self)
            }
            _ => Err(Error::InvalidUrl {
                url: self.url(),
                reason: "an S3 endpoint applies to s3:// storage only".into(),
            }),
        }
    }

    /// The S3 region.
    pub fn with_s3_region(mut self, region: &str) -> Result<Self> {
        match &mut self.backend {
            Backend::S3 { region: slot, .. } => {
                *slot = Some(region.to_string());
                Ok(self)
            }
            _ => Err(Error::InvalidUrl {
                url: self.url(),
                reason: "an S3 region applies to s3:// storage only".into(),
            }),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The prefix (no leading or trailing `/`; empty for the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL this location parses from (without endpoint and region).
    pub fn url(&self) -> String {
        let join = |head: String| {
            if self.prefix.is_empty() {
                head
            } else {
                format!("{head}/{}", self.prefix)
            }
        };
        match &self.backend {
            Backend::S3 { bucket, .. } => join(format!("s3://{bucket}")),
            Backend::File { root } => format!("file://{}", root.display()),
            Backend::Memory { name } => join(format!("memory://{name}")),
        }
    }

    /// One line for `info`: the URL, and the endpoint and region where set.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::S3 { endpoint, region, .. } => {
                let mut out = self.url();
                if let Some(endpoint) = endpoint {
                    out.push_str(&format!(" (endpoint {endpoint}"));
                    out.push_str(
                        &region
                            .as_ref()
                            .map(|r| format!(", region {r})"))
                            .unwrap_or_else(|| ")".into()),
                    );
                } else if let Some(region) = region {
                    out.push_str(&format!(" (region {region})"));
                }
                out
            }
            _ => self.url(),
        }
    }
}

impl std::fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// S3 bucket naming rules (the subset that matters for path-style requests).
fn validate_bucket(bucket: &str) -> std::result::Result<(), String> {
    let ok_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !(3..=63).contains(&bucket.len()) || !ok_chars {
        return Err(format!(
            "bucket name {bucket:?} must be 3-63 lowercase letters, digits, '-' or '.'"
        ));
    }
    Ok(())
}

/// A prefix of `/`-separated parts, none empty, `.` or `..`.
fn normalize_prefix(prefix: &str) -> std::result::Result<String, String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for part in trimmed.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!("prefix {prefix:?} has an empty, '.' or '..' part"));
        }
    }
    Ok(trimmed.to_string())
}

/// `https` anywhere; `http` only to a loopback host.
fn check_endpoint(endpoint: &str) -> Result<()> {
    let parsed = url::Url::parse(endpoint).map_err(|e| Error::InvalidUrl {
        url: endpoint.to_string(),
        reason: format!("not a URL: {e}"),
    })?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(Error::InsecureEndpoint {
                    endpoint: endpoint.to_string(),
                })
            }
        }
        _ => Err(Error::InvalidUrl {
            url: endpoint.to_string(),
            reason: "the endpoint must be http(s)".into(),
        }),
    }
}

/// True when `endpoint` is plain http (then on loopback, checked when it was set).
pub(crate) fn is_http(endpoint: &str) -> bool {
    endpoint.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        let loc = StorageLocation::parse("s3://my-bucket/clusters/one/").unwrap();
        assert_eq!(
            loc.backend(),
            &Backend::S3 {
                bucket: "my-bucket".into(),
                endpoint: None,
                region: None
            }
        );
        assert_eq!(loc.prefix(), "clusters/one");
        assert_eq!(loc.url(), "s3://my-bucket/clusters/one");
        assert_eq!(StorageLocation::parse("s3://bkt").unwrap().prefix(), "");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, reason) in [
            ("bucket/prefix", "expected s3://"),
            ("s3://B/x", "bucket name"),
            ("s3://ab", "bucket name"),
            ("s3://bucket/a//b", "empty"),
            ("s3://bucket/a/../b", "'..'"),
            ("file://relative/dir", "absolute"),
            ("memory://", "name"),
            ("gs://bucket", "unknown scheme"),
        ] {
            let error = StorageLocation::parse(url).unwrap_err().to_string();
            assert!(error.contains(reason), "{url}: {error}");
        }
    }

    #[test]
    fn plain_http_endpoints_are_accepted_on_loopback_only() {
        let s3 = || StorageLocation::parse("s3://bucket").unwrap();
        for ok in [
            "http://127.0.0.1:4566",
            "http://localhost:9000/",
            "http://[::1]:80",
            "https://s3.example.com",
        ] {
            s3().with_s3_endpoint(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["http://10.0.0.5:9000", "http://s3.example.com"] {
            assert!(
                matches!(s3().with_s3_endpoint(bad), Err(Error::InsecureEndpoint { .. })),
                "{bad}"
            );
        }
        assert!(
            StorageLocation::parse("memory://m")
                .unwrap()
                .with_s3_endpoint("https://x")
                .is_err()
        );
    }

    #[test]
    fn describe_names_the_endpoint_and_region() {
        let loc = StorageLocation::parse("s3://bucket/p")
            .unwrap()
            .with_s3_endpoint("http://127.0.0.1:4566")
            .unwrap()
            .with_s3_region("eu-west-1")
            .unwrap();
        assert_eq!(
            loc.describe(),
            "s3://bucket/p (endpoint http://127.0.0.1:4566, region eu-west-1)"
        );
    }
}

//! Object storage for sealstore: the calls a store of sealed objects needs, on any
//! `object_store` backend (S3 and S3-compatible servers, local files, memory).
//!
//! Only what keeps a store of immutable objects honest is offered: create-only puts (the commit
//! point and every write-once object), conditional updates against a version, whole and ranged
//! reads that check they got exactly the bytes asked for, ordered parallel range reads, listing
//! and deletion. There is no unconditional overwrite: nothing a committed state references is
//! ever replaced. Calls are synchronous (see [`runtime`](crate::runtime)) and counted
//! ([`StorageStats`]) so benches and tests can say how many requests a scan made.

mod error;
mod location;
mod runtime;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

pub use error::{Error, Result};
pub use location::{Backend, StorageLocation};

/// Requests that fail on a network error or a 5xx are retried this often before the error
/// reaches the caller (the S3 client's own backoff) — bounded so a stopped server is reported
/// in seconds, not minutes.
const MAX_RETRIES: usize = 3;
/// Upper bound on one request including its retries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The version of an object a conditional update is based on (ETag and/or version id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub e_tag: Option<String>,
    pub version: Option<String>,
}

/// An object's listing entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Name relative to the storage prefix.
    pub name: String,
    pub size: u64,
    /// Last modification, seconds since the Unix epoch.
    pub modified_unix: i64,
}

/// A whole object as read.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub version: Version,
}

/// One ranged read of [`ObjectStorage::read_ranges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRequest {
    pub name: String,
    pub range: Range<u64>,
}

/// Requests made through one [`ObjectStorage`] (and its clones) so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStats {
    pub gets: u64,
    pub bytes_read: u64,
    pub puts: u64,
    pub bytes_written: u64,
    pub lists: u64,
    pub deletes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    gets: AtomicU64,
    bytes_read: AtomicU64,
    puts: AtomicU64,
    bytes_written: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
}

impl Counters {
    fn got(&self, bytes: usize) {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// A handle on the objects under one [`StorageLocation`]; cheap to clone.
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    location: Arc<StorageLocation>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("location", &self.location.describe())
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// Connects to `location` (no request is made: a bad endpoint or credentials show on the
    /// first call).
    pub fn open(location: &StorageLocation) -> Result<Self> {
        let store: Arc<dyn ObjectStore> = match location.backend() {
            Backend::S3 {
                bucket,
                endpoint,
                region,
            } => Arc::new(s3_client(location, bucket, endpoint, region)?),
            Backend::File { root } => {
                std::fs::create_dir_all(root).map_err(|e| Error::Backend {
                    operation: "create",
                    name: root.display().to_string(),
                    message: e.to_string(),
                })?;
                let fs = LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| Error::from_store("open", &root.display().to_string(), e))?;
                Arc::new(fs)
            }
            Backend::Memory { name } => memory_store(name),
        };
        let prefix = match location.prefix() {
            "" => None,
            p => Some(Path::parse(p).map_err(|e| Error::InvalidUrl {
                url: location.url(),
                reason: e.to_string(),
            })?),
        };
        Ok(Self {
            store,
            prefix,
            location: Arc::new(location.clone()),
            counters: Arc::default(),
        })
    }

    /// Where these objects live.
    pub fn location(&self) -> &StorageLocation {
        &self.location
    }

    /// Requests made so far.
    pub fn stats(&self) -> StorageStats {
        let c = &self.counters;
        StorageStats {
            gets: c.gets.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            puts: c.puts.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
        }
    }

    fn path(&self, name: &str) -> Result<Path> {
        let invalid = |reason: String| Error::InvalidName {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() || name.starts_with('/') || name.ends_with('/') {
            return Err(invalid("empty, or a leading or trailing '/'".into()));
        }
        let relative = Path::parse(name).map_err(|e| invalid(e.to_string()))?;
        Ok(match &self.prefix {
            None => relative,
            Some(prefix) => prefix.parts().chain(relative.parts()).collect(),
        })
    }

    fn relative_name(&self, path: &Path) -> String {
        match &self.prefix {
            None => path.to_string(),
            Some(prefix) => match path.prefix_match(prefix) {
                Some(parts) => parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"),
                None => path.to_string(),
            },
        }
    }

    /// Creates `name` holding `bytes`; refused with [`Error::AlreadyExists`] if any object of that
    /// name exists (the commit point, and every write-once object).
    pub fn put_new(&self, name: &str, bytes: Bytes) -> Result<Version> {
        self.put(name, bytes, PutMode::Create)
    }

    /// Replaces `name` only if it is still at `expected`; refused with [`Error::Changed`]
    /// otherwise.
    pub fn put_if(&self, name: &str, bytes: Bytes, expected: &Version) -> Result<Version> {
        let update = UpdateVersion {
            e_tag: expected.e_tag.clone(),
            version: expected.version.clone(),
        };
        self.put(name, bytes, PutMode::Update(update))
    }

    fn put(&self, name: &str, bytes: Bytes, mode: PutMode) -> Result<Version> {
        let path = self.path(name)?;
        let len = bytes.len();
        let store = self.store.clone();
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        let result = runtime::run(async move { store.put_opts(&path, PutPayload::from(bytes), opts).await })?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        let done = result.map_err(|e| self.store_error("put", name, e))?;
        self.counters.bytes_written.fetch_add(len as u64, Ordering::Relaxed);
        Ok(Version {
            e_tag: done.e_tag,
            version: done.version,
        })
    }

    /// Reads all of `name`.
    pub fn get(&self, name: &str) -> Result<Object> {
        let path = self.path(name)?;
        let store = self.store.clone();
        let result = runtime::run(async move {
            let got = store.get(&path).await?;
            let meta = got.meta.clone();
            let bytes = got.bytes().await?;
            Ok::<_, object_store::Error>((bytes, meta))
        })?;
        let (bytes, meta) = result.map_err(|e| self.store_error("get", name, e))?;
        if bytes.len() as u64 != meta.size {
            return Err(Error::Truncated {
                name: name.to_string(),
                start: 0,
                end: meta.size,
                got: bytes.len() as u64,
            });
        }
        self.counters.got(bytes.len());
        Ok(Object {
            bytes,
            version: Version {
                e_tag: meta.e_tag,
                version: meta.version,
            },
        })
    }

    /// Reads bytes `range` of `name`: exactly that many bytes, else [`Error::Truncated`].
    pub fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(name)?;
        let store = self.store.clone();
        let asked = range.clone();
        let result = runtime::run(async move { store.get_range(&path, asked).await })?;
        let bytes = result.map_err(|e| self.store_error("get", name, e))?;
        self.counters.got(bytes.len());
        check_length(name, &range, &bytes)?;
        Ok(bytes)
    }

    /// Reads every request's range with up to `in_flight` requests outstanding, yielding the
    /// results in request order; at most `in_flight` fetched-but-unread results are held.
    pub fn read_ranges(&self, requests: Vec<RangeRequest>, in_flight: usize) -> Result<RangeReader> {
        let in_flight = in_flight.max(1);
        let mut fetches = Vec::with_capacity(requests.len());
        for request in requests {
            fetches.push((self.path(&request.name)?, request));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let permits = Arc::new(Semaphore::new(in_flight));
        let (store, counters, task_permits) = (self.store.clone(), self.counters.clone(), permits.clone());
        runtime::spawn(async move {
            let results = futures::stream::iter(fetches)
                .map(|(path, request)| {
                    let (store, counters, permits) = (store.clone(), counters.clone(), task_permits.clone());
                    async move {
                        // Closed when the reader is dropped: stop fetching.
                        permits.acquire().await.map_err(|_| None)?.forget();
                        let bytes = store
                            .get_range(&path, request.range.clone())
                            .await
                            .map_err(|e| Some(Error::from_store("get", &request.name, e)))?;
                        counters.got(bytes.len());
                        check_length(&request.name, &request.range, &bytes).map_err(Some)?;
                        Ok::<_, Option<Error>>(bytes)
                    }
                })
                .buffered(in_flight);
            futures::pin_mut!(results);
            while let Some(result) = results.next().await {
                match result {
                    Ok(bytes) => {
                        if tx.send(Ok(bytes)).is_err() {
                            break;
                        }
                    }
                    Err(Some(error)) => {
                        let _ = tx.send(Err(error));
                        break;
                    }
                    Err(None) => break,
                }
            }
        })?;
        Ok(RangeReader { rx, permits })
    }

    /// Every object whose name starts with `dir/` (or every object for `""`), in no particular
    /// order.
    pub fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>> {
        let prefix = match dir.trim_end_matches('/') {
            "" => self.prefix.clone(),
            d => Some(self.path(d)?),
        };
        let store = self.store.clone();
        let result = runtime::run(async move {
            let mut out = Vec::new();
            let mut listing = store.list(prefix.as_ref());
            while let Some(meta) = listing.next().await {
                out.push(meta?);
            }
            Ok::<_, object_store::Error>(out)
        })?;
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let metas = result.map_err(|e| self.store_error("list", dir, e))?;
        Ok(metas
            .into_iter()
            .map(|m| ObjectInfo {
                name: self.relative_name(&m.location),
                size: m.size,
                modified_unix: m.last_modified.timestamp(),
            })
            .collect())
    }

    /// Deletes `name`; deleting an object that is already gone is not an error.
    pub fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        let store = self.store.clone();
        let result = runtime::run(async move { store.delete(&path).await })?;
        self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error("delete", name, e)),
        }
    }

    fn store_error(&self, operation: &'static str, name: &str, error: object_store::Error) -> Error {
        match Error::from_store(operation, name, error) {
            Error::Unsupported { operation, .. } => Error::Unsupported {
                backend: self.location.url(),
                operation,
            },
            other => other,
        }
    }
}

/// Ordered results of [`ObjectStorage::read_ranges`].
#[derive(Debug)]
pub struct RangeReader {
    rx: std::sync::mpsc::Receiver<Result<Bytes>>,
    permits: Arc<Semaphore>,
}

impl Iterator for RangeReader {
    type Item = Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.rx.recv().ok()?;
        // One result taken: one more request may start.
        self.permits.add_permits(1);
        Some(item)
    }
}

impl Drop for RangeReader {
    fn drop(&mut self) {
        self.permits.close();
    }
}

fn check_length(name: &str, range: &Range<u64>, bytes: &Bytes) -> Result<()> {
    let want = range.end.saturating_sub(range.start);
    if bytes.len() as u64 != want {
        return Err(Error::Truncated {
            name: name.to_string(),
            start: range.start,
            end: range.end,
            got: bytes.len() as u64,
        });
    }
    Ok(())
}

fn s3_client(
    location: &StorageLocation,
    bucket: &str,
    endpoint: &Option<String>,
    region: &Option<String>,
) -> Result<object_store::aws::AmazonS3> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            max_retries: MAX_RETRIES,
            retry_timeout: REQUEST_TIMEOUT,
            ..Default::default()
        })
        .with_client_options(ClientOptions::new().with_timeout(REQUEST_TIMEOUT));
    if let Some(region) = region {
        builder = builder.with_region(region);
    } else if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
        builder = builder.with_region("us-east-1");
    }
    if let Some(endpoint) = endpoint {
        // Path-style requests: S3-compatible servers rarely resolve bucket subdomains.
        builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
    }
    // Plain http only to an endpoint checked to be loopback — never from the environment.
    builder = builder.with_allow_http(endpoint.as_deref().is_some_and(location::is_http));
    builder.build().map_err(|e| Error::InvalidUrl {
        url: location.url(),
        reason: e.to_string(),
    })
}

/// The process's named in-memory stores: opening `memory://name` twice shares one store.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let mut stores = STORES.get_or_init(Default::default).lock();
    stores
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

#[cfg(test)]
mod tests;

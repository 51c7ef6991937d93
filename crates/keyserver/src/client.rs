//! A node's side: [`RemoteKeyStore`], the keyring's key store behind a key server. Blocking
//! calls over one mutual-TLS connection (re-opened when it breaks); keys are held only in
//! memory by the keyring above, and only while the node's lease is fresh.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use sealstore_keyring::backend::{GrantedDatabaseKey, KeyStoreBackend};
use sealstore_keyring::{
    AuditRecord, AuditVerifyReport, DatabaseKey, Error as KeyError, HierarchyInfo, MasterKeyProvider,
    Result as KeyResult, SealCounts,
};
use zeroize::Zeroizing;

use crate::protocol::{self, PROTOCOL_VERSION, Reply, Request, Response};
use crate::{Error, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a key server is and how to prove who we are to it.
#[derive(Debug, Clone)]
pub struct KeyServerAddress {
    /// `host:port`, as given (`https://` and a trailing `/` removed).
    pub address: String,
    host: String,
    socket: SocketAddr,
}

impl KeyServerAddress {
    /// Parses `https://HOST:PORT` or `HOST:PORT`.
    pub fn parse(text: &str) -> Result<Self> {
        let address = text
            .trim()
            .strip_prefix("https://")
            .unwrap_or(text.trim())
            .trim_end_matches('/')
            .to_owned();
        let bad = |why: &str| Error::InvalidOption(format!("key server address `{text}`: {why}"));
        let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("expected HOST:PORT"))?;
        port.parse::<u16>().map_err(|_| bad("the port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let socket = address
            .to_socket_addrs()
            .map_err(|e| bad(&e.to_string()))?
            .next()
            .ok_or_else(|| bad("resolves to no address"))?;
        Ok(Self { address, host, socket })
    }
}

type Stream = StreamOwned<ClientConnection, TcpStream>;

/// One mutual-TLS connection to a key server, re-opened on demand.
pub struct Connection {
    address: KeyServerAddress,
    config: Arc<ClientConfig>,
    stream: Mutex<Option<Stream>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address.address)
            .finish()
    }
}

impl Connection {
    /// A connection (opened at the first call) to `address` with a TLS configuration from
    /// [`crate::tls::client_config`].
    pub fn new(address: KeyServerAddress, config: Arc<ClientConfig>) -> Self {
        Self {
            address,
            config,
            stream: Mutex::new(None),
        }
    }

    /// The server's address, as given.
    pub fn address(&self) -> &str {
        &self.address.address
    }

    fn failed(&self, reason: impl Into<String>) -> KeyError {
        KeyError::KeyServer {
            address: self.address.address.clone(),
            reason: reason.into(),
        }
    }

    fn connect(&self) -> KeyResult<Stream> {
        let tcp = TcpStream::connect_timeout(&self.address.socket, CONNECT_TIMEOUT)
            .map_err(|e| self.failed(format!("unreachable: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
        let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
        let name = ServerName::try_from(self.address.host.clone())
            .map_err(|_| self.failed(format!("`{}` is not a valid server name", self.address.host)))?;
        let conn = ClientConnection::new(self.config.clone(), name).map_err(|e| self.failed(format!("TLS: {e}")))?;
        let mut stream = StreamOwned::new(conn, tcp);
        // Finish the handshake now, so a refused certificate is reported as such.
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| self.failed(tls_failure(&e)))?;
        }
        Ok(stream)
    }

    fn exchange(stream: &mut Stream, frame: &[u8]) -> std::io::Result<Zeroizing<Vec<u8>>> {
        stream.write_all(frame)?;
        stream.flush()?;
        let mut header = [0u8; 4];
        stream.read_exact(&mut header)?;
        let len = protocol::frame_len(header).map_err(std::io::Error::other)?;
        let mut body = Zeroizing::new(vec![0u8; len]);
        stream.read_exact(&mut body)?;
        Ok(body)
    }

    /// Sends `request` with `keys`; returns the reply and the keys attached to it.
    pub fn call(&self, request: &Request, keys: &[&[u8; 32]]) -> KeyResult<(Reply, protocol::FrameKeys)> {
        let frame = protocol::encode(request, keys).map_err(|e| self.failed(e))?;
        let mut guard = self.stream.lock();
        let reused = guard.is_some();
        let body = {
            let stream = match guard.as_mut() {
                Some(s) => s,
                None => guard.insert(self.connect()?),
            };
            match Self::exchange(stream, &frame) {
                Ok(body) => body,
                Err(first) => {
                    *guard = None;
                    // A connection kept from before may have been closed by the server; a
                    // request that is safe to repeat gets one fresh connection.
                    if !(reused && is_repeatable(request)) {
                        return Err(self.failed(tls_failure(&first)));
                    }
                    let stream = guard.insert(self.connect()?);
                    Self::exchange(stream, &frame).map_err(|e| self.failed(tls_failure(&e)))?
                }
            }
        };
        drop(guard);
        let (response, keys): (Response, _) = protocol::decode(&body).map_err(|e| self.failed(e))?;
        match response {
            Response::Ok(reply) => Ok((reply, keys)),
            Response::Err(e) => Err(e.into_key_error(&self.address.address)),
        }
    }

    /// The clusters this node's certificate may use on the server.
    pub fn hello(&self) -> KeyResult<Vec<String>> {
        match self.call(
            &Request::Hello {
                version: PROTOCOL_VERSION,
            },
            &[],
        )? {
            (Reply::Hello { clusters, .. }, _) => Ok(clusters),
            (other, _) => Err(self.failed(format!("unexpected reply {other:?}"))),
        }
    }
}

fn is_repeatable(request: &Request) -> bool {
    matches!(
        request,
        Request::Hello { .. }
            | Request::Lease { .. }
            | Request::Info { .. }
            | Request::Databases { .. }
            | Request::DatabaseKeys { .. }
            | Request::BoundGeneration { .. }
            | Request::BindGeneration { .. }
            | Request::AuditRecords { .. }
            | Request::VerifyAudit { .. }
    )
}

/// A TLS or socket failure in words: a refused certificate reads as one.
fn tls_failure(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("alert") {
        format!(
            "refused the TLS connection ({text}): is this node's certificate signed by the server's client CA, valid today, and does it name the cluster?"
        )
    } else if e.kind() == std::io::ErrorKind::UnexpectedEof || e.kind() == std::io::ErrorKind::ConnectionReset {
        format!("closed the connection ({text}): the server stopped, or refused this node's certificate")
    } else {
        text
    }
}

/// A cluster's key records on a key server, as the keyring's key store.
pub struct RemoteKeyStore {
    connection: Connection,
    cluster: String,
    /// Until when the keys may be used without asking the server again.
    lease_until: Mutex<Instant>,
}

impl std::fmt::Debug for RemoteKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeyStore")
            .field("server", &self.connection.address())
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl RemoteKeyStore {
    /// Connects to the key server with this node's certificate and checks that it may use
    /// `cluster` (or, with `None`, picks the one cluster its certificate names).
    pub fn connect(
        address: &str,
        ca: &Path,
        cert: &Path,
        key: &Path,
        cluster: Option<&str>,
    ) -> std::result::Result<Self, Error> {
        let address = KeyServerAddress::parse(address)?;
        let config = crate::tls::client_config(ca, Some((cert, key)))?;
        Self::with_connection(Connection::new(address, config), cluster)
    }

    /// Like [`RemoteKeyStore::connect`], over a prepared connection.
    pub fn with_connection(connection: Connection, cluster: Option<&str>) -> std::result::Result<Self, Error> {
        let clusters = connection.hello()?;
        let cluster = match cluster {
            Some(id) => id.to_owned(),
            None => match clusters.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(Error::InvalidOption(format!(
                        "key server {}: this node's certificate names no registered, unrevoked cluster",
                        connection.address()
                    )));
                }
                many => {
                    return Err(Error::InvalidOption(format!(
                        "key server {}: this certificate names several clusters ({}); give --cluster-id",
                        connection.address(),
                        many.join(", ")
                    )));
                }
            },
        };
        let store = Self {
            connection,
            cluster,
            lease_until: Mutex::new(Instant::now()),
        };
        store.renew()?;
        Ok(store)
    }

    fn call(&self, request: Request, keys: &[&[u8; 32]]) -> KeyResult<(Reply, protocol::FrameKeys)> {
        self.connection.call(&request, keys)
    }

    fn renew(&self) -> KeyResult<()> {
        let asked = Instant::now();
        match self.call(
            Request::Lease {
                cluster: self.cluster.clone(),
            },
            &[],
        )? {
            (Reply::Lease { ttl_ms }, _) => {
                *self.lease_until.lock() = asked + Duration::from_millis(ttl_ms);
                Ok(())
            }
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    fn unexpected(&self, reply: &Reply) -> KeyError {
        self.connection.failed(format!("unexpected reply {reply:?}"))
    }

    fn done(&self, request: Request, keys: &[&[u8; 32]]) -> KeyResult<()> {
        match self.call(request, keys)? {
            (Reply::Done, _) => Ok(()),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    fn generation(&self, request: Request, keys: &[&[u8; 32]]) -> KeyResult<u64> {
        match self.call(request, keys)? {
            (Reply::Generation { generation }, _) => Ok(generation),
            (other, _) => Err(self.unexpected(&other)),
        }
    }
}

impl KeyStoreBackend for RemoteKeyStore {
    fn cluster_id(&self) -> String {
        self.cluster.clone()
    }

    fn location(&self) -> String {
        format!("key server {}", self.connection.address())
    }

    fn info(&self) -> KeyResult<HierarchyInfo> {
        match self.call(
            Request::Info {
                cluster: self.cluster.clone(),
            },
            &[],
        )? {
            (Reply::Info { info }, _) => {
                let mut info = *info;
                info.keystore = format!("key server https://{}", self.connection.address());
                Ok(info)
            }
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    fn databases(&self) -> KeyResult<Vec<String>> {
        match self.call(
            Request::Databases {
                cluster: self.cluster.clone(),
            },
            &[],
        )? {
            (Reply::Names { names }, _) => Ok(names),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    fn add_database_key(&self, name: &str, key: &DatabaseKey, seals: SealCounts) -> KeyResult<()> {
        self.done(
            Request::AddDatabaseKey {
                cluster: self.cluster.clone(),
                name: name.to_owned(),
                seals,
            },
            &[key.expose_secret()],
        )
    }

    fn database_keys(&self, name: &str) -> KeyResult<Vec<GrantedDatabaseKey>> {
        match self.call(
            Request::DatabaseKeys {
                cluster: self.cluster.clone(),
                name: name.to_owned(),
            },
            &[],
        )? {
            (Reply::Keys { keys: meta }, keys) if meta.len() == keys.len() && !keys.is_empty() => Ok(meta
                .into_iter()
                .zip(keys)
                .map(|((generation, seals), key)| GrantedDatabaseKey {
                    generation,
                    key: DatabaseKey::from_bytes(*key),
                    seals,
                })
                .collect()),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    fn keep_database_key(&self, name: &str, generation: u32, detail: &str) -> KeyResult<()> {
        self.done(
            Request::KeepDatabaseKey {
                cluster: self.cluster.clone(),
                name: name.to_owned(),
                generation,
                detail: detail.to_owned(),
            },
            &[],
        )
    }

    fn stage_database_key(
        &self,
        name: &str,
        live_generation: u32,
        key: &DatabaseKey,
        seals: SealCounts,
    ) -> KeyResult<u32> {
        let generation = self.generation(
            Request::StageDatabaseKey {
                cluster: self.cluster.clone(),
                name: name.to_owned(),
                live_generation,
                seals,
            },
            &[key.expose_secret()],
        )?;
        u32::try_from(generation).map_err(|_| self.connection.failed("database-key generation out of range"))
    }

    fn bound_generation(&self, name: &str) -> KeyResult<u64> {
        self.generation(
            Request::BoundGeneration {
                cluster: self.cluster.clone(),
                name: name.to_owned(),
            },
            &[],
        )
    }

    fn bind_generation(
        &self,
        name: &str,
        generation: u64,
        accept_rollback: bool,
        seals: Option<SealCounts>,
    ) -> KeyResult<()> {
        self.done(
            Request::BindGeneration {
                cluster: self.cluster.clone(),
                name: name.to_owned(),
                generation,
                accept_rollback,
                seals,
            },
            &[],
        )
    }

    fn drop_database(&self, name: &str) -> KeyResult<()> {
        self.done(
            Request::DropDatabase {
                cluster: self.cluster.clone(),
                name: name.to_owned(),
            },
            &[],
        )
    }

    fn rotate_cluster_key(&self) -> KeyResult<u32> {
        let generation = self.generation(
            Request::RotateClusterKey {
                cluster: self.cluster.clone(),
            },
            &[],
        )?;
        u32::try_from(generation).map_err(|_| self.connection.failed("cluster-key generation out of range"))
    }

    fn rotate_master_key(&self, _new_provider: Arc<dyn MasterKeyProvider>) -> KeyResult<()> {
        Err(self.connection.failed(
            "the master key is the key server's: rotate it there (sealstore keyserver rotate-master, the server stopped)",
        ))
    }

    fn provider(&self) -> Option<Arc<dyn MasterKeyProvider>> {
        None
    }

    fn append_audit(&self, record: AuditRecord, durable: bool) -> KeyResult<()> {
        self.done(
            Request::AppendAudit {
                cluster: self.cluster.clone(),
                record: Box::new(record),
                durable,
            },
            &[],
        )
    }

    fn audit_records(&self) -> KeyResult<Vec<AuditRecord>> {
        match self.call(
            Request::AuditRecords {
                cluster: self.cluster.clone(),
            },
            &[],
        )? {
            (Reply::Records { records }, _) => Ok(records),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    fn verify_audit(&self) -> KeyResult<AuditVerifyReport> {
        match self.call(
            Request::VerifyAudit {
                cluster: self.cluster.clone(),
            },
            &[],
        )? {
            (Reply::Report { report }, _) => Ok(report),
            (other, _) => Err(self.unexpected(&other)),
        }
    }

    fn check_access(&self) -> KeyResult<()> {
        if Instant::now() < *self.lease_until.lock() {
            return Ok(());
        }
        self.renew()
    }

    #[cfg(feature = "test-hooks")]
    fn insecure_key_bytes_for_tests(&self) -> KeyResult<Vec<[u8; 32]>> {
        // The node never holds the cluster key; its database keys are what it could leak.
        let mut keys = Vec::new();
        for name in self.databases()? {
            for granted in self.database_keys(&name)? {
                keys.push(*granted.key.expose_secret());
            }
        }
        Ok(keys)
    }
}

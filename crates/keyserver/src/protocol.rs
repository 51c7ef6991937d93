//! The wire protocol: one request, one response, each a frame inside the mutual-TLS stream.
//!
//! ```text
//! frame = total_len u32 BE | json_len u32 BE | json[json_len] | key[32] × k
//! ```
//! The JSON part is a [`Request`] or a [`Response`]; keys (database keys only) travel as raw
//! 32-byte blocks after it, never inside JSON strings, so every copy is in a buffer that is
//! zeroized when dropped. A frame is at most [`MAX_FRAME`] bytes. Documented in
//! `docs/key-server.md`.
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use sealstore_keyring::{AuditRecord, AuditVerifyReport, HierarchyInfo, SealCounts};

/// Protocol version, sent in [`Request::Hello`] and checked by the server.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest frame either side accepts (an audit log listing is the largest reply).
pub const MAX_FRAME: usize = 256 << 20;
/// The largest request a server reads: requests are small (an audit record is the largest),
/// so a node cannot make the server allocate much before a request is parsed.
pub const MAX_REQUEST: usize = 1 << 20;
/// Length of one key in a frame.
pub const KEY_LEN: usize = 32;

/// A call from a node. Every call but `Hello` names the cluster; the client certificate must
/// be valid for that cluster's name (see [`crate::tls::cluster_dns_name`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Protocol check; returns the clusters this certificate may use.
    Hello {
        version: u32,
    },
    /// Renews the node's lease (fails once the cluster is revoked).
    Lease {
        cluster: String,
    },
    Info {
        cluster: String,
    },
    Databases {
        cluster: String,
    },
    /// One key attached: the new database's key.
    AddDatabaseKey {
        cluster: String,
        name: String,
        seals: SealCounts,
    },
    DatabaseKeys {
        cluster: String,
        name: String,
    },
    KeepDatabaseKey {
        cluster: String,
        name: String,
        generation: u32,
        detail: String,
    },
    /// One key attached: the staged key.
    StageDatabaseKey {
        cluster: String,
        name: String,
        live_generation: u32,
        seals: SealCounts,
    },
    BoundGeneration {
        cluster: String,
        name: String,
    },
    BindGeneration {
        cluster: String,
        name: String,
        generation: u64,
        accept_rollback: bool,
        seals: Option<SealCounts>,
    },
    DropDatabase {
        cluster: String,
        name: String,
    },
    RotateClusterKey {
        cluster: String,
    },
    AppendAudit {
        cluster: String,
        record: Box<AuditRecord>,
        durable: bool,
    },
    AuditRecords {
        cluster: String,
    },
    VerifyAudit {
        cluster: String,
    },
}

impl Request {
    /// The cluster the call is for (`None` for `Hello`).
    pub fn cluster(&self) -> Option<&str> {
        use Request::*;
        match self {
            Hello { .. } => None,
            Lease { cluster }
            | Info { cluster }
            | Databases { cluster }
            | AddDatabaseKey { cluster, .. }
            | DatabaseKeys { cluster, .. }
            | KeepDatabaseKey { cluster, .. }
            | StageDatabaseKey { cluster, .. }
            | BoundGeneration { cluster, .. }
            | BindGeneration { cluster, .. }
            | DropDatabase { cluster, .. }
            | RotateClusterKey { cluster }
            | AppendAudit { cluster, .. }
            | AuditRecords { cluster }
            | VerifyAudit { cluster } => Some(cluster),
        }
    }

    /// The operation's name, for audit records and errors.
    pub fn name(&self) -> &'static str {
        use Request::*;
        match self {
            Hello { .. } => "hello",
            Lease { .. } => "lease",
            Info { .. } => "info",
            Databases { .. } => "databases",
            AddDatabaseKey { .. } => "add-database-key",
            DatabaseKeys { .. } => "database-keys",
            KeepDatabaseKey { .. } => "keep-database-key",
            StageDatabaseKey { .. } => "stage-database-key",
            BoundGeneration { .. } => "bound-generation",
            BindGeneration { .. } => "bind-generation",
            DropDatabase { .. } => "drop-database",
            RotateClusterKey { .. } => "rotate-cluster-key",
            AppendAudit { .. } => "append-audit",
            AuditRecords { .. } => "audit-records",
            VerifyAudit { .. } => "verify-audit",
        }
    }
}

/// A successful reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    Done,
    Hello {
        version: u32,
        clusters: Vec<String>,
    },
    Lease {
        ttl_ms: u64,
    },
    Info {
        info: Box<HierarchyInfo>,
    },
    Names {
        names: Vec<String>,
    },
    /// One key attached per entry, in order.
    Keys {
        keys: Vec<(u32, SealCounts)>,
    },
    Generation {
        generation: u64,
    },
    Records {
        records: Vec<AuditRecord>,
    },
    Report {
        report: AuditVerifyReport,
    },
}

/// A failed call, with enough structure for the client to rebuild the keyring error a caller
/// matches on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WireError {
    UnknownDatabase {
        name: String,
    },
    DatabaseExists {
        name: String,
    },
    Rollback {
        what: String,
        detail: String,
    },
    /// Refused: certificate, authorisation, revocation, protocol.
    Refused {
        message: String,
    },
    Failed {
        message: String,
    },
}

impl WireError {
    /// The server-side error as it goes on the wire.
    pub fn from_key_error(e: &sealstore_keyring::Error) -> Self {
        use sealstore_keyring::Error as K;
        match e {
            K::UnknownDatabase(name) => WireError::UnknownDatabase { name: name.clone() },
            K::DatabaseExists(name) => WireError::DatabaseExists { name: name.clone() },
            K::RollbackDetected { what, detail } => WireError::Rollback {
                what: what.clone(),
                detail: detail.clone(),
            },
            other => WireError::Failed {
                message: other.to_string(),
            },
        }
    }

    /// The error a caller of the client sees.
    pub fn into_key_error(self, address: &str) -> sealstore_keyring::Error {
        use sealstore_keyring::Error as K;
        match self {
            WireError::UnknownDatabase { name } => K::UnknownDatabase(name),
            WireError::DatabaseExists { name } => K::DatabaseExists(name),
            WireError::Rollback { what, detail } => K::RollbackDetected { what, detail },
            WireError::Refused { message } => K::KeyServer {
                address: address.to_owned(),
                reason: format!("refused: {message}"),
            },
            WireError::Failed { message } => K::KeyServer {
                address: address.to_owned(),
                reason: message,
            },
        }
    }
}

/// A response: a reply or an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Response {
    Ok(Reply),
    Err(WireError),
}

/// Keys carried by a frame, each zeroized when dropped.
pub type FrameKeys = Vec<Zeroizing<[u8; KEY_LEN]>>;

/// Builds a frame of `message` and `keys`, in a buffer zeroized on drop.
pub fn encode<T: Serialize>(message: &T, keys: &[&[u8; KEY_LEN]]) -> Result<Zeroizing<Vec<u8>>, String> {
    let json = serde_json::to_vec(message).map_err(|e| format!("encoding a message: {e}"))?;
    let total = 4 + json.len() + keys.len() * KEY_LEN;
    if total > MAX_FRAME {
        return Err(format!(
            "a message of {total} bytes exceeds the {MAX_FRAME}-byte frame limit"
        ));
    }
    let mut frame = Zeroizing::new(Vec::with_capacity(4 + total));
    frame.extend_from_slice(&(total as u32).to_be_bytes());
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(&json);
    for key in keys {
        frame.extend_from_slice(&key[..]);
    }
    Ok(frame)
}

/// The length a frame header announces, checked against [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, String> {
    let len = u32::from_be_bytes(header) as usize;
    if !(4..=MAX_FRAME).contains(&len) {
        return Err(format!("frame of {len} bytes is outside 4..={MAX_FRAME}"));
    }
    Ok(len)
}

/// Splits a frame body (after its length) into its message and its keys.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<(T, FrameKeys), String> {
    let json_len = body
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("frame shorter than its header")?;
    let json = body.get(4..4 + json_len).ok_or("frame shorter than its message")?;
    let rest = &body[4 + json_len..];
    if !rest.len().is_multiple_of(KEY_LEN) {
        return Err(format!("{} key bytes after the message are not whole keys", rest.len()));
    }
    let message = serde_json::from_slice(json).map_err(|e| format!("malformed message: {e}"))?;
    let keys = rest
        .chunks_exact(KEY_LEN)
        .map(|c| {
            let mut k = Zeroizing::new([0u8; KEY_LEN]);
            k.copy_from_slice(c);
            k
        })
        .collect();
    Ok((message, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_its_message_and_keys() {
        let key = [7u8; 32];
        let frame = encode(&Request::Databases { cluster: "c1".into() }, &[&key]).unwrap();
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        let (msg, keys): (Request, _) = decode(&frame[4..]).unwrap();
        assert_eq!(msg.cluster(), Some("c1"));
        assert_eq!(*keys[0], key);
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        assert!(frame_len([0, 0, 0, 0]).is_err());
        assert!(frame_len([0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode::<Request>(&[0, 0, 0]).is_err());
        assert!(decode::<Request>(&[0xff, 0xff, 0xff, 0xff, b'{']).is_err());
        assert!(decode::<Request>(&[0, 0, 0, 2, b'{', b'}', 1, 2]).is_err());
        assert!(decode::<Request>(&[0, 0, 0, 2, b'{', b'}']).is_err(), "no op");
    }
}

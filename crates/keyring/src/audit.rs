//! The audit log: append-only JSON lines in the key store directory, each record carrying the
//! SHA-256 of the previous record, so an edit, deletion or reordering breaks the chain.
//! `audit.head` (replaced atomically after each append) remembers the last sequence number and
//! hash, so cutting records off the tail is detected too.
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{EncryptionContext, Error, Result, fsutil};

pub(crate) const AUDIT_FILE: &str = "audit.log";
const HEAD_FILE: &str = "audit.head";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HASH_FIELD: &str = ",\"hash\":\"";

/// Key operations recorded in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuditOp {
    CreateClusterKey,
    CreateDatabaseKey,
    Wrap,
    Unwrap,
    GenerateDataKey,
    UnwrapDataKey,
    RemoveDataKey,
    Shred,
    RotateMasterKey,
    RotateClusterKey,
    RotateDatabaseKey,
    Rekey,
    AcceptRollback,
    AuthFailure,
}

impl AuditOp {
    /// The name used in the log and on the command line.
    pub fn name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One audit record. Never holds key bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: String,
    pub op: AuditOp,
    /// `master`, `cluster`, `database` or `data`.
    pub tier: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub generation: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context: Option<EncryptionContext>,
    /// `ok` or `failed: <reason>`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    /// SHA-256 (hex) of the previous record's line body; zeros for the first.
    pub prev: String,
}

impl AuditRecord {
    /// A record for `op` at `tier`, stamped now; fill the optional fields with the builders.
    pub fn new(op: AuditOp, tier: &str) -> Self {
        Self {
            seq: 0,
            time: crate::now_rfc3339(),
            op,
            tier: tier.to_owned(),
            key_id: None,
            generation: None,
            database: None,
            context: None,
            outcome: "ok".into(),
            count: None,
            detail: None,
            prev: String::new(),
        }
    }
    pub fn key_id(mut self, id: impl Into<String>) -> Self {
        self.key_id = Some(id.into());
        self
    }
    pub fn generation(mut self, g: u64) -> Self {
        self.generation = Some(g);
        self
    }
    pub fn database(mut self, db: impl Into<String>) -> Self {
        self.database = Some(db.into());
        self
    }
    pub fn context(mut self, ctx: &EncryptionContext) -> Self {
        self.context = Some(ctx.clone());
        self
    }
    pub fn count(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    /// Marks the outcome as failed with the error's message.
    pub fn failed(mut self, err: &Error) -> Self {
        self.outcome = format!("failed: {err}");
        self
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

#[derive(Debug)]
struct Tail {
    file: File,
    /// Bytes of complete records: a failed append is cut back to it.
    len: u64,
    seq: u64,
    hash: String,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerifyReport {
    pub records: u64,
    pub last_hash: String,
}

/// The append-only, hash-chained audit log.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    tail: Mutex<Tail>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Splits a line into (body, hash): the body is the JSON text the hash covers.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let at = line.rfind(HASH_FIELD)?;
    let hash = line[at + HASH_FIELD.len()..].strip_suffix("\"}")?;
    Some((&line[..at], hash))
}

impl AuditLog {
    /// Opens (or starts) the log in `dir`. A torn final line left by a crash is cut off.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(AUDIT_FILE);
        let mut bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        if complete < bytes.len() {
            file.set_len(complete as u64).map_err(|e| Error::io(&path, e))?;
            bytes.truncate(complete);
        }
        let (mut seq, mut hash) = (0, GENESIS.to_owned());
        if let Some(last) = bytes[..complete].split(|&b| b == b'\n').rfind(|l| !l.is_empty()) {
            let text = std::str::from_utf8(last).map_err(|_| Error::corrupt(&path, 0, "audit line is not UTF-8"))?;
            let (body, h) = split_line(text).ok_or_else(|| Error::corrupt(&path, 0, "audit line without hash"))?;
            let record: AuditRecord =
                serde_json::from_str(&format!("{body}}}")).map_err(|e| Error::corrupt(&path, 0, e.to_string()))?;
            seq = record.seq;
            hash = h.to_owned();
        }
        Ok(Self {
            dir: dir.to_owned(),
            tail: Mutex::new(Tail {
                file,
                len: complete as u64,
                seq,
                hash,
            }),
        })
    }

    /// The log file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(AUDIT_FILE)
    }

    /// Appends a record (assigning its sequence number and chain hash) and syncs it.
    pub fn append(&self, record: AuditRecord) -> Result<u64> {
        self.append_with(record, true)
    }

    /// Appends a record; with `durable == false` it is left to the page cache (used for the
    /// per-scan DEK-unwrap counts, so a read never waits for a disk flush; a crash may lose the
    /// last such counts but never breaks the chain, since a torn tail line is cut on open).
    pub fn append_with(&self, mut record: AuditRecord, durable: bool) -> Result<u64> {
        let path = self.path();
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        record.seq = tail.seq + 1;
        record.prev = tail.hash.clone();
        let json = serde_json::to_string(&record).map_err(|e| Error::corrupt(&path, 0, e.to_string()))?;
        let body = json.strip_suffix('}').unwrap_or(&json);
        let hash = sha256_hex(body.as_bytes());
        let line = format!("{body}{HASH_FIELD}{hash}\"}}\n");
        let written = crate::faults::write_all(&tail.file, line.as_bytes()).and_then(|_| {
            if durable {
                crate::faults::sync_data(&tail.file)
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Never leave half a line for the next record to follow.
            let _ = tail.file.set_len(tail.len);
            return Err(Error::io(&path, e));
        }
        tail.len += line.len() as u64;
        tail.seq = record.seq;
        tail.hash = hash.clone();
        // The head only guards against tail truncation: a stale head (crash before this rename)
        // is still consistent with the log, so it needs no fsync of its own.
        let head = serde_json::to_vec(&Head { seq: record.seq, hash }).unwrap_or_default();
        let head_tmp = self.dir.join(format!(".{HEAD_FILE}.tmp"));
        fs::write(&head_tmp, head)
            .and_then(|_| fs::rename(&head_tmp, self.dir.join(HEAD_FILE)))
            .map_err(|e| Error::io(self.dir.join(HEAD_FILE), e))?;
        Ok(record.seq)
    }

    /// The sequence number of the last record.
    pub fn last_seq(&self) -> u64 {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).seq
    }

    /// Reads every record (without verifying the chain).
    pub fn records(&self) -> Result<Vec<AuditRecord>> {
        let path = self.path();
        let text = fsutil::read(&path)?;
        let text = String::from_utf8_lossy(&text);
        text.lines()
            .filter(|l| !l.is_empty())
            .enumerate()
            .map(|(i, line)| {
                let body = split_line(line).map_or(line.to_owned(), |(b, _)| format!("{b}}}"));
                serde_json::from_str(&body).map_err(|e| Error::corrupt(&path, i as u64 + 1, e.to_string()))
            })
            .collect()
    }

    /// Verifies the whole chain and the head: every edit, removal, reordering or tail truncation
    /// is reported with the record number where the chain breaks.
    pub fn verify(&self) -> Result<AuditVerifyReport> {
        let bytes = fsutil::read(&self.path())?;
        let head = fs::read(self.dir.join(HEAD_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<Head>(&b).ok());
        verify_bytes(&bytes, head.as_ref().map(|h| (h.seq, h.hash.as_str()))).map_err(|(line, reason)| {
            Error::AuditChainBroken {
                path: self.path(),
                line,
                reason,
            }
        })
    }
}

/// Verifies a log image against an optional head `(seq, hash)`.
pub(crate) fn verify_bytes(bytes: &[u8], head: Option<(u64, &str)>) -> Result<AuditVerifyReport, (u64, String)> {
    let text = std::str::from_utf8(bytes).map_err(|_| (0, "log is not UTF-8".to_owned()))?;
    let mut prev = GENESIS.to_owned();
    let mut count = 0u64;
    let mut head_seen = head.is_none();
    for (i, line) in text.lines().enumerate() {
        let n = i as u64 + 1;
        let (body, hash) = split_line(line).ok_or((n, "record has no hash field".to_owned()))?;
        if sha256_hex(body.as_bytes()) != hash {
            return Err((n, "record was edited (its hash does not match its contents)".into()));
        }
        let record: AuditRecord =
            serde_json::from_str(&format!("{body}}}")).map_err(|e| (n, format!("record is not valid: {e}")))?;
        if record.prev != prev {
            return Err((
                n,
                "chain broken: a record before this one was removed, inserted or reordered".into(),
            ));
        }
        if record.seq != n {
            return Err((n, format!("sequence number {} where {n} was expected", record.seq)));
        }
        if let Some((seq, h)) = head
            && seq == record.seq
        {
            if h != hash {
                return Err((n, "record differs from the one the head file recorded".into()));
            }
            head_seen = true;
        }
        prev = hash.to_owned();
        count = n;
    }
    if !head_seen {
        let seq = head.map_or(0, |h| h.0);
        return Err((
            count + 1,
            format!("log truncated: the head file records {seq} records, the log holds {count}"),
        ));
    }
    Ok(AuditVerifyReport {
        records: count,
        last_hash: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: u64) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for i in 0..n {
            let ctx = EncryptionContext::new().with("cluster-id", "c1");
            log.append(
                AuditRecord::new(AuditOp::Wrap, "master")
                    .key_id("local:ab")
                    .context(&ctx)
                    .count(i),
            )
            .unwrap();
        }
        (dir, log)
    }

    fn lines(log: &AuditLog) -> Vec<String> {
        fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(log: &AuditLog, lines: &[String]) {
        fs::write(log.path(), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }

    #[test]
    fn intact_chain_verifies_and_survives_reopen() {
        let (dir, log) = log_with(5);
        assert_eq!(log.verify().unwrap().records, 5);
        drop(log);
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(AuditRecord::new(AuditOp::Unwrap, "master")).unwrap();
        assert_eq!(log.verify().unwrap().records, 6);
        assert_eq!(log.records().unwrap()[5].op, AuditOp::Unwrap);
    }

    #[test]
    fn edited_record_is_detected() {
        let (_d, log) = log_with(4);
        let mut l = lines(&log);
        l[1] = l[1].replace("\"ok\"", "\"failed\"");
        write_lines(&log, &l);
        assert!(matches!(log.verify(), Err(Error::AuditChainBroken { line: 2, .. })));
    }

    #[test]
    fn removed_record_is_detected() {
        let (_d, log) = log_with(4);
        let mut l = lines(&log);
        l.remove(1);
        write_lines(&log, &l);
        assert!(matches!(log.verify(), Err(Error::AuditChainBroken { line: 2, .. })));
    }

    #[test]
    fn reordered_records_are_detected() {
        let (_d, log) = log_with(4);
        let mut l = lines(&log);
        l.swap(1, 2);
        write_lines(&log, &l);
        assert!(matches!(log.verify(), Err(Error::AuditChainBroken { line: 2, .. })));
    }

    #[test]
    fn truncated_tail_is_detected() {
        let (_d, log) = log_with(4);
        let mut l = lines(&log);
        l.pop();
        write_lines(&log, &l);
        match log.verify() {
            Err(Error::AuditChainBroken { reason, .. }) => assert!(reason.contains("truncated"), "{reason}"),
            other => panic!("expected truncation, got {other:?}"),
        }
    }

    #[test]
    fn torn_final_line_is_cut_on_open() {
        let (dir, log) = log_with(3);
        drop(log);
        let path = dir.path().join(AUDIT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"seq\":4,\"ti");
        fs::write(&path, &bytes).unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.append(AuditRecord::new(AuditOp::Unwrap, "master")).unwrap();
        assert_eq!(log.verify().unwrap().records, 4);
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [&b"\xff\xfe"[..], b"{}", b"{\"hash\":\"x\"}\n", b"\n\n"] {
            let _ = verify_bytes(bytes, None);
            let _ = verify_bytes(bytes, Some((3, "ab")));
        }
    }
}

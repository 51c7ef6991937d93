//! The audit log: append-only JSON lines in the key store directory, chained with HMAC-SHA256.
//!
//! Each record carries the MAC of the previous one (`prev`) and its own (`mac`), computed under
//! the cluster's audit key — a random key wrapped by the cluster key in the key store, so only a
//! holder of the master key can extend or recompute the chain, and a log from another cluster
//! fails at its first record. The key store keeps the chain's *anchor*, the (sequence, MAC) of
//! the last record when it was last saved (every commit and every open saves it), so cutting
//! records at or before the anchor, or deleting the log, is detected.
//!
//! Records written before the key is known — a failed open with a wrong master key — are
//! *unkeyed*: marked `"keyed":false`, chained with plain SHA-256. Only failure records may be
//! unkeyed; anything else without a valid MAC breaks the chain.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AuditKey, EncryptionContext, Error, Result, fsutil};

pub(crate) const AUDIT_FILE: &str = "audit.log";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const MAC_FIELD: &str = ",\"mac\":\"";
const MAC_DOMAIN: &[u8] = b"sealstore/audit/v2\0";

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
    /// A call a key server answered for a node (the client and the operation are in the record).
    KeyServerCall,
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

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
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
    /// The client a key server recorded the call for (its certificate's fingerprint).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client: Option<String>,
    /// False for a record written before the audit key was known (a failed open).
    #[serde(skip_serializing_if = "is_true", default = "yes")]
    pub keyed: bool,
    /// MAC (hex) of the previous record; zeros for the first.
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
            client: None,
            keyed: true,
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
    pub fn client(mut self, c: impl Into<String>) -> Self {
        self.client = Some(c.into());
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

    /// Records that may stand in the chain without a MAC: failures seen before the key was known.
    fn may_be_unkeyed(&self) -> bool {
        matches!(self.op, AuditOp::Unwrap | AuditOp::AuthFailure) && self.outcome.starts_with("failed")
    }
}

/// The chain position the key store anchors: the last record's sequence number and MAC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditAnchor {
    pub seq: u64,
    pub mac: [u8; 32],
}

#[derive(Debug)]
struct Tail {
    file: File,
    /// Bytes of complete records: a failed append is cut back to it.
    len: u64,
    seq: u64,
    mac: String,
    key: Option<AuditKey>,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerifyReport {
    pub records: u64,
    pub last_mac: String,
    /// Records written before the key was known (failed opens).
    pub unkeyed: u64,
}

/// The append-only, MAC-chained audit log.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    tail: Mutex<Tail>,
}

fn hmac_hex(key: &AuditKey, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key.expose_secret()).expect("any key length");
    mac.update(MAC_DOMAIN);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn sha256_hex(body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(MAC_DOMAIN);
    h.update(body);
    hex::encode(h.finalize())
}

/// Splits a line into (body, mac): the body is the JSON text the MAC covers.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let at = line.rfind(MAC_FIELD)?;
    let mac = line[at + MAC_FIELD.len()..].strip_suffix("\"}")?;
    Some((&line[..at], mac))
}

/// The complete lines of a log image (a torn final line, still being written or left by a
/// crash, is not part of it).
fn complete_lines(bytes: &[u8]) -> &[u8] {
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    &bytes[..complete]
}

fn parse_record(body: &str) -> std::result::Result<AuditRecord, String> {
    serde_json::from_str(&format!("{body}}}")).map_err(|e| e.to_string())
}

impl AuditLog {
    /// Opens (or starts) the log in `dir` for appending. The caller holds the key store's
    /// exclusive lock, so a torn final line can only be a crash's and is cut off. Appends are
    /// unkeyed until [`AuditLog::set_key`].
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, None)
    }

    /// Opens the log and, before anything is appended, requires that it still holds the record
    /// the key store anchors (same sequence number, same MAC): a log cut back, replaced or
    /// deleted behind the key store's back fails here, where appending to it and saving a new
    /// anchor would otherwise hide the cut.
    pub(crate) fn open_anchored(dir: &Path, anchor: &AuditAnchor) -> Result<Self> {
        Self::open_with(dir, Some(anchor))
    }

    fn open_with(dir: &Path, anchor: Option<&AuditAnchor>) -> Result<Self> {
        let path = dir.join(AUDIT_FILE);
        let file = fsutil::open_append(&path, 0o600)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| Error::io(&path, e))?;
        if let Some(anchor) = anchor {
            check_anchor(complete_lines(&bytes), anchor, &path)?;
        }
        let complete = complete_lines(&bytes).len();
        if complete < bytes.len() {
            file.set_len(complete as u64).map_err(|e| Error::io(&path, e))?;
        }
        let (mut seq, mut mac) = (0, GENESIS.to_owned());
        if let Some(last) = bytes[..complete].split(|&b| b == b'\n').rfind(|l| !l.is_empty()) {
            let text = std::str::from_utf8(last).map_err(|_| Error::corrupt(&path, 0, "audit line is not UTF-8"))?;
            let (body, m) = split_line(text).ok_or_else(|| Error::corrupt(&path, 0, "audit line without MAC"))?;
            seq = parse_record(body).map_err(|e| Error::corrupt(&path, 0, e))?.seq;
            mac = m.to_owned();
        }
        Ok(Self {
            dir: dir.to_owned(),
            tail: Mutex::new(Tail {
                file,
                len: complete as u64,
                seq,
                mac,
                key: None,
            }),
        })
    }

    /// From now on records are MACed under `key`.
    pub(crate) fn set_key(&self, key: AuditKey) {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).key = Some(key);
    }

    /// The log file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(AUDIT_FILE)
    }

    /// Appends a record (assigning its sequence number and chain MAC) and syncs it.
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
        record.prev = tail.mac.clone();
        record.keyed = tail.key.is_some();
        if !record.keyed && !record.may_be_unkeyed() {
            return Err(Error::Internal(format!(
                "audit record {:?} written before the audit key was known",
                record.op
            )));
        }
        let json = serde_json::to_string(&record).map_err(|e| Error::corrupt(&path, 0, e.to_string()))?;
        let body = json.strip_suffix('}').unwrap_or(&json);
        let mac = match &tail.key {
            Some(k) => hmac_hex(k, body.as_bytes()),
            None => sha256_hex(body.as_bytes()),
        };
        let line = format!("{body}{MAC_FIELD}{mac}\"}}\n");
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
        tail.mac = mac;
        Ok(record.seq)
    }

    /// The sequence number of the last record.
    pub fn last_seq(&self) -> u64 {
        self.tail.lock().unwrap_or_else(|p| p.into_inner()).seq
    }

    /// The anchor of the chain as it stands (what the key store records when it is saved).
    pub(crate) fn anchor(&self) -> AuditAnchor {
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let mut mac = [0u8; 32];
        let _ = hex::decode_to_slice(&tail.mac, &mut mac);
        AuditAnchor { seq: tail.seq, mac }
    }

    /// Reads every record (without verifying the chain). The holder of the key store's lock
    /// calls this; other processes use [`read_records`].
    pub fn records(&self) -> Result<Vec<AuditRecord>> {
        parse_records(&self.path())
    }

    /// Verifies the whole chain under the audit key and against the key store's anchor: every
    /// edit (even with the chain recomputed without the key), removal, reordering, truncation at
    /// or before the anchor, a deleted log, or a log of another cluster is reported with the
    /// record number where the chain breaks.
    pub(crate) fn verify(&self, anchor: &AuditAnchor) -> Result<AuditVerifyReport> {
        let bytes = fsutil::read(&self.path())?;
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let key = tail
            .key
            .as_ref()
            .ok_or_else(|| Error::Internal("the audit chain is verified only with the audit key".into()))?;
        verify_bytes(complete_lines(&bytes), Some(key), anchor).map_err(|(line, reason)| Error::AuditChainBroken {
            path: self.path(),
            line,
            reason,
        })
    }
}

/// Fails unless the complete lines of a log hold the record `anchor` names, with its MAC.
fn check_anchor(lines: &[u8], anchor: &AuditAnchor, path: &Path) -> Result<()> {
    if anchor.seq == 0 {
        return Ok(());
    }
    let text = String::from_utf8_lossy(lines);
    let found = text
        .lines()
        .nth((anchor.seq - 1) as usize)
        .and_then(split_line)
        .map(|(_, mac)| mac.to_owned());
    if found.as_deref() == Some(hex::encode(anchor.mac).as_str()) {
        return Ok(());
    }
    Err(Error::AuditChainBroken {
        path: path.to_owned(),
        line: anchor.seq,
        reason: format!(
            "the key store anchors record {} and the log {}",
            anchor.seq,
            if found.is_some() {
                "holds a different record there (replaced)"
            } else {
                "ends before it (truncated or deleted)"
            }
        ),
    })
}

/// Reads the records of the log in `dir` without changing anything: the key store's lock is
/// taken shared (so no writer is mid-way through a key-store change), and a final line still
/// being written is left alone.
pub fn read_records(dir: &Path) -> Result<Vec<AuditRecord>> {
    let lock_path = dir.join(crate::lock::LOCK_FILE);
    let lock = fsutil::open_read(&lock_path)?;
    lock.lock_shared().map_err(|e| Error::io(&lock_path, e))?;
    let records = parse_records(&dir.join(AUDIT_FILE));
    drop(lock);
    records
}

fn parse_records(path: &Path) -> Result<Vec<AuditRecord>> {
    let bytes = fsutil::read(path)?;
    let text = String::from_utf8_lossy(complete_lines(&bytes)).into_owned();
    text.lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let body = split_line(line).map_or(line, |(b, _)| b);
            parse_record(body).map_err(|e| Error::corrupt(path, i as u64 + 1, e))
        })
        .collect()
}

/// Verifies a log image: with `key`, every keyed record's MAC; always the chain, the sequence
/// numbers and the anchor.
pub(crate) fn verify_bytes(
    bytes: &[u8],
    key: Option<&AuditKey>,
    anchor: &AuditAnchor,
) -> Result<AuditVerifyReport, (u64, String)> {
    let text = std::str::from_utf8(bytes).map_err(|_| (0, "log is not UTF-8".to_owned()))?;
    let mut prev = GENESIS.to_owned();
    let mut count = 0u64;
    let mut unkeyed = 0u64;
    let anchor_mac = hex::encode(anchor.mac);
    for (i, line) in text.lines().enumerate() {
        let n = i as u64 + 1;
        let (body, mac) = split_line(line).ok_or((n, "record has no MAC field".to_owned()))?;
        let record = parse_record(body).map_err(|e| (n, format!("record is not valid: {e}")))?;
        let expected = if record.keyed {
            match key {
                Some(k) => hmac_hex(k, body.as_bytes()),
                None => mac.to_owned(),
            }
        } else {
            if !record.may_be_unkeyed() {
                return Err((n, "record claims to be unkeyed but is not a failure record".into()));
            }
            unkeyed += 1;
            sha256_hex(body.as_bytes())
        };
        if expected != mac {
            return Err((
                n,
                "record was edited or forged (its MAC does not match; a recomputed chain needs the audit key)".into(),
            ));
        }
        if record.prev != prev {
            return Err((
                n,
                "chain broken: a record before this one was removed, inserted or reordered".into(),
            ));
        }
        if record.seq != n {
            return Err((n, format!("sequence number {} where {n} was expected", record.seq)));
        }
        if record.seq == anchor.seq && mac != anchor_mac {
            return Err((n, "record differs from the one the key store anchors".into()));
        }
        prev = mac.to_owned();
        count = n;
    }
    if count < anchor.seq {
        return Err((
            count + 1,
            format!(
                "log truncated: the key store anchors record {}, the log holds {count}",
                anchor.seq
            ),
        ));
    }
    Ok(AuditVerifyReport {
        records: count,
        last_mac: prev,
        unkeyed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn key(b: u8) -> AuditKey {
        AuditKey::from_bytes([b; 32])
    }

    fn log_with(n: u64) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(crate::lock::LOCK_FILE), b"").unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        log.set_key(key(1));
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

    fn verify(log: &AuditLog, anchor: &AuditAnchor) -> Result<AuditVerifyReport> {
        log.verify(anchor)
    }

    /// Rewrites the chain after an edit the way someone without the key would: plain SHA-256.
    fn recompute_without_key(lines: &[String]) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        lines
            .iter()
            .map(|l| {
                let (body, _) = split_line(l).unwrap();
                let mut r = parse_record(body).unwrap();
                r.prev = prev.clone();
                let json = serde_json::to_string(&r).unwrap();
                let body = json.strip_suffix('}').unwrap();
                let mac = sha256_hex(body.as_bytes());
                prev = mac.clone();
                format!("{body}{MAC_FIELD}{mac}\"}}")
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies_and_survives_reopen() {
        let (dir, log) = log_with(5);
        let anchor = log.anchor();
        assert_eq!(verify(&log, &anchor).unwrap().records, 5);
        drop(log);
        let log = AuditLog::open_anchored(dir.path(), &anchor).unwrap();
        log.set_key(key(1));
        log.append(AuditRecord::new(AuditOp::Unwrap, "master")).unwrap();
        assert_eq!(verify(&log, &anchor).unwrap().records, 6);
        assert_eq!(log.records().unwrap()[5].op, AuditOp::Unwrap);
    }

    #[test]
    fn edited_record_is_detected() {
        let (_d, log) = log_with(4);
        let anchor = log.anchor();
        let mut l = lines(&log);
        l[1] = l[1].replace("\"ok\"", "\"failed\"");
        write_lines(&log, &l);
        assert!(matches!(
            verify(&log, &anchor),
            Err(Error::AuditChainBroken { line: 2, .. })
        ));
    }

    #[test]
    fn an_edit_with_the_chain_recomputed_without_the_key_is_detected() {
        let (_d, log) = log_with(4);
        let anchor = log.anchor();
        let mut l = lines(&log);
        l[1] = l[1].replace("\"ok\"", "\"failed\"");
        write_lines(&log, &recompute_without_key(&l));
        assert!(matches!(
            verify(&log, &anchor),
            Err(Error::AuditChainBroken { line: 1, .. })
        ));
    }

    #[test]
    fn removed_record_is_detected() {
        let (_d, log) = log_with(4);
        let anchor = log.anchor();
        let mut l = lines(&log);
        l.remove(1);
        write_lines(&log, &l);
        assert!(matches!(
            verify(&log, &anchor),
            Err(Error::AuditChainBroken { line: 2, .. })
        ));
    }

    #[test]
    fn reordered_records_are_detected() {
        let (_d, log) = log_with(4);
        let anchor = log.anchor();
        let mut l = lines(&log);
        l.swap(1, 2);
        write_lines(&log, &l);
        assert!(matches!(
            verify(&log, &anchor),
            Err(Error::AuditChainBroken { line: 2, .. })
        ));
    }

    #[test]
    fn truncation_before_the_anchor_is_detected_and_refuses_reopening() {
        let (dir, log) = log_with(4);
        let anchor = log.anchor();
        let mut l = lines(&log);
        l.pop();
        write_lines(&log, &l);
        match verify(&log, &anchor) {
            Err(Error::AuditChainBroken { reason, .. }) => assert!(reason.contains("truncated"), "{reason}"),
            other => panic!("expected truncation, got {other:?}"),
        }
        drop(log);
        assert!(matches!(
            AuditLog::open_anchored(dir.path(), &anchor),
            Err(Error::AuditChainBroken { .. })
        ));
        fs::remove_file(dir.path().join(AUDIT_FILE)).unwrap();
        assert!(
            AuditLog::open_anchored(dir.path(), &anchor).is_err(),
            "a deleted log is refused too"
        );
    }

    #[test]
    fn a_log_of_another_cluster_fails_at_its_first_record() {
        let (_d, log) = log_with(3);
        let (_d2, other) = log_with(3);
        other.set_key(key(2));
        let anchor = AuditAnchor::default();
        assert!(matches!(
            verify(&other, &anchor),
            Err(Error::AuditChainBroken { line: 1, .. })
        ));
        verify(&log, &anchor).unwrap();
    }

    #[test]
    fn only_failures_may_be_unkeyed() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let failure = Error::auth("x");
        log.append(AuditRecord::new(AuditOp::Unwrap, "master").failed(&failure))
            .unwrap();
        assert!(log.append(AuditRecord::new(AuditOp::Rekey, "data")).is_err());
        log.set_key(key(1));
        log.append(AuditRecord::new(AuditOp::Rekey, "data")).unwrap();
        let report = verify(&log, &log.anchor()).unwrap();
        assert_eq!((report.records, report.unkeyed), (2, 1));
        // Turning a keyed record into an "unkeyed" one does not pass.
        let mut l = lines(&log);
        l[1] = l[1].replace("\"outcome\":\"ok\"", "\"outcome\":\"ok\",\"keyed\":false");
        write_lines(&log, &recompute_without_key(&l));
        assert!(verify(&log, &AuditAnchor::default()).is_err());
    }

    #[test]
    fn torn_final_line_is_cut_on_open_but_left_alone_by_readers() {
        let (dir, log) = log_with(3);
        drop(log);
        let path = dir.path().join(AUDIT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"seq\":4,\"ti");
        fs::write(&path, &bytes).unwrap();
        assert_eq!(read_records(dir.path()).unwrap().len(), 3);
        assert_eq!(fs::read(&path).unwrap(), bytes, "a reader cuts nothing");
        let log = AuditLog::open(dir.path()).unwrap();
        log.set_key(key(1));
        log.append(AuditRecord::new(AuditOp::Unwrap, "master")).unwrap();
        assert_eq!(verify(&log, &AuditAnchor::default()).unwrap().records, 4);
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [&b"\xff\xfe"[..], b"{}", b"{\"mac\":\"x\"}\n", b"\n\n"] {
            let _ = verify_bytes(bytes, None, &AuditAnchor::default());
            let _ = verify_bytes(bytes, Some(&key(1)), &AuditAnchor { seq: 3, mac: [1; 32] });
        }
    }
}

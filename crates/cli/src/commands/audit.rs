//! `audit`.
use sealstore_cluster::Cluster;
use std::io::Write;
use std::path::Path;

use super::open_read_only;
use crate::{CliResult, KEYSTORE};

pub(crate) fn audit(dir: &Path, check: bool, op: Option<&str>, json: bool) -> CliResult {
    // Checking the chain needs the audit key, so the hierarchy is opened (read-only); listing
    // only reads the log under the key store's shared lock.
    let cluster = if check { Some(open_read_only(dir)?) } else { None };
    let records = match &cluster {
        Some(c) => c.audit_records()?,
        None => Cluster::read_audit_log(dir, KEYSTORE.get().cloned().flatten().as_deref())?,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for r in records
        .iter()
        .filter(|r| op.is_none_or(|o| r.op.name().eq_ignore_ascii_case(o)))
    {
        if json {
            writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())?;
        } else {
            let mut line = format!("{:>6} {} {:<18} {:<8}", r.seq, r.time, r.op.name(), r.tier);
            if let Some(k) = &r.key_id {
                line.push_str(&format!(" key={k}"));
            }
            if let Some(g) = r.generation {
                line.push_str(&format!(" gen={g}"));
            }
            if let Some(d) = &r.database {
                line.push_str(&format!(" db={d}"));
            }
            if let Some(c) = r.count {
                line.push_str(&format!(" count={c}"));
            }
            if let Some(c) = &r.context {
                line.push_str(&format!(" context={c}"));
            }
            if let Some(c) = &r.client {
                line.push_str(&format!(" client={c}"));
            }
            if let Some(d) = &r.detail {
                line.push_str(&format!(" ({d})"));
            }
            line.push_str(&format!(" {}", r.outcome));
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    if let Some(c) = &cluster {
        let report = c.verify_audit()?;
        println!(
            "audit chain intact: {} records ({} unkeyed failure records), anchored in the key store, last MAC {}",
            report.records, report.unkeyed, report.last_mac
        );
    }
    Ok(())
}

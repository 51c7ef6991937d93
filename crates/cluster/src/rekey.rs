//! Re-keying data: every block (of one table, or the whole database) re-encrypted under fresh
//! DEKs, in bounded cluster commits, resumable after a crash.
use rayon::prelude::*;
use sealstore_blockstore::Store;
use serde::Serialize;

use crate::commit::RekeyState;
use crate::database::Database;
use crate::{Error, Result};

/// What a re-key did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RekeyReport {
    /// Blocks re-encrypted under fresh DEKs.
    pub blocks: u64,
    /// Cluster commits it took.
    pub commits: u64,
    /// Bytes of sealed blocks re-encrypted.
    pub bytes: u64,
    /// True when an interrupted re-key was resumed.
    pub resumed: bool,
}

impl Database {
    /// True while an interrupted re-key waits to be resumed.
    pub fn rekey_pending(&self) -> bool {
        self.committed_record().rekey.is_some()
    }

    /// Re-encrypts every block (of `table`, or of the whole database) under fresh DEKs into new
    /// slots, in cluster commits of at most `batch_blocks` blocks per slice, so memory stays at
    /// one block buffer per slice and scans and loads interleave between commits. The old slots
    /// are freed and the old DEKs removed; at the end the DEK table is rewritten so no wrapped
    /// copy of an old DEK remains, and (whole database) the metadata key is replaced too.
    /// Resumable: the progress lives in the sealed commit record, and calling `rekey` again
    /// after a crash finishes the job (a different `table` than the interrupted one is refused).
    pub fn rekey(&self, table: Option<&str>, batch_blocks: usize, progress: &dyn Fn(u64, u64)) -> Result<RekeyReport> {
        let mut report = RekeyReport::default();
        if let Some(t) = table
            && !self.tables().iter().any(|n| n == t)
        {
            return Err(Error::UnknownTable(t.to_owned()));
        }
        let state = {
            let _writer = self.writer_lock().lock();
            self.prepare_to_commit()?;
            let record = self.committed_record();
            match &record.rekey {
                Some(state) => {
                    if state.table.as_deref() != table {
                        return Err(Error::InvalidOption(format!(
                            "an interrupted re-key of {} must be finished first",
                            state
                                .table
                                .as_deref()
                                .map_or("the whole database".to_owned(), |t| format!("table `{t}`"))
                        )));
                    }
                    report.resumed = true;
                    state.clone()
                }
                None => {
                    let state = RekeyState {
                        below_block_id: self.database_keys().next_block_id(),
                        table: table.map(str::to_owned),
                    };
                    if table.is_none() {
                        self.database_keys().add_metadata_key()?;
                    }
                    let mut next = record.clone();
                    next.rekey = Some(state.clone());
                    self.commit_record_only(next)?;
                    state
                }
            }
        };
        let total = self.blocks_below(state.table.as_deref(), state.below_block_id);
        progress(0, total);
        loop {
            let _writer = self.writer_lock().lock();
            let record = self.committed_record();
            let first = report.commits == 0;
            let txns: Vec<_> = self.stores().iter().map(Store::begin).collect();
            let results = self.pool().install(|| {
                txns.into_par_iter()
                    .map(|mut t| {
                        let n = t.rekey(state.table.as_deref(), state.below_block_id, batch_blocks)?;
                        // The first batch reseals every manifest under the newest metadata key
                        // before the old one is retired.
                        if first {
                            t.touch();
                        }
                        Ok((t, n))
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            let done: usize = results.iter().map(|(_, (n, _))| n).sum();
            let bytes: u64 = results.iter().map(|(_, (_, b))| b).sum();
            if done == 0 && !first {
                break;
            }
            let txns = results.into_iter().map(|(t, _)| t).collect();
            self.commit_txns(txns, record)?;
            report.commits += 1;
            report.blocks += done as u64;
            report.bytes += bytes;
            progress(report.blocks, total.max(report.blocks));
            #[cfg(feature = "test-hooks")]
            self.crash_here(crate::database::CrashPoint::RekeyBatchCommitted)?;
            if done == 0 {
                break;
            }
        }
        let _writer = self.writer_lock().lock();
        // Every old DEK leaves the table now, even if a scan still holds a pre-re-key snapshot
        // (it ends with a clear error; its slots stay reserved until it is dropped), then the
        // table is rewritten so no wrapped copy of an old DEK (or old metadata key) remains.
        for s in self.stores() {
            s.release_retired_keys()?;
        }
        if state.table.is_none() {
            self.database_keys().retire_metadata_keys()?;
        } else {
            self.database_keys().compact()?;
        }
        let mut next = self.committed_record();
        next.rekey = None;
        self.commit_record_only(next)?;
        self.keyring().append_audit(
            sealstore_keyring::AuditRecord::new(sealstore_keyring::AuditOp::Rekey, "data")
                .database(self.name())
                .count(report.blocks)
                .detail(match &state.table {
                    Some(t) => format!("table `{t}` re-encrypted under fresh DEKs"),
                    None => "database re-encrypted under fresh DEKs and a new metadata key".to_owned(),
                }),
        )?;
        Ok(report)
    }

    /// Blocks with an id below `below` (of `table`, or all), over all slices.
    fn blocks_below(&self, table: Option<&str>, below: u64) -> u64 {
        self.stores()
            .iter()
            .map(|s| {
                let m = s.manifest();
                m.tables
                    .iter()
                    .filter(|t| table.is_none_or(|n| n == t.name))
                    .flat_map(|t| t.columns.iter().flat_map(|c| c.blocks.iter()))
                    .filter(|b| b.block_id < below)
                    .count() as u64
            })
            .sum()
    }
}

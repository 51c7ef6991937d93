//! The I/O seam: every durable write and sync of sealstore's files (key store, DEK tables, audit
//! log, manifests, commit records, segment files) goes through these functions, so a test can
//! make them fail the way disks fail — a write error, an fsync error, a full disk (`ENOSPC`), or a
//! torn write (half the bytes written, then an error). Unarmed, the cost is one relaxed atomic load.
//!
//! A fault is process-wide and sticky: the first `skip` matching operations pass, then every
//! matching operation fails until [`clear`] (a full disk stays full). Tests that inject faults
//! must therefore run alone in their test binary.
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A way for the disk to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A write returns EIO.
    WriteError,
    /// An fsync / fdatasync returns EIO (the data may or may not be on disk).
    FsyncError,
    /// A write returns ENOSPC.
    NoSpace,
    /// A write stores only its first half, then returns EIO.
    TornWrite,
}

impl Fault {
    fn hits_writes(self) -> bool {
        !matches!(self, Fault::FsyncError)
    }
}

#[derive(Debug)]
struct Plan {
    fault: Fault,
    skip: u64,
}

static ARMED: AtomicBool = AtomicBool::new(false);
/// `fsync` and `fdatasync` calls made through this seam, process-wide.
static SYNCS: AtomicU64 = AtomicU64::new(0);

/// How many `fsync`/`fdatasync` calls sealstore has made in this process (files and
/// directories): what a commit costs in syncs is the difference around it.
pub fn sync_count() -> u64 {
    SYNCS.load(Ordering::Relaxed)
}
static PLAN: Mutex<Option<Plan>> = Mutex::new(None);

/// Makes matching operations fail with `fault` after the first `skip` of them pass.
pub fn inject(fault: Fault, skip: u64) {
    *PLAN.lock().unwrap_or_else(|p| p.into_inner()) = Some(Plan { fault, skip });
    ARMED.store(true, Ordering::SeqCst);
}

/// Removes the fault: the disk works again.
pub fn clear() {
    ARMED.store(false, Ordering::SeqCst);
    *PLAN.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// Decides the fate of one operation: `None` to go ahead, or the fault to apply.
fn check(is_write: bool) -> Option<Fault> {
    if !ARMED.load(Ordering::Relaxed) {
        return None;
    }
    let mut plan = PLAN.lock().unwrap_or_else(|p| p.into_inner());
    let p = plan.as_mut()?;
    if p.fault.hits_writes() != is_write {
        return None;
    }
    if p.skip > 0 {
        p.skip -= 1;
        return None;
    }
    Some(p.fault)
}

fn error(fault: Fault) -> std::io::Error {
    match fault {
        Fault::NoSpace => std::io::Error::from_raw_os_error(28),
        _ => std::io::Error::from_raw_os_error(5),
    }
}

/// `pwrite` of all of `buf` at `offset`.
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    match check(true) {
        None => file.write_all_at(buf, offset),
        Some(Fault::TornWrite) => {
            file.write_all_at(&buf[..buf.len() / 2], offset)?;
            Err(error(Fault::TornWrite))
        }
        Some(f) => Err(error(f)),
    }
}

/// `write` of all of `buf` at the file's position (or its end, in append mode).
pub fn write_all(mut file: &File, buf: &[u8]) -> std::io::Result<()> {
    match check(true) {
        None => file.write_all(buf),
        Some(Fault::TornWrite) => {
            file.write_all(&buf[..buf.len() / 2])?;
            Err(error(Fault::TornWrite))
        }
        Some(f) => Err(error(f)),
    }
}

/// `fdatasync`.
pub fn sync_data(file: &File) -> std::io::Result<()> {
    SYNCS.fetch_add(1, Ordering::Relaxed);
    match check(false) {
        None => file.sync_data(),
        Some(f) => Err(error(f)),
    }
}

/// `fsync`.
pub fn sync_all(file: &File) -> std::io::Result<()> {
    SYNCS.fetch_add(1, Ordering::Relaxed);
    match check(false) {
        None => file.sync_all(),
        Some(f) => Err(error(f)),
    }
}

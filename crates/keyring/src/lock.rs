//! The key store's lock file: one process at a time extends the audit chain or rewrites the key
//! store; readers of the audit log take it shared.
use std::path::Path;

use crate::{Error, Result, fsutil};

/// The key store's lock file.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Takes the key store's exclusive lock (released when the keyring is dropped), so two
/// processes never extend the audit chain or rewrite the key store at once.
pub(crate) fn lock_keystore(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = fsutil::open_append(&path, 0o600)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

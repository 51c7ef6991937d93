//! Durable file writes: every replacement is temp file → fsync → rename → fsync directory.
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::{Error, Result};

/// Atomically replaces `path` with `bytes` (mode `mode`), durably.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent_dir(path);
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{file_name}.tmp"));
    {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        crate::faults::write_all(&f, bytes).map_err(|e| Error::io(&tmp, e))?;
        crate::faults::sync_all(&f).map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(dir).map_err(|e| not_durable(path, e))
}

/// Past a rename, a failed directory sync means "`file` replaced, durability unknown".
pub(crate) fn not_durable(file: &Path, e: Error) -> Error {
    match e {
        Error::Io { source, .. } => Error::NotDurable {
            path: file.to_owned(),
            source,
        },
        other => other,
    }
}

/// Creates `path` with `bytes`; fails with `AlreadyExists` if it exists. Durable.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::AlreadyExists { path: path.to_owned() },
            _ => Error::io(path, e),
        })?;
    crate::faults::write_all(&f, bytes).map_err(|e| Error::io(path, e))?;
    crate::faults::sync_all(&f).map_err(|e| Error::io(path, e))?;
    sync_dir(parent_dir(path))
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| crate::faults::sync_all(&d))
        .map_err(|e| Error::io(dir, e))
}

/// Creates a directory (and parents) and makes its creation durable.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    sync_dir(dir)?;
    sync_dir(parent_dir(dir))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Reads a whole file, mapping errors to `Error::Io` with the path.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(write_new(&p, b"x", 0o600), Err(Error::AlreadyExists { .. })));
    }
}

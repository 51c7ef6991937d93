//! Every file sealstore opens in a data directory or key store goes through here, because an
//! attacker may own the data directory: its files, names and links.
//!
//! - Paths are resolved with `openat2(RESOLVE_NO_SYMLINKS)`: a symbolic link anywhere in the path
//!   (the file itself or a directory above it) is refused, atomically — no check-then-open race.
//!   Callers hand in canonical roots (the cluster canonicalises the data, node and key-store
//!   directories once), so only links planted below a root are ever met.
//! - Opened files must be regular files; files written in place (segments, DEK tables, the audit
//!   log) must also have exactly one hard link, so a link to a key file cannot be written through.
//! - Replacements are temp file → fsync → rename → fsync directory; the temp file has a random
//!   name and is created exclusively (`O_EXCL`) relative to the directory's handle, and the
//!   rename happens relative to the same handle.
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::{Error, Result};

pub use crate::faults::sync_count;

/// Suffix of every temporary file sealstore creates (see [`sweep_temp_files`]).
pub const TEMP_SUFFIX: &str = ".tmp";

fn to_io(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// Maps an open error: a link where none may be is an [`Error::UnsafeFile`].
fn open_error(path: &Path, e: Errno) -> Error {
    match e {
        Errno::LOOP | Errno::XDEV => Error::UnsafeFile {
            path: path.to_owned(),
            reason: "it is a symbolic link or lies behind one".into(),
        },
        other => Error::io(path, to_io(other)),
    }
}

fn resolve() -> ResolveFlags {
    ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

fn open_at(dir: impl AsFd, name: &Path, flags: OFlags, mode: u32, shown: &Path) -> Result<OwnedFd> {
    rustix::fs::openat2(dir, name, flags | OFlags::CLOEXEC, Mode::from_raw_mode(mode), resolve())
        .map_err(|e| open_error(shown, e))
}

fn open_path(path: &Path, flags: OFlags, mode: u32) -> Result<OwnedFd> {
    open_at(rustix::fs::CWD, path, flags, mode, path)
}

/// Opens a directory, refusing links on the way.
pub fn open_dir(dir: &Path) -> Result<OwnedFd> {
    open_path(dir, OFlags::RDONLY | OFlags::DIRECTORY, 0)
}

/// What an opened file must be.
fn check_file(fd: &OwnedFd, path: &Path, written_in_place: bool) -> Result<()> {
    let st = rustix::fs::fstat(fd).map_err(|e| Error::io(path, to_io(e)))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Error::UnsafeFile {
            path: path.to_owned(),
            reason: "it is not a regular file".into(),
        });
    }
    if written_in_place && st.st_nlink != 1 {
        return Err(Error::UnsafeFile {
            path: path.to_owned(),
            reason: format!(
                "it has {} hard links (a file sealstore writes must have one)",
                st.st_nlink
            ),
        });
    }
    Ok(())
}

/// Opens a regular file for reading.
pub fn open_read(path: &Path) -> Result<File> {
    let fd = open_path(path, OFlags::RDONLY, 0)?;
    check_file(&fd, path, false)?;
    Ok(File::from(fd))
}

/// Opens an existing regular file with one link for reading and writing in place.
pub fn open_rw(path: &Path) -> Result<File> {
    let fd = open_path(path, OFlags::RDWR, 0)?;
    check_file(&fd, path, true)?;
    Ok(File::from(fd))
}

/// Opens a file for appending, creating it (mode `mode`) if absent; one link, regular.
pub fn open_append(path: &Path, mode: u32) -> Result<File> {
    let fd = open_path(path, OFlags::RDWR | OFlags::APPEND | OFlags::CREATE, mode)?;
    check_file(&fd, path, true)?;
    Ok(File::from(fd))
}

/// Creates a new file exclusively (never through a link), read-write, and syncs its directory.
pub fn create_new(path: &Path, mode: u32) -> Result<File> {
    let fd = open_path(path, OFlags::RDWR | OFlags::CREATE | OFlags::EXCL, mode).map_err(|e| match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            Error::AlreadyExists { path: path.to_owned() }
        }
        other => other,
    })?;
    sync_dir(parent_dir(path))?;
    Ok(File::from(fd))
}

/// Reads a whole regular file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = open_read(path)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
    Ok(out)
}

/// Reads a whole regular file, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match read(path) {
        Ok(b) => Ok(Some(b)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// True if `path` exists (as anything, links included: lstat semantics).
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn file_name(path: &Path) -> Result<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::io(path, std::io::Error::other("path has no file name")))
}

/// A fresh random temp name for `name`: `.NAME.<16 hex>.tmp`.
fn temp_name(name: &str) -> Result<String> {
    let mut r = [0u8; 8];
    crate::fill_random(&mut r)?;
    Ok(format!(".{name}.{}{TEMP_SUFFIX}", hex::encode(r)))
}

/// Writes `bytes` to a new temp file beside `path` (random name, exclusive, fsynced); returns the
/// directory handle, the temp name and the open file. The caller renames it into place.
pub fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<(OwnedFd, String, File)> {
    let dir_path = parent_dir(path);
    let dir = open_dir(dir_path)?;
    let tmp = temp_name(file_name(path)?)?;
    let shown = dir_path.join(&tmp);
    let fd = open_at(
        &dir,
        Path::new(&tmp),
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
        mode,
        &shown,
    )?;
    let f = File::from(fd);
    let written = crate::faults::write_all(&f, bytes).and_then(|_| crate::faults::sync_all(&f));
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(Error::io(&shown, e));
    }
    Ok((dir, tmp, f))
}

/// Renames temp file `tmp` (in the directory `dir` is a handle of) to `path`'s name and syncs
/// the directory. A failed sync after the rename is [`Error::NotDurable`].
pub fn publish_temp(dir: &OwnedFd, tmp: &str, path: &Path) -> Result<()> {
    let name = file_name(path)?;
    if let Err(e) = rustix::fs::renameat(dir, tmp, dir, name) {
        let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
        return Err(Error::io(path, to_io(e)));
    }
    fault_sync_dir(dir).map_err(|e| Error::NotDurable {
        path: path.to_owned(),
        source: e,
    })
}

/// The directory fsync goes through the fault seam too (tests make it fail).
fn fault_sync_dir(dir: &OwnedFd) -> std::io::Result<()> {
    let f = File::from(dir.try_clone()?);
    crate::faults::sync_all(&f)
}

/// Atomically replaces `path` with `bytes` (mode `mode`), durably.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let (dir, tmp, _file) = write_temp(path, bytes, mode)?;
    publish_temp(&dir, &tmp, path)
}

/// Creates `path` with `bytes`; fails with `AlreadyExists` if it exists. Durable.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let f = create_new(path, mode)?;
    crate::faults::write_all(&f, bytes).map_err(|e| Error::io(path, e))?;
    crate::faults::sync_all(&f).map_err(|e| Error::io(path, e))?;
    sync_dir(parent_dir(path))
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let fd = open_dir(dir)?;
    fault_sync_dir(&fd).map_err(|e| Error::io(dir, e))
}

/// Creates a directory (and missing parents, mode 0700) without following links, durably.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    match open_dir(dir) {
        Ok(_) => return Ok(()),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let parent = parent_dir(dir);
    if parent != dir {
        create_dir_durable(parent)?;
    }
    let parent_fd = open_dir(parent)?;
    match rustix::fs::mkdirat(&parent_fd, file_name(dir)?, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(Error::io(dir, to_io(e))),
    }
    open_dir(dir)?;
    fault_sync_dir(&parent_fd).map_err(|e| Error::io(parent, e))
}

/// Names in a directory (not following links; non-UTF-8 names are skipped). A missing directory
/// lists as empty.
pub fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let fd = match open_dir(dir) {
        Ok(fd) => fd,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    list_fd(&fd, dir)
}

fn list_fd(fd: &OwnedFd, shown: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut listing = rustix::fs::Dir::read_from(fd).map_err(|e| Error::io(shown, to_io(e)))?;
    for entry in &mut listing {
        let entry = entry.map_err(|e| Error::io(shown, to_io(e)))?;
        if let Ok(name) = entry.file_name().to_str()
            && name != "."
            && name != ".."
        {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Removes a file (or a link, never its target); a missing one is fine.
pub fn remove_file(path: &Path) -> Result<()> {
    let dir = open_dir(parent_dir(path))?;
    match rustix::fs::unlinkat(&dir, file_name(path)?, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::io(path, to_io(e))),
    }
}

/// Removes a directory tree without following any link in it (links are removed, never their
/// targets); a missing one is fine.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    let parent = match open_dir(parent_dir(path)) {
        Ok(fd) => fd,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_tree_at(&parent, file_name(path)?, path)
}

fn remove_tree_at(parent: &OwnedFd, name: &str, shown: &Path) -> Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        // A link or a file where a directory was expected: remove that name only.
        Err(Errno::LOOP | Errno::NOTDIR) => {
            return rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(|e| Error::io(shown, to_io(e)));
        }
        Err(e) => return Err(Error::io(shown, to_io(e))),
    };
    for entry in list_fd(&dir, shown)? {
        match rustix::fs::unlinkat(&dir, entry.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR | Errno::PERM) => remove_tree_at(&dir, &entry, &shown.join(&entry))?,
            Err(e) => return Err(Error::io(shown.join(&entry), to_io(e))),
        }
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::io(shown, to_io(e))),
    }
}

/// True for a name sealstore gives its temporary files.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// Removes every leftover temporary file in `dir` (a crash between writing and renaming one).
/// Temp files may hold wrapped keys (a DEK-table generation being staged), so shredding and
/// every writable open sweep them. Returns how many were removed.
pub fn sweep_temp_files(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for name in list_dir(dir)? {
        if is_temp_name(&name) {
            remove_file(&dir.join(&name))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Canonicalises a root directory the caller names (links in it are the caller's choice and are
/// resolved once, here); everything below it is then opened without following links.
pub fn canonical_root(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| Error::io(path, e))
}

pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
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
        assert_eq!(list_dir(dir.path()).unwrap(), vec!["f".to_owned()], "no temp file left");
    }

    #[test]
    fn a_link_at_the_file_or_above_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        fs::write(&secret, b"key").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(matches!(read(&link), Err(Error::UnsafeFile { .. })));
        assert!(matches!(open_rw(&link), Err(Error::UnsafeFile { .. })));
        assert!(matches!(
            write_new(&link, b"x", 0o600),
            Err(Error::UnsafeFile { .. } | Error::AlreadyExists { .. })
        ));
        write_atomic(&link, b"replaced", 0o600).unwrap();
        assert_eq!(fs::read(&secret).unwrap(), b"key", "the link's target is untouched");
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("f"), b"x").unwrap();
        let linked_dir = dir.path().join("linked");
        std::os::unix::fs::symlink(&sub, &linked_dir).unwrap();
        assert!(matches!(read(&linked_dir.join("f")), Err(Error::UnsafeFile { .. })));
        assert!(matches!(
            write_atomic(&linked_dir.join("g"), b"x", 0o600),
            Err(Error::UnsafeFile { .. })
        ));
    }

    #[test]
    fn hard_links_and_non_regular_files_are_refused_for_writing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, b"key").unwrap();
        fs::hard_link(&a, dir.path().join("b")).unwrap();
        assert!(matches!(open_rw(&a), Err(Error::UnsafeFile { .. })));
        read(&a).unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(Error::UnsafeFile { .. } | Error::Io { .. })
        ));
    }

    #[test]
    fn remove_dir_all_removes_links_not_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("keep");
        fs::create_dir(&keep).unwrap();
        fs::write(keep.join("k"), b"x").unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink(&keep, tree.join("a/link")).unwrap();
        remove_dir_all(&tree).unwrap();
        assert!(!tree.exists());
        assert!(keep.join("k").exists());
        remove_dir_all(&tree).unwrap();
    }

    #[test]
    fn temp_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".dek-1.log.0123.tmp"), b"x").unwrap();
        fs::write(dir.path().join("data"), b"x").unwrap();
        assert_eq!(sweep_temp_files(dir.path()).unwrap(), 1);
        assert_eq!(list_dir(dir.path()).unwrap(), vec!["data".to_owned()]);
    }

    #[test]
    fn create_dir_durable_makes_parents_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        create_dir_durable(&dir.path().join("x/y/z")).unwrap();
        assert!(dir.path().join("x/y/z").is_dir());
        std::os::unix::fs::symlink(dir.path().join("x"), dir.path().join("l")).unwrap();
        assert!(matches!(
            create_dir_durable(&dir.path().join("l/new")),
            Err(Error::UnsafeFile { .. })
        ));
        assert!(!dir.path().join("x/new").exists());
    }
}

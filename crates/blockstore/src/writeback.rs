//! Write-behind: asks the kernel to start writing a just-written range of a segment file to
//! the device now, instead of when the commit's `fdatasync` comes. Disk writes then overlap
//! encoding and sealing of the following blocks, and the commit waits only for the tail (the
//! `bytes_per_sync` idea of RocksDB). Purely a hint: durability still comes from `fdatasync`,
//! which also reports any write error, so a failing hint is ignored.
use std::fs::File;

/// Starts asynchronous writeback of `len` bytes at `offset` of `file` (Linux; elsewhere a
/// no-op).
#[cfg(target_os = "linux")]
pub(crate) fn start(file: &File, offset: u64, len: usize) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: `sync_file_range` only reads its integer arguments and touches no memory of
    // ours; the descriptor is borrowed from a `File` that outlives the call. With only
    // SYNC_FILE_RANGE_WRITE it starts writeback (at most waiting for queue space), never waits
    // for completion and never changes file contents.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn start(_file: &File, _offset: u64, _len: usize) {}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    #[test]
    fn the_hint_leaves_contents_alone_and_tolerates_any_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file = std::fs::File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        file.write_all_at(b"sealed bytes", 4096).expect("write");
        super::start(&file, 4096, 12);
        super::start(&file, u64::MAX, usize::MAX);
        super::start(&file, 1 << 40, 1);
        file.sync_data().expect("sync");
        let mut back = [0u8; 12];
        file.read_exact_at(&mut back, 4096).expect("read");
        assert_eq!(&back, b"sealed bytes");
    }
}

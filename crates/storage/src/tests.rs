//! Unit tests on the in-memory and local-file backends (the S3 ones are in `tests/s3.rs`).

use super::*;

fn memory(name: &str) -> ObjectStorage {
    ObjectStorage::open(&StorageLocation::parse(&format!("memory://{name}/prefix")).unwrap()).unwrap()
}

#[test]
fn a_create_only_put_refuses_an_existing_object() {
    let s = memory("create-only");
    s.put_new("a/b", Bytes::from_static(b"one")).unwrap();
    let e = s.put_new("a/b", Bytes::from_static(b"two")).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { ref name } if name == "a/b"), "{e}");
    assert!(e.is_conflict());
    assert_eq!(&s.get("a/b").unwrap().bytes[..], b"one");
}

#[test]
fn a_conditional_update_needs_the_current_version() {
    let s = memory("update");
    let v1 = s.put_new("x", Bytes::from_static(b"1")).unwrap();
    let v2 = s.put_if("x", Bytes::from_static(b"2"), &v1).unwrap();
    let e = s.put_if("x", Bytes::from_static(b"3"), &v1).unwrap_err();
    assert!(matches!(e, Error::Changed { .. }), "{e}");
    let got = s.get("x").unwrap();
    assert_eq!(&got.bytes[..], b"2");
    assert_eq!(got.version, v2);
}

#[test]
fn ranged_reads_return_exactly_the_range_or_fail() {
    let s = memory("ranges");
    s.put_new("seg", Bytes::from((0u8..100).collect::<Vec<_>>())).unwrap();
    assert_eq!(&s.get_range("seg", 10..13).unwrap()[..], &[10, 11, 12]);
    // Past the end: the backend refuses or returns short; either way an error, never short data.
    assert!(s.get_range("seg", 90..110).is_err());
    assert!(matches!(s.get_range("missing", 0..1), Err(Error::NotFound { .. })));
}

#[test]
fn parallel_range_reads_come_back_in_request_order() {
    let s = memory("parallel");
    let data: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    s.put_new("seg", Bytes::from(data.clone())).unwrap();
    let requests: Vec<_> = (0..64u64)
        .rev()
        .map(|i| RangeRequest {
            name: "seg".into(),
            range: i * 1024..(i + 1) * 1024,
        })
        .collect();
    let before = s.stats().gets;
    let got: Vec<Bytes> = s
        .read_ranges(requests.clone(), 8)
        .unwrap()
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(got.len(), 64);
    for (request, bytes) in requests.iter().zip(&got) {
        let r = request.range.start as usize..request.range.end as usize;
        assert_eq!(&bytes[..], &data[r]);
    }
    assert_eq!(s.stats().gets - before, 64);
}

#[test]
fn a_failed_range_read_ends_the_sequence_with_its_error() {
    let s = memory("parallel-missing");
    s.put_new("seg", Bytes::from(vec![7u8; 100])).unwrap();
    let requests = vec![
        RangeRequest {
            name: "seg".into(),
            range: 0..10,
        },
        RangeRequest {
            name: "gone".into(),
            range: 0..10,
        },
        RangeRequest {
            name: "seg".into(),
            range: 10..20,
        },
    ];
    let results: Vec<_> = s.read_ranges(requests, 2).unwrap().collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert!(matches!(&results[1], Err(Error::NotFound { name }) if name == "gone"));
}

#[test]
fn dropping_a_range_reader_early_stops_its_requests() {
    let s = memory("parallel-drop");
    s.put_new("seg", Bytes::from(vec![1u8; 1 << 20])).unwrap();
    let requests: Vec<_> = (0..1024u64)
        .map(|i| RangeRequest {
            name: "seg".into(),
            range: i * 1024..(i + 1) * 1024,
        })
        .collect();
    let mut reader = s.read_ranges(requests, 4).unwrap();
    assert!(reader.next().unwrap().is_ok());
    drop(reader);
    std::thread::sleep(Duration::from_millis(100));
    // The first result, the in-flight window and one permit returned: far from all 1024.
    assert!(s.stats().gets <= 8, "{:?}", s.stats());
}

#[test]
fn listing_names_objects_relative_to_the_prefix() {
    let s = memory("listing");
    for name in ["db/commits/1", "db/commits/2", "db/deks/1", "other"] {
        s.put_new(name, Bytes::from_static(b"x")).unwrap();
    }
    let mut names: Vec<_> = s.list("db/commits").unwrap().into_iter().map(|o| o.name).collect();
    names.sort();
    assert_eq!(names, ["db/commits/1", "db/commits/2"]);
    assert_eq!(s.list("").unwrap().len(), 4);
    // Another prefix of the same named store sees none of them.
    let other = ObjectStorage::open(&StorageLocation::parse("memory://listing/elsewhere").unwrap()).unwrap();
    assert!(other.list("").unwrap().is_empty());
}

#[test]
fn deleting_is_idempotent() {
    let s = memory("delete");
    s.put_new("x", Bytes::from_static(b"x")).unwrap();
    s.delete("x").unwrap();
    s.delete("x").unwrap();
    assert!(matches!(s.get("x"), Err(Error::NotFound { .. })));
}

#[test]
fn names_that_escape_or_are_empty_are_refused() {
    let s = memory("names");
    for bad in ["", "/abs", "a//b", "a/../b", "trailing/"] {
        assert!(
            matches!(s.put_new(bad, Bytes::new()), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn local_files_support_create_only_puts_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("objects").display());
    let s = ObjectStorage::open(&StorageLocation::parse(&url).unwrap()).unwrap();
    s.put_new("db/commits/00000000000000000001", Bytes::from_static(b"commit"))
        .unwrap();
    assert!(matches!(
        s.put_new("db/commits/00000000000000000001", Bytes::from_static(b"other")),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(
        &s.get_range("db/commits/00000000000000000001", 1..4).unwrap()[..],
        b"omm"
    );
    assert!(dir.path().join("objects/db/commits/00000000000000000001").is_file());
}

#[test]
fn stats_count_requests_and_bytes() {
    let s = memory("stats");
    s.put_new("a", Bytes::from(vec![0u8; 10])).unwrap();
    s.get("a").unwrap();
    s.get_range("a", 0..4).unwrap();
    s.list("").unwrap();
    s.delete("a").unwrap();
    let st = s.stats();
    assert_eq!(
        (st.puts, st.bytes_written, st.gets, st.bytes_read, st.lists, st.deletes),
        (1, 10, 2, 14, 1, 1)
    );
}

//! Object storage against a real S3-API server on loopback (moto from `scripts/aws`, which
//! prints the environment these tests read). Built only with feature `s3-server-tests`.
//!
//! The commit protocol relies on create-only puts being refused when the object exists, also
//! when many writers race; these tests check the server honours that before anything relies
//! on it.

use std::sync::{Arc, Barrier};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sealstore_storage::{Error, ObjectStorage, RangeRequest, StorageLocation};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `eval \"$(scripts/aws)\"` first"))
}

/// A fresh prefix in the test bucket, so tests never see each other's objects.
fn storage(test: &str) -> ObjectStorage {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let url = format!(
        "s3://{}/tests/{test}-{}-{nanos}",
        env("SEALSTORE_TEST_S3_BUCKET"),
        std::process::id()
    );
    let location = StorageLocation::parse(&url)
        .unwrap()
        .with_s3_endpoint(&env("SEALSTORE_TEST_S3_ENDPOINT"))
        .unwrap()
        .with_s3_region("us-east-1")
        .unwrap();
    ObjectStorage::open(&location).unwrap()
}

#[test]
fn the_server_refuses_a_create_on_an_existing_object() {
    let s = storage("create");
    s.put_new("commits/1", Bytes::from_static(b"first")).unwrap();
    let e = s.put_new("commits/1", Bytes::from_static(b"second")).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(&s.get("commits/1").unwrap().bytes[..], b"first");
}

#[test]
fn the_server_refuses_an_update_with_a_stale_etag_and_accepts_the_current_one() {
    let s = storage("update");
    let v1 = s.put_new("head", Bytes::from_static(b"1")).unwrap();
    assert!(v1.e_tag.is_some(), "the server returns ETags");
    let v2 = s.put_if("head", Bytes::from_static(b"2"), &v1).unwrap();
    let e = s.put_if("head", Bytes::from_static(b"3"), &v1).unwrap_err();
    assert!(matches!(e, Error::Changed { .. }), "{e}");
    assert_eq!(s.get("head").unwrap().version.e_tag, v2.e_tag);
    assert_eq!(&s.get("head").unwrap().bytes[..], b"2");
}

#[test]
fn of_many_racing_creates_of_one_name_exactly_one_wins() {
    const WRITERS: usize = 16;
    for round in 0..5 {
        let s = storage("race");
        let name = format!("commits/{round}");
        let barrier = Arc::new(Barrier::new(WRITERS));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (s, name, barrier) = (s.clone(), name.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    s.put_new(&name, Bytes::from(format!("writer {w}"))).map(|_| w)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<usize> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
            }
        }
        assert_eq!(
            s.get(&name).unwrap().bytes,
            Bytes::from(format!("writer {}", winners[0]))
        );
    }
}

#[test]
fn ranged_reads_in_parallel_return_the_asked_bytes_in_order() {
    let s = storage("ranges");
    let data: Vec<u8> = (0..=255u8).cycle().take(256 * 1024).collect();
    s.put_new("seg", Bytes::from(data.clone())).unwrap();
    let requests: Vec<_> = (0..32u64)
        .rev()
        .map(|i| RangeRequest {
            name: "seg".into(),
            range: i * 8192..(i + 1) * 8192,
        })
        .collect();
    let got: Vec<Bytes> = s
        .read_ranges(requests.clone(), 8)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (request, bytes) in requests.iter().zip(&got) {
        assert_eq!(
            &bytes[..],
            &data[request.range.start as usize..request.range.end as usize]
        );
    }
    assert!(matches!(s.get_range("missing", 0..1), Err(Error::NotFound { .. })));
}

#[test]
fn listing_and_deleting_work_under_the_prefix() {
    let s = storage("list");
    for name in ["a/1", "a/2", "b/1"] {
        s.put_new(name, Bytes::from_static(b"x")).unwrap();
    }
    let mut names: Vec<_> = s.list("a").unwrap().into_iter().map(|o| o.name).collect();
    names.sort();
    assert_eq!(names, ["a/1", "a/2"]);
    s.delete("a/1").unwrap();
    s.delete("a/1").unwrap();
    assert_eq!(s.list("").unwrap().len(), 2);
}

#[test]
fn a_server_that_is_not_there_is_a_clear_error_within_seconds() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let location = StorageLocation::parse("s3://sealstore-test/x")
        .unwrap()
        .with_s3_endpoint(&format!("http://127.0.0.1:{port}"))
        .unwrap();
    let s = ObjectStorage::open(&location).unwrap();
    let start = Instant::now();
    let e = s.get("commits/1").unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e}");
    let message = e.to_string();
    assert!(message.contains("get of commits/1 failed"), "{message}");
    assert!(!message.contains('\n'));
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
}

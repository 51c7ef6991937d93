//! A store on object storage: blocks in write-once segment objects, manifests as new objects
//! named by their commit's tag, the commit point a create-only put. The objects are kept as
//! files (`file://`) so the tests can check they are never rewritten, and attack them.
mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::*;
use sealstore_blockstore::{Error, block};

const SMALL: usize = block::MIN_BLOCK_SIZE;

fn object_files(env: &Env) -> HashMap<PathBuf, Vec<u8>> {
    files_under(&env.objects_root())
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

fn scan_error(store: &sealstore_blockstore::Store) -> Error {
    match store.scan("t").run() {
        Err(e) => e,
        Ok(iter) => iter.filter_map(Result::err).next().expect("the scan fails"),
    }
}

#[test]
fn a_store_on_object_storage_round_trips_appends_and_reopens() {
    let env = Env::new();
    let store = env.create_in(env.objects(), SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    let batch = all_types_batch(0, 30_000);
    store.append("t", &batch).unwrap();
    assert_eq!(collect(&store, "t"), batch);
    drop(store);
    let store = env.open_in(env.objects()).unwrap();
    assert_eq!(store.generation(), 3);
    assert_eq!(collect(&store, "t"), batch);
    assert!(store.verify().is_empty());
    assert!(store.stats().segments > 0);
}

#[test]
fn objects_are_written_once_and_never_changed_by_later_commits() {
    let env = Env::new();
    let store = env.create_in(env.objects(), SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    let mut expected = Vec::new();
    let mut seen = object_files(&env);
    for i in 0..12 {
        // Small appends rewrite each column's partial block: on objects into new segments.
        let b = all_types_batch(i * 100, 100);
        store.append("t", &b).unwrap();
        expected.push(b);
        let now = object_files(&env);
        for (path, bytes) in &seen {
            assert_eq!(now.get(path), Some(bytes), "{} changed or vanished", path.display());
        }
        assert!(now.len() > seen.len(), "append {i} created new objects");
        seen = now;
    }
    let all = arrow_select::concat::concat_batches(&std::sync::Arc::new(all_types_schema()), &expected).unwrap();
    assert_eq!(collect(&store, "t"), all);
    drop(store);
    assert_eq!(collect(&env.open_in(env.objects()).unwrap(), "t"), all);
}

#[test]
fn of_two_writers_committing_the_same_generation_one_wins_and_the_other_gets_a_conflict() {
    let env = Env::new();
    let first = env.create_in(env.objects(), SMALL);
    first.create_table("t", &all_types_schema()).unwrap();
    // One DEK table between them (a cluster on object storage keeps one per commit instead).
    let second = sealstore_blockstore::Store::open_in(env.objects(), first.keys().clone(), Default::default()).unwrap();
    let mut a = first.begin();
    a.append("t", &all_types_batch(0, 1000)).unwrap();
    let mut b = second.begin();
    b.append("t", &all_types_batch(5000, 700)).unwrap();
    a.commit().unwrap();
    let e = b.commit().unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(e.to_string().contains("CURRENT-00000000000000000003"), "{e}");
    drop((first, second));
    let store = env.open_in(env.objects()).unwrap();
    assert_eq!(collect(&store, "t"), all_types_batch(0, 1000));
    assert!(store.verify().is_empty());
}

#[test]
fn a_flipped_byte_in_a_segment_object_is_an_authentication_error_naming_it() {
    let env = Env::new();
    let store = env.create_in(env.objects(), SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 5000)).unwrap();
    let meta = store.manifest().table("t").unwrap().columns[0].blocks[0].clone();
    let (url, offset) = store.slot_location(meta.slot);
    drop(store);
    let relative = url.to_str().unwrap().split("/bucket/").nth(1).unwrap().to_owned();
    let file = env.objects_root().join(relative);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[offset as usize + block::PAYLOAD_OFFSET + 3] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let store = env.open_in(env.objects()).unwrap();
    let e = scan_error(&store);
    let message = e.to_string();
    assert!(matches!(e, Error::BlockAuthentication { .. }), "{message}");
    assert!(message.contains(url.to_str().unwrap()), "{message}");
}

#[test]
fn a_deleted_or_truncated_segment_object_is_a_clear_error() {
    let env = Env::new();
    let store = env.create_in(env.objects(), SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 5000)).unwrap();
    let paths = store.segment_paths();
    drop(store);
    let files: Vec<PathBuf> = paths
        .iter()
        .map(|u| {
            env.objects_root()
                .join(u.to_str().unwrap().split("/bucket/").nth(1).unwrap())
        })
        .collect();
    let len = std::fs::metadata(&files[0]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    let store = env.open_in(env.objects()).unwrap();
    let failures = store.verify();
    assert!(failures.len() >= 2, "{failures:?}");
    assert!(
        failures.iter().any(|f| f.error.contains("object not found")),
        "{failures:?}"
    );
    assert!(failures.iter().any(|f| f.error.contains("truncated")), "{failures:?}");
}

#[test]
fn a_manifest_object_renamed_onto_another_commit_tag_does_not_open() {
    let env = Env::new();
    let store = env.create_in(env.objects(), SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 100)).unwrap();
    drop(store);
    let dir = env.objects_root().join("node-0/slice-0/dev");
    let manifests = |g: u64| -> Vec<PathBuf> {
        let prefix = format!("manifest-{g:020}-");
        let mut v: Vec<_> = files_under(&dir)
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&prefix))
            .collect();
        v.sort();
        v
    };
    // Generation 3's object replaced by generation 2's bytes under 3's name.
    let (two, three) = (manifests(2).pop().unwrap(), manifests(3).pop().unwrap());
    std::fs::copy(&two, &three).unwrap();
    let e = env.open_in(env.objects()).unwrap_err().to_string();
    assert!(e.contains("manifest"), "{e}");
}

#[test]
fn deleting_the_newest_commit_pointer_is_a_detected_rollback() {
    let env = Env::new();
    let store = env.create_in(env.objects(), SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 100)).unwrap();
    drop(store);
    let newest = env
        .objects_root()
        .join("node-0/slice-0/dev/CURRENT-00000000000000000003");
    std::fs::remove_file(newest).unwrap();
    let e = env.open_in(env.objects()).unwrap_err();
    assert!(e.to_string().contains("rollback"), "{e}");
}

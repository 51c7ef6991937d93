//! Corrupting real files: every damaged byte is detected and named, never returned as data.
mod common;

use std::os::unix::fs::FileExt;

use common::*;
use sealstore_blockstore::{Error, Store, block};

const SMALL: usize = block::MIN_BLOCK_SIZE;

fn loaded() -> (Env, Store) {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 20_000)).unwrap();
    (env, store)
}

fn flip(path: &std::path::Path, offset: u64) {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, offset).unwrap();
}

fn scan_error(store: &Store) -> Error {
    store
        .scan("t")
        .run()
        .unwrap()
        .find_map(|b| b.err())
        .expect("the scan must fail")
}

#[test]
fn a_flip_in_any_region_of_a_block_is_an_authentication_error_naming_the_block() {
    let (_env, store) = loaded();
    let size = store.slot_len(store.manifest().table("t").unwrap().columns[4].blocks[0].slot) as u64;
    drop(store);
    let regions = [
        ("magic", 0u64),
        ("block id", 9),
        ("row count", 41),
        ("nonce", 50),
        ("ciphertext start", 64),
        ("middle", size / 2),
        ("padding", size - 17),
        ("tag", size - 3),
    ];
    for (region, offset_in_block) in regions {
        let (env, store) = loaded();
        let m = store.manifest();
        let col = &m.table("t").unwrap().columns[4];
        let target = &col.blocks[0];
        let (path, offset) = store.slot_location(target.slot);
        flip(&path, offset + offset_in_block);
        drop(store);
        let store = env.reopen();
        let err = scan_error(&store);
        match &err {
            Error::BlockAuthentication {
                table,
                column,
                block_id,
                path: p,
                offset: o,
                ..
            } => {
                assert_eq!(
                    (table.as_str(), column.as_str(), *block_id),
                    ("t", "name", target.block_id),
                    "{region}"
                );
                assert_eq!((p, *o), (&path, offset), "{region}");
            }
            other => panic!("{region}: expected an authentication error, got {other}"),
        }
        assert!(err.is_authentication());
        assert!(err.to_string().contains(&format!("block {}", target.block_id)));
        let failures = store.verify();
        assert_eq!(failures.len(), 1, "{region}: {failures:?}");
        assert_eq!((failures[0].block_id, failures[0].offset), (target.block_id, offset));
    }
}

#[test]
fn swapping_two_blocks_is_detected() {
    let (env, store) = loaded();
    let m = store.manifest();
    let t = m.table("t").unwrap();
    let blocks: Vec<_> = t.columns.iter().flat_map(|c| c.blocks.iter()).collect();
    let (a, b) = blocks
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            let b = blocks[i + 1..]
                .iter()
                .find(|b| store.slot_len(b.slot) == store.slot_len(a.slot))?;
            Some((*a, *b))
        })
        .expect("two blocks of one size class");
    let (pa, oa) = store.slot_location(a.slot);
    let (pb, ob) = store.slot_location(b.slot);
    let fa = std::fs::OpenOptions::new().read(true).write(true).open(&pa).unwrap();
    let fb = std::fs::OpenOptions::new().read(true).write(true).open(&pb).unwrap();
    let mut ba = vec![0u8; store.slot_len(a.slot)];
    let mut bb = vec![0u8; store.slot_len(b.slot)];
    fa.read_exact_at(&mut ba, oa).unwrap();
    fb.read_exact_at(&mut bb, ob).unwrap();
    fa.write_all_at(&bb, oa).unwrap();
    fb.write_all_at(&ba, ob).unwrap();
    drop(store);
    let store = env.reopen();
    assert!(scan_error(&store).is_authentication());
    let ids: Vec<u64> = store.verify().iter().map(|f| f.block_id).collect();
    assert!(ids.contains(&a.block_id) && ids.contains(&b.block_id), "{ids:?}");
}

#[test]
fn a_block_copied_over_a_slot_of_another_size_class_is_detected() {
    let (env, store) = loaded();
    let m = store.manifest();
    let blocks: Vec<_> = m
        .table("t")
        .unwrap()
        .columns
        .iter()
        .flat_map(|c| c.blocks.iter())
        .cloned()
        .collect();
    let small = blocks.iter().min_by_key(|b| store.slot_len(b.slot)).unwrap();
    let large = blocks.iter().max_by_key(|b| store.slot_len(b.slot)).unwrap();
    assert!(store.slot_len(small.slot) < store.slot_len(large.slot));
    let (ps, os) = store.slot_location(small.slot);
    let (pl, ol) = store.slot_location(large.slot);
    let mut bytes = vec![0u8; store.slot_len(small.slot)];
    std::fs::File::open(&ps).unwrap().read_exact_at(&mut bytes, os).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pl)
        .unwrap()
        .write_all_at(&bytes, ol)
        .unwrap();
    drop(store);
    let store = env.reopen();
    assert!(scan_error(&store).is_authentication());
    let ids: Vec<u64> = store.verify().iter().map(|f| f.block_id).collect();
    assert_eq!(ids, vec![large.block_id]);
}

#[test]
fn replaying_an_older_block_into_its_slot_is_detected() {
    let env = Env::new();
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 100)).unwrap();
    let old = store.manifest().table("t").unwrap().columns[0].blocks[0].clone();
    let (old_path, old_off) = store.slot_location(old.slot);
    let mut old_bytes = vec![0u8; store.slot_len(old.slot)];
    std::fs::File::open(&old_path)
        .unwrap()
        .read_exact_at(&mut old_bytes, old_off)
        .unwrap();
    // The partial block is rewritten copy-on-write into a new slot under a new DEK.
    store.append("t", &all_types_batch(100, 100)).unwrap();
    let new = store.manifest().table("t").unwrap().columns[0].blocks[0].clone();
    assert_ne!(new.block_id, old.block_id);
    let (new_path, new_off) = store.slot_location(new.slot);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&new_path)
        .unwrap()
        .write_all_at(&old_bytes, new_off)
        .unwrap();
    drop(store);
    let store = env.reopen();
    let err = scan_error(&store);
    assert!(err.is_authentication(), "{err}");
    assert!(err.to_string().contains("moved, swapped or replayed"), "{err}");
}

#[test]
fn truncated_or_missing_segments_are_clear_errors() {
    let (env, store) = loaded();
    let seg = store.segment_paths()[0].clone();
    drop(store);
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(f.metadata().unwrap().len() / 2).unwrap();
    drop(f);
    let store = env.reopen();
    let err = scan_error(&store);
    assert!(matches!(err, Error::MissingSegment { .. }), "{err}");
    assert!(!store.verify().is_empty());
    drop(store);
    std::fs::remove_file(&seg).unwrap();
    let store = env.reopen();
    assert!(matches!(scan_error(&store), Error::MissingSegment { .. }));
}

#[test]
fn corrupt_manifest_or_current_pointer_fails_open_cleanly() {
    let (env, store) = loaded();
    let generation = store.generation();
    drop(store);
    let manifest = env.data().join(format!("manifest-{generation:020}.ssm"));
    let good = std::fs::read(&manifest).unwrap();
    for offset in [0usize, 9, 30, 45, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[offset] ^= 0x01;
        std::fs::write(&manifest, &bad).unwrap();
        let err = Store::open(&env.data(), env.keys(), Default::default()).unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. }) || err.is_authentication(),
            "offset {offset}: {err}"
        );
    }
    std::fs::write(&manifest, &good[..good.len() - 20]).unwrap();
    assert!(Store::open(&env.data(), env.keys(), Default::default()).is_err());
    std::fs::write(&manifest, &good).unwrap();
    std::fs::write(env.data().join("CURRENT"), b"garbage").unwrap();
    let err = Store::open(&env.data(), env.keys(), Default::default()).unwrap_err();
    assert!(err.to_string().contains("CURRENT"), "{err}");
}

#[test]
fn blocks_moved_to_another_store_do_not_open() {
    // Same database, another slice: the slice id in the header/AAD differs.
    let (env, store) = loaded();
    let m = store.manifest();
    let b = &m.table("t").unwrap().columns[0].blocks[0];
    let (p, o) = store.slot_location(b.slot);
    let mut bytes = vec![0u8; store.slot_len(b.slot)];
    std::fs::File::open(&p).unwrap().read_exact_at(&mut bytes, o).unwrap();
    bytes[24] = 1; // slice id 1
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all_at(&bytes, o)
        .unwrap();
    drop(store);
    assert!(scan_error(&env.reopen()).is_authentication());
}

#[test]
fn a_process_rewriting_ciphertext_while_scans_run_yields_correct_rows_or_authentication_errors() {
    // The attacker's writer runs beside a scanning reader: every block is copied privately,
    // then authenticated and decrypted from that copy, so a flip that lands between the
    // checks can only fail authentication, never alter a returned value.
    let (_env, store) = loaded();
    let expected = collect(&store, "t");
    let m = store.manifest();
    let targets: Vec<(std::path::PathBuf, u64, u64)> = m
        .table("t")
        .unwrap()
        .columns
        .iter()
        .flat_map(|c| c.blocks.iter())
        .map(|b| {
            let (path, offset) = store.slot_location(b.slot);
            (path, offset, store.slot_len(b.slot) as u64)
        })
        .collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut clean, mut refused) = (0, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let files: Vec<_> = targets
                .iter()
                .map(|(p, o, len)| {
                    (
                        std::fs::OpenOptions::new().read(true).write(true).open(p).unwrap(),
                        *o,
                        *len,
                    )
                })
                .collect();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (f, slot, len) in &files {
                    // Flip, give a reader a moment to copy the damage, flip back.
                    let at = slot + block::HEADER_LEN as u64 + (i * 4099) % (len - 96);
                    let mut b = [0u8; 1];
                    f.read_exact_at(&mut b, at).unwrap();
                    f.write_all_at(&[b[0] ^ 0x01], at).unwrap();
                    std::thread::yield_now();
                    f.write_all_at(&b, at).unwrap();
                }
                i += 1;
            }
        });
        for _ in 0..300 {
            let iter = store.scan("t").run().unwrap();
            let schema = iter.schema();
            match iter.collect::<Result<Vec<_>, _>>() {
                Ok(batches) => {
                    let got = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
                    assert_eq!(
                        got, expected,
                        "a scan returned rows that differ from the committed ones"
                    );
                    clean += 1;
                }
                Err(e) => {
                    assert!(e.is_authentication(), "only an authentication error may come back: {e}");
                    refused += 1;
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(
        refused > 0,
        "the writer never hit a scan ({clean} clean scans): the race was not exercised"
    );
}

#[test]
fn a_segment_truncated_under_an_open_store_is_an_error_not_a_crash() {
    let (_env, store) = loaded();
    let m = store.manifest();
    let last = m.table("t").unwrap().columns[0].blocks.last().unwrap().slot;
    let (path, offset) = store.slot_location(last);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(offset + 10)
        .unwrap();
    let err = scan_error(&store);
    assert!(matches!(err, Error::MissingSegment { .. }), "{err}");
}

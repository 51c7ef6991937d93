use std::sync::Arc;

use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use sealstore_blockstore::{CmpOp, Scalar};
use sealstore_cluster::datagen::{Lineitem, lineitem_schema};
use sealstore_cluster::{Cluster, CrashPoint, Distribution, Error, InitOptions, OpenOptions, Predicate, ScanStats};

fn init(dir: &std::path::Path, threads: usize) -> Cluster {
    let options = InitOptions {
        block_size: 64 << 10,
        threads: Some(threads),
        cluster_id: Some("test".into()),
        ..Default::default()
    };
    Cluster::init(&dir.join("data"), options).unwrap()
}

/// (orderkey, linenumber) of every scanned row, sorted.
fn keys_of(batches: impl Iterator<Item = sealstore_cluster::Result<RecordBatch>>) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    for b in batches {
        let b = b.unwrap();
        let o = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let l = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        out.extend((0..b.num_rows()).map(|i| (o.value(i), l.value(i))));
    }
    out.sort_unstable();
    out
}

fn expected_keys(rows: usize) -> Vec<(i64, i32)> {
    keys_of(Lineitem::new(rows, 1).map(|b| Ok(b.project(&[0, 3]).unwrap())))
}

#[test]
fn load_scan_reopen_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path(), 2);
    let db = cluster.database("dev").unwrap();
    db.create_table("lineitem", &lineitem_schema(), Distribution::Even)
        .unwrap();
    let report = db.append("lineitem", Lineitem::new(150_000, 1)).unwrap();
    assert_eq!(report.rows, 150_000);
    assert_eq!(db.row_count("lineitem").unwrap(), 150_000);
    let want = expected_keys(150_000);
    assert_eq!(
        keys_of(
            db.scan("lineitem")
                .columns(&["l_orderkey", "l_linenumber"])
                .run()
                .unwrap()
        ),
        want
    );
    drop(db);
    drop(cluster);
    let cluster = Cluster::open(
        &dir.path().join("data"),
        sealstore_cluster::OpenOptions::with_threads(2),
    )
    .unwrap();
    let db = cluster.database("dev").unwrap();
    assert_eq!(
        keys_of(
            db.scan("lineitem")
                .columns(&["l_orderkey", "l_linenumber"])
                .run()
                .unwrap()
        ),
        want
    );
    let report = cluster.verify();
    assert!(report.ok(), "{report:?}");
    assert!(report.blocks_checked > 20);
}

#[test]
fn parallel_write_and_scan_equal_serial() {
    let serial_dir = tempfile::tempdir().unwrap();
    let parallel_dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (dir, threads) in [(&serial_dir, 1), (&parallel_dir, 2)] {
        let cluster = init(dir.path(), threads);
        let db = cluster.database("dev").unwrap();
        db.create_table("l", &lineitem_schema(), Distribution::Key("l_partkey".into()))
            .unwrap();
        db.append("l", Lineitem::new(80_000, 1)).unwrap();
        let filter = Predicate::between("l_shipdate", Scalar::Int(9000), Scalar::Int(9100));
        results.push((
            db.rows_per_slice("l").unwrap(),
            keys_of(
                db.scan("l")
                    .columns(&["l_orderkey", "l_linenumber"])
                    .filter(filter)
                    .run()
                    .unwrap(),
            ),
        ));
    }
    assert_eq!(results[0], results[1]);
    assert!(!results[0].1.is_empty());
}

#[test]
fn a_table_on_one_slice_is_scanned_as_row_ranges_by_every_thread() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path(), 2);
    let db = cluster.database("dev").unwrap();
    db.create_table("one", &lineitem_schema(), Distribution::All).unwrap();
    db.append("one", Lineitem::new(60_000, 1)).unwrap();
    let scan = db.scan("one").columns(&["l_orderkey", "l_linenumber"]);
    let parts = scan.parts().unwrap();
    // Two threads, one slice read: two row ranges of it, back to back, covering every row.
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(parts.iter().all(|p| p.slice == parts[0].slice));
    assert_eq!(parts[0].rows.start, 0);
    assert_eq!(parts[0].rows.end, parts[1].rows.start);
    assert_eq!(parts[1].rows.end, 60_000);
    // The parts together return each row exactly once, in the parallel scan and one by one.
    let want = expected_keys(60_000);
    assert_eq!(keys_of(scan.clone().run().unwrap()), want);
    let one_by_one = parts.iter().flat_map(|p| scan.run_part(p).unwrap());
    assert_eq!(keys_of(one_by_one), want);
    // With a predicate, each part keeps exactly the rows the predicate selects.
    let filter = Predicate::between("l_shipdate", Scalar::Int(9000), Scalar::Int(9100));
    let filtered = keys_of(
        db.scan("one")
            .columns(&["l_orderkey", "l_linenumber"])
            .filter(filter.clone())
            .run()
            .unwrap(),
    );
    let serial = db.with_slice(parts[0].slice, |store| {
        let batches: Vec<_> = store
            .scan("one")
            .columns(&["l_orderkey", "l_linenumber"])
            .filter(filter)
            .run()
            .unwrap()
            .map(|b| b.map_err(sealstore_cluster::Error::from))
            .collect();
        keys_of(batches.into_iter())
    });
    assert!(!filtered.is_empty());
    assert_eq!(filtered, serial);
}

#[test]
fn distribution_styles() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path(), 2);
    let db = cluster.database("dev").unwrap();
    let schema = Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Utf8, true),
    ]);
    let batch = |n: i64| {
        RecordBatch::try_new(
            Arc::new(schema.clone()),
            vec![
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 37))),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("v{i}")))),
            ],
        )
        .unwrap()
    };
    db.create_table("even", &schema, Distribution::Even).unwrap();
    db.create_table("key", &schema, Distribution::Key("k".into())).unwrap();
    db.create_table("all", &schema, Distribution::All).unwrap();
    // EVEN: batches large enough for every slice are cut evenly; a small table stays on one.
    let big = 8 * sealstore_cluster::MIN_PART_ROWS as i64;
    for t in ["even", "key", "all"] {
        db.append(t, [batch(big + 1), batch(big - 1)]).unwrap();
    }
    let even = db.rows_per_slice("even").unwrap();
    assert_eq!(even.iter().sum::<u64>(), 2 * big as u64);
    assert!(even.iter().max().unwrap() - even.iter().min().unwrap() <= 1, "{even:?}");
    db.create_table("small", &schema, Distribution::Even).unwrap();
    db.append("small", [batch(1000)]).unwrap();
    let small = db.rows_per_slice("small").unwrap();
    assert_eq!(small.iter().filter(|&&n| n > 0).count(), 1, "{small:?}");
    // KEY: every key value lives on exactly one slice.
    let mut owner = std::collections::HashMap::new();
    for s in 0..db.slice_count() {
        db.with_slice(s, |store| {
            for b in store.scan("key").columns(&["k"]).run().unwrap() {
                let b = b.unwrap();
                for k in b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values() {
                    assert_eq!(*owner.entry(*k).or_insert(s), s, "key {k} on two slices");
                }
            }
        });
    }
    assert_eq!(owner.len(), 37);
    // ALL: one full copy per node (2 nodes × 2 slices), a scan reads one copy.
    let total = 2 * big as u64;
    assert_eq!(db.rows_per_slice("all").unwrap(), vec![total, 0, total, 0]);
    assert_eq!(db.row_count("all").unwrap(), total);
    let scanned: usize = db.scan("all").run().unwrap().map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(scanned as u64, total);
    assert!(matches!(
        db.create_table("bad", &schema, Distribution::Key("nope".into())),
        Err(Error::InvalidOption(_))
    ));
}

#[test]
fn a_crash_at_any_step_of_a_cluster_commit_leaves_every_slice_at_one_commit() {
    for point in [
        CrashPoint::SlicesPrepared,
        CrashPoint::DeksCommitted,
        CrashPoint::ManifestsWritten,
        CrashPoint::CommitRecordWritten,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = init(dir.path(), 2);
        let db = cluster.database("dev").unwrap();
        db.create_table("l", &lineitem_schema(), Distribution::Even).unwrap();
        db.append("l", Lineitem::new(20_000, 1)).unwrap();
        let deks = db.keys().len();
        db.inject_crash(Some(point));
        assert!(db.append("l", Lineitem::new(30_000, 2)).is_err());
        drop(db);
        drop(cluster);
        let cluster = Cluster::open(
            &dir.path().join("data"),
            sealstore_cluster::OpenOptions::with_threads(2),
        )
        .unwrap();
        let db = cluster.database("dev").unwrap();
        let rows = db.row_count("l").unwrap();
        if point == CrashPoint::CommitRecordWritten {
            assert_eq!(rows, 50_000, "{point:?}");
        } else {
            assert_eq!(rows, 20_000, "{point:?}");
            assert_eq!(db.keys().len(), deks, "{point:?}: stray DEKs reclaimed");
        }
        let scanned: usize = db
            .scan("l")
            .columns(&["l_orderkey"])
            .run()
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum();
        assert_eq!(scanned as u64, rows);
        assert!(cluster.verify().ok(), "{point:?}");
        db.append("l", Lineitem::new(1000, 3)).unwrap();
        assert_eq!(db.row_count("l").unwrap(), rows + 1000);
    }
}

#[test]
fn a_failing_input_stream_commits_nothing_not_even_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path(), 2);
    let db = cluster.database("dev").unwrap();
    let batches = Lineitem::new(100_000, 1).enumerate().map(|(i, b)| {
        if i == 1 {
            Err(Error::Input("line 70000: bad".into()))
        } else {
            Ok(b)
        }
    });
    let err = db
        .load("l", Some(((*lineitem_schema()).clone(), Distribution::Even)), batches)
        .unwrap_err();
    assert!(err.to_string().contains("line 70000"));
    assert!(db.tables().is_empty());
    assert_eq!(db.keys().len(), 0);
    assert!(cluster.verify().ok());
}

#[test]
fn wrong_master_key_wrong_keystore_and_tampered_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path(), 1);
    let config = cluster.config().clone();
    drop(cluster);
    let data = dir.path().join("data");
    let sealstore_cluster::ProviderConfig::LocalKeyFile { path: mk, .. } = &config.provider else {
        panic!("a local key file was expected")
    };
    // Wrong master key: replace the key file with another valid key.
    let original = std::fs::read(mk).unwrap();
    std::fs::write(mk, [7u8; 32]).unwrap();
    let err = Cluster::open(&data, sealstore_cluster::OpenOptions::with_threads(1)).unwrap_err();
    assert!(
        matches!(err, Error::Key(sealstore_keyring::Error::WrongMasterKey { .. })),
        "{err}"
    );
    std::fs::write(mk, &original).unwrap();
    // Wrong key store: another cluster's, named by the caller. Its configuration names another
    // data directory and cluster, so it is refused before any key is used.
    let other = tempfile::tempdir().unwrap();
    let other_cluster = Cluster::init(
        &other.path().join("data"),
        InitOptions {
            block_size: 64 << 10,
            threads: Some(1),
            cluster_id: Some("test".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let other_config = other_cluster.config().clone();
    drop(other_cluster);
    let with_keystore = |ks: &std::path::Path| {
        Cluster::open(
            &data,
            OpenOptions {
                threads: Some(1),
                keystore: Some(ks.to_owned()),
                ..Default::default()
            },
        )
    };
    let err = with_keystore(&other_config.keystore).unwrap_err();
    assert!(
        matches!(&err, Error::Config { reason, .. } if reason.contains("belongs to cluster `test` at")),
        "{err}"
    );
    // The same key store with its configuration rewritten to claim this data directory (only
    // someone who can write key stores could): same cluster id, other hierarchy — the database
    // key cannot open this data.
    let mut claimed = other_config.clone();
    claimed.data_dir = config.data_dir.clone();
    claimed.node_dirs = config.node_dirs.clone();
    claimed.save().unwrap();
    let err = with_keystore(&other_config.keystore)
        .and_then(|c| c.database("dev").map(|_| ()))
        .unwrap_err();
    assert!(err.is_authentication(), "{err}");
    // A key store inside the data directory is refused at open, not only at init.
    let inside = data.join("keys-inside");
    std::fs::create_dir(&inside).unwrap();
    for f in ["keystore.ssk", "audit.log", "LOCK", "cluster.json"] {
        std::fs::copy(config.keystore.join(f), inside.join(f)).unwrap();
    }
    let mut moved = config.clone();
    moved.keystore = std::fs::canonicalize(&inside).unwrap();
    moved.save().unwrap();
    let err = with_keystore(&inside).unwrap_err();
    assert!(err.to_string().contains("must be outside the data directory"), "{err}");
    // Tampered key record.
    let ks = config.keystore.join("keystore.ssk");
    let mut bytes = std::fs::read(&ks).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 1;
    std::fs::write(&ks, &bytes).unwrap();
    let err = Cluster::open(&data, sealstore_cluster::OpenOptions::with_threads(1))
        .and_then(|c| c.database("dev").map(|_| ()))
        .unwrap_err();
    assert!(err.is_authentication(), "{err}");
}

#[test]
fn selective_scans_prune_blocks_and_drop_table_shreds() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path(), 2);
    let db = cluster.database("dev").unwrap();
    db.create_table("l", &lineitem_schema(), Distribution::Even).unwrap();
    db.append("l", Lineitem::new(200_000, 1)).unwrap();
    let stats = Arc::new(ScanStats::default());
    let rows: usize = db
        .scan("l")
        .columns(&["l_orderkey", "l_extendedprice"])
        .filter(Predicate::compare("l_orderkey", CmpOp::Lt, Scalar::Int(500)))
        .stats(stats.clone())
        .run()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert!(rows > 1000 && rows < 3000, "{rows}");
    let c = stats.counts();
    assert!(c.blocks_read * 5 < c.blocks_total, "{c:?}");
    let ids: Vec<u64> = db.keys().block_ids();
    db.drop_table("l").unwrap();
    assert_eq!(db.keys().len(), 0);
    for id in ids {
        assert!(db.keys().data_key(id).is_err());
    }
    assert!(matches!(db.scan("l").run(), Err(Error::UnknownTable(_))));
}

#[test]
fn a_tiny_memory_budget_still_loads_everything_through_the_writer_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path(), 2);
    cluster.set_memory_budget(1);
    let db = cluster.database("dev").unwrap();
    assert_eq!(db.memory_budget(), 64 << 10, "the budget is at least one block");
    db.create_table("l", &lineitem_schema(), Distribution::Even).unwrap();
    db.append("l", Lineitem::new(140_000, 1)).unwrap();
    assert_eq!(
        keys_of(db.scan("l").columns(&["l_orderkey", "l_linenumber"]).run().unwrap()),
        expected_keys(140_000)
    );
    assert!(cluster.verify().ok());
}

/// Every file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[test]
fn no_file_holds_a_plaintext_marker_or_any_dek_dk_or_ck_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path(), 2);
    let db = cluster.database("dev").unwrap();
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("secret", DataType::Utf8, true),
    ]);
    let marker = "MARKER-5f3a9c-CONFIDENTIAL";
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![
            Arc::new(Int64Array::from_iter_values(0..20_000)),
            Arc::new(StringArray::from_iter_values(
                (0..20_000).map(|i| format!("{marker} {i}")),
            )),
        ],
    )
    .unwrap();
    db.create_table("t", &schema, Distribution::Even).unwrap();
    db.append("t", [batch]).unwrap();
    let mut keys: Vec<[u8; 32]> = db
        .keys()
        .block_ids()
        .iter()
        .map(|id| *db.keys().data_key(*id).unwrap().expose_secret())
        .collect();
    assert!(keys.len() >= 8);
    keys.extend(db.keys().insecure_metadata_key_bytes_for_tests().unwrap());
    keys.extend(cluster.keyring().insecure_key_bytes_for_tests().unwrap());
    let halves: std::collections::HashSet<[u8; 16]> = keys
        .iter()
        .flat_map(|k| [k[..16].try_into().unwrap(), k[16..].try_into().unwrap()])
        .collect();
    // Any 16-byte half of a key would already be a leak.
    let leaks_key = |bytes: &[u8]| {
        bytes
            .windows(16)
            .any(|w| halves.contains(<&[u8; 16]>::try_from(w).unwrap()))
    };
    let check = |what: &str, bytes: &[u8]| {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "marker in {what}"
        );
        assert!(!leaks_key(bytes), "key bytes in {what}");
    };
    // The detector itself works: a DEK, the cluster key and a database key are all caught.
    let mut control = vec![0u8; 100];
    for k in [keys[0], keys[keys.len() - 2], keys[keys.len() - 1]] {
        control[37..69].copy_from_slice(&k);
        assert!(leaks_key(&control));
    }
    // Segment files are sparse and only written at the slots the manifests reference; every
    // other file is read whole.
    let mut files = files_under(&dir.path().join("data"));
    files.extend(files_under(&cluster.config().keystore));
    let mut checked = 0;
    for f in files.iter().filter(|f| f.extension().is_none_or(|e| e != "dat")) {
        check(&f.display().to_string(), &std::fs::read(f).unwrap());
        checked += 1;
    }
    for s in 0..db.slice_count() {
        db.with_slice(s, |store| {
            for b in store.manifest().blocks() {
                let (path, offset) = store.slot_location(b.slot);
                let bytes = std::fs::read(&path).unwrap();
                check(
                    &format!("{} at {offset}", path.display()),
                    &bytes[offset as usize..offset as usize + store.slot_len(b.slot)],
                );
                checked += 1;
            }
        });
    }
    assert!(checked > 20, "{checked}");
}

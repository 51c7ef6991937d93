//! Key rotation, re-keying, crypto-shredding and rollback detection, through the cluster API,
//! with crashes injected at every step and files really copied back from "backups".
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Int32Array, Int64Array, RecordBatch};
use sealstore_cluster::datagen::{Lineitem, lineitem_schema};
use sealstore_cluster::{
    Cluster, CrashPoint, Database, Distribution, InitOptions, OpenOptions, ProviderConfig, RotationStep,
};
use sealstore_keyring::{AuditOp, WrappedDek};

const ROWS: usize = 40_000;

fn data(dir: &Path) -> PathBuf {
    dir.join("data")
}

fn init(dir: &Path) -> Cluster {
    let options = InitOptions {
        block_size: 64 << 10,
        threads: Some(2),
        cluster_id: Some("rot".into()),
        ..Default::default()
    };
    let cluster = Cluster::init(&data(dir), options).unwrap();
    let db = cluster.database("dev").unwrap();
    db.create_table("lineitem", &lineitem_schema(), Distribution::Even)
        .unwrap();
    db.append("lineitem", Lineitem::new(ROWS, 7)).unwrap();
    cluster
}

fn reopen(dir: &Path) -> Cluster {
    Cluster::open(&data(dir), sealstore_cluster::OpenOptions::with_threads(2)).unwrap()
}

/// (orderkey, linenumber) of every row, sorted: equal sets mean the same data.
fn rows_of(db: &Database) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    for b in db
        .scan("lineitem")
        .columns(&["l_orderkey", "l_linenumber"])
        .run()
        .unwrap()
    {
        let b: RecordBatch = b.unwrap();
        let o = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let l = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        out.extend((0..b.num_rows()).map(|i| (o.value(i), l.value(i))));
    }
    out.sort_unstable();
    out
}

fn assert_healthy(cluster: &Cluster, want: &[(i64, i32)]) {
    let db = cluster.database("dev").unwrap();
    assert_eq!(rows_of(&db), want);
    let report = cluster.verify();
    assert!(report.ok(), "{report:?}");
}

fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn segments(files: &BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<PathBuf, Vec<u8>> {
    files
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "dat"))
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect()
}

/// True if any 32-byte window of `haystack` is one of `needles` (one pass over the file).
fn contains_any(haystack: &[u8], needles: &[WrappedDek]) -> bool {
    let set: HashSet<[u8; 32]> = needles.iter().map(|e| e.wrapped).collect();
    haystack
        .windows(32)
        .any(|w| set.contains(<&[u8; 32]>::try_from(w).expect("32 bytes")))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// (slice, table, column, row_start) of a block.
type BlockKey = (usize, String, String, u64);

/// Every block: where it is → (block id, sealed bytes).
fn blocks(db: &Database) -> BTreeMap<BlockKey, (u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for s in 0..db.slice_count() {
        db.with_slice(s, |store| {
            let m = store.manifest();
            for t in &m.tables {
                for c in &t.columns {
                    for b in &c.blocks {
                        let (path, offset) = store.slot_location(b.slot);
                        let file = std::fs::read(&path).unwrap();
                        let bytes = file[offset as usize..offset as usize + store.slot_len(b.slot)].to_vec();
                        out.insert((s, t.name.clone(), c.name.clone(), b.row_start), (b.block_id, bytes));
                    }
                }
            }
        });
    }
    out
}

#[test]
fn rotating_a_database_key_rewraps_every_dek_and_leaves_blocks_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let want = rows_of(&cluster.database("dev").unwrap());
    let db = cluster.database("dev").unwrap();
    let before: Vec<WrappedDek> = db.keys().wrapped_entries();
    let segs_before = segments(&files_under(&data(dir.path())));
    assert_eq!(db.rotate_key().unwrap(), 2);
    let after = db.keys().wrapped_entries();
    assert_eq!(before.len(), after.len());
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old.block_id, new.block_id);
        assert_ne!(old.wrapped, new.wrapped, "DEK of block {} not re-wrapped", old.block_id);
        assert_ne!(old.nonce, new.nonce);
        assert_eq!((old.dk_generation, new.dk_generation), (1, 2));
    }
    let files = files_under(&data(dir.path()));
    assert_eq!(segments(&files), segs_before, "block files changed");
    for (path, bytes) in files.iter().filter(|(p, _)| p.extension().is_none_or(|e| e != "dat")) {
        assert!(
            !contains_any(bytes, &before),
            "old wrapped DEK still in {}",
            path.display()
        );
    }
    assert_eq!(rows_of(&db), want);
    drop(db);
    drop(cluster);
    let cluster = reopen(dir.path());
    assert_healthy(&cluster, &want);
    let info = cluster.keyring().info().unwrap();
    assert_eq!(info.databases.len(), 1);
    assert_eq!(info.databases[0].database_key_generation, 2);
    let ops: Vec<AuditOp> = cluster
        .keyring()
        .audit_records()
        .unwrap()
        .iter()
        .map(|r| r.op)
        .collect();
    assert!(ops.contains(&AuditOp::RotateDatabaseKey));
}

#[test]
fn cluster_and_master_key_rotation_keep_everything_readable() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let want = rows_of(&cluster.database("dev").unwrap());
    let keystore = cluster.config().keystore.join("keystore.ssk");
    let ks_before = std::fs::read(&keystore).unwrap();
    assert_eq!(cluster.rotate_cluster_key().unwrap(), 2);
    let new_master = cluster.config().provider.next_version().unwrap();
    let change = cluster.rotate_master_key(new_master.clone()).unwrap();
    assert_ne!(change.old_key_id, change.new_key_id);
    assert_ne!(std::fs::read(&keystore).unwrap(), ks_before);
    assert_eq!(cluster.config().provider, new_master);
    drop(cluster);
    let cluster = reopen(dir.path());
    assert_healthy(&cluster, &want);
    let info = cluster.keyring().info().unwrap();
    assert_eq!(info.cluster_key_generation, 2);
    assert_eq!(info.master_key_id, change.new_key_id);
    assert_eq!(info.context.get("generation"), Some("2"));
    assert_eq!(info.databases[0].wrapped_under_cluster_key_generation, 2);
    let ops: Vec<AuditOp> = cluster
        .keyring()
        .audit_records()
        .unwrap()
        .iter()
        .map(|r| r.op)
        .collect();
    assert!(ops.contains(&AuditOp::RotateClusterKey) && ops.contains(&AuditOp::RotateMasterKey));
    // The old master key no longer opens the key store.
    drop(cluster);
    let ProviderConfig::LocalKeyFile { path, .. } = new_master else {
        panic!("a local key file was expected")
    };
    let old_path = path.with_file_name("master.key");
    let old = sealstore_keyring::provider::LocalKeyFile::open(&old_path, None).unwrap();
    let err = sealstore_keyring::Keyring::open(keystore.parent().unwrap(), Arc::new(old)).unwrap_err();
    assert!(err.is_authentication(), "{err}");
}

#[test]
fn every_rotation_step_survives_a_crash() {
    for step in [
        RotationStep::DatabaseKeyStaged,
        RotationStep::DekTableRewrapped,
        RotationStep::MasterConfigStaged,
        RotationStep::MasterKeyRewrapped,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = init(dir.path());
        let want = rows_of(&cluster.database("dev").unwrap());
        cluster.keyring().inject_crash(Some(step));
        let crashed = match step {
            RotationStep::DatabaseKeyStaged | RotationStep::DekTableRewrapped => {
                cluster.rotate_database_key("dev").map(|_| ())
            }
            _ => cluster
                .rotate_master_key(cluster.config().provider.next_version().unwrap())
                .map(|_| ()),
        };
        assert!(crashed.is_err(), "{step:?}: no crash injected");
        drop(cluster);
        let cluster = reopen(dir.path());
        assert_healthy(&cluster, &want);
        let info = cluster.keyring().info().unwrap();
        assert_eq!(info.databases.len(), 1, "{step:?}: one DK record after settling");
        let expected_dk = if step == RotationStep::DekTableRewrapped { 2 } else { 1 };
        assert_eq!(info.databases[0].database_key_generation, expected_dk, "{step:?}");
        assert!(cluster.config().previous_provider.is_none(), "{step:?}");
        // Rotation works again after the crash.
        cluster
            .rotate(&sealstore_cluster::RotateOptions {
                master: Some(cluster.config().provider.next_version().unwrap()),
                cluster: true,
                databases: vec!["dev".into()],
            })
            .unwrap();
        drop(cluster);
        assert_healthy(&reopen(dir.path()), &want);
    }
}

#[test]
fn readers_see_consistent_results_during_rotation_and_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(init(dir.path()));
    let want = rows_of(&cluster.database("dev").unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (cluster, stop, want) = (cluster.clone(), stop.clone(), want.clone());
        std::thread::spawn(move || {
            let mut scans = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || scans < 3 {
                assert_eq!(rows_of(&cluster.database("dev").unwrap()), want, "scan {scans}");
                scans += 1;
            }
            scans
        })
    };
    cluster.rotate_database_key("dev").unwrap();
    cluster.rotate_cluster_key().unwrap();
    cluster.database("dev").unwrap().rekey(None, 4, &|_, _| {}).unwrap();
    cluster.rotate_database_key("dev").unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let scans = reader.join().unwrap();
    assert!(scans >= 3);
    assert_healthy(&cluster, &want);
}

#[test]
fn rekey_reencrypts_every_block_and_shreds_the_old_deks() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let db = cluster.database("dev").unwrap();
    let want = rows_of(&db);
    let before = blocks(&db);
    let old_deks = db.keys().wrapped_entries();
    let report = db.rekey(None, 8, &|_, _| {}).unwrap();
    assert_eq!(report.blocks as usize, before.len());
    assert!(report.commits > 1, "bounded batches: {report:?}");
    let after = blocks(&db);
    assert_eq!(before.len(), after.len());
    for (k, (old_id, old_bytes)) in &before {
        let (new_id, new_bytes) = &after[k];
        assert_ne!(old_id, new_id);
        let same = old_bytes.iter().zip(new_bytes).filter(|(a, b)| a == b).count();
        // Header fields that describe the rows stay (most of the 64-byte header); the rest is
        // fresh ciphertext, equal by chance in one byte of 256.
        assert!(same < 64 + old_bytes.len() / 50, "{k:?}: {same} equal bytes");
        assert!(matches!(
            db.keys().data_key(*old_id),
            Err(sealstore_keyring::Error::UnknownBlock { .. })
        ));
    }
    for (path, bytes) in files_under(db.keys().table_path().parent().unwrap()) {
        assert!(
            !contains_any(&bytes, &old_deks),
            "old wrapped DEK in {}",
            path.display()
        );
    }
    assert_eq!(rows_of(&db), want);
    assert!(!db.rekey_pending());
    drop(db);
    drop(cluster);
    assert_healthy(&reopen(dir.path()), &want);
}

#[test]
fn an_interrupted_rekey_resumes_after_a_crash_at_every_step() {
    for point in [
        CrashPoint::SlicesPrepared,
        CrashPoint::DeksCommitted,
        CrashPoint::ManifestsWritten,
        CrashPoint::CommitRecordWritten,
        CrashPoint::SlicesInstalled,
        CrashPoint::RekeyBatchCommitted,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cluster = init(dir.path());
        let db = cluster.database("dev").unwrap();
        let want = rows_of(&db);
        let original: HashSet<u64> = blocks(&db).values().map(|(id, _)| *id).collect();
        db.inject_crash(Some(point));
        assert!(db.rekey(None, 4, &|_, _| {}).is_err(), "{point:?}");
        drop(db);
        drop(cluster);
        let cluster = reopen(dir.path());
        assert_healthy(&cluster, &want);
        let db = cluster.database("dev").unwrap();
        assert!(db.rekey_pending(), "{point:?}: the re-key state is committed first");
        let report = db.rekey(None, 4, &|_, _| {}).unwrap();
        assert!(report.resumed);
        let now: HashSet<u64> = blocks(&db).values().map(|(id, _)| *id).collect();
        assert!(now.is_disjoint(&original), "{point:?}: a block kept its old DEK");
        drop(db);
        drop(cluster);
        assert_healthy(&reopen(dir.path()), &want);
    }
}

#[test]
fn dropping_a_table_shreds_its_deks_and_reuses_its_slots() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let db = cluster.database("dev").unwrap();
    db.create_table("victim", &lineitem_schema(), Distribution::Even)
        .unwrap();
    let disk_empty = db.disk_bytes();
    db.append("victim", Lineitem::new(20_000, 9)).unwrap();
    let victim_ids: HashSet<u64> = blocks(&db)
        .iter()
        .filter(|(k, _)| k.1 == "victim")
        .map(|(_, (id, _))| *id)
        .collect();
    let victim_deks: Vec<WrappedDek> = db
        .keys()
        .wrapped_entries()
        .into_iter()
        .filter(|e| victim_ids.contains(&e.block_id))
        .collect();
    assert_eq!(victim_deks.len(), victim_ids.len());
    let stolen = segments(&files_under(&data(dir.path())));
    let disk_before = db.disk_bytes();
    db.drop_table("victim").unwrap();
    for (path, bytes) in files_under(db.keys().table_path().parent().unwrap()) {
        assert!(
            !contains_any(&bytes, &victim_deks),
            "wrapped DEK of a dropped block in {}",
            path.display()
        );
    }
    // The stolen copies of the segment files cannot be decrypted: no key for their blocks exists.
    for id in &victim_ids {
        assert!(db.keys().data_key(*id).is_err());
    }
    assert!(!stolen.is_empty());
    db.create_table("again", &lineitem_schema(), Distribution::Even)
        .unwrap();
    db.append("again", Lineitem::new(20_000, 9)).unwrap();
    // The same rows land on the slices in another order (round-robin starts at the commit
    // generation), so some blocks fall in other size classes, whose files grow; without reuse
    // the whole table would be added again.
    let victim_bytes = disk_before - disk_empty;
    let grown = db.disk_bytes().saturating_sub(disk_before);
    assert!(
        grown < victim_bytes / 2,
        "freed slots were not reused: {grown} bytes more for {victim_bytes} bytes of data"
    );
    let want = rows_of(&db);
    drop(db);
    drop(cluster);
    assert_healthy(&reopen(dir.path()), &want);
}

#[test]
fn dropping_a_database_destroys_its_key_and_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = init(dir.path());
    let want = rows_of(&cluster.database("dev").unwrap());
    let prod = cluster.create_database("prod").unwrap();
    prod.create_table("lineitem", &lineitem_schema(), Distribution::Even)
        .unwrap();
    prod.append("lineitem", Lineitem::new(10_000, 3)).unwrap();
    let prod_dir = prod.keys().table_path().parent().unwrap().parent().unwrap().to_owned();
    let backup = dir.path().join("stolen-prod");
    copy_tree(&prod_dir, &backup);
    drop(prod);
    cluster.drop_database("prod").unwrap();
    assert_eq!(cluster.databases().unwrap(), vec!["dev".to_owned()]);
    assert!(!prod_dir.exists());
    // Put the stolen files back: without the database key nothing opens them.
    copy_tree(&backup, &prod_dir);
    assert!(matches!(
        cluster.database("prod"),
        Err(sealstore_cluster::Error::UnknownDatabase(_))
    ));
    drop(cluster);
    let cluster = reopen(dir.path());
    assert!(!prod_dir.exists(), "files of a dropped database are swept on open");
    assert_healthy(&cluster, &want);
}

/// Replaces `live`'s file or directory with the backup's copy.
fn restore(backup: &Path, live: &Path, relative: &Path) {
    let (from, to) = (backup.join(relative), live.join(relative));
    if from.is_dir() {
        std::fs::remove_dir_all(&to).unwrap();
        copy_tree(&from, &to);
    } else {
        std::fs::copy(&from, &to).unwrap();
    }
}

fn open_err(dir: &Path) -> String {
    let cluster = reopen(dir);
    match cluster.database("dev") {
        Ok(_) => panic!("a rollback was not detected"),
        Err(e) => {
            assert!(e.is_rollback(), "{e}");
            e.to_string()
        }
    }
}

#[test]
fn restoring_any_older_file_is_detected_as_a_rollback_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let live = data(dir.path());
    let cluster = init(dir.path());
    let old_rows = rows_of(&cluster.database("dev").unwrap());
    drop(cluster);
    let backup = dir.path().join("backup");
    copy_tree(&live, &backup);
    let newer_backup = dir.path().join("backup-new");
    {
        let cluster = reopen(dir.path());
        let db = cluster.database("dev").unwrap();
        db.append("lineitem", Lineitem::new(5_000, 8)).unwrap();
    }
    copy_tree(&live, &newer_backup);
    let new_rows = rows_of(&reopen(dir.path()).database("dev").unwrap());

    let db_dir = Path::new("databases/dev");
    let newest = |root: &Path, store: &Path| {
        std::fs::read_dir(root.join(store))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("manifest-"))
            .max()
            .unwrap()
    };
    // The slice the small append went to (a small batch stays on one slice).
    let changed_slice = [
        "node-0/slice-0/dev",
        "node-0/slice-1/dev",
        "node-1/slice-2/dev",
        "node-1/slice-3/dev",
    ]
    .into_iter()
    .map(Path::new)
    .find(|s| newest(&live, s) != newest(&backup, s))
    .expect("the append changed a slice");
    let newest_manifest = newest(&live, changed_slice);
    let oldest_backup_manifest = newest(&backup, changed_slice);
    type Damage<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "commit record",
            Box::new(|| restore(&backup, &live, &db_dir.join("COMMIT"))),
        ),
        ("DEK table", Box::new(|| restore(&backup, &live, &db_dir.join("deks")))),
        (
            "manifest",
            Box::new(|| {
                std::fs::copy(
                    backup.join(changed_slice).join(&oldest_backup_manifest),
                    live.join(changed_slice).join(&newest_manifest),
                )
                .unwrap();
            }),
        ),
        (
            "segment file",
            Box::new(|| {
                // Every segment file of every slice back to its older copy (the small append
                // may have gone to one slice only).
                for node_slice in ["node-0/slice-0", "node-0/slice-1", "node-1/slice-2", "node-1/slice-3"] {
                    let store = Path::new(node_slice).join("dev");
                    for e in std::fs::read_dir(backup.join(&store)).unwrap().flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.starts_with("seg-") {
                            restore(&backup, &live, &store.join(name));
                        }
                    }
                }
            }),
        ),
    ];
    for (what, damage) in cases {
        damage();
        let err = open_err(dir.path());
        assert!(err.contains(what), "{what}: {err}");
        // Put the newer state back; it opens cleanly again.
        std::fs::remove_dir_all(&live).unwrap();
        copy_tree(&newer_backup, &live);
        assert_eq!(rows_of(&reopen(dir.path()).database("dev").unwrap()), new_rows);
    }

    // A deliberate restore of the whole data directory: refused, then accepted and audited.
    std::fs::remove_dir_all(&live).unwrap();
    copy_tree(&backup, &live);
    open_err(dir.path());
    let options = OpenOptions {
        threads: Some(2),
        accept_rollback: true,
        ..Default::default()
    };
    let cluster = Cluster::open(&live, options).unwrap();
    assert_eq!(rows_of(&cluster.database("dev").unwrap()), old_rows);
    let ops: Vec<AuditOp> = cluster
        .keyring()
        .audit_records()
        .unwrap()
        .iter()
        .map(|r| r.op)
        .collect();
    assert!(ops.contains(&AuditOp::AcceptRollback));
    drop(cluster);
    assert_healthy(&reopen(dir.path()), &old_rows);
}

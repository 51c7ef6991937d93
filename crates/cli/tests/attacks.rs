//! The data-directory attacker, through the real binary: someone who can read and write every
//! file, name and link under the data directory — but not the key store or the master key —
//! tries to make sealstore return wrong rows, destroy keys, hide a rollback or keep dropped data
//! decryptable. Every attack must end in a clear one-line error (exit 1, no panic) or leave keys
//! unchanged and rows correct.
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{ok, refused, run, text};

fn sh(script: &str) {
    let status = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(status.success(), "{script}");
}

struct Victim {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: String,
}

impl Victim {
    fn path(&self, rel: &str) -> PathBuf {
        Path::new(&self.data).join(rel)
    }
    fn keys(&self) -> PathBuf {
        self.root.join("data.keys")
    }
    /// Sorted CSV rows of `dev.orders` (header dropped).
    fn rows(&self) -> Vec<String> {
        rows_of(&ok(&["scan", &self.data, "orders", "--format", "csv"]))
    }
}

fn rows_of(csv: &str) -> Vec<String> {
    let mut rows: Vec<String> = csv.lines().skip(1).map(str::to_owned).collect();
    rows.sort();
    rows
}

fn orders_csv() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/orders.csv")
        .to_str()
        .unwrap()
        .to_owned()
}

/// A cluster (2 nodes x 2 slices) holding `dev.orders`, spread EVEN so every slice has rows.
fn victim(cluster_id: &str) -> Victim {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    let data = root.join("data").to_str().unwrap().to_owned();
    ok(&["init", &data, "--block-size", "64KiB", "--cluster-id", cluster_id]);
    ok(&["load", &data, "orders", &orders_csv()]);
    Victim { _tmp: tmp, root, data }
}

/// Every file under `dir` with its bytes, mode, inode and mtime.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, u64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p.clone());
                out.insert(p, (Vec::new(), md.mode(), md.ino(), 0, 0));
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.insert(p, (bytes, md.mode(), md.ino(), md.mtime(), md.mtime_nsec()));
            }
        }
    }
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_iter()
        .filter(|(_, v)| !v.0.is_empty())
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn copying_one_slice_directory_over_another_is_refused_and_destroys_nothing() {
    let v = victim("attack-copy");
    let rows = v.rows();
    let slice0 = v.path("node-0/slice-0");
    let saved = v.root.join("saved-slice-0");
    sh(&format!(
        "cp -a {s0} {saved} && rm -rf {s0} && cp -a {s1} {s0}",
        s0 = slice0.display(),
        saved = saved.display(),
        s1 = v.path("node-0/slice-1").display()
    ));
    for args in [
        vec!["scan", &v.data, "orders"],
        vec!["load", &v.data, "orders", &orders_csv()],
    ] {
        let err = refused(&args);
        assert!(err.contains("slice-0") && err.contains("holds slice 1"), "{err}");
    }
    let o = run(&["verify", &v.data]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("holds slice 1"), "{}", text(&o.stdout));
    // Nothing was removed on the strength of the copy: putting slice 0 back restores it all.
    sh(&format!(
        "rm -rf {s0} && mv {saved} {s0}",
        s0 = slice0.display(),
        saved = saved.display()
    ));
    assert_eq!(v.rows(), rows);
    assert!(ok(&["verify", &v.data]).contains("0 failures"));
}

#[test]
fn swapping_two_slice_directories_is_refused() {
    let v = victim("attack-swap");
    let rows = v.rows();
    let (a, b) = (v.path("node-0/slice-0"), v.path("node-1/slice-2"));
    let t = v.root.join("t");
    sh(&format!(
        "mv {a} {t} && mv {b} {a} && mv {t} {b}",
        a = a.display(),
        b = b.display(),
        t = t.display()
    ));
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(err.contains("is not the store expected here"), "{err}");
    sh(&format!(
        "mv {a} {t} && mv {b} {a} && mv {t} {b}",
        a = a.display(),
        b = b.display(),
        t = t.display()
    ));
    assert_eq!(v.rows(), rows);
}

#[test]
fn a_slice_from_another_database_or_another_cluster_does_not_open() {
    let v = victim("attack-db");
    ok(&["create-database", &v.data, "other"]);
    ok(&["load", &v.data, "orders", &orders_csv(), "--database", "other"]);
    let ours = v.path("node-0/slice-0/dev");
    let saved = v.root.join("saved");
    sh(&format!("mv {o} {s}", o = ours.display(), s = saved.display()));
    sh(&format!(
        "cp -a {} {}",
        v.path("node-0/slice-0/other").display(),
        ours.display()
    ));
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(err.contains("is not the store expected here"), "{err}");
    // Same slice index, same database name, another cluster.
    let stranger = victim("attack-db-2");
    sh(&format!(
        "rm -rf {o} && cp -a {} {o}",
        stranger.path("node-0/slice-0/dev").display(),
        o = ours.display()
    ));
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(err.contains("is not the store expected here"), "{err}");
    // The store id is bound into the manifest's AAD too: a copied STORE file does not help.
    std::fs::copy(saved.join("STORE"), ours.join("STORE")).unwrap();
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(
        err.contains("authentication failed") || err.contains("not the store expected"),
        "{err}"
    );
}

#[test]
fn links_planted_at_temp_names_and_data_files_never_write_through_and_are_refused() {
    let v = victim("attack-link");
    let rows = v.rows();
    let master = v.keys().join("master.key");
    let key_before = std::fs::read(&master).unwrap();
    let keystore_before = std::fs::read(v.keys().join("keystore/keystore.ssk")).unwrap();
    // Links at every temp name the old code used, and at names like the new random ones.
    let slice = v.path("node-0/slice-0/dev");
    let deks = v.path("databases/dev/deks");
    for (dir, name) in [
        (&slice, ".CURRENT.tmp"),
        (&slice, ".manifest-00000000000000000003.ssm.tmp"),
        (&deks, ".dek-00000000000000000001.log.tmp"),
        (&deks, ".dek-00000000000000000002.log.tmp"),
        (&v.path("databases/dev"), ".COMMIT.tmp"),
        (&PathBuf::from(&v.data), ".sealstore.json.tmp"),
    ] {
        std::os::unix::fs::symlink(&master, dir.join(name)).unwrap();
    }
    assert_eq!(v.rows(), rows, "a read-only scan with links present");
    ok(&["load", &v.data, "orders", &orders_csv()]);
    ok(&["rotate", &v.data]);
    ok(&["drop", &v.data, "orders"]);
    assert_eq!(
        std::fs::read(&master).unwrap(),
        key_before,
        "the master key file is untouched"
    );
    assert!(std::fs::symlink_metadata(&master).unwrap().is_file());
    assert_ne!(
        std::fs::read(v.keys().join("keystore/keystore.ssk")).unwrap(),
        keystore_before,
        "(the rotation did rewrite the real key store)"
    );
    // Writable opens swept the planted temp names away.
    assert!(!slice.join(".CURRENT.tmp").exists() && !deks.join(".dek-00000000000000000002.log.tmp").exists());
}

#[test]
fn a_link_or_a_hard_link_in_place_of_a_data_file_or_directory_is_refused() {
    let v = victim("attack-link2");
    let master = v.keys().join("master.key");
    let key_before = std::fs::read(&master).unwrap();
    // `CURRENT` replaced by a link to the master key: a reader refuses it; a writer replaces
    // the link by renaming over it, and the link's target is never written.
    let current = v.path("node-0/slice-0/dev/CURRENT");
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(&master, &current).unwrap();
    ok(&["load", &v.data, "orders", &orders_csv()]);
    assert!(std::fs::symlink_metadata(&current).unwrap().is_file());
    assert_eq!(std::fs::read(&master).unwrap(), key_before);
    // A manifest replaced by a link to a copy of itself: refused, not followed.
    let manifest = files_under(&v.path("node-0/slice-0/dev"))
        .into_iter()
        .rfind(|p| p.extension().is_some_and(|e| e == "ssm"))
        .unwrap();
    let real = v.root.join("manifest.real");
    std::fs::rename(&manifest, &real).unwrap();
    std::os::unix::fs::symlink(&real, &manifest).unwrap();
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(err.contains("symbolic link"), "{err}");
    std::fs::remove_file(&manifest).unwrap();
    std::fs::rename(&real, &manifest).unwrap();
    // A directory link: node-1 points at a copy of itself elsewhere.
    let node1 = v.path("node-1");
    let elsewhere = v.root.join("node-1-elsewhere");
    std::fs::rename(&node1, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &node1).unwrap();
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(err.contains("symbolic link"), "{err}");
    std::fs::remove_file(&node1).unwrap();
    std::fs::rename(&elsewhere, &node1).unwrap();
    // A segment file replaced by a hard link to the master key: writers refuse it.
    let seg = files_under(&v.path(""))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("seg-")))
        .expect("a segment file");
    std::fs::rename(&seg, v.root.join("seg.real")).unwrap();
    std::fs::hard_link(&master, &seg).unwrap();
    let err = refused(&["load", &v.data, "orders", &orders_csv()]);
    assert!(err.contains("hard links"), "{err}");
    assert_eq!(std::fs::read(&master).unwrap(), key_before);
    std::fs::remove_file(&seg).unwrap();
    std::fs::rename(v.root.join("seg.real"), &seg).unwrap();
    ok(&["verify", &v.data]);
}

#[test]
fn the_data_directory_config_decides_nothing_about_keys() {
    let v = victim("attack-config");
    let rows = v.rows();
    // Everything an attacker could want sealstore.json to decide: another key store (an old
    // copy, to roll back), a provider, a PKCS#11 module and PIN variable.
    let old_keys = v.root.join("old-keys");
    sh(&format!(
        "cp -a {} {}",
        v.keys().join("keystore").display(),
        old_keys.display()
    ));
    ok(&["load", &v.data, "orders", &orders_csv()]);
    let rows_after = v.rows();
    assert_eq!(rows_after.len(), 2 * rows.len());
    let evil = serde_json::json!({
        "format": 2,
        "cluster_id": "attack-config",
        "keystore": old_keys,
        "provider": {"kind": "pkcs11", "module": "/tmp/evil.so", "token_label": "t", "key_label": "k", "pin_env": "HOME"},
        "node_dirs": ["/tmp"],
    });
    std::fs::write(v.path("sealstore.json"), evil.to_string()).unwrap();
    assert_eq!(v.rows(), rows_after, "the planted settings are ignored");
    // A marker naming another cluster is refused, naming the mismatch.
    std::fs::write(v.path("sealstore.json"), r#"{"format":2,"cluster_id":"someone-else"}"#).unwrap();
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(err.contains("belongs to cluster `attack-config`"), "{err}");
    // The old key store copy can only come from the caller, and its rollback is caught by the
    // data directory's own files (the commit record is newer than its binding).
    std::fs::write(v.path("sealstore.json"), r#"{"format":2,"cluster_id":"attack-config"}"#).unwrap();
    let old = old_keys.to_str().unwrap();
    let err = refused(&["scan", &v.data, "orders", "--keystore", old]);
    assert!(err.contains("belongs to the key store"), "{err}");
    assert_eq!(v.rows(), rows_after);
}

#[test]
fn audit_edits_recomputed_without_the_key_and_truncations_are_detected() {
    let v = victim("attack-audit");
    let log = v.keys().join("keystore/audit.log");
    assert!(ok(&["audit", &v.data, "--verify"]).contains("audit chain intact"));
    let good = std::fs::read_to_string(&log).unwrap();
    // Edit one record and recompute the chain with plain SHA-256, as someone without the
    // audit key (which only the master key unwraps) would.
    let lines: Vec<&str> = good.lines().collect();
    let mut forged = String::new();
    let mut prev = "0".repeat(64);
    for (i, line) in lines.iter().enumerate() {
        let at = line.rfind(",\"mac\":\"").unwrap();
        let mut record: serde_json::Value = serde_json::from_str(&format!("{}}}", &line[..at])).unwrap();
        if i == 2 {
            record["outcome"] = serde_json::json!("ok (edited)");
        }
        record["prev"] = serde_json::json!(prev);
        let body = serde_json::to_string(&record).unwrap();
        let body = body.strip_suffix('}').unwrap();
        use sha2::Digest;
        let mac = hex::encode(sha2::Sha256::digest(format!("sealstore/audit/v2\0{body}").as_bytes()));
        forged.push_str(&format!("{body},\"mac\":\"{mac}\"}}\n"));
        prev = mac;
    }
    std::fs::write(&log, &forged).unwrap();
    let err = refused(&["audit", &v.data, "--verify"]);
    assert!(err.contains("audit log"), "{err}");
    // Truncation: the last records cut off (there is no head file to delete any more; the
    // anchor lives in the key store).
    let cut: String = lines[..lines.len() - 2].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, &cut).unwrap();
    let err = refused(&["audit", &v.data, "--verify"]);
    assert!(err.contains("truncated"), "{err}");
    // Deleted outright.
    std::fs::remove_file(&log).unwrap();
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(err.contains("audit log"), "{err}");
    // A log from another cluster.
    let other = victim("attack-audit-2");
    std::fs::copy(other.keys().join("keystore/audit.log"), &log).unwrap();
    let err = refused(&["audit", &v.data, "--verify"]);
    assert!(err.contains("audit log"), "{err}");
    std::fs::write(&log, &good).unwrap();
    ok(&["audit", &v.data, "--verify"]);
}

#[test]
fn read_only_commands_change_nothing_and_work_on_a_read_only_mount() {
    let v = victim("attack-ro");
    ok(&["load", &v.data, "orders", &orders_csv()]);
    let rows = v.rows();
    let data = PathBuf::from(&v.data);
    let before = snapshot(&data);
    for args in [
        vec!["scan", &v.data, "orders"],
        vec!["scan", &v.data, "orders", "--where", "amount > 10", "--format", "count"],
        vec!["verify", &v.data],
        vec!["info", &v.data],
        vec!["tables", &v.data],
        vec!["audit", &v.data],
        vec!["audit", &v.data, "--verify"],
    ] {
        ok(&args);
    }
    assert!(
        before == snapshot(&data),
        "a read-only command changed the data directory"
    );
    // The same on a real read-only mount of the data directory (a restored backup), where the
    // kernel itself refuses every write. Needs mount privileges (root, as in CI).
    let mounted = sh_status(&format!(
        "mount --bind {d} {d} && mount -o remount,bind,ro {d}",
        d = v.data
    ));
    if mounted {
        let result = std::panic::catch_unwind(|| {
            assert_eq!(v.rows(), rows);
            ok(&["verify", &v.data]);
            ok(&["info", &v.data]);
            let err = refused(&["load", &v.data, "orders", &orders_csv()]);
            assert!(
                err.contains("Read-only file system") || err.contains("read-only"),
                "{err}"
            );
        });
        sh(&format!("umount {}", v.data));
        result.unwrap();
    } else {
        eprintln!("note: no mount privileges here; the read-only mount half of this test did not run");
    }
}

fn sh_status(script: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("({script}) 2>/dev/null"))
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_dropped_table_stays_undecryptable_when_its_files_are_restored() {
    let v = victim("attack-drop");
    let data = PathBuf::from(&v.data);
    let backup = v.root.join("backup");
    sh(&format!("cp -a {} {}", data.display(), backup.display()));
    let deks = v.path("databases/dev/deks");
    let old_dek_file = files_under(&deks).pop().unwrap();
    let old_deks = std::fs::read(&old_dek_file).unwrap();
    ok(&["drop", &v.data, "orders"]);
    // No wrapped DEK of the dropped table remains in any file of the data directory: the old
    // table's frames (each 72-byte entry) appear nowhere, and no temp file is left.
    // The last four entries (the 10-row table is six blocks on one slice).
    let frames = &old_deks[old_deks.len() - 72 * 4..];
    // (Segment files hold only sealed blocks, never wrapped keys; they are not searched.)
    for file in files_under(&data)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "dat"))
    {
        let bytes = std::fs::read(&file).unwrap();
        for entry in frames.chunks(24) {
            assert!(
                !bytes.windows(entry.len()).any(|w| w == entry),
                "{} still holds bytes of a dropped table's wrapped DEK",
                file.display()
            );
        }
        assert!(!file.file_name().unwrap().to_str().unwrap().ends_with(".tmp"));
    }
    assert!(ok(&["info", &v.data]).contains("0 wrapped DEKs"));
    // Put every old file back: refused as a rollback; accepted deliberately, the old DEK table
    // is wrapped under a database key that the drop destroyed — never rows.
    sh(&format!(
        "rm -rf {d} && cp -a {b} {d}",
        d = data.display(),
        b = backup.display()
    ));
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(
        err.contains("rollback detected") || err.contains("database key generation 1"),
        "{err}"
    );
    let err = refused(&["scan", &v.data, "orders", "--accept-rollback"]);
    assert!(
        err.contains("authentication failed") || err.contains("database key"),
        "{err}"
    );
}

#[test]
fn hostile_segment_names_and_layout_numbers_give_clear_errors() {
    let v = victim("attack-names");
    let slice = v.path("node-0/slice-0/dev");
    for name in ["seg-000-18446744073709551615.dat", "seg-127-000000.dat"] {
        std::fs::write(slice.join(name), b"").unwrap();
        let err = refused(&["scan", &v.data, "orders"]);
        assert!(err.contains("beyond the largest"), "{name}: {err}");
        std::fs::remove_file(slice.join(name)).unwrap();
    }
    // A huge slot count per segment in STORE (with its checksum fixed) would size allocations.
    let store = slice.join("STORE");
    let good = std::fs::read(&store).unwrap();
    let mut bad = good.clone();
    bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    let n = bad.len();
    let crc = crc32(&bad[..n - 4]);
    bad[n - 4..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&store, &bad).unwrap();
    let err = refused(&["scan", &v.data, "orders"]);
    assert!(err.contains("invalid block size or segment size"), "{err}");
    std::fs::write(&store, &good).unwrap();
    ok(&["verify", &v.data]);
}

/// CRC-32 (IEEE), as the STORE file uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

//! Crash injection at each step of a commit: after reopening, the store shows exactly the
//! previous or the new commit, `verify` is clean, and leftovers are reclaimed.
mod common;

use common::*;
use sealstore_blockstore::{Store, block};

const SMALL: usize = block::MIN_BLOCK_SIZE;

#[derive(Debug, Clone, Copy, PartialEq)]
enum CrashPoint {
    BlocksWritten,
    DekTableCommitted,
    ManifestWritten,
    CurrentSwitched,
}

fn base(env: &Env) -> Store {
    let mut store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 3000)).unwrap();
    store
}

#[test]
fn crash_at_each_commit_step_leaves_old_or_new_state() {
    for point in [
        CrashPoint::BlocksWritten,
        CrashPoint::DekTableCommitted,
        CrashPoint::ManifestWritten,
        CrashPoint::CurrentSwitched,
    ] {
        let env = Env::new();
        let mut store = base(&env);
        let before = collect(&store, "t");
        let deks_before = store.keys().len();
        let mut txn = store.begin();
        txn.append("t", &all_types_batch(3000, 20_000)).unwrap();
        let prepared = txn.prepare().unwrap();
        if point != CrashPoint::BlocksWritten {
            store.keys().commit().unwrap();
        }
        if matches!(point, CrashPoint::ManifestWritten | CrashPoint::CurrentSwitched) {
            store.write_prepared(&prepared).unwrap();
        }
        if point == CrashPoint::CurrentSwitched {
            store.publish(prepared).unwrap();
        } else {
            drop(prepared);
        }
        drop(store); // the "crash": nothing else of this process survives
        let mut store = env.reopen();
        assert!(store.verify().is_empty(), "{point:?}");
        let after = collect(&store, "t");
        if point == CrashPoint::CurrentSwitched {
            assert_eq!(after.num_rows(), 23_000, "{point:?}");
        } else {
            assert_eq!(after, before, "{point:?}");
            assert_eq!(
                store.keys().len(),
                deks_before,
                "{point:?}: unreferenced DEKs reclaimed"
            );
        }
        // Writing continues normally afterwards.
        store.append("t", &all_types_batch(50_000, 500)).unwrap();
        assert!(store.verify().is_empty());
        assert_eq!(store.row_count("t").unwrap(), after.num_rows() as u64 + 500);
    }
}

#[test]
fn a_crash_during_the_current_switch_leaves_a_temp_file_that_is_ignored() {
    let env = Env::new();
    let store = base(&env);
    let before = collect(&store, "t");
    drop(store);
    std::fs::write(env.data().join(".CURRENT.tmp"), b"half-written").unwrap();
    let store = env.reopen();
    assert_eq!(collect(&store, "t"), before);
}

#[test]
fn garbage_in_free_slots_after_a_crash_is_harmless() {
    let env = Env::new();
    let mut store = base(&env);
    let mut txn = store.begin();
    txn.append("t", &all_types_batch(3000, 20_000)).unwrap();
    drop(txn.prepare().unwrap());
    drop(store);
    let mut store = env.reopen();
    // Reuses the slots the lost commit wrote.
    store.append("t", &all_types_batch(3000, 20_000)).unwrap();
    assert!(store.verify().is_empty());
    assert_eq!(collect(&store, "t").num_rows(), 23_000);
}

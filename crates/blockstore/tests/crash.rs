//! Crash injection at each step of a commit: after reopening, the store shows exactly the
//! previous or the new commit, `verify` is clean, and leftovers are reclaimed.
mod common;

use common::*;
use sealstore_blockstore::{CommitPoint, CommitStep, CurrentFile, Durability, Error, Store, block, commit};

const SMALL: usize = block::MIN_BLOCK_SIZE;

fn base(env: &Env) -> Store {
    let store = env.create(SMALL);
    store.create_table("t", &all_types_schema()).unwrap();
    store.append("t", &all_types_batch(0, 3000)).unwrap();
    store
}

/// The standalone commit point, stopped dead right after `at` as if the process died there.
struct CrashAt<'s> {
    inner: CurrentFile<'s>,
    at: CommitStep,
}

impl CommitPoint for CrashAt<'_> {
    type Error = Error;

    fn write(
        &mut self,
        generations: &[sealstore_blockstore::ManifestId],
        dek_position: (u64, u64),
    ) -> Result<Durability<Error>, Error> {
        self.inner.write(generations, dek_position)
    }

    fn installed(&mut self) {
        self.inner.installed()
    }

    fn bind(&mut self) -> Result<(), Error> {
        self.inner.bind()
    }

    fn crash_here(&self, step: CommitStep) -> Result<(), Error> {
        if step == self.at {
            return Err(Error::Internal(format!("injected crash at {step:?}")));
        }
        Ok(())
    }
}

#[test]
fn a_crash_at_each_commit_step_leaves_the_old_or_the_new_state() {
    for at in [
        CommitStep::BlocksDurable,
        CommitStep::DeksDurable,
        CommitStep::ManifestsWritten,
        CommitStep::CommitPointWritten,
        CommitStep::Installed,
    ] {
        let env = Env::new();
        let store = base(&env);
        let before = collect(&store, "t");
        let deks_before = store.keys().len();
        let mut txn = store.begin();
        txn.append("t", &all_types_batch(3000, 20_000)).unwrap();
        let keys = store.keys().clone();
        let mut point = CrashAt {
            inner: CurrentFile::new(&store),
            at,
        };
        let crashed = commit::commit(&keys, vec![txn], &mut point);
        assert!(crashed.is_err(), "{at:?}");
        drop(store); // the "crash": nothing else of this process survives
        let store = env.reopen();
        assert!(store.verify().is_empty(), "{at:?}");
        let after = collect(&store, "t");
        let committed = matches!(at, CommitStep::CommitPointWritten | CommitStep::Installed);
        if committed {
            assert_eq!(after.num_rows(), 23_000, "{at:?}");
        } else {
            assert_eq!(after, before, "{at:?}");
            assert_eq!(store.keys().len(), deks_before, "{at:?}: unreferenced DEKs reclaimed");
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
    let store = base(&env);
    let mut txn = store.begin();
    txn.append("t", &all_types_batch(3000, 20_000)).unwrap();
    let keys = store.keys().clone();
    let mut point = CrashAt {
        inner: CurrentFile::new(&store),
        at: CommitStep::ManifestsWritten,
    };
    assert!(commit::commit(&keys, vec![txn], &mut point).is_err());
    drop(store);
    let store = env.reopen();
    // Reuses the slots the lost commit wrote.
    store.append("t", &all_types_batch(3000, 20_000)).unwrap();
    assert!(store.verify().is_empty());
    assert_eq!(collect(&store, "t").num_rows(), 23_000);
}

#[test]
fn an_aborted_transaction_leaves_nothing_and_the_store_writes_on() {
    let env = Env::new();
    let store = base(&env);
    let before = collect(&store, "t");
    let deks = store.keys().len();
    let mut txn = store.begin();
    txn.append("t", &all_types_batch(3000, 20_000)).unwrap();
    drop(txn);
    assert_eq!(collect(&store, "t"), before);
    assert_eq!(store.keys().len(), deks);
    store.append("t", &all_types_batch(3000, 100)).unwrap();
    assert_eq!(store.row_count("t").unwrap(), 3100);
    drop(store);
    let store = env.reopen();
    assert!(store.verify().is_empty());
    assert_eq!(store.row_count("t").unwrap(), 3100);
}

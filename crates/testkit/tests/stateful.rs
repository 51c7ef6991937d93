//! The stateful fuzz target's engine run as a property test: random sequences of create, append,
//! scan, drop, key rotations, re-key and reopen, with injected I/O faults, against a model.
//! Faults are process-wide, so the tests of this binary take turns.
use proptest::prelude::*;

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(ops: &[u8]) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    sealstore_testkit::stateful::run(dir.path(), ops);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_operation_sequences_with_faults_match_the_model(ops in proptest::collection::vec(any::<u8>(), 0..60)) {
        run(&ops);
    }
}

#[test]
fn hand_picked_sequences() {
    // create t0, append, fault (torn write after 3 ops) during an append, rotate, re-key,
    // reopen, drop, fault (ENOSPC) during a re-key, append again.
    let sequences: [&[u8]; 3] = [
        &[0, 0, 0, 1, 0, 5, 8, 3, 3, 1, 0, 9, 4, 0, 0, 6, 0, 0, 7, 0, 0, 2, 0, 0],
        &[0, 1, 0, 1, 1, 40, 3, 1, 0, 0, 1, 0, 8, 2, 1, 6, 0, 0, 1, 1, 3, 7, 0, 0],
        &[0, 2, 0, 1, 2, 2, 8, 1, 0, 5, 0, 0, 8, 0, 7, 4, 0, 0, 1, 2, 200, 2, 2, 0],
    ];
    for s in sequences {
        run(s);
    }
}

#[test]
fn fuzz_regression_crash_198c75e2() {
    run(include_bytes!("stateful-crash-198c75e2.bin"));
}

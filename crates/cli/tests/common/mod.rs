//! Running the real `sealstore` binary from integration tests: the environment cleared of what
//! would change its behaviour, and the two outcomes tests expect (success; one clear line).
// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]
use std::process::{Command, Output};

/// The binary, without a backtrace setting or a key-store path from the caller's environment.
pub fn sealstore() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sealstore"));
    c.env_remove("RUST_BACKTRACE").env_remove("SEALSTORE_KEYSTORE");
    c
}

pub fn run(args: &[&str]) -> Output {
    sealstore().args(args).output().unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs and expects exit 0; returns stdout.
#[track_caller]
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}\nstdout: {}\nstderr: {}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Runs and expects exit 1 with exactly one line on stderr, no panic; returns that line.
#[track_caller]
pub fn refused(args: &[&str]) -> String {
    let o = run(args);
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{args:?}\nstdout: {}\nstderr: {err}",
        text(&o.stdout)
    );
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    err
}

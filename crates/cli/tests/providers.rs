//! The `sealstore` binary with its master key in a real PKCS#11 token (SoftHSM2 from
//! `scripts/softhsm`). Built only with `--features pkcs11`.
#![cfg(feature = "pkcs11")]

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealstore"))
        .args(args)
        .output()
        .unwrap()
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let o = run(args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{args:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[track_caller]
fn fails(args: &[&str], code: i32) -> String {
    let o = run(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `eval \"$(scripts/softhsm)\"` first"))
}

fn unique(prefix: &str) -> String {
    let mut r = [0u8; 6];
    sealstore_keyring::fill_random(&mut r).unwrap();
    format!("{prefix}-{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[test]
fn init_load_scan_and_rotate_the_master_key_in_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let module = env("SEALSTORE_TEST_PKCS11_MODULE");
    let token = env("SEALSTORE_TEST_PKCS11_TOKEN");
    let key = unique("cli-mk");
    let csv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/orders.csv");
    let base = [
        "--pkcs11-module",
        &module,
        "--pkcs11-token",
        &token,
        "--pkcs11-pin-env",
        "SEALSTORE_TEST_PKCS11_PIN",
    ];

    // Usage errors first: nothing is created.
    fails(&["init", d, "--pkcs11-module", &module], 2);
    let err = fails(&[&["init", d], &base[..], &["--pkcs11-key", "absent-key"]].concat(), 1);
    assert!(
        err.contains("no key labelled `absent-key`") && err.contains("--pkcs11-create-key"),
        "{err}"
    );
    let err = fails(
        &[
            "init",
            d,
            "--pkcs11-module",
            &module,
            "--pkcs11-token",
            "nope",
            "--pkcs11-key",
            &key,
            "--pkcs11-create-key",
            "--pkcs11-pin-env",
            "SEALSTORE_TEST_PKCS11_PIN",
        ],
        1,
    );
    assert!(err.contains("no initialised token labelled `nope`"), "{err}");
    assert!(!data.join("sealstore.json").exists());

    let out = ok(&[&["init", d], &base[..], &["--pkcs11-key", &key, "--pkcs11-create-key"]].concat());
    assert!(out.contains("PKCS#11 token") && out.contains(&key), "{out}");
    assert!(
        !tmp.path().join("data.keys/master.key").exists(),
        "no key file with a token provider"
    );
    ok(&["load", d, "orders", csv]);
    assert_eq!(ok(&["scan", d, "orders", "--format", "count"]).trim(), "10");

    let out = ok(&["rotate", d, "--master"]);
    assert!(out.contains(&format!("pkcs11:token={token};key={key}.v2")), "{out}");
    let other = unique("cli-mk2");
    ok(&["rotate", d, "--master", "--new-master-key", &other]);
    ok(&["rotate", d, "--all"]);
    let info = ok(&["info", d]);
    assert!(info.contains(&format!("{other}.v2")), "{info}");
    assert_eq!(ok(&["scan", d, "orders", "--format", "count"]).trim(), "10");
    ok(&["verify", d]);
    let audit = ok(&["audit", d, "--op", "RotateMasterKey"]);
    assert_eq!(audit.lines().count(), 3, "{audit}");
}

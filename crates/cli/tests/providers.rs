//! The `sealstore` binary with its master key in a real PKCS#11 token (SoftHSM2 from
//! `scripts/softhsm`) and in a real KMS-API server (moto from `scripts/aws`). Built only with
//! `--features pkcs11` / `--features kms`.
#![cfg(any(feature = "pkcs11", feature = "kms"))]

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

#[cfg(feature = "pkcs11")]
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

/// Creates a key in the KMS-API test server with one raw JSON request (the server does not check
/// signatures; the CLI under test uses the real SDK).
#[cfg(feature = "kms")]
fn create_kms_key(spec: &str) -> String {
    use std::io::{Read, Write};
    let endpoint = env("SEALSTORE_TEST_KMS_ENDPOINT");
    let host = endpoint.trim_start_matches("http://");
    let body = format!(r#"{{"KeySpec":"{spec}","KeyUsage":"ENCRYPT_DECRYPT"}}"#);
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: TrentService.CreateKey\r\nContent-Type: application/x-amz-json-1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let start = response.find("\"KeyId\": \"").expect("CreateKey answered a KeyId") + 10;
    response[start..start + 36].to_owned()
}

#[cfg(feature = "kms")]
#[test]
fn init_load_scan_and_rotate_the_master_key_in_a_kms() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let endpoint = env("SEALSTORE_TEST_KMS_ENDPOINT");
    let csv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/orders.csv");
    let key = create_kms_key("SYMMETRIC_DEFAULT");
    let rsa = create_kms_key("RSA_2048");

    let err = fails(
        &[
            "init",
            d,
            "--kms-key-id",
            &rsa,
            "--kms-endpoint",
            &endpoint,
            "--kms-region",
            "us-east-1",
        ],
        1,
    );
    assert!(
        err.contains("master key must be a symmetric AES-256 key; got RSA"),
        "{err}"
    );
    let err = fails(
        &[
            "init",
            d,
            "--kms-key-id",
            &key,
            "--kms-endpoint",
            "http://127.0.0.1:9",
            "--kms-region",
            "us-east-1",
        ],
        1,
    );
    assert!(err.contains("http://127.0.0.1:9"), "{err}");
    fails(&["init", d, "--kms-endpoint", &endpoint], 2);
    assert!(!data.join("sealstore.json").exists());

    let out = ok(&[
        "init",
        d,
        "--kms-key-id",
        &key,
        "--kms-endpoint",
        &endpoint,
        "--kms-region",
        "us-east-1",
    ]);
    assert!(out.contains("KMS key") && out.contains(&key), "{out}");
    ok(&["load", d, "orders", csv]);
    assert_eq!(ok(&["scan", d, "orders", "--format", "count"]).trim(), "10");
    let err = fails(&["rotate", d, "--master"], 2);
    assert!(err.contains("--new-master-key"), "{err}");
    let next = create_kms_key("SYMMETRIC_DEFAULT");
    let out = ok(&["rotate", d, "--master", "--new-master-key", &next]);
    assert!(out.contains(&next), "{out}");
    ok(&["rotate", d]);
    assert!(ok(&["info", d]).contains(&next));
    assert_eq!(ok(&["scan", d, "orders", "--format", "count"]).trim(), "10");
    ok(&["verify", d]);
    let audit = ok(&["audit", d, "--op", "Unwrap"]);
    assert!(audit.contains("key=kms:arn:aws:kms:"), "{audit}");
}

/// A key server whose master key is in the token: cluster keys wrapped by it, nodes with no key
/// at all, and the server's master key rotated to a new token key.
#[cfg(feature = "pkcs11")]
#[test]
fn a_key_server_keeps_its_master_key_in_a_token() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name).display().to_string();
    let (module, token) = (env("SEALSTORE_TEST_PKCS11_MODULE"), env("SEALSTORE_TEST_PKCS11_TOKEN"));
    let key = unique("ks-mk");
    let csv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/orders.csv");
    ok(&["certs", &p("certs"), "--cluster", "tok"]);
    let out = ok(&[
        "keyserver",
        "init",
        &p("ks"),
        "--pkcs11-module",
        &module,
        "--pkcs11-token",
        &token,
        "--pkcs11-key",
        &key,
        "--pkcs11-pin-env",
        "SEALSTORE_TEST_PKCS11_PIN",
        "--pkcs11-create-key",
    ]);
    assert!(out.contains("PKCS#11 token"), "{out}");
    assert!(!tmp.path().join("ks/master.key").exists());
    ok(&["keyserver", "add-cluster", &p("ks"), "--cluster", "tok"]);
    let serve = |listen: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sealstore"))
            .args(["keyserver", "serve", &p("ks"), "--listen", listen])
            .args(["--cert", &p("certs/server.pem"), "--key", &p("certs/server.key")])
            .args(["--client-ca", &p("certs/ca.pem")])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().strip_prefix("listening on ").unwrap().to_owned();
        (child, address)
    };
    let (mut server, address) = serve("127.0.0.1:0");
    let d = p("data");
    ok(&[
        "init",
        &d,
        "--keyserver",
        &format!("https://{address}"),
        "--ca",
        &p("certs/ca.pem"),
        "--cert",
        &p("certs/node-tok.pem"),
        "--key",
        &p("certs/node-tok.key"),
    ]);
    ok(&["load", &d, "orders", csv]);
    // Rotated while the server serves: the server opens the new token key itself.
    let out = ok(&["keyserver", "rotate-master", &p("ks")]);
    assert!(
        out.contains(&format!("{key}.v2")) && out.contains("1 cluster keys") && out.contains("kept serving"),
        "{out}"
    );
    assert_eq!(ok(&["scan", &d, "orders", "--format", "count"]).trim(), "10");
    let _ = server.kill();
    let _ = server.wait();
    let (mut server, _) = serve(&address);
    assert_eq!(ok(&["scan", &d, "orders", "--format", "count"]).trim(), "10");
    let info = ok(&["info", &d]);
    assert!(info.contains(&format!("pkcs11:token={token};key={key}.v2")), "{info}");
    let _ = server.kill();
    let _ = server.wait();
}

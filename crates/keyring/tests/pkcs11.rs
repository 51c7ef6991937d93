//! The PKCS#11 provider against a real token: SoftHSM2, installed and initialised by
//! `scripts/softhsm` (which prints the environment these tests read). Built only with
//! `--features pkcs11`; without the environment they fail loudly instead of passing silently.
#![cfg(feature = "pkcs11")]

use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use sealstore_keyring::provider::{LocalKeyFile, Pkcs11Config, Pkcs11Provider};
use sealstore_keyring::{EncryptionContext, Error, KeySpec, Keyring, MasterKeyProvider};

/// One test at a time: the RSA test drives the module with raw cryptoki calls outside the
/// provider's module lock, and SoftHSM2 misbehaves when sessions of one process are opened and
/// closed from several threads at once.
static TOKEN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TOKEN.lock().unwrap_or_else(|p| p.into_inner())
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `eval \"$(scripts/softhsm)\"` first"))
}

fn unique(prefix: &str) -> String {
    let mut r = [0u8; 6];
    sealstore_keyring::fill_random(&mut r).unwrap();
    format!("{prefix}-{}", r.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn config(key_label: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: env("SEALSTORE_TEST_PKCS11_MODULE").into(),
        token_label: env("SEALSTORE_TEST_PKCS11_TOKEN"),
        key_label: key_label.to_owned(),
        pin_env: "SEALSTORE_TEST_PKCS11_PIN".into(),
    }
}

/// A logged-in read-write session on the test token through the plain PKCS#11 API (outside the
/// provider), to make keys the provider must refuse.
fn user_session() -> (Pkcs11, cryptoki::session::Session) {
    let ctx = Pkcs11::new(env("SEALSTORE_TEST_PKCS11_MODULE")).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == env("SEALSTORE_TEST_PKCS11_TOKEN"))
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    let pin = AuthPin::new(env("SEALSTORE_TEST_PKCS11_PIN").into());
    let _ = session.login(UserType::User, Some(&pin));
    (ctx, session)
}

fn provider_message(err: &Error) -> String {
    match err {
        Error::Provider { message, .. } => message.clone(),
        other => panic!("expected a provider error, got {other}"),
    }
}

#[test]
fn the_full_hierarchy_runs_on_a_token_key_and_survives_reopening() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let label = unique("mk");
    let p: Arc<dyn MasterKeyProvider> = Arc::new(Pkcs11Provider::open(config(&label), true).unwrap());
    assert_eq!(p.key_spec().unwrap(), KeySpec::Aes256);
    assert!(p.key_id().contains(&label));
    let ring = Keyring::create(&dir.path().join("ks"), p, "hsm").unwrap();
    let db = ring.create_database("dev", &dir.path().join("deks")).unwrap();
    let keys = db.generate(4).unwrap();
    db.commit().unwrap();
    drop(db);
    drop(ring);
    // A fresh session finds the same key by label; the key never left the token.
    let p: Arc<dyn MasterKeyProvider> = Arc::new(Pkcs11Provider::open(config(&label), false).unwrap());
    let ring = Keyring::open(&dir.path().join("ks"), p).unwrap();
    let db = ring.open_database("dev", &dir.path().join("deks")).unwrap();
    for (id, k) in &keys {
        assert_eq!(db.data_key(*id).unwrap().expose_secret(), k.expose_secret());
    }
    assert_eq!(ring.info().unwrap().provider, "pkcs11");
}

#[test]
fn master_key_rotation_moves_between_a_key_file_and_the_token() {
    let _turn = turn();
    let dir = tempfile::tempdir().unwrap();
    let ks = dir.path().join("ks");
    let file: Arc<dyn MasterKeyProvider> = Arc::new(LocalKeyFile::create(&dir.path().join("mk"), None).unwrap());
    let ring = Keyring::create(&ks, file.clone(), "hsm").unwrap();
    let hsm: Arc<dyn MasterKeyProvider> = Arc::new(Pkcs11Provider::open(config(&unique("mk")), true).unwrap());
    ring.rotate_master_key(hsm.clone()).unwrap();
    drop(ring);
    assert!(matches!(Keyring::open(&ks, file), Err(Error::WrongMasterKey { .. })));
    let ring = Keyring::open(&ks, hsm).unwrap();
    // And on to a second token key (a new "version").
    let next: Arc<dyn MasterKeyProvider> = Arc::new(Pkcs11Provider::open(config(&unique("mk")), true).unwrap());
    ring.rotate_master_key(next.clone()).unwrap();
    drop(ring);
    Keyring::open(&ks, next).unwrap();
}

#[test]
fn the_token_itself_refuses_an_unwrap_under_another_context() {
    let _turn = turn();
    let p = Pkcs11Provider::open(config(&unique("mk")), true).unwrap();
    let a = EncryptionContext::new().with("cluster-id", "a").with("createtime", "t");
    let b = EncryptionContext::new().with("cluster-id", "b").with("createtime", "t");
    let wrapped = p.wrap(&[7u8; 32], &a).unwrap();
    assert_eq!(p.unwrap(&wrapped, &a).unwrap().as_slice(), &[7u8; 32]);
    // The keyring's own context check is bypassed here: this error comes from C_Decrypt.
    let err = p.unwrap(&wrapped, &b).unwrap_err();
    assert!(err.is_authentication(), "{err}");
    assert!(err.to_string().contains("the token refused it"), "{err}");
    let mut tampered = wrapped.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(p.unwrap(&tampered, &a).unwrap_err().is_authentication());
    assert!(p.unwrap(&wrapped[..10], &a).unwrap_err().is_authentication());
}

#[test]
fn missing_token_missing_key_missing_pin_and_missing_module_are_clear_errors() {
    let _turn = turn();
    let mut c = config(&unique("mk"));
    c.token_label = "no-such-token".into();
    let msg = provider_message(&Pkcs11Provider::open(c, true).unwrap_err());
    assert!(msg.contains("no initialised token labelled `no-such-token`"), "{msg}");

    let msg = provider_message(&Pkcs11Provider::open(config("no-such-key"), false).unwrap_err());
    assert!(msg.contains("no key labelled `no-such-key`"), "{msg}");

    let mut c = config("x");
    c.pin_env = "SEALSTORE_TEST_NO_SUCH_VARIABLE".into();
    let msg = provider_message(&Pkcs11Provider::open(c, false).unwrap_err());
    assert!(msg.contains("SEALSTORE_TEST_NO_SUCH_VARIABLE is not set"), "{msg}");

    let mut c = config("x");
    c.module = "/nonexistent/libpkcs11.so".into();
    let msg = provider_message(&Pkcs11Provider::open(c, false).unwrap_err());
    assert!(msg.contains("does not exist"), "{msg}");
}

#[test]
fn an_rsa_key_in_the_token_is_refused_as_master_key() {
    let _turn = turn();
    let label = unique("rsa");
    // Make an RSA key pair in the token with the plain PKCS#11 API.
    let (_ctx, session) = user_session();
    session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Encrypt(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    drop(session);

    let p: Arc<dyn MasterKeyProvider> = Arc::new(Pkcs11Provider::open(config(&label), false).unwrap());
    assert_eq!(p.key_spec().unwrap(), KeySpec::Rsa { bits: 2048 });
    let dir = tempfile::tempdir().unwrap();
    let err = Keyring::create(&dir.path().join("ks"), p, "hsm").unwrap_err();
    assert_eq!(
        err.to_string(),
        "master key must be a symmetric AES-256 key; got RSA (2048-bit, asymmetric)"
    );
}

#[test]
fn an_extractable_or_non_sensitive_aes_key_is_refused_as_master_key() {
    let _turn = turn();
    let (_ctx, session) = user_session();
    let mut labels = Vec::new();
    for (sensitive, extractable) in [(true, true), (false, false)] {
        let label = unique("leaky");
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Sensitive(sensitive),
                    Attribute::Extractable(extractable),
                ],
            )
            .unwrap();
        labels.push(label);
    }
    drop(session);
    for label in labels {
        let p: Arc<dyn MasterKeyProvider> = Arc::new(Pkcs11Provider::open(config(&label), false).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let err = Keyring::create(&dir.path().join("ks"), p, "hsm").unwrap_err();
        assert!(err.to_string().contains("can leave the token"), "{label}: {err}");
    }
}

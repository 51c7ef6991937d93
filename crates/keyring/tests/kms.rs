//! The KMS provider against a real KMS-API server: moto in server mode on loopback, installed and
//! started by `scripts/aws` (which prints the environment these tests read). Built only with
//! `--features kms`; without the environment they fail loudly instead of passing silently.
#![cfg(feature = "kms")]

use std::sync::Arc;

use aws_sdk_kms::types::{KeySpec as AwsKeySpec, KeyUsageType};
use sealstore_keyring::provider::{KmsConfig, KmsProvider, LocalKeyFile};
use sealstore_keyring::{EncryptionContext, Error, KeySpec, Keyring, MasterKeyProvider};

fn endpoint() -> String {
    std::env::var("SEALSTORE_TEST_KMS_ENDPOINT")
        .unwrap_or_else(|_| panic!("SEALSTORE_TEST_KMS_ENDPOINT is not set: run `eval \"$(scripts/aws)\"` first"))
}

/// Runs an admin call against the test server with the plain SDK.
fn admin<T>(f: impl AsyncFnOnce(aws_sdk_kms::Client) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .load()
            .await;
        f(aws_sdk_kms::Client::new(&config)).await
    })
}

fn create_key(spec: AwsKeySpec, usage: KeyUsageType) -> String {
    admin(async |c| {
        let out = c.create_key().key_spec(spec).key_usage(usage).send().await.unwrap();
        out.key_metadata().unwrap().key_id().to_owned()
    })
}

fn symmetric_key() -> String {
    create_key(AwsKeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt)
}

fn config(key_id: &str) -> KmsConfig {
    KmsConfig {
        key_id: key_id.to_owned(),
        endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
    }
}

fn provider_message(err: &Error) -> String {
    match err {
        Error::Provider { message, .. } => message.clone(),
        other => panic!("expected a provider error, got {other}"),
    }
}

#[test]
fn the_full_hierarchy_runs_on_a_kms_key_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = symmetric_key();
    let p: Arc<dyn MasterKeyProvider> = Arc::new(KmsProvider::open(config(&key)).unwrap());
    assert_eq!(p.key_spec().unwrap(), KeySpec::Aes256);
    assert!(p.key_id().starts_with("kms:arn:aws:kms:us-east-1:"), "{}", p.key_id());
    let ring = Keyring::create(&dir.path().join("ks"), p, "kms-test").unwrap();
    let db = ring.create_database("dev", &dir.path().join("deks")).unwrap();
    let keys = db.generate(3).unwrap();
    db.commit().unwrap();
    drop(db);
    drop(ring);
    let p: Arc<dyn MasterKeyProvider> = Arc::new(KmsProvider::open(config(&key)).unwrap());
    let ring = Keyring::open(&dir.path().join("ks"), p).unwrap();
    let db = ring.open_database("dev", &dir.path().join("deks")).unwrap();
    for (id, k) in &keys {
        assert_eq!(db.data_key(*id).unwrap().expose_secret(), k.expose_secret());
    }
    assert_eq!(ring.info().unwrap().provider, "kms");
}

#[test]
fn master_key_rotation_by_kms_key_rotation_and_by_switching_key_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ks = dir.path().join("ks");
    let file: Arc<dyn MasterKeyProvider> = Arc::new(LocalKeyFile::create(&dir.path().join("mk"), None).unwrap());
    let ring = Keyring::create(&ks, file, "kms-test").unwrap();
    let first = symmetric_key();
    let kms: Arc<dyn MasterKeyProvider> = Arc::new(KmsProvider::open(config(&first)).unwrap());
    ring.rotate_master_key(kms.clone()).unwrap();
    drop(ring);
    // The KMS rotates the key material behind the same key id: old wraps still open.
    admin(async |c| c.rotate_key_on_demand().key_id(&first).send().await.unwrap());
    let ring = Keyring::open(&ks, kms).unwrap();
    let second = symmetric_key();
    let next: Arc<dyn MasterKeyProvider> = Arc::new(KmsProvider::open(config(&second)).unwrap());
    ring.rotate_master_key(next.clone()).unwrap();
    drop(ring);
    Keyring::open(&ks, next).unwrap();
}

#[test]
fn the_kms_itself_refuses_an_unwrap_under_another_context() {
    let p = KmsProvider::open(config(&symmetric_key())).unwrap();
    let a = EncryptionContext::new().with("cluster-id", "a").with("createtime", "t");
    let b = EncryptionContext::new().with("cluster-id", "b").with("createtime", "t");
    let wrapped = p.wrap(&[9u8; 32], &a).unwrap();
    assert_eq!(p.unwrap(&wrapped, &a).unwrap().as_slice(), &[9u8; 32]);
    // The keyring's own context check is bypassed here: this refusal comes from the server.
    let err = p.unwrap(&wrapped, &b).unwrap_err();
    assert!(err.is_authentication(), "{err}");
    assert!(err.to_string().contains("the KMS refused it"), "{err}");
    let mut tampered = wrapped.clone();
    tampered[20] ^= 1;
    let err = p.unwrap(&tampered, &a).unwrap_err();
    assert!(err.is_authentication(), "{err}");
    // A blob from another key does not open under this one.
    let other = KmsProvider::open(config(&symmetric_key())).unwrap();
    let foreign = other.wrap(&[9u8; 32], &a).unwrap();
    assert!(p.unwrap(&foreign, &a).unwrap_err().is_authentication());
}

#[test]
fn asymmetric_and_disabled_keys_are_refused() {
    let rsa = create_key(AwsKeySpec::Rsa2048, KeyUsageType::EncryptDecrypt);
    let p: Arc<dyn MasterKeyProvider> = Arc::new(KmsProvider::open(config(&rsa)).unwrap());
    assert_eq!(p.key_spec().unwrap(), KeySpec::Rsa { bits: 2048 });
    let dir = tempfile::tempdir().unwrap();
    let err = Keyring::create(&dir.path().join("ks"), p, "kms-test").unwrap_err();
    assert_eq!(
        err.to_string(),
        "master key must be a symmetric AES-256 key; got RSA (2048-bit, asymmetric)"
    );
    let disabled = symmetric_key();
    admin(async |c| c.disable_key().key_id(&disabled).send().await.unwrap());
    let msg = provider_message(&KmsProvider::open(config(&disabled)).unwrap_err());
    assert!(msg.contains("is not enabled"), "{msg}");
}

#[test]
fn missing_key_and_unreachable_endpoint_are_clear_errors() {
    let msg = provider_message(&KmsProvider::open(config("alias/no-such-key")).unwrap_err());
    assert!(msg.contains("DescribeKey alias/no-such-key"), "{msg}");
    assert!(msg.contains("NotFoundException"), "{msg}");
    let mut c = config(&symmetric_key());
    c.endpoint = Some("http://127.0.0.1:9".into());
    let started = std::time::Instant::now();
    let msg = provider_message(&KmsProvider::open(c).unwrap_err());
    assert!(msg.contains("http://127.0.0.1:9"), "{msg}");
    assert!(started.elapsed().as_secs() < 60, "retries must be bounded");
}

//! A wrong PIN against the real SoftHSM2 token. In its own test binary (its own process): PKCS#11
//! login state is shared by every session of a process, so after any successful login the token
//! would not check a PIN again.
#![cfg(feature = "pkcs11")]

use sealstore_keyring::Error;
use sealstore_keyring::provider::{Pkcs11Config, Pkcs11Provider};

#[test]
fn a_wrong_pin_is_a_clear_error() {
    let env =
        |n: &str| std::env::var(n).unwrap_or_else(|_| panic!("{n} is not set: run `eval \"$(scripts/softhsm)\"`"));
    let config = Pkcs11Config {
        module: env("SEALSTORE_TEST_PKCS11_MODULE").into(),
        token_label: env("SEALSTORE_TEST_PKCS11_TOKEN"),
        key_label: "any".into(),
        pin_env: "SEALSTORE_TEST_PKCS11_WRONG_PIN".into(),
    };
    env("SEALSTORE_TEST_PKCS11_WRONG_PIN");
    match Pkcs11Provider::open(config, true) {
        Err(Error::Provider { message, .. }) => {
            assert!(message.contains("wrong PIN for token"), "{message}")
        }
        other => panic!("expected a wrong-PIN error, got {other:?}"),
    }
}

//! The master key in a PKCS#11 token (an HSM; SoftHSM2 in tests), through `cryptoki`.
//!
//! The AES-256 key never leaves the token: the cluster key is encrypted *by the token* with
//! `CKM_AES_GCM`, a fresh 96-bit IV from the OS RNG and the encryption context as AAD, so the
//! token itself refuses an unwrap under another context. (`CKM_AES_KEY_WRAP_PAD` would wrap key
//! objects but takes no AAD, and SoftHSM2 does not support GCM in `C_WrapKey`; the cluster key is
//! data to the token, never a token object.) Wrapped format: `0x02 | iv[12] | ciphertext | tag[16]`.
//!
//! Configured by module path, token label and key label; the PIN comes from an environment
//! variable only.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::{KeySpec, MasterKeyProvider};
use crate::{EncryptionContext, Error, Result};

const WRAP_VERSION: u8 = 2;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"sealstore/master-key-wrap/pkcs11/v1";
const KIND: &str = "pkcs11";

/// Where the master key lives in a PKCS#11 token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Label of the token (slot ids are not stable; labels are).
    pub token_label: String,
    /// Label of the AES-256 secret key object.
    pub key_label: String,
    /// Environment variable holding the user PIN (never a file or an argument).
    pub pin_env: String,
}

/// A master key held by a PKCS#11 token.
pub struct Pkcs11Provider {
    config: Pkcs11Config,
    /// Every call into the module holds this lock (shared by all providers of one module): some
    /// modules, SoftHSM2 among them, misbehave when sessions are opened, used and closed from
    /// several threads at once, and the master key is used rarely enough not to need more.
    module_lock: Arc<Mutex<()>>,
    session: Mutex<Option<Session>>,
    key: ObjectHandle,
    spec: KeySpec,
}

impl std::fmt::Debug for Pkcs11Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Provider")
            .field("module", &self.config.module)
            .field("token", &self.config.token_label)
            .field("key", &self.config.key_label)
            .finish()
    }
}

fn provider_error(message: impl Into<String>) -> Error {
    Error::Provider {
        provider: KIND.into(),
        message: message.into(),
    }
}

/// One initialised context per module for the whole process (`C_Initialize` may run only once),
/// with the lock that serialises calls into that module.
fn context(module: &Path) -> Result<(Pkcs11, Arc<Mutex<()>>)> {
    type Contexts = HashMap<PathBuf, (Pkcs11, Arc<Mutex<()>>)>;
    static CONTEXTS: OnceLock<Mutex<Contexts>> = OnceLock::new();
    let mut contexts = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(ctx) = contexts.get(module) {
        return Ok(ctx.clone());
    }
    if !module.exists() {
        return Err(provider_error(format!(
            "PKCS#11 module {} does not exist",
            module.display()
        )));
    }
    let ctx = Pkcs11::new(module)
        .map_err(|e| provider_error(format!("cannot load PKCS#11 module {}: {e}", module.display())))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(provider_error(format!("C_Initialize failed: {e}"))),
    }
    let entry = (ctx, Arc::new(Mutex::new(())));
    contexts.insert(module.to_owned(), entry.clone());
    Ok(entry)
}

fn label_matches(attrs: &[Attribute], class: ObjectClass) -> bool {
    attrs.iter().any(|a| matches!(a, Attribute::Class(c) if *c == class))
}

impl Pkcs11Provider {
    /// Logs in to the token and finds the key (creating an AES-256 key with that label when
    /// `create_key` and none exists). A key that is not a symmetric AES-256 encrypt/decrypt key
    /// is reported by [`MasterKeyProvider::key_spec`] and refused by the keyring.
    pub fn open(config: Pkcs11Config, create_key: bool) -> Result<Self> {
        let pin = std::env::var(&config.pin_env)
            .map_err(|_| provider_error(format!("the PIN environment variable {} is not set", config.pin_env)))?;
        let pin = AuthPin::new(pin.into());
        let (ctx, module_lock) = context(&config.module)?;
        let _calls = module_lock.lock().unwrap_or_else(|p| p.into_inner());
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(|e| provider_error(format!("listing slots: {e}")))?;
        let slot = slots
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|t| t.label().trim_end() == config.token_label)
            })
            .ok_or_else(|| {
                provider_error(format!(
                    "no initialised token labelled `{}` in {}",
                    config.token_label,
                    config.module.display()
                ))
            })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| provider_error(format!("opening a session on token `{}`: {e}", config.token_label)))?;
        // Login state is per application and token: if another provider of this process is
        // logged in already, the token does not check the PIN again.
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(P11Error::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(provider_error(format!(
                    "wrong PIN for token `{}` (from ${})",
                    config.token_label, config.pin_env
                )));
            }
            Err(e) => return Err(provider_error(format!("login to token `{}`: {e}", config.token_label))),
        }
        let label = Attribute::Label(config.key_label.as_bytes().to_vec());
        let found = session
            .find_objects(std::slice::from_ref(&label))
            .map_err(|e| provider_error(format!("searching for key `{}`: {e}", config.key_label)))?;
        let key = match found.as_slice() {
            [] if create_key => session
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::AES),
                        Attribute::ValueLen(32.into()),
                        Attribute::Token(true),
                        Attribute::Private(true),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Encrypt(true),
                        Attribute::Decrypt(true),
                        label,
                    ],
                )
                .map_err(|e| provider_error(format!("creating AES-256 key `{}`: {e}", config.key_label)))?,
            [] => {
                return Err(provider_error(format!(
                    "no key labelled `{}` in token `{}` (pass --pkcs11-create-key to create one)",
                    config.key_label, config.token_label
                )));
            }
            // A key pair shares one label between its halves: describe the private one.
            many => {
                let private = many.iter().copied().find(|h| {
                    session
                        .get_attributes(*h, &[AttributeType::Class])
                        .is_ok_and(|a| label_matches(&a, ObjectClass::PRIVATE_KEY))
                });
                private.unwrap_or(many[0])
            }
        };
        let spec = describe(&session, key)?;
        drop(_calls);
        Ok(Self {
            config,
            module_lock,
            session: Mutex::new(Some(session)),
            key,
            spec,
        })
    }

    /// Runs `f` on the session with the module lock held.
    fn with_session<T>(&self, f: impl FnOnce(&Session) -> T) -> T {
        let _calls = self.module_lock.lock().unwrap_or_else(|p| p.into_inner());
        let session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        f(session.as_ref().expect("the session lives as long as the provider"))
    }
}

impl Drop for Pkcs11Provider {
    fn drop(&mut self) {
        // C_CloseSession, under the module lock like every other call.
        let _calls = self.module_lock.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.session.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

/// What kind of key the object is, from its attributes.
fn describe(session: &Session, key: ObjectHandle) -> Result<KeySpec> {
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Class,
                AttributeType::KeyType,
                AttributeType::ValueLen,
                AttributeType::ModulusBits,
                AttributeType::Modulus,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::Sensitive,
                AttributeType::Extractable,
            ],
        )
        .map_err(|e| provider_error(format!("reading key attributes: {e}")))?;
    let mut class = None;
    let mut key_type = None;
    let (mut len, mut modulus_bits, mut encrypt, mut decrypt) = (0usize, 0usize, false, false);
    // A master key must never leave the token: sensitive and not extractable (unknown = unsafe).
    let (mut sensitive, mut extractable) = (false, true);
    for a in attrs {
        match a {
            Attribute::Class(c) => class = Some(c),
            Attribute::KeyType(k) => key_type = Some(k),
            Attribute::ValueLen(l) => len = usize::from(l),
            Attribute::ModulusBits(b) => modulus_bits = modulus_bits.max(usize::from(b)),
            // A private key has no CKA_MODULUS_BITS; its modulus gives the size.
            Attribute::Modulus(m) => modulus_bits = modulus_bits.max(m.len() * 8),
            Attribute::Encrypt(e) => encrypt = e,
            Attribute::Decrypt(d) => decrypt = d,
            Attribute::Sensitive(v) => sensitive = v,
            Attribute::Extractable(v) => extractable = v,
            _ => {}
        }
    }
    Ok(match (class, key_type) {
        (_, Some(KeyType::RSA)) => KeySpec::Rsa {
            bits: modulus_bits as u32,
        },
        (_, Some(KeyType::EC)) => KeySpec::Ec {
            curve: "(from token)".into(),
        },
        (Some(ObjectClass::SECRET_KEY), Some(KeyType::AES)) if len == 32 && (!sensitive || extractable) => {
            KeySpec::Other("AES-256 key that can leave the token (needs CKA_SENSITIVE and not CKA_EXTRACTABLE)".into())
        }
        (Some(ObjectClass::SECRET_KEY), Some(KeyType::AES)) if len == 32 && encrypt && decrypt => KeySpec::Aes256,
        (Some(ObjectClass::SECRET_KEY), Some(KeyType::AES)) if len == 32 => {
            KeySpec::Other("AES-256 without CKA_ENCRYPT and CKA_DECRYPT".into())
        }
        (Some(ObjectClass::SECRET_KEY), Some(KeyType::AES)) => KeySpec::Aes { bits: (len * 8) as u32 },
        (c, k) => KeySpec::Other(format!("PKCS#11 object of class {c:?}, key type {k:?}")),
    })
}

fn aad(context: &EncryptionContext) -> Vec<u8> {
    [AAD_LABEL, &context.canonical_bytes()].concat()
}

impl MasterKeyProvider for Pkcs11Provider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn key_id(&self) -> String {
        format!("pkcs11:token={};key={}", self.config.token_label, self.config.key_label)
    }

    fn key_spec(&self) -> Result<KeySpec> {
        Ok(self.spec.clone())
    }

    fn wrap(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>> {
        let mut iv = [0u8; IV_LEN];
        crate::fill_random(&mut iv)?;
        let aad = aad(context);
        let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(|e| provider_error(e.to_string()))?;
        let sealed = self
            .with_session(|s| s.encrypt(&Mechanism::AesGcm(params), self.key, plaintext))
            .map_err(|e| {
                provider_error(format!(
                    "C_Encrypt (AES-GCM) in token `{}`: {e}",
                    self.config.token_label
                ))
            })?;
        let mut out = Vec::with_capacity(1 + IV_LEN + sealed.len());
        out.push(WRAP_VERSION);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], context: &EncryptionContext) -> Result<Zeroizing<Vec<u8>>> {
        let what = "cluster key wrapped under the PKCS#11 master key (the token refused it: wrong key, wrong encryption context, or tampered)";
        if wrapped.len() < 1 + IV_LEN + TAG_LEN || wrapped[0] != WRAP_VERSION {
            return Err(Error::auth(what));
        }
        let mut iv: [u8; IV_LEN] = wrapped[1..1 + IV_LEN].try_into().expect("length checked");
        let aad = aad(context);
        let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(|e| provider_error(e.to_string()))?;
        match self.with_session(|s| s.decrypt(&Mechanism::AesGcm(params), self.key, &wrapped[1 + IV_LEN..])) {
            Ok(plain) => Ok(Zeroizing::new(plain)),
            // SoftHSM2 reports a failed tag as CKR_GENERAL_ERROR; tokens differ, so every
            // decryption failure of well-formed input is an authentication failure.
            Err(P11Error::Pkcs11(
                RvError::GeneralError | RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange,
                _,
            )) => Err(Error::auth(what)),
            Err(e) => Err(provider_error(format!(
                "C_Decrypt (AES-GCM) in token `{}`: {e}",
                self.config.token_label
            ))),
        }
    }
}

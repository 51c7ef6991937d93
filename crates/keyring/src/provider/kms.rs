//! The master key in a KMS, over the AWS KMS API (`aws-sdk-kms`; any KMS-compatible endpoint).
//!
//! The cluster key is wrapped with `Encrypt` and unwrapped with `Decrypt`, each call carrying the
//! encryption context (`cluster-id`, `createtime`, `generation`) so the KMS refuses another
//! context. `DescribeKey` is checked when the provider opens: only an enabled `SYMMETRIC_DEFAULT`
//! `ENCRYPT_DECRYPT` key is accepted (some KMS-compatible servers do not enforce key state or
//! spec themselves). Transient errors are retried with exponential backoff by the SDK's standard
//! retry mode; credentials come from the standard AWS provider chain (environment, profile,
//! instance metadata …). Wrapped format: `0x03 | KMS ciphertext blob`.
use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec as AwsKeySpec, KeyState, KeyUsageType};
use zeroize::Zeroizing;

use super::{KeySpec, MasterKeyProvider};
use crate::{EncryptionContext, Error, Result};

const WRAP_VERSION: u8 = 3;
const KIND: &str = "kms";
/// Attempts per call, the first included (standard mode: exponential backoff with jitter).
const MAX_ATTEMPTS: u32 = 4;

/// Where the master key lives in a KMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsConfig {
    /// Key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    /// Endpoint URL of a KMS-compatible service (default: the AWS endpoint of the region).
    pub endpoint: Option<String>,
    /// Region (default: from the AWS configuration chain).
    pub region: Option<String>,
}

/// A master key held by a KMS.
pub struct KmsProvider {
    config: KmsConfig,
    client: aws_sdk_kms::Client,
    runtime: tokio::runtime::Runtime,
    arn: String,
    spec: KeySpec,
}

impl std::fmt::Debug for KmsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsProvider")
            .field("key", &self.arn)
            .field("endpoint", &self.config.endpoint)
            .finish()
    }
}

fn provider_error(message: impl Into<String>) -> Error {
    Error::Provider {
        provider: KIND.into(),
        message: message.into(),
    }
}

/// One readable line for an SDK error: the service's error code and message, or the transport
/// failure (connection refused, timeout …) with its causes.
fn describe<E, R>(e: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("service error"),
            service.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(e).to_string(),
    }
}

fn context_map(context: &EncryptionContext) -> HashMap<String, String> {
    context.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

impl KmsProvider {
    /// Connects (the SDK's credential and region chains), describes the key and checks it.
    pub fn open(config: KmsConfig) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| provider_error(format!("starting the async runtime: {e}")))?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .build(),
            );
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk_config = runtime.block_on(loader.load());
        if sdk_config.region().is_none() {
            return Err(provider_error(
                "no AWS region configured (pass --kms-region or set AWS_REGION)",
            ));
        }
        let client = aws_sdk_kms::Client::new(&sdk_config);
        let described = runtime
            .block_on(client.describe_key().key_id(&config.key_id).send())
            .map_err(|e| {
                provider_error(format!(
                    "DescribeKey {} at {}: {}",
                    config.key_id,
                    config.endpoint.as_deref().unwrap_or("the AWS endpoint"),
                    describe(&e)
                ))
            })?;
        let meta = described
            .key_metadata()
            .ok_or_else(|| provider_error("DescribeKey returned no key metadata"))?;
        if !meta.enabled() || meta.key_state() != Some(&KeyState::Enabled) {
            return Err(provider_error(format!(
                "KMS key {} is not enabled (state {:?})",
                meta.key_id(),
                meta.key_state().map(|s| s.as_str())
            )));
        }
        let spec = match meta.key_spec() {
            Some(AwsKeySpec::SymmetricDefault) if meta.key_usage() == Some(&KeyUsageType::EncryptDecrypt) => {
                KeySpec::Aes256
            }
            Some(AwsKeySpec::SymmetricDefault) => KeySpec::Other(format!(
                "a symmetric KMS key for {:?}, not ENCRYPT_DECRYPT",
                meta.key_usage().map(|u| u.as_str())
            )),
            Some(AwsKeySpec::Rsa2048) => KeySpec::Rsa { bits: 2048 },
            Some(AwsKeySpec::Rsa3072) => KeySpec::Rsa { bits: 3072 },
            Some(AwsKeySpec::Rsa4096) => KeySpec::Rsa { bits: 4096 },
            Some(other) if other.as_str().starts_with("ECC") => KeySpec::Ec {
                curve: other.as_str().to_owned(),
            },
            Some(other) => KeySpec::Other(format!("KMS key spec {}", other.as_str())),
            None => KeySpec::Other("a KMS key without a key spec".into()),
        };
        let arn = meta.arn().unwrap_or(meta.key_id()).to_owned();
        Ok(Self {
            config,
            client,
            runtime,
            arn,
            spec,
        })
    }
}

impl MasterKeyProvider for KmsProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn key_id(&self) -> String {
        format!("kms:{}", self.arn)
    }

    fn key_spec(&self) -> Result<KeySpec> {
        Ok(self.spec.clone())
    }

    fn wrap(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .encrypt()
                    .key_id(&self.arn)
                    .plaintext(Blob::new(plaintext))
                    .set_encryption_context(Some(context_map(context)))
                    .send(),
            )
            .map_err(|e| provider_error(format!("Encrypt under {}: {}", self.arn, describe(&e))))?;
        let blob = out
            .ciphertext_blob()
            .ok_or_else(|| provider_error("Encrypt returned no ciphertext"))?;
        let mut wrapped = Vec::with_capacity(1 + blob.as_ref().len());
        wrapped.push(WRAP_VERSION);
        wrapped.extend_from_slice(blob.as_ref());
        Ok(wrapped)
    }

    fn unwrap(&self, wrapped: &[u8], context: &EncryptionContext) -> Result<Zeroizing<Vec<u8>>> {
        let what = "cluster key wrapped under the KMS master key (the KMS refused it: wrong key, wrong encryption context, or tampered)";
        if wrapped.len() < 2 || wrapped[0] != WRAP_VERSION {
            return Err(Error::auth(what));
        }
        let result = self.runtime.block_on(
            self.client
                .decrypt()
                .key_id(&self.arn)
                .ciphertext_blob(Blob::new(&wrapped[1..]))
                .set_encryption_context(Some(context_map(context)))
                .send(),
        );
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                return Err(match e.as_service_error() {
                    Some(DecryptError::InvalidCiphertextException(_) | DecryptError::IncorrectKeyException(_)) => {
                        Error::auth(what)
                    }
                    // A blob whose embedded key reference was altered names a key this caller
                    // may not use: still a refused blob.
                    Some(err) if err.code() == Some("AccessDeniedException") => Error::auth(format!(
                        "{what}; the KMS answered AccessDenied (the blob names another key, or these credentials may not decrypt with it)"
                    )),
                    _ => provider_error(format!("Decrypt under {}: {}", self.arn, describe(&e))),
                });
            }
        };
        // The KMS must say the key we asked for decrypted it.
        if out.key_id.as_deref().is_some_and(|k| k != self.arn) {
            return Err(Error::auth(what));
        }
        // Take the SDK's buffer rather than copying it, so the one copy we hold is wiped on drop.
        let plain = out
            .plaintext
            .ok_or_else(|| provider_error("Decrypt returned no plaintext"))?;
        Ok(Zeroizing::new(plain.into_inner()))
    }
}

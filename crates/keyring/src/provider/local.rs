//! The embedded default provider: a 32-byte master key in a local file with mode 0600, optionally
//! protected by a passphrase (Argon2id-derived key-encryption key).
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use super::{KeySpec, MasterKeyProvider, fingerprint, unwrap_with, wrap_with};
use crate::aead::{AeadKey, NONCE_LEN, TAG_LEN, default_backend};
use crate::codec::{Reader, Writer};
use crate::{EncryptionContext, Error, MasterKeyMaterial, Result, fsutil};

fn o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Magic of a passphrase-protected key file.
const PASSPHRASE_MAGIC: &[u8; 8] = b"SSMKPW01";
const SALT_LEN: usize = 16;
/// Argon2id parameters for new passphrase files (OWASP's recommended minimum).
const ARGON2_M_KIB: u32 = 19 * 1024;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;
/// Argon2id cost limits accepted when opening (so a hostile file cannot make us allocate GiBs).
const ARGON2_MAX_M_KIB: u32 = 1024 * 1024;
const ARGON2_MAX_T: u32 = 16;

/// A master key held in a local file.
pub struct LocalKeyFile {
    path: PathBuf,
    key: Box<dyn AeadKey>,
    id: String,
}

impl std::fmt::Debug for LocalKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyFile")
            .field("path", &self.path)
            .field("id", &self.id)
            .finish()
    }
}

impl LocalKeyFile {
    /// Creates a new random master key file (mode 0600). Fails if the file exists.
    pub fn create(path: &Path, passphrase: Option<&str>) -> Result<Self> {
        let material = MasterKeyMaterial::generate()?;
        let bytes = match passphrase {
            None => Zeroizing::new(material.expose_secret().to_vec()),
            Some(p) => Zeroizing::new(seal_with_passphrase(&material, p)?),
        };
        fsutil::write_new(path, &bytes, 0o600)?;
        Ok(Self::from_material(path, &material))
    }

    /// Opens an existing key file, refusing one that is missing, group/world readable,
    /// of the wrong size, or (passphrase mode) opened with the wrong passphrase.
    pub fn open(path: &Path, passphrase: Option<&str>) -> Result<Self> {
        // The last component is opened without following a link; the file must be a regular
        // file of ours that nobody else can read.
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(o_nofollow())
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::KeyFileMissing { path: path.to_owned() });
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(Error::UnsafeFile {
                    path: path.to_owned(),
                    reason: "a master key file must not be a symbolic link".into(),
                });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.file_type().is_file() {
            return Err(Error::UnsafeFile {
                path: path.to_owned(),
                reason: "a master key file must be a regular file".into(),
            });
        }
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(Error::UnsafeFile {
                path: path.to_owned(),
                reason: format!("the master key file is owned by uid {}, not by this user", meta.uid()),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyFileInsecure {
                path: path.to_owned(),
                mode,
            });
        }
        let mut bytes = Zeroizing::new(Vec::new());
        std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| Error::io(path, e))?;
        let material = if bytes.starts_with(PASSPHRASE_MAGIC) {
            let passphrase = passphrase.ok_or_else(|| Error::PassphraseRequired { path: path.to_owned() })?;
            open_with_passphrase(&bytes, passphrase, path)?
        } else {
            MasterKeyMaterial::from_slice(&bytes).ok_or(Error::KeyFileSize {
                path: path.to_owned(),
                len: bytes.len() as u64,
            })?
        };
        Ok(Self::from_material(path, &material))
    }

    /// Opens the file if it exists, else creates it.
    pub fn open_or_create(path: &Path, passphrase: Option<&str>) -> Result<Self> {
        if fsutil::exists(path) {
            Self::open(path, passphrase)
        } else {
            Self::create(path, passphrase)
        }
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn from_material(path: &Path, material: &MasterKeyMaterial) -> Self {
        Self {
            path: path.to_owned(),
            key: default_backend().key(material.expose_secret()),
            id: format!(
                "local:{}",
                fingerprint("sealstore local master key", material.expose_secret())
            ),
        }
    }
}

impl MasterKeyProvider for LocalKeyFile {
    fn kind(&self) -> &'static str {
        "local-key-file"
    }
    fn key_id(&self) -> String {
        self.id.clone()
    }
    fn key_spec(&self) -> Result<KeySpec> {
        Ok(KeySpec::Aes256)
    }
    fn wrap(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>> {
        wrap_with(self.key.as_ref(), plaintext, context)
    }
    fn unwrap(&self, wrapped: &[u8], context: &EncryptionContext) -> Result<Zeroizing<Vec<u8>>> {
        unwrap_with(self.key.as_ref(), wrapped, context)
    }
}

fn derive_kek(passphrase: &str, salt: &[u8], m: u32, t: u32, p: u32) -> Result<Box<dyn AeadKey>> {
    let params = Params::new(m, t, p, Some(32)).map_err(|e| Error::Provider {
        provider: "local-key-file".into(),
        message: format!("bad Argon2id parameters: {e}"),
    })?;
    let mut kek = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, kek.as_mut())
        .map_err(|e| Error::Provider {
            provider: "local-key-file".into(),
            message: format!("Argon2id failed: {e}"),
        })?;
    Ok(default_backend().key(&kek))
}

/// Passphrase file: magic(8) | m_kib u32 | t u32 | p u32 | salt(16) | nonce(12) | ct(32) | tag(16);
/// everything before the nonce is the AAD.
fn seal_with_passphrase(material: &MasterKeyMaterial, passphrase: &str) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT_LEN];
    crate::fill_random(&mut salt)?;
    let mut nonce = [0u8; NONCE_LEN];
    crate::fill_random(&mut nonce)?;
    let mut w = Writer::new();
    w.bytes(PASSPHRASE_MAGIC)
        .u32(ARGON2_M_KIB)
        .u32(ARGON2_T)
        .u32(ARGON2_P)
        .bytes(&salt);
    let header_len = w.buf.len();
    let kek = derive_kek(passphrase, &salt, ARGON2_M_KIB, ARGON2_T, ARGON2_P)?;
    let mut ct = Zeroizing::new(material.expose_secret().to_vec());
    let tag = kek
        .seal_in_place(&nonce, &w.buf[..header_len], &mut ct)
        .map_err(|_| Error::auth("master key file"))?;
    w.bytes(&nonce).bytes(&ct).bytes(&tag);
    Ok(w.buf.clone())
}

fn open_with_passphrase(bytes: &[u8], passphrase: &str, path: &Path) -> Result<MasterKeyMaterial> {
    let corrupt = |off: usize, why: &str| Error::corrupt(path, off as u64, why);
    let mut r = Reader::new(bytes);
    r.take(PASSPHRASE_MAGIC.len())
        .map_err(|e| corrupt(e.offset as usize, e.reason))?;
    let (m, t, p) = (
        r.u32().map_err(|e| corrupt(e.offset as usize, e.reason))?,
        r.u32().map_err(|e| corrupt(e.offset as usize, e.reason))?,
        r.u32().map_err(|e| corrupt(e.offset as usize, e.reason))?,
    );
    if m > ARGON2_MAX_M_KIB || t > ARGON2_MAX_T || p == 0 || p > 16 {
        return Err(corrupt(8, "Argon2id parameters out of range"));
    }
    let salt = r
        .array::<SALT_LEN>()
        .map_err(|e| corrupt(e.offset as usize, e.reason))?;
    let header_len = r.position();
    let nonce = r
        .array::<NONCE_LEN>()
        .map_err(|e| corrupt(e.offset as usize, e.reason))?;
    let mut ct = Zeroizing::new(r.take(32).map_err(|e| corrupt(e.offset as usize, e.reason))?.to_vec());
    let tag = r.array::<TAG_LEN>().map_err(|e| corrupt(e.offset as usize, e.reason))?;
    if r.remaining() != 0 {
        return Err(corrupt(r.position(), "trailing bytes"));
    }
    let kek = derive_kek(passphrase, &salt, m, t, p)?;
    kek.open_in_place(&nonce, &bytes[..header_len], &mut ct, &tag)
        .map_err(|_| Error::WrongPassphrase { path: path.to_owned() })?;
    Ok(MasterKeyMaterial::from_slice(&ct).expect("32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn ctx() -> EncryptionContext {
        EncryptionContext::new().with("cluster-id", "c").with("createtime", "t")
    }

    #[test]
    fn create_then_open_round_trips_and_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mk");
        let a = LocalKeyFile::create(&path, None).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&path).unwrap().len(), 32);
        let wrapped = a.wrap(b"secret", &ctx()).unwrap();
        let b = LocalKeyFile::open(&path, None).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert_eq!(&b.unwrap(&wrapped, &ctx()).unwrap()[..], b"secret");
        assert!(matches!(
            LocalKeyFile::create(&path, None),
            Err(Error::AlreadyExists { .. })
        ));
    }

    #[test]
    fn refuses_missing_readable_and_wrong_size_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            LocalKeyFile::open(&missing, None),
            Err(Error::KeyFileMissing { .. })
        ));

        let open = dir.path().join("open");
        fs::write(&open, [1u8; 32]).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            LocalKeyFile::open(&open, None),
            Err(Error::KeyFileInsecure { mode: 0o644, .. })
        ));

        let short = dir.path().join("short");
        fs::write(&short, [1u8; 31]).unwrap();
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            LocalKeyFile::open(&short, None),
            Err(Error::KeyFileSize { len: 31, .. })
        ));
    }

    #[test]
    fn passphrase_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mk");
        let a = LocalKeyFile::create(&path, Some("correct horse")).unwrap();
        let raw = fs::read(&path).unwrap();
        assert!(raw.starts_with(PASSPHRASE_MAGIC));
        assert!(matches!(
            LocalKeyFile::open(&path, None),
            Err(Error::PassphraseRequired { .. })
        ));
        assert!(matches!(
            LocalKeyFile::open(&path, Some("wrong")),
            Err(Error::WrongPassphrase { .. })
        ));
        let b = LocalKeyFile::open(&path, Some("correct horse")).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        // A tampered header (Argon2 parameters are AAD) no longer opens.
        let mut tampered = raw.clone();
        tampered[8 + 12 + 3] ^= 1;
        fs::write(&path, &tampered).unwrap();
        assert!(LocalKeyFile::open(&path, Some("correct horse")).is_err());
    }

    #[test]
    fn wrap_is_bound_to_context_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalKeyFile::create(&dir.path().join("a"), None).unwrap();
        let b = LocalKeyFile::create(&dir.path().join("b"), None).unwrap();
        let wrapped = a.wrap(&[5u8; 32], &ctx()).unwrap();
        assert!(
            a.unwrap(&wrapped, &ctx().with("createtime", "other"))
                .unwrap_err()
                .is_authentication()
        );
        assert!(b.unwrap(&wrapped, &ctx()).unwrap_err().is_authentication());
        for i in 0..wrapped.len() {
            let mut w = wrapped.clone();
            w[i] ^= 0x04;
            assert!(a.unwrap(&w, &ctx()).is_err(), "flip at {i} undetected");
        }
    }
}

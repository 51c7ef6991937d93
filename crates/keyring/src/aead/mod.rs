//! AES-256-GCM, behind one small trait so every tier (and the block store) seals the same way.
//!
//! Two backends, chosen by cargo feature: `aws-lc` (aws-lc-rs, the default and fastest here) and
//! `rustcrypto` (RustCrypto `aes-gcm`, pure Rust). Both produce identical bytes.

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "rustcrypto")]
mod rustcrypto;

#[cfg(not(any(feature = "aws-lc", feature = "rustcrypto")))]
compile_error!("enable at least one AES-GCM backend: feature `aws-lc` or `rustcrypto`");

/// AES-256 key length in bytes.
pub const KEY_LEN: usize = 32;
/// GCM nonce length in bytes (96 bits).
pub const NONCE_LEN: usize = 12;
/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;

/// A 96-bit GCM nonce.
pub type Nonce = [u8; NONCE_LEN];
/// A 128-bit GCM authentication tag.
pub type Tag = [u8; TAG_LEN];

/// The tag did not verify: the ciphertext, AAD, nonce or key is not the one sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailed;

/// A source of AES-256-GCM keys.
pub trait AeadBackend: Send + Sync + 'static {
    /// Short name, e.g. `aws-lc-rs`.
    fn name(&self) -> &'static str;
    /// Prepares the key schedule for `key`. The returned key zeroizes its schedule on drop.
    fn key(&self, key: &[u8; KEY_LEN]) -> Box<dyn AeadKey>;
}

/// A prepared AES-256-GCM key that seals and opens in place with a detached tag.
pub trait AeadKey: Send + Sync {
    /// Encrypts `buf` in place and returns the tag over (`aad`, ciphertext).
    fn seal_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8]) -> Result<Tag, AuthFailed>;
    /// Verifies `tag` and decrypts `buf` in place. On failure `buf` holds no plaintext
    /// that may be used (it is zeroed).
    fn open_in_place(&self, nonce: &Nonce, aad: &[u8], buf: &mut [u8], tag: &Tag) -> Result<(), AuthFailed>;
    /// Verifies `tag` and decrypts `ciphertext` into `out` (same length), reading the input once
    /// (e.g. straight from a memory map). On failure `out` is zeroed.
    fn open_to(
        &self,
        nonce: &Nonce,
        aad: &[u8],
        ciphertext: &[u8],
        tag: &Tag,
        out: &mut [u8],
    ) -> Result<(), AuthFailed>;
}

/// The default backend: aws-lc-rs when compiled in, else RustCrypto.
pub fn default_backend() -> &'static dyn AeadBackend {
    #[cfg(feature = "aws-lc")]
    {
        &aws_lc::AwsLc
    }
    #[cfg(not(feature = "aws-lc"))]
    {
        &rustcrypto::RustCrypto
    }
}

/// Single-thread AES-256-GCM seal and open speed of `backend` over a 1 MiB buffer for about
/// `seconds`, in GB/s (the open always runs on real ciphertext: each iteration seals, then
/// opens what it sealed). For the demo's and the bench's reports.
pub fn throughput(backend: &dyn AeadBackend, seconds: f64) -> (f64, f64) {
    let key = backend.key(&[0x5a; KEY_LEN]);
    let nonce = [7u8; NONCE_LEN];
    let mut buf = vec![0x42u8; 1 << 20];
    let (mut sealed, mut opened) = (0.0f64, 0.0f64);
    let mut n = 0u32;
    let start = std::time::Instant::now();
    while start.elapsed().as_secs_f64() < seconds || n < 3 {
        let t = std::time::Instant::now();
        let Ok(tag) = key.seal_in_place(&nonce, b"aad", &mut buf) else {
            return (0.0, 0.0);
        };
        sealed += t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        if key.open_in_place(&nonce, b"aad", &mut buf, &tag).is_err() {
            return (0.0, 0.0);
        }
        opened += t.elapsed().as_secs_f64();
        n += 1;
    }
    let gb = f64::from(n) * (1 << 20) as f64 / 1e9;
    (gb / sealed, gb / opened)
}

/// Every backend compiled into this build.
#[allow(unused_mut, clippy::vec_init_then_push)] // the pushes are feature-gated
pub fn backends() -> Vec<&'static dyn AeadBackend> {
    let mut all: Vec<&'static dyn AeadBackend> = Vec::new();
    #[cfg(feature = "aws-lc")]
    all.push(&aws_lc::AwsLc);
    #[cfg(feature = "rustcrypto")]
    all.push(&rustcrypto::RustCrypto);
    all
}

/// Looks a backend up by its name.
pub fn backend_by_name(name: &str) -> Option<&'static dyn AeadBackend> {
    backends().into_iter().find(|b| b.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// NIST GCM test vectors (gcmEncryptExtIV256.rsp) and the McGrew–Viega test case 16.
    struct Vector {
        key: &'static str,
        iv: &'static str,
        pt: &'static str,
        aad: &'static str,
        ct: &'static str,
        tag: &'static str,
    }

    const VECTORS: &[Vector] = &[
        // McGrew & Viega, "The GCM mode of operation", test case 13 (empty everything).
        Vector {
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            iv: "000000000000000000000000",
            pt: "",
            aad: "",
            ct: "",
            tag: "530f8afbc74536b9a963b4f1c4cb738b",
        },
        // Test case 14.
        Vector {
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            iv: "000000000000000000000000",
            pt: "00000000000000000000000000000000",
            aad: "",
            ct: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919",
        },
        // Test case 16 (with AAD).
        Vector {
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            iv: "cafebabefacedbaddecaf888",
            pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b",
        },
    ];

    #[test]
    fn known_answer_vectors_for_every_backend() {
        for backend in backends() {
            for v in VECTORS {
                let key: [u8; 32] = unhex(v.key).try_into().unwrap();
                let nonce: Nonce = unhex(v.iv).try_into().unwrap();
                let aad = unhex(v.aad);
                let mut buf = unhex(v.pt);
                let k = backend.key(&key);
                let tag = k.seal_in_place(&nonce, &aad, &mut buf).unwrap();
                assert_eq!(hex::encode(&buf), v.ct, "{}", backend.name());
                assert_eq!(hex::encode(tag), v.tag, "{}", backend.name());
                k.open_in_place(&nonce, &aad, &mut buf, &tag).unwrap();
                assert_eq!(hex::encode(&buf), v.pt);
            }
        }
    }

    #[test]
    fn any_flip_fails_to_open() {
        for backend in backends() {
            let k = backend.key(&[7u8; 32]);
            let nonce = [1u8; 12];
            let mut buf = b"the quick brown fox".to_vec();
            let tag = k.seal_in_place(&nonce, b"aad", &mut buf).unwrap();
            for i in 0..buf.len() {
                let mut c = buf.clone();
                c[i] ^= 0x01;
                assert_eq!(k.open_in_place(&nonce, b"aad", &mut c, &tag), Err(AuthFailed));
                assert!(c.iter().all(|&b| b == 0), "failed open must not leave plaintext");
            }
            let mut out = vec![0u8; buf.len()];
            k.open_to(&nonce, b"aad", &buf, &tag, &mut out).unwrap();
            assert_eq!(out, b"the quick brown fox");
            let mut flipped = buf.clone();
            flipped[0] ^= 1;
            assert_eq!(k.open_to(&nonce, b"aad", &flipped, &tag, &mut out), Err(AuthFailed));
            assert!(out.iter().all(|&b| b == 0));
            let mut bad_tag = tag;
            bad_tag[15] ^= 0x80;
            assert!(k.open_in_place(&nonce, b"aad", &mut buf.clone(), &bad_tag).is_err());
            assert!(k.open_in_place(&nonce, b"aaD", &mut buf.clone(), &tag).is_err());
            assert!(k.open_in_place(&[2u8; 12], b"aad", &mut buf.clone(), &tag).is_err());
        }
    }

    #[test]
    fn backends_interoperate() {
        let all = backends();
        for sealer in &all {
            for opener in &all {
                let key = [0x42u8; 32];
                let nonce = [9u8; 12];
                let plain: Vec<u8> = (0..100_000u32).map(|i| (i * 31) as u8).collect();
                let mut buf = plain.clone();
                let tag = sealer.key(&key).seal_in_place(&nonce, b"hdr", &mut buf).unwrap();
                opener.key(&key).open_in_place(&nonce, b"hdr", &mut buf, &tag).unwrap();
                assert_eq!(buf, plain, "{} -> {}", sealer.name(), opener.name());
            }
        }
    }
}

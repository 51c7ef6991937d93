//! The encryption context: authenticated, non-secret data bound into every master-key call.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::{Reader, Writer};
use crate::{Error, Result};

const CONTEXT_MAGIC: &[u8; 4] = b"SSEC";

/// An ordered string map, serialized canonically (keys sorted, length-prefixed) so the same
/// context always yields the same AAD bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder-style insert.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }

    /// The value of one field.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Iterates fields in canonical (sorted) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Canonical bytes: `"SSEC"`, u32 field count, then per field u32-length-prefixed key and value.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(CONTEXT_MAGIC).u32(self.0.len() as u32);
        for (k, v) in &self.0 {
            w.str(k).str(v);
        }
        w.buf
    }

    /// Parses canonical bytes; refuses unsorted or duplicate keys so the encoding stays unique.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        if r.take(4).ok()? != CONTEXT_MAGIC {
            return None;
        }
        let count = r.u32().ok()?;
        let mut map = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let k = r.str().ok()?.to_owned();
            let v = r.str().ok()?.to_owned();
            if last.as_ref().is_some_and(|l| *l >= k) {
                return None;
            }
            last = Some(k.clone());
            map.insert(k, v);
        }
        (r.remaining() == 0).then_some(Self(map))
    }

    /// Checks that `requested` is exactly this (the stored) context; names the first differing field.
    pub fn require_equal(&self, requested: &EncryptionContext) -> Result<()> {
        let keys: std::collections::BTreeSet<&String> = self.0.keys().chain(requested.0.keys()).collect();
        for key in keys {
            let stored = self.0.get(key);
            let asked = requested.0.get(key);
            if stored != asked {
                return Err(Error::ContextMismatch {
                    field: key.clone(),
                    expected: stored.cloned().unwrap_or_else(|| "<absent>".into()),
                    found: asked.cloned().unwrap_or_else(|| "<absent>".into()),
                });
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for EncryptionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_is_order_independent() {
        let a = EncryptionContext::new().with("b", "2").with("a", "1");
        let b = EncryptionContext::new().with("a", "1").with("b", "2");
        assert_eq!(a.canonical_bytes(), b.canonical_bytes());
    }

    #[test]
    fn mismatch_names_the_field() {
        let stored = EncryptionContext::new()
            .with("cluster-id", "c1")
            .with("createtime", "t");
        let asked = EncryptionContext::new()
            .with("cluster-id", "c2")
            .with("createtime", "t");
        match stored.require_equal(&asked).unwrap_err() {
            Error::ContextMismatch { field, expected, found } => {
                assert_eq!(
                    (field.as_str(), expected.as_str(), found.as_str()),
                    ("cluster-id", "c1", "c2")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let missing = EncryptionContext::new().with("cluster-id", "c1");
        assert!(
            matches!(stored.require_equal(&missing), Err(Error::ContextMismatch { field, .. }) if field == "createtime")
        );
    }

    #[test]
    fn refuses_non_canonical_bytes() {
        let mut w = Writer::new();
        w.bytes(CONTEXT_MAGIC).u32(2).str("b").str("1").str("a").str("2");
        assert!(EncryptionContext::from_canonical_bytes(&w.buf).is_none());
    }

    proptest! {
        #[test]
        fn canonical_round_trip(map in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..6)) {
            let ctx = EncryptionContext(map);
            let bytes = ctx.canonical_bytes();
            prop_assert_eq!(EncryptionContext::from_canonical_bytes(&bytes), Some(ctx));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = EncryptionContext::from_canonical_bytes(&bytes);
        }
    }
}

//! Who a store is: the slice index and random store id every manifest binds and the cluster's
//! commit record names.

/// Bytes of a store id.
pub const STORE_ID_LEN: usize = 16;

/// Who a store is: its slice index and the random id it was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreIdentity {
    pub slice_id: u32,
    pub store_id: [u8; STORE_ID_LEN],
}

impl StoreIdentity {
    /// The store id in hex (how the commit record names it).
    pub fn store_id_hex(&self) -> String {
        self.store_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

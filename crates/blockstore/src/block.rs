//! Fixed-size sealed blocks.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "SSBK"
//!      4     2  format version (BLOCK_FORMAT_VERSION)
//!      6     1  column type code
//!      7     1  encoding of the first page
//!      8     8  block id
//!     16     4  table id
//!     20     4  column id
//!     24     4  slice id
//!     28     4  database-key generation
//!     32     8  first row
//!     40     4  row count
//!     44    12  nonce
//!     56     8  reserved, zero
//!     64     …  AES-256-GCM ciphertext of: payload length u32 | payload | zero padding
//! size-16   16  tag
//! ```
//! The 64-byte header is the AAD, so moving a block to another slot, table, column or slice, or
//! replaying an older block, fails authentication.
use sealstore_keyring::aead::{AeadKey, NONCE_LEN, TAG_LEN};

/// Block magic.
pub const BLOCK_MAGIC: &[u8; 4] = b"SSBK";
/// Current block format version (2: pages may use the blocked frame-of-reference and cascaded
/// dictionary encodings and store nulls as positions).
pub const BLOCK_FORMAT_VERSION: u16 = 2;
/// Plaintext header length (the AAD).
pub const HEADER_LEN: usize = 64;
/// Named offsets of the header fields (the layout in the module docs); bytes from
/// [`offset::RESERVED`] to [`HEADER_LEN`] are zero.
pub mod offset {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 4;
    pub const COLUMN_TYPE: usize = 6;
    pub const ENCODING: usize = 7;
    pub const BLOCK_ID: usize = 8;
    pub const TABLE_ID: usize = 16;
    pub const COLUMN_ID: usize = 20;
    pub const SLICE_ID: usize = 24;
    pub const DK_GENERATION: usize = 28;
    pub const ROW_START: usize = 32;
    pub const ROW_COUNT: usize = 40;
    pub const NONCE: usize = 44;
    pub const RESERVED: usize = 56;
}

/// Smallest block size.
pub const MIN_BLOCK_SIZE: usize = 64 << 10;
/// Largest block size.
pub const MAX_BLOCK_SIZE: usize = 16 << 20;
/// Default block size.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;

/// Bytes of encoded payload one block can hold.
pub fn capacity(block_size: usize) -> usize {
    block_size - HEADER_LEN - TAG_LEN - 4
}

/// True for a valid block size.
pub fn valid_block_size(size: u64) -> bool {
    size.is_power_of_two() && (MIN_BLOCK_SIZE as u64..=MAX_BLOCK_SIZE as u64).contains(&size)
}

/// The plaintext header of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub column_type: u8,
    pub encoding: u8,
    pub block_id: u64,
    pub table_id: u32,
    pub column_id: u32,
    pub slice_id: u32,
    pub dk_generation: u32,
    pub row_start: u64,
    pub row_count: u32,
    pub nonce: [u8; NONCE_LEN],
}

impl BlockHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        use offset::*;
        let mut h = [0u8; HEADER_LEN];
        h[MAGIC..MAGIC + 4].copy_from_slice(BLOCK_MAGIC);
        h[VERSION..VERSION + 2].copy_from_slice(&BLOCK_FORMAT_VERSION.to_le_bytes());
        h[COLUMN_TYPE] = self.column_type;
        h[ENCODING] = self.encoding;
        h[BLOCK_ID..BLOCK_ID + 8].copy_from_slice(&self.block_id.to_le_bytes());
        h[TABLE_ID..TABLE_ID + 4].copy_from_slice(&self.table_id.to_le_bytes());
        h[COLUMN_ID..COLUMN_ID + 4].copy_from_slice(&self.column_id.to_le_bytes());
        h[SLICE_ID..SLICE_ID + 4].copy_from_slice(&self.slice_id.to_le_bytes());
        h[DK_GENERATION..DK_GENERATION + 4].copy_from_slice(&self.dk_generation.to_le_bytes());
        h[ROW_START..ROW_START + 8].copy_from_slice(&self.row_start.to_le_bytes());
        h[ROW_COUNT..ROW_COUNT + 4].copy_from_slice(&self.row_count.to_le_bytes());
        h[NONCE..NONCE + NONCE_LEN].copy_from_slice(&self.nonce);
        h
    }

    pub fn decode(h: &[u8]) -> Result<Self, &'static str> {
        if h.len() < HEADER_LEN {
            return Err("block shorter than its header");
        }
        use offset::*;
        if &h[MAGIC..MAGIC + 4] != BLOCK_MAGIC {
            return Err("bad block magic");
        }
        if u16::from_le_bytes([h[VERSION], h[VERSION + 1]]) != BLOCK_FORMAT_VERSION {
            return Err("unsupported block format version");
        }
        let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
        Ok(Self {
            column_type: h[COLUMN_TYPE],
            encoding: h[ENCODING],
            block_id: u64_at(BLOCK_ID),
            table_id: u32_at(TABLE_ID),
            column_id: u32_at(COLUMN_ID),
            slice_id: u32_at(SLICE_ID),
            dk_generation: u32_at(DK_GENERATION),
            row_start: u64_at(ROW_START),
            row_count: u32_at(ROW_COUNT),
            nonce: h[NONCE..NONCE + NONCE_LEN].try_into().expect("12 bytes"),
        })
    }
}

/// Where the payload starts inside a slot.
pub const PAYLOAD_OFFSET: usize = HEADER_LEN + 4;

/// Seals `payload` into `slot` (exactly one block long) under `key` (copies the payload; the
/// writer uses [`seal_in_place`] to avoid that).
pub fn seal(slot: &mut [u8], header: &BlockHeader, payload: &[u8], key: &dyn AeadKey) -> Result<(), &'static str> {
    if payload.len() > capacity(slot.len()) {
        return Err("payload larger than the block capacity");
    }
    slot[PAYLOAD_OFFSET..PAYLOAD_OFFSET + payload.len()].copy_from_slice(payload);
    seal_in_place(slot, header, payload.len(), key)
}

/// Seals a slot whose payload already sits at [`PAYLOAD_OFFSET`]: writes the header and length,
/// zeroes the padding, encrypts in place and appends the tag.
pub fn seal_in_place(
    slot: &mut [u8],
    header: &BlockHeader,
    payload_len: usize,
    key: &dyn AeadKey,
) -> Result<(), &'static str> {
    let size = slot.len();
    if payload_len > capacity(size) {
        return Err("payload larger than the block capacity");
    }
    slot[..HEADER_LEN].copy_from_slice(&header.encode());
    let body_end = size - TAG_LEN;
    slot[HEADER_LEN..PAYLOAD_OFFSET].copy_from_slice(&(payload_len as u32).to_le_bytes());
    slot[PAYLOAD_OFFSET + payload_len..body_end].fill(0);
    let (head, rest) = slot.split_at_mut(HEADER_LEN);
    let (body, tag_out) = rest.split_at_mut(body_end - HEADER_LEN);
    let tag = key
        .seal_in_place(&header.nonce, head, body)
        .map_err(|_| "sealing failed")?;
    tag_out.copy_from_slice(&tag);
    Ok(())
}

/// Authenticates and decrypts a sealed block in place; returns the payload range.
pub fn open(slot: &mut [u8], key: &dyn AeadKey) -> Result<std::ops::Range<usize>, &'static str> {
    let size = slot.len();
    if size < HEADER_LEN + TAG_LEN + 4 {
        return Err("block too short");
    }
    let header = BlockHeader::decode(slot)?;
    let body_end = size - TAG_LEN;
    let tag: [u8; TAG_LEN] = slot[body_end..].try_into().expect("16 bytes");
    let (head, rest) = slot.split_at_mut(HEADER_LEN);
    let body = &mut rest[..body_end - HEADER_LEN];
    key.open_in_place(&header.nonce, head, body, &tag)
        .map_err(|_| "tag mismatch: the block was modified or does not belong here")?;
    let len = u32::from_le_bytes(body[..4].try_into().expect("4 bytes")) as usize;
    if len > capacity(size) {
        return Err("payload length exceeds the block");
    }
    Ok(HEADER_LEN + 4..HEADER_LEN + 4 + len)
}

/// Authenticates a sealed block as it lies in `sealed` (e.g. a memory map) and decrypts it into
/// `out` (one block long) without modifying the input; returns the payload range in `out`.
pub fn open_to(sealed: &[u8], key: &dyn AeadKey, out: &mut [u8]) -> Result<std::ops::Range<usize>, &'static str> {
    let size = sealed.len();
    if size < HEADER_LEN + TAG_LEN + 4 || out.len() != size {
        return Err("block too short");
    }
    let header = BlockHeader::decode(sealed)?;
    let body_end = size - TAG_LEN;
    let tag: [u8; TAG_LEN] = sealed[body_end..].try_into().expect("16 bytes");
    key.open_to(
        &header.nonce,
        &sealed[..HEADER_LEN],
        &sealed[HEADER_LEN..body_end],
        &tag,
        &mut out[HEADER_LEN..body_end],
    )
    .map_err(|_| "tag mismatch: the block was modified or does not belong here")?;
    let len = u32::from_le_bytes(out[HEADER_LEN..PAYLOAD_OFFSET].try_into().expect("4 bytes")) as usize;
    if len > capacity(size) {
        return Err("payload length exceeds the block");
    }
    Ok(PAYLOAD_OFFSET..PAYLOAD_OFFSET + len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealstore_keyring::aead::default_backend;

    fn header() -> BlockHeader {
        BlockHeader {
            column_type: 3,
            encoding: 0,
            block_id: 42,
            table_id: 1,
            column_id: 2,
            slice_id: 0,
            dk_generation: 1,
            row_start: 100,
            row_count: 10,
            nonce: [7; 12],
        }
    }

    #[test]
    fn seal_open_round_trip_and_every_region_is_authenticated() {
        let key = default_backend().key(&[1; 32]);
        let mut slot = vec![0u8; MIN_BLOCK_SIZE];
        seal(&mut slot, &header(), b"payload bytes", key.as_ref()).unwrap();
        assert!(!slot.windows(7).any(|w| w == b"payload"));
        let mut copy = slot.clone();
        let range = open(&mut copy, key.as_ref()).unwrap();
        assert_eq!(&copy[range], b"payload bytes");
        let mut out = vec![0u8; slot.len()];
        let range = open_to(&slot, key.as_ref(), &mut out).unwrap();
        assert_eq!(&out[range], b"payload bytes");
        let size = slot.len();
        for offset in [
            0,
            8,
            40,
            44,
            60,
            HEADER_LEN,
            HEADER_LEN + 2,
            HEADER_LEN + 100,
            size / 2,
            size - TAG_LEN - 1,
            size - 1,
        ] {
            let mut tampered = slot.clone();
            tampered[offset] ^= 0x10;
            assert!(open_to(&tampered, key.as_ref(), &mut out).is_err(), "flip at {offset}");
            assert!(open(&mut tampered, key.as_ref()).is_err(), "flip at {offset}");
        }
        let other = default_backend().key(&[2; 32]);
        assert!(open(&mut slot.clone(), other.as_ref()).is_err());
    }

    #[test]
    fn the_same_plaintext_in_two_blocks_gives_unrelated_ciphertext() {
        let payload = vec![0x41u8; 4096];
        let mut sealed = Vec::new();
        for _ in 0..2 {
            let dek = sealstore_keyring::DataKey::generate().unwrap();
            let mut nonce = [0u8; 12];
            sealstore_keyring::fill_random(&mut nonce).unwrap();
            let mut slot = vec![0u8; MIN_BLOCK_SIZE];
            seal(
                &mut slot,
                &BlockHeader { nonce, ..header() },
                &payload,
                default_backend().key(dek.expose_secret()).as_ref(),
            )
            .unwrap();
            sealed.push(slot);
        }
        let (a, b) = (&sealed[0][HEADER_LEN..], &sealed[1][HEADER_LEN..]);
        // No 8-byte run of one ciphertext appears at the same place in the other, and the
        // ciphertext of a constant plaintext is not itself repetitive.
        let same_words = a.chunks(8).zip(b.chunks(8)).filter(|(x, y)| x == y).count();
        assert_eq!(same_words, 0);
        let first = &a[..16];
        assert!(!a[16..].windows(16).any(|w| w == first));
    }

    #[test]
    fn oversized_payload_is_refused() {
        let key = default_backend().key(&[1; 32]);
        let mut slot = vec![0u8; MIN_BLOCK_SIZE];
        let big = vec![0u8; capacity(MIN_BLOCK_SIZE) + 1];
        assert!(seal(&mut slot, &header(), &big, key.as_ref()).is_err());
        let fits = vec![9u8; capacity(MIN_BLOCK_SIZE)];
        seal(&mut slot, &header(), &fits, key.as_ref()).unwrap();
        let range = open(&mut slot, key.as_ref()).unwrap();
        assert_eq!(range.len(), fits.len());
    }

    #[test]
    fn block_sizes() {
        assert!(valid_block_size(1 << 16) && valid_block_size(1 << 20) && valid_block_size(1 << 24));
        assert!(!valid_block_size(1 << 15) && !valid_block_size(1 << 25) && !valid_block_size(100_000));
    }
}

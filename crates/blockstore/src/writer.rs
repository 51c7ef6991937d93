//! Cutting one column's rows into pages and pages into fixed-size blocks.
use arrow_array::ArrayRef;
use arrow_array::cast::AsArray;
use arrow_select::concat::concat;

use crate::encoding::{self, EncodedPage, Encoding};
use crate::types::ColumnType;
use crate::zone::ZoneMap;
use crate::{Error, Result};

/// Rows per page (a page is the unit of encoding inside a block).
pub const PAGE_ROWS: usize = 16_384;
/// Rows per page of string and binary columns: four times more, so a page dictionary (which
/// every page carries in full) is paid for once per 65,536 rows instead of four times; string
/// pages are still capped at [`PAGE_BYTES`] of plain data.
pub const BYTES_PAGE_ROWS: usize = 65_536;
/// Plain bytes per page (caps string pages).
const PAGE_BYTES: usize = 512 << 10;
/// Rows sampled to tell a repetitive string column (one whose values repeat at least
/// [`REPEATS`] times on average) from a mostly distinct one.
const SAMPLE_ROWS: usize = 16_384;
const REPEATS: usize = 4;

/// A finished block, ready to be sealed.
#[derive(Debug)]
pub(crate) struct BlockOut {
    /// The payload laid out where it will sit in the slot (after `PAYLOAD_OFFSET` bytes of
    /// header space), so sealing needs no extra copy. Capacity is one block.
    pub slot: Vec<u8>,
    pub row_start: u64,
    pub rows: u64,
    pub zone: ZoneMap,
    pub pages: Vec<ZoneMap>,
    pub full: bool,
    pub encoding: Encoding,
}

/// Accumulates one column's rows and emits blocks.
#[derive(Debug)]
pub(crate) struct ColumnWriter {
    ty: ColumnType,
    capacity: usize,
    page_bytes: usize,
    page_rows: usize,
    /// Whether the page size has been settled (string columns sample their first page).
    page_size_settled: bool,
    pages: Vec<Vec<u8>>,
    pages_len: usize,
    first_encoding: Option<Encoding>,
    block_row_start: u64,
    block_rows: u64,
    zone: ZoneMap,
    page_zones: Vec<ZoneMap>,
    buffer: Vec<ArrayRef>,
    buffer_rows: usize,
    buffer_bytes: usize,
    /// Blocks finished and waiting to be sealed.
    pub ready: Vec<BlockOut>,
    table: String,
    column: String,
}

impl ColumnWriter {
    pub fn new(ty: ColumnType, capacity: usize, row_start: u64, table: &str, column: &str) -> Self {
        Self {
            ty,
            capacity,
            page_bytes: PAGE_BYTES.min(capacity / 2),
            page_rows: match ty {
                ColumnType::Utf8 | ColumnType::Binary => BYTES_PAGE_ROWS,
                _ => PAGE_ROWS,
            },
            page_size_settled: !matches!(ty, ColumnType::Utf8 | ColumnType::Binary),
            pages: Vec::new(),
            pages_len: 4,
            first_encoding: None,
            block_row_start: row_start,
            block_rows: 0,
            zone: ZoneMap::default(),
            page_zones: Vec::new(),
            buffer: Vec::new(),
            buffer_rows: 0,
            buffer_bytes: 0,
            ready: Vec::new(),
            table: table.to_owned(),
            column: column.to_owned(),
        }
    }

    /// Starts from the encoded pages of a partial block being rewritten (copy-on-write).
    pub fn seed(
        &mut self,
        pages: Vec<Vec<u8>>,
        page_zones: Vec<ZoneMap>,
        row_start: u64,
        rows: u64,
        zone: ZoneMap,
        encoding: Encoding,
    ) {
        self.page_zones = page_zones;
        self.pages_len = 4 + pages.iter().map(Vec::len).sum::<usize>();
        self.pages = pages;
        self.block_row_start = row_start;
        self.block_rows = rows;
        self.zone = zone;
        self.first_encoding = Some(encoding);
    }

    /// Adds rows; full pages are encoded and full blocks moved to `ready`.
    pub fn push(&mut self, array: ArrayRef) -> Result<()> {
        if array.is_empty() {
            return Ok(());
        }
        self.buffer_rows += array.len();
        self.buffer_bytes += encoding::plain_size(self.ty, array.as_ref());
        self.buffer.push(array);
        while self.buffer_rows >= self.page_rows || self.buffer_bytes >= self.page_bytes {
            if !self.page_size_settled {
                self.settle_page_size();
                continue;
            }
            let rows = self.rows_for_page();
            let page = self.take_rows(rows)?;
            self.place(page)?;
        }
        Ok(())
    }

    /// Encodes what is buffered and closes the last block as partial.
    pub fn finish(&mut self) -> Result<()> {
        while self.buffer_rows > 0 {
            let rows = self.rows_for_page();
            let page = self.take_rows(rows)?;
            self.place(page)?;
        }
        if self.block_rows > 0 {
            self.close_block(false);
        }
        Ok(())
    }

    /// A string column whose values repeat (codes, names, aircraft) is written as a dictionary,
    /// which every page carries in full: such a column gets pages as large as a block, so a
    /// block pays for its dictionary once. Mostly distinct strings keep the plain-size cap (a
    /// page of them that outgrew the block would be encoded twice).
    fn settle_page_size(&mut self) {
        self.page_size_settled = true;
        let mut distinct: foldhash::HashSet<&[u8]> = foldhash::HashSet::default();
        let mut rows = 0;
        for a in &self.buffer {
            let take = a.len().min(SAMPLE_ROWS - rows);
            let (offsets, values) = match self.ty {
                ColumnType::Utf8 => (a.as_string::<i32>().value_offsets(), a.as_string::<i32>().values()),
                _ => (a.as_binary::<i32>().value_offsets(), a.as_binary::<i32>().values()),
            };
            for w in offsets[..=take].windows(2) {
                distinct.insert(&values[w[0] as usize..w[1] as usize]);
            }
            rows += take;
            if rows >= SAMPLE_ROWS {
                break;
            }
        }
        if distinct.len() * REPEATS <= rows {
            self.page_rows = encoding::MAX_PAGE_ROWS;
            self.page_bytes = self.capacity;
        }
    }

    fn rows_for_page(&self) -> usize {
        let by_bytes = if self.buffer_bytes > self.page_bytes {
            (self.buffer_rows as u128 * self.page_bytes as u128 / self.buffer_bytes as u128) as usize
        } else {
            self.buffer_rows
        };
        by_bytes.clamp(1, self.page_rows).min(self.buffer_rows)
    }

    /// Removes the first `rows` buffered rows as one array.
    fn take_rows(&mut self, rows: usize) -> Result<ArrayRef> {
        let mut parts: Vec<ArrayRef> = Vec::new();
        let mut need = rows;
        while need > 0 {
            let head = self.buffer.remove(0);
            if head.len() <= need {
                need -= head.len();
                parts.push(head);
            } else {
                parts.push(head.slice(0, need));
                self.buffer.insert(0, head.slice(need, head.len() - need));
                need = 0;
            }
        }
        self.buffer_rows -= rows;
        let out = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            let refs: Vec<&dyn arrow_array::Array> = parts.iter().map(|a| a.as_ref()).collect();
            concat(&refs)?
        };
        self.buffer_bytes = self
            .buffer
            .iter()
            .map(|a| encoding::plain_size(self.ty, a.as_ref()))
            .sum();
        Ok(out)
    }

    fn add_page(&mut self, page: EncodedPage) {
        self.first_encoding.get_or_insert(page.encoding);
        self.pages_len += page.bytes.len();
        self.block_rows += u64::from(page.rows);
        if self.pages.is_empty() {
            self.zone = page.zone.clone();
        } else {
            self.zone.merge(&page.zone);
        }
        self.page_zones.push(page.zone);
        self.pages.push(page.bytes);
    }

    /// Puts rows into the current block, splitting them where the block fills up.
    fn place(&mut self, mut array: ArrayRef) -> Result<()> {
        loop {
            let page = encoding::encode_page(self.ty, array.as_ref());
            if self.pages_len + page.bytes.len() <= self.capacity {
                self.add_page(page);
                return Ok(());
            }
            // Fill the rest of this block with the longest prefix that fits.
            let room = self.capacity - self.pages_len;
            let mut n = ((array.len() as f64) * (room as f64) / (page.bytes.len() as f64) * 0.95) as usize;
            n = n.min(array.len() - 1);
            while n > 0 {
                let prefix = encoding::encode_page(self.ty, array.slice(0, n).as_ref());
                if self.pages_len + prefix.bytes.len() <= self.capacity {
                    self.add_page(prefix);
                    array = array.slice(n, array.len() - n);
                    break;
                }
                n = n * 4 / 5;
            }
            if self.pages.is_empty() {
                // Not even one row fits into an empty block.
                let one = encoding::encode_page(self.ty, array.slice(0, 1).as_ref());
                return Err(Error::ValueTooLarge {
                    table: self.table.clone(),
                    column: self.column.clone(),
                    row: self.block_row_start,
                    bytes: one.bytes.len(),
                    limit: self.capacity - 4,
                });
            }
            self.close_block(true);
        }
    }

    fn close_block(&mut self, full: bool) {
        let mut payload =
            Vec::with_capacity(self.capacity + crate::block::PAYLOAD_OFFSET + 4 + sealstore_keyring::aead::TAG_LEN);
        payload.resize(crate::block::PAYLOAD_OFFSET, 0);
        payload.extend_from_slice(&(self.pages.len() as u32).to_le_bytes());
        for p in self.pages.drain(..) {
            payload.extend_from_slice(&p);
        }
        self.ready.push(BlockOut {
            slot: payload,
            row_start: self.block_row_start,
            rows: self.block_rows,
            zone: std::mem::take(&mut self.zone),
            pages: std::mem::take(&mut self.page_zones),
            full,
            encoding: self.first_encoding.take().unwrap_or(Encoding::Plain),
        });
        self.block_row_start += self.block_rows;
        self.block_rows = 0;
        self.pages_len = 4;
    }
}

#[cfg(test)]
impl BlockOut {
    /// The encoded payload (page count and pages).
    pub fn payload(&self) -> &[u8] {
        &self.slot[crate::block::PAYLOAD_OFFSET..]
    }
}

/// The pages of a block payload.
pub(crate) fn split_pages(payload: &[u8]) -> Result<Vec<&[u8]>, encoding::DecodeError> {
    let mut c = encoding::Cursor::new(payload);
    let count = c.u32()? as usize;
    let mut pages = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let len = encoding::page_len(c.rest())?;
        pages.push(c.take(len)?);
    }
    if c.pos != payload.len() {
        return Err(encoding::DecodeError("trailing bytes after the last page"));
    }
    Ok(pages)
}

/// Decodes a block payload into its pages' arrays.
pub(crate) fn decode_block(ty: ColumnType, payload: &[u8]) -> Result<Vec<ArrayRef>, encoding::DecodeError> {
    split_pages(payload)?
        .into_iter()
        .map(|p| encoding::decode_page(ty, p))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn blocks_fill_up_and_round_trip() {
        let capacity = crate::block::capacity(crate::block::MIN_BLOCK_SIZE);
        let mut w = ColumnWriter::new(ColumnType::Utf8, capacity, 0, "t", "c");
        let values: Vec<String> = (0..60_000).map(|i| format!("value-{}", i * 7919 % 100_003)).collect();
        for chunk in values.chunks(7000) {
            w.push(Arc::new(StringArray::from_iter_values(chunk))).unwrap();
        }
        w.finish().unwrap();
        let blocks = std::mem::take(&mut w.ready);
        assert!(blocks.len() > 3);
        let mut row = 0;
        for (i, b) in blocks.iter().enumerate() {
            assert!(b.payload().len() <= capacity);
            assert_eq!(b.row_start, row);
            assert_eq!(b.full, i + 1 < blocks.len());
            if b.full {
                assert!(
                    b.payload().len() * 10 > capacity * 9,
                    "full blocks are at least 90% used"
                );
            }
            let arrays = decode_block(ColumnType::Utf8, b.payload()).unwrap();
            for a in arrays {
                let s = a.as_any().downcast_ref::<StringArray>().unwrap();
                for j in 0..s.len() {
                    assert_eq!(s.value(j), values[row as usize + j]);
                }
                row += a.len() as u64;
            }
        }
        assert_eq!(row, 60_000);
    }

    #[test]
    fn a_value_larger_than_a_block_is_refused() {
        let capacity = crate::block::capacity(crate::block::MIN_BLOCK_SIZE);
        let mut w = ColumnWriter::new(ColumnType::Utf8, capacity, 0, "t", "c");
        // Incompressible, so LZ4 cannot make it fit.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let huge: String = (0..capacity + 10)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 90) as u8)
            })
            .collect();
        let err = w
            .push(Arc::new(StringArray::from(vec![huge])))
            .and_then(|_| w.finish())
            .unwrap_err();
        assert!(matches!(err, Error::ValueTooLarge { .. }), "{err}");
    }

    #[test]
    fn seeded_partial_block_continues_its_rows() {
        let capacity = crate::block::capacity(crate::block::MIN_BLOCK_SIZE);
        let mut w = ColumnWriter::new(ColumnType::Int64, capacity, 0, "t", "c");
        w.push(Arc::new(Int64Array::from_iter_values(0..100))).unwrap();
        w.finish().unwrap();
        let first = w.ready.pop().unwrap();
        assert!(!first.full);
        let pages: Vec<Vec<u8>> = split_pages(first.payload())
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let mut w2 = ColumnWriter::new(ColumnType::Int64, capacity, 100, "t", "c");
        w2.seed(pages, first.pages, 0, 100, first.zone, first.encoding);
        w2.push(Arc::new(Int64Array::from_iter_values(100..250))).unwrap();
        w2.finish().unwrap();
        let merged = w2.ready.pop().unwrap();
        assert_eq!((merged.row_start, merged.rows), (0, 250));
        let all: Vec<i64> = decode_block(ColumnType::Int64, merged.payload())
            .unwrap()
            .iter()
            .flat_map(|a| a.as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
            .collect();
        assert_eq!(all, (0..250).collect::<Vec<_>>());
        assert_eq!(merged.zone.max, Some(crate::Scalar::Int(249)));
    }
}

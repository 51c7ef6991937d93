//! Page encodings. A block holds a sequence of pages; each page encodes up to 16,384 (at most
//! [`MAX_PAGE_ROWS`] when decoded) values of one column with the encoding that makes it smallest:
//! plain, run-length, delta + bit-packing, frame-of-reference + bit-packing (whole page, or per
//! 64-value mini-block scaled by a common divisor), dictionary (flat, or cascaded: its values
//! and indices encoded again), or decimal-scaled floats; optionally LZ4 on top. Nulls are a
//! bitmap or, when fewer, their nested-encoded positions. See `docs/format.md` for the byte layouts.
pub mod bitpack;
mod bytes;
pub use bytes::BytesLayout;
mod ints;

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, PrimitiveArray, types};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};

use crate::types::{ColumnType, Physical};
use crate::zone::{Scalar, ZoneMap};

/// Encoded bytes could not be decoded (only reachable with corrupt, authenticated-but-wrong or
/// fuzzed input: sealed blocks are authenticated before they are decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// Page encodings (the byte stored in each page and in the block header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    Plain = 0,
    RunLength = 1,
    DeltaBitPack = 2,
    FrameOfReference = 3,
    Dictionary = 4,
    DecimalScaled = 5,
    /// Frame of reference per 64-value mini-block, scaled by the values' common divisor.
    BlockedFrameOfReference = 6,
    /// Dictionary whose values and indices are encoded again (block format 2 on).
    DictionaryCascaded = 7,
    /// Runs whose values and lengths are encoded again (block format 2 on).
    RunLengthCascaded = 8,
}

impl Encoding {
    pub(crate) fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            0 => Self::Plain,
            1 => Self::RunLength,
            2 => Self::DeltaBitPack,
            3 => Self::FrameOfReference,
            4 => Self::Dictionary,
            5 => Self::DecimalScaled,
            6 => Self::BlockedFrameOfReference,
            7 => Self::DictionaryCascaded,
            8 => Self::RunLengthCascaded,
            _ => return Err(DecodeError("unknown encoding")),
        })
    }

    /// A short name for statistics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::RunLength => "rle",
            Self::DeltaBitPack => "delta",
            Self::FrameOfReference => "for",
            Self::Dictionary => "dict",
            Self::DecimalScaled => "decimal",
            Self::BlockedFrameOfReference => "blocked",
            Self::DictionaryCascaded => "cdict",
            Self::RunLengthCascaded => "crle",
        }
    }
}

const FLAG_NULLS: u8 = 1;
const FLAG_LZ4: u8 = 2;
/// With [`FLAG_NULLS`]: the nulls are stored as their row positions (nested-encoded) rather
/// than as a bitmap, when that is smaller (a few missing values in a page).
const FLAG_NULL_POSITIONS: u8 = 4;
/// Most rows a page may claim when decoded (the writer writes at most 16,384).
pub const MAX_PAGE_ROWS: usize = 1 << 17;
/// Largest decompressed values section accepted.
pub(crate) const MAX_RAW_VALUES: usize = 256 << 20;
/// Values sections smaller than this are not worth an LZ4 attempt.
const LZ4_MIN: usize = 256;

/// One encoded page and what it holds.
#[derive(Debug, Clone)]
pub struct EncodedPage {
    pub rows: u32,
    pub encoding: Encoding,
    pub lz4: bool,
    pub bytes: Vec<u8>,
    pub zone: ZoneMap,
}

/// Estimate of an array's plain size in bytes, to decide when a page is full.
pub fn plain_size(ty: ColumnType, array: &dyn Array) -> usize {
    match ty.physical() {
        Physical::Bool => array.len().div_ceil(8),
        Physical::I32 => array.len() * 4,
        Physical::I64 | Physical::F64 => array.len() * 8,
        Physical::Bytes => {
            let data = array.to_data();
            let offsets = data.buffer::<i32>(0);
            let span = offsets.last().copied().unwrap_or(0) - offsets.first().copied().unwrap_or(0);
            span.max(0) as usize + array.len() * 4
        }
    }
}

/// Encodes one page of `array` (which must be of `ty`'s Arrow type).
pub fn encode_page(ty: ColumnType, array: &dyn Array) -> EncodedPage {
    encode_page_as(ty, array, None, None).expect("an unforced encoding always exists")
}

/// Encodes a page with a forced encoding and/or LZ4 choice (tests, benches and fuzzing);
/// `None` when that encoding cannot hold these values (e.g. a dictionary past its size limit).
#[doc(hidden)]
pub fn encode_page_as(
    ty: ColumnType,
    array: &dyn Array,
    force: Option<Encoding>,
    force_lz4: Option<bool>,
) -> Option<EncodedPage> {
    let rows = array.len();
    let nulls = array.logical_nulls();
    let null_count = nulls.as_ref().map_or(0, |n| n.null_count());
    let mut values = Vec::new();
    let (encoding, min, max) = match ty.physical() {
        Physical::Bool => encode_bools(array, nulls.as_ref(), &mut values, force)?,
        Physical::I32 | Physical::I64 => {
            let vals = ints::extract(ty, array, nulls.as_ref());
            let width = if ty.physical() == Physical::I32 { 4 } else { 8 };
            let enc = ints::encode_with(&vals, width, &mut values, force)?;
            let bounds = ints::bounds(&vals, null_count == rows);
            (enc, bounds.0, bounds.1)
        }
        Physical::F64 => ints::encode_floats(array, nulls.as_ref(), &mut values, force)?,
        Physical::Bytes => bytes::encode(array, nulls.as_ref(), &mut values, force)?,
    };
    let mut lz4 = false;
    let wants_lz4 = matches!(ty.physical(), Physical::Bytes | Physical::F64)
        && matches!(
            encoding,
            Encoding::Plain | Encoding::Dictionary | Encoding::DictionaryCascaded
        );
    if force_lz4 == Some(true) || (force_lz4.is_none() && wants_lz4 && values.len() >= LZ4_MIN) {
        let compressed = lz4_flex::block::compress_prepend_size(&values);
        if force_lz4 == Some(true) || compressed.len() * 10 < values.len() * 9 {
            values = compressed;
            lz4 = true;
        }
    }
    let null_positions = nulls
        .as_ref()
        .filter(|_| null_count > 0)
        .and_then(|n| encode_null_positions(n, null_count));
    let mut out = Vec::with_capacity(10 + values.len() + rows.div_ceil(8));
    out.extend_from_slice(&(rows as u32).to_le_bytes());
    out.push(encoding as u8);
    out.push(
        if null_count > 0 { FLAG_NULLS } else { 0 }
            | if null_positions.is_some() {
                FLAG_NULL_POSITIONS
            } else {
                0
            }
            | if lz4 { FLAG_LZ4 } else { 0 },
    );
    if let Some(positions) = &null_positions {
        out.extend_from_slice(positions);
    } else if let Some(n) = nulls.as_ref().filter(|_| null_count > 0) {
        out.extend_from_slice(n.inner().sliced().as_slice());
    }
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    out.extend_from_slice(&values);
    Some(EncodedPage {
        rows: rows as u32,
        encoding,
        lz4,
        bytes: out,
        zone: ZoneMap {
            rows: rows as u64,
            nulls: null_count as u64,
            min,
            max,
        },
    })
}

/// The null positions section (u32 count | u32 length | nested encoding of the positions), if
/// it is smaller than the page's validity bitmap.
fn encode_null_positions(nulls: &NullBuffer, null_count: usize) -> Option<Vec<u8>> {
    let bitmap = nulls.len().div_ceil(8);
    // Each position costs at least a bit or two; past this share the bitmap always wins.
    if null_count > nulls.len() / 4 {
        return None;
    }
    let positions: Vec<i64> = (0..nulls.len())
        .filter(|&i| nulls.is_null(i))
        .map(|i| i as i64)
        .collect();
    let mut out = Vec::with_capacity(bitmap);
    out.extend_from_slice(&(null_count as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    ints::encode_nested(&positions, 4, &mut out);
    let len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&len.to_le_bytes());
    (out.len() < bitmap).then_some(out)
}

/// Reads the null positions section back into a validity buffer of `rows` rows.
fn decode_null_positions(c: &mut Cursor<'_>, rows: usize) -> Result<NullBuffer, DecodeError> {
    let count = c.u32()? as usize;
    if count > rows {
        return Err(DecodeError("more null positions than rows"));
    }
    let len = c.u32()? as usize;
    let positions = ints::decode_nested(c.take(len)?, count, 4)?;
    let mut valid = arrow_buffer::BooleanBufferBuilder::new(rows);
    valid.append_n(rows, true);
    let mut next = 0i64;
    for p in positions {
        if p < next || p >= rows as i64 {
            return Err(DecodeError("null positions out of order or out of range"));
        }
        valid.set_bit(p as usize, false);
        next = p + 1;
    }
    Ok(NullBuffer::new(valid.finish()))
}

fn skip_null_positions(c: &mut Cursor<'_>) -> Result<(), DecodeError> {
    c.u32()?;
    let len = c.u32()? as usize;
    c.take(len).map(|_| ())
}

fn encode_bools(
    array: &dyn Array,
    nulls: Option<&NullBuffer>,
    out: &mut Vec<u8>,
    force: Option<Encoding>,
) -> Option<(Encoding, Option<Scalar>, Option<Scalar>)> {
    let b = array.as_any().downcast_ref::<BooleanArray>().expect("boolean column");
    let valid = |i: usize| nulls.is_none_or(|n| n.is_valid(i));
    let (mut any_true, mut any_false) = (false, false);
    let mut runs: Vec<(bool, u32)> = Vec::new();
    for i in 0..b.len() {
        let v = b.value(i);
        if valid(i) {
            any_true |= v;
            any_false |= !v;
        }
        match runs.last_mut() {
            Some((last, n)) if *last == v => *n += 1,
            _ => runs.push((v, 1)),
        }
    }
    let (min, max) = if !any_true && !any_false {
        (None, None)
    } else {
        (Some(Scalar::Bool(!any_false)), Some(Scalar::Bool(any_true)))
    };
    let rle = match force {
        None => runs.len() * 5 + 4 < b.len().div_ceil(8),
        Some(Encoding::RunLength) => true,
        Some(Encoding::Plain) => false,
        Some(_) => return None,
    };
    if rle {
        out.extend_from_slice(&(runs.len() as u32).to_le_bytes());
        for (v, n) in runs {
            out.push(v as u8);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Some((Encoding::RunLength, min, max))
    } else {
        out.extend_from_slice(b.values().sliced().as_slice());
        Some((Encoding::Plain, min, max))
    }
}

/// Reads little-endian fields from a page, failing cleanly at the end.
pub(crate) struct Cursor<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(DecodeError("page truncated"))?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }
}

/// Length in bytes of the page at the start of `data`, without decoding its values.
pub fn page_len(data: &[u8]) -> Result<usize, DecodeError> {
    let mut c = Cursor::new(data);
    let rows = c.u32()? as usize;
    let _enc = c.u8()?;
    let flags = c.u8()?;
    if flags & FLAG_NULL_POSITIONS != 0 {
        skip_null_positions(&mut c)?;
    } else if flags & FLAG_NULLS != 0 {
        c.take(rows.div_ceil(8))?;
    }
    let vlen = c.u32()? as usize;
    c.take(vlen)?;
    Ok(c.pos)
}

/// Rows held by the page at the start of `data`.
pub fn page_rows(data: &[u8]) -> Result<u32, DecodeError> {
    Cursor::new(data).u32()
}

/// Decodes one page into an Arrow array of `ty`.
pub fn decode_page(ty: ColumnType, data: &[u8]) -> Result<ArrayRef, DecodeError> {
    decode_page_as(ty, data, BytesLayout::Offsets)
}

/// Decodes one page into an Arrow array of `ty`, strings and binary in `layout`.
pub fn decode_page_as(ty: ColumnType, data: &[u8], layout: BytesLayout) -> Result<ArrayRef, DecodeError> {
    let mut c = Cursor::new(data);
    let rows = c.u32()? as usize;
    if rows > MAX_PAGE_ROWS {
        return Err(DecodeError("page row count above the limit"));
    }
    let encoding = Encoding::from_u8(c.u8()?)?;
    let flags = c.u8()?;
    let nulls = if flags & FLAG_NULL_POSITIONS != 0 {
        Some(decode_null_positions(&mut c, rows)?)
    } else if flags & FLAG_NULLS != 0 {
        let bitmap = c.take(rows.div_ceil(8))?;
        Some(NullBuffer::new(BooleanBuffer::new(
            Buffer::from(bitmap.to_vec()),
            0,
            rows,
        )))
    } else {
        None
    };
    let vlen = c.u32()? as usize;
    let raw = c.take(vlen)?;
    let decompressed;
    let values = if flags & FLAG_LZ4 != 0 {
        if raw.len() < 4 {
            return Err(DecodeError("LZ4 section truncated"));
        }
        let size = u32::from_le_bytes(raw[..4].try_into().expect("4 bytes")) as usize;
        if size > MAX_RAW_VALUES {
            return Err(DecodeError("LZ4 section claims too many bytes"));
        }
        decompressed = lz4_flex::block::decompress(&raw[4..], size).map_err(|_| DecodeError("LZ4 data invalid"))?;
        &decompressed[..]
    } else {
        raw
    };
    let array: ArrayRef = match ty {
        ColumnType::Boolean => Arc::new(decode_bools(encoding, values, rows, nulls)?),
        ColumnType::Int32 => Arc::new(ints::decode_i32::<types::Int32Type>(encoding, values, rows, nulls)?),
        ColumnType::Date32 => Arc::new(ints::decode_i32::<types::Date32Type>(encoding, values, rows, nulls)?),
        ColumnType::Int64 => Arc::new(ints::decode_i64::<types::Int64Type>(encoding, values, rows, nulls)?),
        ColumnType::TimestampMicros => Arc::new(ints::decode_i64::<types::TimestampMicrosecondType>(
            encoding, values, rows, nulls,
        )?),
        ColumnType::Float64 => Arc::new(ints::decode_floats(encoding, values, rows, nulls)?),
        ColumnType::Utf8 => bytes::decode(encoding, values, rows, nulls, true, layout)?,
        ColumnType::Binary => bytes::decode(encoding, values, rows, nulls, false, layout)?,
    };
    Ok(array)
}

fn decode_bools(
    enc: Encoding,
    data: &[u8],
    rows: usize,
    nulls: Option<NullBuffer>,
) -> Result<BooleanArray, DecodeError> {
    let values = match enc {
        Encoding::Plain => {
            if data.len() < rows.div_ceil(8) {
                return Err(DecodeError("boolean bitmap truncated"));
            }
            BooleanBuffer::new(Buffer::from(data[..rows.div_ceil(8)].to_vec()), 0, rows)
        }
        Encoding::RunLength => {
            let mut c = Cursor::new(data);
            let runs = c.u32()? as usize;
            let mut out = arrow_buffer::BooleanBufferBuilder::new(rows);
            for _ in 0..runs {
                let v = c.u8()? != 0;
                let n = c.u32()? as usize;
                if out.len() + n > rows {
                    return Err(DecodeError("boolean runs exceed the row count"));
                }
                out.append_n(n, v);
            }
            if out.len() != rows {
                return Err(DecodeError("boolean runs do not cover the page"));
            }
            out.finish()
        }
        _ => return Err(DecodeError("encoding not valid for booleans")),
    };
    Ok(BooleanArray::new(values, nulls))
}

/// Builds a primitive array, checking the value count.
fn primitive<T: arrow_array::ArrowPrimitiveType>(
    values: Vec<T::Native>,
    rows: usize,
    nulls: Option<NullBuffer>,
) -> Result<PrimitiveArray<T>, DecodeError> {
    if values.len() != rows {
        return Err(DecodeError("value count differs from the page's row count"));
    }
    PrimitiveArray::<T>::try_new(ScalarBuffer::from(values), nulls).map_err(|_| DecodeError("invalid primitive array"))
}

/// Float arrays are built the same way as the other primitives.
pub(crate) fn float_array(
    values: Vec<f64>,
    rows: usize,
    nulls: Option<NullBuffer>,
) -> Result<Float64Array, DecodeError> {
    primitive::<types::Float64Type>(values, rows, nulls)
}

#[cfg(test)]
mod tests;

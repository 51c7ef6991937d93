//! Integer and float encodings: plain, run-length, delta, frame-of-reference, dictionary,
//! decimal-scaled floats.
use foldhash::HashMap;

use arrow_array::{Array, ArrowPrimitiveType, Float64Array, PrimitiveArray};
use arrow_buffer::NullBuffer;

use super::bitpack::{pack, packed_len, unpack, unpack_extend, unpack_into, width_for};
use super::{Cursor, DecodeError, Encoding, float_array, primitive};
use crate::types::{ColumnType, Physical};
use crate::zone::Scalar;

/// Dictionary encoding is considered up to this many distinct values.
const DICT_MAX: usize = 4096;

/// Values as i64, with null slots filled by a neighbouring valid value (keeps runs and deltas small).
pub(super) fn extract(ty: ColumnType, array: &dyn Array, nulls: Option<&NullBuffer>) -> Vec<i64> {
    let data = array.to_data();
    let mut vals: Vec<i64> = match ty.physical() {
        Physical::I32 => data.buffer::<i32>(0)[..array.len()]
            .iter()
            .map(|&v| i64::from(v))
            .collect(),
        _ => data.buffer::<i64>(0)[..array.len()].to_vec(),
    };
    if let Some(n) = nulls {
        fill_nulls(&mut vals, n);
    }
    vals
}

fn fill_nulls<T: Copy>(vals: &mut [T], nulls: &NullBuffer) {
    if nulls.null_count() == 0 {
        return;
    }
    let Some(first) = nulls.valid_indices().next() else {
        return;
    };
    let mut last = vals[first];
    for (i, v) in vals.iter_mut().enumerate() {
        if nulls.is_valid(i) {
            last = *v;
        } else {
            *v = last;
        }
    }
}

pub(super) fn bounds(vals: &[i64], all_null: bool) -> (Option<Scalar>, Option<Scalar>) {
    if all_null || vals.is_empty() {
        return (None, None);
    }
    let (min, max) = vals
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    (Some(Scalar::Int(min)), Some(Scalar::Int(max)))
}

/// Distinct values, sorted; `None` as soon as a (cascaded) dictionary of them could not be
/// smaller than `budget` bytes (so a page another encoding already shrinks well is not hashed
/// through).
fn distinct_i64(vals: &[i64], budget: Option<usize>) -> Option<Vec<i64>> {
    let mut seen: HashMap<i64, ()> = HashMap::default();
    for (i, &v) in vals.iter().enumerate() {
        if seen.insert(v, ()).is_none() && seen.len().is_power_of_two() {
            // With this many distinct values the indices alone need log2(len) bits each (the
            // sorted values themselves delta-pack to a few bits, so they are not counted).
            let at_least = 10 + packed_len(vals.len(), width_for(seen.len() as u64 - 1)).unwrap_or(0);
            if budget.is_some_and(|b| at_least >= b) {
                return None;
            }
        }
        // Nearly all distinct so far (ids, measurements): no dictionary will win.
        if seen.len() > DICT_MAX || (budget.is_some() && i == 1023 && seen.len() > 960) {
            return None;
        }
    }
    let mut d: Vec<i64> = seen.into_keys().collect();
    d.sort_unstable();
    Some(d)
}

fn write_fixed(out: &mut Vec<u8>, v: i64, width: usize) {
    out.extend_from_slice(&v.to_le_bytes()[..width]);
}

fn read_fixed(c: &mut Cursor<'_>, width: usize) -> Result<i64, DecodeError> {
    let b = c.take(width)?;
    Ok(if width == 4 {
        i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes")))
    } else {
        i64::from_le_bytes(b.try_into().expect("8 bytes"))
    })
}

/// Encodes integers (stored `width` bytes wide when plain) with the smallest encoding.
pub(super) fn encode(vals: &[i64], width: usize, out: &mut Vec<u8>) -> Encoding {
    encode_with(vals, width, out, None).expect("an unforced choice always exists")
}

/// Like [`encode`], or with a forced encoding (`None` if it cannot encode these values).
pub(super) fn encode_with(vals: &[i64], width: usize, out: &mut Vec<u8>, force: Option<Encoding>) -> Option<Encoding> {
    choose(vals, width, out, force, true)
}

/// Encodes a section nested in another encoding (a dictionary's values or indices, a page's
/// null positions): the smallest encoding that is not itself a dictionary, as its tag byte and
/// then its bytes.
pub(super) fn encode_nested(vals: &[i64], width: usize, out: &mut Vec<u8>) {
    let tag = out.len();
    out.push(0);
    out[tag] = choose(vals, width, out, None, false).expect("an unforced choice always exists") as u8;
}

/// Decodes a section written by [`encode_nested`] (`n` values; it runs to the end of `data`).
pub(super) fn decode_nested(data: &[u8], n: usize, width: usize) -> Result<Vec<i64>, DecodeError> {
    let (&tag, rest) = data.split_first().ok_or(DecodeError("nested section truncated"))?;
    match Encoding::from_u8(tag)? {
        Encoding::Dictionary | Encoding::DictionaryCascaded | Encoding::RunLengthCascaded | Encoding::DecimalScaled => {
            Err(DecodeError("encoding not valid inside a dictionary"))
        }
        enc => decode(enc, rest, n, width),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Values per mini-block of [`Encoding::BlockedFrameOfReference`]: a multiple of 8, so a full
/// mini-block packs to whole bytes at any width.
const MINIBLOCK: usize = 64;

/// How a page would be written as blocked frame-of-reference: every value is
/// `min + (base[block] + packed) * step`, each 64-value mini-block with its own base and width.
/// Clustered data (times of day in a day's flights, hours in a sorted timestamp column) packs
/// at the width of each block's local spread, not the page's; `step`, the greatest common
/// divisor of the offsets, removes units (whole hours as microseconds, prices in cents).
struct BlockedPlan {
    min: i64,
    step: u64,
    base_width: u8,
    widths: Vec<u8>,
    bases: Vec<u64>,
    len: usize,
}

impl BlockedPlan {
    fn new(vals: &[i64], min: i64) -> Self {
        let mut step = 0u64;
        for &v in vals {
            if step == 1 {
                break;
            }
            step = gcd(step, v.wrapping_sub(min) as u64);
        }
        let step = step.max(1);
        let blocks = vals.len().div_ceil(MINIBLOCK);
        let (mut widths, mut bases) = (Vec::with_capacity(blocks), Vec::with_capacity(blocks));
        let mut len = 17 + blocks;
        for chunk in vals.chunks(MINIBLOCK) {
            // Offsets from `min` are multiples of `step`, so scaling keeps their order: a
            // mini-block's bounds are found on the offsets and divided once, not per value.
            let (lo, hi) = chunk.iter().fold((u64::MAX, 0), |(lo, hi), &v| {
                let off = v.wrapping_sub(min) as u64;
                (lo.min(off), hi.max(off))
            });
            let (lo, hi) = (lo / step, hi / step);
            let w = width_for(hi - lo);
            widths.push(w);
            bases.push(lo);
            len += packed_len(chunk.len(), w).expect("at most 64 values");
        }
        let base_width = width_for(bases.iter().copied().max().unwrap_or(0));
        len += packed_len(blocks, base_width).unwrap_or(usize::MAX);
        Self {
            min,
            step,
            base_width,
            widths,
            bases,
            len,
        }
    }

    fn write(&self, vals: &[i64], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.step.to_le_bytes());
        out.push(self.base_width);
        out.extend_from_slice(&self.widths);
        pack(self.bases.iter().copied(), self.base_width, out);
        for (j, chunk) in vals.chunks(MINIBLOCK).enumerate() {
            let base = self.bases[j];
            let offsets = chunk.iter().map(|&v| v.wrapping_sub(self.min) as u64);
            // Most pages have no common divisor: no division per value for them.
            if self.step == 1 {
                pack(offsets.map(|o| o - base), self.widths[j], out);
            } else {
                pack(offsets.map(|o| o / self.step - base), self.widths[j], out);
            }
        }
    }
}

fn decode_blocked(c: &mut Cursor<'_>, n: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    let min = c.u64()? as i64;
    let step = c.u64()?;
    let base_width = c.u8()?;
    let blocks = n.div_ceil(MINIBLOCK);
    let widths = c.take(blocks)?;
    let mut bases = Vec::with_capacity(blocks);
    let packed = c.take(packed_len(blocks, base_width).ok_or(DecodeError("length overflow"))?)?;
    unpack(packed, blocks, base_width, |b| bases.push(b))?;
    // One buffer for every mini-block (a per-call buffer would be zeroed 64 values at a time).
    let mut buf = [0u64; MINIBLOCK];
    out.reserve(n);
    for (j, (&w, &base)) in widths.iter().zip(&bases).enumerate() {
        let len = MINIBLOCK.min(n - j * MINIBLOCK);
        let packed = c.take(packed_len(len, w).ok_or(DecodeError("length overflow"))?)?;
        let vals = &mut buf[..len];
        unpack_into(packed, w, vals)?;
        if step == 1 {
            out.extend(vals.iter().map(|&v| min.wrapping_add(base.wrapping_add(v) as i64)));
        } else {
            out.extend(
                vals.iter()
                    .map(|&v| min.wrapping_add(base.wrapping_add(v).wrapping_mul(step) as i64)),
            );
        }
    }
    Ok(())
}

/// A dictionary page whose values and indices are themselves encoded (nested, see
/// [`encode_nested`]): sorted dictionary values delta-pack to a few bits each, and indices
/// of clustered data pack per mini-block.
fn write_cascaded(dict: &[i64], vals: &[i64], width: usize, out: &mut Vec<u8>) {
    let index: Vec<i64> = vals
        .iter()
        .map(|v| dict.binary_search(v).expect("value in dictionary") as i64)
        .collect();
    write_sections(dict, width, &index, out);
}

/// Two nested sections of one page: `first.len()` (u32), the byte length of the first section
/// (u32), the first section at `width`, the second at 4 bytes (indices, run lengths).
fn write_sections(first: &[i64], width: usize, second: &[i64], out: &mut Vec<u8>) {
    out.extend_from_slice(&(first.len() as u32).to_le_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode_nested(first, width, out);
    let first_len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&first_len.to_le_bytes());
    encode_nested(second, 4, out);
}

/// Reads what [`write_sections`] wrote: the first section (at most `max_first` values) and
/// the second (`second_len` values).
fn read_sections(
    c: &mut Cursor<'_>,
    max_first: usize,
    too_many: &'static str,
    width: usize,
    second_len: impl FnOnce(usize) -> usize,
) -> Result<(Vec<i64>, Vec<i64>), DecodeError> {
    let count = c.u32()? as usize;
    if count > max_first {
        return Err(DecodeError(too_many));
    }
    let first_len = c.u32()? as usize;
    let first = decode_nested(c.take(first_len)?, count, width)?;
    let second = decode_nested(c.rest(), second_len(count), 4)?;
    Ok((first, second))
}

fn decode_cascaded(c: &mut Cursor<'_>, n: usize, width: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    let (dict, index) = read_sections(c, DICT_MAX, "dictionary too large", width, |_| n)?;
    for i in index {
        out.push(
            *usize::try_from(i)
                .ok()
                .and_then(|i| dict.get(i))
                .ok_or(DecodeError("dictionary index out of range"))?,
        );
    }
    Ok(())
}

/// Runs as two nested sections, their values and their lengths: a sorted hour column's runs
/// cost a few bits each instead of a fixed 12 or 8 + 4 bytes.
fn write_runs_cascaded(vals: &[i64], runs: usize, width: usize, out: &mut Vec<u8>) {
    let (mut values, mut lengths) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    let mut start = 0;
    for i in 1..=vals.len() {
        if i == vals.len() || vals[i] != vals[start] {
            values.push(vals[start]);
            lengths.push((i - start) as i64);
            start = i;
        }
    }
    write_sections(&values, width, &lengths, out);
}

fn decode_runs_cascaded(c: &mut Cursor<'_>, n: usize, width: usize, out: &mut Vec<i64>) -> Result<(), DecodeError> {
    let (values, lengths) = read_sections(c, n, "more runs than rows", width, |runs| runs)?;
    for (v, len) in values.into_iter().zip(lengths) {
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| out.len() + l <= n)
            .ok_or(DecodeError("runs exceed the row count"))?;
        out.resize(out.len() + len, v);
    }
    Ok(())
}

/// The smallest encoding of `vals` (or the forced one); dictionaries and cascaded runs only if
/// `allow_dict` (so nesting stops at one level).
fn choose(
    vals: &[i64],
    width: usize,
    out: &mut Vec<u8>,
    force: Option<Encoding>,
    allow_dict: bool,
) -> Option<Encoding> {
    let n = vals.len();
    if n == 0 {
        return force.is_none_or(|f| f == Encoding::Plain).then_some(Encoding::Plain);
    }
    let (mut min, mut max, mut runs) = (vals[0], vals[0], 1usize);
    let (mut dmin, mut dmax) = (i64::MAX, i64::MIN);
    for w in vals.windows(2) {
        min = min.min(w[1]);
        max = max.max(w[1]);
        runs += usize::from(w[0] != w[1]);
        let d = w[1].wrapping_sub(w[0]);
        dmin = dmin.min(d);
        dmax = dmax.max(d);
    }
    let for_width = width_for(max.wrapping_sub(min) as u64);
    let delta_width = if n > 1 {
        width_for(dmax.wrapping_sub(dmin) as u64)
    } else {
        0
    };
    let plain = n * width;
    let for_len = 9 + packed_len(n, for_width).unwrap_or(usize::MAX);
    let delta_len = 17 + packed_len(n - 1, delta_width).unwrap_or(usize::MAX);
    let rle_len = 4 + runs * (width + 4);
    let mut cascaded_runs = Vec::new();
    if force == Some(Encoding::RunLengthCascaded) || (force.is_none() && allow_dict && runs * 4 <= n) {
        write_runs_cascaded(vals, runs, width, &mut cascaded_runs);
    }
    let cascaded_runs_len = if cascaded_runs.is_empty() {
        usize::MAX
    } else {
        cascaded_runs.len()
    };
    let blocked = matches!(force, None | Some(Encoding::BlockedFrameOfReference)).then(|| BlockedPlan::new(vals, min));
    let blocked_len = blocked.as_ref().map_or(usize::MAX, |b| b.len);
    let best_other = plain
        .min(for_len)
        .min(delta_len)
        .min(rle_len)
        .min(blocked_len)
        .min(cascaded_runs_len);
    let dict = match force {
        Some(Encoding::Dictionary | Encoding::DictionaryCascaded) => distinct_i64(vals, None),
        None if allow_dict && for_width > 8 => distinct_i64(vals, Some(best_other)),
        _ => None,
    };
    // The unforced choice only ever writes the cascaded dictionary; the flat one stays readable
    // (and forcible, for tests) because earlier stores hold it.
    let mut cascaded = Vec::new();
    if let Some(d) = dict.as_ref().filter(|_| force != Some(Encoding::Dictionary)) {
        write_cascaded(d, vals, width, &mut cascaded);
    }
    let dict_len = if dict.is_some() && force.is_none() {
        cascaded.len()
    } else {
        usize::MAX
    };
    let choice = match force {
        Some(Encoding::Dictionary | Encoding::DictionaryCascaded) if dict.is_none() => return None,
        Some(Encoding::DecimalScaled) => return None,
        Some(e) => e,
        None => {
            let best = best_other.min(dict_len);
            [
                (cascaded_runs_len, Encoding::RunLengthCascaded),
                (rle_len, Encoding::RunLength),
                (for_len, Encoding::FrameOfReference),
                (delta_len, Encoding::DeltaBitPack),
                (blocked_len, Encoding::BlockedFrameOfReference),
                (dict_len, Encoding::DictionaryCascaded),
            ]
            .into_iter()
            .find(|(len, _)| *len == best)
            .map_or(Encoding::Plain, |(_, e)| e)
        }
    };
    Some(if choice == Encoding::RunLengthCascaded {
        out.extend_from_slice(&cascaded_runs);
        Encoding::RunLengthCascaded
    } else if choice == Encoding::BlockedFrameOfReference {
        blocked.expect("plan computed").write(vals, out);
        Encoding::BlockedFrameOfReference
    } else if choice == Encoding::DictionaryCascaded {
        out.extend_from_slice(&cascaded);
        Encoding::DictionaryCascaded
    } else if choice == Encoding::RunLength {
        out.extend_from_slice(&(runs as u32).to_le_bytes());
        let mut start = 0;
        for i in 1..=n {
            if i == n || vals[i] != vals[start] {
                write_fixed(out, vals[start], width);
                out.extend_from_slice(&((i - start) as u32).to_le_bytes());
                start = i;
            }
        }
        Encoding::RunLength
    } else if choice == Encoding::FrameOfReference {
        out.extend_from_slice(&min.to_le_bytes());
        out.push(for_width);
        pack(vals.iter().map(|&v| v.wrapping_sub(min) as u64), for_width, out);
        Encoding::FrameOfReference
    } else if choice == Encoding::DeltaBitPack {
        out.extend_from_slice(&vals[0].to_le_bytes());
        let dmin = if n > 1 { dmin } else { 0 };
        out.extend_from_slice(&dmin.to_le_bytes());
        out.push(delta_width);
        pack(
            vals.windows(2)
                .map(|w| w[1].wrapping_sub(w[0]).wrapping_sub(dmin) as u64),
            delta_width,
            out,
        );
        Encoding::DeltaBitPack
    } else if choice == Encoding::Dictionary {
        let d = dict.expect("dictionary computed");
        out.extend_from_slice(&(d.len() as u32).to_le_bytes());
        for &v in &d {
            write_fixed(out, v, width);
        }
        let iw = width_for(d.len() as u64 - 1);
        out.push(iw);
        pack(
            vals.iter()
                .map(|v| d.binary_search(v).expect("value in dictionary") as u64),
            iw,
            out,
        );
        Encoding::Dictionary
    } else {
        for &v in vals {
            write_fixed(out, v, width);
        }
        Encoding::Plain
    })
}

/// Decodes `n` integers.
pub(super) fn decode(enc: Encoding, data: &[u8], n: usize, width: usize) -> Result<Vec<i64>, DecodeError> {
    let mut c = Cursor::new(data);
    let mut out = Vec::with_capacity(n);
    match enc {
        Encoding::Plain => {
            let bytes = c.take(n.checked_mul(width).ok_or(DecodeError("length overflow"))?)?;
            out.extend(bytes.chunks_exact(width).map(|b| {
                if width == 4 {
                    i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes")))
                } else {
                    i64::from_le_bytes(b.try_into().expect("8 bytes"))
                }
            }));
        }
        Encoding::RunLength => {
            let runs = c.u32()?;
            for _ in 0..runs {
                let v = read_fixed(&mut c, width)?;
                let len = c.u32()? as usize;
                if out.len() + len > n {
                    return Err(DecodeError("runs exceed the row count"));
                }
                out.resize(out.len() + len, v);
            }
        }
        Encoding::FrameOfReference => {
            let min = c.u64()? as i64;
            let w = c.u8()?;
            unpack_extend(c.rest(), n, w, &mut out, |v| min.wrapping_add(v as i64))?;
        }
        Encoding::DeltaBitPack => {
            let first = c.u64()? as i64;
            let dmin = c.u64()? as i64;
            let w = c.u8()?;
            if n > 0 {
                out.push(first);
                let mut last = first;
                unpack(c.rest(), n - 1, w, |v| {
                    last = last.wrapping_add(dmin.wrapping_add(v as i64));
                    out.push(last);
                })?;
            }
        }
        Encoding::Dictionary => {
            let d = c.u32()? as usize;
            if d > DICT_MAX {
                return Err(DecodeError("dictionary too large"));
            }
            let mut dict = Vec::with_capacity(d);
            for _ in 0..d {
                dict.push(read_fixed(&mut c, width)?);
            }
            let w = c.u8()?;
            let mut bad = false;
            unpack(c.rest(), n, w, |i| match dict.get(i as usize) {
                Some(&v) => out.push(v),
                None => bad = true,
            })?;
            if bad {
                return Err(DecodeError("dictionary index out of range"));
            }
        }
        Encoding::BlockedFrameOfReference => decode_blocked(&mut c, n, &mut out)?,
        Encoding::DictionaryCascaded => decode_cascaded(&mut c, n, width, &mut out)?,
        Encoding::RunLengthCascaded => decode_runs_cascaded(&mut c, n, width, &mut out)?,
        Encoding::DecimalScaled => return Err(DecodeError("decimal encoding is for floats")),
    }
    if out.len() != n {
        return Err(DecodeError("value count differs from the page's row count"));
    }
    Ok(out)
}

pub(super) fn decode_i32<T: ArrowPrimitiveType<Native = i32>>(
    enc: Encoding,
    data: &[u8],
    n: usize,
    nulls: Option<NullBuffer>,
) -> Result<PrimitiveArray<T>, DecodeError> {
    let vals = decode(enc, data, n, 4)?;
    primitive::<T>(vals.into_iter().map(|v| v as i32).collect(), n, nulls)
}

pub(super) fn decode_i64<T: ArrowPrimitiveType<Native = i64>>(
    enc: Encoding,
    data: &[u8],
    n: usize,
    nulls: Option<NullBuffer>,
) -> Result<PrimitiveArray<T>, DecodeError> {
    primitive::<T>(decode(enc, data, n, 8)?, n, nulls)
}

const DECIMAL_SCALES: [f64; 5] = [1.0, 10.0, 100.0, 1000.0, 10000.0];
const EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53

/// The smallest power-of-ten scale at which every value is an exact integer quotient.
fn decimal_scale(vals: &[f64]) -> Option<(u8, Vec<i64>)> {
    'scale: for (s, &scale) in DECIMAL_SCALES.iter().enumerate() {
        let mut ints = Vec::with_capacity(vals.len());
        for &v in vals {
            let i = (v * scale).round();
            // Check the exact computation the decoder will do (this also rejects -0.0 and NaN).
            if i.is_nan() || i.abs() >= EXACT_INT_LIMIT || ((i as i64) as f64 / scale).to_bits() != v.to_bits() {
                continue 'scale;
            }
            ints.push(i as i64);
        }
        return Some((s as u8, ints));
    }
    None
}

pub(super) fn encode_floats(
    array: &dyn Array,
    nulls: Option<&NullBuffer>,
    out: &mut Vec<u8>,
    force: Option<Encoding>,
) -> Option<(Encoding, Option<Scalar>, Option<Scalar>)> {
    let a = array.as_any().downcast_ref::<Float64Array>().expect("float column");
    let mut vals = a.values().to_vec();
    if let Some(n) = nulls {
        fill_nulls(&mut vals, n);
    }
    let all_null = nulls.is_some_and(|n| n.null_count() == vals.len());
    let (min, max) = if all_null || vals.is_empty() {
        (None, None)
    } else {
        let min = vals.iter().copied().min_by(|a, b| a.total_cmp(b)).expect("non-empty");
        let max = vals.iter().copied().max_by(|a, b| a.total_cmp(b)).expect("non-empty");
        (Some(Scalar::Float(min)), Some(Scalar::Float(max)))
    };
    if matches!(force, None | Some(Encoding::DecimalScaled)) {
        match decimal_scale(&vals) {
            Some((scale, ints)) => {
                out.push(scale);
                let pos = out.len();
                out.push(0);
                out[pos] = encode(&ints, 8, out) as u8;
                return Some((Encoding::DecimalScaled, min, max));
            }
            None if force.is_some() => return None,
            None => {}
        }
    }
    let bits: Vec<i64> = vals.iter().map(|v| v.to_bits() as i64).collect();
    let enc = encode_with(&bits, 8, out, force)?;
    Some((enc, min, max))
}

pub(super) fn decode_floats(
    enc: Encoding,
    data: &[u8],
    n: usize,
    nulls: Option<NullBuffer>,
) -> Result<Float64Array, DecodeError> {
    let vals: Vec<f64> = if enc == Encoding::DecimalScaled {
        let mut c = Cursor::new(data);
        let scale = *DECIMAL_SCALES
            .get(c.u8()? as usize)
            .ok_or(DecodeError("decimal scale out of range"))?;
        let inner = Encoding::from_u8(c.u8()?)?;
        decode(inner, c.rest(), n, 8)?
            .into_iter()
            .map(|i| i as f64 / scale)
            .collect()
    } else {
        decode(enc, data, n, 8)?
            .into_iter()
            .map(|b| f64::from_bits(b as u64))
            .collect()
    };
    float_array(vals, n, nulls)
}

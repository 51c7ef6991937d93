//! Integer and float encodings: plain, run-length, delta, frame-of-reference, dictionary,
//! decimal-scaled floats.
use foldhash::HashMap;

use arrow_array::{Array, ArrowPrimitiveType, Float64Array, PrimitiveArray};
use arrow_buffer::NullBuffer;

use super::bitpack::{pack, packed_len, unpack, width_for};
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

/// Distinct values, sorted; `None` as soon as a dictionary of them could not be smaller than
/// `budget` bytes (so a page another encoding already shrinks well is not hashed through).
fn distinct_i64(vals: &[i64], width: usize, budget: Option<usize>) -> Option<Vec<i64>> {
    let mut seen: HashMap<i64, ()> = HashMap::default();
    let max_entries = budget.map_or(DICT_MAX, |b| DICT_MAX.min(b.saturating_sub(5) / width));
    for (i, &v) in vals.iter().enumerate() {
        if seen.insert(v, ()).is_none() && seen.len().is_power_of_two() {
            // With this many distinct values the indices alone need log2(len) bits each.
            let at_least =
                5 + seen.len() * width + packed_len(vals.len(), width_for(seen.len() as u64 - 1)).unwrap_or(0);
            if budget.is_some_and(|b| at_least >= b) {
                return None;
            }
        }
        if seen.len() > max_entries || (budget.is_some() && i == 1023 && seen.len() > 512) {
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
    let best_other = plain.min(for_len).min(delta_len).min(rle_len);
    let dict = match force {
        Some(Encoding::Dictionary) => distinct_i64(vals, width, None),
        None if for_width > 8 => distinct_i64(vals, width, Some(best_other)),
        _ => None,
    };
    let dict_len = dict.as_ref().map_or(usize::MAX, |d| {
        5 + d.len() * width + packed_len(n, width_for(d.len() as u64 - 1)).unwrap_or(usize::MAX)
    });
    let choice = match force {
        Some(Encoding::Dictionary) if dict.is_none() => return None,
        Some(Encoding::DecimalScaled) => return None,
        Some(e) => e,
        None => {
            let best = best_other.min(dict_len);
            [
                (rle_len, Encoding::RunLength),
                (for_len, Encoding::FrameOfReference),
                (delta_len, Encoding::DeltaBitPack),
                (dict_len, Encoding::Dictionary),
            ]
            .into_iter()
            .find(|(len, _)| *len == best)
            .map_or(Encoding::Plain, |(_, e)| e)
        }
    };
    Some(if choice == Encoding::RunLength {
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
            unpack(c.rest(), n, w, |v| out.push(min.wrapping_add(v as i64)))?;
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

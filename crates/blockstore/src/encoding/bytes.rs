//! String and binary encodings: plain (bit-packed lengths + data), dictionary (flat or with
//! nested-encoded indices), run-length.
use foldhash::HashMap;
use std::sync::Arc;

use arrow_array::builder::make_view;
use arrow_array::{Array, ArrayRef, BinaryArray, BinaryViewArray, StringArray, StringViewArray};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};

use super::bitpack::{pack, packed_len, unpack, unpack_extend, width_for};
use super::{Cursor, DecodeError, Encoding, ints};
use crate::zone::{Scalar, bytes_bounds};

const DICT_MAX: usize = 1 << 16;

/// The values of a Utf8/Binary array as byte slices (null slots as stored, usually empty).
fn slices(array: &dyn Array) -> Vec<&[u8]> {
    let (offsets, values): (&[i32], &[u8]) = if let Some(s) = array.as_any().downcast_ref::<StringArray>() {
        (s.value_offsets(), s.values().as_slice())
    } else if let Some(b) = array.as_any().downcast_ref::<BinaryArray>() {
        (b.value_offsets(), b.values().as_slice())
    } else {
        (&[0], &[])
    };
    offsets
        .windows(2)
        .map(|w| &values[w[0] as usize..w[1] as usize])
        .collect()
}

pub(super) fn encode(
    array: &dyn Array,
    nulls: Option<&NullBuffer>,
    out: &mut Vec<u8>,
    force: Option<Encoding>,
) -> Option<(Encoding, Option<Scalar>, Option<Scalar>)> {
    let vals = slices(array);
    let n = vals.len();
    let valid = |i: usize| nulls.is_none_or(|b| b.is_valid(i));
    let (mut min, mut max): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    let mut runs = usize::from(n > 0);
    let (mut total, mut max_len) = (0usize, 0usize);
    for (i, v) in vals.iter().enumerate() {
        total += v.len();
        max_len = max_len.max(v.len());
        if i > 0 && vals[i - 1] != *v {
            runs += 1;
        }
        if valid(i) {
            if min.is_none_or(|m| *v < m) {
                min = Some(v);
            }
            if max.is_none_or(|m| *v > m) {
                max = Some(v);
            }
        }
    }
    let (zmin, zmax) = bytes_bounds(min, max);
    let plain_len = 1 + packed_len(n, width_for(max_len as u64)).unwrap_or(usize::MAX) + total;
    let rle_len = if runs * 4 < n {
        4 + runs * 8 + total / n.max(1) * runs
    } else {
        usize::MAX
    };
    let dict = match force {
        Some(Encoding::Dictionary | Encoding::DictionaryCascaded) => build_dict(&vals, None),
        None => build_dict(&vals, Some(plain_len.min(rle_len))),
        _ => None,
    };
    // Unforced, a dictionary is always written cascaded (sorted and front-coded, indices
    // nested-encoded); the flat layout stays readable, and forcible for tests.
    let mut cascaded = Vec::new();
    if let Some((d, index)) = dict.as_ref().filter(|_| force != Some(Encoding::Dictionary)) {
        write_cascaded(d, index, &mut cascaded);
    }
    let dict_len = if dict.is_some() { cascaded.len() } else { usize::MAX };
    let choice = match force {
        Some(Encoding::Dictionary | Encoding::DictionaryCascaded) if dict.is_none() => return None,
        Some(e @ (Encoding::Plain | Encoding::RunLength | Encoding::Dictionary | Encoding::DictionaryCascaded)) => e,
        Some(_) => return None,
        None if rle_len < plain_len && rle_len <= dict_len => Encoding::RunLength,
        None if dict_len < plain_len => Encoding::DictionaryCascaded,
        None => Encoding::Plain,
    };
    let enc = if choice == Encoding::RunLength {
        out.extend_from_slice(&(runs as u32).to_le_bytes());
        let mut start = 0;
        for i in 1..=n {
            if i == n || vals[i] != vals[start] {
                out.extend_from_slice(&((i - start) as u32).to_le_bytes());
                out.extend_from_slice(&(vals[start].len() as u32).to_le_bytes());
                out.extend_from_slice(vals[start]);
                start = i;
            }
        }
        Encoding::RunLength
    } else if choice == Encoding::DictionaryCascaded {
        out.extend_from_slice(&cascaded);
        Encoding::DictionaryCascaded
    } else if choice == Encoding::Dictionary {
        let (dict, index) = dict.expect("dictionary computed");
        write_plain(&dict, out);
        let iw = width_for(dict.len().saturating_sub(1) as u64);
        out.push(iw);
        pack(index.into_iter().map(u64::from), iw, out);
        Encoding::Dictionary
    } else {
        write_plain(&vals, out);
        Encoding::Plain
    };
    Some((enc, zmin, zmax))
}

/// Cascaded dictionary layout: `count u32 | prefixes_len u32 | nested shared-prefix lengths |
/// suffixes_len u32 | nested suffix lengths | suffix bytes | nested indices`. Entries are
/// sorted and each stored as the length of the prefix it shares with the one before plus the
/// rest (front coding): codes and identifiers share most of their bytes with a neighbour.
fn write_cascaded(dict: &[&[u8]], index: &[u32], out: &mut Vec<u8>) {
    let mut order: Vec<u32> = (0..dict.len() as u32).collect();
    order.sort_unstable_by_key(|&i| dict[i as usize]);
    let mut rank = vec![0u32; dict.len()];
    for (k, &i) in order.iter().enumerate() {
        rank[i as usize] = k as u32;
    }
    let (mut prefixes, mut suffixes) = (Vec::with_capacity(dict.len()), Vec::with_capacity(dict.len()));
    let mut prev: &[u8] = &[];
    for &i in &order {
        let v = dict[i as usize];
        let shared = prev.iter().zip(v).take_while(|(a, b)| a == b).count();
        prefixes.push(shared as i64);
        suffixes.push((v.len() - shared) as i64);
        prev = v;
    }
    out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    for section in [&prefixes, &suffixes] {
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        ints::encode_nested(section, 4, out);
        let len = (out.len() - len_at - 4) as u32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
    prev = &[];
    for &i in &order {
        let v = dict[i as usize];
        let shared = prev.iter().zip(v).take_while(|(a, b)| a == b).count();
        out.extend_from_slice(&v[shared..]);
        prev = v;
    }
    let index: Vec<i64> = index.iter().map(|&i| i64::from(rank[i as usize])).collect();
    ints::encode_nested(&index, 4, out);
}

/// Reads a front-coded dictionary back as (offsets, data).
fn read_front_coded(c: &mut Cursor<'_>) -> Result<(Vec<i32>, Vec<u8>), DecodeError> {
    let count = c.u32()? as usize;
    if count > DICT_MAX {
        return Err(DecodeError("dictionary too large"));
    }
    let len = c.u32()? as usize;
    let prefixes = ints::decode_nested(c.take(len)?, count, 4)?;
    let len = c.u32()? as usize;
    let suffixes = ints::decode_nested(c.take(len)?, count, 4)?;
    let mut offsets = Vec::with_capacity(count + 1);
    offsets.push(0i32);
    let mut data: Vec<u8> = Vec::new();
    let mut prev = 0..0;
    for (&shared, &suffix) in prefixes.iter().zip(&suffixes) {
        let shared = usize::try_from(shared)
            .ok()
            .filter(|&s| s <= prev.len())
            .ok_or(DecodeError("dictionary prefix longer than the entry before"))?;
        let suffix = usize::try_from(suffix).map_err(|_| DecodeError("negative dictionary suffix"))?;
        let start = data.len();
        data.extend_from_within(prev.start..prev.start + shared);
        data.extend_from_slice(c.take(suffix)?);
        if data.len() > super::MAX_RAW_VALUES {
            return Err(DecodeError("dictionary too long"));
        }
        offsets.push(data.len() as i32);
        prev = start..data.len();
    }
    Ok((offsets, data))
}

/// Plain layout: u32 count | u8 length width | bit-packed lengths | concatenated bytes.
fn write_plain(vals: &[&[u8]], out: &mut Vec<u8>) {
    let max_len = vals.iter().map(|v| v.len()).max().unwrap_or(0);
    let w = width_for(max_len as u64);
    out.extend_from_slice(&(vals.len() as u32).to_le_bytes());
    out.push(w);
    pack(vals.iter().map(|v| v.len() as u64), w, out);
    for v in vals {
        out.extend_from_slice(v);
    }
}

/// Dictionary of distinct values in first-seen order and each row's index; `None` when the
/// column looks high-cardinality or the dictionary alone would outgrow `budget` bytes.
fn build_dict<'a>(vals: &[&'a [u8]], budget: Option<usize>) -> Option<(Vec<&'a [u8]>, Vec<u32>)> {
    let mut ids: HashMap<&[u8], u32> = HashMap::default();
    let mut dict = Vec::new();
    let mut dict_bytes = 0usize;
    let mut index = Vec::with_capacity(vals.len());
    for (i, v) in vals.iter().enumerate() {
        let next = dict.len() as u32;
        let id = *ids.entry(v).or_insert_with(|| {
            dict.push(*v);
            dict_bytes += v.len() + 1;
            next
        });
        index.push(id);
        // Give up early on values that are nearly all distinct (comments, names, ids): past
        // ~94% distinct in the first 1,024 rows or 75% in the first 8,192 a dictionary cannot
        // win, and hashing the rest of the page would only cost time. Medium cardinalities
        // (a fleet of aircraft seen over a few weeks of flights) keep going.
        let mostly_distinct = (i == 1023 && dict.len() > 960) || (i == 8191 && dict.len() > 6144);
        let over_budget = budget.is_some_and(|b| dict_bytes >= b || mostly_distinct);
        if dict.len() > DICT_MAX || over_budget {
            return None;
        }
    }
    Some((dict, index))
}

/// Reads the plain layout back as (offsets, data).
fn read_plain(c: &mut Cursor<'_>) -> Result<(Vec<i32>, Vec<u8>), DecodeError> {
    let n = c.u32()? as usize;
    if n > super::MAX_PAGE_ROWS.max(DICT_MAX) {
        return Err(DecodeError("too many values"));
    }
    let w = c.u8()?;
    let packed = c.take(packed_len(n, w).ok_or(DecodeError("length overflow"))?)?;
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0i32);
    let mut end: usize = 0;
    let mut overflow = false;
    unpack(packed, n, w, |len| {
        end = end.saturating_add(len as usize);
        overflow |= end > i32::MAX as usize;
        offsets.push(end as i32);
    })?;
    if overflow {
        return Err(DecodeError("values too long"));
    }
    let data = c.take(end)?.to_vec();
    Ok((offsets, data))
}

/// How a string or binary page is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BytesLayout {
    /// `Utf8` / `Binary`: offsets and the values copied back to back.
    #[default]
    Offsets,
    /// `Utf8View` / `BinaryView`: 16-byte views. A dictionary page's views point into its
    /// dictionary, so rows are never copied and UTF-8 is checked once per distinct value.
    Views,
}

pub(super) fn decode(
    enc: Encoding,
    data: &[u8],
    n: usize,
    nulls: Option<NullBuffer>,
    utf8: bool,
    layout: BytesLayout,
) -> Result<ArrayRef, DecodeError> {
    let mut c = Cursor::new(data);
    let (offsets, values) = match enc {
        Encoding::Plain => read_plain(&mut c)?,
        Encoding::Dictionary => {
            let dict = read_plain(&mut c)?;
            let iw = c.u8()?;
            let mut index = Vec::with_capacity(n);
            unpack_extend(c.rest(), n, iw, &mut index, |i| i)?;
            return expand_dict(dict, &index, n, nulls, utf8, layout);
        }
        Encoding::DictionaryCascaded => {
            let dict = read_front_coded(&mut c)?;
            let index: Vec<u64> = ints::decode_nested(c.rest(), n, 4)?
                .into_iter()
                .map(|i| i as u64)
                .collect();
            return expand_dict(dict, &index, n, nulls, utf8, layout);
        }
        Encoding::RunLength => {
            let runs = c.u32()?;
            let mut offsets = Vec::with_capacity(n + 1);
            offsets.push(0i32);
            let mut values = Vec::new();
            for _ in 0..runs {
                let count = c.u32()? as usize;
                let len = c.u32()? as usize;
                let v = c.take(len)?;
                if offsets.len() - 1 + count > n || values.len() + count.saturating_mul(len) > i32::MAX as usize {
                    return Err(DecodeError("runs exceed the page"));
                }
                for _ in 0..count {
                    values.extend_from_slice(v);
                    offsets.push(values.len() as i32);
                }
            }
            (offsets, values)
        }
        _ => return Err(DecodeError("encoding not valid for strings")),
    };
    if offsets.len() != n + 1 {
        return Err(DecodeError("value count differs from the page's row count"));
    }
    match layout {
        BytesLayout::Offsets => offsets_array(offsets, values, nulls, utf8),
        BytesLayout::Views => view_array(&offsets, values, None, nulls, utf8),
    }
}

/// An offsets array, its values checked (UTF-8 for strings).
fn offsets_array(
    offsets: Vec<i32>,
    values: Vec<u8>,
    nulls: Option<NullBuffer>,
    utf8: bool,
) -> Result<ArrayRef, DecodeError> {
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    let values = Buffer::from_vec(values);
    Ok(if utf8 {
        Arc::new(StringArray::try_new(offsets, values, nulls).map_err(|_| DecodeError("invalid UTF-8 string"))?)
    } else {
        Arc::new(BinaryArray::try_new(offsets, values, nulls).map_err(|_| DecodeError("invalid binary array"))?)
    })
}

/// A view array over `data`: entry `j` is `data[offsets[j]..offsets[j + 1]]`, row `i` is entry
/// `index[i]` (entry `i` without an index). Entries are checked once each — in bounds, and
/// UTF-8 for strings — so a dictionary page's rows share its entries' checks and bytes.
fn view_array(
    offsets: &[i32],
    data: Vec<u8>,
    index: Option<&[u64]>,
    nulls: Option<NullBuffer>,
    utf8: bool,
) -> Result<ArrayRef, DecodeError> {
    // A hostile page's offsets may run backwards or past its data.
    let entry_views = offsets
        .windows(2)
        .map(|w| {
            let (start, end) = (usize::try_from(w[0]).ok()?, usize::try_from(w[1]).ok()?);
            let value = data.get(start..end)?;
            if utf8 && std::str::from_utf8(value).is_err() {
                return None;
            }
            Some(make_view(value, 0, u32::try_from(start).ok()?))
        })
        .collect::<Option<Vec<u128>>>()
        .ok_or(DecodeError("string offsets out of range or not UTF-8"))?;
    let views = match index {
        None => entry_views,
        Some(index) => index
            .iter()
            .map(|&i| entry_views.get(usize::try_from(i).ok()?).copied())
            .collect::<Option<Vec<u128>>>()
            .ok_or(DecodeError("dictionary index out of range"))?,
    };
    let views = ScalarBuffer::from(views);
    let buffers = vec![Buffer::from_vec(data)];
    #[allow(unsafe_code)]
    // SAFETY: `try_new`'s checks hold by construction: every view was made by `make_view` from
    // `data[start..end]` with buffer index 0 and offset `start`, where that range was checked
    // to lie within `data` (buffer 0, moved in unchanged) and, for strings, to be valid UTF-8.
    // Re-validating would re-check every row of a dictionary page, which this layout avoids.
    Ok(unsafe {
        if utf8 {
            Arc::new(StringViewArray::new_unchecked(views, buffers, nulls))
        } else {
            Arc::new(BinaryViewArray::new_unchecked(views, buffers, nulls))
        }
    })
}

/// Rows of a dictionary page from the dictionary `(offsets, data)` and each row's index.
fn expand_dict(
    (doff, ddata): (Vec<i32>, Vec<u8>),
    index: &[u64],
    n: usize,
    nulls: Option<NullBuffer>,
    utf8: bool,
    layout: BytesLayout,
) -> Result<ArrayRef, DecodeError> {
    if index.len() != n {
        return Err(DecodeError("value count differs from the page's row count"));
    }
    if layout == BytesLayout::Views {
        return view_array(&doff, ddata, Some(index), nulls, utf8);
    }
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0i32);
    let mut values = Vec::new();
    for &i in index {
        let i = usize::try_from(i)
            .ok()
            .filter(|&i| i < doff.len().saturating_sub(1))
            .ok_or(DecodeError("dictionary index out of range"))?;
        // A hostile page's dictionary offsets may run backwards or past its data.
        let value = match (usize::try_from(doff[i]), usize::try_from(doff[i + 1])) {
            (Ok(start), Ok(end)) => ddata.get(start..end),
            _ => None,
        };
        values.extend_from_slice(value.ok_or(DecodeError("dictionary offsets out of range"))?);
        if values.len() > super::MAX_RAW_VALUES {
            return Err(DecodeError("values too long"));
        }
        offsets.push(values.len() as i32);
    }
    offsets_array(offsets, values, nulls, utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(dict: (Vec<i32>, &[u8]), index: &[u64], layout: BytesLayout) -> Result<ArrayRef, DecodeError> {
        expand_dict((dict.0, dict.1.to_vec()), index, index.len(), None, true, layout)
    }

    #[test]
    fn dictionary_offsets_running_backwards_or_past_the_data_are_errors_not_panics() {
        // Found by the block_payload fuzz target: an index of u64::MAX overflowed `i + 1`.
        for layout in [BytesLayout::Offsets, BytesLayout::Views] {
            let good = (vec![0, 1, 3], &b"abc"[..]);
            assert!(expand(good.clone(), &[u64::MAX], layout).is_err());
            assert!(expand((vec![0, 5, 2], b"abc"), &[1], layout).is_err());
            assert!(expand((vec![0, 9], b"abc"), &[0], layout).is_err());
            assert!(expand((vec![-1, 2], b"abc"), &[0], layout).is_err());
            let back = expand(good, &[1, 0], layout).unwrap();
            let strings: Vec<&str> = match layout {
                BytesLayout::Offsets => back
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .iter()
                    .flatten()
                    .collect(),
                BytesLayout::Views => back
                    .as_any()
                    .downcast_ref::<StringViewArray>()
                    .unwrap()
                    .iter()
                    .flatten()
                    .collect(),
            };
            assert_eq!(strings, ["bc", "a"]);
        }
    }

    #[test]
    fn a_dictionary_entry_that_is_not_utf8_fails_in_either_layout() {
        for layout in [BytesLayout::Offsets, BytesLayout::Views] {
            assert!(expand((vec![0, 1, 2], &[b'a', 0xFF]), &[1], layout).is_err());
        }
    }

    #[test]
    fn long_dictionary_entries_are_views_into_the_dictionary() {
        let long = "a value longer than twelve bytes";
        let data = format!("x{long}");
        let back = expand(
            (vec![0, 1, data.len() as i32], data.as_bytes()),
            &[1, 0, 1],
            BytesLayout::Views,
        )
        .unwrap();
        let views = back.as_any().downcast_ref::<StringViewArray>().unwrap();
        assert_eq!(views.iter().flatten().collect::<Vec<_>>(), [long, "x", long]);
        assert_eq!(views.data_buffers().len(), 1);
    }
}

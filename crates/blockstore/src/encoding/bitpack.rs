//! LSB-first bit packing of unsigned integers, `width` bits each (0..=64).
use super::DecodeError;

/// Bits needed to represent `max`.
pub fn width_for(max: u64) -> u8 {
    (64 - max.leading_zeros()) as u8
}

/// Bytes that `n` values of `width` bits occupy.
pub fn packed_len(n: usize, width: u8) -> Option<usize> {
    n.checked_mul(width as usize).map(|bits| bits.div_ceil(8))
}

/// Appends `values` packed at `width` bits each.
pub fn pack(values: impl Iterator<Item = u64>, width: u8, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    // Whole 64-bit words leave the accumulator at once (a byte at a time was most of the
    // integer encoders' time); the bytes are the same LSB-first stream.
    let mut acc: u128 = 0;
    let mut bits: u32 = 0;
    for v in values {
        acc |= u128::from(v) << bits;
        bits += u32::from(width);
        if bits >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            bits -= 64;
        }
    }
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..bits.div_ceil(8) as usize]);
}

/// Unpacks `n` values of `width` bits from `data`, calling `sink` for each.
pub fn unpack(data: &[u8], n: usize, width: u8, mut sink: impl FnMut(u64)) -> Result<(), DecodeError> {
    if width > 64 {
        return Err(DecodeError("bit width above 64"));
    }
    if width == 0 {
        (0..n).for_each(|_| sink(0));
        return Ok(());
    }
    let needed = packed_len(n, width).ok_or(DecodeError("bit-packed length overflows"))?;
    if data.len() < needed {
        return Err(DecodeError("bit-packed data truncated"));
    }
    let w = width as usize;
    let mask = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
    for i in 0..n {
        let bit = i * w;
        let byte = bit >> 3;
        let word = if byte + 16 <= data.len() {
            u128::from_le_bytes(data[byte..byte + 16].try_into().expect("16 bytes"))
        } else {
            let mut tmp = [0u8; 16];
            let tail = &data[byte..];
            tmp[..tail.len()].copy_from_slice(tail);
            u128::from_le_bytes(tmp)
        };
        sink(((word >> (bit & 7)) as u64) & mask);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(values in proptest::collection::vec(any::<u64>(), 0..300), width in 0u8..=64) {
            let mask = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
            let values: Vec<u64> = values.into_iter().map(|v| v & mask).collect();
            let mut packed = Vec::new();
            pack(values.iter().copied(), width, &mut packed);
            prop_assert_eq!(packed.len(), packed_len(values.len(), width).unwrap());
            let mut out = Vec::new();
            unpack(&packed, values.len(), width, |v| out.push(v)).unwrap();
            prop_assert_eq!(out, values);
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(unpack(&[0xFF], 3, 7, |_| {}).is_err());
        assert!(unpack(&[], 1, 65, |_| {}).is_err());
    }
}

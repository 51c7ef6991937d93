//! Zone maps: per-block min, max and null count, used to skip blocks before reading them.
use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// Longest string/binary bound kept in a zone map; longer minimums are truncated (still a valid
/// lower bound), longer maximums are dropped (unbounded).
pub const ZONE_BYTES_MAX: usize = 64;

/// A single typed value: a literal in a predicate or a zone-map bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    Bool(bool),
    /// Int32, Int64, Date32 (days) and Timestamp (µs) values.
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
}

impl Scalar {
    /// Orders two scalars of the same kind (floats by IEEE total order, as Arrow's kernels do).
    pub fn compare(&self, other: &Scalar) -> Option<Ordering> {
        match (self, other) {
            (Scalar::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
            (Scalar::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
            (Scalar::Float(a), Scalar::Float(b)) => Some(a.total_cmp(b)),
            (Scalar::Bytes(a), Scalar::Bytes(b)) => Some(a.as_slice().cmp(b.as_slice())),
            _ => None,
        }
    }
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
        }
    }
}

/// Min, max and null count of one block (or page).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ZoneMap {
    pub rows: u64,
    pub nulls: u64,
    /// Smallest non-null value; `None` when all values are null or no bound is kept.
    pub min: Option<Scalar>,
    /// Largest non-null value; `None` when all values are null or no bound is kept.
    pub max: Option<Scalar>,
}

impl ZoneMap {
    /// True if every value is null.
    pub fn all_null(&self) -> bool {
        self.nulls == self.rows
    }

    /// Combines two zone maps of consecutive row ranges.
    pub fn merge(&mut self, other: &ZoneMap) {
        let had_values = !self.all_null();
        let other_values = !other.all_null();
        self.min = match (had_values, other_values) {
            (true, true) => bound(&self.min, &other.min, Ordering::Less),
            (false, true) => other.min.clone(),
            _ => self.min.take(),
        };
        self.max = match (had_values, other_values) {
            (true, true) => bound(&self.max, &other.max, Ordering::Greater),
            (false, true) => other.max.clone(),
            _ => self.max.take(),
        };
        self.rows += other.rows;
        self.nulls += other.nulls;
    }
}

/// The more extreme of two bounds; an unknown bound stays unknown.
fn bound(a: &Option<Scalar>, b: &Option<Scalar>, keep: Ordering) -> Option<Scalar> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.compare(x) == Some(keep) {
            y.clone()
        } else {
            x.clone()
        }),
        _ => None,
    }
}

/// Zone bounds for byte strings: truncated minimum, maximum dropped when too long.
pub(crate) fn bytes_bounds(min: Option<&[u8]>, max: Option<&[u8]>) -> (Option<Scalar>, Option<Scalar>) {
    let min = min.map(|m| Scalar::Bytes(m[..m.len().min(ZONE_BYTES_MAX)].to_vec()));
    let max = max
        .filter(|m| m.len() <= ZONE_BYTES_MAX)
        .map(|m| Scalar::Bytes(m.to_vec()));
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_extremes_and_handles_all_null_parts() {
        let mut a = ZoneMap {
            rows: 3,
            nulls: 0,
            min: Some(Scalar::Int(5)),
            max: Some(Scalar::Int(9)),
        };
        a.merge(&ZoneMap {
            rows: 2,
            nulls: 2,
            min: None,
            max: None,
        });
        a.merge(&ZoneMap {
            rows: 2,
            nulls: 0,
            min: Some(Scalar::Int(1)),
            max: Some(Scalar::Int(7)),
        });
        assert_eq!((a.rows, a.nulls), (7, 2));
        assert_eq!(a.min, Some(Scalar::Int(1)));
        assert_eq!(a.max, Some(Scalar::Int(9)));
        let mut n = ZoneMap {
            rows: 1,
            nulls: 1,
            min: None,
            max: None,
        };
        n.merge(&ZoneMap {
            rows: 1,
            nulls: 0,
            min: Some(Scalar::Float(2.0)),
            max: Some(Scalar::Float(2.0)),
        });
        assert_eq!(n.min, Some(Scalar::Float(2.0)));
    }

    #[test]
    fn long_strings_truncate_min_and_drop_max() {
        let long = vec![b'x'; 100];
        let (min, max) = bytes_bounds(Some(&long), Some(&long));
        assert_eq!(min, Some(Scalar::Bytes(vec![b'x'; ZONE_BYTES_MAX])));
        assert_eq!(max, None);
    }
}

//! Distribution styles: which slice each row goes to.
use arrow_array::{Array, RecordBatch, UInt32Array};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How a table's rows are spread over slices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "style", content = "column", rename_all = "lowercase")]
pub enum Distribution {
    /// Round-robin: every batch is cut into equal contiguous parts (±1 row) over as many
    /// slices as it has [`MIN_PART_ROWS`] rows (all slices for a large batch, one for a small
    /// one), continuing at the slice after the last one used.
    Even,
    /// Hash of one column: equal values land on the same slice.
    Key(String),
    /// A full copy on the first slice of every node.
    All,
}

impl Distribution {
    /// Parses `even`, `all` or `key:COLUMN`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "even" => Ok(Distribution::Even),
            "all" => Ok(Distribution::All),
            _ => match s.strip_prefix("key:") {
                Some(col) if !col.is_empty() => Ok(Distribution::Key(col.to_owned())),
                _ => Err(Error::InvalidOption(format!(
                    "distribution `{s}`: expected even, all or key:COLUMN"
                ))),
            },
        }
    }
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Distribution::Even => f.write_str("even"),
            Distribution::Key(c) => write!(f, "key:{c}"),
            Distribution::All => f.write_str("all"),
        }
    }
}

/// Fewest rows an EVEN batch hands to one slice: a small table stays on one slice (or a few)
/// instead of costing a block per column on every slice, while a batch of a large load still
/// reaches every slice, so its encoding — and later its scans — run in parallel.
pub const MIN_PART_ROWS: usize = 4096;

/// Splits batches for one table.
#[derive(Debug)]
pub(crate) struct Splitter {
    dist: Distribution,
    key_index: Option<usize>,
    slices: usize,
    slices_per_node: usize,
    rotation: usize,
}

/// FNV-1a, 64-bit: a fixed hash so a key always maps to the same slice.
fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

impl Splitter {
    pub fn new(
        dist: &Distribution,
        schema: &arrow_schema::Schema,
        slices: usize,
        slices_per_node: usize,
    ) -> Result<Self> {
        let key_index =
            match dist {
                Distribution::Key(col) => Some(schema.index_of(col).map_err(|_| {
                    Error::InvalidOption(format!("distribution key `{col}` is not a column of the table"))
                })?),
                _ => None,
            };
        Ok(Self {
            dist: dist.clone(),
            key_index,
            slices,
            slices_per_node,
            rotation: 0,
        })
    }

    /// Starts round-robin at slice `rotation % slices` (EVEN tables only).
    pub fn rotated(mut self, rotation: usize) -> Self {
        self.rotation = rotation % self.slices.max(1);
        self
    }

    /// The part of `batch` for each slice (`None` where a slice gets nothing).
    pub fn split(&mut self, batch: &RecordBatch) -> Result<Vec<Option<RecordBatch>>> {
        let n = batch.num_rows();
        let mut out: Vec<Option<RecordBatch>> = vec![None; self.slices];
        match &self.dist {
            Distribution::Even => {
                let parts = (n / MIN_PART_ROWS).clamp(1, self.slices);
                let base = n / parts;
                let extra = n % parts;
                let mut start = 0;
                for k in 0..parts {
                    let slice = (k + self.rotation) % self.slices;
                    let len = base + usize::from(k < extra);
                    if len > 0 {
                        out[slice] = Some(batch.slice(start, len));
                    }
                    start += len;
                }
                // Next batch starts after the slices that got a part (or, when all did, after
                // those that got one row more), so the totals stay balanced.
                let advance = if parts < self.slices { parts } else { extra };
                self.rotation = (self.rotation + advance) % self.slices;
            }
            Distribution::All => {
                for node_first in (0..self.slices).step_by(self.slices_per_node) {
                    out[node_first] = Some(batch.clone());
                }
            }
            Distribution::Key(_) => {
                let col = batch.column(self.key_index.expect("key column"));
                let mut indices: Vec<Vec<u32>> = vec![Vec::new(); self.slices];
                for row in 0..n {
                    let slice = (hash_value(col.as_ref(), row) % self.slices as u64) as usize;
                    indices[slice].push(row as u32);
                }
                for (slice, idx) in indices.into_iter().enumerate() {
                    if !idx.is_empty() {
                        let idx = UInt32Array::from(idx);
                        out[slice] = Some(arrow_select::take::take_record_batch(batch, &idx)?);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Hash of one value's canonical bytes (nulls hash to 0).
fn hash_value(col: &dyn Array, row: usize) -> u64 {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use arrow_schema::DataType;
    if col.is_null(row) {
        return 0;
    }
    match col.data_type() {
        DataType::Int32 => fnv1a(
            &i64::from(col.as_primitive::<Int32Type>().value(row)).to_le_bytes(),
            FNV_OFFSET,
        ),
        DataType::Date32 => fnv1a(
            &i64::from(col.as_primitive::<Date32Type>().value(row)).to_le_bytes(),
            FNV_OFFSET,
        ),
        DataType::Int64 => fnv1a(&col.as_primitive::<Int64Type>().value(row).to_le_bytes(), FNV_OFFSET),
        DataType::Timestamp(_, _) => fnv1a(
            &col.as_primitive::<TimestampMicrosecondType>().value(row).to_le_bytes(),
            FNV_OFFSET,
        ),
        DataType::Float64 => fnv1a(
            &col.as_primitive::<Float64Type>().value(row).to_bits().to_le_bytes(),
            FNV_OFFSET,
        ),
        DataType::Boolean => fnv1a(&[u8::from(col.as_boolean().value(row))], FNV_OFFSET),
        DataType::Utf8 => fnv1a(col.as_string::<i32>().value(row).as_bytes(), FNV_OFFSET),
        DataType::Binary => fnv1a(col.as_binary::<i32>().value(row), FNV_OFFSET),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(n: i64) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 10))),
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("v{i}")))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn even_keeps_a_small_batch_on_one_slice_and_moves_on() {
        let mut s = Splitter::new(&Distribution::Even, &batch(1).schema(), 4, 2).unwrap();
        for expected in [0, 1, 2, 3, 0] {
            let parts = s.split(&batch(10)).unwrap();
            let got: Vec<usize> = parts.iter().map(|p| p.as_ref().map_or(0, |b| b.num_rows())).collect();
            let mut want = vec![0; 4];
            want[expected] = 10;
            assert_eq!(got, want);
        }
        let parts = s.split(&batch(3 * MIN_PART_ROWS as i64)).unwrap();
        let got: Vec<usize> = parts.iter().map(|p| p.as_ref().map_or(0, |b| b.num_rows())).collect();
        assert_eq!(got, vec![0, MIN_PART_ROWS, MIN_PART_ROWS, MIN_PART_ROWS]);
    }

    #[test]
    fn even_balances_within_one_row_per_batch_and_over_batches() {
        let mut s = Splitter::new(&Distribution::Even, &batch(1).schema(), 4, 2).unwrap();
        let mut totals = [0usize; 4];
        let m = MIN_PART_ROWS as i64;
        for n in [10 * m, 7 * m + 3, 4 * m + 1, 13 * m + 2] {
            let parts = s.split(&batch(n)).unwrap();
            let sizes: Vec<usize> = parts.iter().map(|p| p.as_ref().map_or(0, |b| b.num_rows())).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n as usize);
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
            for (t, s) in totals.iter_mut().zip(&sizes) {
                *t += s;
            }
        }
        assert!(
            totals.iter().max().unwrap() - totals.iter().min().unwrap() <= 1,
            "{totals:?}"
        );
    }

    #[test]
    fn key_puts_equal_keys_on_one_slice() {
        let b = batch(1000);
        let mut s = Splitter::new(&Distribution::Key("k".into()), &b.schema(), 4, 2).unwrap();
        let parts = s.split(&b).unwrap();
        let mut owner = std::collections::HashMap::new();
        for (slice, part) in parts.iter().enumerate() {
            if let Some(p) = part {
                let keys = p.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                for k in keys.values() {
                    assert_eq!(*owner.entry(*k).or_insert(slice), slice);
                }
            }
        }
        assert_eq!(owner.len(), 10);
        assert!(Splitter::new(&Distribution::Key("nope".into()), &b.schema(), 4, 2).is_err());
    }

    #[test]
    fn all_copies_to_the_first_slice_of_every_node() {
        let mut s = Splitter::new(&Distribution::All, &batch(1).schema(), 6, 3).unwrap();
        let parts = s.split(&batch(5)).unwrap();
        let got: Vec<bool> = parts.iter().map(Option::is_some).collect();
        assert_eq!(got, vec![true, false, false, true, false, false]);
    }

    #[test]
    fn parse_styles() {
        assert_eq!(Distribution::parse("even").unwrap(), Distribution::Even);
        assert_eq!(Distribution::parse("key:id").unwrap(), Distribution::Key("id".into()));
        assert!(Distribution::parse("key:").is_err() && Distribution::parse("hash").is_err());
    }
}

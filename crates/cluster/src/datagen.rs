//! A deterministic, lineitem-like data generator (TPC-H inspired) for the demo and benchmarks.
use std::sync::Arc;

use arrow_array::builder::{Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Rows per generated batch.
pub const BATCH_ROWS: usize = 65_536;

const SHIPMODES: [&str; 7] = ["REG AIR", "AIR", "RAIL", "SHIP", "TRUCK", "MAIL", "FOB"];
const WORDS: [&str; 40] = [
    "furiously",
    "sly",
    "careful",
    "blithely",
    "quickly",
    "fluffily",
    "slyly",
    "carefully",
    "ironic",
    "final",
    "regular",
    "express",
    "pending",
    "bold",
    "even",
    "special",
    "silent",
    "unusual",
    "deposits",
    "requests",
    "packages",
    "accounts",
    "instructions",
    "theodolites",
    "pinto",
    "beans",
    "foxes",
    "ideas",
    "dependencies",
    "excuses",
    "platelets",
    "asymptotes",
    "courts",
    "dolphins",
    "multipliers",
    "sauternes",
    "warthogs",
    "frets",
    "dinos",
    "attainments",
];
/// 1992-01-01 in days since the epoch.
const START_DAY: i32 = 8035;
/// About six and a half years of ship dates.
const SPAN_DAYS: i64 = 2374;

/// The schema of the generated table.
pub fn lineitem_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("l_orderkey", DataType::Int64, false),
        Field::new("l_partkey", DataType::Int64, false),
        Field::new("l_suppkey", DataType::Int64, false),
        Field::new("l_linenumber", DataType::Int32, false),
        Field::new("l_quantity", DataType::Int32, false),
        Field::new("l_extendedprice", DataType::Float64, false),
        Field::new("l_discount", DataType::Float64, false),
        Field::new("l_tax", DataType::Float64, false),
        Field::new("l_returnflag", DataType::Utf8, false),
        Field::new("l_linestatus", DataType::Utf8, false),
        Field::new("l_shipdate", DataType::Date32, false),
        Field::new("l_shipmode", DataType::Utf8, false),
        Field::new("l_comment", DataType::Utf8, false),
    ]))
}

/// SplitMix64: small, fast, deterministic.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// Generates `rows` rows in batches of [`BATCH_ROWS`], the same for the same seed.
#[derive(Debug)]
pub struct Lineitem {
    rng: Rng,
    remaining: usize,
    total: usize,
    order: i64,
    line: i32,
    lines_in_order: i32,
}

impl Lineitem {
    /// A generator of `rows` rows from `seed`.
    pub fn new(rows: usize, seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            remaining: rows,
            total: rows.max(1),
            order: 0,
            line: 0,
            lines_in_order: 0,
        }
    }

    fn batch(&mut self, n: usize) -> RecordBatch {
        let mut orderkey = Int64Builder::with_capacity(n);
        let mut partkey = Int64Builder::with_capacity(n);
        let mut suppkey = Int64Builder::with_capacity(n);
        let mut linenumber = Int32Builder::with_capacity(n);
        let mut quantity = Int32Builder::with_capacity(n);
        let mut price = Float64Builder::with_capacity(n);
        let mut discount = Float64Builder::with_capacity(n);
        let mut tax = Float64Builder::with_capacity(n);
        let mut returnflag = StringBuilder::with_capacity(n, n);
        let mut linestatus = StringBuilder::with_capacity(n, n);
        let mut shipdate = Date32Builder::with_capacity(n);
        let mut shipmode = StringBuilder::with_capacity(n, n * 5);
        let mut comment = StringBuilder::with_capacity(n, n * 27);
        let mut text = String::with_capacity(64);
        for _ in 0..n {
            if self.line >= self.lines_in_order {
                self.order += 1;
                self.line = 0;
                self.lines_in_order = self.rng.range(1, 7) as i32;
            }
            self.line += 1;
            let r = &mut self.rng;
            let part = r.range(1, 200_000);
            let qty = r.range(1, 50);
            let retail = (90_000 + (part / 10) % 20_001 + 100 * (part % 1000)) as f64 / 100.0;
            let progress = (self.order * 4).min(self.total as i64) * SPAN_DAYS / self.total as i64;
            let day = START_DAY + (progress + r.range(-120, 120)).clamp(0, SPAN_DAYS + 120) as i32;
            orderkey.append_value(self.order);
            partkey.append_value(part);
            suppkey.append_value(r.range(1, 10_000));
            linenumber.append_value(self.line);
            quantity.append_value(qty as i32);
            price.append_value(((qty as f64) * retail * 100.0).round() / 100.0);
            discount.append_value(r.range(0, 10) as f64 / 100.0);
            tax.append_value(r.range(0, 8) as f64 / 100.0);
            let shipped_long_ago = day < START_DAY + 1260;
            returnflag.append_value(if shipped_long_ago {
                ["A", "R"][r.range(0, 1) as usize]
            } else {
                "N"
            });
            linestatus.append_value(if shipped_long_ago { "F" } else { "O" });
            shipdate.append_value(day);
            shipmode.append_value(SHIPMODES[r.range(0, 6) as usize]);
            let target = r.range(10, 43) as usize;
            text.clear();
            while text.len() < target {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(WORDS[r.range(0, WORDS.len() as i64 - 1) as usize]);
            }
            text.truncate(target);
            comment.append_value(text.trim_end());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(orderkey.finish()),
            Arc::new(partkey.finish()),
            Arc::new(suppkey.finish()),
            Arc::new(linenumber.finish()),
            Arc::new(quantity.finish()),
            Arc::new(price.finish()),
            Arc::new(discount.finish()),
            Arc::new(tax.finish()),
            Arc::new(returnflag.finish()),
            Arc::new(linestatus.finish()),
            Arc::new(shipdate.finish()),
            Arc::new(shipmode.finish()),
            Arc::new(comment.finish()),
        ];
        RecordBatch::try_new(lineitem_schema(), columns).expect("generated columns match the schema")
    }
}

impl Iterator for Lineitem {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        if self.remaining == 0 {
            return None;
        }
        let n = self.remaining.min(BATCH_ROWS);
        self.remaining -= n;
        Some(self.batch(n))
    }
}

/// Bytes of Arrow memory a batch occupies (the "MB of Arrow input" of the benchmarks).
pub fn arrow_bytes(batch: &RecordBatch) -> usize {
    batch.columns().iter().map(|c| c.get_buffer_memory_size()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let a: Vec<RecordBatch> = Lineitem::new(70_000, 7).collect();
        let b: Vec<RecordBatch> = Lineitem::new(70_000, 7).collect();
        assert_eq!(a, b);
        assert_eq!(a.iter().map(|b| b.num_rows()).sum::<usize>(), 70_000);
        assert_eq!(a[0].num_rows(), BATCH_ROWS);
        let c: Vec<RecordBatch> = Lineitem::new(1000, 8).collect();
        assert_ne!(c[0], a[0].slice(0, 1000));
    }
}

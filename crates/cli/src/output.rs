//! Printing scan results: csv, aligned table, JSON lines, count.
use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use sealstore_sql::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// `YYYY-MM-DD` of days since the epoch.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = sealstore_keyring::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` of microseconds since the epoch.
pub fn format_timestamp(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let day = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let base = format!(
        "{} {:02}:{:02}:{:02}",
        format_date(day),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac == 0 { base } else { format!("{base}.{frac:06}") }
}

/// One value as text; `None` for null.
pub fn value(col: &dyn Array, row: usize) -> Option<String> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Boolean => col.as_boolean().value(row).to_string(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float64 => col.as_primitive::<Float64Type>().value(row).to_string(),
        DataType::Utf8 => col.as_string::<i32>().value(row).to_owned(),
        DataType::Utf8View => col.as_string_view().value(row).to_owned(),
        DataType::Binary => hex(col.as_binary::<i32>().value(row)),
        DataType::BinaryView => hex(col.as_binary_view().value(row)),
        DataType::Date32 => format_date(i64::from(col.as_primitive::<Date32Type>().value(row))),
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            format_timestamp(col.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        // What SQL computes beyond the stored types (decimals, intervals, views, …).
        _ => {
            let options = FormatOptions::default();
            match ArrayFormatter::try_new(col, &options) {
                Ok(f) => f.value(row).to_string(),
                Err(_) => format!("<{}>", col.data_type()),
            }
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn json_value(col: &dyn Array, row: usize) -> serde_json::Value {
    use serde_json::Value;
    if col.is_null(row) {
        return Value::Null;
    }
    match col.data_type() {
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).into(),
        DataType::Float64 => serde_json::Number::from_f64(col.as_primitive::<Float64Type>().value(row))
            .map_or_else(|| Value::String(value(col, row).unwrap_or_default()), Value::Number),
        _ => Value::String(value(col, row).unwrap_or_default()),
    }
}

/// Output format of `scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Table,
    Json,
    Count,
}

/// Writes batches in a format; returns the rows written.
pub struct Printer<W: Write> {
    format: Format,
    out: W,
    header_done: bool,
    table_rows: Vec<Vec<String>>,
    headers: Vec<String>,
    pub rows: u64,
}

impl<W: Write> Printer<W> {
    pub fn new(format: Format, out: W, headers: Vec<String>) -> Self {
        Self {
            format,
            out,
            header_done: false,
            table_rows: Vec::new(),
            headers,
            rows: 0,
        }
    }

    pub fn batch(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        self.rows += batch.num_rows() as u64;
        match self.format {
            Format::Count => {}
            Format::Csv => {
                let mut w = csv::WriterBuilder::new().from_writer(&mut self.out);
                if !self.header_done {
                    w.write_record(&self.headers)?;
                    self.header_done = true;
                }
                for r in 0..batch.num_rows() {
                    let rec: Vec<String> = batch
                        .columns()
                        .iter()
                        .map(|c| value(c.as_ref(), r).unwrap_or_default())
                        .collect();
                    w.write_record(&rec)?;
                }
                w.flush()?;
            }
            Format::Json => {
                for r in 0..batch.num_rows() {
                    let obj: serde_json::Map<String, serde_json::Value> = self
                        .headers
                        .iter()
                        .zip(batch.columns())
                        .map(|(h, c)| (h.clone(), json_value(c.as_ref(), r)))
                        .collect();
                    writeln!(self.out, "{}", serde_json::Value::Object(obj))?;
                }
            }
            Format::Table => {
                for r in 0..batch.num_rows() {
                    self.table_rows.push(
                        batch
                            .columns()
                            .iter()
                            .map(|c| value(c.as_ref(), r).unwrap_or_else(|| "NULL".into()))
                            .collect(),
                    );
                }
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<u64> {
        match self.format {
            Format::Count => writeln!(self.out, "{}", self.rows)?,
            Format::Table => {
                let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
                for row in &self.table_rows {
                    for (w, v) in widths.iter_mut().zip(row) {
                        *w = (*w).max(v.chars().count());
                    }
                }
                let line = |cells: &[String], out: &mut W| -> std::io::Result<()> {
                    let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
                    writeln!(out, "{}", parts.join(" | ").trim_end())
                };
                line(&self.headers, &mut self.out)?;
                writeln!(
                    self.out,
                    "{}",
                    widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-")
                )?;
                for row in &self.table_rows {
                    line(row, &mut self.out)?;
                }
                writeln!(self.out, "({} rows)", self.rows)?;
            }
            Format::Csv if !self.header_done => {
                csv::WriterBuilder::new()
                    .from_writer(&mut self.out)
                    .write_record(&self.headers)?;
            }
            _ => {}
        }
        self.out.flush()?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(10_957), "2000-01-01");
        assert_eq!(format_timestamp(86_401_500_000), "1970-01-02 00:00:01.500000");
        assert_eq!(format_timestamp(-1_000_000), "1969-12-31 23:59:59");
    }
}

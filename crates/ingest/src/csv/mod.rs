//! CSV input: schema from `--schema` or inferred from the header and a sample, then a stream of
//! Arrow batches parsed in parallel (arrow's CSV reader, per chunk of whole records); every error
//! names its line.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use arrow_schema::{Field, Schema};
use sealstore_blockstore::ColumnType;
use sealstore_blockstore::predicate::{parse_date, parse_timestamp};

use crate::Error;

mod parallel;
mod rows;
mod split;

pub use parallel::CsvBatches;

/// Rows sampled for type inference.
const SAMPLE_ROWS: usize = 1000;

/// Parses `col:type,col:type`.
pub fn parse_schema(spec: &str) -> Result<Schema, Error> {
    let mut fields = Vec::new();
    for part in spec.split(',') {
        let (name, ty) = part
            .split_once(':')
            .ok_or_else(|| Error::Usage(format!("--schema: `{part}` is not `column:type`")))?;
        let ty = ColumnType::parse(ty.trim()).ok_or_else(|| {
            Error::Usage(format!(
                "--schema: unknown type `{}` (use bool, i32, i64, f64, utf8, binary, date, timestamp)",
                ty.trim()
            ))
        })?;
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::Usage(format!("--schema: empty column name in `{part}`")));
        }
        fields.push(Field::new(name, ty.arrow(), true));
    }
    Ok(Schema::new(fields))
}

fn reader(path: &Path) -> Result<::csv::Reader<BufReader<File>>, Error> {
    let file = File::open(path).map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
    Ok(::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(BufReader::with_capacity(1 << 20, file)))
}

/// Words a tokenizer error; `line_offset` is added to the line the tokenizer counted.
fn csv_error(path: &Path, e: ::csv::Error, line_offset: u64) -> Error {
    let line = line_offset + e.position().map(|p| p.line()).unwrap_or(1);
    match e.kind() {
        ::csv::ErrorKind::UnequalLengths { expected_len, len, .. } => Error::Input(format!(
            "{}: line {line}: expected {expected_len} fields, found {len}",
            path.display()
        )),
        ::csv::ErrorKind::Utf8 { .. } => Error::Input(format!("{}: line {line}: invalid UTF-8", path.display())),
        _ => Error::Input(format!("{}: line {line}: {e}", path.display())),
    }
}

/// The header's column names.
pub fn header(path: &Path) -> Result<Vec<String>, Error> {
    let mut r = reader(path)?;
    let h = r.headers().map_err(|e| csv_error(path, e, 0))?.clone();
    if h.is_empty() || (h.len() == 1 && h[0].is_empty()) {
        return Err(Error::Input(format!(
            "{}: empty file or empty header line",
            path.display()
        )));
    }
    Ok(h.iter().map(|s| s.trim().to_owned()).collect())
}

/// Infers a schema from the header and the first rows: the narrowest of i64, f64, date,
/// timestamp, bool, utf8 that every non-empty value of a column parses as.
pub fn infer_schema(path: &Path) -> Result<Schema, Error> {
    let names = header(path)?;
    let mut candidates: Vec<Vec<ColumnType>> = names
        .iter()
        .map(|_| {
            vec![
                ColumnType::Int64,
                ColumnType::Float64,
                ColumnType::Date32,
                ColumnType::TimestampMicros,
                ColumnType::Boolean,
            ]
        })
        .collect();
    let mut seen_value = vec![false; names.len()];
    let mut r = reader(path)?;
    for record in r.records().take(SAMPLE_ROWS) {
        let record = record.map_err(|e| csv_error(path, e, 0))?;
        for (i, v) in record.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            seen_value[i] = true;
            candidates[i].retain(|t| parse_value(*t, v).is_some());
        }
    }
    let fields: Vec<Field> = names
        .iter()
        .zip(candidates)
        .zip(seen_value)
        .map(|((name, c), seen)| {
            let ty = if seen {
                c.first().copied().unwrap_or(ColumnType::Utf8)
            } else {
                ColumnType::Utf8
            };
            Field::new(name, ty.arrow(), true)
        })
        .collect();
    Ok(Schema::new(fields))
}

enum Parsed {
    Bool(bool),
    Int(i64),
    Float(f64),
}

fn parse_value(ty: ColumnType, v: &str) -> Option<Parsed> {
    let v = v.trim();
    match ty {
        ColumnType::Int64 | ColumnType::Int32 => v.parse::<i64>().ok().map(Parsed::Int),
        ColumnType::Float64 => v.parse::<f64>().ok().map(Parsed::Float),
        ColumnType::Date32 => parse_date(v).map(Parsed::Int),
        ColumnType::TimestampMicros => parse_timestamp(v).filter(|_| v.len() > 10).map(Parsed::Int),
        ColumnType::Boolean => match v.to_ascii_lowercase().as_str() {
            "true" => Some(Parsed::Bool(true)),
            "false" => Some(Parsed::Bool(false)),
            _ => None,
        },
        ColumnType::Utf8 | ColumnType::Binary => None,
    }
}

/// Counts bytes read, for the progress bar.
#[derive(Debug)]
pub struct Counting<R> {
    pub inner: R,
    pub count: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

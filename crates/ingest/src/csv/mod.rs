//! CSV input: schema from `--schema` or inferred from the header and a sample, then a stream of
//! Arrow batches; every error names its line.
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema, SchemaRef};
use sealstore_blockstore::ColumnType;
use sealstore_blockstore::predicate::{parse_date, parse_timestamp};

use crate::Error;

/// Rows per batch handed to the cluster.
const BATCH_ROWS: usize = 65_536;
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

fn csv_error(path: &Path, e: ::csv::Error) -> Error {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
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
    let h = r.headers().map_err(|e| csv_error(path, e))?.clone();
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
        let record = record.map_err(|e| csv_error(path, e))?;
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

enum Builder {
    Bool(BooleanBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Boolean => Builder::Bool(BooleanBuilder::new()),
            ColumnType::Int32 => Builder::I32(Int32Builder::new()),
            ColumnType::Int64 => Builder::I64(Int64Builder::new()),
            ColumnType::Float64 => Builder::F64(Float64Builder::new()),
            ColumnType::Utf8 => Builder::Utf8(StringBuilder::new()),
            ColumnType::Binary => Builder::Binary(BinaryBuilder::new()),
            ColumnType::Date32 => Builder::Date(Date32Builder::new()),
            ColumnType::TimestampMicros => Builder::Ts(TimestampMicrosecondBuilder::new()),
        }
    }

    /// Appends one field; `Err` holds what the value should have been.
    fn push(&mut self, ty: ColumnType, v: &str) -> Result<(), &'static str> {
        let null = v.is_empty();
        macro_rules! num {
            ($b:expr, $parsed:pat => $val:expr, $what:expr) => {{
                if null {
                    $b.append_null();
                } else {
                    match parse_value(ty, v) {
                        Some($parsed) => $b.append_value($val),
                        _ => return Err($what),
                    }
                }
            }};
        }
        match self {
            Builder::Bool(b) => num!(b, Parsed::Bool(x) => x, "a boolean (true/false)"),
            Builder::I32(b) => {
                if null {
                    b.append_null();
                } else {
                    b.append_value(v.trim().parse::<i32>().map_err(|_| "a 32-bit integer")?);
                }
            }
            Builder::I64(b) => num!(b, Parsed::Int(x) => x, "a 64-bit integer"),
            Builder::F64(b) => num!(b, Parsed::Float(x) => x, "a number"),
            Builder::Date(b) => num!(b, Parsed::Int(x) => x as i32, "a date (YYYY-MM-DD)"),
            Builder::Ts(b) => {
                if null {
                    b.append_null();
                } else {
                    let t = v.trim();
                    b.append_value(
                        parse_timestamp(t)
                            .or_else(|| t.parse().ok())
                            .ok_or("a timestamp (YYYY-MM-DD HH:MM:SS)")?,
                    );
                }
            }
            Builder::Utf8(b) => {
                if null {
                    b.append_null()
                } else {
                    b.append_value(v)
                }
            }
            Builder::Binary(b) => {
                if null {
                    b.append_null()
                } else {
                    b.append_value(v.as_bytes())
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
        }
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

/// Streams a CSV file as batches of `schema` (header names must equal the schema's).
#[derive(Debug)]
pub struct CsvBatches {
    path: std::path::PathBuf,
    reader: ::csv::Reader<Counting<BufReader<File>>>,
    schema: SchemaRef,
    types: Vec<ColumnType>,
    done: bool,
    pub bytes_read: Arc<std::sync::atomic::AtomicU64>,
}

impl CsvBatches {
    pub fn open(path: &Path, schema: SchemaRef) -> Result<Self, Error> {
        let names = header(path)?;
        let expected: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if names != expected {
            return Err(Error::Input(format!(
                "{}: header columns [{}] do not match the table's columns [{}]",
                path.display(),
                names.join(", "),
                expected.join(", ")
            )));
        }
        let file = File::open(path).map_err(|e| Error::Input(format!("cannot read {}: {e}", path.display())))?;
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let inner = Counting {
            inner: BufReader::with_capacity(1 << 20, file),
            count: count.clone(),
        };
        let reader = ::csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(inner);
        let types = schema
            .fields()
            .iter()
            .map(|f| ColumnType::from_arrow(f.data_type()).expect("table schemas hold supported types"))
            .collect();
        Ok(Self {
            path: path.to_owned(),
            reader,
            schema,
            types,
            done: false,
            bytes_read: count,
        })
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, Error> {
        let mut builders: Vec<Builder> = self.types.iter().map(|t| Builder::new(*t)).collect();
        let mut record = ::csv::StringRecord::new();
        let mut rows = 0;
        while rows < BATCH_ROWS {
            match self.reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Err(e) => return Err(csv_error(&self.path, e)),
            }
            let line = record.position().map_or(0, |p| p.line());
            for (i, ((b, ty), v)) in builders.iter_mut().zip(&self.types).zip(record.iter()).enumerate() {
                b.push(*ty, v).map_err(|what| {
                    Error::Input(format!(
                        "{}: line {line}: column `{}`: `{v}` is not {what}",
                        self.path.display(),
                        self.schema.field(i).name()
                    ))
                })?;
            }
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
        RecordBatch::try_new(self.schema.clone(), columns)
            .map(Some)
            .map_err(|e| Error::Input(e.to_string()))
    }
}

impl Iterator for CsvBatches {
    type Item = Result<RecordBatch, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_batch() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

//! The exact CSV path: the `csv` crate's tokenizer and sealstore's own value rules, record by
//! record. It decides what a chunk means when arrow's faster reader refuses it (leading spaces
//! in numbers, integer timestamps) and words every error with its line and column.
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;
use sealstore_blockstore::ColumnType;
use sealstore_blockstore::predicate::parse_timestamp;

use super::{Parsed, csv_error, parse_value};
use crate::Error;

/// Parses `bytes` (whole records, no header; its first line is `first_line` of `path`) into one
/// batch of `schema`.
pub(crate) fn parse_exact(
    path: &Path,
    bytes: &[u8],
    first_line: u64,
    schema: &SchemaRef,
    types: &[ColumnType],
) -> Result<RecordBatch, Error> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        // Field counts are checked against the schema below, not against the chunk's first record.
        .flexible(true)
        .from_reader(bytes);
    let mut builders: Vec<Builder> = types.iter().map(|t| Builder::new(*t)).collect();
    let mut record = ::csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, e, first_line - 1)),
        }
        let line = first_line - 1 + record.position().map_or(1, |p| p.line());
        if record.len() != types.len() {
            return Err(Error::Input(format!(
                "{}: line {line}: expected {} fields, found {}",
                path.display(),
                types.len(),
                record.len()
            )));
        }
        for (i, ((b, ty), v)) in builders.iter_mut().zip(types).zip(record.iter()).enumerate() {
            b.push(*ty, v).map_err(|what| {
                Error::Input(format!(
                    "{}: line {line}: column `{}`: `{v}` is not {what}",
                    path.display(),
                    schema.field(i).name()
                ))
            })?;
        }
    }
    let columns: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::Input(e.to_string()))
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

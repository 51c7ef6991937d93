//! The column types sealstore stores, and their Arrow equivalents.
use arrow_schema::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

/// A supported column type. Every column is nullable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnType {
    Boolean,
    Int32,
    Int64,
    Float64,
    Utf8,
    Binary,
    Date32,
    /// Timestamp with microsecond unit and no time zone.
    TimestampMicros,
}

/// How values are laid out while encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Physical {
    Bool,
    I32,
    I64,
    F64,
    Bytes,
}

impl ColumnType {
    /// The sealstore type for an Arrow type, if supported.
    pub fn from_arrow(dt: &DataType) -> Option<Self> {
        Some(match dt {
            DataType::Boolean => Self::Boolean,
            DataType::Int32 => Self::Int32,
            DataType::Int64 => Self::Int64,
            DataType::Float64 => Self::Float64,
            DataType::Utf8 => Self::Utf8,
            DataType::Binary => Self::Binary,
            DataType::Date32 => Self::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None) => Self::TimestampMicros,
            _ => return None,
        })
    }

    /// The type a column of Arrow type `dt` is stored as when it arrives from another source
    /// (SQL results, Parquet, Arrow IPC, JSON): the type itself if supported, else its lossless
    /// widening — narrow integers to Int32, UInt32 to Int64, Float16/32 to Float64, large and
    /// view strings and binaries to their plain form, timestamps without time zone of any unit
    /// to microseconds (nanoseconds truncated). `None` for the rest (decimals, UInt64, nested …).
    pub fn stored_as(dt: &DataType) -> Option<Self> {
        if let Some(t) = Self::from_arrow(dt) {
            return Some(t);
        }
        Some(match dt {
            DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => Self::Int32,
            DataType::UInt32 => Self::Int64,
            DataType::Float16 | DataType::Float32 => Self::Float64,
            DataType::LargeUtf8 | DataType::Utf8View => Self::Utf8,
            DataType::LargeBinary | DataType::BinaryView => Self::Binary,
            DataType::Timestamp(_, None) => Self::TimestampMicros,
            _ => return None,
        })
    }

    /// The Arrow type scans return.
    pub fn arrow(&self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Utf8 => DataType::Utf8,
            Self::Binary => DataType::Binary,
            Self::Date32 => DataType::Date32,
            Self::TimestampMicros => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }

    /// The Arrow type a scan returns for this column with strings and binary in `layout`.
    pub fn arrow_as(&self, layout: crate::BytesLayout) -> DataType {
        match (self, layout) {
            (Self::Utf8, crate::BytesLayout::Views) => DataType::Utf8View,
            (Self::Binary, crate::BytesLayout::Views) => DataType::BinaryView,
            _ => self.arrow(),
        }
    }

    pub(crate) fn physical(&self) -> Physical {
        match self {
            Self::Boolean => Physical::Bool,
            Self::Int32 | Self::Date32 => Physical::I32,
            Self::Int64 | Self::TimestampMicros => Physical::I64,
            Self::Float64 => Physical::F64,
            Self::Utf8 | Self::Binary => Physical::Bytes,
        }
    }

    /// The one-byte code stored in block headers.
    pub fn code(&self) -> u8 {
        match self {
            Self::Boolean => 1,
            Self::Int32 => 2,
            Self::Int64 => 3,
            Self::Float64 => 4,
            Self::Utf8 => 5,
            Self::Binary => 6,
            Self::Date32 => 7,
            Self::TimestampMicros => 8,
        }
    }

    /// The type for a header code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Boolean,
            2 => Self::Int32,
            3 => Self::Int64,
            4 => Self::Float64,
            5 => Self::Utf8,
            6 => Self::Binary,
            7 => Self::Date32,
            8 => Self::TimestampMicros,
            _ => return None,
        })
    }

    /// The name used in `--schema` strings and listings.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Boolean => "bool",
            Self::Int32 => "i32",
            Self::Int64 => "i64",
            Self::Float64 => "f64",
            Self::Utf8 => "utf8",
            Self::Binary => "binary",
            Self::Date32 => "date",
            Self::TimestampMicros => "timestamp",
        }
    }

    /// Parses a type name (`bool`, `i32`, `int`, `i64`, `bigint`, `f64`, `double`, `utf8`,
    /// `string`, `text`, `binary`, `date`, `timestamp`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bool" | "boolean" => Self::Boolean,
            "i32" | "int" | "int32" | "integer" => Self::Int32,
            "i64" | "bigint" | "int64" | "long" => Self::Int64,
            "f64" | "double" | "float64" | "float" => Self::Float64,
            "utf8" | "string" | "text" | "varchar" => Self::Utf8,
            "binary" | "bytes" => Self::Binary,
            "date" | "date32" => Self::Date32,
            "timestamp" | "timestamp_us" => Self::TimestampMicros,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_arrow_types_round_trip() {
        for code in 1..=8 {
            let t = ColumnType::from_code(code).unwrap();
            assert_eq!(t.code(), code);
            assert_eq!(ColumnType::from_arrow(&t.arrow()), Some(t));
            assert_eq!(ColumnType::parse(t.name()), Some(t));
        }
        assert!(ColumnType::from_code(0).is_none());
        assert!(ColumnType::from_arrow(&DataType::Float32).is_none());
        assert!(ColumnType::from_arrow(&DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))).is_none());
    }
}

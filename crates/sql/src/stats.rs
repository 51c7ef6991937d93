//! DataFusion statistics from sealstore manifests: exact row and null counts, min/max from the
//! zone maps — known without reading or decrypting a block.
use arrow_schema::{DataType, Schema};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use sealstore_cluster::{Scalar, SliceStatistics, ZoneMap};

/// The statistics of one slice's rows of a table (all columns, schema order).
pub fn slice_statistics(slice: &SliceStatistics, schema: &Schema) -> Statistics {
    let mut stats = Statistics::default().with_num_rows(Precision::Exact(slice.rows as usize));
    for (zone, field) in slice.columns.iter().zip(schema.fields()) {
        stats = stats.add_column_statistics(column_statistics(zone, field.data_type()));
    }
    stats
}

fn column_statistics(zone: &ZoneMap, ty: &DataType) -> ColumnStatistics {
    let mut c = ColumnStatistics::new_unknown();
    c.null_count = Precision::Exact(zone.nulls as usize);
    if zone.all_null() {
        return c;
    }
    // Integer-like bounds are exact. Float bounds are kept inexact (zone maps order by IEEE
    // total order, SQL's MIN/MAX may not for NaN and signed zeros), and string bounds may be
    // truncated prefixes (a lower bound) or absent (too long to keep).
    let exact = matches!(
        ty,
        DataType::Boolean | DataType::Int32 | DataType::Int64 | DataType::Date32 | DataType::Timestamp(_, _)
    );
    let wrap = |v: ScalarValue| {
        if exact {
            Precision::Exact(v)
        } else {
            Precision::Inexact(v)
        }
    };
    if let Some(v) = zone.min.as_ref().and_then(|s| scalar_value(s, ty)) {
        c.min_value = wrap(v);
    }
    if let Some(v) = zone.max.as_ref().and_then(|s| scalar_value(s, ty)) {
        c.max_value = wrap(v);
    }
    c
}

/// A zone-map bound as a DataFusion scalar of the column's type.
fn scalar_value(s: &Scalar, ty: &DataType) -> Option<ScalarValue> {
    Some(match (s, ty) {
        (Scalar::Bool(b), DataType::Boolean) => ScalarValue::Boolean(Some(*b)),
        (Scalar::Int(i), DataType::Int32) => ScalarValue::Int32(Some(i32::try_from(*i).ok()?)),
        (Scalar::Int(i), DataType::Date32) => ScalarValue::Date32(Some(i32::try_from(*i).ok()?)),
        (Scalar::Int(i), DataType::Int64) => ScalarValue::Int64(Some(*i)),
        (Scalar::Int(i), DataType::Timestamp(_, None)) => ScalarValue::TimestampMicrosecond(Some(*i), None),
        (Scalar::Float(f), DataType::Float64) => ScalarValue::Float64(Some(*f)),
        // A truncated bound may end inside a UTF-8 sequence: then it is dropped.
        (Scalar::Bytes(b), DataType::Utf8) => ScalarValue::Utf8(Some(String::from_utf8(b.clone()).ok()?)),
        (Scalar::Bytes(b), DataType::Utf8View) => ScalarValue::Utf8View(Some(String::from_utf8(b.clone()).ok()?)),
        (Scalar::Bytes(b), DataType::Binary) => ScalarValue::Binary(Some(b.clone())),
        (Scalar::Bytes(b), DataType::BinaryView) => ScalarValue::BinaryView(Some(b.clone())),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use arrow_schema::Field;

    use super::*;

    #[test]
    fn row_and_null_counts_are_exact_and_integer_bounds_too() {
        let schema = Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Float64, true),
        ]);
        let slice = SliceStatistics {
            slice: 0,
            rows: 10,
            columns: vec![
                ZoneMap {
                    rows: 10,
                    nulls: 1,
                    min: Some(Scalar::Int(3)),
                    max: Some(Scalar::Int(90)),
                },
                ZoneMap {
                    rows: 10,
                    nulls: 0,
                    min: Some(Scalar::Bytes(b"a".to_vec())),
                    max: None,
                },
                ZoneMap {
                    rows: 10,
                    nulls: 10,
                    min: None,
                    max: None,
                },
            ],
            stored_bytes: vec![0; 3],
        };
        let s = slice_statistics(&slice, &schema);
        assert_eq!(s.num_rows, Precision::Exact(10));
        let c = &s.column_statistics;
        assert_eq!(c[0].null_count, Precision::Exact(1));
        assert_eq!(c[0].max_value, Precision::Exact(ScalarValue::Int64(Some(90))));
        assert_eq!(c[1].min_value, Precision::Inexact(ScalarValue::Utf8(Some("a".into()))));
        assert_eq!(c[1].max_value, Precision::Absent);
        assert_eq!(c[2].null_count, Precision::Exact(10));
        assert_eq!(c[2].min_value, Precision::Absent);
    }
}

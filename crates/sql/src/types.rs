//! The type mapping between SQL results and sealstore columns.
//!
//! sealstore stores eight types. A statement that creates or fills a table may produce others;
//! those with a lossless (or documented) home are cast, the rest are refused by name before
//! anything is written. The mapping itself is the storage layer's (`ColumnType::stored_as`),
//! shared with `sealstore load`.
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::compute::cast;
use sealstore_cluster::ColumnType;

use crate::{Error, Result};

/// The type sealstore stores a column of `ty` as, if any (see `ColumnType::stored_as`).
pub fn storable(ty: &DataType) -> Option<DataType> {
    ColumnType::stored_as(ty).map(|t| t.arrow())
}

/// `schema` as a scan returns it with the string and binary columns `views` as views.
pub fn view_schema(schema: &Schema, views: &[String]) -> SchemaRef {
    let fields = schema.fields().iter().map(|f| {
        let ty = match f.data_type() {
            DataType::Utf8 if views.contains(f.name()) => DataType::Utf8View,
            DataType::Binary if views.contains(f.name()) => DataType::BinaryView,
            other => other.clone(),
        };
        Field::new(f.name(), ty, f.is_nullable())
    });
    Arc::new(Schema::new(fields.collect::<Vec<_>>()))
}

/// The schema a table created from `schema` gets: storable types, every column nullable.
pub fn storable_schema(schema: &Schema) -> Result<SchemaRef> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            storable(f.data_type())
                .map(|ty| Field::new(f.name(), ty, true))
                .ok_or_else(|| Error::UnsupportedType {
                    column: f.name().clone(),
                    ty: f.data_type().to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// `batch` as a batch of `target` (a table's schema): columns cast where their type differs.
pub fn to_storable(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.num_columns() != target.fields().len() {
        return Err(Error::Unsupported(format!(
            "{} values for {} columns",
            batch.num_columns(),
            target.fields().len()
        )));
    }
    let columns = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(array, field)| {
            if array.data_type() == field.data_type() {
                Ok(array.clone())
            } else {
                cast(array, field.data_type())
                    .map_err(|e| Error::Unsupported(format!("column `{}`: {e}", field.name())))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use arrow_array::{Int16Array, StringViewArray};

    use super::*;

    #[test]
    fn narrow_and_view_types_are_stored_in_their_wide_plain_form() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int16, false),
            Field::new("s", DataType::Utf8View, false),
        ]);
        let target = storable_schema(&schema).unwrap();
        assert_eq!(target.field(0).data_type(), &DataType::Int32);
        assert_eq!(target.field(1).data_type(), &DataType::Utf8);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int16Array::from(vec![1, 2])),
                Arc::new(StringViewArray::from(vec!["x", "y"])),
            ],
        )
        .unwrap();
        let stored = to_storable(&batch, &target).unwrap();
        assert_eq!(stored.schema(), target);
        assert_eq!(stored.num_rows(), 2);
    }

    #[test]
    fn a_decimal_column_is_refused_by_name() {
        let schema = Schema::new(vec![Field::new("price", DataType::Decimal128(15, 2), true)]);
        let err = storable_schema(&schema).unwrap_err().to_string();
        assert!(err.contains("`price`") && err.contains("Decimal128(15, 2)"), "{err}");
    }
}

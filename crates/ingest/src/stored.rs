//! Batches of a typed file (JSON, IPC, Parquet) conformed to a table's schema.
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_cast::cast;
use arrow_schema::{Field, Schema, SchemaRef};
use sealstore_blockstore::ColumnType;

use crate::{Error, Result};

/// `schema` in the types sealstore stores (every column nullable); a column of a type with no
/// stored form is an error naming it.
pub fn stored_schema(path: &Path, schema: &Schema) -> Result<SchemaRef> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| {
            ColumnType::stored_as(f.data_type())
                .map(|t| Field::new(f.name(), t.arrow(), true))
                .ok_or_else(|| {
                    Error::Input(format!(
                        "{}: column `{}` has type {}, which sealstore does not store (bool, i32, i64, f64, utf8, binary, date, timestamp)",
                        path.display(),
                        f.name(),
                        f.data_type()
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Checks that the file's columns are the table's (same names, same order).
pub fn check_columns(path: &Path, file: &Schema, table: &Schema) -> Result<()> {
    let names = |s: &Schema| s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>();
    if names(file) != names(table) {
        return Err(Error::Input(format!(
            "{}: columns [{}] do not match the table's columns [{}]",
            path.display(),
            names(file).join(", "),
            names(table).join(", ")
        )));
    }
    Ok(())
}

/// `batch` as a batch of `table`: each column cast to the table's type.
pub fn conform(path: &Path, batch: &RecordBatch, table: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(table.fields())
        .map(|(a, f)| {
            if a.data_type() == f.data_type() {
                Ok(a.clone())
            } else {
                cast(a, f.data_type())
                    .map_err(|e| Error::Input(format!("{}: column `{}`: {e}", path.display(), f.name())))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(table.clone(), columns).map_err(|e| Error::Input(format!("{}: {e}", path.display())))
}

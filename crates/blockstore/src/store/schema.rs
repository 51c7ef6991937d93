//! Table schemas and names: what a table may be, and whether a batch fits it.
use super::*;

/// Validates an Arrow schema for a new table.
pub fn table_columns(schema: &Schema) -> Result<Vec<ColumnMeta>> {
    if schema.fields().is_empty() {
        return Err(Error::InvalidSchema("a table needs at least one column".into()));
    }
    let mut seen = std::collections::HashSet::new();
    schema
        .fields()
        .iter()
        .map(|f| {
            if f.name().is_empty() || !seen.insert(f.name().clone()) {
                return Err(Error::InvalidSchema(format!(
                    "column names must be unique and non-empty: `{}`",
                    f.name()
                )));
            }
            let ty = ColumnType::from_arrow(f.data_type()).ok_or_else(|| Error::UnsupportedType {
                column: f.name().clone(),
                data_type: f.data_type().to_string(),
            })?;
            Ok(ColumnMeta {
                name: f.name().clone(),
                ty,
                blocks: Vec::new(),
            })
        })
        .collect()
}

/// Table names: 1–128 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn validate_table_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSchema(format!(
            "invalid table name {name:?}: use 1-128 of [A-Za-z0-9_.-]"
        )))
    }
}

pub(crate) fn check_batch(t: &TableMeta, batch: &RecordBatch) -> Result<()> {
    let mismatch = |reason: String| Error::SchemaMismatch {
        table: t.name.clone(),
        reason,
    };
    if batch.num_columns() != t.columns.len() {
        return Err(mismatch(format!(
            "{} columns given, the table has {}",
            batch.num_columns(),
            t.columns.len()
        )));
    }
    for (field, col) in batch.schema().fields().iter().zip(&t.columns) {
        if field.name() != &col.name {
            return Err(mismatch(format!(
                "column `{}` where `{}` was expected",
                field.name(),
                col.name
            )));
        }
        if field.data_type() != &col.ty.arrow() {
            return Err(mismatch(format!(
                "column `{}` is {}, the table stores {}",
                col.name,
                field.data_type(),
                col.ty.arrow()
            )));
        }
    }
    Ok(())
}

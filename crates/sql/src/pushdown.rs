//! Filter pushdown: DataFusion expressions translated into sealstore predicates.
//!
//! A conjunct sealstore evaluates row-exactly (comparisons, BETWEEN, IS [NOT] NULL, IN lists,
//! `LIKE 'prefix%'`, and ANDs of those) is pushed as [`TableProviderFilterPushDown::Exact`]:
//! zone maps skip blocks before they are read or decrypted, and the surviving rows are filtered
//! by the same Arrow comparison kernels DataFusion would use. A `LIKE` whose pattern continues
//! after a literal prefix is pushed as `Inexact` (the prefix prunes; DataFusion re-checks the
//! whole pattern). Everything else is `Unsupported` and evaluated by DataFusion alone.
//!
//! A literal is translated only when its type is the column's own type (after DataFusion's
//! coercion and cast unwrapping), so a pushed comparison means exactly what DataFusion meant.
use arrow_schema::{DataType, Schema, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator, TableProviderFilterPushDown, expr::InList};
use sealstore_cluster::{CmpOp, Predicate, Scalar};

/// How one filter is pushed: the predicates sealstore applies, and whether they are the whole
/// filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    pub predicates: Vec<Predicate>,
    pub exact: bool,
}

/// Translates one filter (a conjunct of the query's WHERE) against the table's schema.
pub fn translate(expr: &Expr, schema: &Schema) -> Option<Pushed> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let l = translate(left, schema);
            let r = translate(right, schema);
            match (l, r) {
                (Some(mut l), Some(r)) => {
                    l.predicates.extend(r.predicates);
                    l.exact &= r.exact;
                    Some(l)
                }
                // One side alone still prunes; DataFusion re-applies the whole conjunction.
                (Some(one), None) | (None, Some(one)) => Some(Pushed { exact: false, ..one }),
                (None, None) => None,
            }
        }
        Expr::Like(like) => translate_like(like, schema),
        _ => exact(predicate(expr, schema)?),
    }
}

/// The pushdown class DataFusion is told for a filter.
pub fn classify(expr: &Expr, schema: &Schema) -> TableProviderFilterPushDown {
    match translate(expr, schema) {
        Some(Pushed { exact: true, .. }) => TableProviderFilterPushDown::Exact,
        Some(_) => TableProviderFilterPushDown::Inexact,
        None => TableProviderFilterPushDown::Unsupported,
    }
}

/// The predicates of every filter sealstore can apply (the untranslatable ones DataFusion
/// evaluates above the scan).
pub fn predicates(filters: &[Expr], schema: &Schema) -> Vec<Predicate> {
    filters
        .iter()
        .filter_map(|f| translate(f, schema))
        .flat_map(|p| p.predicates)
        .collect()
}

fn exact(p: Predicate) -> Option<Pushed> {
    Some(Pushed {
        predicates: vec![p],
        exact: true,
    })
}

/// One predicate for a single-column expression, or `None`.
fn predicate(expr: &Expr, schema: &Schema) -> Option<Predicate> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = cmp_op(*op)?;
            if let (Some(col), Some(value)) = (column(left, schema), literal(right)) {
                return compare(col, op, value);
            }
            if let (Some(value), Some(col)) = (literal(left), column(right, schema)) {
                return compare(col, flip(op), value);
            }
            None
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let (name, ty) = column(expr, schema)?;
            Some(Predicate::between(
                name,
                scalar(literal(low)?, ty)?,
                scalar(literal(high)?, ty)?,
            ))
        }
        Expr::IsNull(e) => Some(Predicate::IsNull(column(e, schema)?.0.to_owned())),
        Expr::IsNotNull(e) => Some(Predicate::IsNotNull(column(e, schema)?.0.to_owned())),
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => {
            let (name, ty) = column(expr, schema)?;
            let values = list
                .iter()
                .map(|e| scalar(literal(e)?, ty))
                .collect::<Option<Vec<_>>>()?;
            (!values.is_empty()).then(|| Predicate::InList {
                column: name.to_owned(),
                values,
            })
        }
        _ => None,
    }
}

/// `col LIKE 'abc%…'` (case-sensitive, not negated, no escape character): the literal prefix
/// becomes a `StartsWith`; exact when the pattern is just `prefix%`.
fn translate_like(like: &Like, schema: &Schema) -> Option<Pushed> {
    if like.negated || like.case_insensitive || like.escape_char.is_some() {
        return None;
    }
    let (name, ty) = column(&like.expr, schema)?;
    if !matches!(ty, DataType::Utf8 | DataType::Utf8View) {
        return None;
    }
    let pattern = match literal(&like.pattern)? {
        ScalarValue::Utf8(Some(p)) | ScalarValue::LargeUtf8(Some(p)) | ScalarValue::Utf8View(Some(p)) => p,
        _ => return None,
    };
    // `\` escapes by default in DataFusion's LIKE: a pattern holding one is left to DataFusion.
    let wild = pattern.find(['%', '_', '\\'])?;
    let prefix = &pattern[..wild];
    if prefix.is_empty() {
        return None;
    }
    let whole = &pattern[wild..] == "%";
    Some(Pushed {
        predicates: vec![Predicate::StartsWith {
            column: name.to_owned(),
            prefix: prefix.as_bytes().to_vec(),
        }],
        exact: whole,
    })
}

fn compare(col: (&str, &DataType), op: CmpOp, value: &ScalarValue) -> Option<Predicate> {
    Some(Predicate::compare(col.0, op, scalar(value, col.1)?))
}

fn cmp_op(op: Operator) -> Option<CmpOp> {
    Some(match op {
        Operator::Eq => CmpOp::Eq,
        Operator::NotEq => CmpOp::Ne,
        Operator::Lt => CmpOp::Lt,
        Operator::LtEq => CmpOp::Le,
        Operator::Gt => CmpOp::Gt,
        Operator::GtEq => CmpOp::Ge,
        _ => return None,
    })
}

/// `a op b` as `b op' a`.
fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

/// A bare column of this table, with its type.
fn column<'a>(expr: &Expr, schema: &'a Schema) -> Option<(&'a str, &'a DataType)> {
    match expr {
        Expr::Column(c) => {
            let field = schema.field_with_name(&c.name).ok()?;
            Some((field.name().as_str(), field.data_type()))
        }
        _ => None,
    }
}

fn literal(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// The sealstore scalar for a non-null literal of exactly the column's type.
fn scalar(value: &ScalarValue, ty: &DataType) -> Option<Scalar> {
    Some(match (value, ty) {
        (ScalarValue::Boolean(Some(b)), DataType::Boolean) => Scalar::Bool(*b),
        (ScalarValue::Int32(Some(i)), DataType::Int32) | (ScalarValue::Date32(Some(i)), DataType::Date32) => {
            Scalar::Int(i64::from(*i))
        }
        (ScalarValue::Int64(Some(i)), DataType::Int64) => Scalar::Int(*i),
        (ScalarValue::TimestampMicrosecond(Some(t), None), DataType::Timestamp(TimeUnit::Microsecond, None)) => {
            Scalar::Int(*t)
        }
        (ScalarValue::Float64(Some(f)), DataType::Float64) => Scalar::Float(*f),
        (
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            DataType::Utf8 | DataType::Utf8View,
        ) => Scalar::Bytes(s.as_bytes().to_vec()),
        (
            ScalarValue::Binary(Some(b)) | ScalarValue::LargeBinary(Some(b)) | ScalarValue::BinaryView(Some(b)),
            DataType::Binary | DataType::BinaryView,
        ) => Scalar::Bytes(b.clone()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use arrow_schema::Field;
    use datafusion::logical_expr::{col, lit};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("small", DataType::Int32, true),
        ])
    }

    #[test]
    fn comparisons_in_either_order_are_exact() {
        let s = schema();
        let p = translate(&lit(5i64).lt(col("id")), &s).unwrap();
        assert!(p.exact);
        assert_eq!(p.predicates, [Predicate::compare("id", CmpOp::Gt, Scalar::Int(5))]);
        assert_eq!(
            classify(&col("name").eq(lit("x")), &s),
            TableProviderFilterPushDown::Exact
        );
    }

    #[test]
    fn a_literal_of_another_type_is_not_pushed() {
        let s = schema();
        assert_eq!(
            classify(&col("small").eq(lit(5i64)), &s),
            TableProviderFilterPushDown::Unsupported
        );
        assert_eq!(
            classify(&col("id").eq(lit("5")), &s),
            TableProviderFilterPushDown::Unsupported
        );
    }

    #[test]
    fn or_and_negations_are_left_to_datafusion() {
        let s = schema();
        let or = col("id").eq(lit(1i64)).or(col("id").eq(lit(2i64)));
        assert_eq!(classify(&or, &s), TableProviderFilterPushDown::Unsupported);
        let not_in = col("id").in_list(vec![lit(1i64)], true);
        assert_eq!(classify(&not_in, &s), TableProviderFilterPushDown::Unsupported);
        assert_eq!(
            classify(&col("name").not_like(lit("a%")), &s),
            TableProviderFilterPushDown::Unsupported
        );
    }

    #[test]
    fn like_prefixes_are_exact_only_when_nothing_follows_the_percent() {
        let s = schema();
        assert_eq!(
            classify(&col("name").like(lit("PROMO%")), &s),
            TableProviderFilterPushDown::Exact
        );
        assert_eq!(
            classify(&col("name").like(lit("PROMO%BRASS")), &s),
            TableProviderFilterPushDown::Inexact
        );
        assert_eq!(
            classify(&col("name").like(lit("%BRASS")), &s),
            TableProviderFilterPushDown::Unsupported
        );
        assert_eq!(
            classify(&col("name").like(lit("exact")), &s),
            TableProviderFilterPushDown::Unsupported
        );
    }

    #[test]
    fn a_conjunction_with_an_untranslatable_side_is_inexact() {
        let s = schema();
        let e = col("id").gt(lit(1i64)).and(col("name").like(lit("%x")));
        assert_eq!(classify(&e, &s), TableProviderFilterPushDown::Inexact);
        let both = col("id").between(lit(1i64), lit(9i64)).and(col("name").is_null());
        let p = translate(&both, &s).unwrap();
        assert!(p.exact && p.predicates.len() == 2);
    }
}

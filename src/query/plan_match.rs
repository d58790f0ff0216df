//! What MetricStore's optimizer rules recognise in logical plans: the pieces the
//! rules share (an aggregate node to rewrite, `date_bin` bucket keys, aliases).

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::Transformed;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Aggregate, Expr, LogicalPlan};

use crate::model::TIME_COLUMN;
use crate::storage::BucketSpec;

/// An optimizer rule's `rewrite` over `Aggregate` nodes: `try_rewrite` says what an
/// aggregate becomes, or `None` to leave it; other nodes pass unchanged.
pub(super) fn rewrite_aggregate(
    plan: LogicalPlan,
    try_rewrite: impl FnOnce(&Aggregate) -> DfResult<Option<LogicalPlan>>,
) -> DfResult<Transformed<LogicalPlan>> {
    let LogicalPlan::Aggregate(aggregate) = &plan else {
        return Ok(Transformed::no(plan));
    };
    match try_rewrite(aggregate)? {
        Some(new) => Ok(Transformed::yes(new)),
        None => Ok(Transformed::no(plan)),
    }
}

/// `e` without its aliases.
pub(super) fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        e => e,
    }
}

/// `date_bin(W, time[, origin])` with a fixed width in milliseconds.
pub(super) fn bucket_spec(e: &Expr) -> Option<BucketSpec> {
    let Expr::ScalarFunction(f) = unalias(e) else {
        return None;
    };
    if f.name() != "date_bin" {
        return None;
    }
    let width_ms = match f.args.first()? {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            let nanos = i64::from(v.days)
                .checked_mul(86_400_000_000_000)?
                .checked_add(v.nanoseconds)?;
            (nanos % 1_000_000 == 0).then_some(nanos / 1_000_000)?
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds)
        }
        _ => return None,
    };
    // Coercion casts `time` to date_bin's nanosecond timestamps; a cast between
    // timestamp units changes no bucket.
    let source = match f.args.get(1)? {
        Expr::Cast(c) if matches!(c.field.data_type(), DataType::Timestamp(..)) => c.expr.as_ref(),
        e => e,
    };
    match source {
        Expr::Column(c) if c.name == TIME_COLUMN => {}
        _ => return None,
    }
    let origin_ms = match f.args.get(2) {
        None => 0,
        Some(Expr::Literal(ScalarValue::TimestampNanosecond(Some(v), _), _))
            if v % 1_000_000 == 0 =>
        {
            v / 1_000_000
        }
        Some(Expr::Literal(ScalarValue::TimestampMillisecond(Some(v), _), _)) => *v,
        Some(Expr::Literal(ScalarValue::TimestampSecond(Some(v), _), _)) => v.checked_mul(1000)?,
        Some(_) => return None,
    };
    (width_ms > 0).then_some(BucketSpec {
        width_ms,
        origin_ms,
    })
}

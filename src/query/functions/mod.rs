//! Time-series SQL functions, registered in every session by [`register_functions`].
//!
//! | family | functions | module |
//! |---|---|---|
//! | counters | `rate`, `irate`, `increase`, `delta`, `resets` | [`counter`] |
//! | trend | `deriv`, `predict_linear` | [`trend`] |
//! | statistics | `percentile`, `median`, `zscore` | [`quantile`] |
//! | sketches | `quantile_sketch`, `sketch_merge`, `sketch_quantile` | [`sketch`] |
//! | selectors | `first`, `last`, `m4` | [`select`] |
//! | evaluation time | `eval_time()` (alert rules) | [`clock`] |
//! | rollups | `rollup_increase`, `rollup_rate` | [`rollup`] |
//! | buckets | `date_bin` (DataFusion's, cheaper to plan) | [`date_bin`] |
//!
//! ```sql
//! SELECT host, rate(value, time) FROM http_requests_total
//! WHERE time > now() - interval '5 minutes' GROUP BY host;
//!
//! SELECT host, date_bin(interval '1 minute', time) AS t,
//!        increase(value, time, date_bin(interval '1 minute', time),
//!                 date_bin(interval '1 minute', time) + interval '1 minute') AS inc,
//!        percentile(value, 0.99), m4(value, time)
//! FROM m GROUP BY host, t;
//! ```
//!
//! Conventions shared by all of them:
//! - **A group is a series.** Aggregates over `(value, time)` treat their group as one
//!   series ordered by time; group by the series' tags (grouping several series
//!   together interleaves their samples, as it would in Prometheus without `sum by`).
//! - **NULLs are ignored**: a row whose value or time is NULL (Prometheus staleness
//!   markers are exposed as NULL) does not count. A group with no usable row gives NULL.
//! - **Values** are any numeric type, computed as `Float64` (`first`/`last` keep the
//!   value's type). **Times** are timestamps of any unit (or timestamp strings).
//! - **Order-free and mergeable**: nothing needs sorted input; every accumulator has a
//!   state that DataFusion merges across partitions, so results do not depend on how
//!   the scan split the series. Ties on time are broken by value (IEEE total order).
//! - **Windows**: every aggregate also works with `OVER (... ROWS/RANGE ...)`. The
//!   counter, trend and percentile buffers retract their oldest rows; `first`, `last`,
//!   `m4` and the sketches recompute each frame (`Recompute`), O(frame) per row.
//! - **Errors**: wrong argument counts or types, a quantile outside `[0, 1]`, a
//!   non-literal parameter or `DISTINCT` are planning errors (`DataFusionError::Plan`)
//!   that name the function and the argument.

pub mod clock;
pub mod counter;
pub mod date_bin;
mod percentile_groups;
pub mod quantile;
pub mod rollup;
mod samples;
pub mod select;
pub mod sketch;
pub mod trend;

pub(crate) use percentile_groups::quantile_field;

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{Accumulator, ColumnarValue};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

/// Registers every function of this module in `ctx`. `median` replaces DataFusion's
/// built-in (which interpolates) so that `median(x) = percentile(x, 0.5)`.
pub fn register_functions(ctx: &SessionContext) {
    for udaf in counter::functions()
        .into_iter()
        .chain(trend::functions())
        .chain(quantile::aggregate_functions())
        .chain(sketch::aggregate_functions())
        .chain(select::functions())
        .chain(rollup::functions())
    {
        ctx.register_udaf(udaf);
    }
    for udf in quantile::scalar_functions()
        .into_iter()
        .chain(sketch::scalar_functions())
    {
        ctx.register_udf(udf);
    }
    ctx.register_udf(clock::EvalTime::wall_clock());
    ctx.register_udf(date_bin::DateBin::udf());
}

/// The values of row `row` of a list column whose items are `items` (its child
/// array), as a slice of the child: `ListArray::value` would build an array per row,
/// which merging partial aggregate states does once per group. States built here
/// never hold null items; a null item reads as its (unspecified) slot value.
pub(crate) fn list_row<'a, T: arrow::datatypes::ArrowPrimitiveType>(
    list: &arrow::array::ListArray,
    items: &'a arrow::array::PrimitiveArray<T>,
    row: usize,
) -> &'a [T::Native] {
    let offsets = list.value_offsets();
    &items.values()[offsets[row] as usize..offsets[row + 1] as usize]
}

/// The type a numeric value argument is computed as (`Float64`), or a planning error.
pub(crate) fn coerce_value(function: &str, arg: usize, t: &DataType) -> Result<DataType> {
    if t.is_numeric() || t.is_null() {
        Ok(DataType::Float64)
    } else {
        plan_err!("{function}: argument {arg} must be numeric, got {t}")
    }
}

/// The type a time argument is computed as (nanosecond timestamps, time zone kept so
/// the cast never shifts the instant), or a planning error.
pub(crate) fn coerce_time(function: &str, arg: usize, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, tz) => Ok(DataType::Timestamp(TimeUnit::Nanosecond, tz.clone())),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            Ok(DataType::Timestamp(TimeUnit::Nanosecond, None))
        }
        _ => plan_err!("{function}: argument {arg} must be a timestamp, got {t}"),
    }
}

/// Checks the argument count against `min..=max`.
pub(crate) fn check_arity(function: &str, got: usize, min: usize, max: usize) -> Result<()> {
    if (min..=max).contains(&got) {
        Ok(())
    } else if min == max {
        plan_err!("{function} takes {min} arguments, got {got}")
    } else {
        plan_err!("{function} takes {min} to {max} arguments, got {got}")
    }
}

/// The value of a constant argument as `f64`, or a planning error naming it.
pub(crate) fn literal_f64(function: &str, arg: &str, expr: &Arc<dyn PhysicalExpr>) -> Result<f64> {
    let batch = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let value = match expr.evaluate(&batch) {
        Ok(ColumnarValue::Scalar(s)) => s,
        _ => return plan_err!("{function}: {arg} must be a constant"),
    };
    scalar_f64(function, arg, &value)
}

/// A non-null numeric scalar as `f64`, or a planning error naming the argument.
pub(crate) fn scalar_f64(function: &str, arg: &str, value: &ScalarValue) -> Result<f64> {
    if value.is_null() {
        return plan_err!("{function}: {arg} must not be NULL");
    }
    match value.cast_to(&DataType::Float64) {
        Ok(ScalarValue::Float64(Some(v))) if value.data_type().is_numeric() => Ok(v),
        _ => plan_err!(
            "{function}: {arg} must be a number, got {}",
            value.data_type()
        ),
    }
}

/// Refuses `f(DISTINCT ...)`: the accumulators would otherwise silently count
/// duplicates.
pub(crate) fn no_distinct(function: &str, args: &AccumulatorArgs) -> Result<()> {
    if args.is_distinct {
        plan_err!("{function} does not support DISTINCT")
    } else {
        Ok(())
    }
}

/// Checks that a quantile lies in `[0, 1]`.
pub(crate) fn check_quantile(function: &str, q: f64) -> Result<f64> {
    if (0.0..=1.0).contains(&q) {
        Ok(q)
    } else {
        plan_err!("{function}: quantile must lie in [0, 1], got {q}")
    }
}

/// Makes a fresh (empty) accumulator; see [`Recompute`].
pub(crate) type AccumulatorFactory = Box<dyn Fn() -> Box<dyn Accumulator> + Send + Sync>;

/// The sliding-window form of an accumulator that cannot retract cheaply (`first`,
/// `last`, `m4`, the sketches): it keeps the frame's rows and evaluates them with a
/// fresh accumulator, O(frame) per output row. DataFusion refuses sliding frames for
/// aggregates without `retract_batch`, so this is what makes `OVER (ROWS ...)` work.
pub(crate) struct Recompute {
    fresh: AccumulatorFactory,
    rows: VecDeque<Vec<ScalarValue>>,
}

impl Recompute {
    pub fn boxed(fresh: AccumulatorFactory) -> Box<dyn Accumulator> {
        Box::new(Recompute {
            fresh,
            rows: VecDeque::new(),
        })
    }

    fn replay(&self) -> Result<Box<dyn Accumulator>> {
        let mut acc = (self.fresh)();
        if let Some(first) = self.rows.front() {
            let arrays = (0..first.len())
                .map(|c| ScalarValue::iter_to_array(self.rows.iter().map(|r| r[c].clone())))
                .collect::<Result<Vec<_>>>()?;
            acc.update_batch(&arrays)?;
        }
        Ok(acc)
    }
}

impl std::fmt::Debug for Recompute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recompute")
            .field("rows", &self.rows.len())
            .finish()
    }
}

impl Accumulator for Recompute {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |a| a.len());
        for i in 0..n {
            let row = values
                .iter()
                .map(|a| ScalarValue::try_from_array(a, i))
                .collect::<Result<Vec<_>>>()?;
            self.rows.push_back(row);
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        // Frames leave in arrival order, NULL rows included (they were kept too).
        let n = values.first().map_or(0, |a| a.len());
        self.rows.drain(..n.min(self.rows.len()));
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.replay()?.evaluate()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.replay()?.state()
    }

    fn merge_batch(&mut self, _states: &[ArrayRef]) -> Result<()> {
        internal_err!("window accumulators are not merged")
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .rows
                .iter()
                .flat_map(|r| r.iter().map(ScalarValue::size))
                .sum::<usize>()
    }
}

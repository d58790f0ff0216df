//! Statistics: exact `percentile(value, q)`, `median(value)` and `zscore`.
//!
//! ```sql
//! SELECT host, percentile(latency, 0.99), median(latency) FROM http GROUP BY host;
//!
//! -- anomaly rule: how many standard deviations the newest point is from the hour's mean
//! SELECT host, zscore(last(value, time), avg(value), stddev(value)) AS z
//! FROM cpu WHERE time > now() - interval '1 hour' GROUP BY host HAVING abs(z) > 3;
//!
//! -- window form: each point against the 10 points before it
//! SELECT time, value, zscore(value,
//!     avg(value) OVER w, stddev(value) OVER w) AS z
//! FROM cpu WHERE host = 'a'
//! WINDOW w AS (ORDER BY time ROWS BETWEEN 10 PRECEDING AND 1 PRECEDING);
//! ```
//!
//! **Percentile definition: nearest rank.** `percentile(value, q)` is the
//! `max(1, ceil(q·n))`-th smallest non-null value (`q = 0` is the minimum, `q = 1` the
//! maximum), so it is always an observed value, and it is the quantity the DDSketch
//! functions ([`super::sketch`]) estimate within their relative error; the StatsD
//! aggregator uses the same definition. `median(value)` is `percentile(value, 0.5)`, the
//! lower median for an even count: it replaces DataFusion's built-in `median`, which
//! averages the two middle values. For an interpolated percentile (Prometheus'
//! `quantile_over_time`), use DataFusion's `percentile_cont(q) WITHIN GROUP (ORDER BY
//! value)`. Values compare in IEEE total order (NaN above +∞). `q` must be a constant in
//! `[0, 1]`. The whole group is kept in memory and selected in linear time.
//!
//! `zscore(value, mean, stddev)` is `(value - mean) / stddev`, NULL when any argument is
//! NULL or `stddev` is 0. `stddev` is DataFusion's (sample standard deviation;
//! `stddev_pop` for the population one).

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::cast::{as_float64_array, as_list_array};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, GroupsAccumulator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::percentile_groups::{
    PercentileGroups, quantile_column, quantile_order, quantiles_type, select_quantiles,
    total_order_key,
};
use super::{check_arity, check_quantile, coerce_value, literal_f64, no_distinct, scalar_f64};

/// `percentile` and `median`.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(Percentile::new("percentile", None)),
        AggregateUDF::new_from_impl(Percentile::new("median", Some(0.5))),
    ]
}

/// `zscore`.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(ZScore {
        signature: Signature::user_defined(Volatility::Immutable),
    })]
}

/// `percentile(value, q)`, or `median(value)` when `fixed` holds the quantile.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Percentile {
    name: &'static str,
    fixed: Option<u64>,
    signature: Signature,
}

impl Percentile {
    fn new(name: &'static str, fixed: Option<f64>) -> Self {
        Percentile {
            name,
            fixed: fixed.map(f64::to_bits),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// The quantile of one call.
    fn quantile(&self, args: &AccumulatorArgs) -> Result<f64> {
        match self.fixed {
            Some(bits) => Ok(f64::from_bits(bits)),
            None => check_quantile(
                self.name,
                literal_f64(self.name, "argument 2 (q)", &args.exprs[1])?,
            ),
        }
    }
}

/// The state of every percentile form: the group's values, as a list.
fn values_state(name: &str) -> Vec<FieldRef> {
    let list = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    vec![Arc::new(Field::new(format!("{name}[values]"), list, true))]
}

impl AggregateUDFImpl for Percentile {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let arity = if self.fixed.is_some() { 1 } else { 2 };
        check_arity(self.name, arg_types.len(), arity, arity)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| coerce_value(self.name, i + 1, t))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        no_distinct(self.name, &args)?;
        Ok(Box::new(PercentileAccumulator::new(
            vec![self.quantile(&args)?],
            false,
        )))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(values_state(args.name))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        no_distinct(self.name, &args)?;
        Ok(Box::new(PercentileGroups::new(
            vec![self.quantile(&args)?],
            false,
        )))
    }
}

/// `percentiles(value, q1, q2, ...)`: a struct of the quantiles (`q0`, `q1`, ...) from
/// one value buffer. Internal (not registered): [`crate::query::PercentileShareRule`]
/// puts it in place of sibling percentiles of one column.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Percentiles {
    signature: Signature,
}

/// The `percentiles` aggregate (see [`Percentiles`]).
pub(crate) fn percentiles_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(Percentiles {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// The value argument and quantile of a call of `percentile` or `median` (this
/// module's, not a same-named function from elsewhere) with a constant quantile.
pub(crate) fn percentile_call(f: &AggregateFunction) -> Option<(Expr, f64)> {
    let inner: &dyn std::any::Any = f.func.inner().as_ref();
    let percentile = inner.downcast_ref::<Percentile>()?;
    let args = f.params.args.as_slice();
    let q = match (percentile.fixed, args) {
        (Some(bits), [_]) => f64::from_bits(bits),
        (None, [_, Expr::Literal(q, _)]) => scalar_f64(percentile.name, "q", q).ok()?,
        _ => return None,
    };
    (0.0..=1.0).contains(&q).then(|| (args[0].clone(), q))
}

impl Percentiles {
    fn quantiles(args: &AccumulatorArgs) -> Result<Vec<f64>> {
        args.exprs[1..]
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let arg = format!("argument {} (q)", i + 2);
                check_quantile("percentiles", literal_f64("percentiles", &arg, e)?)
            })
            .collect()
    }
}

impl AggregateUDFImpl for Percentiles {
    fn name(&self) -> &str {
        "percentiles"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("percentiles", arg_types.len(), 2, usize::MAX)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| coerce_value("percentiles", i + 1, t))
            .collect()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(quantiles_type(arg_types.len().saturating_sub(1)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        no_distinct("percentiles", &args)?;
        Ok(Box::new(PercentileAccumulator::new(
            Percentiles::quantiles(&args)?,
            true,
        )))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(values_state(args.name))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        no_distinct("percentiles", &args)?;
        Ok(Box::new(PercentileGroups::new(
            Percentiles::quantiles(&args)?,
            true,
        )))
    }
}

/// One group's percentiles (no GROUP BY, and window frames).
#[derive(Debug)]
struct PercentileAccumulator {
    qs: Vec<f64>,
    order: Vec<usize>,
    /// A struct of the quantiles rather than one `Float64`.
    multi: bool,
    /// Non-null values in arrival order, so that window frames can retract the oldest.
    values: VecDeque<f64>,
}

impl PercentileAccumulator {
    fn new(qs: Vec<f64>, multi: bool) -> Self {
        PercentileAccumulator {
            order: quantile_order(&qs),
            qs,
            multi,
            values: VecDeque::new(),
        }
    }
}

impl Accumulator for PercentileAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = as_float64_array(&values[0])?;
        if v.null_count() == 0 {
            self.values.extend(v.values().iter().copied());
        } else {
            self.values.extend(v.iter().flatten());
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values[0].len() - values[0].null_count();
        self.values.drain(..n.min(self.values.len()));
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        // Copied slice by slice (collecting from an iterator goes value by value).
        let (front, back) = self.values.as_slices();
        let mut flat = Vec::with_capacity(self.values.len());
        flat.extend_from_slice(front);
        flat.extend_from_slice(back);
        let values = Float64Array::from(flat);
        Ok(vec![
            SingleRowListArrayBuilder::new(Arc::new(values)).build_list_scalar(),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = as_list_array(&states[0])?;
        let items = as_float64_array(lists.values())?;
        for row in 0..lists.len() {
            if lists.is_valid(row) {
                self.values
                    .extend(super::list_row(lists, items, row).iter().copied());
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        // Window frames evaluate again after retracting the oldest values, which
        // must still be first: select on a copy (of keys).
        let mut keys: Vec<i64> = self.values.iter().map(|&v| total_order_key(v)).collect();
        let mut out = vec![None; self.qs.len()];
        select_quantiles(&mut keys, &self.qs, &self.order, &mut out);
        if self.multi {
            let column = quantile_column(out.into_iter().map(|v| vec![v]).collect(), true);
            return ScalarValue::try_from_array(&column, 0);
        }
        Ok(ScalarValue::Float64(out[0]))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.values.capacity() * 8
    }
}

/// `zscore(value, mean, stddev)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ZScore {
    signature: Signature,
}

fn zscore(v: Option<f64>, mean: Option<f64>, sd: Option<f64>) -> Option<f64> {
    let (v, mean, sd) = (v?, mean?, sd?);
    (sd != 0.0).then(|| (v - mean) / sd)
}

impl ScalarUDFImpl for ZScore {
    fn name(&self) -> &str {
        "zscore"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("zscore", arg_types.len(), 3, 3)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| coerce_value("zscore", i + 1, t))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = |c: &ColumnarValue| match c {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => Some(*v),
            _ => None,
        };
        if let [Some(v), Some(m), Some(s)] = [
            scalar(&args.args[0]),
            scalar(&args.args[1]),
            scalar(&args.args[2]),
        ] {
            return Ok(ColumnarValue::Scalar(ScalarValue::Float64(zscore(v, m, s))));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let v = as_float64_array(&arrays[0])?;
        let m = as_float64_array(&arrays[1])?;
        let s = as_float64_array(&arrays[2])?;
        let out: Float64Array = (0..v.len())
            .map(|i| {
                let get = |a: &Float64Array| a.is_valid(i).then(|| a.value(i));
                zscore(get(v), get(m), get(s))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nearest_rank(values: &mut [f64], q: f64) -> Option<f64> {
        let mut keys: Vec<i64> = values.iter().map(|&v| total_order_key(v)).collect();
        let mut out = [None];
        select_quantiles(&mut keys, &[q], &[0], &mut out);
        out[0]
    }

    #[test]
    fn nearest_rank_definition() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(nearest_rank(&mut v, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&mut v, 0.25), Some(1.0));
        assert_eq!(nearest_rank(&mut v, 0.26), Some(2.0));
        assert_eq!(nearest_rank(&mut v, 0.5), Some(2.0));
        assert_eq!(nearest_rank(&mut v, 0.99), Some(4.0));
        assert_eq!(nearest_rank(&mut v, 1.0), Some(4.0));
        assert_eq!(nearest_rank(&mut [], 0.5), None);
    }

    #[test]
    fn zscore_nulls_and_zero() {
        assert_eq!(zscore(Some(5.0), Some(3.0), Some(2.0)), Some(1.0));
        assert_eq!(zscore(Some(5.0), Some(3.0), Some(0.0)), None);
        assert_eq!(zscore(None, Some(3.0), Some(1.0)), None);
    }
}

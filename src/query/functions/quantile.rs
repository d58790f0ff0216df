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

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::cast::{as_float64_array, as_list_array};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::{check_arity, check_quantile, coerce_value, literal_f64, no_distinct};

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

/// The nearest-rank `q`-quantile of `values` (reordered in place), `None` when empty.
pub(crate) fn nearest_rank(values: &mut [f64], q: f64) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    let (_, v, _) = values.select_nth_unstable_by(rank - 1, f64::total_cmp);
    Some(*v)
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
        let q = match self.fixed {
            Some(bits) => f64::from_bits(bits),
            None => check_quantile(
                self.name,
                literal_f64(self.name, "argument 2 (q)", &args.exprs[1])?,
            )?,
        };
        Ok(Box::new(PercentileAccumulator {
            q,
            values: VecDeque::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
        Ok(vec![Arc::new(Field::new(
            format!("{}[values]", args.name),
            list,
            true,
        ))])
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
        let q = match self.fixed {
            Some(bits) => f64::from_bits(bits),
            None => check_quantile(
                self.name,
                literal_f64(self.name, "argument 2 (q)", &args.exprs[1])?,
            )?,
        };
        Ok(Box::new(PercentileGroups {
            q,
            groups: Vec::new(),
        }))
    }
}

/// The per-group form (DataFusion's fast path for GROUP BY): one value vector per
/// group instead of one boxed accumulator per group.
#[derive(Debug)]
struct PercentileGroups {
    q: f64,
    groups: Vec<Vec<f64>>,
}

/// The lists of `groups` as one list array (the state column).
fn lists(groups: &[Vec<f64>]) -> ArrayRef {
    let values: Float64Array = groups.iter().flatten().copied().collect();
    let offsets = OffsetBuffer::from_lengths(groups.iter().map(Vec::len));
    let field = Arc::new(Field::new_list_field(DataType::Float64, true));
    Arc::new(ListArray::new(field, offsets, Arc::new(values), None))
}

/// Whether row `i` passes the aggregate's FILTER clause.
fn selected(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl GroupsAccumulator for PercentileGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let v = as_float64_array(&values[0])?;
        if opt_filter.is_none() && v.null_count() == 0 {
            // The common case, without per-row validity checks.
            for (&g, &x) in group_indices.iter().zip(v.values().iter()) {
                self.groups[g].push(x);
            }
            return Ok(());
        }
        for (i, &g) in group_indices.iter().enumerate() {
            if selected(opt_filter, i) && v.is_valid(i) {
                self.groups[g].push(v.value(i));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        let out: Float64Array = groups
            .into_iter()
            .map(|mut g| nearest_rank(&mut g, self.q))
            .collect();
        Ok(Arc::new(out))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![lists(&emit_to.take_needed(&mut self.groups))])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let lists = as_list_array(&values[0])?;
        let items = as_float64_array(lists.values())?;
        for (row, &g) in group_indices.iter().enumerate() {
            if lists.is_valid(row) {
                self.groups[g].extend_from_slice(super::list_row(lists, items, row));
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // One list of zero or one value per row, built flat (no vector per row).
        let v = as_float64_array(&values[0])?;
        let keep: Vec<bool> = (0..v.len())
            .map(|i| selected(opt_filter, i) && v.is_valid(i))
            .collect();
        let flat: Float64Array = (0..v.len())
            .filter(|&i| keep[i])
            .map(|i| v.value(i))
            .collect();
        let offsets = OffsetBuffer::from_lengths(keep.iter().map(|&k| usize::from(k)));
        let field = Arc::new(Field::new_list_field(DataType::Float64, true));
        Ok(vec![Arc::new(ListArray::new(
            field,
            offsets,
            Arc::new(flat),
            None,
        ))])
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .groups
                .iter()
                .map(|g| 24 + g.capacity() * 8)
                .sum::<usize>()
    }
}

#[derive(Debug)]
struct PercentileAccumulator {
    q: f64,
    /// Non-null values in arrival order, so that window frames can retract the oldest.
    values: VecDeque<f64>,
}

impl Accumulator for PercentileAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = as_float64_array(&values[0])?;
        self.values.extend(v.iter().flatten());
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
        let values: Float64Array = self.values.iter().copied().collect();
        Ok(vec![
            SingleRowListArrayBuilder::new(Arc::new(values)).build_list_scalar(),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = as_list_array(&states[0])?;
        for row in 0..lists.len() {
            if lists.is_valid(row) {
                let v = lists.value(row);
                self.values.extend(as_float64_array(&v)?.iter().flatten());
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut values: Vec<f64> = self.values.iter().copied().collect();
        Ok(ScalarValue::Float64(nearest_rank(&mut values, self.q)))
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

//! The sample buffer behind the counter and trend aggregates.
//!
//! Those functions need a group's samples in time order, but DataFusion feeds rows in
//! any order and merges partial states from several partitions, so the buffer keeps
//! `(time, value)` pairs as they come and sorts a copy when evaluated. Its state is two
//! list columns (times, values). Rows leave in arrival order (`retract`), which is what
//! sliding window frames ask for.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, new_empty_array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::cast::{
    as_float64_array, as_int64_array, as_list_array, as_timestamp_nanosecond_array,
};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::{check_arity, coerce_time, coerce_value, counter, literal_f64, no_distinct, trend};

/// One group's samples, in arrival order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples {
    rows: VecDeque<(i64, f64)>,
}

impl Samples {
    /// Appends the rows of `values` (Float64) and `times` (Timestamp ns) where both are
    /// non-null.
    pub fn update(&mut self, values: &ArrayRef, times: &ArrayRef) -> Result<()> {
        let values = as_float64_array(values)?;
        let times = as_timestamp_nanosecond_array(times)?;
        for (v, t) in values.iter().zip(times.iter()) {
            if let (Some(v), Some(t)) = (v, t) {
                self.rows.push_back((t, v));
            }
        }
        Ok(())
    }

    /// Removes as many of the oldest rows as `update` would have added for these rows.
    pub fn retract(&mut self, values: &ArrayRef, times: &ArrayRef) -> Result<()> {
        let values = as_float64_array(values)?;
        let times = as_timestamp_nanosecond_array(times)?;
        let n = (0..values.len())
            .filter(|&i| values.is_valid(i) && times.is_valid(i))
            .count();
        self.rows.drain(..n.min(self.rows.len()));
        Ok(())
    }

    /// State fields: the times and the values as lists.
    pub fn state_fields(name: &str) -> Vec<FieldRef> {
        let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
        vec![
            Arc::new(Field::new(
                format!("{name}[times]"),
                list(DataType::Int64),
                true,
            )),
            Arc::new(Field::new(
                format!("{name}[values]"),
                list(DataType::Float64),
                true,
            )),
        ]
    }

    /// The state matching [`Samples::state_fields`].
    pub fn state(&self) -> Vec<ScalarValue> {
        let times: Int64Array = self.rows.iter().map(|r| r.0).collect();
        let values: Float64Array = self.rows.iter().map(|r| r.1).collect();
        vec![
            SingleRowListArrayBuilder::new(Arc::new(times)).build_list_scalar(),
            SingleRowListArrayBuilder::new(Arc::new(values)).build_list_scalar(),
        ]
    }

    /// Adds the samples of the states in `times` and `values` (list columns).
    pub fn merge(&mut self, times: &ArrayRef, values: &ArrayRef) -> Result<()> {
        let times = as_list_array(times)?;
        let values = as_list_array(values)?;
        for row in 0..times.len() {
            if times.is_null(row) || values.is_null(row) {
                continue;
            }
            let t = times.value(row);
            let v = values.value(row);
            let t = as_int64_array(&t)?;
            let v = as_float64_array(&v)?;
            self.rows
                .extend(t.values().iter().copied().zip(v.values().iter().copied()));
        }
        Ok(())
    }

    /// The samples sorted by time, then value (so that ties do not depend on
    /// arrival order).
    pub fn sorted(&self) -> Vec<(i64, f64)> {
        let mut rows: Vec<(i64, f64)> = self.rows.iter().copied().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        rows
    }

    /// Bytes held, for DataFusion's memory accounting.
    pub fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.rows.capacity() * 16
    }
}

/// The functions computed from a group's sorted samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Rate,
    Irate,
    Increase,
    Delta,
    Resets,
    Deriv,
    PredictLinear,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rate => "rate",
            Kind::Irate => "irate",
            Kind::Increase => "increase",
            Kind::Delta => "delta",
            Kind::Resets => "resets",
            Kind::Deriv => "deriv",
            Kind::PredictLinear => "predict_linear",
        }
    }

    /// Allowed argument counts.
    fn arity(self) -> (usize, usize) {
        match self {
            Kind::Rate | Kind::Increase | Kind::Delta => (2, 4),
            Kind::Irate | Kind::Resets | Kind::Deriv => (2, 2),
            Kind::PredictLinear => (3, 4),
        }
    }
}

/// A UDAF over `(value, time, ...)` computed from the sorted samples; see
/// [`super::counter`] and [`super::trend`] for the functions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SampleAggregate {
    kind: Kind,
    signature: Signature,
}

impl SampleAggregate {
    pub fn udaf(kind: Kind) -> AggregateUDF {
        AggregateUDF::new_from_impl(SampleAggregate {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

impl SampleAggregate {
    /// `predict_linear`'s constant `t_seconds` (0 for the other functions).
    fn horizon(&self, args: &AccumulatorArgs) -> Result<f64> {
        if self.kind != Kind::PredictLinear {
            return Ok(0.0);
        }
        let t = literal_f64("predict_linear", "argument 3 (t_seconds)", &args.exprs[2])?;
        if !t.is_finite() {
            return plan_err!("predict_linear: argument 3 (t_seconds) must be finite");
        }
        Ok(t)
    }

    /// Indices of the range-start and range-end (or `at`) arguments, when given.
    fn bound_args(kind: Kind, n_args: usize) -> (Option<usize>, Option<usize>) {
        match (kind, n_args) {
            (Kind::PredictLinear, 4) => (None, Some(3)),
            (Kind::PredictLinear, _) => (None, None),
            (_, 4) => (Some(2), Some(3)),
            _ => (None, None),
        }
    }
}

impl AggregateUDFImpl for SampleAggregate {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.kind.name();
        let (min, max) = self.kind.arity();
        check_arity(name, arg_types.len(), min, max)?;
        if matches!(self.kind, Kind::Rate | Kind::Increase | Kind::Delta) && arg_types.len() == 3 {
            return plan_err!(
                "{name} takes (value, time) or (value, time, range_start, range_end)"
            );
        }
        let mut out = vec![
            coerce_value(name, 1, &arg_types[0])?,
            coerce_time(name, 2, &arg_types[1])?,
        ];
        for (i, t) in arg_types.iter().enumerate().skip(2) {
            out.push(if self.kind == Kind::PredictLinear && i == 2 {
                coerce_value(name, 3, t)?
            } else {
                coerce_time(name, i + 1, t)?
            });
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.kind == Kind::Resets {
            DataType::Int64
        } else {
            DataType::Float64
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        no_distinct(self.kind.name(), &args)?;
        Ok(Box::new(SampleAccumulator {
            kind: self.kind,
            horizon: self.horizon(&args)?,
            samples: Samples::default(),
            lo: None,
            hi: None,
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        no_distinct(self.kind.name(), &args)?;
        Ok(Box::new(SampleGroups {
            kind: self.kind,
            horizon: self.horizon(&args)?,
            return_type: args.return_type().clone(),
            samples: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut fields = Samples::state_fields(args.name);
        fields.push(Arc::new(Field::new(
            format!("{}[lo]", args.name),
            DataType::Int64,
            true,
        )));
        fields.push(Arc::new(Field::new(
            format!("{}[hi]", args.name),
            DataType::Int64,
            true,
        )));
        Ok(fields)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.accumulator(args)
    }
}

/// The function's value over time-sorted samples.
fn compute(
    kind: Kind,
    horizon: f64,
    s: &[(i64, f64)],
    lo: Option<i64>,
    hi: Option<i64>,
) -> ScalarValue {
    let range = lo.zip(hi);
    match kind {
        Kind::Rate => ScalarValue::Float64(counter::extrapolated(s, range, true, true)),
        Kind::Increase => ScalarValue::Float64(counter::extrapolated(s, range, true, false)),
        Kind::Delta => ScalarValue::Float64(counter::extrapolated(s, range, false, false)),
        Kind::Irate => ScalarValue::Float64(counter::irate(s)),
        Kind::Resets => ScalarValue::Int64(counter::resets(s)),
        Kind::Deriv => ScalarValue::Float64(trend::deriv(s)),
        Kind::PredictLinear => ScalarValue::Float64(trend::predict_linear(s, horizon, hi)),
    }
}

/// Accumulator of [`SampleAggregate`]. `lo`/`hi` are the range bounds of the counter
/// functions (smallest start, largest end seen) or, for `predict_linear`, `hi` is the
/// evaluation time.
#[derive(Debug)]
struct SampleAccumulator {
    kind: Kind,
    horizon: f64,
    samples: Samples,
    lo: Option<i64>,
    hi: Option<i64>,
}

fn fold(a: Option<i64>, b: Option<i64>, pick: fn(i64, i64) -> i64) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

impl SampleAccumulator {
    fn update_bounds(&mut self, lo: Option<&ArrayRef>, hi: Option<&ArrayRef>) -> Result<()> {
        if let Some(lo) = lo {
            let lo = as_timestamp_nanosecond_array(lo)?;
            self.lo = lo.iter().fold(self.lo, |a, b| fold(a, b, i64::min));
        }
        if let Some(hi) = hi {
            let hi = as_timestamp_nanosecond_array(hi)?;
            self.hi = hi.iter().fold(self.hi, |a, b| fold(a, b, i64::max));
        }
        Ok(())
    }
}

impl Accumulator for SampleAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.samples.update(&values[0], &values[1])?;
        let (lo, hi) = SampleAggregate::bound_args(self.kind, values.len());
        self.update_bounds(lo.map(|i| &values[i]), hi.map(|i| &values[i]))
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.samples.retract(&values[0], &values[1])
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut state = self.samples.state();
        state.push(ScalarValue::Int64(self.lo));
        state.push(ScalarValue::Int64(self.hi));
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.samples.merge(&states[0], &states[1])?;
        let lo = as_int64_array(&states[2])?;
        let hi = as_int64_array(&states[3])?;
        self.lo = lo.iter().fold(self.lo, |a, b| fold(a, b, i64::min));
        self.hi = hi.iter().fold(self.hi, |a, b| fold(a, b, i64::max));
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(compute(
            self.kind,
            self.horizon,
            &self.samples.sorted(),
            self.lo,
            self.hi,
        ))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.samples.size()
    }
}

/// The per-group form of [`SampleAccumulator`] (DataFusion's GROUP BY fast path).
#[derive(Debug)]
struct SampleGroups {
    kind: Kind,
    horizon: f64,
    return_type: DataType,
    samples: Vec<Vec<(i64, f64)>>,
    lo: Vec<Option<i64>>,
    hi: Vec<Option<i64>>,
}

/// Whether row `i` passes the aggregate's FILTER clause.
fn selected(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

/// Per-group samples and bounds as state columns (times, values, lo, hi).
fn state_arrays(
    samples: &[Vec<(i64, f64)>],
    lo: Vec<Option<i64>>,
    hi: Vec<Option<i64>>,
) -> Vec<ArrayRef> {
    let offsets = OffsetBuffer::from_lengths(samples.iter().map(Vec::len));
    let times: Int64Array = samples.iter().flatten().map(|s| s.0).collect();
    let values: Float64Array = samples.iter().flatten().map(|s| s.1).collect();
    let list = |t: DataType, a: ArrayRef| -> ArrayRef {
        let field = Arc::new(Field::new_list_field(t, true));
        Arc::new(ListArray::new(field, offsets.clone(), a, None))
    };
    vec![
        list(DataType::Int64, Arc::new(times)),
        list(DataType::Float64, Arc::new(values)),
        Arc::new(Int64Array::from(lo)),
        Arc::new(Int64Array::from(hi)),
    ]
}

impl SampleGroups {
    fn resize(&mut self, n: usize) {
        self.samples.resize_with(n, Vec::new);
        self.lo.resize(n, None);
        self.hi.resize(n, None);
    }
}

impl GroupsAccumulator for SampleGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let v = as_float64_array(&values[0])?;
        let t = as_timestamp_nanosecond_array(&values[1])?;
        let (lo_arg, hi_arg) = SampleAggregate::bound_args(self.kind, values.len());
        let lo = lo_arg
            .map(|i| as_timestamp_nanosecond_array(&values[i]))
            .transpose()?;
        let hi = hi_arg
            .map(|i| as_timestamp_nanosecond_array(&values[i]))
            .transpose()?;
        for (i, &g) in group_indices.iter().enumerate() {
            if !selected(opt_filter, i) {
                continue;
            }
            if v.is_valid(i) && t.is_valid(i) {
                self.samples[g].push((t.value(i), v.value(i)));
            }
            if let Some(lo) = lo.filter(|a| a.is_valid(i)) {
                self.lo[g] = fold(self.lo[g], Some(lo.value(i)), i64::min);
            }
            if let Some(hi) = hi.filter(|a| a.is_valid(i)) {
                self.hi[g] = fold(self.hi[g], Some(hi.value(i)), i64::max);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let samples = emit_to.take_needed(&mut self.samples);
        let lo = emit_to.take_needed(&mut self.lo);
        let hi = emit_to.take_needed(&mut self.hi);
        if samples.is_empty() {
            return Ok(new_empty_array(&self.return_type));
        }
        let results = samples
            .into_iter()
            .zip(lo.into_iter().zip(hi))
            .map(|(mut s, (lo, hi))| {
                s.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
                compute(self.kind, self.horizon, &s, lo, hi)
            });
        ScalarValue::iter_to_array(results)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let samples = emit_to.take_needed(&mut self.samples);
        let lo = emit_to.take_needed(&mut self.lo);
        let hi = emit_to.take_needed(&mut self.hi);
        Ok(state_arrays(&samples, lo, hi))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let times = as_list_array(&values[0])?;
        let vals = as_list_array(&values[1])?;
        let (time_items, value_items) = (
            as_int64_array(times.values())?,
            as_float64_array(vals.values())?,
        );
        let lo = as_int64_array(&values[2])?;
        let hi = as_int64_array(&values[3])?;
        for (row, &g) in group_indices.iter().enumerate() {
            if times.is_valid(row) && vals.is_valid(row) {
                let t = super::list_row(times, time_items, row);
                let v = super::list_row(vals, value_items, row);
                self.samples[g].extend(t.iter().copied().zip(v.iter().copied()));
            }
            if lo.is_valid(row) {
                self.lo[g] = fold(self.lo[g], Some(lo.value(row)), i64::min);
            }
            if hi.is_valid(row) {
                self.hi[g] = fold(self.hi[g], Some(hi.value(row)), i64::max);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let v = as_float64_array(&values[0])?;
        let t = as_timestamp_nanosecond_array(&values[1])?;
        let (lo_arg, hi_arg) = SampleAggregate::bound_args(self.kind, values.len());
        let bound = |arg: Option<usize>, i: usize| -> Result<Option<i64>> {
            match arg {
                Some(a) => {
                    let a = as_timestamp_nanosecond_array(&values[a])?;
                    Ok(a.is_valid(i).then(|| a.value(i)))
                }
                None => Ok(None),
            }
        };
        let n = v.len();
        let (mut samples, mut lo, mut hi) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for i in 0..n {
            if !selected(opt_filter, i) {
                samples.push(Vec::new());
                lo.push(None);
                hi.push(None);
                continue;
            }
            samples.push(if v.is_valid(i) && t.is_valid(i) {
                vec![(t.value(i), v.value(i))]
            } else {
                Vec::new()
            });
            lo.push(bound(lo_arg, i)?);
            hi.push(bound(hi_arg, i)?);
        }
        Ok(state_arrays(&samples, lo, hi))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .samples
                .iter()
                .map(|s| 24 + s.capacity() * 16)
                .sum::<usize>()
            + self.lo.capacity() * 16
            + self.hi.capacity() * 16
    }
}

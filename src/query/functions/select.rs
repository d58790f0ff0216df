//! Selectors by time: `first(value, time)`, `last(value, time)` and `m4(value, time)`.
//!
//! ```sql
//! -- the newest reading of each host in the last hour, and the oldest
//! SELECT host, last(value, time), first(value, time) FROM cpu
//! WHERE time > now() - interval '1 hour' GROUP BY host;
//!
//! -- M4 downsampling for a chart: per pixel column, the points that draw it
//! SELECT date_bin(interval '1 minute', time) AS t, m4(value, time) AS p FROM cpu
//! WHERE host = 'a' GROUP BY t ORDER BY t;
//! SELECT t, p['min'], p['min_time'], p['max'], p['max_time'] FROM (...);
//! ```
//!
//! `first`/`last` return the value of the earliest/latest row by time, of any value
//! type, without sorting the input (unlike `first_value(x ORDER BY time)`, which asks
//! DataFusion for sorted input): the accumulator keeps one `(time, value)` and states
//! merge across partitions. Rows with a NULL value or time are skipped. Ties on time are
//! broken by value (`first` takes the lower, `last` the higher) so that the result does
//! not depend on row order.
//!
//! `m4(value, time)` returns a struct `{min, min_time, max, max_time, first,
//! first_time, last, last_time}` (times as nanosecond timestamps): the four points of
//! M4 (Jugel et al., VLDB 2014) that keep a line chart of the bucket pixel-exact,
//! spikes included. Values compare in IEEE total order (NaN above +∞); among equal
//! minima or maxima the earliest point is taken. NULL for a group without rows.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StructArray};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};
use datafusion::common::cast::{as_float64_array, as_int64_array, as_timestamp_nanosecond_array};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::{Recompute, check_arity, coerce_time, coerce_value, no_distinct};

/// `first`, `last` and `m4`.
pub fn functions() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(FirstLast::new(false)),
        AggregateUDF::new_from_impl(FirstLast::new(true)),
        AggregateUDF::new_from_impl(M4 {
            signature: Signature::user_defined(Volatility::Immutable),
        }),
    ]
}

/// Times as `Option<i64>` ns, from a Timestamp(ns) input or an Int64 state column.
fn times(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    Ok(match array.data_type() {
        DataType::Int64 => as_int64_array(array)?.iter().collect(),
        _ => as_timestamp_nanosecond_array(array)?.iter().collect(),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FirstLast {
    last: bool,
    signature: Signature,
}

impl FirstLast {
    fn new(last: bool) -> Self {
        FirstLast {
            last,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for FirstLast {
    fn name(&self) -> &str {
        if self.last { "last" } else { "first" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(self.name(), arg_types.len(), 2, 2)?;
        Ok(vec![
            arg_types[0].clone(),
            coerce_time(self.name(), 2, &arg_types[1])?,
        ])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) => Ok(t.clone()),
            None => plan_err!("{} takes 2 arguments, got 0", self.name()),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        no_distinct(self.name(), &args)?;
        Ok(Box::new(FirstLastAccumulator {
            last: self.last,
            data_type: args.return_type().clone(),
            best: None,
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        no_distinct(self.name(), &args)?;
        let empty = FirstLastAccumulator {
            last: self.last,
            data_type: args.return_type().clone(),
            best: None,
        };
        Ok(Recompute::boxed(Box::new(move || Box::new(empty.clone()))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[value]", args.name),
                args.return_type().clone(),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[time]", args.name),
                DataType::Int64,
                true,
            )),
        ])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

#[derive(Debug, Clone)]
struct FirstLastAccumulator {
    last: bool,
    data_type: DataType,
    best: Option<(i64, ScalarValue)>,
}

impl FirstLastAccumulator {
    fn consider(&mut self, values: &ArrayRef, times: &[Option<i64>]) -> Result<()> {
        for (i, t) in times.iter().enumerate() {
            let Some(t) = *t else { continue };
            if values.is_null(i) {
                continue;
            }
            // Compare times first: the value is only materialised for candidates.
            let wanted = if self.last {
                Ordering::Greater
            } else {
                Ordering::Less
            };
            let replace = match &self.best {
                None => true,
                Some((bt, _)) if t.cmp(bt) == wanted => true,
                Some((bt, bv)) if t == *bt => {
                    ScalarValue::try_from_array(values, i)?.partial_cmp(bv) == Some(wanted)
                }
                Some(_) => false,
            };
            if replace {
                self.best = Some((t, ScalarValue::try_from_array(values, i)?));
            }
        }
        Ok(())
    }
}

impl Accumulator for FirstLastAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.consider(&values[0], &times(&values[1])?)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(match &self.best {
            Some((t, v)) => vec![v.clone(), ScalarValue::Int64(Some(*t))],
            // A NULL time marks the empty state.
            None => vec![
                ScalarValue::try_from(&self.data_type)?,
                ScalarValue::Int64(None),
            ],
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.consider(&states[0], &times(&states[1])?)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match &self.best {
            Some((_, v)) => v.clone(),
            None => ScalarValue::try_from(&self.data_type)?,
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.best.as_ref().map_or(0, |(_, v)| v.size())
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct M4 {
    signature: Signature,
}

const SLOTS: [&str; 4] = ["min", "max", "first", "last"];

fn m4_fields(time: &DataType) -> Fields {
    SLOTS
        .iter()
        .flat_map(|s| {
            [
                Field::new(*s, DataType::Float64, true),
                Field::new(format!("{s}_time"), time.clone(), true),
            ]
        })
        .collect()
}

impl AggregateUDFImpl for M4 {
    fn name(&self) -> &str {
        "m4"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("m4", arg_types.len(), 2, 2)?;
        Ok(vec![
            coerce_value("m4", 1, &arg_types[0])?,
            coerce_time("m4", 2, &arg_types[1])?,
        ])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let time = match arg_types.get(1) {
            Some(DataType::Timestamp(_, tz)) => {
                DataType::Timestamp(TimeUnit::Nanosecond, tz.clone())
            }
            _ => DataType::Timestamp(TimeUnit::Nanosecond, None),
        };
        Ok(DataType::Struct(m4_fields(&time)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        no_distinct("m4", &args)?;
        Ok(Box::new(M4Accumulator {
            return_type: args.return_type().clone(),
            points: [None; 4],
        }))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        no_distinct("m4", &args)?;
        let return_type = args.return_type().clone();
        Ok(Recompute::boxed(Box::new(move || {
            Box::new(M4Accumulator {
                return_type: return_type.clone(),
                points: [None; 4],
            })
        })))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(SLOTS
            .iter()
            .flat_map(|s| {
                [
                    Arc::new(Field::new(
                        format!("{}[{s}]", args.name),
                        DataType::Float64,
                        true,
                    )),
                    Arc::new(Field::new(
                        format!("{}[{s}_time]", args.name),
                        DataType::Int64,
                        true,
                    )),
                ]
            })
            .collect())
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

/// `points[k]` is the `(time, value)` of slot `SLOTS[k]`.
#[derive(Debug)]
struct M4Accumulator {
    return_type: DataType,
    points: [Option<(i64, f64)>; 4],
}

/// Whether `(t, v)` should replace `(bt, bv)` in `slot`.
fn better(slot: usize, (t, v): (i64, f64), (bt, bv): (i64, f64)) -> bool {
    match slot {
        // Among equal minima (maxima) the earliest wins: smaller value, then time.
        0 => v.total_cmp(&bv).then(t.cmp(&bt)) == Ordering::Less,
        1 => v.total_cmp(&bv).then(bt.cmp(&t)) == Ordering::Greater,
        2 => t.cmp(&bt).then(v.total_cmp(&bv)) == Ordering::Less,
        _ => t.cmp(&bt).then(v.total_cmp(&bv)) == Ordering::Greater,
    }
}

impl M4Accumulator {
    fn consider(&mut self, slot: usize, p: (i64, f64)) {
        match self.points[slot] {
            Some(b) if !better(slot, p, b) => {}
            _ => self.points[slot] = Some(p),
        }
    }
}

impl Accumulator for M4Accumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = as_float64_array(&values[0])?;
        let t = as_timestamp_nanosecond_array(&values[1])?;
        for (v, t) in v.iter().zip(t.iter()) {
            if let (Some(v), Some(t)) = (v, t) {
                for slot in 0..4 {
                    self.consider(slot, (t, v));
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self
            .points
            .iter()
            .flat_map(|p| {
                [
                    ScalarValue::Float64(p.map(|p| p.1)),
                    ScalarValue::Int64(p.map(|p| p.0)),
                ]
            })
            .collect())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for slot in 0..4 {
            let v = as_float64_array(&states[2 * slot])?;
            let t = as_int64_array(&states[2 * slot + 1])?;
            for (v, t) in v.iter().zip(t.iter()) {
                if let (Some(v), Some(t)) = (v, t) {
                    self.consider(slot, (t, v));
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let DataType::Struct(fields) = &self.return_type else {
            return ScalarValue::try_from(&self.return_type);
        };
        if self.points[0].is_none() {
            return ScalarValue::try_from(&self.return_type);
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(8);
        for (k, p) in self.points.iter().enumerate() {
            columns.push(Arc::new(Float64Array::from(vec![p.map(|p| p.1)])));
            let time = Int64Array::from(vec![p.map(|p| p.0)]);
            columns.push(arrow::compute::cast(&time, fields[2 * k + 1].data_type())?);
        }
        let array = StructArray::try_new(fields.clone(), columns, None)?;
        Ok(ScalarValue::Struct(Arc::new(array)))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

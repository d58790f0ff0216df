//! Counter functions over rollup rows: `rollup_increase` and `rollup_rate`.
//!
//! A rollup row (see [`crate::tier`]'s rollups) keeps, per field, the first and last
//! samples of its bucket and the reset-aware increase between them. Merging rows of one
//! series in time order gives the increase over all of them: their increases plus, at
//! each seam, the delta from one row's last sample to the next row's first (a drop
//! counting as a restart from 0). The result is what `increase(value, time)` and
//! `rate(value, time)` (no extrapolation) give over the raw samples of the same
//! buckets, up to float summation order.
//!
//! ```sql
//! SELECT host, date_bin(interval '1 day', time) AS day,
//!        rollup_increase(value_first, value_first_time, value_last, value_last_time,
//!                        value_increase) AS inc,
//!        rollup_rate(value_first, value_first_time, value_last, value_last_time,
//!                    value_increase) AS per_second
//! FROM rollup('http_requests_total', '1h') GROUP BY host, day;
//! ```
//!
//! As for the raw functions, a group is one series, and fewer than two samples give
//! NULL. Rows with a NULL argument (buckets without a sample of the field) are skipped.
//! `rate` divides by the seconds between the first and the last sample.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::cast::{as_float64_array, as_int64_array, as_timestamp_nanosecond_array};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::{check_arity, coerce_time, coerce_value, no_distinct};
use crate::tier::counter_delta;

/// `rollup_increase` and `rollup_rate`.
pub fn functions() -> Vec<AggregateUDF> {
    [false, true]
        .into_iter()
        .map(|rate| {
            AggregateUDF::new_from_impl(RollupCounter {
                rate,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RollupCounter {
    rate: bool,
    signature: Signature,
}

impl AggregateUDFImpl for RollupCounter {
    fn name(&self) -> &str {
        if self.rate {
            "rollup_rate"
        } else {
            "rollup_increase"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        check_arity(name, arg_types.len(), 5, 5)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| match i {
                1 | 3 => coerce_time(name, i + 1, t),
                _ => coerce_value(name, i + 1, t),
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        no_distinct(self.name(), &args)?;
        Ok(Box::new(SegmentsAccumulator {
            rate: self.rate,
            segments: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let field =
            |n: &str, t: DataType| Arc::new(Field::new(format!("{}[{n}]", args.name), t, true));
        Ok(vec![
            field("first", DataType::Float64),
            field("first_time", DataType::Int64),
            field("last", DataType::Float64),
            field("last_time", DataType::Int64),
            field("increase", DataType::Float64),
        ])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

/// The samples of one rollup row: first and last (ns, value), increase between them.
#[derive(Debug, Clone, Copy)]
struct Segment {
    first: (i64, f64),
    last: (i64, f64),
    increase: f64,
}

#[derive(Debug)]
struct SegmentsAccumulator {
    rate: bool,
    segments: Vec<Segment>,
}

impl SegmentsAccumulator {
    /// All segments folded into one, in time order.
    fn fold(&mut self) -> Option<Segment> {
        self.segments
            .sort_by(|a, b| a.first.0.cmp(&b.first.0).then(a.last.0.cmp(&b.last.0)));
        let (&head, rest) = self.segments.split_first()?;
        Some(rest.iter().fold(head, |mut acc, s| {
            acc.increase += counter_delta(acc.last.1, s.first.1) + s.increase;
            acc.last = s.last;
            acc
        }))
    }

    fn add(
        &mut self,
        first: &Float64Array,
        first_time: &[Option<i64>],
        last: &Float64Array,
        last_time: &[Option<i64>],
        increase: &Float64Array,
    ) {
        for i in 0..first.len() {
            let get = |a: &Float64Array| (!arrow::array::Array::is_null(a, i)).then(|| a.value(i));
            if let (Some(f), Some(ft), Some(l), Some(lt), Some(inc)) = (
                get(first),
                first_time[i],
                get(last),
                last_time[i],
                get(increase),
            ) {
                self.segments.push(Segment {
                    first: (ft, f),
                    last: (lt, l),
                    increase: inc,
                });
            }
        }
        // Keep memory at one segment per group between batches when they pile up.
        if self.segments.len() > 1024
            && let Some(s) = self.fold()
        {
            self.segments = vec![s];
        }
    }
}

impl Accumulator for SegmentsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let times = |a: &ArrayRef| -> Result<Vec<Option<i64>>> {
            Ok(as_timestamp_nanosecond_array(a)?.iter().collect())
        };
        self.add(
            as_float64_array(&values[0])?,
            &times(&values[1])?,
            as_float64_array(&values[2])?,
            &times(&values[3])?,
            as_float64_array(&values[4])?,
        );
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let times = |a: &ArrayRef| -> Result<Vec<Option<i64>>> {
            let a: &Int64Array = as_int64_array(a)?;
            Ok(a.iter().collect())
        };
        self.add(
            as_float64_array(&states[0])?,
            &times(&states[1])?,
            as_float64_array(&states[2])?,
            &times(&states[3])?,
            as_float64_array(&states[4])?,
        );
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let s = self.fold();
        Ok(vec![
            ScalarValue::Float64(s.map(|s| s.first.1)),
            ScalarValue::Int64(s.map(|s| s.first.0)),
            ScalarValue::Float64(s.map(|s| s.last.1)),
            ScalarValue::Int64(s.map(|s| s.last.0)),
            ScalarValue::Float64(s.map(|s| s.increase)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let value = self.fold().and_then(|s| {
            let span_ns = s.last.0 - s.first.0;
            // One sample (first = last) has no increase, as for raw `increase`.
            match (span_ns > 0, self.rate) {
                (false, _) => None,
                (true, false) => Some(s.increase),
                (true, true) => Some(s.increase / (span_ns as f64 / 1e9)),
            }
        });
        Ok(ScalarValue::Float64(value))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.segments.capacity() * std::mem::size_of::<Segment>()
    }
}

//! Quantile sketches in SQL: `quantile_sketch`, `sketch_merge`, `sketch_quantile`.
//!
//! The sketch is a [`DDSketch`](crate::sketch::DDSketch) (see [`crate::sketch`] for the
//! algorithm, the guarantee and the binary format). DDSketch rather than t-digest
//! because its error bound is *relative* and guaranteed for every quantile, its merge
//! is exact (merging sketches equals sketching the union, whatever the order, which
//! partial aggregation and rollups rely on), and it is simple enough to serialize
//! stably.
//!
//! ```sql
//! -- one sketch per host and minute (1% relative accuracy), then p99 per host and hour
//! WITH m AS (
//!   SELECT host, date_bin(interval '1 minute', time) AS minute,
//!          quantile_sketch(latency) AS s
//!   FROM http GROUP BY host, minute)
//! SELECT host, date_bin(interval '1 hour', minute) AS hour,
//!        sketch_quantile(sketch_merge(s), 0.99) AS p99
//! FROM m GROUP BY host, hour;
//!
//! SELECT sketch_quantile(quantile_sketch(latency, 0.005), 0.5) FROM http;  -- 0.5% accuracy
//! ```
//!
//! - `quantile_sketch(value [, relative_accuracy])` (aggregate) → `Binary`: the sketch
//!   of the group's non-null finite values; `relative_accuracy` is a constant in
//!   `[0.0001, 0.5]`, default `0.01`. NULL for a group without values.
//! - `sketch_merge(sketch)` (aggregate) → `Binary`: the merge of the group's non-null
//!   sketches; they must share one relative accuracy (an execution error otherwise).
//! - `sketch_quantile(sketch, q)` (scalar) → `Float64`: the nearest-rank `q`-quantile
//!   estimate, within `α·|exact|` of `percentile(value, q)` over the same values. NULL
//!   for a NULL sketch or q. A value that is not a sketch is an execution error.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, Float64Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::cast::{as_binary_array, as_float64_array};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::{
    Recompute, check_arity, check_quantile, coerce_value, literal_f64, no_distinct, scalar_f64,
};
use crate::sketch::{DDSketch, DEFAULT_RELATIVE_ACCURACY};

/// `quantile_sketch` and `sketch_merge`.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(SketchAggregate::new(false)),
        AggregateUDF::new_from_impl(SketchAggregate::new(true)),
    ]
}

/// `sketch_quantile`.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(SketchQuantile {
        signature: Signature::user_defined(Volatility::Immutable),
    })]
}

fn coerce_sketch(function: &str, arg: usize, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null => {
            Ok(DataType::Binary)
        }
        _ => plan_err!("{function}: argument {arg} must be a sketch (Binary), got {t}"),
    }
}

fn decode(function: &str, bytes: &[u8]) -> Result<DDSketch> {
    DDSketch::from_bytes(bytes).map_err(|e| {
        DataFusionError::Execution(format!("{function}: argument 1 is not a sketch: {e}"))
    })
}

/// `quantile_sketch` (`merge = false`) or `sketch_merge` (`merge = true`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct SketchAggregate {
    merge: bool,
    signature: Signature,
}

impl SketchAggregate {
    fn new(merge: bool) -> Self {
        SketchAggregate {
            merge,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl SketchAggregate {
    /// An empty accumulator; a bad relative accuracy is a planning error.
    fn make(&self, args: AccumulatorArgs) -> Result<SketchAccumulator> {
        no_distinct(self.name(), &args)?;
        let sketch = if self.merge {
            None
        } else {
            let alpha = match args.exprs.get(1) {
                Some(e) => literal_f64(self.name(), "argument 2 (relative_accuracy)", e)?,
                None => DEFAULT_RELATIVE_ACCURACY,
            };
            let sketch = DDSketch::new(alpha).map_err(|e| {
                DataFusionError::Plan(format!(
                    "quantile_sketch: argument 2 (relative_accuracy): {e}"
                ))
            })?;
            Some(sketch)
        };
        Ok(SketchAccumulator {
            merge: self.merge,
            sketch,
        })
    }
}

impl AggregateUDFImpl for SketchAggregate {
    fn name(&self) -> &str {
        if self.merge {
            "sketch_merge"
        } else {
            "quantile_sketch"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        if self.merge {
            check_arity(name, arg_types.len(), 1, 1)?;
            return Ok(vec![coerce_sketch(name, 1, &arg_types[0])?]);
        }
        check_arity(name, arg_types.len(), 1, 2)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| coerce_value(name, i + 1, t))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(self.make(args)?))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        // Built once so that a bad accuracy fails here; each frame starts from a copy.
        let empty = self.make(args)?;
        Ok(Recompute::boxed(Box::new(move || Box::new(empty.clone()))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[sketch]", args.name),
            DataType::Binary,
            true,
        ))])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

#[derive(Debug, Clone)]
struct SketchAccumulator {
    merge: bool,
    /// `None` until `sketch_merge` sees its first sketch (which sets the accuracy).
    sketch: Option<DDSketch>,
}

impl SketchAccumulator {
    fn merge_sketches(&mut self, array: &ArrayRef) -> Result<()> {
        let function = if self.merge {
            "sketch_merge"
        } else {
            "quantile_sketch"
        };
        for bytes in as_binary_array(array)?.iter().flatten() {
            let other = decode(function, bytes)?;
            match &mut self.sketch {
                Some(s) => s
                    .merge(&other)
                    .map_err(|e| DataFusionError::Execution(format!("{function}: {e}")))?,
                None => self.sketch = Some(other),
            }
        }
        Ok(())
    }
}

impl Accumulator for SketchAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if self.merge {
            return self.merge_sketches(&values[0]);
        }
        if let Some(s) = &mut self.sketch {
            as_float64_array(&values[0])?
                .iter()
                .flatten()
                .for_each(|v| s.add(v));
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(
            self.sketch.as_ref().map(DDSketch::to_bytes),
        )])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.merge_sketches(&states[0])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(
            self.sketch
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(DDSketch::to_bytes),
        ))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.sketch.as_ref().map_or(0, DDSketch::memory_size)
    }
}

/// `sketch_quantile(sketch, q)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SketchQuantile {
    signature: Signature,
}

impl ScalarUDFImpl for SketchQuantile {
    fn name(&self) -> &str {
        "sketch_quantile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity("sketch_quantile", arg_types.len(), 2, 2)?;
        Ok(vec![
            coerce_sketch("sketch_quantile", 1, &arg_types[0])?,
            coerce_value("sketch_quantile", 2, &arg_types[1])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // A constant q is checked while planning.
        if let Some(Some(q)) = args.scalar_arguments.get(1)
            && !q.is_null()
        {
            check_quantile(
                "sketch_quantile",
                scalar_f64("sketch_quantile", "argument 2 (q)", q)?,
            )?;
        }
        Ok(Arc::new(Field::new(self.name(), DataType::Float64, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let sketches: &BinaryArray = as_binary_array(&arrays[0])?;
        let qs: &Float64Array = as_float64_array(&arrays[1])?;
        let mut out = Vec::with_capacity(sketches.len());
        for i in 0..sketches.len() {
            if sketches.is_null(i) || qs.is_null(i) {
                out.push(None);
                continue;
            }
            let q = qs.value(i);
            if !(0.0..=1.0).contains(&q) {
                return exec_err!("sketch_quantile: argument 2 (q) must lie in [0, 1], got {q}");
            }
            out.push(decode("sketch_quantile", sketches.value(i))?.quantile(q));
        }
        let out = Float64Array::from(out);
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

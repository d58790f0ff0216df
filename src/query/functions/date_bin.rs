//! `date_bin` with a cheap hash: DataFusion's own function, behind a wrapper whose
//! `Hash` reads the name only.
//!
//! Planning hashes expressions again and again: the logical optimizer fingerprints
//! the whole plan after every pass, and the physical planner hashes each grouping and
//! ordering expression while it builds equivalence properties. Hashing a function
//! hashes its signature, and DataFusion's `date_bin` lists 48 accepted type
//! combinations (timestamps of four units, with and without time zones, two
//! interval types, with and without origin). In a bucketed TSBS query that planning
//! work was about a quarter of the whole query. Equal functions still hash equal
//! (same name), so hash maps stay correct; equality itself is the inner function's.
//!
//! Type coercion walks those 48 signatures too, each time an expression's type is
//! asked for: the wrapper declares a user-defined signature and remembers the
//! coercion DataFusion's signature gives for each list of argument types.
//!
//! Everything else is delegated, so results, ordering properties (a bucket of a
//! sorted `time` is sorted) and simplifications are DataFusion's.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use parking_lot::Mutex;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ExprSchema;
use datafusion::common::{Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping,
};

/// Distinct argument type lists remembered; queries use a handful.
const COERCIONS_KEPT: usize = 32;

/// `date_bin`, hashed by name; see the module docs.
#[derive(Debug)]
pub struct DateBin {
    inner: Arc<ScalarUDF>,
    signature: Signature,
    /// Argument types and what DataFusion's signature coerces them to.
    coercions: Mutex<Vec<(Vec<DataType>, Vec<DataType>)>>,
}

impl DateBin {
    /// DataFusion's `date_bin` behind the cheap hash.
    pub fn udf() -> ScalarUDF {
        let inner = datafusion::functions::datetime::date_bin();
        ScalarUDF::new_from_impl(DateBin {
            signature: Signature::user_defined(inner.signature().volatility),
            inner,
            coercions: Mutex::new(Vec::new()),
        })
    }
}

impl PartialEq for DateBin {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.inner == other.inner
    }
}

impl Eq for DateBin {}

impl Hash for DateBin {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.name().hash(state);
    }
}

#[warn(clippy::missing_trait_methods)] // Delegates, so it implements every method.
impl ScalarUDFImpl for DateBin {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated)]
        self.inner.inner().display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn with_updated_config(&self, _config: &ConfigOptions) -> Option<ScalarUDF> {
        None
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.inner().is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.inner.inner().invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.inner().simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.inner().preimage(args, lit_expr, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.inner().short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.inner().evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.inner().propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut coercions = self.coercions.lock();
        if let Some((_, to)) = coercions.iter().find(|(from, _)| from == arg_types) {
            return Ok(to.clone());
        }
        let fields: Vec<FieldRef> = arg_types
            .iter()
            .map(|t| Arc::new(Field::new("arg", t.clone(), true)))
            .collect();
        let to: Vec<DataType> = fields_with_udf(&fields, self.inner.as_ref())?
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        if coercions.len() == COERCIONS_KEPT {
            coercions.clear();
        }
        coercions.push((arg_types.to_vec(), to.clone()));
        Ok(to)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<StructFieldMapping> {
        self.inner.inner().struct_field_mapping(literal_args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.inner().placement(args)
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{IntervalUnit, TimeUnit};

    use super::*;

    fn builtin(types: &[DataType]) -> Result<Vec<DataType>> {
        let fields: Vec<FieldRef> = types
            .iter()
            .map(|t| Arc::new(Field::new("arg", t.clone(), true)))
            .collect();
        Ok(fields_with_udf(
            &fields,
            datafusion::functions::datetime::date_bin().as_ref(),
        )?
        .iter()
        .map(|f| f.data_type().clone())
        .collect())
    }

    #[test]
    fn coerces_like_datafusions_date_bin_and_hashes_equal() {
        let ours = DateBin::udf();
        let utc = Some("UTC".into());
        let cases = [
            vec![
                DataType::Interval(IntervalUnit::MonthDayNano),
                DataType::Timestamp(TimeUnit::Millisecond, utc.clone()),
            ],
            vec![
                DataType::Interval(IntervalUnit::DayTime),
                DataType::Timestamp(TimeUnit::Second, None),
                DataType::Timestamp(TimeUnit::Nanosecond, None),
            ],
            vec![
                DataType::Interval(IntervalUnit::MonthDayNano),
                DataType::Timestamp(TimeUnit::Millisecond, utc),
                DataType::Utf8,
            ],
            vec![DataType::Utf8, DataType::Utf8],
            vec![DataType::Int64, DataType::Float64],
            vec![],
        ];
        // Twice: the second round answers from the remembered coercions.
        for _ in 0..2 {
            for types in &cases {
                let got = ours.coerce_types(types);
                match builtin(types) {
                    Ok(expected) => assert_eq!(got.unwrap(), expected, "{types:?}"),
                    Err(_) => assert!(got.is_err(), "{types:?}: {got:?}"),
                }
            }
        }
        use std::hash::BuildHasher;
        let other = DateBin::udf();
        assert_eq!(ours, other);
        let state = std::collections::hash_map::RandomState::new();
        assert_eq!(state.hash_one(&ours), state.hash_one(&other));
    }
}

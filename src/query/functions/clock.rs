//! `eval_time()`: the instant a query is evaluated *at*, as a timestamp of the same
//! type as every table's `time` column (`Timestamp(Millisecond, "UTC")`).
//!
//! ```sql
//! -- an alert rule: hosts whose last 5 minutes averaged over 90
//! SELECT host, avg(usage) AS value FROM cpu
//! WHERE time > eval_time() - interval '5 minutes' AND time <= eval_time()
//! GROUP BY host HAVING avg(usage) > 90;
//! ```
//!
//! In an ordinary query it is the wall clock at each execution. An alert rule binds
//! it to an [`EvalClock`] that the evaluator sets before every run, so that one planned
//! rule answers for any evaluation time (past ones included, for `rules test`).
//!
//! The function is **volatile** on purpose: DataFusion folds stable functions such as
//! `now()` into a literal while planning, which would freeze a kept plan at the time
//! it was planned. The price is that predicates on `eval_time()` are not pushed into
//! the scan; they filter the scanned rows instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The evaluation time an `eval_time()` reads: milliseconds since the Unix epoch,
/// shared between the function and whoever runs the plan.
#[derive(Debug, Default)]
pub struct EvalClock(AtomicI64);

impl EvalClock {
    /// Sets the time the next executions evaluate at.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// The time set last.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// `eval_time()`, reading `clock` or, without one, the wall clock.
#[derive(Debug)]
pub struct EvalTime {
    signature: Signature,
    clock: Option<Arc<EvalClock>>,
}

impl EvalTime {
    /// The function reading the wall clock at each execution.
    pub fn wall_clock() -> ScalarUDF {
        ScalarUDF::from(EvalTime {
            signature: Signature::nullary(Volatility::Volatile),
            clock: None,
        })
    }

    /// The function reading `clock`.
    pub fn bound(clock: Arc<EvalClock>) -> ScalarUDF {
        ScalarUDF::from(EvalTime {
            signature: Signature::nullary(Volatility::Volatile),
            clock: Some(clock),
        })
    }
}

// Two instances are the same function only when they read the same clock.
impl PartialEq for EvalTime {
    fn eq(&self, other: &Self) -> bool {
        match (&self.clock, &other.clock) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for EvalTime {}

impl std::hash::Hash for EvalTime {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.clock.as_ref().map(Arc::as_ptr).hash(state);
    }
}

impl ScalarUDFImpl for EvalTime {
    fn name(&self) -> &str {
        "eval_time"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !arg_types.is_empty() {
            return plan_err!("eval_time takes no arguments, got {}", arg_types.len());
        }
        Ok(DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("UTC".into()),
        ))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ms = match &self.clock {
            Some(clock) => clock.get(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(ms),
            Some("UTC".into()),
        )))
    }
}

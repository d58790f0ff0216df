//! `latest('table')`: the newest row of every series, from the per-series latest
//! sample, without decoding a chunk. This is how MetricStore answers TSBS' lastpoint:
//! `SELECT * FROM latest('cpu')`.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;

use crate::storage::Storage;

/// The `latest` table function.
#[derive(Debug)]
pub struct LatestFunction {
    storage: Arc<Storage>,
}

impl LatestFunction {
    /// `latest(...)` over `storage`.
    pub fn new(storage: Arc<Storage>) -> LatestFunction {
        LatestFunction { storage }
    }
}

impl TableFunctionImpl for LatestFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let table = match args.exprs() {
            [Expr::Literal(ScalarValue::Utf8(Some(t)), _)] => t,
            _ => {
                return plan_err!(
                    "latest() takes one argument: a table name as a string, e.g. latest('cpu')"
                );
            }
        };
        let batch = self
            .storage
            .latest(table)
            .map_err(|e| DataFusionError::Plan(format!("latest('{table}'): {e}")))?;
        Ok(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?))
    }
}

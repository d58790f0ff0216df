//! SQL over the store, through Apache DataFusion.
//!
//! ```text
//!  SQL ──► SessionContext (catalog `metricstore`, schema `public`)
//!            └─ HotSchema ──► HotTable (TableProvider, one per table)
//!                 │ supports_filters_pushdown: tags exact, time exact, fields inexact
//!                 └─ scan ──► HotScanExec (one snapshot, series split over partitions)
//!                                └─ SnapshotReader ──► RecordBatch
//! ```
//!
//! The module reads storage and never mutates it. `pushdown` says which predicates
//! the scan answers and how; `exec` is the physical scan; `latest('t')` answers
//! "newest row per series" from the per-series latest sample; the
//! [`BucketAggregateRule`] answers time-bucketed min/max/sum/count/avg from chunk
//! headers through `buckets::BucketTable`. `rollup('t', '1h')` reads a table's rollup
//! level from the cold tier ([`RollupTable`], which documents which queries use which
//! level); the [`LevelAggregateRule`] answers bucketed aggregates over a table from a
//! level where raw retention deleted the raw rows, and the [`PercentileShareRule`]
//! computes several exact percentiles of one column from one value buffer. The
//! [`NewestBucketsRule`] answers `ORDER BY bucket DESC LIMIT k` from the newest
//! buckets first. [`functions`] holds the time-series SQL
//! functions (`rate`, `deriv`, `percentile`, sketches, `m4`, ...), registered in every
//! session.

mod buckets;
mod catalog;
mod exec;
pub mod export;
pub mod functions;
mod latest;
mod level_rule;
mod newest_buckets;
pub mod options;
mod percentile_rule;
mod plan_match;
mod provider;
mod pushdown;
mod rollup_rule;
mod rollup_table;
mod shared;
mod tiered;

use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::error::Result as DfResult;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{SessionConfig, SessionContext};

pub use catalog::HotSchema;
pub use exec::HotScanExec;
pub use functions::register_functions;
pub use latest::LatestFunction;
pub use level_rule::LevelAggregateRule;
pub use newest_buckets::{NewestBucketsExec, NewestBucketsRule};
pub use options::QueryOptions;
pub use percentile_rule::PercentileShareRule;
pub use provider::HotTable;
pub use rollup_rule::BucketAggregateRule;
pub use rollup_table::{RollupFunction, RollupTable};
pub use tiered::{TieredExec, TieredTable};

use crate::storage::Storage;
use crate::tier::{ColdTier, StoreRegistry};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

/// Catalog name of the store's tables.
pub const CATALOG: &str = "metricstore";
/// Schema name of the store's tables.
pub const SCHEMA: &str = "public";

/// A session whose default schema lists the store's tables, with MetricStore's
/// functions registered. One per store.
pub fn session(storage: Arc<Storage>, cold: Option<Arc<ColdTier>>) -> DfResult<SessionContext> {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG, SCHEMA)
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(true);
    // The hot scan's row count is an estimate (writes go on between planning and
    // execution); DataFusion only trusts estimates to keep a small input in one
    // partition with this set. A selective query then plans as scan → aggregate
    // rather than round-robin → partial → hash repartition → final → merge, which
    // cost more than the scan itself.
    config
        .options_mut()
        .execution
        .use_row_number_estimates_to_optimize_partitioning = true;
    let options = cold
        .as_ref()
        .map(|c| c.config().store_options)
        .unwrap_or_default();
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(StoreRegistry::new(options)))
        .build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_query_planner(Arc::new(Planner))
        .build();
    let ctx = SessionContext::new_with_state(state);
    let catalog = MemoryCatalogProvider::new();
    if let Some(cold) = &cold {
        let (store, url) = cold.store();
        ctx.register_object_store(url.as_ref(), store.clone());
    }
    ctx.register_udtf("rollup", Arc::new(RollupFunction::new(cold.clone())));
    catalog.register_schema(SCHEMA, Arc::new(HotSchema::new(storage.clone(), cold)))?;
    ctx.register_catalog(CATALOG, Arc::new(catalog));
    ctx.register_udtf("latest", Arc::new(LatestFunction::new(storage.clone())));
    register_functions(&ctx);
    ctx.add_optimizer_rule(Arc::new(BucketAggregateRule::new(storage.clone())));
    ctx.add_optimizer_rule(Arc::new(LevelAggregateRule::default()));
    // After the level rule, which knows `percentile` but not the shared form.
    ctx.add_optimizer_rule(Arc::new(PercentileShareRule::default()));
    // Last: its two inputs are the plan as the rules above left it.
    ctx.add_optimizer_rule(Arc::new(NewestBucketsRule::new(storage)));
    Ok(ctx)
}

/// DataFusion's physical planner, plus the plan nodes MetricStore's rules make.
#[derive(Debug)]
struct Planner;

#[async_trait::async_trait]
impl QueryPlanner for Planner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(
            newest_buckets::NewestBucketsPlanner,
        )])
        .create_physical_plan(plan, session)
        .await
    }
}

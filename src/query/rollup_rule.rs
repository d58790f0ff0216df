//! An optimizer rule that answers time-bucketed aggregates from chunk headers.
//!
//! It rewrites
//! ```text
//! Aggregate: groupBy=[date_bin(W, time[, origin]), tag...], aggr=[min|max|sum|count|avg(field), count(*)]
//!   TableScan: t (a hot table), filters on tags and time only
//! ```
//! into
//! ```text
//! Projection: (restores the original names and types)
//!   Aggregate: groupBy=[__bucket, tag...], aggr=[min(f__min), max(f__max), sum(f__sum), sum(f__count), sum(__rows)]
//!     TableScan: t (BucketTable: per series and bucket, from chunk headers where a chunk fits a bucket)
//! ```
//! `avg` becomes `sum(f__sum) / sum(f__count)`. The rule fires for bucket widths that
//! are multiples of the chunk span (default one hour), where headers answer whole
//! chunks, and for other widths when the table's sampled density puts at least two
//! rows in a bucket on average: then chunks are decoded and runs of rows fold per
//! bucket, cheaper than hashing every row. Anything else (DISTINCT, FILTER,
//! ORDER BY inside the aggregate, other functions, field filters, expressions over
//! columns, no `date_bin`) is left alone. Results equal the plain plan's except that
//! float sums and averages may differ in the last bits (partial sums are added in a
//! different order), and min/max order NaN in IEEE total order (DataFusion's grouped
//! min/max let a NaN reset the running value, which depends on row order).
//!
//! Matching aggregate functions by name is what DataFusion's own rules advise against
//! (a session could register a different `sum`); MetricStore's sessions register the
//! built-in ones only, and the rule runs only in them.

use std::any::Any;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::common::Column;
use datafusion::common::tree_node::Transformed;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DfResult;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, TableScan, cast, col,
};
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::buckets::{BUCKET, BucketTable, ROWS};
use super::newest_buckets::narrowable_scans;
use super::plan_match::{bucket_spec, rewrite_aggregate, unalias};
use super::provider::HotTable;
use super::pushdown::{Pushed, classify};
use crate::storage::Storage;

/// Rows a bucket must hold on average (as sampled) for the rule to fire on a width
/// that chunk headers cannot answer.
const MIN_ROWS_PER_BUCKET: f64 = 2.0;

/// The rule; see the module docs.
#[derive(Debug)]
pub struct BucketAggregateRule {
    storage: Arc<Storage>,
}

impl BucketAggregateRule {
    /// The rule for tables of `storage`.
    pub fn new(storage: Arc<Storage>) -> BucketAggregateRule {
        BucketAggregateRule { storage }
    }
}

/// What one original aggregate expression becomes.
enum Agg {
    Min(String),
    Max(String),
    Sum(String),
    Count(String),
    CountRows,
    Avg(String),
}

impl OptimizerRule for BucketAggregateRule {
    fn name(&self) -> &str {
        "metricstore_bucket_aggregates"
    }

    /// The rule walks the plan itself (`None`), so that it can settle projections
    /// once over the whole plan after a rewrite.
    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let leave = narrowable_scans(&plan);
        let rewritten = plan.transform_up_with_subqueries(|p| {
            rewrite_aggregate(p, |a| self.try_rewrite(a, &leave))
        })?;
        if !rewritten.transformed {
            return Ok(rewritten);
        }
        // The rewrite leaves a projection over a projection and an unprojected scan,
        // which the optimizer's next pass would merge and prune, and then run a third
        // pass to see nothing change. Settling them here makes the next pass the last.
        let settled = OptimizeProjections::new().rewrite(rewritten.data, config)?;
        Ok(Transformed::yes(settled.data))
    }
}

fn field_arg(f: &AggregateFunction, fields: &[String]) -> Option<String> {
    match f.params.args.as_slice() {
        [Expr::Column(c)] if fields.contains(&c.name) => Some(c.name.clone()),
        _ => None,
    }
}

fn aggregate(e: &Expr, fields: &[String]) -> Option<Agg> {
    let Expr::AggregateFunction(f) = unalias(e) else {
        return None;
    };
    let p = &f.params;
    if p.distinct || p.filter.is_some() || !p.order_by.is_empty() || p.null_treatment.is_some() {
        return None;
    }
    Some(match f.func.name() {
        "min" => Agg::Min(field_arg(f, fields)?),
        "max" => Agg::Max(field_arg(f, fields)?),
        "sum" => Agg::Sum(field_arg(f, fields)?),
        "avg" => Agg::Avg(field_arg(f, fields)?),
        "count" => match p.args.as_slice() {
            [Expr::Literal(v, _)] if !v.is_null() => Agg::CountRows,
            _ => Agg::Count(field_arg(f, fields)?),
        },
        _ => return None,
    })
}

impl BucketAggregateRule {
    /// Rewrites `aggregate_plan`; where chunk headers cannot answer its buckets, not if
    /// its scan is one of `leave` (the newest-buckets rule decodes less of those).
    fn try_rewrite(
        &self,
        aggregate_plan: &Aggregate,
        leave: &[TableScan],
    ) -> DfResult<Option<LogicalPlan>> {
        let LogicalPlan::TableScan(scan) = aggregate_plan.input.as_ref() else {
            return Ok(None);
        };
        let TableScan {
            table_name,
            source,
            filters,
            fetch,
            ..
        } = scan;
        if fetch.is_some() {
            return Ok(None);
        }
        let Ok(provider) = source_as_provider(source) else {
            return Ok(None);
        };
        let any: &dyn Any = provider.as_ref();
        let Some(hot) = any.downcast_ref::<HotTable>() else {
            return Ok(None);
        };
        let (tags, fields) = (hot.tags(), hot.fields());
        if !filters.iter().all(|f| {
            matches!(
                classify(f, tags, fields),
                Some(Pushed::Tags(_) | Pushed::Time(_))
            )
        }) {
            return Ok(None);
        }
        // Group keys: exactly one date_bin over time, the rest tag columns.
        let mut spec = None;
        for g in &aggregate_plan.group_expr {
            match unalias(g) {
                Expr::Column(c) if tags.contains(&c.name) => {}
                e => match (bucket_spec(e), spec) {
                    (Some(s), None) => spec = Some(s),
                    _ => return Ok(None),
                },
            }
        }
        let Some(spec) = spec else {
            return Ok(None);
        };
        // Headers answer a bucket when whole chunks fit in it (chunks seal on
        // `chunk_span_ms` boundaries). Other widths decode every chunk and fold runs of
        // rows per bucket, which beats DataFusion's hashing only when a bucket holds a
        // few rows: with one row per bucket the fold would just add a second pass.
        let span = self.storage.config().chunk_span_ms;
        let headers_answer = span > 0 && spec.width_ms >= span && spec.width_ms % span == 0;
        if !headers_answer
            && (leave.contains(scan)
                || !self
                    .storage
                    .sampled_density(hot.name())
                    .is_some_and(|rows_per_ms| {
                        rows_per_ms * spec.width_ms as f64 >= MIN_ROWS_PER_BUCKET
                    }))
        {
            return Ok(None);
        }
        let Some(aggs) = aggregate_plan
            .aggr_expr
            .iter()
            .map(|e| aggregate(e, fields))
            .collect::<Option<Vec<Agg>>>()
        else {
            return Ok(None);
        };
        let mut needed: Vec<String> = Vec::new();
        for a in &aggs {
            if let Agg::Min(f) | Agg::Max(f) | Agg::Sum(f) | Agg::Count(f) | Agg::Avg(f) = a
                && !needed.contains(f)
            {
                needed.push(f.clone());
            }
        }
        let table = BucketTable::new(
            self.storage.clone(),
            hot.name(),
            spec,
            tags.to_vec(),
            needed,
            fields.to_vec(),
        );
        let qualified = |name: &str| Expr::Column(Column::new(Some(table_name.clone()), name));
        let mut group = Vec::new();
        for g in &aggregate_plan.group_expr {
            group.push(match unalias(g) {
                Expr::Column(c) => qualified(&c.name),
                _ => qualified(BUCKET),
            });
        }
        let mut new_aggs = Vec::new();
        let mut outputs = Vec::new();
        for a in &aggs {
            let mut add = |e: Expr| {
                let name = format!("__agg{}", new_aggs.len());
                new_aggs.push(e.alias(name.clone()));
                col(name)
            };
            outputs.push(match a {
                Agg::Min(f) => add(min(qualified(&format!("{f}__min")))),
                Agg::Max(f) => add(max(qualified(&format!("{f}__max")))),
                Agg::Sum(f) => add(sum(qualified(&format!("{f}__sum")))),
                Agg::Count(f) => add(sum(qualified(&format!("{f}__count")))),
                Agg::CountRows => add(sum(qualified(ROWS))),
                Agg::Avg(f) => {
                    let total = add(sum(qualified(&format!("{f}__sum"))));
                    let count = add(sum(qualified(&format!("{f}__count"))));
                    total / cast(count, DataType::Float64)
                }
            });
        }
        // Scan only the columns used: the statistics table has four per field and
        // every tag, and each plan node above would carry them until the next pass.
        let schema = table.schema();
        let mut used: Vec<usize> = group
            .iter()
            .chain(&new_aggs)
            .flat_map(|e| e.column_refs())
            .filter_map(|c| schema.index_of(&c.name).ok())
            .collect();
        used.sort_unstable();
        used.dedup();
        let new = LogicalPlanBuilder::scan_with_filters(
            table_name.clone(),
            provider_as_source(Arc::new(table)),
            Some(used),
            filters.clone(),
        )?
        .aggregate(group.clone(), new_aggs)?;
        // Restore the original output: same qualifiers, names and types.
        let schema = aggregate_plan.schema.clone();
        let mut projection = Vec::with_capacity(schema.fields().len());
        for (i, g) in group.into_iter().enumerate() {
            let (qualifier, field) = schema.qualified_field(i);
            projection.push(match qualifier {
                Some(q) if matches!(&g, Expr::Column(c) if c.name == *field.name()) => {
                    Expr::Column(Column::new(Some(q.clone()), field.name()))
                }
                // The bucket, in the type date_bin gave the original (nanoseconds).
                q => cast(g, field.data_type().clone()).alias_qualified(q.cloned(), field.name()),
            });
        }
        let offset = aggregate_plan.group_expr.len();
        for (i, out) in outputs.into_iter().enumerate() {
            let (qualifier, field) = schema.qualified_field(offset + i);
            projection.push(out.alias_qualified(qualifier.cloned(), field.name()));
        }
        Ok(Some(new.project(projection)?.build()?))
    }
}

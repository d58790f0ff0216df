//! An optimizer rule that computes several exact percentiles of one column from one
//! buffer of its values.
//!
//! Exact percentiles keep every value of their group; `percentile(v, 0.5)` and
//! `percentile(v, 0.99)` in one query would each keep (and move between partitions,
//! and select over) their own copy. The rule rewrites
//! ```text
//! Aggregate: groupBy=[...], aggr=[min(v), percentile(v, 0.5), median(v), percentile(v, 0.99)]
//! ```
//! into
//! ```text
//! Projection: (the original names and types; each percentile a field of the struct)
//!   Aggregate: groupBy=[...], aggr=[min(v), percentiles(v, 0.5, 0.5, 0.99)]
//! ```
//! where the internal aggregate `percentiles` (not callable from SQL) returns a struct
//! of its quantiles (`q0`, `q1`, ...), all selected from one value buffer per group.
//! Results are identical: the same nearest-rank definition over the same values.
//! Percentiles with `DISTINCT`, `FILTER` or `ORDER BY`, and a single percentile of a
//! column, are left alone.

use std::sync::Arc;

use datafusion::common::Column;
use datafusion::common::tree_node::Transformed;
use datafusion::error::Result as DfResult;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Expr, LogicalPlan, LogicalPlanBuilder, lit,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::functions::quantile::{percentile_call, percentiles_udaf};
use super::functions::quantile_field;
use super::plan_match::{rewrite_aggregate, unalias};

/// The rule; see the module docs.
#[derive(Debug)]
pub struct PercentileShareRule {
    percentiles: Arc<AggregateUDF>,
}

impl Default for PercentileShareRule {
    fn default() -> Self {
        PercentileShareRule {
            percentiles: Arc::new(percentiles_udaf()),
        }
    }
}

/// Where an original aggregate's result is found in the rewritten aggregate.
enum Source {
    /// Its own output column.
    Own(usize),
    /// Field `q{j}` of a shared `percentiles` output column.
    Shared(usize, usize),
}

impl OptimizerRule for PercentileShareRule {
    fn name(&self) -> &str {
        "metricstore_shared_percentiles"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        rewrite_aggregate(plan, |a| self.try_rewrite(a))
    }
}

impl PercentileShareRule {
    fn try_rewrite(&self, aggregate: &Aggregate) -> DfResult<Option<LogicalPlan>> {
        if aggregate
            .group_expr
            .iter()
            .any(|g| matches!(g, Expr::GroupingSet(_)))
        {
            return Ok(None);
        }
        // The percentiles per value expression: (value, [(aggregate index, q)]).
        let mut sets: Vec<(Expr, Vec<(usize, f64)>)> = Vec::new();
        for (i, e) in aggregate.aggr_expr.iter().enumerate() {
            let Expr::AggregateFunction(f) = unalias(e) else {
                continue;
            };
            let Some((value, q)) = plain_percentile(f) else {
                continue;
            };
            match sets.iter_mut().find(|(v, _)| *v == value) {
                Some((_, members)) => members.push((i, q)),
                None => sets.push((value, vec![(i, q)])),
            }
        }
        sets.retain(|(_, members)| members.len() > 1);
        if sets.is_empty() {
            return Ok(None);
        }
        let mut new_aggs: Vec<Expr> = Vec::new();
        let mut sources = Vec::with_capacity(aggregate.aggr_expr.len());
        let mut set_columns: Vec<Option<usize>> = vec![None; sets.len()];
        for (i, e) in aggregate.aggr_expr.iter().enumerate() {
            let member = sets.iter().enumerate().find_map(|(k, (_, members))| {
                let slot = members.iter().position(|(j, _)| *j == i)?;
                Some((k, slot))
            });
            let Some((k, slot)) = member else {
                new_aggs.push(e.clone());
                sources.push(Source::Own(new_aggs.len() - 1));
                continue;
            };
            let column = match set_columns[k] {
                Some(c) => c,
                None => {
                    let (value, members) = &sets[k];
                    let mut args = vec![value.clone()];
                    args.extend(members.iter().map(|(_, q)| lit(*q)));
                    let name = format!("__percentiles_{k}");
                    new_aggs.push(self.percentiles.call(args).alias(name));
                    set_columns[k] = Some(new_aggs.len() - 1);
                    new_aggs.len() - 1
                }
            };
            sources.push(Source::Shared(column, slot));
        }
        let group_len = aggregate.group_expr.len();
        let new = Aggregate::try_new(
            aggregate.input.clone(),
            aggregate.group_expr.clone(),
            new_aggs,
        )?;
        let new_schema = new.schema.clone();
        let column = |i: usize| Expr::Column(Column::from(new_schema.qualified_field(i)));
        let schema = aggregate.schema.clone();
        let mut projection = Vec::with_capacity(schema.fields().len());
        for i in 0..group_len {
            let (qualifier, field) = schema.qualified_field(i);
            projection.push(column(i).alias_qualified(qualifier.cloned(), field.name()));
        }
        for (i, source) in sources.into_iter().enumerate() {
            let (qualifier, field) = schema.qualified_field(group_len + i);
            let e = match source {
                Source::Own(c) => column(group_len + c),
                Source::Shared(c, j) => get_field(column(group_len + c), quantile_field(j)),
            };
            projection.push(e.alias_qualified(qualifier.cloned(), field.name()));
        }
        Ok(Some(
            LogicalPlanBuilder::from(LogicalPlan::Aggregate(new))
                .project(projection)?
                .build()?,
        ))
    }
}

/// `percentile(value, q)` or `median(value)` without DISTINCT, FILTER or ORDER BY.
fn plain_percentile(f: &AggregateFunction) -> Option<(Expr, f64)> {
    let p = &f.params;
    if p.distinct || p.filter.is_some() || !p.order_by.is_empty() || p.null_treatment.is_some() {
        return None;
    }
    percentile_call(f)
}

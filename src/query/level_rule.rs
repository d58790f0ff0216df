//! An optimizer rule that answers time-bucketed aggregates from a rollup level where
//! raw retention has deleted the raw rows (issue 7, "querying rollups").
//!
//! It rewrites
//! ```text
//! Aggregate: groupBy=[date_bin(W, time[, origin]), tag...], aggr=[count|sum|min|max|avg(f),
//!            increase|rate(f, time), percentile(f, q), median(f), first|last(f, time)]
//!   TableScan: t (a tiered table whose raw rows before D are deleted), tag/time filters
//! ```
//! when the query's time range starts before `D`, into
//! ```text
//! Union
//!   Aggregate (the original)                          buckets from S on, raw rows
//!     TableScan: t, filters + time >= S
//!   Projection (the original names and types)         buckets before S, level rows
//!     Aggregate: groupBy=[date_bin(W, time[, origin]), tag...],
//!                aggr=[sum(f_count), sum(f_sum), min(f_min), ..., sketch_merge(f_sketch)]
//!       TableScan: t@<level>, tag filters + time in [lo, S)
//! ```
//! `S` is the first bucket boundary at or after `D`: each bucket is answered wholly
//! from raw rows or wholly from the level, and the level's buckets (`[b, b + width)`,
//! `b` a multiple of its width) nest in the query's buckets because `W` and the origin
//! are multiples of the level's width. When the range ends before `S` there is no raw
//! branch. `EXPLAIN` shows the level as the scan `t@<level>` and its files
//! (`.../level=<level>/...`). How each aggregate is answered from a level is the table
//! in [`super::rollup_table`]; percentiles come from merged sketches (within 1%), the
//! rest equal the raw answers up to float summation order.
//!
//! Which level: among the table's levels whose width divides `W` and the origin, the
//! coarsest one whose files reach back to the range's start (fewest rows), else the one
//! reaching back furthest.
//!
//! Left alone (answered from raw rows as before): ranges starting at or after `D`;
//! tables without deleted raw rows or levels; other aggregates (`stddev`, `count(*)`,
//! `DISTINCT`, `FILTER`, `ORDER BY`, Prometheus-extrapolated `rate(f, time, lo, hi)`,
//! expressions over columns), field filters, other group keys, and cases where a level
//! would not be complete: some policy of the table lacks the level (its series have
//! no level rows), the level lacks a column, or `S` lies past `tiered_until` (the last
//! level bucket would miss rows still in memory). Time bounds that are not multiples
//! of the level's width keep only the level buckets wholly inside the range.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue, TableReference, internal_err};
use datafusion::error::Result as DfResult;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Expr, LogicalPlan, LogicalPlanBuilder, Projection, ScalarUDF,
    TableScan, TableScanBuilder, cast, lit,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::functions::{rollup, select, sketch};
use super::plan_match::{bucket_spec, rewrite_aggregate, unalias};
use super::pushdown::{Pushed, ScanFilters, classify};
use super::rollup_table::RollupTable;
use super::tiered::{TieredTable, unqualified};
use crate::model::TIME_COLUMN;
use crate::storage::BucketSpec;
use crate::tier::LevelManifest;

/// The rule; see the module docs.
#[derive(Debug)]
pub struct LevelAggregateRule {
    udafs: BTreeMap<String, Arc<AggregateUDF>>,
    sketch_quantile: Option<Arc<ScalarUDF>>,
}

impl Default for LevelAggregateRule {
    fn default() -> Self {
        let udafs = rollup::functions()
            .into_iter()
            .chain(select::functions())
            .chain(sketch::aggregate_functions())
            .map(|f| (f.name().to_string(), Arc::new(f)))
            .collect();
        let sketch_quantile = sketch::scalar_functions()
            .into_iter()
            .find(|f| f.name() == "sketch_quantile")
            .map(Arc::new);
        LevelAggregateRule {
            udafs,
            sketch_quantile,
        }
    }
}

/// What one original aggregate is over a level (per field `f`).
#[derive(Debug, Clone, PartialEq)]
enum LevelAgg {
    Count(String),
    Sum(String),
    Min(String),
    Max(String),
    Avg(String),
    Increase(String),
    Rate(String),
    Percentile(String, f64),
    First(String),
    Last(String),
}

impl LevelAgg {
    fn field(&self) -> &str {
        match self {
            LevelAgg::Count(f)
            | LevelAgg::Sum(f)
            | LevelAgg::Min(f)
            | LevelAgg::Max(f)
            | LevelAgg::Avg(f)
            | LevelAgg::Increase(f)
            | LevelAgg::Rate(f)
            | LevelAgg::Percentile(f, _)
            | LevelAgg::First(f)
            | LevelAgg::Last(f) => f,
        }
    }
}

/// `e` without casts (coercion casts `time` to nanoseconds for the functions).
fn uncast(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(c) => uncast(&c.expr),
        e => e,
    }
}

fn is_field<'a>(e: &'a Expr, fields: &[String]) -> Option<&'a str> {
    match uncast(e) {
        Expr::Column(c) if fields.contains(&c.name) => Some(&c.name),
        _ => None,
    }
}

fn is_time(e: &Expr) -> bool {
    matches!(uncast(e), Expr::Column(c) if c.name == TIME_COLUMN)
}

fn level_aggregate(e: &Expr, fields: &[String]) -> Option<LevelAgg> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = unalias(e) else {
        return None;
    };
    if params.distinct
        || params.filter.is_some()
        || !params.order_by.is_empty()
        || params.null_treatment.is_some()
    {
        return None;
    }
    let args = params.args.as_slice();
    let field = || is_field(args.first()?, fields).map(str::to_string);
    let with_time = || match args {
        [f, t] if is_time(t) => is_field(f, fields).map(str::to_string),
        _ => None,
    };
    Some(match (func.name(), args.len()) {
        ("count", 1) => LevelAgg::Count(field()?),
        ("sum", 1) => LevelAgg::Sum(field()?),
        ("min", 1) => LevelAgg::Min(field()?),
        ("max", 1) => LevelAgg::Max(field()?),
        ("avg", 1) => LevelAgg::Avg(field()?),
        ("median", 1) => LevelAgg::Percentile(field()?, 0.5),
        ("percentile", 2) => match uncast(&args[1]) {
            Expr::Literal(q, _) => {
                let q = match q.cast_to(&DataType::Float64).ok()? {
                    ScalarValue::Float64(Some(q)) if (0.0..=1.0).contains(&q) => q,
                    _ => return None,
                };
                LevelAgg::Percentile(field()?, q)
            }
            _ => return None,
        },
        ("increase", 2) => LevelAgg::Increase(with_time()?),
        ("rate", 2) => LevelAgg::Rate(with_time()?),
        ("first", 2) => LevelAgg::First(with_time()?),
        ("last", 2) => LevelAgg::Last(with_time()?),
        _ => return None,
    })
}

/// `t` rounded up / down to a multiple of `width` (from the epoch), saturating.
fn align_up(t: i64, width: i64) -> i64 {
    match t.checked_sub(t.rem_euclid(width)) {
        Some(down) if down == t => t,
        Some(down) => down.saturating_add(width),
        None => t,
    }
}

fn align_down(t: i64, width: i64) -> i64 {
    t.checked_sub(t.rem_euclid(width)).unwrap_or(t)
}

fn millis(t: i64) -> Expr {
    lit(ScalarValue::TimestampMillisecond(
        Some(t),
        Some("UTC".into()),
    ))
}

/// The aggregate's scan and the projection between them, if any. Common
/// subexpression elimination puts a projection there (`CAST(time AS ...) AS
/// __common_expr_1`) when several expressions use `time`.
fn scan_of(aggregate: &Aggregate) -> Option<(&TableScan, Option<&Projection>)> {
    match aggregate.input.as_ref() {
        LogicalPlan::TableScan(scan) => Some((scan, None)),
        LogicalPlan::Projection(p) => match p.input.as_ref() {
            LogicalPlan::TableScan(scan) => Some((scan, Some(p))),
            _ => None,
        },
        _ => None,
    }
}

/// `e` over the scan's columns: the projection's expressions inlined, aliases dropped.
fn inline(e: &Expr, projection: Option<&Projection>) -> DfResult<Expr> {
    e.clone()
        .transform_up(|e| match e {
            Expr::Column(c) => {
                match projection.and_then(|p| Some((p, p.schema.maybe_index_of_column(&c)?))) {
                    Some((p, i)) => Ok(Transformed::yes(p.expr[i].clone().unalias_nested().data)),
                    None => Ok(Transformed::no(Expr::Column(c))),
                }
            }
            Expr::Alias(a) => Ok(Transformed::yes(*a.expr)),
            e => Ok(Transformed::no(e)),
        })
        .map(|t| t.data)
}

/// The level to read for buckets of `spec` over `range_start..`, if any qualifies.
fn choose_level(
    levels: &BTreeMap<String, LevelManifest>,
    spec: BucketSpec,
    range_start: i64,
    usable: impl Fn(&str, &LevelManifest) -> bool,
) -> Option<(&String, &LevelManifest)> {
    let candidates = levels.iter().filter(|(name, l)| {
        l.width_ms > 0
            && spec.width_ms % l.width_ms == 0
            && spec.origin_ms.rem_euclid(l.width_ms) == 0
            && !l.files.is_empty()
            && usable(name, l)
    });
    let oldest = |l: &LevelManifest| l.files.iter().map(|f| f.min_time).min().unwrap_or(i64::MAX);
    // Reaching back to the start first, then coarser, then reaching back further.
    candidates.min_by_key(|(_, l)| {
        let reaches = oldest(l) <= range_start;
        (!reaches, if reaches { 0 } else { oldest(l) }, -l.width_ms)
    })
}

impl OptimizerRule for LevelAggregateRule {
    fn name(&self) -> &str {
        "metricstore_rollup_levels"
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

impl LevelAggregateRule {
    fn udaf(&self, name: &str, args: Vec<Expr>) -> DfResult<Expr> {
        match self.udafs.get(name) {
            Some(f) => Ok(f.call(args)),
            None => internal_err!("{name} is not registered"),
        }
    }

    fn try_rewrite(&self, aggregate: &Aggregate) -> DfResult<Option<LogicalPlan>> {
        // Every aggregate of every query comes here: the cheap checks on the table
        // first, expressions copied only for a table with deleted raw rows.
        let Some((scan, projection)) = scan_of(aggregate) else {
            return Ok(None);
        };
        if scan.fetch.is_some() {
            return Ok(None);
        }
        let Ok(provider) = source_as_provider(&scan.source) else {
            return Ok(None);
        };
        let any: &dyn Any = provider.as_ref();
        let Some(table) = any.downcast_ref::<TieredTable>() else {
            return Ok(None);
        };
        let Some(entry) = table.entry() else {
            return Ok(None);
        };
        let Some(deleted_before) = entry.raw_deleted_before else {
            return Ok(None);
        };
        let inline_all = |exprs: &[Expr]| -> DfResult<Vec<Expr>> {
            exprs.iter().map(|e| inline(e, projection)).collect()
        };
        let (group_expr, aggr_expr) = (
            inline_all(&aggregate.group_expr)?,
            inline_all(&aggregate.aggr_expr)?,
        );
        let (tags, fields) = (table.tags(), table.fields());
        let filters: Vec<Expr> = scan
            .filters
            .iter()
            .map(unqualified)
            .collect::<DfResult<_>>()?;
        let mut tag_filters = Vec::new();
        for f in &filters {
            match classify(f, tags, fields) {
                Some(Pushed::Tags(_)) => tag_filters.push(f.clone()),
                Some(Pushed::Time(_)) => {}
                _ => return Ok(None),
            }
        }
        let range = ScanFilters::new(&filters, tags, fields).range;
        if range.start >= deleted_before || range.start >= range.end {
            return Ok(None);
        }
        // Group keys: exactly one date_bin over time, the rest tag columns.
        let mut spec = None;
        let mut group_tags = Vec::new();
        for g in &group_expr {
            match unalias(g) {
                Expr::Column(c) if tags.contains(&c.name) => group_tags.push(c.name.clone()),
                e => match (bucket_spec(e), spec) {
                    (Some(s), None) => spec = Some(s),
                    _ => return Ok(None),
                },
            }
        }
        let Some(spec) = spec else {
            return Ok(None);
        };
        let Some(aggs) = aggr_expr
            .iter()
            .map(|e| level_aggregate(e, fields))
            .collect::<Option<Vec<LevelAgg>>>()
        else {
            return Ok(None);
        };
        // The first bucket boundary at or after the deletion point.
        let bucket = spec.bucket(deleted_before);
        let split = if bucket == deleted_before {
            bucket
        } else {
            bucket.saturating_add(spec.width_ms)
        };
        if split > entry.tiered_until {
            return Ok(None);
        }
        let policies = table.policies();
        let filter_tags: Vec<String> = tag_filters
            .iter()
            .flat_map(|f| f.column_refs().into_iter().map(|c| c.name.clone()))
            .collect();
        let usable = |name: &str, level: &LevelManifest| {
            policies
                .iter()
                .all(|p| p.levels.iter().any(|l| l.name() == name))
                && group_tags
                    .iter()
                    .chain(&filter_tags)
                    .all(|t| level.tags.contains(t))
                && aggs
                    .iter()
                    .all(|a| level.fields.iter().any(|f| f == a.field()))
        };
        let Some((name, level)) = choose_level(&entry.levels, spec, range.start, usable) else {
            return Ok(None);
        };
        let width = level.width_ms;
        let lo = (range.start != i64::MIN).then(|| align_up(range.start, width));
        let hi = if range.end == i64::MAX {
            split
        } else {
            split.min(align_down(range.end, width))
        };
        let mut branches = Vec::new();
        if range.end > split {
            // Buckets from the split on: the original aggregate over raw rows.
            let mut filters = scan.filters.clone();
            filters.push(
                Expr::Column(Column::new(Some(scan.table_name.clone()), TIME_COLUMN))
                    .gt_eq(millis(split)),
            );
            let mut raw = LogicalPlan::TableScan(
                TableScanBuilder::new(scan.table_name.clone(), scan.source.clone())
                    .with_projection(scan.projection.clone())
                    .with_filters(filters)
                    .build()?,
            );
            if let Some(p) = projection {
                raw = LogicalPlan::Projection(Projection::try_new(p.expr.clone(), Arc::new(raw))?);
            }
            branches.push(LogicalPlan::Aggregate(Aggregate::try_new(
                Arc::new(raw),
                aggregate.group_expr.clone(),
                aggregate.aggr_expr.clone(),
            )?));
        }
        if lo.is_none_or(|lo| lo < hi) {
            let rollup = RollupTable::new(level.clone(), table.cold(), table.manifest());
            branches.push(self.level_branch(
                aggregate,
                &group_expr,
                &aggs,
                TableReference::bare(format!("{}@{name}", table.name())),
                Arc::new(rollup),
                tag_filters,
                lo,
                hi,
            )?);
        }
        let mut branches = branches.into_iter();
        let Some(first) = branches.next() else {
            return Ok(None);
        };
        let Some(second) = branches.next() else {
            return Ok(Some(first));
        };
        // A union's columns are unqualified: restore the aggregate's qualifiers.
        let union = LogicalPlanBuilder::from(first).union(second)?.build()?;
        let projection: Vec<Expr> = aggregate
            .schema
            .iter()
            .zip(union.schema().fields().iter())
            .map(|((qualifier, field), u)| {
                Expr::Column(Column::new_unqualified(u.name()))
                    .alias_qualified(qualifier.cloned(), field.name())
            })
            .collect();
        Ok(Some(
            LogicalPlanBuilder::from(union)
                .project(projection)?
                .build()?,
        ))
    }

    /// The aggregate over level rows with bucket starts in `[lo, hi)`, projected to the
    /// original aggregate's names and types.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all parts of one plan"
    )]
    fn level_branch(
        &self,
        aggregate: &Aggregate,
        group_expr: &[Expr],
        aggs: &[LevelAgg],
        name: TableReference,
        rollup: Arc<RollupTable>,
        mut filters: Vec<Expr>,
        lo: Option<i64>,
        hi: i64,
    ) -> DfResult<LogicalPlan> {
        let qualified = |c: &str| Expr::Column(Column::new(Some(name.clone()), c));
        let time = || qualified(TIME_COLUMN);
        if let Some(lo) = lo {
            filters.push(time().gt_eq(millis(lo)));
        }
        filters.push(time().lt(millis(hi)));
        let group: Vec<Expr> = group_expr
            .iter()
            .map(|g| unqualified(unalias(g)))
            .collect::<DfResult<_>>()?;
        let mut new_aggs: Vec<Expr> = Vec::new();
        let mut add = |e: Expr| -> Expr {
            let name = e.schema_name().to_string();
            if !new_aggs.iter().any(|a| a.schema_name().to_string() == name) {
                new_aggs.push(e);
            }
            Expr::Column(Column::from_name(name))
        };
        let stat = |f: &str, s: &str| qualified(&format!("{f}_{s}"));
        // The type the functions coerce times to (this plan is built after the
        // analyzer's type coercion).
        let nanos = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        let stamp = |f: &str, s: &str| cast(stat(f, s), nanos.clone());
        let counters = |f: &str| {
            vec![
                stat(f, "first"),
                stamp(f, "first_time"),
                stat(f, "last"),
                stamp(f, "last_time"),
                stat(f, "increase"),
            ]
        };
        let mut outputs = Vec::with_capacity(aggs.len());
        for a in aggs {
            outputs.push(match a {
                LevelAgg::Count(f) => coalesce(vec![add(sum(stat(f, "count"))), lit(0i64)]),
                LevelAgg::Sum(f) => add(sum(stat(f, "sum"))),
                LevelAgg::Min(f) => add(min(stat(f, "min"))),
                LevelAgg::Max(f) => add(max(stat(f, "max"))),
                LevelAgg::Avg(f) => {
                    let total = add(sum(stat(f, "sum")));
                    let count = add(sum(stat(f, "count")));
                    total / cast(count, DataType::Float64)
                }
                LevelAgg::Increase(f) => add(self.udaf("rollup_increase", counters(f))?),
                LevelAgg::Rate(f) => add(self.udaf("rollup_rate", counters(f))?),
                LevelAgg::Percentile(f, q) => {
                    let merged = add(self.udaf("sketch_merge", vec![stat(f, "sketch")])?);
                    match &self.sketch_quantile {
                        Some(f) => f.call(vec![merged, lit(*q)]),
                        None => return internal_err!("sketch_quantile is not registered"),
                    }
                }
                LevelAgg::First(f) => {
                    add(self.udaf("first", vec![stat(f, "first"), stamp(f, "first_time")])?)
                }
                LevelAgg::Last(f) => {
                    add(self.udaf("last", vec![stat(f, "last"), stamp(f, "last_time")])?)
                }
            });
        }
        // The level's scan uses the filters to skip files and row groups only
        // (`Inexact`): the filter above it keeps exactly the rows they select.
        let predicate = filters.iter().cloned().reduce(Expr::and);
        let mut builder = LogicalPlanBuilder::scan_with_filters(
            name.clone(),
            provider_as_source(rollup),
            None,
            filters,
        )?;
        if let Some(p) = predicate {
            builder = builder.filter(p)?;
        }
        let plan = builder.aggregate(group.clone(), new_aggs)?.build()?;
        // Restore the original output: same qualifiers, names and types.
        let schema = aggregate.schema.clone();
        let group_names: Vec<Expr> = plan
            .schema()
            .columns()
            .into_iter()
            .take(group.len())
            .map(Expr::Column)
            .collect();
        let mut projection = Vec::with_capacity(schema.fields().len());
        for (i, g) in group_names.into_iter().enumerate() {
            let (qualifier, field) = schema.qualified_field(i);
            projection.push(
                cast(g, field.data_type().clone())
                    .alias_qualified(qualifier.cloned(), field.name()),
            );
        }
        let offset = group.len();
        for (i, out) in outputs.into_iter().enumerate() {
            let (qualifier, field) = schema.qualified_field(offset + i);
            projection.push(
                cast(out, field.data_type().clone())
                    .alias_qualified(qualifier.cloned(), field.name()),
            );
        }
        LogicalPlanBuilder::from(plan).project(projection)?.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment() {
        assert_eq!(align_up(0, 10), 0);
        assert_eq!(align_up(1, 10), 10);
        assert_eq!(align_up(-1, 10), 0);
        assert_eq!(align_down(19, 10), 10);
        assert_eq!(align_down(-1, 10), -10);
        assert_eq!(align_up(i64::MAX, 10), i64::MAX);
    }
}

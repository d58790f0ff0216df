//! Tests of the StatsD parser and aggregator, and the helpers they share.

use super::*;
use crate::model::{FieldKind, TagSet, WriteBatch};

#[path = "tests/aggregate.rs"]
mod aggregate;
#[path = "tests/parse.rs"]
mod parse;
#[path = "tests/proptests.rs"]
mod proptests;

pub(super) fn tags(pairs: &[(&str, &str)]) -> TagSet {
    TagSet::new(pairs.iter().copied()).unwrap()
}

/// The one metric of a valid one-line packet.
pub(super) fn one(line: &str) -> Metric {
    let (metrics, errors) = parse_packet(line.as_bytes());
    assert!(errors.is_empty(), "{line:?}: {errors:?}");
    assert_eq!(metrics.len(), 1, "{line:?}");
    metrics.into_iter().next().unwrap()
}

/// The error of a one-line packet: line, column, message.
pub(super) fn error(line: &[u8]) -> (usize, usize, String) {
    let (metrics, errors) = parse_packet(line);
    assert!(metrics.is_empty(), "{line:?} parsed as {metrics:?}");
    assert_eq!(errors.len(), 1, "{line:?}: {errors:?}");
    let e = &errors[0];
    (e.line, e.column, e.message.clone())
}

/// One flushed row, fields with their kinds.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    pub table: String,
    pub tags: TagSet,
    pub time: i64,
    pub fields: Vec<(String, Option<FieldKind>, f64)>,
}

impl Row {
    /// The value of `field`.
    pub fn get(&self, field: &str) -> f64 {
        match self.fields.iter().find(|(name, _, _)| name == field) {
            Some((_, _, v)) => *v,
            None => panic!("no field {field:?} in {self:?}"),
        }
    }
}

pub(super) fn rows(batch: &WriteBatch) -> Vec<Row> {
    let mut out = Vec::new();
    for s in batch.items() {
        assert_eq!(s.len(), 1, "one row per series per flush");
        out.push(Row {
            table: s.table().to_string(),
            tags: s.tags().clone(),
            time: s.timestamps()[0],
            fields: s
                .fields()
                .iter()
                .zip(s.row(0))
                .map(|((name, kind), v)| (name.clone(), *kind, *v))
                .collect(),
        });
    }
    out
}

/// The row of `table` with `tags`, if the batch has one.
pub(super) fn find<'r>(rows: &'r [Row], table: &str, tags: &TagSet) -> Option<&'r Row> {
    let mut found = rows.iter().filter(|r| r.table == table && &r.tags == tags);
    let row = found.next();
    assert!(found.next().is_none(), "two rows for {table}{tags}");
    row
}

/// Nearest-rank percentile by counting, in exact integer arithmetic: the smallest value
/// with at least `percent`% of the values at or below it.
pub(super) fn naive_percentile(values: &[f64], percent: u32) -> f64 {
    let n = values.len() as u64;
    let mut candidates: Vec<f64> = values.to_vec();
    candidates.sort_by(f64::total_cmp);
    for &v in &candidates {
        let at_or_below = values.iter().filter(|&&x| x <= v).count() as u64;
        if at_or_below * 100 >= u64::from(percent) * n {
            return v;
        }
    }
    panic!("no percentile of {values:?}")
}

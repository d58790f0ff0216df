//! The grouped accumulator of exact percentiles (`percentile`, `median` and the
//! shared form of several percentiles of one column, see
//! [`crate::query::PercentileShareRule`]).
//!
//! Values are logged flat as they arrive, one `(group, value)` pair each, instead of
//! one growing vector per group: appending is a copy loop without per-group
//! allocations. When results (or partial states) are due, a counting sort by group
//! lays each group's values out contiguously, and each group's quantiles are selected
//! in place (`select_nth_unstable`, linear time): all quantiles of one group from one
//! buffer, each selection working only on the part to the right of the previous one.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, ListArray, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::cast::{as_float64_array, as_list_array};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

/// The name of the `i`-th field of the shared form's struct result.
pub(crate) fn quantile_field(i: usize) -> String {
    format!("q{i}")
}

fn quantile_fields(n: usize) -> Fields {
    Fields::from(
        (0..n)
            .map(|i| Field::new(quantile_field(i), DataType::Float64, true))
            .collect::<Vec<_>>(),
    )
}

/// The struct type of the shared form's result: one `Float64` per quantile.
pub(crate) fn quantiles_type(n: usize) -> DataType {
    DataType::Struct(quantile_fields(n))
}

/// The nearest-rank index (0-based) of quantile `q` among `n > 0` values.
fn rank(q: f64, n: usize) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n) - 1
}

/// `v` as an integer ordered as `f64::total_cmp` orders floats: selection then compares
/// plain integers instead of transforming two floats at every comparison.
pub(crate) fn total_order_key(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// The float of a [`total_order_key`] (the transform is its own inverse).
fn from_total_order_key(k: i64) -> f64 {
    f64::from_bits((k ^ (((k >> 63) as u64) >> 1) as i64) as u64)
}

/// The nearest-rank quantiles `qs` of the values whose [`total_order_key`]s are `keys`
/// (reordered in place), written to `out` in the order of `qs`; `order` lists the
/// indexes of `qs` by increasing quantile.
pub(crate) fn select_quantiles(
    keys: &mut [i64],
    qs: &[f64],
    order: &[usize],
    out: &mut [Option<f64>],
) {
    let n = keys.len();
    if n == 0 {
        out.iter_mut().for_each(|o| *o = None);
        return;
    }
    // Ranks increase along `order`: each selection partitions the slice, so the next
    // one only searches right of the previous rank.
    let mut from = 0;
    let mut previous: Option<(usize, f64)> = None;
    for &i in order {
        let r = rank(qs[i], n);
        let v = match previous {
            Some((p, v)) if p == r => v,
            _ => {
                let (_, k, _) = keys[from..].select_nth_unstable(r - from);
                let v = from_total_order_key(*k);
                from = r + 1;
                v
            }
        };
        previous = Some((r, v));
        out[i] = Some(v);
    }
}

/// The indexes of `qs` by increasing quantile.
pub(crate) fn quantile_order(qs: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..qs.len()).collect();
    order.sort_by(|&a, &b| qs[a].total_cmp(&qs[b]));
    order
}

/// The result column from one vector per quantile (one entry per group): `Float64`
/// for one quantile, a struct of them for several (`multi`).
pub(crate) fn quantile_column(per_quantile: Vec<Vec<Option<f64>>>, multi: bool) -> ArrayRef {
    let n = per_quantile.len();
    let mut columns: Vec<ArrayRef> = per_quantile
        .into_iter()
        .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
        .collect();
    if !multi && let Some(only) = columns.pop() {
        return only;
    }
    Arc::new(StructArray::new(quantile_fields(n), columns, None))
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct PercentileGroups {
    qs: Vec<f64>,
    order: Vec<usize>,
    multi: bool,
    /// Groups so far (DataFusion's `total_num_groups`).
    num_groups: usize,
    /// The group of each logged value (`u32`: half the memory of `usize`).
    groups: Vec<u32>,
    values: Vec<f64>,
    /// Whether `groups` never decreases. Input sorted by the group keys (the scan's
    /// series order, which DataFusion's streaming aggregation exploits) logs each
    /// group's values contiguously: no sort is needed, and emitting the first groups
    /// takes a prefix.
    sorted: bool,
}

/// Whether row `i` passes the aggregate's FILTER clause.
fn selected(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl PercentileGroups {
    /// Quantiles `qs`; the result is a struct of them when `multi`.
    pub(crate) fn new(qs: Vec<f64>, multi: bool) -> Self {
        PercentileGroups {
            order: quantile_order(&qs),
            qs,
            multi,
            num_groups: 0,
            groups: Vec::new(),
            values: Vec::new(),
            sorted: true,
        }
    }

    /// Logs `groups` (already checked to fit in u32) and keeps `sorted` up to date.
    fn log_groups(&mut self, groups: impl Iterator<Item = usize>) {
        let before = self.groups.len();
        self.groups.extend(groups.map(|g| g as u32));
        if self.sorted {
            let from = before.saturating_sub(1);
            self.sorted = self.groups[from..].is_sorted();
        }
    }

    fn grow(&mut self, total_num_groups: usize) -> Result<()> {
        if total_num_groups > u32::MAX as usize {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "percentile: more than {} groups",
                u32::MAX
            )));
        }
        self.num_groups = self.num_groups.max(total_num_groups);
        Ok(())
    }

    /// Takes the values of the groups `emit_to` selects, laid out by group: the
    /// offsets of each group's values (one more than the groups) and the values.
    fn take_grouped(&mut self, emit_to: EmitTo) -> (Vec<usize>, Vec<f64>) {
        let n = match emit_to {
            EmitTo::All => self.num_groups,
            EmitTo::First(k) => k.min(self.num_groups),
        };
        if self.sorted {
            return self.take_prefix(n);
        }
        let mut offsets = vec![0usize; n + 1];
        for &g in &self.groups {
            if let Some(c) = offsets.get_mut(g as usize + 1) {
                *c += 1;
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut out = vec![0.0; offsets[n]];
        let mut next = offsets[..n].to_vec();
        if n == self.num_groups {
            for (&g, &v) in self.groups.iter().zip(&self.values) {
                let slot = &mut next[g as usize];
                out[*slot] = v;
                *slot += 1;
            }
            self.groups = Vec::new();
            self.values = Vec::new();
        } else {
            // Keep the later groups, renumbered from 0.
            let (mut kept_groups, mut kept_values) = (Vec::new(), Vec::new());
            for (&g, &v) in self.groups.iter().zip(&self.values) {
                match next.get_mut(g as usize) {
                    Some(slot) => {
                        out[*slot] = v;
                        *slot += 1;
                    }
                    None => {
                        kept_groups.push(g - n as u32);
                        kept_values.push(v);
                    }
                }
            }
            self.groups = kept_groups;
            self.values = kept_values;
        }
        self.num_groups -= n;
        self.sorted = self.groups.is_sorted();
        (offsets, out)
    }

    /// [`Self::take_grouped`] when the log is sorted by group: the first `n` groups'
    /// values are a prefix, taken without copying it.
    fn take_prefix(&mut self, n: usize) -> (Vec<usize>, Vec<f64>) {
        let split = self.groups.partition_point(|&g| (g as usize) < n);
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        let mut at = 0;
        for g in 0..n {
            while at < split && self.groups[at] as usize == g {
                at += 1;
            }
            offsets.push(at);
        }
        let rest_values = self.values.split_off(split);
        let values = std::mem::replace(&mut self.values, rest_values);
        let mut rest_groups = self.groups.split_off(split);
        rest_groups.iter_mut().for_each(|g| *g -= n as u32);
        self.groups = rest_groups;
        self.num_groups -= n;
        if self.num_groups > 0 {
            // Streaming aggregation emits like this after every batch: room for as
            // many values again saves growing the log from nothing each time.
            self.values.reserve(split);
            self.groups.reserve(split);
        }
        (offsets, values)
    }
}

impl GroupsAccumulator for PercentileGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups)?;
        let v = as_float64_array(&values[0])?;
        if opt_filter.is_none() && v.null_count() == 0 {
            // The common case, without per-row validity checks. `grow` checked that
            // every group index fits in u32.
            self.log_groups(group_indices.iter().copied());
            self.values.extend_from_slice(v.values());
            return Ok(());
        }
        let rows = (0..group_indices.len()).filter(|&i| selected(opt_filter, i) && v.is_valid(i));
        self.log_groups(rows.clone().map(|i| group_indices[i]));
        self.values.extend(rows.map(|i| v.value(i)));
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (offsets, values) = self.take_grouped(emit_to);
        // In place: same size and alignment, so the allocation is reused.
        let mut keys: Vec<i64> = values.into_iter().map(total_order_key).collect();
        let groups = offsets.len().saturating_sub(1);
        let mut per_quantile = vec![Vec::with_capacity(groups); self.qs.len()];
        let mut out = vec![None; self.qs.len()];
        for w in offsets.windows(2) {
            select_quantiles(&mut keys[w[0]..w[1]], &self.qs, &self.order, &mut out);
            for (column, v) in per_quantile.iter_mut().zip(&out) {
                column.push(*v);
            }
        }
        Ok(quantile_column(per_quantile, self.multi))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (offsets, values) = self.take_grouped(emit_to);
        let offsets = offsets
            .iter()
            .map(|&o| i32::try_from(o))
            .collect::<Result<Vec<i32>, _>>()
            .map_err(|_| {
                DataFusionError::ResourcesExhausted(
                    "percentile: more than 2^31 values in one partial state".into(),
                )
            })?;
        let field = Arc::new(Field::new_list_field(DataType::Float64, true));
        Ok(vec![Arc::new(ListArray::new(
            field,
            OffsetBuffer::new(offsets.into()),
            Arc::new(Float64Array::from(values)),
            None,
        ))])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups)?;
        let lists = as_list_array(&values[0])?;
        let items = as_float64_array(lists.values())?;
        self.values.reserve(items.len());
        self.groups.reserve(items.len());
        for (row, &g) in group_indices.iter().enumerate() {
            if lists.is_valid(row) {
                let part = super::list_row(lists, items, row);
                self.log_groups(std::iter::repeat_n(g, part.len()));
                self.values.extend_from_slice(part);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // One list of zero or one value per row, built flat (no vector per row).
        let v = as_float64_array(&values[0])?;
        let keep: Vec<bool> = (0..v.len())
            .map(|i| selected(opt_filter, i) && v.is_valid(i))
            .collect();
        let flat: Float64Array = (0..v.len())
            .filter(|&i| keep[i])
            .map(|i| v.value(i))
            .collect();
        let offsets = OffsetBuffer::from_lengths(keep.iter().map(|&k| usize::from(k)));
        let field = Arc::new(Field::new_list_field(DataType::Float64, true));
        Ok(vec![Arc::new(ListArray::new(
            field,
            offsets,
            Arc::new(flat),
            None,
        ))])
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.groups.capacity() * 4 + self.values.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nearest rank over a sorted copy: the definition, written plainly.
    fn naive(values: &[f64], q: f64) -> Option<f64> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        (n > 0).then(|| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
    }

    fn column(array: &ArrayRef, i: usize) -> Vec<Option<f64>> {
        let s = array
            .as_any()
            .downcast_ref::<StructArray>()
            .expect("struct");
        let c = s
            .column(i)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        c.iter().collect()
    }

    /// Feeds `rows` (group, value) in batches of 7, emitting the first `first` groups
    /// midway, then the rest; checks every group against the naive definition, both
    /// directly and through partial state and merge.
    fn check(rows: &[(usize, f64)], groups: usize, first: usize) {
        let qs = vec![0.99, 0.0, 0.5, 0.5, 1.0];
        let mut model: Vec<Vec<f64>> = vec![Vec::new(); groups];
        let mut direct = PercentileGroups::new(qs.clone(), true);
        let mut partial = PercentileGroups::new(qs.clone(), true);
        let mut merged = PercentileGroups::new(qs.clone(), true);
        for batch in rows.chunks(7) {
            let idx: Vec<usize> = batch.iter().map(|r| r.0).collect();
            let values: ArrayRef = Arc::new(Float64Array::from(
                batch.iter().map(|r| r.1).collect::<Vec<_>>(),
            ));
            let total = groups;
            direct
                .update_batch(std::slice::from_ref(&values), &idx, None, total)
                .unwrap();
            partial.update_batch(&[values], &idx, None, total).unwrap();
            batch.iter().for_each(|&(g, v)| model[g].push(v));
        }
        let state = partial.state(EmitTo::All).unwrap();
        let order: Vec<usize> = (0..groups).rev().collect(); // merged in reverse order
        let reversed = arrow::compute::take(
            &state[0],
            &arrow::array::UInt32Array::from(order.iter().map(|&g| g as u32).collect::<Vec<_>>()),
            None,
        )
        .unwrap();
        let targets: Vec<usize> = order.clone();
        merged.merge_batch(&[reversed], &targets, groups).unwrap();
        for acc in [&mut direct, &mut merged] {
            let head = acc.evaluate(EmitTo::First(first)).unwrap();
            let tail = acc.evaluate(EmitTo::All).unwrap();
            for (i, q) in qs.iter().enumerate() {
                let got: Vec<Option<f64>> = column(&head, i)
                    .into_iter()
                    .chain(column(&tail, i))
                    .collect();
                let want: Vec<Option<f64>> = model.iter().map(|g| naive(g, *q)).collect();
                let bits =
                    |v: &[Option<f64>]| v.iter().map(|x| x.map(f64::to_bits)).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "q = {q}");
            }
        }
    }

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match i % 41 {
                    0 => f64::NAN,
                    1 => f64::NEG_INFINITY,
                    2 => -0.0,
                    _ => (x % 100) as f64 - 50.0,
                }
            })
            .collect()
    }

    #[test]
    fn total_order_keys_order_as_total_cmp() {
        let v = [
            f64::NEG_INFINITY,
            -1.5,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            2.0,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        for a in v {
            assert_eq!(
                from_total_order_key(total_order_key(a)).to_bits(),
                a.to_bits()
            );
            for b in v {
                assert_eq!(total_order_key(a).cmp(&total_order_key(b)), a.total_cmp(&b));
            }
        }
    }

    #[test]
    fn unsorted_groups_equal_the_definition() {
        let v = values(2000, 7);
        let rows: Vec<(usize, f64)> = v
            .iter()
            .enumerate()
            .map(|(i, &x)| ((i * 7919) % 37, x))
            .collect();
        // Group 37 has no values.
        check(&rows, 38, 11);
    }

    #[test]
    fn sorted_groups_equal_the_definition() {
        let v = values(2000, 11);
        let rows: Vec<(usize, f64)> = v.iter().enumerate().map(|(i, &x)| (i / 60, x)).collect();
        check(&rows, 34, 20);
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0));
    }
}

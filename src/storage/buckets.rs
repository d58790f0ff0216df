//! Per-series, per-time-bucket statistics: row count and, per field, count, sum, min
//! and max of the values present.
//!
//! A chunk that lies inside one bucket and inside the time range is answered from its
//! header without decoding; other chunks, heads and pending out-of-order rows are
//! decoded and folded a run of rows per bucket at a time. With chunks sealed on hour
//! boundaries, hourly or coarser buckets over whole hours read headers only. The results equal SQL's
//! `count(*)`, `count`, `sum`, `min`, `max` over the same rows (staleness markers are
//! NULL; min/max in IEEE total order, as Arrow compares floats); sums may differ from
//! a row-by-row sum in the last bits, since they add per-chunk partial sums.

use std::ops::Range;

use arrow::array::BooleanBufferBuilder;
use arrow::buffer::BooleanBuffer;

use super::chunk::{Chunk, ColumnStats};
use super::head::Head;
use super::snapshot::{Columns, SeriesSnapshot, TableSnapshot, decode_merged};
use crate::model::{Result, STALE_NAN_BITS};

/// Fixed-width time buckets, as SQL's `date_bin(width, time, origin)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSpec {
    /// Bucket width in milliseconds (positive).
    pub width_ms: i64,
    /// A bucket boundary, in milliseconds since the epoch.
    pub origin_ms: i64,
}

impl BucketSpec {
    /// The start of the bucket holding `t`.
    pub fn bucket(&self, t: i64) -> i64 {
        let width = self.width_ms.max(1);
        let offset = t.wrapping_sub(self.origin_ms).div_euclid(width);
        self.origin_ms.wrapping_add(offset.wrapping_mul(width))
    }
}

/// Statistics of one field in one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldStats {
    /// Values present.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Smallest in total order; meaningless when `count` is 0.
    pub min: f64,
    /// Largest in total order; meaningless when `count` is 0.
    pub max: f64,
}

impl Default for FieldStats {
    fn default() -> Self {
        FieldStats {
            count: 0,
            sum: 0.0,
            min: f64::NAN,
            max: f64::NAN,
        }
    }
}

impl FieldStats {
    /// Adds the valid values of a run, staleness markers excepted.
    fn fold(&mut self, run: FieldValues<'_>) {
        match run.valid {
            Some(valid) => self.fold_rows(run.values.iter().copied().zip(valid.iter().copied())),
            None => self.fold_rows(run.values.iter().map(|&v| (v, true))),
        }
    }

    /// [`fold`](Self::fold) over `(value, valid)` pairs. Min and max compare integer
    /// keys in IEEE total order ([`total_key`]): no branch on the data, so the loop
    /// stays at the cost of its sum.
    fn fold_rows(&mut self, rows: impl Iterator<Item = (f64, bool)>) {
        let (mut count, mut sum) = (0u64, 0.0);
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (v, ok) in rows {
            let keep = ok && v.to_bits() != STALE_NAN_BITS;
            let key = total_key(v);
            lo = if keep { lo.min(key) } else { lo };
            hi = if keep { hi.max(key) } else { hi };
            count += u64::from(keep);
            sum += if keep { v } else { 0.0 };
        }
        if count > 0 {
            self.merge(&FieldStats {
                count,
                sum,
                min: from_total_key(lo),
                max: from_total_key(hi),
            });
        }
    }

    fn merge(&mut self, o: &FieldStats) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *o;
            return;
        }
        self.count += o.count;
        self.sum += o.sum;
        if o.min.total_cmp(&self.min).is_lt() {
            self.min = o.min;
        }
        if o.max.total_cmp(&self.max).is_gt() {
            self.max = o.max;
        }
    }

    fn from_header(s: &ColumnStats) -> FieldStats {
        FieldStats {
            count: u64::from(s.count),
            sum: s.sum,
            min: s.min,
            max: s.max,
        }
    }
}

/// One field's decoded values over the rows being folded, borrowed from wherever
/// they were decoded; `valid` is `None` when every row has a value.
#[derive(Debug, Clone, Copy)]
struct FieldValues<'a> {
    values: &'a [f64],
    valid: Option<&'a [bool]>,
}

impl<'a> FieldValues<'a> {
    fn slice(self, rows: Range<usize>) -> FieldValues<'a> {
        FieldValues {
            values: &self.values[rows.clone()],
            valid: self.valid.map(|v| &v[rows]),
        }
    }
}

/// `v`'s bits as an integer ordered as [`f64::total_cmp`] orders floats: negative
/// floats have their magnitude bits flipped, so they count down.
fn total_key(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// The float whose [`total_key`] is `key` (the mapping is its own inverse).
fn from_total_key(key: i64) -> f64 {
    f64::from_bits((key ^ (((key >> 63) as u64) >> 1) as i64) as u64)
}

/// One series' statistics over one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketRow {
    /// Position of the series in the snapshot.
    pub series: usize,
    /// Start of the bucket, in milliseconds.
    pub bucket: i64,
    /// Rows in the bucket.
    pub rows: u64,
    /// Per requested field, in the order asked for.
    pub fields: Vec<FieldStats>,
}

/// How the rows were read, for plan metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketReads {
    /// Chunks answered from their headers.
    pub from_headers: usize,
    /// Chunks decoded.
    pub decoded: usize,
}

/// Folds rows of one series into consecutive bucket rows.
struct Folder<'a> {
    spec: BucketSpec,
    series: usize,
    fields: usize,
    out: &'a mut Vec<BucketRow>,
}

impl Folder<'_> {
    fn row_for(&mut self, bucket: i64) -> &mut BucketRow {
        let start_new = !self
            .out
            .last()
            .is_some_and(|r| r.series == self.series && r.bucket == bucket);
        if start_new {
            self.out.push(BucketRow {
                series: self.series,
                bucket,
                rows: 0,
                fields: vec![FieldStats::default(); self.fields],
            });
        }
        let last = self.out.len() - 1;
        &mut self.out[last]
    }

    fn header(&mut self, chunk: &Chunk, fields: &[usize]) {
        let row = self.row_for(self.spec.bucket(chunk.min_time()));
        row.rows += chunk.rows() as u64;
        for (stats, &f) in row.fields.iter_mut().zip(fields) {
            if let Some(column) = chunk.column(f) {
                stats.merge(&FieldStats::from_header(&column.stats));
            }
        }
    }

    /// Folds decoded rows: `times` and per field its values (`None`: the field has no
    /// column there, so no value). Rows come in
    /// time order, so a bucket is a run of rows: one bucket computation per run, then
    /// each field folds its slice of the run. (Rows out of order would only split a
    /// bucket into several rows, which the aggregation above merges.)
    fn rows(&mut self, times: &[i64], columns: &[Option<FieldValues<'_>>]) {
        let mut start = 0;
        while let Some(&first) = times.get(start) {
            let bucket = self.spec.bucket(first);
            let next = bucket.saturating_add(self.spec.width_ms.max(1));
            let run = times[start..]
                .iter()
                .take_while(|&&t| t >= bucket && t < next)
                .count()
                // The first row is its bucket's, also where `next` saturated.
                .max(1);
            let end = start + run;
            let row = self.row_for(bucket);
            row.rows += run as u64;
            for (stats, column) in row.fields.iter_mut().zip(columns) {
                if let Some(column) = column {
                    stats.fold(column.slice(start..end));
                }
            }
            start = end;
        }
    }
}

impl TableSnapshot {
    /// Appends to `out` the statistics of `fields` (field numbers) per series (those at
    /// positions `series`) and bucket, over the snapshot's time range, in series then
    /// time order.
    pub fn bucket_stats(
        &self,
        series: Range<usize>,
        spec: BucketSpec,
        fields: &[usize],
        out: &mut Vec<BucketRow>,
    ) -> Result<BucketReads> {
        let mut reads = BucketReads::default();
        let end = series.end.min(self.series.len());
        for i in series.start.min(end)..end {
            let mut folder = Folder {
                spec,
                series: i,
                fields: fields.len(),
                out,
            };
            self.fold_series(&self.series[i], fields, &mut folder, &mut reads)?;
        }
        Ok(reads)
    }

    fn fold_series(
        &self,
        s: &SeriesSnapshot,
        fields: &[usize],
        folder: &mut Folder<'_>,
        reads: &mut BucketReads,
    ) -> Result<()> {
        let range = self.range;
        if let Some(overlay) = &s.overlay {
            let mut columns = Columns::new(fields.len());
            decode_merged(s, overlay, range, fields, true, &mut columns)?;
            reads.decoded += s.chunks.len();
            let valid: Vec<Option<Vec<bool>>> = columns
                .values
                .iter()
                .map(|(_, b)| bools(&b.finish_cloned()))
                .collect();
            let decoded: Vec<Option<FieldValues>> = columns
                .values
                .iter()
                .zip(&valid)
                .map(|((values, _), valid)| {
                    Some(FieldValues {
                        values,
                        valid: valid.as_deref(),
                    })
                })
                .collect();
            folder.rows(&columns.times, &decoded);
            return Ok(());
        }
        let spec = folder.spec;
        for chunk in &s.chunks {
            if range.covers(chunk.min_time(), chunk.max_time())
                && spec.bucket(chunk.min_time()) == spec.bucket(chunk.max_time())
            {
                reads.from_headers += 1;
                folder.header(chunk, fields);
                continue;
            }
            reads.decoded += 1;
            let mut times = Vec::with_capacity(chunk.rows());
            chunk.decode_times(&mut times)?;
            let lo = times.partition_point(|&t| t < range.start);
            let hi = times.partition_point(|&t| t < range.end);
            let mut decoded = Vec::with_capacity(fields.len());
            for &f in fields {
                let mut values = Vec::with_capacity(chunk.rows());
                let mut validity = BooleanBufferBuilder::new(chunk.rows());
                chunk.decode_field(f, &mut values, &mut validity)?;
                decoded.push((values, bools(&validity.finish())));
            }
            let columns: Vec<Option<FieldValues>> = decoded
                .iter()
                .map(|(values, valid)| {
                    let all = FieldValues {
                        values,
                        valid: valid.as_deref(),
                    };
                    Some(all.slice(lo..hi))
                })
                .collect();
            folder.rows(&times[lo..hi], &columns);
        }
        fold_head(&s.head.decode(range), fields, folder);
        Ok(())
    }
}

/// Validity bits as one `bool` per row, `None` when all are set (the common case,
/// which then skips the bit walk).
fn bools(bits: &BooleanBuffer) -> Option<Vec<bool>> {
    (bits.count_set_bits() != bits.len()).then(|| bits.iter().collect())
}

fn fold_head(head: &Head, fields: &[usize], folder: &mut Folder<'_>) {
    let columns: Vec<Option<FieldValues>> = fields
        .iter()
        .map(|&f| {
            head.columns.get(f).map(|c| FieldValues {
                values: &c.values,
                valid: c.valid.as_deref(),
            })
        })
        .collect();
    folder.rows(&head.times, &columns);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn total_keys_order_as_total_cmp(a in any::<u64>(), b in any::<u64>()) {
            let (a, b) = (f64::from_bits(a), f64::from_bits(b));
            prop_assert_eq!(total_key(a).cmp(&total_key(b)), a.total_cmp(&b));
            prop_assert_eq!(from_total_key(total_key(a)).to_bits(), a.to_bits());
        }
    }

    #[test]
    fn runs_end_at_bucket_boundaries_and_at_the_end_of_time() {
        let mut out = Vec::new();
        let mut folder = Folder {
            spec: BucketSpec {
                width_ms: 10,
                origin_ms: 0,
            },
            series: 0,
            fields: 1,
            out: &mut out,
        };
        let times = [3, 9, 10, 25, i64::MAX - 1, i64::MAX];
        let values = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        folder.rows(
            &times,
            &[Some(FieldValues {
                values: &values,
                valid: None,
            })],
        );
        let got: Vec<(i64, u64, f64)> = out
            .iter()
            .map(|r| (r.bucket, r.rows, r.fields[0].sum))
            .collect();
        let last = i64::MAX - i64::MAX % 10;
        assert_eq!(
            got,
            [(0, 2, 3.0), (10, 1, 3.0), (20, 1, 4.0), (last, 2, 11.0)]
        );
    }

    #[test]
    fn a_run_folds_to_its_statistics() {
        let mut stats = FieldStats::default();
        let stale = f64::from_bits(STALE_NAN_BITS);
        stats.fold(FieldValues {
            values: &[3.0, -0.0, stale, 9.0, 0.0, -7.5],
            valid: Some(&[true, true, true, false, true, true]),
        });
        assert_eq!(stats.count, 4);
        assert_eq!(stats.sum, -4.5);
        assert_eq!(stats.min, -7.5);
        assert_eq!(stats.max.to_bits(), 3.0f64.to_bits());
        let mut zeros = FieldStats::default();
        zeros.fold(FieldValues {
            values: &[0.0, -0.0],
            valid: None,
        });
        assert_eq!(
            (zeros.min.to_bits(), zeros.max.to_bits()),
            ((-0.0f64).to_bits(), 0.0f64.to_bits())
        );
    }
}

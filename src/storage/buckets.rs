//! Per-series, per-time-bucket statistics: row count and, per field, count, sum, min
//! and max of the values present.
//!
//! A chunk that lies inside one bucket and inside the time range is answered from its
//! header without decoding; other chunks, heads and pending out-of-order rows are
//! decoded and folded row by row. With chunks sealed on hour boundaries, hourly or
//! coarser buckets over whole hours read headers only. The results equal SQL's
//! `count(*)`, `count`, `sum`, `min`, `max` over the same rows (staleness markers are
//! NULL; min/max in IEEE total order, as Arrow compares floats); sums may differ from
//! a row-by-row sum in the last bits, since they add per-chunk partial sums.

use std::ops::Range;

use arrow::array::BooleanBufferBuilder;

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
    fn add(&mut self, v: f64) {
        if v.to_bits() == STALE_NAN_BITS {
            return;
        }
        self.merge(&FieldStats {
            count: 1,
            sum: v,
            min: v,
            max: v,
        });
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

    /// Folds decoded rows: `times` and per field `(values, validity)`.
    fn rows(&mut self, times: &[i64], columns: &[(Vec<f64>, Vec<bool>)]) {
        for (i, &t) in times.iter().enumerate() {
            let row = self.row_for(self.spec.bucket(t));
            row.rows += 1;
            for (stats, (values, valid)) in row.fields.iter_mut().zip(columns) {
                if valid[i] {
                    stats.add(values[i]);
                }
            }
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
            let decoded: Vec<(Vec<f64>, Vec<bool>)> = columns
                .values
                .into_iter()
                .map(|(v, b)| {
                    let bits = b.finish_cloned();
                    (v, bits.iter().collect())
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
            let mut columns = Vec::with_capacity(fields.len());
            for &f in fields {
                let mut values = Vec::with_capacity(chunk.rows());
                let mut validity = BooleanBufferBuilder::new(chunk.rows());
                chunk.decode_field(f, &mut values, &mut validity)?;
                let valid: Vec<bool> = validity.finish().iter().skip(lo).take(hi - lo).collect();
                values.truncate(hi);
                values.drain(..lo);
                columns.push((values, valid));
            }
            folder.rows(&times[lo..hi], &columns);
        }
        fold_head(&s.head.decode(range), fields, folder);
        Ok(())
    }
}

fn fold_head(head: &Head, fields: &[usize], folder: &mut Folder<'_>) {
    let columns: Vec<(Vec<f64>, Vec<bool>)> = fields
        .iter()
        .map(|&f| match head.columns.get(f) {
            Some(c) => (
                c.values.clone(),
                c.valid.clone().unwrap_or_else(|| vec![true; head.len()]),
            ),
            None => (vec![0.0; head.len()], vec![false; head.len()]),
        })
        .collect();
    folder.rows(&head.times, &columns);
}

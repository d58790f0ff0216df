//! Immutable snapshots of selected series and their decoding into Arrow.
//!
//! Taking a snapshot holds the table's read lock only to clone chunk handles (`Arc`s)
//! and copy the heads' rows in range; decoding happens afterwards, without the lock,
//! so readers never hold up writers for longer than that copy.
//!
//! Series come out sorted by their tag values (in table column order, missing tags
//! last) and rows by time, so a scan's output is ordered by `[tags..., time]`.

use std::sync::Arc;

use ahash::{HashMap, HashMapExt};
use arrow::array::{
    ArrayRef, BooleanBufferBuilder, DictionaryArray, Float64Array, Int32Array, RecordBatch,
    StringArray, TimestampMillisecondArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use roaring::RoaringBitmap;

use super::chunk::Chunk;
use super::head::Head;
use super::series::Row;
use super::table::{FieldDef, TableInner};
use crate::model::{Result, STALE_NAN_BITS, TIME_COLUMN};

/// A half-open time range `[start, end)` in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// First millisecond included.
    pub start: i64,
    /// First millisecond excluded.
    pub end: i64,
}

impl TimeRange {
    /// Every timestamp.
    pub const ALL: TimeRange = TimeRange {
        start: i64::MIN,
        end: i64::MAX,
    };

    /// `[start, end)`.
    pub fn new(start: i64, end: i64) -> TimeRange {
        TimeRange { start, end }
    }

    /// Whether `[min, max]` overlaps this range.
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        min < self.end && max >= self.start
    }

    /// Whether `[min, max]` lies inside this range.
    pub fn covers(&self, min: i64, max: i64) -> bool {
        min >= self.start && max < self.end
    }
}

/// The Arrow type of tag columns.
pub fn tag_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The Arrow type of the `time` column.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The Arrow schema of a table: tags, `time`, fields.
pub fn arrow_schema(tag_keys: &[Arc<str>], fields: &[FieldDef]) -> SchemaRef {
    let mut columns: Vec<Field> = tag_keys
        .iter()
        .map(|k| Field::new(k.as_ref(), tag_type(), true))
        .collect();
    columns.push(Field::new(TIME_COLUMN, time_type(), false));
    columns.extend(
        fields
            .iter()
            .map(|f| Field::new(f.name.as_ref(), DataType::Float64, true)),
    );
    Arc::new(Schema::new(columns))
}

/// One series as of the snapshot.
#[derive(Debug)]
pub struct SeriesSnapshot {
    /// The series' id in its table.
    pub id: u32,
    /// Tag values by tag column (table order); `None` where the series lacks the tag.
    pub tags: Vec<Option<Arc<str>>>,
    /// Sealed chunks overlapping the range, in time order, disjoint.
    pub chunks: Vec<Arc<Chunk>>,
    head: Head,
    overlay: Option<Head>,
    latest: Option<(i64, Row)>,
}

impl SeriesSnapshot {
    /// The series' newest row (time and one value per table field), decoded from nothing.
    pub fn latest(&self) -> Option<(i64, &[Option<f64>])> {
        self.latest.as_ref().map(|(t, row)| (*t, &row[..]))
    }

    /// Rows not yet sealed (in range).
    pub fn head_rows(&self) -> usize {
        self.head.len()
    }
}

/// A consistent, immutable view of some series of one table over a time range.
#[derive(Debug)]
pub struct TableSnapshot {
    table: Arc<str>,
    schema: SchemaRef,
    tag_count: usize,
    range: TimeRange,
    series: Vec<SeriesSnapshot>,
}

impl TableInner {
    /// Snapshots the series in `ids` that have rows in `range`.
    pub(crate) fn snapshot(
        &self,
        table: &Arc<str>,
        ids: &RoaringBitmap,
        range: TimeRange,
    ) -> TableSnapshot {
        let tag_count = self.tag_keys.len();
        let mut series = Vec::with_capacity(ids.len() as usize);
        for id in ids {
            let Some(s) = self.series.get(id as usize) else {
                continue;
            };
            let chunks: Vec<Arc<Chunk>> = s
                .chunks
                .iter()
                .filter(|c| range.overlaps(c.min_time(), c.max_time()))
                .cloned()
                .collect();
            let head = s.head.slice(range.start, range.end);
            let overlay = s
                .ooo
                .as_ref()
                .map(|h| h.slice(range.start, range.end))
                .filter(|h| !h.is_empty());
            if chunks.is_empty() && head.is_empty() && overlay.is_none() {
                continue;
            }
            let mut tags = vec![None; tag_count];
            for &(k, c) in s.tags.iter() {
                tags[k as usize] = Some(self.tag_values[k as usize].values[c as usize].clone());
            }
            series.push(SeriesSnapshot {
                id,
                tags,
                chunks,
                head,
                overlay,
                latest: s.latest(),
            });
        }
        // Missing tags sort last, as SQL's default `ASC NULLS LAST`.
        series.sort_by(|a, b| {
            a.tags
                .iter()
                .zip(&b.tags)
                .map(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        TableSnapshot {
            table: table.clone(),
            schema: arrow_schema(&self.tag_keys, &self.fields),
            tag_count,
            range,
            series,
        }
    }
}

impl TableSnapshot {
    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The table's full Arrow schema as of the snapshot.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The selected series, in output order.
    pub fn series(&self) -> &[SeriesSnapshot] {
        &self.series
    }

    /// The time range the snapshot was taken for.
    pub fn range(&self) -> TimeRange {
        self.range
    }

    /// Decodes the snapshot into batches of whole series, about `batch_rows` rows each,
    /// with the columns `projection` picks from [`TableSnapshot::schema`] (all if `None`).
    pub fn reader(&self, projection: Option<&[usize]>, batch_rows: usize) -> SnapshotReader<'_> {
        let columns: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(
            self.schema
                .project(&columns)
                .unwrap_or_else(|_| Schema::empty()),
        );
        SnapshotReader {
            snapshot: self,
            columns,
            schema,
            next: 0,
            batch_rows: batch_rows.max(1),
        }
    }

    /// Decodes everything into batches of about 8192 rows.
    pub fn record_batches(&self, projection: Option<&[usize]>) -> Result<Vec<RecordBatch>> {
        self.reader(projection, 8192).collect()
    }
}

/// Iterator of record batches over a [`TableSnapshot`].
pub struct SnapshotReader<'a> {
    snapshot: &'a TableSnapshot,
    columns: Vec<usize>,
    schema: SchemaRef,
    next: usize,
    batch_rows: usize,
}

impl SnapshotReader<'_> {
    /// The schema of the batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn next_batch(&mut self) -> Result<RecordBatch> {
        let snap = self.snapshot;
        let tag_count = snap.tag_count;
        let fields: Vec<usize> = self
            .columns
            .iter()
            .filter(|&&c| c > tag_count)
            .map(|&c| c - tag_count - 1)
            .collect();
        let want_time = self.columns.contains(&tag_count);
        let mut out = Columns::new(fields.len());
        let mut series_rows: Vec<(usize, usize)> = Vec::new();
        while self.next < snap.series.len() && out.rows < self.batch_rows {
            let s = &snap.series[self.next];
            let before = out.rows;
            decode_series(s, snap.range, &fields, want_time, &mut out)?;
            series_rows.push((self.next, out.rows - before));
            self.next += 1;
        }
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        let mut field_arrays = out.finish_fields().into_iter();
        let mut times = Some(out.times);
        for &c in &self.columns {
            if c < tag_count {
                arrays.push(tag_array(snap, c, &series_rows)?);
            } else if c == tag_count {
                let t = times.take().unwrap_or_default();
                arrays.push(Arc::new(
                    TimestampMillisecondArray::from(t).with_timezone("UTC"),
                ));
            } else if let Some(a) = field_arrays.next() {
                arrays.push(a);
            }
        }
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(out.rows));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &options,
        )?)
    }
}

impl Iterator for SnapshotReader<'_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.next < self.snapshot.series.len()).then(|| self.next_batch())
    }
}

/// Column buffers a batch is decoded into.
struct Columns {
    rows: usize,
    times: Vec<i64>,
    values: Vec<(Vec<f64>, BooleanBufferBuilder)>,
}

impl Columns {
    fn new(fields: usize) -> Columns {
        Columns {
            rows: 0,
            times: Vec::new(),
            values: (0..fields)
                .map(|_| (Vec::new(), BooleanBufferBuilder::new(0)))
                .collect(),
        }
    }

    /// Builds the field arrays; staleness markers become NULL.
    fn finish_fields(&mut self) -> Vec<ArrayRef> {
        std::mem::take(&mut self.values)
            .into_iter()
            .map(|(values, mut validity)| {
                for (i, v) in values.iter().enumerate() {
                    if v.to_bits() == STALE_NAN_BITS {
                        validity.set_bit(i, false);
                    }
                }
                let nulls = NullBuffer::new(validity.finish());
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                Arc::new(Float64Array::new(values.into(), nulls)) as ArrayRef
            })
            .collect()
    }
}

fn decode_series(
    s: &SeriesSnapshot,
    range: TimeRange,
    fields: &[usize],
    want_time: bool,
    out: &mut Columns,
) -> Result<()> {
    if let Some(overlay) = &s.overlay {
        return decode_merged(s, overlay, range, fields, want_time, out);
    }
    let mut times = Vec::new();
    let mut scratch = Vec::new();
    for chunk in &s.chunks {
        if range.covers(chunk.min_time(), chunk.max_time()) {
            if want_time {
                chunk.decode_times(&mut out.times)?;
            }
            for (&f, (values, validity)) in fields.iter().zip(&mut out.values) {
                chunk.decode_field(f, values, validity)?;
            }
            out.rows += chunk.rows();
            continue;
        }
        times.clear();
        chunk.decode_times(&mut times)?;
        let lo = times.partition_point(|&t| t < range.start);
        let hi = times.partition_point(|&t| t < range.end);
        if want_time {
            out.times.extend_from_slice(&times[lo..hi]);
        }
        for (&f, (values, validity)) in fields.iter().zip(&mut out.values) {
            scratch.clear();
            let mut bits = BooleanBufferBuilder::new(chunk.rows());
            chunk.decode_field(f, &mut scratch, &mut bits)?;
            values.extend_from_slice(&scratch[lo..hi]);
            validity.append_packed_range(lo..hi, bits.as_slice());
        }
        out.rows += hi - lo;
    }
    append_head(&s.head, fields, want_time, out);
    Ok(())
}

/// The slow path for series with pending out-of-order rows: decode, merge, append.
fn decode_merged(
    s: &SeriesSnapshot,
    overlay: &Head,
    range: TimeRange,
    fields: &[usize],
    want_time: bool,
    out: &mut Columns,
) -> Result<()> {
    let mut merged = Head::default();
    for chunk in &s.chunks {
        merged.append(chunk.to_head()?);
    }
    merged.append(s.head.clone());
    for i in 0..overlay.len() {
        let (f, v): (Vec<u16>, Vec<f64>) = (0..overlay.columns.len())
            .filter_map(|f| overlay.value(f, i).map(|v| (f as u16, v)))
            .unzip();
        merged.upsert(overlay.times[i], &f, &v);
    }
    append_head(
        &merged.slice(range.start, range.end),
        fields,
        want_time,
        out,
    );
    Ok(())
}

fn append_head(head: &Head, fields: &[usize], want_time: bool, out: &mut Columns) {
    if want_time {
        out.times.extend_from_slice(&head.times);
    }
    for (&f, (values, validity)) in fields.iter().zip(&mut out.values) {
        match head.columns.get(f) {
            Some(column) => {
                values.extend_from_slice(&column.values);
                match &column.valid {
                    Some(valid) => validity.append_slice(valid),
                    None => validity.append_n(head.len(), true),
                }
            }
            None => {
                values.resize(values.len() + head.len(), 0.0);
                validity.append_n(head.len(), false);
            }
        }
    }
    out.rows += head.len();
}

/// A dictionary column holding only the values of the batch's series.
fn tag_array(snap: &TableSnapshot, key: usize, series_rows: &[(usize, usize)]) -> Result<ArrayRef> {
    let mut dict: HashMap<&str, i32> = HashMap::new();
    let mut values: Vec<&str> = Vec::new();
    let rows: usize = series_rows.iter().map(|(_, n)| n).sum();
    let mut keys: Vec<i32> = Vec::with_capacity(rows);
    let mut nulls = BooleanBufferBuilder::new(rows);
    for &(i, n) in series_rows {
        match &snap.series[i].tags[key] {
            Some(v) => {
                let code = *dict.entry(v.as_ref()).or_insert_with(|| {
                    values.push(v.as_ref());
                    values.len() as i32 - 1
                });
                keys.resize(keys.len() + n, code);
                nulls.append_n(n, true);
            }
            None => {
                keys.resize(keys.len() + n, 0);
                nulls.append_n(n, false);
            }
        }
    }
    let nulls = NullBuffer::new(nulls.finish());
    let keys = Int32Array::new(keys.into(), (nulls.null_count() > 0).then_some(nulls));
    let array = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(values)))?;
    Ok(Arc::new(array))
}

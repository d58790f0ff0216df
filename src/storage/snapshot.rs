//! Immutable snapshots of selected series and their decoding into Arrow.
//!
//! Taking a snapshot holds the table's read lock only to clone handles (`Arc`s) to
//! chunks and to the heads' streams, and to copy each head's newest row; decoding
//! happens afterwards, without the lock, while writers go on appending.
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
use super::open_head::HeadView;
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
    pub(super) head: HeadView,
    pub(super) overlay: Option<Head>,
    latest: Option<(i64, Row)>,
}

impl SeriesSnapshot {
    /// The series' newest row (time and one value per table field), decoded from nothing.
    pub fn latest(&self) -> Option<(i64, &[Option<f64>])> {
        self.latest.as_ref().map(|(t, row)| (*t, &row[..]))
    }

    /// Rows not yet sealed, when any of them falls in the range.
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
    pub(super) range: TimeRange,
    pub(super) series: Vec<SeriesSnapshot>,
    /// Where the table's hot rows began when the snapshot was taken.
    tiered_until: Option<i64>,
}

impl TableInner {
    /// Snapshots the series in `ids` that have rows in `range`.
    /// Series are sorted by the tag columns `sort_keys` (all tags if `None`).
    pub(crate) fn snapshot(
        &self,
        table: &Arc<str>,
        ids: &RoaringBitmap,
        range: TimeRange,
        sort_keys: Option<&[usize]>,
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
            let head = if s.head.overlaps(range) {
                s.head.view()
            } else {
                HeadView::default()
            };
            let overlay = s
                .ooo
                .as_ref()
                .map(|h| h.slice(range.start, range.end))
                .filter(|h| !h.is_empty());
            if chunks.is_empty() && head.is_empty() && overlay.is_none() {
                continue;
            }
            let mut tags = vec![None; tag_count];
            for (k, c) in self.tags_of(s) {
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
        let all_keys: Vec<usize> = (0..tag_count).collect();
        let keys = sort_keys.unwrap_or(&all_keys);
        series.sort_by(|a, b| {
            keys.iter()
                .map(|&k| (&a.tags[k], &b.tags[k]))
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
            tiered_until: self.tiered_until,
        }
    }
}

/// What a scan would read, counted from headers without copying or decoding rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectionCounts {
    /// Series in the table.
    pub series_total: u64,
    /// Series the tag filter selects that have rows in the time range.
    pub series_selected: u64,
    /// Chunks of the selected series overlapping the time range that pass the chunk filter.
    pub chunks_selected: u64,
    /// Chunks of the selected series outside the time range.
    pub chunks_pruned_by_time: u64,
    /// Chunks in the time range that the chunk filter rejects.
    pub chunks_pruned_by_value: u64,
    /// Whether no two selected series share the values of the tags it was asked about.
    pub unique: bool,
    /// At most the rows a scan of the selection reads, as of counting: the rows of
    /// the selected chunks (whole, though the time range may cut them) and the heads'
    /// rows in the range.
    pub rows_bound: u64,
}

impl TableInner {
    /// Counts what [`TableInner::snapshot`] and a reader with `filter` would read, and
    /// whether the tag columns `keys` identify the selected series uniquely.
    pub(crate) fn count_selection(
        &self,
        ids: &RoaringBitmap,
        range: TimeRange,
        filter: Option<&ChunkFilter>,
        keys: &[usize],
    ) -> SelectionCounts {
        let mut c = SelectionCounts {
            series_total: self.series.len() as u64,
            ..SelectionCounts::default()
        };
        let mut seen: HashMap<Vec<Option<u32>>, ()> = HashMap::new();
        // With no tags to tell series apart, only a single series is unique.
        c.unique = true;
        for id in ids {
            let Some(s) = self.series.get(id as usize) else {
                continue;
            };
            let mut any = false;
            for chunk in s.chunks.iter() {
                if !range.overlaps(chunk.min_time(), chunk.max_time()) {
                    c.chunks_pruned_by_time += 1;
                } else if filter.is_some_and(|f| !f(chunk)) {
                    c.chunks_pruned_by_value += 1;
                    any = true;
                } else {
                    c.chunks_selected += 1;
                    c.rows_bound += chunk.rows() as u64;
                    any = true;
                }
            }
            let head_rows = (s.head.rows_bound(range)
                + s.ooo
                    .as_deref()
                    .map_or(0, |h| h.rows_in(range.start, range.end)))
                as u64;
            c.rows_bound += head_rows;
            if !(any || head_rows > 0) {
                continue;
            }
            c.series_selected += 1;
            if keys.is_empty() {
                c.unique = c.series_selected <= 1;
            } else if c.unique {
                let key: Vec<Option<u32>> = keys
                    .iter()
                    .map(|&k| self.tags_of(s).find(|t| t.0 as usize == k).map(|t| t.1))
                    .collect();
                c.unique = seen.insert(key, ()).is_none();
            }
        }
        c
    }
}

impl TableInner {
    /// One row per series: its newest row. Tag columns share the table's dictionaries.
    pub(crate) fn latest_batch(&self) -> Result<RecordBatch> {
        self.latest_batch_where(None, &[])
    }

    /// The newest row of the series in `ids` (all when `None`) whose newest values
    /// pass every bound; rows are built only for those series, and the tag
    /// dictionaries hold only the values those rows use.
    pub(crate) fn latest_batch_where(
        &self,
        ids: Option<&roaring::RoaringBitmap>,
        bounds: &[LatestBound],
    ) -> Result<RecordBatch> {
        let schema = arrow_schema(&self.tag_keys, &self.fields);
        let bounds: Vec<(usize, &LatestBound)> = bounds
            .iter()
            .filter_map(|b| {
                let f = self.fields.iter().position(|d| *d.name == *b.field)?;
                Some((f, b))
            })
            .collect();
        let passes = |s: &super::series::Series| {
            bounds.iter().all(|(f, b)| match s.latest_value(*f) {
                Some(Some(v)) if v.to_bits() != STALE_NAN_BITS => b.test(v),
                _ => false,
            })
        };
        let rows: Vec<(usize, (i64, Row))> = match ids {
            None => self
                .series
                .iter()
                .enumerate()
                .filter(|(_, s)| passes(s))
                .filter_map(|(i, s)| s.latest().map(|l| (i, l)))
                .collect(),
            Some(ids) => ids
                .iter()
                .filter_map(|id| self.series.get(id as usize).map(|s| (id as usize, s)))
                .filter(|(_, s)| passes(s))
                .filter_map(|(i, s)| s.latest().map(|l| (i, l)))
                .collect(),
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (k, dict) in self.tag_values.iter().enumerate() {
            // A dictionary of the used values only: rebuilding every value of a
            // large table per call dominated small (filtered) answers. `remap` maps
            // a table code to its index in `used` (u32::MAX: not used yet).
            let mut remap = vec![u32::MAX; dict.values.len()];
            let mut used: Vec<&str> = Vec::new();
            let keys: Int32Array = rows
                .iter()
                .map(|(i, _)| {
                    let mut tags = self.tags_of(&self.series[*i]);
                    let code = tags.find(|t| t.0 as usize == k)?.1 as usize;
                    if remap[code] == u32::MAX {
                        remap[code] = used.len() as u32;
                        used.push(&dict.values[code]);
                    }
                    Some(remap[code] as i32)
                })
                .collect();
            let values = StringArray::from_iter_values(used);
            columns.push(Arc::new(DictionaryArray::<Int32Type>::try_new(
                keys,
                Arc::new(values),
            )?));
        }
        let times: Vec<i64> = rows.iter().map(|(_, (t, _))| *t).collect();
        columns.push(Arc::new(
            TimestampMillisecondArray::from(times).with_timezone("UTC"),
        ));
        for f in 0..self.fields.len() {
            let values: Float64Array = rows
                .iter()
                .map(|(_, (_, row))| {
                    row.get(f)
                        .copied()
                        .flatten()
                        .filter(|v| v.to_bits() != STALE_NAN_BITS)
                })
                .collect();
            columns.push(Arc::new(values));
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// A comparison of a field's newest value with a constant, as SQL's float
/// comparisons see it (IEEE total order, as Arrow compares); NULL fails it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestBound {
    /// The field.
    pub field: String,
    /// The comparison.
    pub op: std::cmp::Ordering,
    /// Whether equality passes too (`<=`, `>=`, `=`).
    pub or_equal: bool,
    /// Whether the comparison is negated (`!=`).
    pub negated: bool,
    /// The constant.
    pub value: f64,
}

impl LatestBound {
    fn test(&self, v: f64) -> bool {
        let c = v.total_cmp(&self.value);
        let pass = c == self.op || (self.or_equal && c.is_eq());
        pass != self.negated
    }
}

impl TableSnapshot {
    /// Where the table's hot rows began when this snapshot was taken (`None`: the
    /// cold tier never took any): rows before it were dropped from memory.
    pub fn tiered_until(&self) -> Option<i64> {
        self.tiered_until
    }

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

    /// Decodes everything into batches of about 8192 rows, with the columns
    /// `projection` picks from [`TableSnapshot::schema`] (all if `None`).
    pub fn record_batches(
        self: &Arc<Self>,
        projection: Option<&[usize]>,
    ) -> Result<Vec<RecordBatch>> {
        let mut options = ReadOptions::new(self);
        if let Some(p) = projection {
            options.projection = p.to_vec();
        }
        SnapshotReader::new(self.clone(), options).collect()
    }
}

/// Decides from its header whether a chunk may hold wanted rows.
pub type ChunkFilter = Arc<dyn Fn(&Chunk) -> bool + Send + Sync>;

/// What a [`SnapshotReader`] decodes.
#[derive(Clone)]
pub struct ReadOptions {
    /// Columns of [`TableSnapshot::schema`] to produce, in this order.
    pub projection: Vec<usize>,
    /// Rows per batch, about: batches hold whole series, at least one.
    pub batch_rows: usize,
    /// Which of the snapshot's series (by position) to read.
    pub series: std::ops::Range<usize>,
    /// Chunks it rejects are skipped without decoding.
    pub chunk_filter: Option<ChunkFilter>,
    /// Stop after this many rows.
    pub limit: Option<usize>,
    /// Tag columns (by position) whose equal values form a group whose rows are
    /// merged by time, so output stays ordered by `[these tags, time]` even when
    /// several series share them. Batches then hold whole groups.
    pub merge_by: Option<Vec<usize>>,
}

impl ReadOptions {
    /// Every column and series of `snapshot`, 8192-row batches.
    pub fn new(snapshot: &TableSnapshot) -> ReadOptions {
        ReadOptions {
            projection: (0..snapshot.schema.fields().len()).collect(),
            batch_rows: 8192,
            series: 0..snapshot.series.len(),
            chunk_filter: None,
            limit: None,
            merge_by: None,
        }
    }
}

/// Iterator of record batches over a shared [`TableSnapshot`].
pub struct SnapshotReader {
    snapshot: Arc<TableSnapshot>,
    schema: SchemaRef,
    options: ReadOptions,
    fields: Vec<usize>,
    want_time: bool,
    next: usize,
    rows: usize,
    /// Chunks skipped by the chunk filter so far.
    pub pruned_chunks: usize,
    /// Chunks decoded so far.
    pub decoded_chunks: usize,
}

impl SnapshotReader {
    /// A reader of `snapshot` as `options` say.
    pub fn new(snapshot: impl Into<Arc<TableSnapshot>>, options: ReadOptions) -> SnapshotReader {
        let snapshot: Arc<TableSnapshot> = snapshot.into();
        let tag_count = snapshot.tag_count;
        let schema = Arc::new(
            snapshot
                .schema
                .project(&options.projection)
                .unwrap_or_else(|_| Schema::empty()),
        );
        let fields = options
            .projection
            .iter()
            .filter(|&&c| c > tag_count)
            .map(|&c| c - tag_count - 1)
            .collect();
        let want_time = options.projection.contains(&tag_count);
        let end = options.series.end.min(snapshot.series.len());
        let next = options.series.start.min(end);
        let mut options = options;
        options.series = next..end;
        SnapshotReader {
            snapshot,
            schema,
            fields,
            want_time,
            next,
            rows: 0,
            options,
            pruned_chunks: 0,
            decoded_chunks: 0,
        }
    }

    /// The schema of the batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn done(&self) -> bool {
        self.next >= self.options.series.end || self.options.limit.is_some_and(|l| self.rows >= l)
    }

    fn next_batch(&mut self) -> Result<RecordBatch> {
        let snap = self.snapshot.clone();
        let tag_count = snap.tag_count;
        let mut out = Columns::new(self.fields.len());
        out.reserve(self.rows_ahead());
        let mut series_rows: Vec<(usize, usize)> = Vec::new();
        let mut unsorted: Vec<std::ops::Range<usize>> = Vec::new();
        while !self.done() && out.rows < self.options.batch_rows {
            let end = self.group_end();
            let group_start = out.rows;
            for i in self.next..end {
                let before = out.rows;
                self.decode_series(&snap.series[i], &mut out)?;
                series_rows.push((i, out.rows - before));
            }
            if end - self.next > 1 {
                unsorted.push(group_start..out.rows);
            }
            self.rows += out.rows - group_start;
            self.next = end;
        }
        let order = (!unsorted.is_empty()).then(|| time_order(&out.times, &unsorted));
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.options.projection.len());
        let mut field_arrays = out.finish_fields().into_iter();
        let mut times = Some(std::mem::take(&mut out.times));
        for &c in &self.options.projection {
            if c < tag_count {
                arrays.push(snap.tag_array(c, &series_rows)?);
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
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)?;
        Ok(match order {
            Some(order) => arrow::compute::take_record_batch(&batch, &order)?,
            None => batch,
        })
    }

    /// An upper bound of the rows the next batch holds, from chunk headers, so that
    /// its buffers are allocated once instead of growing while decoding.
    fn rows_ahead(&self) -> usize {
        let mut rows = 0;
        for s in &self.snapshot.series[self.next..self.options.series.end] {
            rows += s.chunks.iter().map(|c| c.rows()).sum::<usize>() + s.head.len();
            if let Some(o) = &s.overlay {
                rows += o.len();
            }
            if rows >= self.options.batch_rows {
                break;
            }
        }
        rows
    }

    /// One past the last series of the group starting at `self.next`.
    fn group_end(&self) -> usize {
        let Some(keys) = &self.options.merge_by else {
            return self.next + 1;
        };
        let series = &self.snapshot.series;
        let first = &series[self.next];
        let mut end = self.next + 1;
        while end < self.options.series.end
            && keys.iter().all(|&k| series[end].tags[k] == first.tags[k])
        {
            end += 1;
        }
        end
    }

    fn decode_series(&mut self, s: &SeriesSnapshot, out: &mut Columns) -> Result<()> {
        let range = self.snapshot.range;
        let (fields, want_time) = (&self.fields, self.want_time);
        if let Some(overlay) = &s.overlay {
            return decode_merged(s, overlay, range, fields, want_time, out);
        }
        let mut times = Vec::new();
        let mut scratch = Vec::new();
        for chunk in &s.chunks {
            if let Some(filter) = &self.options.chunk_filter
                && !filter(chunk)
            {
                self.pruned_chunks += 1;
                continue;
            }
            self.decoded_chunks += 1;
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
        append_head(&s.head.decode(range), fields, want_time, out);
        Ok(())
    }
}

impl Iterator for SnapshotReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        (!self.done()).then(|| self.next_batch())
    }
}

/// Column buffers a batch is decoded into.
pub(super) struct Columns {
    pub(super) rows: usize,
    pub(super) times: Vec<i64>,
    pub(super) values: Vec<(Vec<f64>, BooleanBufferBuilder)>,
}

impl Columns {
    pub(super) fn new(fields: usize) -> Columns {
        Columns {
            rows: 0,
            times: Vec::new(),
            values: (0..fields)
                .map(|_| (Vec::new(), BooleanBufferBuilder::new(0)))
                .collect(),
        }
    }

    fn reserve(&mut self, rows: usize) {
        self.times.reserve(rows);
        for (values, validity) in &mut self.values {
            values.reserve(rows);
            validity.reserve(rows);
        }
    }

    /// Builds the field arrays; staleness markers become NULL.
    fn finish_fields(&mut self) -> Vec<ArrayRef> {
        std::mem::take(&mut self.values)
            .into_iter()
            .map(|(values, mut validity)| {
                // A branch-free scan first: staleness markers are rare.
                if values.iter().any(|v| v.to_bits() == STALE_NAN_BITS) {
                    for (i, v) in values.iter().enumerate() {
                        if v.to_bits() == STALE_NAN_BITS {
                            validity.set_bit(i, false);
                        }
                    }
                }
                let nulls = NullBuffer::new(validity.finish());
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                Arc::new(Float64Array::new(values.into(), nulls)) as ArrayRef
            })
            .collect()
    }
}

/// Row indices that order each of the `groups` by time (stably) and keep the rest.
fn time_order(times: &[i64], groups: &[std::ops::Range<usize>]) -> arrow::array::UInt32Array {
    let mut order: Vec<u32> = (0..times.len() as u32).collect();
    for g in groups {
        order[g.clone()].sort_by_key(|&i| times[i as usize]);
    }
    order.into()
}

/// The slow path for series with pending out-of-order rows: decode, merge, append.
pub(super) fn decode_merged(
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
    merged.append(s.head.decode(TimeRange::ALL));
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

impl TableSnapshot {
    /// Tag `key` (its position among the snapshot's tags) as a dictionary column of
    /// the given runs: `(series position, rows)`, holding only the values used.
    pub fn tag_array(&self, key: usize, series_rows: &[(usize, usize)]) -> Result<ArrayRef> {
        let mut dict: HashMap<&str, i32> = HashMap::new();
        let mut values: Vec<&str> = Vec::new();
        let rows: usize = series_rows.iter().map(|(_, n)| n).sum();
        let mut keys: Vec<i32> = Vec::with_capacity(rows);
        let mut nulls = BooleanBufferBuilder::new(rows);
        for &(i, n) in series_rows {
            match &self.series[i].tags[key] {
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
        let array =
            DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(values)))?;
        Ok(Arc::new(array))
    }
}

//! One series in memory: its open head, its out-of-order head and its sealed chunks.
//!
//! Write routing, for a row at time `t` (the newest time written so far is `newest`):
//! - `t > newest`: appended to the head (encoded as it arrives), which is sealed first
//!   when it is full or when `t` crosses a `chunk_span_ms` boundary;
//! - `t` equal to the time of the head's newest row: merged into that row, field by
//!   field (last write wins);
//! - older: kept in the out-of-order head (rows inside the head's range too: an
//!   encoded head only appends), merged into the sealed chunks when that head fills
//!   up or the main head seals. Readers overlay it, so chunks stay disjoint and sorted
//!   and their headers stay exact.

use std::sync::Arc;

use super::chunk::{Chunk, TimestampInterner};
use super::config::StorageConfig;
use super::head::Head;
use super::open_head::{HeadView, OpenHead};
use super::snapshot::TimeRange;
use super::stats::malloc_bytes;
use super::tags::TagSpan;

/// What sealing needs from the table.
pub(crate) struct SealContext<'a> {
    pub(crate) config: &'a StorageConfig,
    pub(crate) interner: &'a mut TimestampInterner,
    /// Bytes of chunks added minus bytes of chunks dropped, for the table's memory
    /// accounting: series do not keep a count of their own (8 bytes a series).
    pub(crate) chunk_delta: isize,
}

impl<'a> SealContext<'a> {
    pub(crate) fn new(config: &'a StorageConfig, interner: &'a mut TimestampInterner) -> Self {
        SealContext {
            config,
            interner,
            chunk_delta: 0,
        }
    }

    fn added(&mut self, bytes: usize) {
        self.chunk_delta = self.chunk_delta.saturating_add_unsigned(bytes);
    }

    fn dropped(&mut self, bytes: usize) {
        self.chunk_delta = self.chunk_delta.saturating_sub_unsigned(bytes);
    }
}

/// The newest row of a series, kept so that "latest" needs no decoding.
pub(crate) type Row = Box<[Option<f64>]>;

/// A series copied for a checkpoint: chunks shared, heads copied. Taken under the
/// table's lock with the open head as a [`HeadView`] (a handle, no decoding), then
/// [`decode`](SeriesImage::decode)d after the lock is released.
#[derive(Debug)]
pub(crate) struct SeriesImage<H = Head> {
    pub(crate) tags: Box<[(u32, u32)]>,
    pub(crate) chunks: Vec<Arc<Chunk>>,
    pub(crate) head: H,
    pub(crate) ooo: Option<Head>,
    pub(crate) newest: i64,
    pub(crate) sealed_last: Option<Row>,
    pub(crate) rows: u64,
}

impl SeriesImage<HeadView> {
    /// The image with its open head's rows decoded.
    pub(crate) fn decode(self) -> SeriesImage {
        SeriesImage {
            tags: self.tags,
            chunks: self.chunks,
            head: self.head.decode(TimeRange::ALL),
            ooo: self.ooo,
            newest: self.newest,
            sealed_last: self.sealed_last,
            rows: self.rows,
        }
    }
}

/// A series' sealed chunks, sorted and disjoint. A single chunk sits inline, so a
/// series sealed once needs no list allocation; more are an exactly sized boxed
/// slice, which changes once per seal. 16 bytes either way (the boxed slice's
/// pointer is never null, which tells the two apart).
#[derive(Debug, Clone)]
pub(crate) enum ChunkList {
    One(Arc<Chunk>),
    Many(Box<[Arc<Chunk>]>),
}

impl Default for ChunkList {
    fn default() -> ChunkList {
        ChunkList::Many(Box::default())
    }
}

impl std::ops::Deref for ChunkList {
    type Target = [Arc<Chunk>];

    fn deref(&self) -> &[Arc<Chunk>] {
        match self {
            ChunkList::One(c) => std::slice::from_ref(c),
            ChunkList::Many(cs) => cs,
        }
    }
}

impl std::ops::DerefMut for ChunkList {
    fn deref_mut(&mut self) -> &mut [Arc<Chunk>] {
        match self {
            ChunkList::One(c) => std::slice::from_mut(c),
            ChunkList::Many(cs) => cs,
        }
    }
}

impl From<Vec<Arc<Chunk>>> for ChunkList {
    fn from(mut chunks: Vec<Arc<Chunk>>) -> ChunkList {
        if chunks.len() == 1
            && let Some(only) = chunks.pop()
        {
            return ChunkList::One(only);
        }
        ChunkList::Many(chunks.into_boxed_slice())
    }
}

impl ChunkList {
    fn into_vec(self) -> Vec<Arc<Chunk>> {
        match self {
            ChunkList::One(c) => vec![c],
            ChunkList::Many(cs) => cs.into_vec(),
        }
    }

    /// Heap bytes of the list itself (not of the chunks).
    fn heap_bytes(&self) -> usize {
        match self {
            ChunkList::One(_) => 0,
            ChunkList::Many(cs) => malloc_bytes(std::mem::size_of_val::<[Arc<Chunk>]>(cs)),
        }
    }
}

/// The last row of the last sealed chunk. One field sits inline (every Prometheus
/// series has one); wider rows are boxed. 16 bytes, with the `Option` around it.
#[derive(Debug, Clone)]
enum LastRow {
    Null,
    Value(u64),
    Many(Box<Row>),
}

impl LastRow {
    fn new(row: Row) -> LastRow {
        match *row {
            [None] => LastRow::Null,
            [Some(v)] => LastRow::Value(v.to_bits()),
            _ => LastRow::Many(Box::new(row)),
        }
    }

    /// The value of field `f`, `None` when null or beyond the row.
    fn get(&self, f: usize) -> Option<f64> {
        match self {
            LastRow::Null => None,
            LastRow::Value(bits) => (f == 0).then(|| f64::from_bits(*bits)),
            LastRow::Many(row) => row.get(f).copied().flatten(),
        }
    }

    /// Sets field `f`; a field beyond the row is ignored, as it always was.
    fn set(&mut self, f: usize, v: f64) {
        match self {
            LastRow::Null | LastRow::Value(_) if f == 0 => *self = LastRow::Value(v.to_bits()),
            LastRow::Null | LastRow::Value(_) => {}
            LastRow::Many(row) => {
                if let Some(slot) = row.get_mut(f) {
                    *slot = Some(v);
                }
            }
        }
    }

    fn to_row(&self) -> Row {
        match self {
            LastRow::Null => Box::new([None]),
            LastRow::Value(bits) => Box::new([Some(f64::from_bits(*bits))]),
            LastRow::Many(row) => (**row).clone(),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            LastRow::Null | LastRow::Value(_) => 0,
            LastRow::Many(row) => {
                malloc_bytes(std::mem::size_of::<Row>())
                    + malloc_bytes(std::mem::size_of_val::<[Option<f64>]>(row))
            }
        }
    }
}

/// One series. Kept small: a table holds millions of them, each with a handful of
/// rows in its head, so every field here costs megabytes.
#[derive(Debug)]
pub(crate) struct Series {
    /// The series' tags in the table's tag arena ([`super::tags`]).
    pub(crate) tags: TagSpan,
    pub(crate) head: OpenHead,
    pub(crate) ooo: Option<Box<Head>>,
    pub(crate) chunks: ChunkList,
    /// Newest timestamp ever written, `i64::MIN` before the first row.
    pub(crate) newest: i64,
    /// The last row of the last sealed chunk, for `latest` while the head is empty.
    sealed_last: Option<LastRow>,
}

impl Series {
    pub(crate) fn new(tags: TagSpan) -> Series {
        Series {
            tags,
            head: OpenHead::default(),
            ooo: None,
            chunks: ChunkList::default(),
            newest: i64::MIN,
            sealed_last: None,
        }
    }

    /// Rows held in chunks and the head. Out-of-order rows count once merged into
    /// chunks, where duplicates of sealed rows are known.
    pub(crate) fn rows(&self) -> u64 {
        self.chunks.iter().map(|c| c.rows() as u64).sum::<u64>() + self.head.len() as u64
    }

    /// Whether the series holds no rows at all (everything went to the cold tier).
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.head.is_empty() && self.ooo.is_none()
    }

    /// Changes the chunk list through a `Vec`, keeping the list exactly sized.
    fn edit_chunks<T>(&mut self, edit: impl FnOnce(&mut Vec<Arc<Chunk>>) -> T) -> T {
        let mut chunks = std::mem::take(&mut self.chunks).into_vec();
        let out = edit(&mut chunks);
        self.chunks = chunks.into();
        out
    }

    /// A checkpoint copy, its open head still encoded; `tags` are the series' pairs
    /// from the table's arena.
    pub(crate) fn image(&self, tags: &[(u32, u32)]) -> SeriesImage<HeadView> {
        SeriesImage {
            tags: tags.into(),
            chunks: self.chunks.to_vec(),
            head: self.head.view(),
            ooo: self.ooo.as_deref().cloned(),
            newest: self.newest,
            sealed_last: self.sealed_last.as_ref().map(LastRow::to_row),
            rows: self.rows(),
        }
    }

    /// A series from a checkpoint image of a table with `fields` fields, its tags
    /// already in the table's arena at `tags`. Refuses images whose parts contradict
    /// each other (chunks out of order, unknown fields).
    pub(crate) fn restore(
        image: SeriesImage,
        fields: usize,
        tags: TagSpan,
    ) -> Result<Series, String> {
        let mut previous = i64::MIN;
        for (i, c) in image.chunks.iter().enumerate() {
            if (i > 0 && c.min_time() <= previous) || c.max_time() < c.min_time() {
                return Err(format!("chunk {i} overlaps its predecessor"));
            }
            if c.columns().iter().any(|col| col.field as usize >= fields) {
                return Err(format!("chunk {i} has a field beyond the table's {fields}"));
            }
            previous = c.max_time();
        }
        let heads = [Some(&image.head), image.ooo.as_ref()];
        for head in heads.into_iter().flatten() {
            if head.columns.len() > fields
                || head
                    .columns
                    .iter()
                    .any(|c| c.values.len() != head.times.len())
                || !head.times.is_sorted()
            {
                return Err("head rows do not match its columns".into());
            }
        }
        let newest = [
            image.chunks.last().map(|c| c.max_time()),
            image.head.last_time(),
            image.ooo.as_ref().and_then(|h| h.last_time()),
        ]
        .into_iter()
        .flatten()
        .max();
        if newest.is_some_and(|n| n > image.newest) {
            return Err(format!(
                "rows newer than the series' newest {}",
                image.newest
            ));
        }
        Ok(Series {
            tags,
            chunks: image.chunks.into(),
            head: OpenHead::from_head(&image.head),
            ooo: image.ooo.filter(|h| !h.is_empty()).map(Box::new),
            newest: image.newest,
            sealed_last: image.sealed_last.map(LastRow::new),
        })
    }

    /// Heap bytes held by this series beyond its struct, chunks aside (the table
    /// counts those through [`SealContext::chunk_delta`]): heads, the chunk list and
    /// the sealed last row.
    pub(crate) fn bytes(&self) -> usize {
        self.head_bytes() + self.list_bytes()
    }

    /// Bytes of the chunks (see [`Chunk::memory_bytes`]).
    pub(crate) fn chunk_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.memory_bytes()).sum()
    }

    /// Heap bytes of the head and the out-of-order head.
    pub(crate) fn head_bytes(&self) -> usize {
        self.head.bytes()
            + self
                .ooo
                .as_ref()
                .map_or(0, |h| malloc_bytes(std::mem::size_of::<Head>()) + h.bytes())
    }

    /// Heap bytes of the chunk list and the sealed last row.
    pub(crate) fn list_bytes(&self) -> usize {
        self.chunks.heap_bytes() + self.sealed_last.as_ref().map_or(0, LastRow::heap_bytes)
    }

    /// An upper bound of the bytes that writing `rows` rows of `fields` fields adds,
    /// in the head or as out-of-order rows, for the memory limit check.
    pub(crate) fn growth_bound(&self, rows: usize, fields: usize) -> usize {
        let columns = self.head.columns().max(fields);
        // 9 bytes per out-of-order slot: the value and a validity flag.
        self.head.growth_bound(rows, columns) + rows * 9 * (columns + 1)
    }

    /// Writes one row. The caller has checked the out-of-order window.
    pub(crate) fn write(
        &mut self,
        time: i64,
        fields: &[u16],
        values: &[f64],
        ctx: &mut SealContext<'_>,
    ) {
        if time > self.newest {
            if let Some(first) = self.head.first_time() {
                let span = ctx.config.chunk_span_ms.max(1);
                if self.head.len() >= ctx.config.chunk_size
                    || time.div_euclid(span) != first.div_euclid(span)
                {
                    self.seal_head(ctx, true);
                }
            }
            self.head.append(time, fields, values);
            self.newest = time;
            return;
        }
        if self.head.last_time() == Some(time) {
            self.head.merge_last(fields, values);
            return;
        }
        if time == self.newest
            && let Some(last) = &mut self.sealed_last
        {
            for (&f, &v) in fields.iter().zip(values) {
                last.set(f as usize, v);
            }
        }
        let ooo = self.ooo.get_or_insert_with(Default::default);
        ooo.upsert(time, fields, values);
        if ooo.len() >= ctx.config.chunk_size {
            // Rows among the head's go into chunks with the head's: sealing it first
            // keeps chunks disjoint and older than the head.
            let head_first = self.head.first_time().unwrap_or(i64::MAX);
            if ooo.last_time().is_some_and(|last| last >= head_first) {
                self.seal_head(ctx, true);
            } else {
                self.merge_out_of_order(ctx);
            }
        }
    }

    /// Seals the head (and merges pending out-of-order rows), freeing its buffer:
    /// sealing everything is for checkpoints and tiering, after which a series may
    /// stay idle.
    pub(crate) fn seal(&mut self, ctx: &mut SealContext<'_>) {
        self.seal_head(ctx, false);
        self.head.release_room();
    }

    /// Seals the head; `keep_room` keeps its buffer for a series being written.
    fn seal_head(&mut self, ctx: &mut SealContext<'_>, keep_room: bool) {
        if let Some(last) = self.head.last_row() {
            let head = if keep_room {
                self.head.take_keeping_room()
            } else {
                self.head.take()
            };
            let (chunk, bytes) = Chunk::seal(&head, ctx.interner);
            ctx.added(bytes);
            self.sealed_last = Some(LastRow::new(last));
            self.edit_chunks(|chunks| chunks.push(Arc::new(chunk)));
        }
        if self.ooo.is_some() {
            self.merge_out_of_order(ctx);
        }
    }

    /// Rewrites the chunks that the out-of-order rows fall into, so that chunks stay
    /// disjoint.
    fn merge_out_of_order(&mut self, ctx: &mut SealContext<'_>) {
        let Some(ooo) = self.ooo.take() else { return };
        let (Some(first), Some(last)) = (ooo.first_time(), ooo.last_time()) else {
            return;
        };
        let lo = self.chunks.partition_point(|c| c.max_time() < first);
        let hi = self.chunks.partition_point(|c| c.min_time() <= last);
        let mut merged = Head::default();
        for chunk in &self.chunks[lo..hi] {
            match chunk.to_head() {
                Ok(rows) => merged.append(rows),
                Err(_) => {
                    // A chunk we encoded ourselves failed to decode: a bug. Keep the
                    // rows as an overlay rather than lose them.
                    self.ooo = Some(ooo);
                    return;
                }
            }
        }
        for i in 0..ooo.len() {
            let (fields, values): (Vec<u16>, Vec<f64>) = (0..ooo.columns.len())
                .filter_map(|f| ooo.value(f, i).map(|v| (f as u16, v)))
                .unzip();
            merged.upsert(ooo.times[i], &fields, &values);
        }
        let mut replacement = Vec::new();
        for part in merged.split(ctx.config.chunk_size) {
            let (chunk, bytes) = Chunk::seal(&part, ctx.interner);
            ctx.added(bytes);
            replacement.push(Arc::new(chunk));
        }
        let removed: usize = self.edit_chunks(|chunks| {
            chunks
                .splice(lo..hi, replacement)
                .map(|old| old.memory_bytes())
                .sum()
        });
        ctx.dropped(removed);
    }

    /// Removes every row older than `cutoff` (moved to the cold tier). A chunk that
    /// straddles the cutoff is decoded and its newer rows sealed again. Returns the
    /// rows removed.
    pub(crate) fn drop_before(&mut self, cutoff: i64, ctx: &mut SealContext<'_>) -> u64 {
        let before = self.rows();
        let keep_from = self.chunks.partition_point(|c| c.max_time() < cutoff);
        if keep_from > 0 {
            let removed: usize = self.edit_chunks(|chunks| {
                chunks
                    .drain(..keep_from)
                    .map(|old| old.memory_bytes())
                    .sum()
            });
            ctx.dropped(removed);
        }
        if let Some(first) = self
            .chunks
            .first()
            .filter(|c| c.min_time() < cutoff)
            .cloned()
        {
            match first.to_head() {
                Ok(head) => {
                    let kept = head.slice(cutoff, i64::MAX);
                    ctx.dropped(first.memory_bytes());
                    if kept.is_empty() {
                        self.edit_chunks(|chunks| chunks.remove(0));
                    } else {
                        let (chunk, bytes) = Chunk::seal(&kept, ctx.interner);
                        ctx.added(bytes);
                        self.chunks[0] = Arc::new(chunk);
                    }
                }
                // A chunk we sealed ourselves does not decode: a bug. Keeping it is
                // the safe side (a query may see those rows twice, none are lost).
                Err(e) => tracing::error!(error = %e, "cannot split a chunk at the tiering cutoff"),
            }
        }
        if self.head.first_time().is_some_and(|t| t < cutoff) {
            let kept = self.head.to_head().slice(cutoff, i64::MAX);
            self.head = OpenHead::from_head(&kept);
        }
        // A series idle since its last seal gives back the room it kept.
        self.head.release_room();
        if let Some(ooo) = &self.ooo
            && ooo.first_time().is_some_and(|t| t < cutoff)
        {
            let kept = ooo.slice(cutoff, i64::MAX);
            self.ooo = (!kept.is_empty()).then(|| Box::new(kept));
        }
        before.saturating_sub(self.rows())
    }

    /// The first and last timestamps held, from chunk headers and heads.
    pub(crate) fn time_span(&self) -> Option<(i64, i64)> {
        if self.newest == i64::MIN {
            return None;
        }
        let first = [
            self.chunks.first().map(|c| c.min_time()),
            self.head.first_time(),
            self.ooo.as_ref().and_then(|h| h.first_time()),
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some((first, self.newest))
    }

    /// The newest value of field `f` (`None`: no rows; `Some(None)`: null there),
    /// without decoding or allocating.
    pub(crate) fn latest_value(&self, f: usize) -> Option<Option<f64>> {
        if !self.head.is_empty() {
            return Some(self.head.last_value(f));
        }
        self.sealed_last.as_ref().map(|row| row.get(f))
    }

    /// The newest row, without decoding anything.
    pub(crate) fn latest(&self) -> Option<(i64, Row)> {
        if let Some(row) = self.head.last_row() {
            return Some((self.newest, row));
        }
        self.sealed_last
            .as_ref()
            .map(|row| (self.newest, row.to_row()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_series_parts_stay_small() {
        // A table holds millions of these: each 8 bytes is 8 MB per million series.
        assert_eq!(std::mem::size_of::<ChunkList>(), 16);
        assert_eq!(std::mem::size_of::<Option<LastRow>>(), 16);
        assert_eq!(std::mem::size_of::<OpenHead>(), 8);
        assert!(
            std::mem::size_of::<Series>() <= 64,
            "{}",
            std::mem::size_of::<Series>()
        );
    }

    #[test]
    fn last_row_keeps_one_field_inline() {
        let mut one = LastRow::new(Box::new([Some(1.5)]));
        assert!(matches!(one, LastRow::Value(_)));
        assert_eq!((one.get(0), one.get(1)), (Some(1.5), None));
        one.set(1, 9.0);
        one.set(0, -0.0);
        assert_eq!(one.to_row()[..], [Some(-0.0)]);
        assert_eq!(one.heap_bytes(), 0);

        let mut null = LastRow::new(Box::new([None]));
        assert_eq!(null.get(0), None);
        null.set(0, 2.0);
        assert_eq!(null.get(0), Some(2.0));

        let stale = f64::from_bits(crate::model::STALE_NAN_BITS);
        let mut wide = LastRow::new(Box::new([None, Some(stale)]));
        assert!(matches!(wide, LastRow::Many(_)));
        assert_eq!(wide.get(1).map(f64::to_bits), Some(stale.to_bits()));
        wide.set(0, 3.0);
        wide.set(5, 4.0);
        assert_eq!(wide.to_row().len(), 2);
        assert_eq!(wide.get(0), Some(3.0));
        assert!(wide.heap_bytes() > 0);

        let empty = LastRow::new(Box::new([]));
        assert_eq!((empty.get(0), empty.to_row().len()), (None, 0));
    }
}

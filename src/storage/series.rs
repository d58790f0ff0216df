//! One series in memory: its open head, its out-of-order head and its sealed chunks.
//!
//! Write routing, for a row at time `t` (the newest time written so far is `newest`):
//! - `t > newest`: appended to the head, which is sealed first when it is full or
//!   when `t` crosses a `chunk_span_ms` boundary;
//! - `t` inside the head's range: inserted (or merged, last write wins) in the head;
//! - older (it falls among sealed chunks): kept in the out-of-order head, merged into
//!   the sealed chunks when that head fills up or the main head seals. Readers overlay
//!   it, so chunks stay disjoint and sorted and their headers stay exact.

use std::sync::Arc;

use super::chunk::{Chunk, TimestampInterner};
use super::config::StorageConfig;
use super::head::{Head, OpenHead};

/// What sealing needs from the table.
pub(crate) struct SealContext<'a> {
    pub(crate) config: &'a StorageConfig,
    pub(crate) interner: &'a mut TimestampInterner,
}

/// The newest row of a series, kept so that "latest" needs no decoding.
pub(crate) type Row = Box<[Option<f64>]>;

/// A series copied for a checkpoint: chunks shared, heads copied.
#[derive(Debug)]
pub(crate) struct SeriesImage {
    pub(crate) tags: Box<[(u32, u32)]>,
    pub(crate) chunks: Vec<Arc<Chunk>>,
    pub(crate) head: Head,
    pub(crate) ooo: Option<Head>,
    pub(crate) newest: i64,
    pub(crate) sealed_last: Option<Row>,
    pub(crate) rows: u64,
}

#[derive(Debug)]
pub(crate) struct Series {
    /// `(tag key number, value code)` pairs, sorted by key name like [`crate::model::TagSet`].
    pub(crate) tags: Box<[(u32, u32)]>,
    pub(crate) head: OpenHead,
    pub(crate) ooo: Option<Box<Head>>,
    pub(crate) chunks: Vec<Arc<Chunk>>,
    /// Newest timestamp ever written, `i64::MIN` before the first row.
    pub(crate) newest: i64,
    /// The last row of the last sealed chunk, for `latest` while the head is empty.
    sealed_last: Option<Row>,
    pub(crate) chunk_bytes: usize,
    pub(crate) rows: u64,
}

impl Series {
    pub(crate) fn new(tags: Box<[(u32, u32)]>) -> Series {
        Series {
            tags,
            head: OpenHead::default(),
            ooo: None,
            chunks: Vec::new(),
            newest: i64::MIN,
            sealed_last: None,
            chunk_bytes: 0,
            rows: 0,
        }
    }

    pub(crate) fn image(&self) -> SeriesImage {
        SeriesImage {
            tags: self.tags.clone(),
            chunks: self.chunks.clone(),
            head: self.head.to_head(),
            ooo: self.ooo.as_deref().cloned(),
            newest: self.newest,
            sealed_last: self.sealed_last.clone(),
            rows: self.rows,
        }
    }

    /// A series from a checkpoint image of a table with `fields` fields. Refuses
    /// images whose parts contradict each other (chunks out of order, unknown fields).
    pub(crate) fn restore(image: SeriesImage, fields: usize) -> Result<Series, String> {
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
            tags: image.tags,
            chunk_bytes: image.chunks.iter().map(|c| c.encoded_bytes()).sum(),
            chunks: image.chunks,
            head: OpenHead::from_head(&image.head),
            ooo: image.ooo.filter(|h| !h.is_empty()).map(Box::new),
            newest: image.newest,
            sealed_last: image.sealed_last,
            rows: image.rows,
        })
    }

    /// Heap bytes held by heads and chunks.
    pub(crate) fn bytes(&self) -> usize {
        self.head.bytes()
            + self.ooo.as_ref().map_or(0, |h| h.bytes())
            + self.chunks.capacity() * std::mem::size_of::<Arc<Chunk>>()
            + self.chunk_bytes
    }

    /// An upper bound of the bytes that writing `rows` rows of `fields` fields adds,
    /// counting the head's growth by doubling and out-of-order rows, for the memory
    /// limit check.
    pub(crate) fn growth_bound(&self, rows: usize, fields: usize) -> usize {
        let columns = self.head.columns().max(fields) + 1;
        let cap = self.head.capacity();
        let needed = self.head.len() + rows;
        // The head doubles until it fits: less than twice what it needs.
        let new_cap = if needed <= cap {
            cap
        } else {
            (needed * 2).max(cap * 2)
        };
        // 9 bytes per slot: the value and a validity flag should nulls appear.
        let head = (new_cap * 9 * columns).saturating_sub(self.head.bytes());
        head + rows * 9 * columns
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
                    self.seal(ctx);
                }
            }
            self.head.upsert(time, fields, values);
            self.newest = time;
            self.rows += 1;
            return;
        }
        if self.head.first_time().is_some_and(|first| time >= first) {
            let before = self.head.len();
            self.head.upsert(time, fields, values);
            self.rows += (self.head.len() - before) as u64;
            return;
        }
        if time == self.newest
            && let Some(last) = &mut self.sealed_last
        {
            for (&f, &v) in fields.iter().zip(values) {
                if let Some(slot) = last.get_mut(f as usize) {
                    *slot = Some(v);
                }
            }
        }
        let ooo = self.ooo.get_or_insert_with(Default::default);
        ooo.upsert(time, fields, values);
        if ooo.len() >= ctx.config.chunk_size {
            self.merge_out_of_order(ctx);
        }
    }

    /// Seals the head (and merges pending out-of-order rows).
    pub(crate) fn seal(&mut self, ctx: &mut SealContext<'_>) {
        if !self.head.is_empty() {
            let head = self.head.take();
            let (chunk, bytes) = Chunk::seal(&head, ctx.interner);
            self.chunk_bytes += bytes;
            self.sealed_last = last_row(&head);
            self.chunks.push(Arc::new(chunk));
        }
        if self.ooo.is_some() {
            self.merge_out_of_order(ctx);
        }
    }

    /// Rewrites the chunks that the out-of-order rows fall into, so that chunks stay
    /// disjoint. Rows are counted here, where duplicates of sealed rows are known.
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
        let before = merged.len();
        for i in 0..ooo.len() {
            let (fields, values): (Vec<u16>, Vec<f64>) = (0..ooo.columns.len())
                .filter_map(|f| ooo.value(f, i).map(|v| (f as u16, v)))
                .unzip();
            merged.upsert(ooo.times[i], &fields, &values);
        }
        self.rows += (merged.len() - before) as u64;
        let mut replacement = Vec::new();
        for part in merged.split(ctx.config.chunk_size) {
            let (chunk, bytes) = Chunk::seal(&part, ctx.interner);
            self.chunk_bytes += bytes;
            replacement.push(Arc::new(chunk));
        }
        for old in self.chunks.splice(lo..hi, replacement) {
            self.chunk_bytes = self.chunk_bytes.saturating_sub(old.encoded_bytes());
        }
    }

    /// Removes every row older than `cutoff` (moved to the cold tier). A chunk that
    /// straddles the cutoff is decoded and its newer rows sealed again. Returns the
    /// rows removed.
    pub(crate) fn drop_before(&mut self, cutoff: i64, ctx: &mut SealContext<'_>) -> u64 {
        let before = self.rows;
        let keep_from = self.chunks.partition_point(|c| c.max_time() < cutoff);
        for old in self.chunks.drain(..keep_from) {
            self.chunk_bytes = self.chunk_bytes.saturating_sub(old.encoded_bytes());
            self.rows = self.rows.saturating_sub(old.rows() as u64);
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
                    self.chunk_bytes = self.chunk_bytes.saturating_sub(first.encoded_bytes());
                    self.rows = self.rows.saturating_sub((head.len() - kept.len()) as u64);
                    if kept.is_empty() {
                        self.chunks.remove(0);
                    } else {
                        let (chunk, bytes) = Chunk::seal(&kept, ctx.interner);
                        self.chunk_bytes += bytes;
                        self.chunks[0] = Arc::new(chunk);
                    }
                }
                // A chunk we sealed ourselves does not decode: a bug. Keeping it is
                // the safe side (a query may see those rows twice, none are lost).
                Err(e) => tracing::error!(error = %e, "cannot split a chunk at the tiering cutoff"),
            }
        }
        if self.head.first_time().is_some_and(|t| t < cutoff) {
            let kept = self.head.slice(cutoff, i64::MAX);
            self.rows = self
                .rows
                .saturating_sub((self.head.len() - kept.len()) as u64);
            self.head = OpenHead::from_head(&kept);
        }
        if let Some(ooo) = &self.ooo
            && ooo.first_time().is_some_and(|t| t < cutoff)
        {
            let kept = ooo.slice(cutoff, i64::MAX);
            self.ooo = (!kept.is_empty()).then(|| Box::new(kept));
        }
        before - self.rows
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
            return Some(self.head.value(f, self.head.len() - 1));
        }
        self.sealed_last
            .as_ref()
            .map(|row| row.get(f).copied().flatten())
    }

    /// The newest row, without decoding anything.
    pub(crate) fn latest(&self) -> Option<(i64, Row)> {
        if let Some(row) = self.head.last_row() {
            return Some((self.newest, row));
        }
        self.sealed_last.clone().map(|row| (self.newest, row))
    }
}

fn last_row(head: &Head) -> Option<Row> {
    let i = head.len().checked_sub(1)?;
    Some((0..head.columns.len()).map(|f| head.value(f, i)).collect())
}

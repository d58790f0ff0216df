//! Sealed chunks: the immutable, compressed rows of one series over a time range.
//!
//! A chunk is one encoded timestamp block plus one encoded block per field (see
//! [`super::codec`] for the byte layouts), and a header with the time bounds, the row
//! count and per-field statistics (count, min, max, sum). Scans use the header to skip
//! chunks by time or value bounds without decoding, and aggregates can answer whole
//! chunks from it.
//!
//! Series scraped together share their timestamps, so a table interns recent timestamp
//! blocks (`TimestampInterner`) and chunks with identical times share one buffer.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use arrow::array::BooleanBufferBuilder;

use super::codec::{self, BlockKind, CodecError, FloatCodec, TimestampCodec};
use super::head::{Head, HeadColumn};
use super::persist::FormatError;
use super::persist::bytes::{Reader, Writer};
use super::stats::malloc_bytes;
use crate::model::{Error, Result, STALE_NAN_BITS};

/// Per-field statistics of a chunk, over values that are present and not stale markers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnStats {
    /// Values present (not null, not a staleness marker). NaNs count.
    pub count: u32,
    /// Smallest value in IEEE 754 total order, as Arrow compares floats (so `-0.0 <
    /// 0.0` and a positive NaN is above `+inf`); meaningless when `count` is 0.
    pub min: f64,
    /// Largest value in total order; meaningless when `count` is 0.
    pub max: f64,
    /// Sum in row order (NaN if any value is NaN).
    pub sum: f64,
    /// Whether some present value is a NaN other than the staleness marker.
    pub has_nan: bool,
}

/// One encoded field of a chunk.
///
/// Kept small (56 bytes) because there is one per field per chunk: with one-field
/// Prometheus series and a few hundred rows per chunk, header bytes weigh as much as
/// the encoded samples. The validity bitmap and the value block share one allocation.
#[derive(Debug)]
pub struct ChunkColumn {
    /// The table's field number.
    pub field: u16,
    /// Whether `bytes` starts with a validity bitmap of `ceil(rows / 8)` bytes.
    has_validity: bool,
    /// Rows of the chunk.
    rows: u32,
    /// Statistics for pruning and header-only aggregates.
    pub stats: ColumnStats,
    /// Arrow validity bitmap (bit `i` set = row `i` has a value) if some row is null,
    /// then the encoded value block.
    bytes: Box<[u8]>,
}

/// The immutable rows of one series between `min_time` and `max_time`.
#[derive(Debug)]
pub struct Chunk {
    min_time: i64,
    max_time: i64,
    times: Arc<[u8]>,
    /// Also holds the row count, which every column repeats.
    columns: Columns,
}

/// A chunk's columns. Most series have one field (every Prometheus series does), so
/// one column sits inline: no second allocation, and the enum takes no more room than
/// the column itself (the discriminant lives in `has_validity`'s spare bit patterns).
/// `Many` (also zero columns, when every value is null) carries the row count that
/// `One`'s column holds, so that the chunk needs no field of its own for it: 4 bytes
/// that would round the chunk's `Arc` allocation up by 16.
#[derive(Debug)]
enum Columns {
    One(ChunkColumn),
    Many {
        rows: u32,
        columns: Box<[ChunkColumn]>,
    },
}

impl Columns {
    fn new(mut columns: Vec<ChunkColumn>, rows: u32) -> Columns {
        if columns.len() == 1
            && let Some(only) = columns.pop()
        {
            return Columns::One(only);
        }
        Columns::Many {
            rows,
            columns: columns.into_boxed_slice(),
        }
    }

    fn rows(&self) -> u32 {
        match self {
            Columns::One(c) => c.rows,
            Columns::Many { rows, .. } => *rows,
        }
    }

    fn as_slice(&self) -> &[ChunkColumn] {
        match self {
            Columns::One(c) => std::slice::from_ref(c),
            Columns::Many { columns, .. } => columns,
        }
    }

    /// Heap bytes beyond the chunk struct itself.
    fn heap_bytes(&self) -> usize {
        match self {
            Columns::One(_) => 0,
            Columns::Many { columns, .. } => {
                malloc_bytes(std::mem::size_of_val::<[ChunkColumn]>(columns))
            }
        }
    }
}

impl ChunkColumn {
    fn validity_len(&self) -> usize {
        if self.has_validity {
            (self.rows as usize).div_ceil(8)
        } else {
            0
        }
    }

    /// The validity bitmap, `None` when every row has a value.
    fn validity(&self) -> Option<&[u8]> {
        self.has_validity
            .then(|| self.bytes.get(..self.validity_len()).unwrap_or_default())
    }

    /// Rows that hold a value (staleness markers included).
    pub fn present(&self) -> usize {
        match self.validity() {
            None => self.rows as usize,
            Some(bits) => bits.iter().map(|b| b.count_ones() as usize).sum(),
        }
    }

    /// The encoded value block (see [`super::codec`] for its layout), for benches and
    /// tools that decode with [`codec::decode_floats`] directly.
    pub fn data(&self) -> &[u8] {
        self.bytes.get(self.validity_len()..).unwrap_or_default()
    }

    /// Bytes held: validity bitmap plus value block.
    fn encoded_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The codec the value block was encoded with, read from its header; `None` if the
    /// header is unreadable (never for a block this crate sealed).
    pub fn codec(&self) -> Option<FloatCodec> {
        match codec::peek_header(self.data()).ok()?.kind {
            BlockKind::Floats(c) => Some(c),
            BlockKind::Timestamps(_) => None,
        }
    }
}

impl Chunk {
    /// Encodes a non-empty head. Returns the chunk and the bytes it added to memory
    /// (shared timestamp blocks count once).
    pub(crate) fn seal(head: &Head, interner: &mut TimestampInterner) -> (Chunk, usize) {
        let (times, new_time_bytes) = interner.intern(&head.times);
        let mut bytes = new_time_bytes;
        let rows = head.times.len();
        let mut scratch = Vec::new();
        let mut columns = Vec::with_capacity(head.columns.len());
        for (field, column) in head.columns.iter().enumerate() {
            // A head may carry an all-true validity vector (a column created empty
            // starts with one); storing it would cost a bit per row for nothing.
            let valid = column.valid.as_deref().filter(|v| v.contains(&false));
            if valid.is_some_and(|v| !v.contains(&true)) {
                continue;
            }
            scratch.clear();
            if let Some(valid) = valid {
                let mut b = BooleanBufferBuilder::new(valid.len());
                b.append_slice(valid);
                scratch.extend_from_slice(b.finish().values());
            }
            let filled = fill_nulls(&column.values, valid);
            codec::encode_floats(&filled, &mut scratch);
            columns.push(ChunkColumn {
                field: field as u16,
                has_validity: valid.is_some(),
                rows: rows as u32,
                stats: stats(&column.values, valid),
                bytes: scratch.as_slice().into(),
            });
        }
        let columns = Columns::new(columns, rows as u32);
        let chunk = Chunk {
            min_time: head.times[0],
            max_time: head.times[head.times.len() - 1],
            times,
            columns,
        };
        bytes += chunk.header_bytes();
        (chunk, bytes)
    }

    /// Earliest timestamp.
    pub fn min_time(&self) -> i64 {
        self.min_time
    }

    /// Latest timestamp.
    pub fn max_time(&self) -> i64 {
        self.max_time
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.columns.rows() as usize
    }

    /// The encoded columns, by field number.
    pub fn columns(&self) -> &[ChunkColumn] {
        self.columns.as_slice()
    }

    /// The column of table field `field`, if this chunk has values for it.
    pub fn column(&self, field: usize) -> Option<&ChunkColumn> {
        self.columns().iter().find(|c| c.field as usize == field)
    }

    /// Encoded bytes: the timestamp block plus every field block.
    pub fn encoded_bytes(&self) -> usize {
        self.times.len()
            + self
                .columns()
                .iter()
                .map(ChunkColumn::encoded_bytes)
                .sum::<usize>()
    }

    /// Bytes the chunk holds as the allocator counts them: its `Arc` allocation (two
    /// counts and the header), the column list when there are several, each column's
    /// block, and its share of the timestamp block, which chunks with identical
    /// times share: the block's bytes over its holders (chunks, and the interner's
    /// recent slots), so that the shares of a block add up to about the block once.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.header_bytes() + self.times.len() / Arc::strong_count(&self.times)
    }

    /// [`Chunk::memory_bytes`] without the timestamp block.
    fn header_bytes(&self) -> usize {
        malloc_bytes(std::mem::size_of::<Chunk>() + 2 * std::mem::size_of::<usize>())
            + self.columns.heap_bytes()
            + self
                .columns()
                .iter()
                .map(|c| malloc_bytes(c.bytes.len()))
                .sum::<usize>()
    }

    /// Bytes of the timestamp block alone.
    pub fn time_bytes(&self) -> usize {
        self.times.len()
    }

    /// The encoded timestamp block, possibly shared with other chunks of the table.
    pub fn times_block(&self) -> &[u8] {
        &self.times
    }

    /// The codec of the timestamp block, read from its header.
    pub fn time_codec(&self) -> Option<TimestampCodec> {
        match codec::peek_header(&self.times).ok()?.kind {
            BlockKind::Timestamps(c) => Some(c),
            BlockKind::Floats(_) => None,
        }
    }

    /// Appends the chunk's timestamps to `out`.
    pub fn decode_times(&self, out: &mut Vec<i64>) -> Result<()> {
        let start = out.len();
        codec::decode_timestamps(&self.times, out).map_err(|e| corrupt("timestamps", e))?;
        self.check_len(out.len() - start, "timestamps")
    }

    /// Appends field `field`'s values to `values` and their validity to `validity`
    /// (null rows get 0.0). A field the chunk lacks reads as all null.
    pub fn decode_field(
        &self,
        field: usize,
        values: &mut Vec<f64>,
        validity: &mut BooleanBufferBuilder,
    ) -> Result<()> {
        let rows = self.rows();
        let Some(column) = self.column(field) else {
            values.resize(values.len() + rows, 0.0);
            validity.append_n(rows, false);
            return Ok(());
        };
        let start = values.len();
        codec::decode_floats(column.data(), values).map_err(|e| corrupt("values", e))?;
        self.check_len(values.len() - start, "values")?;
        match column.validity() {
            None => validity.append_n(rows, true),
            Some(bits) => {
                if bits.len() * 8 < rows {
                    return Err(Error::Corrupt {
                        context: "chunk validity".into(),
                        message: format!("{} bytes for {rows} rows", bits.len()),
                    });
                }
                validity.append_packed_range(0..rows, bits);
            }
        }
        Ok(())
    }

    /// The timestamp block as shared; checkpoints write each distinct block once.
    pub(crate) fn times_shared(&self) -> &Arc<[u8]> {
        &self.times
    }

    /// Writes the chunk minus its timestamp block, for a checkpoint:
    /// `i64 min_time | i64 max_time | u32 rows | u32 columns`, then per column
    /// `u16 field | u8 has_validity | u32 count | f64 min | f64 max | f64 sum |
    /// u8 has_nan | u32 length + bytes (validity bitmap then value block)`.
    pub(crate) fn write_body(&self, w: &mut Writer) {
        w.i64(self.min_time);
        w.i64(self.max_time);
        w.u32(self.columns.rows());
        w.u32(self.columns().len() as u32);
        for c in self.columns() {
            w.u16(c.field);
            w.u8(c.has_validity as u8);
            w.u32(c.stats.count);
            w.f64(c.stats.min);
            w.f64(c.stats.max);
            w.f64(c.stats.sum);
            w.u8(c.stats.has_nan as u8);
            w.bytes(&c.bytes);
        }
    }

    /// Reads what [`Chunk::write_body`] wrote, with its timestamp block. Checks that
    /// the parts agree (row counts, bounds) so that a bad checkpoint fails here, not
    /// in a query.
    pub(crate) fn read_body(r: &mut Reader<'_>, times: Arc<[u8]>) -> Result<Chunk, FormatError> {
        let at = r.offset();
        let min_time = r.i64("chunk min time")?;
        let max_time = r.i64("chunk max time")?;
        let rows = r.u32("chunk rows")?;
        let invalid = |message: String| FormatError::Invalid {
            offset: at,
            message,
        };
        let header = codec::peek_header(&times).map_err(|e| invalid(e.to_string()))?;
        if rows == 0 || header.rows != rows || min_time > max_time {
            return Err(invalid(format!(
                "chunk of {rows} rows from {min_time} to {max_time} with {} timestamps",
                header.rows
            )));
        }
        let count = r.count(40, "chunk columns")?;
        let mut columns = Vec::with_capacity(count);
        for _ in 0..count {
            let field = r.u16("column field")?;
            let has_validity = r.u8("column validity flag")? != 0;
            let stats = ColumnStats {
                count: r.u32("column count")?,
                min: r.f64("column min")?,
                max: r.f64("column max")?,
                sum: r.f64("column sum")?,
                has_nan: r.u8("column has_nan")? != 0,
            };
            let bytes: Box<[u8]> = r.bytes("column bytes")?.into();
            let column = ChunkColumn {
                field,
                has_validity,
                rows,
                stats,
                bytes,
            };
            if column.bytes.len() < column.validity_len()
                || columns
                    .last()
                    .is_some_and(|p: &ChunkColumn| p.field >= field)
            {
                return Err(invalid(format!("column {field} is malformed")));
            }
            columns.push(column);
        }
        Ok(Chunk {
            min_time,
            max_time,
            times,
            columns: Columns::new(columns, rows),
        })
    }

    /// Decodes every row back into a head (used to merge late rows into chunks).
    pub(crate) fn to_head(&self) -> Result<Head> {
        let mut head = Head::default();
        self.decode_times(&mut head.times)?;
        let fields = self
            .columns()
            .iter()
            .map(|c| c.field as usize + 1)
            .max()
            .unwrap_or(0);
        for f in 0..fields {
            let mut values = Vec::with_capacity(self.rows());
            let mut validity = BooleanBufferBuilder::new(self.rows());
            self.decode_field(f, &mut values, &mut validity)?;
            let valid = validity.finish();
            let valid = (valid.count_set_bits() != valid.len()).then(|| valid.iter().collect());
            head.columns.push(HeadColumn { values, valid });
        }
        Ok(head)
    }

    fn check_len(&self, got: usize, what: &str) -> Result<()> {
        if got == self.rows() {
            Ok(())
        } else {
            Err(Error::Corrupt {
                context: format!("chunk {what}"),
                message: format!("decoded {got} rows, header says {}", self.rows()),
            })
        }
    }
}

fn corrupt(what: &str, e: CodecError) -> Error {
    Error::Corrupt {
        context: format!("chunk {what}"),
        message: e.to_string(),
    }
}

/// Null slots take the previous present value (the first present one for leading
/// nulls) so that the codecs see a smooth series; validity says which rows are real.
fn fill_nulls(values: &[f64], valid: Option<&[bool]>) -> Vec<f64> {
    let Some(valid) = valid else {
        return values.to_vec();
    };
    let first = valid.iter().position(|&v| v).map_or(0.0, |i| values[i]);
    let mut last = first;
    values
        .iter()
        .zip(valid)
        .map(|(&v, &ok)| {
            if ok {
                last = v;
            }
            last
        })
        .collect()
}

fn stats(values: &[f64], valid: Option<&[bool]>) -> ColumnStats {
    let mut s = ColumnStats {
        count: 0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        sum: 0.0,
        has_nan: false,
    };
    for (i, &v) in values.iter().enumerate() {
        if valid.is_some_and(|valid| !valid[i]) || v.to_bits() == STALE_NAN_BITS {
            continue;
        }
        if s.count == 0 || v.total_cmp(&s.min).is_lt() {
            s.min = v;
        }
        if s.count == 0 || v.total_cmp(&s.max).is_gt() {
            s.max = v;
        }
        s.count += 1;
        s.sum += v;
        s.has_nan |= v.is_nan();
    }
    s
}

/// Recently sealed timestamp blocks, so that series scraped together share one buffer.
///
/// Two levels: a small ring per table (no locking; series of one metric family seal
/// within moments of each other), then a store-wide map of weak references, because
/// one scrape feeds hundreds of tables (one per metric family) that all carry the same
/// timestamps. On the node-exporter data set the shared map cuts timestamp bytes from
/// about 0.08 to under 0.01 byte/sample.
///
/// Accounting: a block counts toward the bytes of the table that sealed it first; a
/// table reusing it adds nothing, even if the first table later drops it. The shared
/// map holds weak references only, so it keeps no block alive.
#[derive(Debug, Default)]
pub(crate) struct TimestampInterner {
    recent: Vec<Arc<[u8]>>,
    next: usize,
    scratch: Vec<u8>,
    shared: Arc<SharedTimestamps>,
}

/// The store-wide map of recently sealed timestamp blocks, shared by its tables.
#[derive(Debug, Default)]
pub(crate) struct SharedTimestamps(Mutex<SharedBlocks>);

const INTERNER_SLOTS: usize = 32;

/// Entries the shared map may hold before dead ones are swept.
const SHARED_LIMIT: usize = 1 << 16;

type SharedBlocks = ahash::HashMap<u64, Weak<[u8]>>;

fn block_hash(bytes: &[u8]) -> u64 {
    // Fixed seeds: the hash only keys an in-memory map.
    ahash::RandomState::with_seeds(1, 2, 3, 4).hash_one(bytes)
}

impl TimestampInterner {
    /// An interner for one table of the store that owns `shared`.
    pub(crate) fn new(shared: Arc<SharedTimestamps>) -> TimestampInterner {
        TimestampInterner {
            shared,
            ..TimestampInterner::default()
        }
    }

    /// The store-wide blocks this interner shares into.
    pub(crate) fn shared(&self) -> &Arc<SharedTimestamps> {
        &self.shared
    }

    /// Encodes `times` and returns a shared block plus the bytes newly allocated
    /// (0 when an identical block was reused).
    fn intern(&mut self, times: &[i64]) -> (Arc<[u8]>, usize) {
        self.scratch.clear();
        codec::encode_timestamps(times, &mut self.scratch);
        self.intern_scratch()
    }

    /// Shares an already encoded block (read from a checkpoint) like [`Self::intern`].
    pub(crate) fn intern_block(&mut self, block: &[u8]) -> (Arc<[u8]>, usize) {
        self.scratch.clear();
        self.scratch.extend_from_slice(block);
        self.intern_scratch()
    }

    fn intern_scratch(&mut self) -> (Arc<[u8]>, usize) {
        if let Some(found) = self.recent.iter().find(|b| ***b == *self.scratch) {
            return (found.clone(), 0);
        }
        let hash = block_hash(&self.scratch);
        let (block, new_bytes) = {
            let mut shared = self.shared.0.lock();
            match shared.get(&hash).and_then(Weak::upgrade) {
                Some(found) if *found == *self.scratch => (found, 0),
                _ => {
                    if shared.len() >= SHARED_LIMIT {
                        shared.retain(|_, w| w.strong_count() > 0);
                        if shared.len() >= SHARED_LIMIT / 2 {
                            shared.clear();
                        }
                    }
                    let block: Arc<[u8]> = self.scratch.as_slice().into();
                    shared.insert(hash, Arc::downgrade(&block));
                    (block, self.scratch.len())
                }
            }
        };
        if self.recent.len() < INTERNER_SLOTS {
            self.recent.push(block.clone());
        } else {
            self.recent[self.next] = block.clone();
            self.next = (self.next + 1) % INTERNER_SLOTS;
        }
        (block, new_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_headers_stay_small() {
        // One column inline, the enum's tag in a niche: the sizes the header-overhead
        // figures in the compression bench assume.
        assert_eq!(std::mem::size_of::<ChunkColumn>(), 56);
        // 88 bytes plus the `Arc`'s two counts is a 112-byte malloc chunk; 96 would
        // take 128.
        assert!(
            std::mem::size_of::<Chunk>() <= 88,
            "{}",
            std::mem::size_of::<Chunk>()
        );
    }

    #[test]
    fn identical_times_share_one_block_across_interners() {
        let times: Vec<i64> = (0..300).map(|i| 1_000_003 + i * 1_999 + i % 3).collect();
        let shared = Arc::new(SharedTimestamps::default());
        let (a, new_a) = TimestampInterner::new(shared.clone()).intern(&times);
        let (b, new_b) = TimestampInterner::new(shared).intern(&times);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(new_a > 0 && new_b == 0, "{new_a} {new_b}");
    }

    #[test]
    fn all_true_validity_is_not_stored() {
        let mut head = Head::default();
        head.ensure_columns(1); // a column created empty carries a validity vector
        for i in 0..10 {
            head.upsert(i, &[0], &[i as f64]);
        }
        let (chunk, _) = Chunk::seal(&head, &mut TimestampInterner::default());
        assert_eq!(chunk.columns()[0].present(), 10);
        assert_eq!(
            chunk.encoded_bytes(),
            chunk.time_bytes() + chunk.columns()[0].data().len()
        );
    }
}

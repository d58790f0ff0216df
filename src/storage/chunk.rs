//! Sealed chunks: the immutable, compressed rows of one series over a time range.
//!
//! A chunk is one encoded timestamp block plus one encoded block per field (see
//! [`super::codec`] for the byte layouts), and a header with the time bounds, the row
//! count and per-field statistics (count, min, max, sum). Scans use the header to skip
//! chunks by time or value bounds without decoding, and aggregates can answer whole
//! chunks from it.
//!
//! Series scraped together share their timestamps, so a table interns recent timestamp
//! blocks ([`TimestampInterner`]) and chunks with identical times share one buffer.

use std::sync::Arc;

use arrow::array::BooleanBufferBuilder;

use super::codec::{self, CodecError};
use super::head::{Head, HeadColumn};
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
#[derive(Debug)]
pub struct ChunkColumn {
    /// The table's field number.
    pub field: u16,
    /// Statistics for pruning and header-only aggregates.
    pub stats: ColumnStats,
    /// Arrow validity bitmap (bit `i` set = row `i` has a value); `None` = all valid.
    validity: Option<Box<[u8]>>,
    data: Box<[u8]>,
    data_rows: usize,
}

/// The immutable rows of one series between `min_time` and `max_time`.
#[derive(Debug)]
pub struct Chunk {
    min_time: i64,
    max_time: i64,
    rows: u32,
    times: Arc<[u8]>,
    columns: Box<[ChunkColumn]>,
}

impl ChunkColumn {
    /// Rows that hold a value (staleness markers included).
    pub fn present(&self) -> usize {
        match &self.validity {
            None => self.data_rows,
            Some(bits) => bits.iter().map(|b| b.count_ones() as usize).sum(),
        }
    }
}

impl Chunk {
    /// Encodes a non-empty head. Returns the chunk and the bytes it added to memory
    /// (shared timestamp blocks count once).
    pub(crate) fn seal(head: &Head, interner: &mut TimestampInterner) -> (Chunk, usize) {
        let (times, new_time_bytes) = interner.intern(&head.times);
        let mut bytes = new_time_bytes;
        let mut scratch = Vec::new();
        let mut columns = Vec::with_capacity(head.columns.len());
        for (field, column) in head.columns.iter().enumerate() {
            let validity = column.valid.as_ref().map(|valid| {
                let mut b = BooleanBufferBuilder::new(valid.len());
                b.append_slice(valid);
                b.finish().values().to_vec().into_boxed_slice()
            });
            if column.valid.as_ref().is_some_and(|v| !v.contains(&true)) {
                continue;
            }
            let filled = fill_nulls(&column.values, column.valid.as_deref());
            scratch.clear();
            codec::encode_floats(&filled, &mut scratch);
            let data: Box<[u8]> = scratch.as_slice().into();
            bytes += data.len() + validity.as_ref().map_or(0, |v| v.len());
            columns.push(ChunkColumn {
                field: field as u16,
                stats: stats(&column.values, column.valid.as_deref()),
                validity,
                data,
                data_rows: head.times.len(),
            });
        }
        bytes += std::mem::size_of::<Chunk>() + columns.len() * std::mem::size_of::<ChunkColumn>();
        let chunk = Chunk {
            min_time: head.times[0],
            max_time: head.times[head.times.len() - 1],
            rows: head.times.len() as u32,
            times,
            columns: columns.into_boxed_slice(),
        };
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
        self.rows as usize
    }

    /// The encoded columns, by field number.
    pub fn columns(&self) -> &[ChunkColumn] {
        &self.columns
    }

    /// The column of table field `field`, if this chunk has values for it.
    pub fn column(&self, field: usize) -> Option<&ChunkColumn> {
        self.columns.iter().find(|c| c.field as usize == field)
    }

    /// Encoded bytes: the timestamp block plus every field block.
    pub fn encoded_bytes(&self) -> usize {
        self.times.len()
            + self
                .columns
                .iter()
                .map(|c| c.data.len() + c.validity.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>()
    }

    /// Bytes of the timestamp block alone.
    pub fn time_bytes(&self) -> usize {
        self.times.len()
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
        codec::decode_floats(&column.data, values).map_err(|e| corrupt("values", e))?;
        self.check_len(values.len() - start, "values")?;
        match &column.validity {
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

    /// Decodes every row back into a head (used to merge late rows into chunks).
    pub(crate) fn to_head(&self) -> Result<Head> {
        let mut head = Head::default();
        self.decode_times(&mut head.times)?;
        let fields = self
            .columns
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
                message: format!("decoded {got} rows, header says {}", self.rows),
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

/// Recently sealed timestamp blocks of a table, so that series scraped together share
/// one buffer. A small ring is enough: such series seal within moments of each other.
#[derive(Debug, Default)]
pub(crate) struct TimestampInterner {
    recent: Vec<Arc<[u8]>>,
    next: usize,
    scratch: Vec<u8>,
}

const INTERNER_SLOTS: usize = 32;

impl TimestampInterner {
    /// Encodes `times` and returns a shared block plus the bytes newly allocated
    /// (0 when an identical block was reused).
    fn intern(&mut self, times: &[i64]) -> (Arc<[u8]>, usize) {
        self.scratch.clear();
        codec::encode_timestamps(times, &mut self.scratch);
        if let Some(found) = self.recent.iter().find(|b| ***b == *self.scratch) {
            return (found.clone(), 0);
        }
        let block: Arc<[u8]> = self.scratch.as_slice().into();
        if self.recent.len() < INTERNER_SLOTS {
            self.recent.push(block.clone());
        } else {
            self.recent[self.next] = block.clone();
            self.next = (self.next + 1) % INTERNER_SLOTS;
        }
        (block, self.scratch.len())
    }
}

//! The WAL payload: one [`WriteBatch`], bit for bit.
//!
//! Version 2 (written now) names every string once per record and stores timestamps
//! as deltas: a remote_write request repeats each host's tags in every metric's
//! series and carries regular timestamps, and copying a version 1 record into the
//! page cache was a fifth of the server's CPU on that path (its records are 2-3x
//! larger).
//!
//! ```text
//! version 2
//!   u32 length of the items section
//!   items section:
//!     var items
//!     per item:
//!       var table                         (string number)
//!       var tags, then (var key, var value) string numbers per tag, sorted by key
//!       var fields, then (var name, u8 kind: 0 none, 1 counter, 2 gauge, 3 histogram)
//!       var rows, then rows × zigzag var timestamp delta (the first from 0), then
//!       rows × fields × f64 bits (row-major)
//!   strings section (the rest of the payload):
//!     var strings, then per string: var length + UTF-8 bytes
//!
//! version 1
//!   u32 items
//!   per item:
//!     str table                      (str = u32 length + UTF-8 bytes)
//!     u32 tags, then (str key, str value) per tag, sorted by key
//!     u32 fields, then (str name, u8 kind)
//!     u32 rows, then rows × i64 timestamp, then rows × fields × f64 bits (row-major)
//! ```
//! `var` is an unsigned LEB128 varint, `zigzag` maps signed to unsigned; deltas wrap,
//! so any `i64` sequence round-trips. Values are stored as raw IEEE bits, so NaN
//! payloads (staleness markers) and -0.0 come back unchanged.

use super::FormatError;
use super::bytes::{Reader, Writer};
use ahash::HashMap;

use crate::model::{FieldKind, SeriesWrite, TagSet, WriteBatch};

fn kind_code(kind: Option<FieldKind>) -> u8 {
    match kind {
        None => 0,
        Some(FieldKind::Counter) => 1,
        Some(FieldKind::Gauge) => 2,
        Some(FieldKind::Histogram) => 3,
    }
}

pub(crate) fn kind_from_code(code: u8, offset: u64) -> Result<Option<FieldKind>, FormatError> {
    Ok(match code {
        0 => None,
        1 => Some(FieldKind::Counter),
        2 => Some(FieldKind::Gauge),
        3 => Some(FieldKind::Histogram),
        other => {
            return Err(FormatError::Invalid {
                offset,
                message: format!("unknown field kind {other}"),
            });
        }
    })
}

/// Appends `batch` to `out` in version 2 (empty items are skipped: they store
/// nothing).
pub(crate) fn encode_batch(batch: &WriteBatch, out: &mut Writer) {
    let mut strings = Strings::default();
    let length_at = out.buf.len();
    out.u32(0);
    out.var(stored_items(batch).count() as u64);
    for item in stored_items(batch) {
        out.var(strings.number(item.table()));
        out.var(item.tags().len() as u64);
        for (k, v) in item.tags().pairs() {
            out.var(strings.number(k));
            out.var(strings.number(v));
        }
        out.var(item.fields().len() as u64);
        for (name, kind) in item.fields() {
            out.var(strings.number(name));
            out.u8(kind_code(*kind));
        }
        out.var(item.len() as u64);
        out.buf.reserve(item.len() * (2 + 8 * item.fields().len()));
        let mut previous = 0i64;
        for &t in item.timestamps() {
            out.zigzag(t.wrapping_sub(previous));
            previous = t;
        }
        for i in 0..item.len() {
            for &v in item.row(i) {
                out.f64(v);
            }
        }
    }
    let length = (out.buf.len() - length_at - 4) as u32;
    out.buf[length_at..length_at + 4].copy_from_slice(&length.to_le_bytes());
    out.var(strings.list.len() as u64);
    for s in strings.list {
        out.var(s.len() as u64);
        out.buf.extend_from_slice(s.as_bytes());
    }
}

/// The items a record holds: empty ones store nothing. Walked twice (count, then
/// items) rather than collected: this runs on every write.
fn stored_items(batch: &WriteBatch) -> impl Iterator<Item = &SeriesWrite> {
    batch.items().iter().filter(|i| !i.is_empty())
}

/// The strings of a version 2 record, numbered in order of first use.
#[derive(Default)]
struct Strings<'a> {
    numbers: HashMap<&'a str, u64>,
    list: Vec<&'a str>,
}

impl<'a> Strings<'a> {
    fn number(&mut self, s: &'a str) -> u64 {
        if let Some(&n) = self.numbers.get(s) {
            return n;
        }
        let n = self.list.len() as u64;
        self.numbers.insert(s, n);
        self.list.push(s);
        n
    }
}

/// Decodes what [`encode_batch`] wrote in WAL format `version` (1 or 2); `reader`
/// must hold exactly one payload.
pub(crate) fn decode_batch(
    reader: &mut Reader<'_>,
    version: u8,
) -> Result<WriteBatch, FormatError> {
    if version == 1 {
        return decode_v1(reader);
    }
    let at = reader.offset();
    let length = reader.u32("items section length")? as usize;
    let mut items = Reader::new(reader.take(length, "items section")?, at + 4);
    let strings = decode_strings(reader)?;
    let string = |items: &mut Reader<'_>, what: &'static str| {
        let at = items.offset();
        let n = items.var(what)?;
        usize::try_from(n)
            .ok()
            .and_then(|n| strings.get(n).copied())
            .ok_or_else(|| FormatError::Invalid {
                offset: at,
                message: format!("{what} refers to string {n} of {}", strings.len()),
            })
    };
    let mut batch = WriteBatch::new();
    let count = items.var_count(4, "item count")?;
    for _ in 0..count {
        let table = string(&mut items, "table name")?;
        let at = items.offset();
        let tag_count = items.var_count(2, "tag count")?;
        let mut pairs = Vec::with_capacity(tag_count);
        for _ in 0..tag_count {
            pairs.push((
                string(&mut items, "tag key")?,
                string(&mut items, "tag value")?,
            ));
        }
        let tags = TagSet::new(pairs).map_err(|e| FormatError::Invalid {
            offset: at,
            message: e.to_string(),
        })?;
        let field_count = items.var_count(2, "field count")?;
        let mut names = Vec::with_capacity(field_count);
        let mut kinds = Vec::with_capacity(field_count);
        for _ in 0..field_count {
            names.push(string(&mut items, "field name")?);
            let at = items.offset();
            kinds.push(kind_from_code(items.u8("field kind")?, at)?);
        }
        let rows = items.var_count(1 + 8 * field_count, "row count")?;
        let mut times = Vec::with_capacity(rows);
        let mut t = 0i64;
        for _ in 0..rows {
            t = t.wrapping_add(items.zigzag("timestamp delta")?);
            times.push(t);
        }
        let values = items.take(rows * 8 * field_count, "values")?;
        push_item(
            &mut batch, table, tags, &names, &kinds, &times, values, &items,
        )?;
    }
    items.end("item")?;
    Ok(batch)
}

/// The strings section of a version 2 record: the rest of `reader`.
fn decode_strings<'a>(reader: &mut Reader<'a>) -> Result<Vec<&'a str>, FormatError> {
    let count = reader.var_count(1, "string count")?;
    let mut strings = Vec::with_capacity(count);
    for _ in 0..count {
        let at = reader.offset();
        let len = reader.var_count(1, "string length")?;
        let bytes = reader.take(len, "string")?;
        strings.push(
            std::str::from_utf8(bytes).map_err(|_| FormatError::Invalid {
                offset: at,
                message: "string is not UTF-8".into(),
            })?,
        );
    }
    reader.end("string")?;
    Ok(strings)
}

/// Adds one decoded item: `values` holds `times.len() × names.len()` f64 bits.
#[allow(clippy::too_many_arguments)]
fn push_item(
    batch: &mut WriteBatch,
    table: &str,
    tags: TagSet,
    names: &[&str],
    kinds: &[Option<FieldKind>],
    times: &[i64],
    values: &[u8],
    reader: &Reader<'_>,
) -> Result<(), FormatError> {
    let item = batch.series(table, tags, names);
    for (name, kind) in names.iter().zip(kinds) {
        if let Some(kind) = *kind {
            item.with_kind(name, kind);
        }
    }
    item.reserve(times.len());
    let mut row = vec![0.0; names.len()];
    for (i, &t) in times.iter().enumerate() {
        let start = i * 8 * names.len();
        for (f, slot) in row.iter_mut().enumerate() {
            let at = start + f * 8;
            let bits = values
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or_default();
            *slot = f64::from_bits(bits);
        }
        // The row has exactly `names.len()` values, so push cannot fail.
        item.push(t, &row).map_err(|e| FormatError::Invalid {
            offset: reader.offset(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// Version 1 of [`encode_batch`], kept to write test records.
#[cfg(test)]
pub(crate) fn encode_v1(batch: &WriteBatch, out: &mut Writer) {
    out.u32(stored_items(batch).count() as u32);
    for item in stored_items(batch) {
        out.str(item.table());
        out.u32(item.tags().len() as u32);
        for (k, v) in item.tags().pairs() {
            out.str(k);
            out.str(v);
        }
        out.u32(item.fields().len() as u32);
        for (name, kind) in item.fields() {
            out.str(name);
            out.u8(kind_code(*kind));
        }
        out.u32(item.len() as u32);
        out.buf.reserve(item.len() * 8 * (1 + item.fields().len()));
        for &t in item.timestamps() {
            out.i64(t);
        }
        for i in 0..item.len() {
            for &v in item.row(i) {
                out.f64(v);
            }
        }
    }
}

/// Decodes a version 1 payload.
fn decode_v1(reader: &mut Reader<'_>) -> Result<WriteBatch, FormatError> {
    let mut batch = WriteBatch::new();
    let items = reader.count(16, "item count")?;
    for _ in 0..items {
        let table = reader.str("table name")?;
        let at = reader.offset();
        let tag_count = reader.count(8, "tag count")?;
        let mut pairs = Vec::with_capacity(tag_count);
        for _ in 0..tag_count {
            pairs.push((reader.str("tag key")?, reader.str("tag value")?));
        }
        let tags = TagSet::new(pairs).map_err(|e| FormatError::Invalid {
            offset: at,
            message: e.to_string(),
        })?;
        let field_count = reader.count(5, "field count")?;
        let mut names = Vec::with_capacity(field_count);
        let mut kinds = Vec::with_capacity(field_count);
        for _ in 0..field_count {
            names.push(reader.str("field name")?);
            let at = reader.offset();
            kinds.push(kind_from_code(reader.u8("field kind")?, at)?);
        }
        let rows = reader.count(8 * (1 + field_count), "row count")?;
        let times: Vec<i64> = reader
            .take(rows * 8, "timestamps")?
            .chunks_exact(8)
            .map(|t| i64::from_le_bytes(t.try_into().unwrap_or_default()))
            .collect();
        let values = reader.take(rows * 8 * field_count, "values")?;
        push_item(
            &mut batch, table, tags, &names, &kinds, &times, values, reader,
        )?;
    }
    reader.end("item")?;
    Ok(batch)
}

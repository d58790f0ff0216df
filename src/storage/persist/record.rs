//! The WAL payload: one [`WriteBatch`], bit for bit.
//!
//! ```text
//! u32 items
//! per item:
//!   str table                      (str = u32 length + UTF-8 bytes)
//!   u32 tags, then (str key, str value) per tag, sorted by key
//!   u32 fields, then (str name, u8 kind: 0 none, 1 counter, 2 gauge, 3 histogram)
//!   u32 rows, then rows × i64 timestamp, then rows × fields × f64 bits (row-major)
//! ```
//! Values are stored as raw IEEE bits, so NaN payloads (staleness markers) and -0.0
//! come back unchanged.

use super::FormatError;
use super::bytes::{Reader, Writer};
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

/// Appends `batch` to `out` (empty items are skipped: they store nothing).
pub(crate) fn encode_batch(batch: &WriteBatch, out: &mut Writer) {
    let items: Vec<&SeriesWrite> = batch.items().iter().filter(|i| !i.is_empty()).collect();
    out.u32(items.len() as u32);
    for item in items {
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

/// Decodes what [`encode_batch`] wrote; `reader` must hold exactly one payload.
pub(crate) fn decode_batch(reader: &mut Reader<'_>) -> Result<WriteBatch, FormatError> {
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
        let item = batch.series(table, tags, &names);
        for (name, kind) in names.iter().zip(kinds) {
            if let Some(kind) = kind {
                item.with_kind(name, kind);
            }
        }
        let rows = reader.count(8 * (1 + field_count), "row count")?;
        let times = reader.take(rows * 8, "timestamps")?;
        let values = reader.take(rows * 8 * field_count, "values")?;
        item.reserve(rows);
        let mut row = vec![0.0; field_count];
        for (i, t) in times.chunks_exact(8).enumerate() {
            let t = i64::from_le_bytes(t.try_into().unwrap_or_default());
            let start = i * 8 * field_count;
            for (f, slot) in row.iter_mut().enumerate() {
                let at = start + f * 8;
                let bits = values
                    .get(at..at + 8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
                    .unwrap_or_default();
                *slot = f64::from_bits(bits);
            }
            // The row has exactly `field_count` values, so push cannot fail.
            item.push(t, &row).map_err(|e| FormatError::Invalid {
                offset: reader.offset(),
                message: e.to_string(),
            })?;
        }
    }
    if !reader.is_empty() {
        return Err(FormatError::Invalid {
            offset: reader.offset(),
            message: "bytes after the last item".into(),
        });
    }
    Ok(batch)
}

//! Checkpoint files: the whole hot tier at a WAL position, so that older WAL segments
//! can go and a restart replays little. (The issue calls them snapshots; "checkpoint"
//! keeps them apart from the read snapshots of [`crate::storage::TableSnapshot`].)
//!
//! ## Layout
//! `checkpoint-<base seq, 20 digits>.ckpt`, written as `.tmp`, synced, then renamed:
//! ```text
//! header  "MSCKPT" | u8 version (1) | u8 reserved | u64 base seq           16 bytes
//! frame   u8 kind | u64 payload length | u32 CRC32C(payload) | payload
//!   kind 1, a table:
//!     str name | u64 seq
//!     u32 fields, each: str name | u8 kind (1 counter, 2 gauge, 3 histogram)
//!     u32 tag keys, each: str key | u32 values | str value...   (codes = positions)
//!     u32 series, each:
//!       u32 tags, each: u32 key number | u32 value code
//!       i64 newest | u64 rows
//!       u8 has latest; if 1: u32 n | n × (u8 present | f64)
//!       u32 chunks, each: chunk
//!       u8 has head; if 1: chunk            (the open head, encoded like a chunk)
//!       u8 has out-of-order head; if 1: chunk
//!     chunk = u32 time block number | [u32 length + block, when the number is new]
//!             | the body of `Chunk::write_body`
//!   kind 2, the end: u32 number of tables | u64 base seq (again, under the checksum)
//! ```
//! `str` is a `u32` length and UTF-8 bytes; integers are little-endian; floats are
//! their IEEE bits. A table's records with WAL seq below its `seq` are in the file;
//! every record below the header's base seq is in it for every table.
//! Timestamp blocks are numbered per table in order of first use and written once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bytes::{Reader, Writer};
use super::record::kind_from_code;
use super::{FormatError, PersistError, io_error, sync_dir};
use crate::model::FieldKind;
use crate::storage::chunk::{Chunk, SharedTimestamps, TimestampInterner};
use crate::storage::head::Head;
use crate::storage::series::SeriesImage;
use crate::storage::table::{FieldDef, TableImage};

const MAGIC: &[u8; 6] = b"MSCKPT";
/// The checkpoint format this build writes and reads.
pub const CHECKPOINT_VERSION: u8 = 1;
const HEADER: usize = 16;
const FRAME_HEADER: usize = 13;
const KIND_TABLE: u8 = 1;
const KIND_END: u8 = 2;

/// The file name of the checkpoint at `base_seq`.
pub(crate) fn checkpoint_path(dir: &Path, base_seq: u64) -> PathBuf {
    dir.join(format!("checkpoint-{base_seq:020}.ckpt"))
}

/// Checkpoints in `dir` as `(base seq, path)`, newest first.
pub(crate) fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>, PersistError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_prefix("checkpoint-"))
            .and_then(|n| n.strip_suffix(".ckpt"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((seq, entry.path()));
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(out)
}

/// Writes a checkpoint file for `base_seq` from the tables `next_table` yields one at
/// a time (so only one table's copy is in memory), then publishes it atomically.
/// Returns the file and its size.
pub(crate) fn write_checkpoint(
    dir: &Path,
    base_seq: u64,
    mut next_table: impl FnMut() -> Option<TableImage>,
) -> Result<(PathBuf, u64), PersistError> {
    let tmp = dir.join(format!("checkpoint-{base_seq:020}.tmp"));
    let file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER];
    header[..6].copy_from_slice(MAGIC);
    header[6] = CHECKPOINT_VERSION;
    header[8..].copy_from_slice(&base_seq.to_le_bytes());
    let mut size = HEADER as u64;
    out.write_all(&header).map_err(|e| io_error(&tmp, e))?;
    let mut tables = 0u32;
    while let Some(image) = next_table() {
        let payload = encode_table(&image);
        size += write_frame(&mut out, KIND_TABLE, &payload).map_err(|e| io_error(&tmp, e))?;
        tables += 1;
    }
    let mut end = Writer::default();
    end.u32(tables);
    end.u64(base_seq);
    size += write_frame(&mut out, KIND_END, &end.buf).map_err(|e| io_error(&tmp, e))?;
    let file = out
        .into_inner()
        .map_err(|e| io_error(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| io_error(&tmp, e))?;
    drop(file);
    let path = checkpoint_path(dir, base_seq);
    std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, e))?;
    sync_dir(dir)?;
    Ok((path, size))
}

fn write_frame(out: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<u64> {
    let mut header = [0u8; FRAME_HEADER];
    header[0] = kind;
    header[1..9].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[9..].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.write_all(&header)?;
    out.write_all(payload)?;
    Ok((FRAME_HEADER + payload.len()) as u64)
}

fn kind_code(kind: FieldKind) -> u8 {
    match kind {
        FieldKind::Counter => 1,
        FieldKind::Gauge => 2,
        FieldKind::Histogram => 3,
    }
}

fn encode_table(image: &TableImage) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(&image.name);
    w.u64(image.seq);
    w.u32(image.fields.len() as u32);
    for f in &image.fields {
        w.str(&f.name);
        w.u8(kind_code(f.kind));
    }
    w.u32(image.tag_keys.len() as u32);
    for (key, values) in image.tag_keys.iter().zip(&image.tag_values) {
        w.str(key);
        w.u32(values.len() as u32);
        for v in values {
            w.str(v);
        }
    }
    let mut blocks = Blocks::new();
    // Heads are encoded like chunks; their timestamp blocks need no sharing.
    let mut interner = TimestampInterner::default();
    w.u32(image.series.len() as u32);
    for s in &image.series {
        w.u32(s.tags.len() as u32);
        for &(k, c) in s.tags.iter() {
            w.u32(k);
            w.u32(c);
        }
        w.i64(s.newest);
        w.u64(s.rows);
        match &s.sealed_last {
            None => w.u8(0),
            Some(row) => {
                w.u8(1);
                w.u32(row.len() as u32);
                for v in row.iter() {
                    w.u8(v.is_some() as u8);
                    w.f64(v.unwrap_or_default());
                }
            }
        }
        w.u32(s.chunks.len() as u32);
        for chunk in &s.chunks {
            write_chunk(&mut w, chunk, &mut blocks);
        }
        for head in [Some(&s.head), s.ooo.as_ref()] {
            match head.filter(|h| !h.is_empty()) {
                None => w.u8(0),
                Some(head) => {
                    w.u8(1);
                    let (chunk, _) = Chunk::seal(head, &mut interner);
                    write_chunk(&mut w, &chunk, &mut blocks);
                }
            }
        }
    }
    w.buf
}

/// Timestamp blocks written so far, by address. Each entry keeps its block alive so
/// that no other block can reuse the address while the table is being written.
type Blocks = HashMap<*const u8, (u32, Arc<[u8]>)>;

fn write_chunk(w: &mut Writer, chunk: &Chunk, blocks: &mut Blocks) {
    let times = chunk.times_shared();
    let next = blocks.len() as u32;
    let number = blocks
        .entry(times.as_ptr())
        .or_insert_with(|| (next, times.clone()))
        .0;
    w.u32(number);
    if number == next {
        w.bytes(times);
    }
    chunk.write_body(w);
}

/// A checkpoint read back.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) base_seq: u64,
    pub(crate) tables: Vec<TableImage>,
}

/// Reads and checks a whole checkpoint file. Chunks share timestamp blocks through
/// `shared` as freshly sealed ones do.
pub(crate) fn read_checkpoint(
    path: &Path,
    shared: &Arc<SharedTimestamps>,
) -> Result<Loaded, PersistError> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    decode_checkpoint(&bytes, shared).map_err(|source| PersistError::Format {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn decode_checkpoint(
    bytes: &[u8],
    shared: &Arc<SharedTimestamps>,
) -> Result<Loaded, FormatError> {
    let mut r = Reader::new(bytes, 0);
    if r.take(6, "checkpoint magic")? != MAGIC {
        return Err(FormatError::Invalid {
            offset: 0,
            message: "not a checkpoint (bad magic)".into(),
        });
    }
    let version = r.u8("checkpoint version")?;
    if version != CHECKPOINT_VERSION {
        return Err(FormatError::Invalid {
            offset: 6,
            message: format!("unsupported checkpoint version {version}"),
        });
    }
    if r.u8("reserved")? != 0 {
        return Err(FormatError::Invalid {
            offset: 7,
            message: "reserved header byte is not zero".into(),
        });
    }
    let base_seq = r.u64("base seq")?;
    let mut tables = Vec::new();
    loop {
        let at = r.offset();
        let kind = r.u8("frame kind")?;
        let len = r.u64("frame length")?;
        let crc = r.u32("frame checksum")?;
        let len = usize::try_from(len).map_err(|_| FormatError::Truncated {
            offset: at,
            what: "frame",
        })?;
        let payload_at = r.offset();
        let payload = r.take(len, "frame payload")?;
        if crc32c::crc32c(payload) != crc {
            return Err(FormatError::Invalid {
                offset: at,
                message: "frame checksum mismatch".into(),
            });
        }
        let mut p = Reader::new(payload, payload_at);
        match kind {
            KIND_TABLE => tables.push(decode_table(&mut p, shared)?),
            KIND_END => {
                let n = p.u32("table count")? as usize;
                let seq = p.u64("base seq")?;
                if n != tables.len() || seq != base_seq || !r.is_empty() {
                    return Err(FormatError::Invalid {
                        offset: at,
                        message: format!(
                            "end frame says {n} tables at seq {seq}, read {} at seq {base_seq}",
                            tables.len()
                        ),
                    });
                }
                return Ok(Loaded { base_seq, tables });
            }
            other => {
                return Err(FormatError::Invalid {
                    offset: at,
                    message: format!("unknown frame kind {other}"),
                });
            }
        }
    }
}

fn decode_table(
    r: &mut Reader<'_>,
    shared: &Arc<SharedTimestamps>,
) -> Result<TableImage, FormatError> {
    let name: Arc<str> = r.str("table name")?.into();
    let seq = r.u64("table seq")?;
    let field_count = r.count(5, "field count")?;
    let mut fields = Vec::with_capacity(field_count);
    for _ in 0..field_count {
        let name: Arc<str> = r.str("field name")?.into();
        let at = r.offset();
        let kind = kind_from_code(r.u8("field kind")?, at)?.ok_or(FormatError::Invalid {
            offset: at,
            message: "field without a kind".into(),
        })?;
        fields.push(FieldDef { name, kind });
    }
    let key_count = r.count(8, "tag key count")?;
    let mut tag_keys = Vec::with_capacity(key_count);
    let mut tag_values = Vec::with_capacity(key_count);
    for _ in 0..key_count {
        tag_keys.push(r.str("tag key")?.into());
        let n = r.count(4, "tag value count")?;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(Arc::<str>::from(r.str("tag value")?));
        }
        tag_values.push(values);
    }
    let mut interner = TimestampInterner::new(shared.clone());
    let mut blocks: Vec<Arc<[u8]>> = Vec::new();
    let series_count = r.count(30, "series count")?;
    let mut series = Vec::with_capacity(series_count);
    for _ in 0..series_count {
        let tag_count = r.count(8, "series tag count")?;
        let mut tags = Vec::with_capacity(tag_count);
        for _ in 0..tag_count {
            tags.push((r.u32("tag key number")?, r.u32("tag value code")?));
        }
        let newest = r.i64("series newest")?;
        let rows = r.u64("series rows")?;
        let sealed_last = match r.u8("latest flag")? {
            0 => None,
            _ => {
                let n = r.count(9, "latest row length")?;
                let mut row = Vec::with_capacity(n);
                for _ in 0..n {
                    let present = r.u8("latest present")? != 0;
                    let v = r.f64("latest value")?;
                    row.push(present.then_some(v));
                }
                Some(row.into_boxed_slice())
            }
        };
        let chunk_count = r.count(30, "chunk count")?;
        let mut chunks = Vec::with_capacity(chunk_count);
        for _ in 0..chunk_count {
            chunks.push(Arc::new(read_chunk(r, &mut blocks, &mut interner)?));
        }
        let head = read_head(r, &mut blocks, &mut interner)?.unwrap_or_default();
        let ooo = read_head(r, &mut blocks, &mut interner)?;
        series.push(SeriesImage {
            tags: tags.into_boxed_slice(),
            chunks,
            head,
            ooo,
            newest,
            sealed_last,
            rows,
        });
    }
    r.end("series")?;
    Ok(TableImage {
        name,
        seq,
        fields,
        tag_keys,
        tag_values,
        series,
    })
}

fn read_chunk(
    r: &mut Reader<'_>,
    blocks: &mut Vec<Arc<[u8]>>,
    interner: &mut TimestampInterner,
) -> Result<Chunk, FormatError> {
    let at = r.offset();
    let number = r.u32("time block number")? as usize;
    if number == blocks.len() {
        let block = r.bytes("time block")?;
        blocks.push(interner.intern_block(block).0);
    }
    let times = blocks.get(number).cloned().ok_or(FormatError::Invalid {
        offset: at,
        message: format!("time block {number} not yet defined"),
    })?;
    Chunk::read_body(r, times)
}

fn read_head(
    r: &mut Reader<'_>,
    blocks: &mut Vec<Arc<[u8]>>,
    interner: &mut TimestampInterner,
) -> Result<Option<Head>, FormatError> {
    if r.u8("head flag")? == 0 {
        return Ok(None);
    }
    let at = r.offset();
    let chunk = read_chunk(r, blocks, interner)?;
    chunk.to_head().map(Some).map_err(|e| FormatError::Invalid {
        offset: at,
        message: e.to_string(),
    })
}

//! Recovery on open: the newest valid checkpoint, then the WAL after it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::bytes::Reader;
use super::checkpoint::{list_checkpoints, read_checkpoint};
use super::wal::{Segment, SegmentEnd, list_segments, read_segment};
use super::{DurabilityConfig, PersistError, io_error, record};
use crate::model::WriteBatch;
use crate::storage::Storage;

/// A damaged record or file that recovery skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct CorruptRecord {
    /// The file.
    pub path: PathBuf,
    /// Byte offset of the damage.
    pub offset: u64,
    /// What was wrong.
    pub message: String,
}

/// What recovery did, logged at start and exported in `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecoveryReport {
    /// The checkpoint loaded, if any.
    pub checkpoint: Option<PathBuf>,
    /// Its base seq (0 without one).
    pub base_seq: u64,
    /// Tables it held.
    pub checkpoint_tables: usize,
    /// WAL records applied.
    pub records_replayed: u64,
    /// WAL records already in the checkpoint.
    pub records_skipped: u64,
    /// Rows applied from the WAL.
    pub rows_replayed: u64,
    /// Torn final records cut off: `(file, offset, bytes removed)`.
    pub torn: Vec<(PathBuf, u64, u64)>,
    /// Damage found; what follows it in that file was not replayed.
    pub corrupt: Vec<CorruptRecord>,
    /// Records that decoded but could not be applied (none in a healthy store).
    pub replay_errors: Vec<String>,
    /// Time taken.
    pub elapsed: Duration,
}

/// Loads `config.dir` into `storage`. Returns the seq the WAL continues at and the
/// segments on disk.
pub(super) fn recover(
    config: &DurabilityConfig,
    storage: &Storage,
) -> Result<(u64, Vec<Segment>, RecoveryReport), PersistError> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    remove_temporaries(&config.dir)?;
    let mut table_seqs: HashMap<String, u64> = HashMap::new();
    for (_, path) in list_checkpoints(&config.dir)? {
        match read_checkpoint(&path, storage.shared_timestamps()) {
            Ok(loaded) => {
                report.base_seq = loaded.base_seq;
                report.checkpoint_tables = loaded.tables.len();
                for t in &loaded.tables {
                    table_seqs.insert(t.name.to_string(), t.seq);
                }
                storage
                    .restore(loaded.tables)
                    .map_err(|e| PersistError::Format {
                        path: path.clone(),
                        source: super::FormatError::Invalid {
                            offset: 0,
                            message: e.to_string(),
                        },
                    })?;
                report.checkpoint = Some(path);
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, "checkpoint unreadable, trying an older one");
                if config.refuse_on_corruption {
                    return Err(PersistError::Refused(e.to_string()));
                }
                report.corrupt.push(CorruptRecord {
                    path: path.clone(),
                    offset: match &e {
                        PersistError::Format { source, .. } => source.offset(),
                        _ => 0,
                    },
                    message: e.to_string(),
                });
            }
        }
    }
    let base = report.base_seq;
    let wal_dir = config.wal_dir();
    let segments = list_segments(&wal_dir)?;
    // A table copied while writers went on may hold records that never reached the
    // WAL file (killed before their group was written). Their seqs must never be
    // handed out again, or the next recovery would skip the new records as covered.
    let mut next_seq = table_seqs.values().copied().fold(base, u64::max);
    for (i, segment) in segments.iter().enumerate() {
        next_seq = next_seq.max(segment.first_seq);
        let last = i + 1 == segments.len();
        if segments
            .get(i + 1)
            .is_some_and(|next| next.first_seq <= base)
        {
            // Every record of this segment is below the checkpoint.
            continue;
        }
        let bytes = std::fs::read(&segment.path).map_err(|e| io_error(&segment.path, e))?;
        let mut replay_failure = None;
        let version = super::wal::segment_version(&bytes);
        let end = read_segment(&bytes, segment.first_seq, last, |seq, payload, offset| {
            next_seq = next_seq.max(seq + 1);
            if seq < base {
                report.records_skipped += 1;
                return;
            }
            let mut reader = Reader::new(payload, offset + super::wal::RECORD_HEADER as u64);
            match record::decode_batch(&mut reader, version) {
                Ok(batch) => {
                    let batch = not_in_checkpoint(batch, seq, &table_seqs);
                    report.rows_replayed += batch.row_count() as u64;
                    report.records_replayed += 1;
                    if let Err(e) = storage.replay(&batch) {
                        report.replay_errors.push(format!("seq {seq}: {e}"));
                    }
                }
                Err(e) if replay_failure.is_none() => replay_failure = Some(e),
                Err(_) => {}
            }
        });
        if let Some(e) = replay_failure {
            report.corrupt.push(CorruptRecord {
                path: segment.path.clone(),
                offset: e.offset(),
                message: format!("record does not decode: {e}"),
            });
        }
        match end {
            SegmentEnd::Clean => {}
            SegmentEnd::Torn { offset } => {
                let dropped = bytes.len() as u64 - offset;
                tracing::warn!(
                    file = %segment.path.display(),
                    offset,
                    bytes = dropped,
                    "WAL ends in a torn record (a crash during a write); truncating it"
                );
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&segment.path)
                    .map_err(|e| io_error(&segment.path, e))?;
                file.set_len(offset)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io_error(&segment.path, e))?;
                report.torn.push((segment.path.clone(), offset, dropped));
            }
            SegmentEnd::Corrupt { offset, message } => {
                tracing::error!(
                    file = %segment.path.display(),
                    offset,
                    %message,
                    "WAL record damaged: the rest of this segment is not replayed"
                );
                report.corrupt.push(CorruptRecord {
                    path: segment.path.clone(),
                    offset,
                    message,
                });
            }
        }
    }
    if config.refuse_on_corruption && !report.corrupt.is_empty() {
        let c = &report.corrupt[0];
        return Err(PersistError::Refused(format!(
            "{} at byte {}: {}",
            c.path.display(),
            c.offset,
            c.message
        )));
    }
    for e in &report.replay_errors {
        tracing::error!(error = %e, "WAL record could not be applied");
    }
    report.elapsed = started.elapsed();
    tracing::info!(
        checkpoint = ?report.checkpoint,
        records = report.records_replayed,
        rows = report.rows_replayed,
        skipped = report.records_skipped,
        ms = report.elapsed.as_millis() as u64,
        "recovered"
    );
    Ok((next_seq, segments, report))
}

/// The items of `batch` (record `seq`) whose tables' checkpoint copies predate it.
fn not_in_checkpoint(batch: WriteBatch, seq: u64, table_seqs: &HashMap<String, u64>) -> WriteBatch {
    let covered = |table: &str| table_seqs.get(table).is_some_and(|&s| seq < s);
    if !batch.items().iter().any(|i| covered(i.table())) {
        return batch;
    }
    let mut kept = WriteBatch::new();
    for item in batch.items() {
        if !covered(item.table()) {
            kept.push(item.clone());
        }
    }
    kept
}

/// Removes checkpoint files a crash left half written.
fn remove_temporaries(dir: &std::path::Path) -> Result<(), PersistError> {
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("checkpoint-") && name.ends_with(".tmp") {
            let path = entry.path();
            tracing::info!(file = %path.display(), "removing an unfinished checkpoint");
            std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(())
}

//! The write-ahead log: numbered records in segment files, written with group commit.
//!
//! ## Files
//! `wal/<first seq, 20 digits>.wal`, each:
//! ```text
//! header  "MSWAL" | u8 version (2) | u16 reserved (0) | u64 first seq      16 bytes
//! record  u32 payload length | u32 CRC32C of (seq ‖ payload) | u64 seq | payload
//! ```
//! All integers little-endian. Sequence numbers rise by one from record to record,
//! across segments. The payload is a write batch ([`super::record`]).
//!
//! ## Group commit
//! A writer frames its record into a shared pending buffer while it holds the locks
//! of the tables it writes, so the log's order is the order the tables saw. It then
//! calls [`Wal::commit`]: the first writer to take the file lock writes the whole
//! pending buffer (every waiting writer's record) in one `write`, and under
//! [`FsyncPolicy::Always`] one `fdatasync`; the others find their record already
//! written when they get the lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{PersistError, io_error, sync_dir};

const MAGIC: &[u8; 5] = b"MSWAL";
/// The WAL format this build writes. It reads this one and version 1 (whose records
/// differ only in their payload, see [`super::record`]).
pub const WAL_VERSION: u8 = 2;
pub(crate) const SEGMENT_HEADER: usize = 16;
pub(crate) const RECORD_HEADER: usize = 16;
/// Larger records are refused on write and taken for corruption on read.
pub(crate) const MAX_RECORD: usize = 1 << 30;

/// When acknowledged writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// `fdatasync` before a write is acknowledged: nothing acknowledged is lost, even
    /// on power failure.
    Always,
    /// Written to the OS before acknowledging, synced every interval: a process crash
    /// loses nothing; a power failure loses at most the last interval.
    #[default]
    Interval,
    /// Written to the OS before acknowledging, never synced by us: a process crash
    /// loses nothing; a power failure loses what the OS had not yet written.
    Never,
}

/// One segment on disk.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
}

pub(crate) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

/// Segments in `dir`, oldest first. Files that are not segments are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<Segment>, PersistError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(first_seq) = stem.parse::<u64>() {
            out.push(Segment {
                first_seq,
                path: entry.path(),
            });
        }
    }
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

fn segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..5].copy_from_slice(MAGIC);
    h[5] = WAL_VERSION;
    h[8..].copy_from_slice(&first_seq.to_le_bytes());
    h
}

fn record_crc(seq: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&seq.to_le_bytes()), payload)
}

/// Appends one framed record to `out`.
pub(crate) fn frame_record(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&record_crc(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// How reading a segment ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SegmentEnd {
    /// Every byte was a whole, valid record.
    Clean,
    /// The file ends inside a record that was being written (at `offset`): a crash
    /// during a write. Only possible in the last segment.
    Torn { offset: u64 },
    /// A record before the end is damaged; nothing after `offset` can be trusted.
    Corrupt { offset: u64, message: String },
}

/// Reads the records of one segment, calling `f(seq, payload, offset)` for each
/// valid one in order. `last` says whether this is the newest segment, where an
/// incomplete final record is a torn write rather than corruption.
pub(crate) fn read_segment(
    bytes: &[u8],
    first_seq: u64,
    last: bool,
    mut f: impl FnMut(u64, &[u8], u64),
) -> SegmentEnd {
    if bytes.len() < SEGMENT_HEADER {
        // A segment is created with its header in one write; a shorter file is a
        // crash during creation and holds no records.
        return if last {
            SegmentEnd::Torn { offset: 0 }
        } else {
            SegmentEnd::Corrupt {
                offset: 0,
                message: "segment header truncated".into(),
            }
        };
    }
    if &bytes[..5] != MAGIC {
        return SegmentEnd::Corrupt {
            offset: 0,
            message: "not a WAL segment (bad magic)".into(),
        };
    }
    if bytes[6..8] != [0, 0] {
        return SegmentEnd::Corrupt {
            offset: 6,
            message: "reserved header bytes are not zero".into(),
        };
    }
    if !(1..=WAL_VERSION).contains(&bytes[5]) {
        return SegmentEnd::Corrupt {
            offset: 5,
            message: format!("unsupported WAL version {}", bytes[5]),
        };
    }
    let header_seq = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    if header_seq != first_seq {
        return SegmentEnd::Corrupt {
            offset: 8,
            message: format!("header says first seq {header_seq}, file name {first_seq}"),
        };
    }
    let mut pos = SEGMENT_HEADER;
    let mut expected = first_seq;
    while pos < bytes.len() {
        let offset = pos as u64;
        let rest = &bytes[pos..];
        let torn_or = |message: String| {
            if last {
                SegmentEnd::Torn { offset }
            } else {
                SegmentEnd::Corrupt { offset, message }
            }
        };
        if rest.len() < RECORD_HEADER {
            return torn_or("record header truncated".into());
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        let seq = u64::from_le_bytes(rest[8..16].try_into().unwrap_or_default());
        if len > MAX_RECORD {
            return SegmentEnd::Corrupt {
                offset,
                message: format!("record length {len} is implausible"),
            };
        }
        let end = RECORD_HEADER + len;
        if rest.len() < end {
            return torn_or(format!(
                "record of {len} bytes truncated after {}",
                rest.len() - RECORD_HEADER
            ));
        }
        let payload = &rest[RECORD_HEADER..end];
        if record_crc(seq, payload) != crc {
            // A bad checksum on the very last record of the newest segment is a write
            // cut short (pages reach the disk in any order); anywhere else it is damage.
            if last && rest.len() == end {
                return SegmentEnd::Torn { offset };
            }
            return SegmentEnd::Corrupt {
                offset,
                message: "checksum mismatch".into(),
            };
        }
        if seq != expected {
            return SegmentEnd::Corrupt {
                offset,
                message: format!("record seq {seq}, expected {expected}"),
            };
        }
        f(seq, payload, offset);
        expected += 1;
        pos += end;
    }
    SegmentEnd::Clean
}

/// Records framed but not yet written.
#[derive(Debug)]
struct Pending {
    buf: Vec<u8>,
    /// Seq of the first record in `buf`.
    first_seq: u64,
    next_seq: u64,
}

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    file: File,
    /// Another handle of `file`, so the interval sync runs without the file lock.
    sync: Arc<File>,
    size: u64,
    segments: Vec<Segment>,
    spare: Vec<u8>,
}

/// An open write-ahead log.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    policy: FsyncPolicy,
    segment_bytes: u64,
    pending: Mutex<Pending>,
    active: Mutex<Active>,
    /// Set when a write failed: the file's tail is unknown, so nothing more is appended.
    failed: Mutex<Option<String>>,
    /// Every record with a lower seq is written (and synced under `Always`).
    written: AtomicU64,
}

impl Wal {
    /// Starts a new segment at `next_seq` after the existing `segments`.
    pub(crate) fn open(
        dir: &Path,
        next_seq: u64,
        mut segments: Vec<Segment>,
        policy: FsyncPolicy,
        segment_bytes: u64,
    ) -> Result<Wal, PersistError> {
        // A leftover empty segment with the same name (a crash right after creating
        // it) is replaced.
        segments.retain(|s| s.first_seq != next_seq);
        let (file, segment) = create_segment(dir, next_seq)?;
        segments.push(segment);
        let sync = Arc::new(file.try_clone().map_err(|e| io_error(dir, e))?);
        Ok(Wal {
            dir: dir.to_path_buf(),
            policy,
            segment_bytes: segment_bytes.max(SEGMENT_HEADER as u64 + 1),
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                first_seq: next_seq,
                next_seq,
            }),
            active: Mutex::new(Active {
                file,
                sync,
                size: SEGMENT_HEADER as u64,
                segments,
                spare: Vec::new(),
            }),
            failed: Mutex::new(None),
            written: AtomicU64::new(next_seq),
        })
    }

    /// The seq the next record will get: every record below it has been appended.
    pub(crate) fn next_seq(&self) -> u64 {
        self.pending.lock().next_seq
    }

    /// Frames `payload` as the next record and returns its seq. Call while holding the
    /// locks that order the write; the record is durable only after [`Wal::commit`].
    pub(crate) fn append(&self, payload: &[u8]) -> Result<u64, PersistError> {
        if payload.len() > MAX_RECORD {
            return Err(PersistError::RecordTooLarge(payload.len()));
        }
        self.check_failed()?;
        let mut pending = self.pending.lock();
        let seq = pending.next_seq;
        frame_record(&mut pending.buf, seq, payload);
        pending.next_seq += 1;
        Ok(seq)
    }

    /// Returns once record `seq` is written (and synced under `Always`), writing every
    /// pending record if no other writer is already doing so.
    pub(crate) fn commit(&self, seq: u64) -> Result<(), PersistError> {
        if self.written.load(Ordering::Acquire) > seq {
            return Ok(());
        }
        let mut active = self.active.lock();
        self.check_failed()?;
        if self.written.load(Ordering::Acquire) > seq {
            return Ok(());
        }
        let (mut buf, first, next) = {
            let mut pending = self.pending.lock();
            let spare = std::mem::take(&mut active.spare);
            let buf = std::mem::replace(&mut pending.buf, spare);
            let next = pending.next_seq;
            let first = std::mem::replace(&mut pending.first_seq, next);
            (buf, first, pending.next_seq)
        };
        let result = self.write_group(&mut active, &buf, first);
        buf.clear();
        active.spare = buf;
        match result {
            Ok(()) => {
                self.written.store(next, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                *self.failed.lock() = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn check_failed(&self) -> Result<(), PersistError> {
        match &*self.failed.lock() {
            Some(message) => Err(PersistError::Failed(message.clone())),
            None => Ok(()),
        }
    }

    fn write_group(&self, active: &mut Active, buf: &[u8], first: u64) -> Result<(), PersistError> {
        if buf.is_empty() {
            return Ok(());
        }
        if active.size >= self.segment_bytes {
            self.roll(active, first)?;
        }
        let path = self.active_path(active);
        active.file.write_all(buf).map_err(|e| io_error(&path, e))?;
        active.size += buf.len() as u64;
        if self.policy == FsyncPolicy::Always {
            active.file.sync_data().map_err(|e| io_error(&path, e))?;
        }
        Ok(())
    }

    fn active_path(&self, active: &Active) -> PathBuf {
        active
            .segments
            .last()
            .map_or_else(|| self.dir.clone(), |s| s.path.clone())
    }

    /// Closes the active segment (synced, so later segments never outlive it) and
    /// starts one at `first_seq`.
    fn roll(&self, active: &mut Active, first_seq: u64) -> Result<(), PersistError> {
        let old = self.active_path(active);
        if self.policy != FsyncPolicy::Never {
            active.file.sync_data().map_err(|e| io_error(&old, e))?;
        }
        let (file, segment) = create_segment(&self.dir, first_seq)?;
        active.sync = Arc::new(file.try_clone().map_err(|e| io_error(&segment.path, e))?);
        active.file = file;
        active.size = SEGMENT_HEADER as u64;
        active.segments.push(segment);
        Ok(())
    }

    /// Writes pending records and syncs the active segment (the interval sync, and
    /// shutdown). The sync itself runs without the file lock.
    pub(crate) fn sync(&self) -> Result<(), PersistError> {
        let next = self.next_seq();
        if next > 0 {
            self.commit(next - 1)?;
        }
        let (sync, path) = {
            let active = self.active.lock();
            (active.sync.clone(), self.active_path(&active))
        };
        sync.sync_data().map_err(|e| io_error(&path, e))
    }

    /// Deletes segments whose records all have seqs below `seq` (the active segment
    /// always stays). Returns how many were deleted.
    pub(crate) fn trim_below(&self, seq: u64) -> Result<usize, PersistError> {
        let doomed: Vec<Segment> = {
            let mut active = self.active.lock();
            let n = active.segments.len();
            // Segment i holds seqs [first_i, first_{i+1}).
            let keep_from = (0..n.saturating_sub(1))
                .find(|&i| active.segments[i + 1].first_seq > seq)
                .unwrap_or(n.saturating_sub(1));
            active.segments.drain(..keep_from).collect()
        };
        for s in &doomed {
            match std::fs::remove_file(&s.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&s.path, e)),
            }
        }
        if !doomed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(doomed.len())
    }

    /// The fsync policy in force.
    pub(crate) fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Number of segment files.
    pub(crate) fn segment_count(&self) -> usize {
        self.active.lock().segments.len()
    }
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<(File, Segment), PersistError> {
    let path = segment_path(dir, first_seq);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    file.write_all(&segment_header(first_seq))
        .map_err(|e| io_error(&path, e))?;
    file.sync_data().map_err(|e| io_error(&path, e))?;
    sync_dir(dir)?;
    Ok((file, Segment { first_seq, path }))
}

/// The format version of a segment whose header [`read_segment`] accepted.
pub(crate) fn segment_version(bytes: &[u8]) -> u8 {
    bytes.get(5).copied().unwrap_or(WAL_VERSION)
}

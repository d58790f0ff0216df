//! Durability of the hot tier: a write-ahead log, checkpoints, and recovery.
//!
//! ```text
//!  write ─► plan ─► WAL append (under the tables' locks: log order = apply order)
//!               └─► apply ─► unlock ─► WAL commit (group write, fsync per policy) ─► ack
//!
//!  checkpoint: base = next seq ─► each table copied under its read lock with its own
//!              seq ─► checkpoint-<base>.ckpt (tmp, fsync, rename) ─► WAL below base deleted
//!
//!  recovery:   newest valid checkpoint ─► WAL records ≥ base, each table's part only
//!              from that table's seq on ─► torn tail truncated, corruption reported
//! ```
//! Files under the data directory: `wal/<seq>.wal` ([`wal`]) and
//! `checkpoint-<seq>.ckpt` ([`checkpoint`]). Both formats carry a version byte and
//! CRC32C checksums.
//!
//! Replay writes with the limits off (out-of-order window, memory, cardinality): every
//! record was accepted once, and refusing it now would lose acknowledged data. Because
//! a duplicate timestamp overwrites with the same values, replaying a record twice
//! changes nothing, so recovery is idempotent.

pub(crate) mod bytes;
pub mod checkpoint;
pub(crate) mod record;
mod recovery;
#[cfg(test)]
mod tests;
pub mod wal;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use recovery::{CorruptRecord, RecoveryReport};
pub use wal::FsyncPolicy;

use super::Storage;
use crate::model::{Error, WriteBatch};
use wal::Wal;

/// Bytes that failed to parse, with where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatError {
    /// The data ends before a value.
    #[error("truncated at byte {offset} reading {what}")]
    Truncated {
        /// File offset where the value starts.
        offset: u64,
        /// What was being read.
        what: &'static str,
    },
    /// A value is impossible.
    #[error("at byte {offset}: {message}")]
    Invalid {
        /// File offset.
        offset: u64,
        /// What is wrong.
        message: String,
    },
}

impl FormatError {
    /// File offset of the damage.
    pub fn offset(&self) -> u64 {
        match self {
            FormatError::Truncated { offset, .. } | FormatError::Invalid { offset, .. } => *offset,
        }
    }
}

/// Why the WAL or a checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's contents are damaged or of an unknown version.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What and where.
        source: FormatError,
    },
    /// An earlier WAL write failed; no more writes are accepted until restart.
    #[error("write-ahead log unavailable after an earlier failure: {0}")]
    Failed(String),
    /// A single batch larger than a WAL record may be.
    #[error("batch of {0} bytes exceeds the largest WAL record")]
    RecordTooLarge(usize),
    /// Recovery found damage and the configuration says not to start.
    #[error("refusing to start: {0}")]
    Refused(String),
    /// Another process has the data directory open.
    #[error("data directory {0} is in use by another process (it holds the LOCK file)")]
    Locked(PathBuf),
}

impl From<PersistError> for Error {
    fn from(e: PersistError) -> Error {
        match e {
            PersistError::RecordTooLarge(_) => Error::InvalidWrite(e.to_string()),
            other => Error::Durability(other.to_string()),
        }
    }
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> PersistError {
    PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes a rename or a file creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), PersistError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Largest WAL payload buffer a thread keeps between writes.
const SCRATCH_KEEP: usize = 32 << 20;

thread_local! {
    static PAYLOAD_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Where and how the hot tier is made durable.
#[derive(Debug, Clone, PartialEq)]
pub struct DurabilityConfig {
    /// The data directory: `wal/` and checkpoint files go below it.
    pub dir: PathBuf,
    /// When acknowledged writes reach the disk.
    pub fsync: FsyncPolicy,
    /// How often [`FsyncPolicy::Interval`] syncs.
    pub fsync_interval: Duration,
    /// A WAL segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
    /// How often a checkpoint is written; `None`: only on request and at shutdown.
    pub checkpoint_interval: Option<Duration>,
    /// Refuse to start when recovery finds a damaged checkpoint or WAL record,
    /// instead of starting with what could be read.
    pub refuse_on_corruption: bool,
}

impl DurabilityConfig {
    /// Defaults for a data directory: fsync every second, 64 MiB segments, a
    /// checkpoint every five minutes, start despite damage.
    pub fn new(dir: impl Into<PathBuf>) -> DurabilityConfig {
        DurabilityConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_secs(1),
            segment_bytes: 64 << 20,
            checkpoint_interval: Some(Duration::from_secs(300)),
            refuse_on_corruption: false,
        }
    }

    fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }
}

/// What a checkpoint wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    /// The file.
    pub path: PathBuf,
    /// WAL records below this seq are in it.
    pub base_seq: u64,
    /// File size.
    pub bytes: u64,
    /// WAL segments deleted after it.
    pub segments_removed: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// Counters of the durability layer, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurabilityStats {
    /// WAL segment files on disk.
    pub wal_segments: usize,
    /// The seq the next record gets.
    pub wal_next_seq: u64,
    /// Checkpoints written since start.
    pub checkpoints: u64,
    /// The last checkpoint, if any since start.
    pub last_checkpoint: Option<CheckpointInfo>,
}

/// The WAL and checkpoints of one store.
#[derive(Debug)]
pub(crate) struct Durability {
    config: DurabilityConfig,
    /// An exclusive lock on `<dir>/LOCK` for as long as the store is open: two
    /// processes appending to one WAL would interleave records and lose data. The OS
    /// releases it when the process dies, so a crash never leaves it stale.
    _lock: std::fs::File,
    wal: Wal,
    /// Held while a checkpoint is written: one at a time.
    running: Mutex<()>,
    stats: Mutex<DurabilityStats>,
}

impl Durability {
    /// Recovers `storage` (which must be empty) from `config.dir` and opens the WAL
    /// after what was recovered.
    pub(crate) fn open(
        config: DurabilityConfig,
        storage: &Storage,
    ) -> Result<(Durability, RecoveryReport), PersistError> {
        let wal_dir = config.wal_dir();
        std::fs::create_dir_all(&wal_dir).map_err(|e| io_error(&wal_dir, e))?;
        let lock_path = config.dir.join("LOCK");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_error(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(PersistError::Locked(config.dir.clone()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&lock_path, e)),
        }
        let (next_seq, segments, report) = recovery::recover(&config, storage)?;
        let wal = Wal::open(
            &wal_dir,
            next_seq,
            segments,
            config.fsync,
            config.segment_bytes,
        )?;
        Ok((
            Durability {
                config,
                _lock: lock,
                wal,
                running: Mutex::new(()),
                stats: Mutex::new(DurabilityStats::default()),
            },
            report,
        ))
    }

    /// Writes `batch` to `storage` and logs it; returns once the log has it as the
    /// fsync policy requires. On error nothing was acknowledged; the batch may still
    /// be in memory (if the log failed after applying), never half of it.
    ///
    /// With `refused`, items that fail their checks are left out (see
    /// [`Storage::write_partial`]) and only the others are logged.
    pub(crate) fn write(
        &self,
        storage: &Storage,
        batch: &WriteBatch,
        refused: Option<&mut Vec<(usize, Error)>>,
    ) -> crate::Result<()> {
        // Encoded before taking any lock, into a buffer the thread keeps (fresh
        // buffers cost page faults); re-encoded under the locks only when some items
        // were refused.
        let mut payload = bytes::Writer {
            buf: PAYLOAD_SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut())),
        };
        payload.buf.clear();
        record::encode_batch(batch, &mut payload);
        let seq = storage.write_logged(batch, refused, |refused| {
            if refused.is_empty() {
                return self.wal.append(&payload.buf).map_err(Error::from);
            }
            let mut kept = WriteBatch::new();
            let mut positions: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
            positions.sort_unstable();
            for (i, item) in batch.items().iter().enumerate() {
                if positions.binary_search(&i).is_err() {
                    kept.push(item.clone());
                }
            }
            let mut payload = bytes::Writer::default();
            record::encode_batch(&kept, &mut payload);
            self.wal.append(&payload.buf).map_err(Error::from)
        });
        if payload.buf.capacity() <= SCRATCH_KEEP {
            PAYLOAD_SCRATCH.with(|s| *s.borrow_mut() = payload.buf);
        }
        let seq = seq?;
        if let Some(seq) = seq {
            self.wal.commit(seq)?;
        }
        Ok(())
    }

    /// Writes a checkpoint of `storage`, then deletes older checkpoints and the WAL
    /// segments it covers.
    pub(crate) fn checkpoint(&self, storage: &Storage) -> Result<CheckpointInfo, PersistError> {
        let _running = self.running.lock();
        let started = Instant::now();
        let (base_seq, tables) = storage.checkpoint_tables(|| self.wal.next_seq());
        let mut tables = tables.into_iter();
        let (path, bytes) = checkpoint::write_checkpoint(&self.config.dir, base_seq, || {
            tables
                .next()
                .map(|t| storage.table_image(&t, || self.wal.next_seq()))
        })?;
        for (seq, old) in checkpoint::list_checkpoints(&self.config.dir)? {
            if seq < base_seq {
                std::fs::remove_file(&old).map_err(|e| io_error(&old, e))?;
            }
        }
        let segments_removed = self.wal.trim_below(base_seq)?;
        let info = CheckpointInfo {
            path,
            base_seq,
            bytes,
            segments_removed,
            elapsed: started.elapsed(),
        };
        {
            let mut stats = self.stats.lock();
            stats.checkpoints += 1;
            stats.last_checkpoint = Some(info.clone());
        }
        tracing::info!(
            base_seq,
            bytes,
            segments_removed,
            ms = info.elapsed.as_millis() as u64,
            "checkpoint written"
        );
        Ok(info)
    }

    /// Writes and syncs every logged record.
    pub(crate) fn sync(&self) -> Result<(), PersistError> {
        self.wal.sync()
    }

    pub(crate) fn config(&self) -> &DurabilityConfig {
        &self.config
    }

    pub(crate) fn stats(&self) -> DurabilityStats {
        let mut stats = self.stats.lock().clone();
        stats.wal_segments = self.wal.segment_count();
        stats.wal_next_seq = self.wal.next_seq();
        stats
    }

    /// The policy in force (the interval task runs only for `Interval`).
    pub(crate) fn fsync_policy(&self) -> FsyncPolicy {
        self.wal.policy()
    }
}

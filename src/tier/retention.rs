//! Raw retention: cold raw rows older than their series' `raw_for` are deleted.
//!
//! Retention works per file, that is per table and UTC day, as Prometheus deletes
//! whole blocks: a series' rows in a file go once the file's newest row is past the
//! series' retention. A file all of whose series are past retention is deleted; a
//! file where only some are (series selectors give different `raw_for`) is rewritten
//! without them under a new name. Either way the manifest commit comes first and the
//! old object is deleted only after the queries planned on the old manifest have
//! started, like the hot rows a tiering run drops. `raw_deleted_before` in the
//! manifest records up to when raw rows may be missing, so rollup-aware queries know
//! where raw data is no longer complete. Rollup files go whole once every policy
//! listing their level has its `keep_for` past the file's newest bucket.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, TimestampMillisecondType};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::parquet::{encode, parquet_error};
use super::{ColdTier, FileEntry, Manifest, Policies, TierError};
use crate::model::TIME_COLUMN;

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Raw rows deleted.
    pub rows: u64,
    /// Files deleted whole.
    pub files_deleted: usize,
    /// Files rewritten without some series.
    pub files_rewritten: usize,
    /// Rollup files deleted past their level's `keep_for`.
    pub level_files_deleted: usize,
    /// Files the manifest no longer references whose deletion failed; the next
    /// tiering run's garbage collection deletes them.
    pub left_behind: usize,
}

/// Rollup rows of level `name` ending before the returned time may go: every policy
/// of the table that lists the level keeps it for a bounded time (a policy that keeps
/// it forever, or no policy listing it any more, keeps the files).
fn level_cutoff(list: &[&super::RetentionPolicy], name: &str, now_ms: i64) -> Option<i64> {
    let mut longest: Option<i64> = None;
    for p in list {
        if let Some(level) = p.levels.iter().find(|l| l.name() == name) {
            let keep = level.keep_for?.as_millis() as i64;
            longest = Some(longest.map_or(keep, |l| l.max(keep)));
        }
    }
    longest.map(|keep| now_ms.saturating_sub(keep))
}

/// What to do with one file.
enum Verdict {
    Keep,
    Delete,
    /// Drop the rows of series whose policy is one of these (indexes into the
    /// table's policy list).
    Rewrite(Vec<usize>),
}

fn verdict(file: &FileEntry, cutoffs: &[Option<i64>]) -> Verdict {
    let expiring: Vec<usize> = cutoffs
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_some_and(|c| file.max_time < c))
        .map(|(i, _)| i)
        .collect();
    if expiring.is_empty() {
        Verdict::Keep
    } else if expiring.len() == cutoffs.len() {
        Verdict::Delete
    } else {
        Verdict::Rewrite(expiring)
    }
}

impl ColdTier {
    /// Deletes raw rows past retention as of `now_ms`. Called by each tiering run.
    pub(super) async fn expire(&self, now_ms: i64) -> Result<Expired, TierError> {
        let policies = self.config.read().policies.clone();
        let old = self.manifest();
        let mut next = (*old).clone();
        next.version += 1;
        let version = next.version;
        let mut expired = Expired::default();
        let mut garbage = Vec::new();
        for (table, entry) in next.tables.iter_mut() {
            let list = policies.for_table(table);
            for (name, level) in entry.levels.iter_mut() {
                let Some(cutoff) = level_cutoff(&list, name, now_ms) else {
                    continue;
                };
                let width = level.width_ms;
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut level.files)
                    .into_iter()
                    .partition(|f| f.max_time.saturating_add(width) <= cutoff);
                level.files = kept;
                expired.level_files_deleted += gone.len();
                garbage.extend(gone.into_iter().map(|f| f.path));
            }
            let cutoffs: Vec<Option<i64>> = list
                .iter()
                .map(|p| {
                    p.raw_for
                        .map(|d| now_ms.saturating_sub(d.as_millis() as i64))
                })
                .collect();
            if cutoffs.iter().all(Option::is_none) {
                continue;
            }
            // Raw files only: rollup levels were handled above.
            let mut kept = Vec::with_capacity(entry.files.len());
            for file in std::mem::take(&mut entry.files) {
                match verdict(&file, &cutoffs) {
                    Verdict::Keep => kept.push(file),
                    Verdict::Delete => {
                        expired.rows += file.rows;
                        expired.files_deleted += 1;
                        mark_deleted(&mut entry.raw_deleted_before, &file);
                        garbage.push(file.path);
                    }
                    Verdict::Rewrite(expiring) => {
                        let rewritten = self
                            .rewrite(table, &file, &policies, &expiring, version)
                            .await?;
                        match rewritten {
                            None => kept.push(file),
                            Some(new) => {
                                expired.rows += file.rows - new.as_ref().map_or(0, |n| n.rows);
                                expired.files_rewritten += 1;
                                mark_deleted(&mut entry.raw_deleted_before, &file);
                                kept.extend(new);
                                garbage.push(file.path);
                            }
                        }
                    }
                }
            }
            entry.files = kept;
        }
        if garbage.is_empty() {
            return Ok(expired);
        }
        next.commit(self.store.as_ref(), &self.root).await?;
        *self.manifest.write() = Arc::new(next);
        Manifest::remove_older(self.store.as_ref(), &self.root, old.version).await;
        wait_for_readers(old).await;
        for path in garbage {
            // A leftover is harmless: the next run's garbage collection deletes it.
            if let Err(e) = self.store.delete(&Path::from(path.clone())).await {
                tracing::warn!(path, error = %e, "could not delete an expired cold file");
                expired.left_behind += 1;
            }
        }
        Ok(expired)
    }

    /// `file` without the rows of series whose policy is in `expiring`: `None` when
    /// no row goes, `Some(None)` when every row goes.
    async fn rewrite(
        &self,
        table: &str,
        file: &FileEntry,
        policies: &Policies,
        expiring: &[usize],
        version: u64,
    ) -> Result<Option<Option<FileEntry>>, TierError> {
        let bytes = self
            .store
            .get(&Path::from(file.path.as_str()))
            .await?
            .bytes()
            .await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| parquet_error(table, e))?;
        let mut batches = Vec::new();
        for batch in reader {
            batches.push(batch.map_err(|e| parquet_error(table, e))?);
        }
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        let schema = first.schema();
        let batch = arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| parquet_error(table, e))?;
        let keep = keep_mask(table, &batch, policies, expiring)?;
        if keep.true_count() == batch.num_rows() {
            return Ok(None);
        }
        if keep.true_count() == 0 {
            return Ok(Some(None));
        }
        let kept = filter_record_batch(&batch, &keep).map_err(|e| parquet_error(table, e))?;
        let time = schema
            .index_of(TIME_COLUMN)
            .map_err(|e| parquet_error(table, e))?;
        let times = kept.column(time).as_primitive::<TimestampMillisecondType>();
        let encoded = encode(&kept, time).map_err(|e| parquet_error(table, e))?;
        let stem = file.path.strip_suffix(".parquet").unwrap_or(&file.path);
        // A new name per manifest version: queries on the old manifest still read
        // the old object.
        let path = format!("{stem}.v{version}.parquet");
        let size = encoded.len() as u64;
        self.store
            .put(&Path::from(path.as_str()), encoded.into())
            .await?;
        Ok(Some(Some(FileEntry {
            path,
            min_time: times
                .values()
                .iter()
                .copied()
                .min()
                .unwrap_or(file.min_time),
            max_time: times
                .values()
                .iter()
                .copied()
                .max()
                .unwrap_or(file.max_time),
            rows: kept.num_rows() as u64,
            bytes: size,
        })))
    }
}

/// Which rows of `batch` survive: those whose series' policy is not expiring.
fn keep_mask(
    table: &str,
    batch: &RecordBatch,
    policies: &Policies,
    expiring: &[usize],
) -> Result<BooleanArray, TierError> {
    let schema = batch.schema();
    let time = schema
        .index_of(TIME_COLUMN)
        .map_err(|e| parquet_error(table, e))?;
    let tags: Vec<(String, arrow::array::ArrayRef)> = (0..time)
        .map(|c| {
            let column = cast(batch.column(c), &DataType::Utf8)?;
            Ok((schema.field(c).name().clone(), column))
        })
        .collect::<Result<_, arrow::error::ArrowError>>()
        .map_err(|e| parquet_error(table, e))?;
    let list = policies.for_table(table);
    let same_tags = |a: usize, b: usize| {
        tags.iter().all(|(_, column)| {
            let column = column.as_string::<i32>();
            column.is_valid(a) == column.is_valid(b)
                && (!column.is_valid(a) || column.value(a) == column.value(b))
        })
    };
    let mut keep = Vec::with_capacity(batch.num_rows());
    // Rows are sorted by tags: the policy is resolved once per series, when the
    // tags change from the row before.
    let mut previous: Option<(usize, bool)> = None;
    for row in 0..batch.num_rows() {
        if let Some((prev, decision)) = previous
            && same_tags(prev, row)
        {
            keep.push(decision);
            continue;
        }
        let lookup = |name: &str| {
            let (_, column) = tags.iter().find(|(n, _)| n == name)?;
            let column = column.as_string::<i32>();
            column.is_valid(row).then(|| column.value(row))
        };
        let policy = policies.for_series(table, lookup);
        let index = list.iter().position(|p| std::ptr::eq(*p, policy));
        let decision = !index.is_some_and(|i| expiring.contains(&i));
        keep.push(decision);
        previous = Some((row, decision));
    }
    Ok(BooleanArray::from(keep))
}

/// Raw rows before the end of `file` may now be missing.
fn mark_deleted(slot: &mut Option<i64>, file: &FileEntry) {
    let until = file.max_time.saturating_add(1);
    *slot = Some(slot.map_or(until, |t| t.max(until)));
}

/// Waits (bounded) until no query holds `old` any more: those queries may still
/// open files or take hot snapshots the newer manifest no longer covers.
pub(super) async fn wait_for_readers(old: Arc<Manifest>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

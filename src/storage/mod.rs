//! The hot tier: tables of series in memory, compressed into sealed chunks.
//!
//! ```text
//!  WriteBatch ──plan (validate, limits)──► apply ──► Series: head ──seal──► Chunk (codec)
//!                                                        │                    │
//!  Matchers ──► LabelIndex ──► series ids ──► TableSnapshot (Arc<Chunk>s + head streams)
//!                                                        └──► SnapshotReader ──► RecordBatch
//! ```
//!
//! [`Storage`] owns the tables. Each table sits behind its own lock; a write locks the
//! tables it touches in name order, plans the whole batch, reserves memory, and only
//! then applies it, so a batch is stored whole or not at all. Readers take a snapshot
//! under a read lock and decode without it.
//!
//! This module knows nothing of DataFusion or of protocols.

mod buckets;
pub mod chunk;
pub mod codec;
mod config;
mod head;
pub mod index;
mod labels;
mod open_head;
pub mod persist;
mod series;
mod snapshot;
mod stats;
mod table;
mod tags;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;

pub use buckets::{BucketReads, BucketRow, BucketSpec, FieldStats};
pub use config::StorageConfig;
pub use index::{LabelIndex, MatchOp, Matcher};
pub use snapshot::{
    ChunkFilter, LatestBound, ReadOptions, SelectionCounts, SeriesSnapshot, SnapshotReader,
    TableSnapshot, TimeRange, arrow_schema, tag_type, time_type,
};
pub use stats::{StoreStats, TableStats};
pub use table::FieldDef;

use crate::model::{Error, NameKind, Result, SeriesWrite, WriteBatch, validate_name};
use table::Table;

/// Series [`Storage::sampled_density`] reads at most.
pub const DENSITY_SAMPLE: usize = 16;

/// All hot tables, with the memory budget they share.
#[derive(Debug)]
pub struct Storage {
    config: StorageConfig,
    tables: RwLock<BTreeMap<Arc<str>, Arc<Table>>>,
    /// Held by writes that create tables, so two batches never create the same one.
    create: Mutex<()>,
    memory: AtomicUsize,
    /// Timestamp blocks shared by the chunks of every table.
    timestamps: Arc<chunk::SharedTimestamps>,
}

impl Storage {
    /// An empty store.
    pub fn new(config: StorageConfig) -> Storage {
        Storage {
            config,
            tables: RwLock::new(BTreeMap::new()),
            create: Mutex::new(()),
            memory: AtomicUsize::new(0),
            timestamps: Arc::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// Stores every row of `batch`, or none of them.
    ///
    /// Fails with [`Error::BatchItem`] naming the first bad item, or with
    /// [`Error::MemoryLimit`] when the batch would not fit; the store is then unchanged.
    /// A row whose series already has a row at the same time replaces the fields it
    /// carries (last write wins); its other fields keep their values.
    pub fn write(&self, batch: &WriteBatch) -> Result<()> {
        self.write_inner(batch, &self.config, None, |_| Ok(()))
            .map(|_| ())
    }

    /// Stores every item of `batch` that passes its checks and returns the others,
    /// each with its position in the batch and why it was refused (out-of-order
    /// window, cardinality limits, invalid names). The memory limit still refuses the
    /// whole batch, so that a client retrying it loses nothing.
    pub fn write_partial(&self, batch: &WriteBatch) -> Result<Vec<(usize, Error)>> {
        let mut refused = Vec::new();
        self.write_inner(batch, &self.config, Some(&mut refused), |_| Ok(()))?;
        Ok(refused)
    }

    /// Like [`Storage::write`] (or [`Storage::write_partial`] when `refused` is given),
    /// calling `log` with the refused items once the rest has passed every check and
    /// before any of it is applied, while the locks of its tables are held (so the
    /// log sees writes to a table in the order they apply). If `log` fails, nothing is
    /// stored. Returns `log`'s result, `None` when there was nothing to store.
    pub(crate) fn write_logged<T>(
        &self,
        batch: &WriteBatch,
        refused: Option<&mut Vec<(usize, Error)>>,
        log: impl FnOnce(&[(usize, Error)]) -> Result<T>,
    ) -> Result<Option<T>> {
        self.write_inner(batch, &self.config, refused, log)
    }

    /// Applies a batch that was accepted before (WAL replay): no out-of-order window,
    /// memory or cardinality limit applies, because refusing it would lose data that
    /// was acknowledged.
    pub(crate) fn replay(&self, batch: &WriteBatch) -> Result<()> {
        let config = StorageConfig {
            out_of_order_window_ms: i64::MAX,
            memory_limit: None,
            max_series_per_table: None,
            max_tag_values_per_key: None,
            ..self.config.clone()
        };
        self.write_inner(batch, &config, None, |_| Ok(()))
            .map(|_| ())
    }

    fn write_inner<T>(
        &self,
        batch: &WriteBatch,
        config: &StorageConfig,
        mut refused: Option<&mut Vec<(usize, Error)>>,
        log: impl FnOnce(&[(usize, Error)]) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut by_table: BTreeMap<&str, Vec<(usize, &SeriesWrite)>> = BTreeMap::new();
        for (i, item) in batch.items().iter().enumerate() {
            if !item.is_empty() {
                by_table.entry(item.table()).or_default().push((i, item));
            }
        }
        if by_table.is_empty() {
            return Ok(None);
        }
        let creates = {
            let tables = self.tables.read();
            by_table.keys().any(|name| !tables.contains_key(*name))
        };
        let _create = creates.then(|| self.create.lock());
        let mut tables: Vec<(Arc<Table>, bool)> = Vec::with_capacity(by_table.len());
        {
            let existing = self.tables.read();
            let mut bad_names = Vec::new();
            for (name, items) in &by_table {
                match existing.get(*name) {
                    Some(t) => tables.push((t.clone(), false)),
                    None => match validate_name(NameKind::Table, name) {
                        Ok(()) => {
                            tables.push((Arc::new(Table::new(name, self.timestamps.clone())), true))
                        }
                        Err(e) => match refused.as_deref_mut() {
                            None => return Err(e.at_item(items[0].0, name)),
                            Some(refused) => {
                                let reason = e.to_string();
                                refused.extend(items.iter().map(|&(i, _)| {
                                    (i, Error::InvalidWrite(reason.clone()).at_item(i, name))
                                }));
                                bad_names.push(*name);
                            }
                        },
                    },
                }
            }
            for name in bad_names {
                by_table.remove(name);
            }
        }
        let mut guards: Vec<_> = tables.iter().map(|(t, _)| t.inner.write()).collect();
        let mut plans = Vec::with_capacity(guards.len());
        for ((name, items), guard) in by_table.iter().zip(&guards) {
            plans.push(guard.plan(name, items, config, refused.as_deref_mut())?);
        }
        if let Some(refused) = refused.as_deref_mut() {
            // Planned table by table; reported in batch order.
            refused.sort_by_key(|(i, _)| *i);
        }
        if plans.iter().all(|p| p.item_count() == 0) {
            return Ok(None);
        }
        let requested: usize = plans.iter().map(|p| p.bytes).sum();
        self.reserve(requested, config.memory_limit)?;
        let refused_now: &[(usize, Error)] = refused.as_deref().map_or(&[], |r| r.as_slice());
        let logged = match log(refused_now) {
            Ok(logged) => logged,
            Err(e) => {
                self.memory.fetch_sub(requested, Ordering::Relaxed);
                return Err(e);
            }
        };
        let used_tables: Vec<bool> = plans.iter().map(|p| p.item_count() > 0).collect();
        let mut delta: isize = 0;
        let mut fixed: usize = 0;
        for (plan, guard) in plans.into_iter().zip(guards.iter_mut()) {
            fixed += plan.fixed_bytes();
            delta += guard.apply(plan, config);
        }
        drop(guards);
        // The reservation was an estimate; keep what was really used.
        let used = (fixed as isize + delta).max(0) as usize;
        if used >= requested {
            self.memory.fetch_add(used - requested, Ordering::Relaxed);
        } else {
            self.memory.fetch_sub(requested - used, Ordering::Relaxed);
        }
        if creates {
            let mut all = self.tables.write();
            for ((table, new), used) in tables.into_iter().zip(used_tables) {
                // A new table whose every item was refused is not created.
                if new && used {
                    all.insert(table.name.clone(), table);
                }
            }
        }
        Ok(Some(logged))
    }

    /// The WAL position and tables a checkpoint starts from. Taken under the lock that
    /// table creation holds, so a table missing from the list was created (and all
    /// its records logged) at or after the returned seq.
    pub(crate) fn checkpoint_tables(&self, seq: impl FnOnce() -> u64) -> (u64, Vec<Arc<Table>>) {
        let _create = self.create.lock();
        let base = seq();
        (base, self.tables.read().values().cloned().collect())
    }

    /// A copy of `table` for a checkpoint, with the WAL seq read under its lock: the
    /// copy holds exactly the records of this table below that seq.
    pub(crate) fn table_image(
        &self,
        table: &Table,
        seq: impl FnOnce() -> u64,
    ) -> table::TableImage {
        let image = table.inner.read().image(&table.name, seq());
        // Decoding the open heads needs no lock: writers go on meanwhile.
        image.decode()
    }

    /// Installs tables read from a checkpoint into an empty store.
    pub(crate) fn restore(&self, images: Vec<table::TableImage>) -> Result<()> {
        let _create = self.create.lock();
        for image in images {
            let name = image.name.clone();
            let (inner, bytes) = table::TableInner::restore(image, self.timestamps.clone())?;
            self.memory.fetch_add(bytes, Ordering::Relaxed);
            let table = Table {
                name: name.clone(),
                inner: RwLock::new(inner),
            };
            self.tables.write().insert(name, Arc::new(table));
        }
        Ok(())
    }

    /// Drops the rows of `table` older than `cutoff`, which the cold tier now holds,
    /// and refuses later writes before it. Does nothing for an unknown table.
    pub fn drop_before(&self, table: &str, cutoff: i64) {
        let Ok(table) = self.table(table) else { return };
        let delta = {
            let mut inner = table.inner.write();
            inner.drop_before(cutoff, &self.config) + inner.retire_empty(&table.name)
        };
        if delta < 0 {
            self.memory
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.memory.fetch_add(delta as usize, Ordering::Relaxed);
        }
    }

    /// Where `table`'s hot rows begin (`None`: nothing was tiered).
    pub fn tiered_until(&self, table: &str) -> Option<i64> {
        self.table(table).ok()?.inner.read().tiered_until
    }

    /// An upper bound of `table`'s newest timestamp in memory (the newest ever
    /// written), or `None` for an unknown or empty table. O(1).
    pub fn newest_time(&self, table: &str) -> Option<i64> {
        self.table(table).ok()?.inner.read().newest
    }

    /// Rows per millisecond in `table`'s sealed chunks, estimated from the chunks of at
    /// most [`DENSITY_SAMPLE`] series spread over the table (planning asks it per query,
    /// so it must not walk a million series). `None` when the sample has no sealed chunk
    /// spanning time.
    pub fn sampled_density(&self, table: &str) -> Option<f64> {
        let table = self.table(table).ok()?;
        let inner = table.inner.read();
        let series = &inner.series;
        let step = series.len().div_ceil(DENSITY_SAMPLE).max(1);
        let (mut gaps, mut span) = (0u64, 0i64);
        for s in series.iter().step_by(step) {
            for c in s.chunks.iter() {
                // `rows - 1` gaps lie between a chunk's first and last row.
                gaps += c.rows().saturating_sub(1) as u64;
                span = span.saturating_add(c.max_time().saturating_sub(c.min_time()));
            }
        }
        (span > 0).then(|| gaps as f64 / span as f64)
    }

    /// The timestamp blocks shared by every table's chunks.
    pub(crate) fn shared_timestamps(&self) -> &Arc<chunk::SharedTimestamps> {
        &self.timestamps
    }

    fn reserve(&self, bytes: usize, limit: Option<usize>) -> Result<()> {
        let Some(limit) = limit else {
            self.memory.fetch_add(bytes, Ordering::Relaxed);
            return Ok(());
        };
        self.memory
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .map(|_| ())
            .map_err(|used| Error::MemoryLimit {
                limit,
                used,
                requested: bytes,
            })
    }

    /// Bytes in use, as the memory limit counts them.
    pub fn memory_used(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    /// Series over all tables, without walking them.
    pub fn series_count(&self) -> usize {
        let tables: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
        tables.iter().map(|t| t.inner.read().series.len()).sum()
    }

    /// Table names, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.tables.read().keys().map(|k| k.to_string()).collect()
    }

    fn table(&self, name: &str) -> Result<Arc<Table>> {
        self.tables
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::TableNotFound(name.to_string()))
    }

    /// Snapshots the series of `table` that match every matcher (Prometheus semantics)
    /// and have rows in `range`.
    pub fn select(
        &self,
        table: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Arc<TableSnapshot>> {
        self.select_with(table, range, |index| index.select(matchers))
    }

    /// Snapshots the series of `table` whose ids `pick` returns from the label index
    /// and that have rows in `range`. The query layer composes SQL predicates this way.
    pub fn select_with(
        &self,
        table: &str,
        range: TimeRange,
        pick: impl FnOnce(&LabelIndex) -> RoaringBitmap,
    ) -> Result<Arc<TableSnapshot>> {
        self.select_sorted(table, range, None, pick)
    }

    /// Like [`Storage::select_with`], with series sorted by the tags `sort_by` (in
    /// that order) instead of by all tags; unknown tags are ignored.
    pub fn select_sorted(
        &self,
        table: &str,
        range: TimeRange,
        sort_by: Option<&[String]>,
        pick: impl FnOnce(&LabelIndex) -> RoaringBitmap,
    ) -> Result<Arc<TableSnapshot>> {
        let table = self.table(table)?;
        let inner = table.inner.read();
        let ids = pick(&inner.index);
        let keys: Option<Vec<usize>> = sort_by.map(|names| {
            names
                .iter()
                .filter_map(|n| inner.tag_keys.iter().position(|k| **k == **n))
                .collect()
        });
        Ok(Arc::new(inner.snapshot(
            &table.name,
            &ids,
            range,
            keys.as_deref(),
        )))
    }

    /// Counts what a scan of `table` would read (see [`SelectionCounts`]); `unique_by`
    /// names the tags whose values should identify the selected series.
    pub fn count_selection(
        &self,
        table: &str,
        range: TimeRange,
        filter: Option<&ChunkFilter>,
        unique_by: &[String],
        pick: impl FnOnce(&LabelIndex) -> RoaringBitmap,
    ) -> Result<SelectionCounts> {
        let table = self.table(table)?;
        let inner = table.inner.read();
        let ids = pick(&inner.index);
        let keys: Vec<usize> = unique_by
            .iter()
            .filter_map(|n| inner.tag_keys.iter().position(|k| **k == **n))
            .collect();
        Ok(inner.count_selection(&ids, range, filter, &keys))
    }

    /// The newest row of every series of `table`, in the table's schema, read without
    /// decoding any chunk.
    pub fn latest(&self, table: &str) -> Result<arrow::array::RecordBatch> {
        let table = self.table(table)?;
        let inner = table.inner.read();
        inner.latest_batch()
    }

    /// [`Storage::latest`] for the series `pick` selects whose newest values pass
    /// `bounds` (threshold alert rules read a few rows out of many series).
    pub fn latest_where(
        &self,
        table: &str,
        pick: impl FnOnce(&LabelIndex) -> RoaringBitmap,
        bounds: &[LatestBound],
    ) -> Result<arrow::array::RecordBatch> {
        let table = self.table(table)?;
        let inner = table.inner.read();
        let ids = pick(&inner.index);
        inner.latest_batch_where(Some(&ids), bounds)
    }

    /// The Arrow schema of `table` as it is now.
    pub fn schema(&self, table: &str) -> Result<arrow::datatypes::SchemaRef> {
        let table = self.table(table)?;
        let inner = table.inner.read();
        Ok(arrow_schema(&inner.tag_keys, &inner.fields))
    }

    /// The field columns of `table`, with their kinds.
    pub fn fields(&self, table: &str) -> Result<Vec<FieldDef>> {
        Ok(self.table(table)?.inner.read().fields.clone())
    }

    /// Seals every open head, so that all rows sit in chunks.
    pub fn seal_all(&self) {
        let tables: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
        for table in tables {
            let mut inner = table.inner.write();
            let before = inner.series_bytes;
            inner.seal_all(&self.config);
            let after = inner.series_bytes;
            if after >= before {
                self.memory.fetch_add(after - before, Ordering::Relaxed);
            } else {
                self.memory.fetch_sub(before - after, Ordering::Relaxed);
            }
        }
    }

    /// Series, samples, bytes and cardinality per table and in total.
    pub fn stats(&self) -> StoreStats {
        let tables: Vec<Arc<Table>> = self.tables.read().values().cloned().collect();
        let stats = tables
            .iter()
            .map(|t| t.inner.read().stats(&t.name))
            .collect();
        StoreStats::from_tables(stats, self.memory_used())
    }
}

//! # MetricStore
//!
//! An in-memory metrics database. Recent samples live in memory in bit-packed,
//! per-series chunks; SQL runs over them through Apache DataFusion; aging data moves
//! to Parquet on object storage.
//!
//! ## Write path
//! ```text
//!  remote_write / line protocol / StatsD / Arrow (Flight) / Rust
//!        │ ingest: parse + validate
//!        ▼
//!   WriteBatch ──► MetricStore::write ──► storage::Storage
//!                                          ├─ plan: resolve series, check names,
//!                                          │        limits, out-of-order window, memory
//!                                          └─ apply: head rows ──seal──► Chunk
//!                                                    (codec: delta-of-delta times,
//!                                                     XOR / decimal / int / constant)
//! ```
//! A batch is validated whole before any of it is applied: it is stored entirely or
//! not at all.
//!
//! ## Read path
//! ```text
//!   matchers ──► LabelIndex (roaring bitmaps) ──► series ids
//!   time range ──► chunk headers (min/max time) ──► chunks to decode
//!                          └──► TableSnapshot ──► SnapshotReader ──► Arrow RecordBatch
//! ```
//! A snapshot holds `Arc`s of sealed chunks plus a copy of the open heads' rows, so
//! readers never block writers for longer than that copy.
//!
//! ## SQL
//! ```text
//!   SQL ──► DataFusion SessionContext (catalog metricstore, schema public)
//!             ├─ HotTable: tag/time filters exact, field bounds prune chunks
//!             ├─ BucketAggregateRule: date_bin aggregates from chunk headers
//!             └─ latest('t'): newest row per series, nothing decoded
//! ```
//!
//! ## Modules
//! - [`model`]: names, tag sets, field kinds, write batches, errors.
//! - [`storage`]: tables, series, heads, chunks, codecs, label index, statistics.
//! - [`query`]: the DataFusion catalog, table providers, pushdown, optimizer rule.
//! - [`ingest`]: wire formats (remote_write, line protocol, StatsD, Prometheus text)
//!   into write batches.
//! - [`tier`]: the cold tier: Parquet files on an object store, the manifest, tiering.
//! - [`server`]: the `metricstore serve` front end: HTTP, Arrow Flight SQL, StatsD.
//! - [`sketch`]: the DDSketch quantile sketch (SQL functions and, later, rollups).
//! - [`workload`]: the seeded TSBS workload shared by tests and benches.

pub mod alert;
mod background;
pub mod ingest;
pub mod model;
pub mod query;
pub mod server;
pub mod sketch;
pub mod storage;
pub mod tier;
pub mod workload;

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, SessionContext};

pub use model::{Error, FieldKind, Result, SeriesWrite, TagSet, WriteBatch};
pub use storage::{Matcher, StorageConfig, StoreStats, TableSnapshot, TableStats, TimeRange};

use parking_lot::Mutex;
pub use query::QueryOptions;
use storage::Storage;
use storage::persist::Durability;
pub use storage::persist::{
    CheckpointInfo, DurabilityConfig, DurabilityStats, FsyncPolicy, RecoveryReport,
};
pub use tier::{ColdTier, TierConfig, TierReport};

/// Settings of a store. Every field has a default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The hot tier's settings.
    pub storage: StorageConfig,
    /// Where the WAL and checkpoints go; `None` keeps everything in memory only.
    pub durability: Option<DurabilityConfig>,
    /// Where aging rows go; `None` keeps every row in memory.
    pub tier: Option<TierConfig>,
}

/// The one entry point: examples, tests, benches and the server all go through it.
pub struct MetricStore {
    storage: Arc<Storage>,
    session: SessionContext,
    durable: Option<Arc<Durability>>,
    cold: Option<Arc<ColdTier>>,
    recovery: Option<RecoveryReport>,
    background: Mutex<Option<background::Tasks>>,
}

impl Drop for MetricStore {
    fn drop(&mut self) {
        if let Some(tasks) = self.background.get_mut().take() {
            tasks.stop();
        }
    }
}

impl std::fmt::Debug for MetricStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricStore")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl MetricStore {
    /// Opens a store with `config`.
    ///
    /// With [`Config::durability`], recovers what the data directory holds first (see
    /// [`storage::persist`]) and starts the fsync and checkpoint tasks.
    pub fn open(config: Config) -> Result<MetricStore> {
        let storage = Arc::new(Storage::new(config.storage));
        let (durable, recovery) = match config.durability {
            None => (None, None),
            Some(d) => {
                let (durable, report) = Durability::open(d, &storage)?;
                (Some(Arc::new(durable)), Some(report))
            }
        };
        let cold = match config.tier {
            None => None,
            Some(t) => Some(Arc::new(
                ColdTier::open_blocking(t).map_err(|e| Error::ColdTier(e.to_string()))?,
            )),
        };
        if let Some(cold) = &cold {
            // Rows the WAL replayed that the cold tier already holds go again.
            cold.reconcile(&storage);
        }
        let background = durable
            .as_ref()
            .map(|d| background::Tasks::start(storage.clone(), d.clone()));
        let session = query::session(storage.clone(), cold.clone())?;
        Ok(MetricStore {
            storage,
            session,
            durable,
            cold,
            recovery,
            background: Mutex::new(background),
        })
    }

    /// An empty in-memory store with default settings.
    pub fn in_memory() -> MetricStore {
        // Opening only fails on a catalog name clash, impossible in a new session.
        MetricStore::open(Config::default()).expect("default store")
    }

    /// Plans one SQL statement without running it.
    ///
    /// Tables are the store's tables (catalog `metricstore`, schema `public`); DDL and
    /// `INSERT`/`UPDATE`/`DELETE` are refused: data enters through
    /// [`MetricStore::write`]. `COPY (query) TO 'path' STORED AS PARQUET|CSV|JSON`
    /// exports (it writes where this process can, unless
    /// [`QueryOptions::export_dir`] confines it). The plan may hold `$1`..
    /// placeholders, bound with [`DataFrame::with_param_values`].
    pub async fn sql_frame(&self, sql: &str) -> Result<DataFrame> {
        self.sql_frame_with(sql, &QueryOptions::default()).await
    }

    /// [`MetricStore::sql_frame`] with per-query options (for example
    /// [`QueryOptions::partial`]); read `options.warnings()` once the result has been
    /// consumed.
    pub async fn sql_frame_with(&self, sql: &str, options: &QueryOptions) -> Result<DataFrame> {
        use datafusion::logical_expr::LogicalPlan;
        let mut state = self.session.state();
        state.config_mut().set_extension(Arc::new(options.clone()));
        let plan = state.create_logical_plan(sql).await?;
        datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .verify_plan(&plan)?;
        match &plan {
            LogicalPlan::Dml(dml) => Err(Error::Query(datafusion::error::DataFusionError::Plan(
                format!(
                    "{} is not supported: data enters through writes (line protocol, \
                     remote_write, Flight ingest, MetricStore::write)",
                    dml.op
                ),
            ))),
            LogicalPlan::Statement(statement) if options.refuse_session_changes => Err(
                Error::Query(datafusion::error::DataFusionError::Plan(format!(
                    "{} is not accepted here: it would change the session every client \
                     of this server shares",
                    statement.name()
                ))),
            ),
            // SET and friends change the shared session.
            LogicalPlan::Statement(_) => Ok(self.session.execute_logical_plan(plan).await?),
            LogicalPlan::Copy(copy) if let Some(root) = &options.export_dir => {
                let output_url = query::export::confine(&copy.output_url, root)
                    .map_err(|e| Error::Query(datafusion::error::DataFusionError::Plan(e)))?;
                let copy = datafusion::logical_expr::dml::CopyTo {
                    output_url,
                    ..copy.clone()
                };
                Ok(DataFrame::new(state, LogicalPlan::Copy(copy)))
            }
            _ => Ok(DataFrame::new(state, plan)),
        }
    }

    /// Runs one SQL statement and collects its result (see [`MetricStore::sql_frame`]).
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.sql_frame(sql).await?.collect().await?)
    }

    /// Runs one SQL statement and streams its result batch by batch.
    pub async fn sql_stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        Ok(self.sql_frame(sql).await?.execute_stream().await?)
    }

    /// The DataFusion session, for registering functions or building plans.
    pub fn session(&self) -> &SessionContext {
        &self.session
    }

    /// Stores every row of `batch`, or none of them (see [`Storage::write`]).
    ///
    /// A durable store returns once the write-ahead log holds the batch as its fsync
    /// policy requires; an error means the batch was not acknowledged.
    pub fn write(&self, batch: &WriteBatch) -> Result<()> {
        match &self.durable {
            None => self.storage.write(batch),
            Some(d) => d.write(&self.storage, batch, None),
        }
    }

    /// Stores every item of `batch` that passes its checks and returns the refused
    /// ones with their positions and reasons (too old, cardinality limit, invalid
    /// name): the protocols' per-sample semantics. Over the memory limit the whole
    /// batch is refused with [`Error::MemoryLimit`], so a retry loses nothing.
    pub fn write_partial(&self, batch: &WriteBatch) -> Result<Vec<(usize, Error)>> {
        match &self.durable {
            None => self.storage.write_partial(batch),
            Some(d) => {
                let mut refused = Vec::new();
                d.write(&self.storage, batch, Some(&mut refused))?;
                Ok(refused)
            }
        }
    }

    /// Writes a checkpoint now and trims the WAL below it. `None` for an in-memory
    /// store.
    pub fn checkpoint(&self) -> Result<Option<CheckpointInfo>> {
        match &self.durable {
            None => Ok(None),
            Some(d) => Ok(Some(d.checkpoint(&self.storage)?)),
        }
    }

    /// Moves rows older than each table's hot window (as of `now_ms`) to the cold tier,
    /// then checkpoints so the WAL drops them too. `None` without a cold tier.
    pub async fn run_tiering(&self, now_ms: i64) -> Result<Option<TierReport>> {
        let Some(cold) = &self.cold else {
            return Ok(None);
        };
        let report = cold
            .run(&self.storage, now_ms)
            .await
            .map_err(|e| Error::ColdTier(e.to_string()))?;
        if report.rows > 0
            && let Some(d) = &self.durable
        {
            let d = d.clone();
            let storage = self.storage.clone();
            tokio::task::spawn_blocking(move || d.checkpoint(&storage))
                .await
                .map_err(|e| Error::Durability(e.to_string()))??;
        }
        Ok(Some(report))
    }

    /// The cold tier, if configured.
    pub fn cold(&self) -> Option<&Arc<ColdTier>> {
        self.cold.as_ref()
    }

    /// What recovery did when the store opened (`None` for an in-memory store).
    pub fn recovery(&self) -> Option<&RecoveryReport> {
        self.recovery.as_ref()
    }

    /// WAL and checkpoint counters (`None` for an in-memory store).
    pub fn durability_stats(&self) -> Option<DurabilityStats> {
        self.durable.as_ref().map(|d| d.stats())
    }

    /// Stops the background tasks, then writes a checkpoint so that the next start
    /// replays almost nothing. Writes after `close` still work and are logged.
    pub fn close(&self) -> Result<Option<CheckpointInfo>> {
        if let Some(tasks) = self.background.lock().take() {
            tasks.stop();
        }
        let info = self.checkpoint()?;
        if let Some(d) = &self.durable {
            d.sync()?;
        }
        Ok(info)
    }

    /// Snapshots the series of `table` matching every matcher (Prometheus semantics:
    /// anchored regexes, a missing tag equals `""`) with rows in `range`.
    pub fn select(
        &self,
        table: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<std::sync::Arc<TableSnapshot>> {
        self.storage.select(table, matchers, range)
    }

    /// Series, samples, bytes and cardinality per table and in total.
    pub fn stats(&self) -> StoreStats {
        self.storage.stats()
    }

    /// Table names, sorted.
    pub fn table_names(&self) -> Vec<String> {
        self.storage.table_names()
    }

    /// Seals every open head into chunks (before measuring compression, for example).
    pub fn seal_all(&self) {
        self.storage.seal_all()
    }

    /// The storage engine.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }
}

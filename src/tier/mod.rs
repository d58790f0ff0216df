//! The cold tier: retention policies, Parquet files on an object store, the manifest,
//! and the tiering run that moves aging rows out of memory.
//!
//! ```text
//!  run_tiering(now):  per table, cutoff = (now - hot_for) aligned down to the chunk span
//!     hot rows in [tiered_until, cutoff) ──sorted by tags, time──► one Parquet file per
//!     UTC day: <root>/<table>/level=raw/date=<yyyy-mm-dd>/<from>-<to>.parquet
//!     and, per series whose policy lists levels, rollup rows (see [`rollup`]):
//!     <root>/<table>/level=<5m|1h|..>/date=<yyyy-mm-dd>/<from>-<to>.parquet
//!     ──► manifest version n+1 (files + tiered_until = cutoff) ──► swap in memory
//!     ──► drop the hot rows before cutoff (and refuse writes there from now on)
//! ```
//! Readers (see [`crate::query`]) take the manifest and scan the hot tier only from
//! its `tiered_until`, so each row is read from exactly one tier. A hot snapshot taken
//! after a later commit is detected (the manifest version moved) and the query fails
//! rather than miss the rows that commit dropped; tiering waits for planned queries
//! to start before dropping, so in practice that never happens.
//!
//! Hot rows are dropped only after the file and the manifest are written: a failure
//! anywhere before leaves everything in memory, and the next run redoes the work
//! (files are named deterministically, so a rerun overwrites its own leftovers).

mod cpu;
mod gc;
mod manifest;
mod parquet;
mod partial;
mod policy;
mod retention;
mod rollup;
mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::ObjectStore;
use object_store::path::Path;
use parking_lot::RwLock;

pub use manifest::{FileEntry, LevelManifest, Manifest, TableManifest};
pub use partial::{Partial, counter_delta};
pub use policy::{Policies, RetentionPolicy, RollupLevel, SeriesSelector, compact_duration};
pub use retention::Expired;
pub use rollup::{STATS as ROLLUP_STATS, level_schema};
pub use store::{StoreRegistry, open_store};

use crate::storage::{Storage, TimeRange};

/// Why the cold tier failed.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// The object store refused or failed an operation.
    #[error("cold tier: {0}")]
    Store(#[from] object_store::Error),
    /// A manifest could not be read or written.
    #[error("cold tier manifest {path}: {message}")]
    Manifest {
        /// The manifest object.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Writing Parquet failed.
    #[error("cold tier: writing Parquet for table {table:?}: {message}")]
    Parquet {
        /// The table.
        table: String,
        /// What went wrong.
        message: String,
    },
    /// The hot tier could not be read.
    #[error("cold tier: {0}")]
    Hot(#[from] crate::Error),
    /// The configuration is unusable.
    #[error("cold tier configuration: {0}")]
    Config(String),
}

/// Where the cold tier lives and what moves there.
#[derive(Debug, Clone, PartialEq)]
pub struct TierConfig {
    /// Root directory of the Parquet files and the manifest, unless `url` is set.
    pub dir: PathBuf,
    /// An object store URL for the root instead (`s3://bucket/prefix`).
    pub url: Option<String>,
    /// Options of the object store (`aws_endpoint`, `aws_access_key_id`, ...); also
    /// used for `COPY TO 's3://...'`.
    pub store_options: BTreeMap<String, String>,
    /// The retention policies.
    pub policies: Policies,
}

impl TierConfig {
    /// Where the root is, as `url` or the directory.
    pub fn location(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| self.dir.to_string_lossy().into_owned())
    }

    /// Local files under `dir`, everything hot for a day and kept forever.
    pub fn new(dir: impl Into<PathBuf>) -> TierConfig {
        TierConfig {
            dir: dir.into(),
            url: None,
            store_options: BTreeMap::new(),
            policies: Policies::default(),
        }
    }
}

/// The URL DataFusion knows the cold tier's store by.
fn cold_url() -> Result<ObjectStoreUrl, TierError> {
    ObjectStoreUrl::parse("metricstore-cold://").map_err(|e| TierError::Config(e.to_string()))
}

/// What one tiering run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TierReport {
    /// Tables that moved rows.
    pub tables: usize,
    /// Rows written to Parquet (and dropped from memory).
    pub rows: u64,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// What raw retention deleted.
    pub expired: Expired,
    /// Unreferenced files deleted (leftovers of failed runs).
    pub garbage: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// The cold tier of one store.
#[derive(Debug)]
pub struct ColdTier {
    store: Arc<dyn ObjectStore>,
    url: ObjectStoreUrl,
    root: Path,
    /// Policies change through the admin API; a change applies from the next run.
    config: RwLock<TierConfig>,
    manifest: RwLock<Arc<Manifest>>,
    /// One tiering run at a time; the state is what one run leaves the next.
    running: tokio::sync::Mutex<RunState>,
}

/// What a tiering run tells the next one.
#[derive(Debug)]
struct RunState {
    /// Unreferenced tier files may exist: true at open (a crash may have left some),
    /// while a run is under way (a write before a failed commit leaves its file) and
    /// after a run that could not delete a file. Garbage collection lists the whole
    /// cold root, so it runs only then, not on every run.
    leftovers: bool,
}

impl ColdTier {
    /// Opens (creating) the cold tier at its location and reads its manifest.
    pub async fn open(config: TierConfig) -> Result<ColdTier, TierError> {
        let store = open_store(&config.location(), &config.store_options)?;
        ColdTier::with_store(config, store, cold_url()?).await
    }

    /// [`ColdTier::open`] for callers outside an async runtime.
    pub fn open_blocking(config: TierConfig) -> Result<ColdTier, TierError> {
        let store = open_store(&config.location(), &config.store_options)?;
        // The manifest is read through a second instance of the store on a one-off
        // runtime: connections pooled there would die with it, and the store that
        // serves queries must not inherit them.
        let probe = open_store(&config.location(), &config.store_options)?;
        let root = Path::default();
        let manifest = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| TierError::Config(format!("no runtime: {e}")))?;
                    runtime.block_on(Manifest::load(probe.as_ref(), &root))
                })
                .join()
                .unwrap_or_else(|_| Err(TierError::Config("manifest reader panicked".into())))
        })?;
        Ok(ColdTier::from_parts(config, store, cold_url()?, manifest))
    }

    /// The cold tier on any object store (tests wrap stores to inject failures).
    pub async fn with_store(
        config: TierConfig,
        store: Arc<dyn ObjectStore>,
        url: ObjectStoreUrl,
    ) -> Result<ColdTier, TierError> {
        let manifest = Manifest::load(store.as_ref(), &Path::default()).await?;
        Ok(ColdTier::from_parts(config, store, url, manifest))
    }

    fn from_parts(
        config: TierConfig,
        store: Arc<dyn ObjectStore>,
        url: ObjectStoreUrl,
        manifest: Manifest,
    ) -> ColdTier {
        ColdTier {
            store,
            url,
            root: Path::default(),
            config: RwLock::new(config),
            manifest: RwLock::new(Arc::new(manifest)),
            running: tokio::sync::Mutex::new(RunState { leftovers: true }),
        }
    }

    /// The manifest queries plan against.
    pub fn manifest(&self) -> Arc<Manifest> {
        self.manifest.read().clone()
    }

    /// The object store and the URL DataFusion knows it by.
    pub fn store(&self) -> (&Arc<dyn ObjectStore>, &ObjectStoreUrl) {
        (&self.store, &self.url)
    }

    /// The settings in force.
    pub fn config(&self) -> TierConfig {
        self.config.read().clone()
    }

    /// Replaces the retention policies (from the next run on).
    pub fn set_policies(&self, policies: Policies) {
        self.config.write().policies = policies;
    }

    /// Moves every table's rows older than its hot window (as of `now_ms`) to Parquet,
    /// then applies raw retention.
    pub async fn run(&self, storage: &Storage, now_ms: i64) -> Result<TierReport, TierError> {
        let span = storage.config().chunk_span_ms.max(1);
        let policies = self.config.read().policies.clone();
        self.run_with(storage, now_ms, |table| {
            let hot_for = policies.hot_for(table).as_millis() as i64;
            // Aligned to the chunk span: no chunk straddles the cutoff, so dropping
            // the tiered rows frees whole chunks.
            (now_ms.saturating_sub(hot_for)).div_euclid(span) * span
        })
        .await
    }

    /// Moves every table's rows before `cutoff` to Parquet now, whatever the hot
    /// windows say (any cutoff, even inside a chunk). For operators and tests;
    /// retention applies as of `cutoff`.
    pub async fn tier_before(
        &self,
        storage: &Storage,
        cutoff: i64,
    ) -> Result<TierReport, TierError> {
        self.run_with(storage, cutoff, |_| cutoff).await
    }

    async fn run_with(
        &self,
        storage: &Storage,
        now_ms: i64,
        cutoff_of: impl Fn(&str) -> i64,
    ) -> Result<TierReport, TierError> {
        let mut state = self.running.lock().await;
        let started = Instant::now();
        let garbage = if state.leftovers {
            self.collect_garbage().await?
        } else {
            0
        };
        // Until this run returns cleanly it may leave files behind: an error, a panic
        // or a cancelled run keeps this set for the next.
        state.leftovers = true;
        let mut report = TierReport {
            garbage,
            ..TierReport::default()
        };
        let policies = self.config.read().policies.clone();
        for table in storage.table_names() {
            let cutoff = cutoff_of(&table);
            let current = self.manifest().tiered_until(&table);
            if current.is_some_and(|t| t >= cutoff) {
                continue;
            }
            let from = current.unwrap_or(i64::MIN);
            let snapshot = storage.select(&table, &[], TimeRange::new(from, cutoff))?;
            let written =
                parquet::write_table(self.store.as_ref(), &self.root, &table, &snapshot).await?;
            // Rollups come from the same rows, before anything drops them.
            let levels =
                rollup::write_levels(self.store.as_ref(), &self.root, &snapshot, &policies).await?;
            if written.rows == 0 && current.is_none() {
                continue;
            }
            let old = self.manifest();
            let mut next = (*old).clone();
            next.version += 1;
            let entry = next.tables.entry(table.clone()).or_default();
            entry.tiered_until = cutoff;
            for tag in &written.tags {
                if !entry.tags.contains(tag) {
                    entry.tags.push(tag.clone());
                }
            }
            for field in &written.fields {
                if !entry.fields.contains(field) {
                    entry.fields.push(field.clone());
                }
            }
            report.rows += written.rows;
            report.files += written.files.len();
            report.bytes += written.files.iter().map(|f| f.bytes).sum::<u64>();
            entry.files.extend(written.files);
            report.files += levels.iter().map(|l| l.files.len()).sum::<usize>();
            report.bytes += levels
                .iter()
                .flat_map(|l| &l.files)
                .map(|f| f.bytes)
                .sum::<u64>();
            rollup::record(entry, levels);
            next.commit(self.store.as_ref(), &self.root).await?;
            *self.manifest.write() = Arc::new(next);
            Manifest::remove_older(self.store.as_ref(), &self.root, old.version).await;
            // Queries planned on the old manifest scan the hot tier from its older
            // cutoff: let them take their hot snapshots before the rows go.
            retention::wait_for_readers(old).await;
            storage.drop_before(&table, cutoff);
            report.tables += 1;
        }
        report.expired = self.expire(now_ms).await?;
        state.leftovers = report.expired.left_behind > 0;
        report.elapsed = started.elapsed();
        if report.rows > 0 || report.expired != Expired::default() {
            tracing::info!(
                tables = report.tables,
                rows = report.rows,
                files = report.files,
                bytes = report.bytes,
                expired_rows = report.expired.rows,
                garbage = report.garbage,
                ms = report.elapsed.as_millis() as u64,
                "tiering run"
            );
        }
        Ok(report)
    }

    /// Applies the manifest to a freshly recovered hot tier: rows the cold tier
    /// already holds (replayed from the WAL) are dropped, and writes before each
    /// table's `tiered_until` are refused.
    pub fn reconcile(&self, storage: &Storage) {
        for (table, entry) in &self.manifest().tables {
            storage.drop_before(table, entry.tiered_until);
        }
    }
}

//! Runs every `sql/*.slt` file against a fresh store, each in its own session.
//!
//! Besides SQL, a file can load data with a `WRITE` statement: the lines after it are
//! Influx line protocol with millisecond timestamps, written as one batch.
//!
//! ```text
//! statement ok
//! WRITE
//! cpu,host=a,region=eu usage_user=10,usage_system=5 1000
//! ```
//!
//! Every file runs against three layouts of the same data, which must give identical
//! output: all rows hot; all rows tiered to Parquet; and split between the tiers at
//! a seeded random time (chunks hold 4 rows, so the split falls inside chunks). Each
//! runner carries its layout as a label (`hot`, `cold`, `split`); `onlyif hot` marks
//! what only the hot tier answers (`latest()`, plan shapes), and `explain.slt` runs
//! hot only.
//!
//! `METRICSTORE_SLT_COMPLETE=1 cargo test --test sqllogictest` rewrites the expected
//! results from the actual ones (review the diff before committing).

use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::TryStreamExt;
use metricstore::ingest::line_protocol::{Precision, parse_strict};
use metricstore::{Config, MetricStore, StorageConfig, TierConfig, WriteBatch};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

/// Where a file's rows live when its queries run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    Hot,
    Cold,
    /// Split at a time drawn from this seed.
    Split(u64),
}

impl Layout {
    fn label(self) -> &'static str {
        match self {
            Layout::Hot => "hot",
            Layout::Cold => "cold",
            Layout::Split(_) => "split",
        }
    }
}

struct Db {
    layout: Layout,
    /// Takes every write as the hot layout would, so statements succeed or fail alike.
    store: MetricStore,
    /// The written batches, replayed into `tiered` whenever a query follows writes.
    written: Vec<WriteBatch>,
    tiered: Option<(MetricStore, tempfile::TempDir)>,
    dirty: bool,
    rebuilds: u64,
}

fn storage() -> StorageConfig {
    // Small chunks so that every file exercises sealed chunks and heads together.
    StorageConfig {
        chunk_size: 4,
        ..StorageConfig::default()
    }
}

impl Db {
    fn new(layout: Layout) -> Db {
        let config = Config {
            storage: storage(),
            ..Config::default()
        };
        Db {
            layout,
            store: MetricStore::open(config).expect("open store"),
            written: Vec::new(),
            tiered: None,
            dirty: false,
            rebuilds: 0,
        }
    }

    /// The store queries run on: for the cold layouts, a fresh store holding every
    /// write so far, tiered at the layout's cutoff.
    async fn query_store(&mut self) -> Result<&MetricStore, SltError> {
        if self.layout == Layout::Hot {
            return Ok(&self.store);
        }
        if self.dirty || self.tiered.is_none() {
            let dir = tempfile::tempdir().map_err(|e| SltError(e.to_string()))?;
            let store = MetricStore::open(Config {
                storage: StorageConfig {
                    out_of_order_window_ms: i64::MAX / 4,
                    ..storage()
                },
                tier: Some(TierConfig::new(dir.path())),
                ..Config::default()
            })
            .map_err(|e| SltError(e.to_string()))?;
            for b in &self.written {
                store.write(b).map_err(|e| SltError(e.to_string()))?;
            }
            let cutoff = match self.layout {
                Layout::Split(seed) => {
                    self.rebuilds += 1;
                    let (min, max) = time_range(&store).await?;
                    let mut x = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(self.rebuilds.wrapping_mul(1_442_695_040_888_963_407));
                    x ^= x >> 33;
                    let width = (max - min + 2).max(1) as u64;
                    min + (x % width) as i64
                }
                _ => i64::MAX,
            };
            let cold = store.cold().expect("tiered store").clone();
            let report = cold
                .tier_before(store.storage(), cutoff)
                .await
                .map_err(|e| SltError(format!("tiering at {cutoff}: {e}")))?;
            let hot_rows = store.stats().total.rows;
            if self.layout == Layout::Cold && (hot_rows != 0 || report.rows == 0) {
                return Err(SltError(format!(
                    "the cold layout left {hot_rows} rows hot ({report:?})"
                )));
            }
            TIERED_ROWS.fetch_add(report.rows, std::sync::atomic::Ordering::Relaxed);
            self.tiered = Some((store, dir));
            self.dirty = false;
        }
        Ok(&self.tiered.as_ref().expect("built above").0)
    }
}

/// Rows the cold layouts moved to Parquet, over all files: proves they ran.
static TIERED_ROWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The first and last row time over every table (ms).
async fn time_range(store: &MetricStore) -> Result<(i64, i64), SltError> {
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for table in store.table_names() {
        let sql = format!(
            "SELECT CAST(min(time) AS BIGINT), CAST(max(time) AS BIGINT) FROM \"{}\"",
            table.replace('"', "\"\"")
        );
        let batches = store.sql(&sql).await.map_err(|e| SltError(e.to_string()))?;
        for b in &batches {
            use arrow::array::AsArray;
            use arrow::datatypes::Int64Type;
            if let Some(v) = b
                .column(0)
                .as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .next()
            {
                min = min.min(v);
            }
            if let Some(v) = b
                .column(1)
                .as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .next()
            {
                max = max.max(v);
            }
        }
    }
    Ok(if min > max { (0, 0) } else { (min, max) })
}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

#[async_trait]
impl AsyncDB for Db {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        if let Some(lines) = sql.trim_start().strip_prefix("WRITE") {
            let batch = parse_strict(lines, Precision::Millisecond, 0)
                .map_err(|e| SltError(e.to_string()))?;
            let rows = batch.row_count() as u64;
            self.store
                .write(&batch)
                .map_err(|e| SltError(e.to_string()))?;
            if self.layout != Layout::Hot {
                self.written.push(batch);
                self.dirty = true;
            }
            return Ok(DBOutput::StatementComplete(rows));
        }
        let err = |e: &dyn std::fmt::Display| SltError(e.to_string());
        let store = self.query_store().await?;
        let stream = store.sql_stream(sql).await.map_err(|e| err(&e))?;
        let types = stream
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let batches: Vec<_> = stream.try_collect().await.map_err(|e| err(&e))?;
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SltError(e.to_string()))?;
            for r in 0..batch.num_rows() {
                let cells: Vec<String> = formatters
                    .iter()
                    .map(|f| match f.value(r).to_string() {
                        s if s.is_empty() => "(empty)".to_string(),
                        s => s,
                    })
                    .collect();
                // Multi-line cells (EXPLAIN plans) become one output row per line.
                let height = cells.iter().map(|c| c.lines().count()).max().unwrap_or(1);
                if height <= 1 {
                    rows.push(cells);
                    continue;
                }
                // Continuation lines keep only their non-empty parts, so that the
                // whitespace-normalised comparison sees what the file shows.
                for line in 0..height {
                    rows.push(
                        cells
                            .iter()
                            .filter_map(|c| c.lines().nth(line))
                            .map(str::trim)
                            .filter(|part| !part.is_empty())
                            .map(String::from)
                            .collect(),
                    );
                }
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "metricstore"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("sql/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn sql_logic_tests() {
    let complete = std::env::var_os("METRICSTORE_SLT_COMPLETE").is_some();
    let files = slt_files();
    assert!(files.len() >= 4, "expected the .slt files under sql/");
    let mut failures = Vec::new();
    let layouts = if complete {
        vec![Layout::Hot]
    } else {
        vec![
            Layout::Hot,
            Layout::Cold,
            Layout::Split(1),
            Layout::Split(7),
        ]
    };
    for (file, layout) in files
        .iter()
        .flat_map(|f| layouts.iter().map(move |l| (f, *l)))
    {
        if layout != Layout::Hot && file.ends_with("explain.slt") {
            continue;
        }
        let mut runner = Runner::new(move || async move { Ok(Db::new(layout)) });
        runner.add_label(layout.label());
        let result = if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .map_err(|e| e.to_string())
        } else {
            runner
                .run_file_async(file)
                .await
                .map_err(|e| e.display(true).to_string())
        };
        if let Err(e) = result {
            failures.push(format!("{} ({layout:?}):\n{e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    if !complete {
        let tiered = TIERED_ROWS.load(std::sync::atomic::Ordering::Relaxed);
        assert!(tiered > 100, "the cold layouts tiered only {tiered} rows");
    }
}

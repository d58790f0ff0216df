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
//! `METRICSTORE_SLT_COMPLETE=1 cargo test --test sqllogictest` rewrites the expected
//! results from the actual ones (review the diff before committing).

use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::TryStreamExt;
use metricstore::ingest::line_protocol::{Precision, parse_strict};
use metricstore::{Config, MetricStore, StorageConfig};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

struct Db {
    store: MetricStore,
}

impl Db {
    fn new() -> Db {
        // Small chunks so that every file exercises sealed chunks and heads together.
        let config = Config {
            storage: StorageConfig {
                chunk_size: 4,
                ..StorageConfig::default()
            },
            ..Config::default()
        };
        Db {
            store: MetricStore::open(config).expect("open store"),
        }
    }
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
            return Ok(DBOutput::StatementComplete(rows));
        }
        let err = |e: &dyn std::fmt::Display| SltError(e.to_string());
        let stream = self.store.sql_stream(sql).await.map_err(|e| err(&e))?;
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
    for file in &files {
        let mut runner = Runner::new(|| async { Ok(Db::new()) });
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
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

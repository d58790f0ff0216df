//! SQL through the facade: streaming, plan metrics and errors. Result semantics live
//! in the `.slt` files under `sql/` and in the oracle test.

use arrow::util::pretty::pretty_format_batches;
use futures::StreamExt;
use metricstore::{Config, Error, MetricStore, StorageConfig, TagSet, WriteBatch};

fn store_with_rows(series: usize, rows: i64) -> MetricStore {
    let store = MetricStore::open(Config {
        storage: StorageConfig {
            chunk_size: 8,
            ..StorageConfig::default()
        },
        ..Config::default()
    })
    .unwrap();
    let mut batch = WriteBatch::new();
    for s in 0..series {
        let w = batch.series(
            "m",
            TagSet::new([("s", format!("s{s:03}"))]).unwrap(),
            &["v"],
        );
        for t in 0..rows {
            // Only the last chunk of each series goes above 90.
            let v = if t >= rows - 8 { 95.0 } else { (t % 50) as f64 };
            w.push(t * 1_000, &[v]).unwrap();
        }
    }
    store.write(&batch).unwrap();
    store
}

#[tokio::test]
async fn explain_analyze_reports_pruned_chunks() {
    let store = store_with_rows(4, 64);
    store.seal_all();
    let plan = store
        .sql("EXPLAIN ANALYZE SELECT count(*) FROM m WHERE v > 90")
        .await
        .unwrap();
    let text = pretty_format_batches(&plan).unwrap().to_string();
    // 4 series x 8 chunks; 7 chunks of each series have max 49 and are skipped.
    assert!(
        text.contains("chunks=4 (pruned by time=0, by value=28)"),
        "{text}"
    );
    assert_eq!(metric(&text, "chunks_pruned_by_value="), 28, "{text}");
    assert_eq!(metric(&text, "chunks_decoded="), 4, "{text}");
    assert_eq!(metric(&text, "series_scanned="), 4, "{text}");
    let count = store
        .sql("SELECT count(*) FROM m WHERE v > 90")
        .await
        .unwrap();
    assert!(
        pretty_format_batches(&count)
            .unwrap()
            .to_string()
            .contains("| 32 ")
    );
}

/// The number after each `name=` in an `EXPLAIN ANALYZE` text, summed.
fn metric(text: &str, name: &str) -> usize {
    text.match_indices(name)
        .map(|(i, _)| {
            text[i + name.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<usize>()
                .unwrap()
        })
        .sum()
}

#[tokio::test]
async fn newest_buckets_decode_only_the_newest_chunks() {
    // 4 series x 64 rows (0 s .. 63 s) in chunks of 8 rows.
    let store = store_with_rows(4, 64);
    store.seal_all();
    let newest = "SELECT date_bin(INTERVAL '10 seconds', time) AS t, count(*) AS n FROM m \
                  GROUP BY t ORDER BY t DESC LIMIT 2";
    let text = analyze(&store, newest).await;
    // Buckets 60 s and 50 s, from rows 50 s on: chunks 6 and 7 of each series.
    assert_eq!(metric(&text, "fell_back="), 0, "{text}");
    assert_eq!(metric(&text, "chunks_decoded="), 8, "{text}");
    assert_eq!(
        rows(&store, newest).await,
        ["1970-01-01T00:01:00Z 16", "1970-01-01T00:00:50Z 40"]
    );
    // The HAVING drops the newest bucket: the narrow answer is short and the whole
    // table answers.
    let having = "SELECT date_bin(INTERVAL '10 seconds', time) AS t, count(*) AS n FROM m \
                  GROUP BY t HAVING count(*) > 16 ORDER BY t DESC LIMIT 2";
    let text = analyze(&store, having).await;
    assert_eq!(metric(&text, "fell_back="), 1, "{text}");
    assert_eq!(
        rows(&store, having).await,
        ["1970-01-01T00:00:50Z 40", "1970-01-01T00:00:40Z 40"]
    );
}

async fn analyze(store: &MetricStore, sql: &str) -> String {
    let plan = store.sql(&format!("EXPLAIN ANALYZE {sql}")).await.unwrap();
    pretty_format_batches(&plan).unwrap().to_string()
}

/// Each row as its values joined by spaces.
async fn rows(store: &MetricStore, sql: &str) -> Vec<String> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut out = Vec::new();
    for batch in store.sql(sql).await.unwrap() {
        let options = FormatOptions::default();
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..batch.num_rows() {
            let values: Vec<String> = columns.iter().map(|c| c.value(r).to_string()).collect();
            out.push(values.join(" "));
        }
    }
    out
}

#[tokio::test]
async fn results_stream_in_batches() {
    let store = store_with_rows(300, 40);
    store
        .session()
        .sql("SET datafusion.execution.batch_size = 1000")
        .await
        .unwrap();
    let mut stream = store.sql_stream("SELECT s, time, v FROM m").await.unwrap();
    let mut batches = 0;
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        assert!(
            batch.num_rows() <= 1_040,
            "batches hold whole series, about 1000 rows"
        );
        batches += 1;
        rows += batch.num_rows();
    }
    assert_eq!(rows, 300 * 40);
    assert!(batches >= 12, "{batches} batches");
}

#[tokio::test]
async fn planner_errors_name_the_problem() {
    let store = store_with_rows(1, 1);
    let err = store.sql("SELECT nope FROM m").await.unwrap_err();
    assert!(matches!(err, Error::Query(_)));
    assert!(err.to_string().contains("nope"), "{err}");
    let err = store.sql("DROP TABLE m").await.unwrap_err();
    assert!(err.to_string().contains("DDL not supported"), "{err}");
}

/// A bucketed aggregate answered from chunk headers is planned in two optimizer
/// passes, as one the rule leaves alone: the rule settles the projections it leaves,
/// so the second pass finds nothing to change and the optimizer stops there.
#[tokio::test]
async fn bucket_rewrites_settle_within_two_optimizer_passes() {
    let store = store_with_rows(3, 64);
    let sql = "SELECT date_bin(INTERVAL '1 hour', time) AS h, max(v) AS top FROM m \
               WHERE s IN ('s000', 's002') GROUP BY h ORDER BY h";
    let verbose = store.sql(&format!("EXPLAIN VERBOSE {sql}")).await.unwrap();
    let text = pretty_format_batches(&verbose).unwrap().to_string();
    assert!(text.contains("BucketExec"), "the rule fired: {text}");
    let passes = text
        .matches("logical_plan after metricstore_bucket_aggregates")
        .count();
    assert_eq!(passes, 2, "{text}");
    // And the answer is the plain one: the top of each series' last chunk.
    assert_eq!(
        rows(&store, sql).await,
        rows(&store, &sql.replace("max(v)", "max(v + 0)")).await
    );
}

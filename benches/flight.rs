//! Arrow Flight SQL throughput over loopback, against an in-process server (memory
//! only: the WAL is off so that the figures are the Flight path's).
//!
//! - `DoPut` ingest: TSBS cpu-only rows (`METRICSTORE_BENCH_FLIGHT_ROWS`, 10 million
//!   under `cargo bench`, 20 000 in tests; 1000 hosts, 10 fields) as Arrow record
//!   batches of 10 000 rows (dictionary tags, millisecond times, Float64 fields),
//!   built before timing, sent in one `DoPut` stream. Prints field values/s.
//! - `SELECT *` over the same rows streamed to the client, which decodes every
//!   batch. Prints rows/s, the median of five runs after one warm-up run (the first
//!   run after ingest also pays for the allocator's first touch of its buffers);
//!   criterion repeats it as `flight/select-star`.
//!
//! The process allocates with mimalloc, as the `metricstore` binary does.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, DictionaryArray, Float64Array, RecordBatch, StringArray};
use arrow::array::{Int32Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandStatementIngest, TableDefinitionOptions, TableExistsOption, TableNotExistOption,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use metricstore::WriteBatch;
use metricstore::server::{ServerConfig, serve};
use metricstore::workload::tsbs::{CpuOnly, TsbsConfig};
use tonic::transport::Channel;

type Client = FlightSqlServiceClient<Channel>;

/// The server's allocator (see `src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rows per record batch sent.
const BATCH_ROWS: usize = 10_000;

/// TSBS cpu-only with `rows` rows over `hosts` hosts (10 s apart per host).
fn tsbs(rows: usize, hosts: usize) -> TsbsConfig {
    let per_host = rows.div_ceil(hosts) as i64;
    let mut config = TsbsConfig::standard();
    config.scale = hosts;
    config.duration_ms = per_host * config.interval_ms;
    config
}

/// One TSBS write batch as an Arrow record batch: tags as dictionaries, `time`,
/// then the fields. Every row of TSBS cpu-only has the same tags and fields.
fn to_arrow(batch: &WriteBatch) -> RecordBatch {
    let items = batch.items();
    let first = &items[0];
    let tag_keys: Vec<&str> = first
        .tags()
        .pairs()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    let field_names: Vec<&str> = first.fields().iter().map(|(n, _)| n.as_str()).collect();
    let rows = batch.row_count();
    let mut times = Vec::with_capacity(rows);
    let mut values: Vec<Vec<f64>> = vec![Vec::with_capacity(rows); field_names.len()];
    // Per tag: the distinct values of this batch and each row's key.
    let mut dicts: Vec<(Vec<String>, Vec<i32>)> =
        vec![(Vec::new(), Vec::with_capacity(rows)); tag_keys.len()];
    for item in items {
        let codes: Vec<i32> = tag_keys
            .iter()
            .zip(dicts.iter_mut())
            .map(|(k, (distinct, _))| {
                let v = item.tags().get(k).unwrap_or("");
                match distinct.iter().position(|d| d == v) {
                    Some(i) => i as i32,
                    None => {
                        distinct.push(v.to_string());
                        distinct.len() as i32 - 1
                    }
                }
            })
            .collect();
        for r in 0..item.len() {
            times.push(item.timestamps()[r]);
            for (f, v) in item.row(r).iter().enumerate() {
                values[f].push(*v);
            }
            for (t, code) in codes.iter().enumerate() {
                dicts[t].1.push(*code);
            }
        }
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (key, (distinct, keys)) in tag_keys.iter().zip(dicts) {
        let dict = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(keys),
            Arc::new(StringArray::from(distinct)),
        )
        .expect("keys index the values");
        fields.push(Field::new(*key, dict.data_type().clone(), true));
        columns.push(Arc::new(dict));
    }
    fields.push(Field::new(
        "time",
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        false,
    ));
    columns.push(Arc::new(
        TimestampMillisecondArray::from(times).with_timezone("UTC"),
    ));
    for (name, v) in field_names.iter().zip(values) {
        fields.push(Field::new(*name, DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from(v)));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("consistent columns")
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn start() -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = ServerConfig {
            data_dir: dir.path().to_path_buf(),
            http_addr: "127.0.0.1:0".parse().expect("an address"),
            statsd_enabled: false,
            ..ServerConfig::default()
        };
        config.flight.addr = "127.0.0.1:0".parse().expect("an address");
        config.durability.enabled = false;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, addr) = tokio::sync::oneshot::channel();
        let server = runtime.spawn(async move {
            serve(
                config,
                async {
                    let _ = stopped.await;
                },
                move |running| {
                    let _ = ready.send(running.flight_addr);
                },
            )
            .await
            .expect("the server runs");
        });
        let client = runtime.block_on(async {
            let addr = addr
                .await
                .expect("the server starts")
                .expect("Flight is on");
            // A client that reads fast asks for wide windows and large frames, as
            // gRPC's own clients do by probing the bandwidth-delay product.
            let channel = Channel::from_shared(format!("http://{addr}"))
                .expect("a URI")
                .initial_stream_window_size(8 << 20)
                .initial_connection_window_size(16 << 20)
                .max_frame_size(1 << 20)
                .connect()
                .await
                .expect("connects");
            FlightSqlServiceClient::new(channel)
        });
        Bench {
            runtime,
            client,
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        }
    }

    /// Sends `batches` in one `DoPut`; returns the time it took.
    fn ingest(&mut self, batches: Vec<RecordBatch>) -> Duration {
        let command = CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: TableNotExistOption::Create.into(),
                if_exists: TableExistsOption::Append.into(),
            }),
            table: "cpu".into(),
            schema: None,
            catalog: None,
            temporary: false,
            transaction_id: None,
            options: Default::default(),
        };
        let client = &mut self.client;
        self.runtime.block_on(async {
            let start = Instant::now();
            client
                .execute_ingest(command, futures::stream::iter(batches.into_iter().map(Ok)))
                .await
                .expect("TSBS rows are accepted");
            start.elapsed()
        })
    }

    /// Runs `sql`, reading (and decoding) every batch; returns rows and time.
    fn query(&mut self, sql: &str) -> (usize, Duration) {
        let client = &mut self.client;
        self.runtime.block_on(async {
            let start = Instant::now();
            let info = client.execute(sql.to_string(), None).await.expect("plans");
            let mut rows = 0;
            for endpoint in info.endpoint {
                let ticket = endpoint.ticket.expect("a ticket");
                let mut stream = client.do_get(ticket).await.expect("streams");
                while let Some(batch) = stream.next().await {
                    rows += batch.expect("a batch").num_rows();
                }
            }
            (rows, start.elapsed())
        })
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = self.runtime.block_on(server);
        }
    }
}

fn bench(c: &mut Criterion) {
    let rows = common::size("METRICSTORE_BENCH_FLIGHT_ROWS", 20_000, 10_000_000);
    let hosts = if rows >= 1_000_000 { 1000 } else { 10 };
    let config = tsbs(rows, hosts);
    let batches: Vec<RecordBatch> = CpuOnly::new(config.clone())
        .batches(BATCH_ROWS)
        .map(|b| to_arrow(&b))
        .collect();
    let total_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let fields = batches.first().map_or(0, |b| {
        let schema = b.schema();
        let floats = schema
            .fields()
            .iter()
            .filter(|f| f.data_type() == &DataType::Float64);
        floats.count()
    });
    let values = total_rows * fields;

    let mut bench = Bench::start();
    let took = bench.ingest(batches);
    println!(
        "flight DoPut ingest: {} field values/s, {} rows/s ({total_rows} rows x {fields} fields, \
         {hosts} hosts, batches of {BATCH_ROWS}, {:.3} s)",
        common::per_second(values as f64, took),
        common::per_second(total_rows as f64, took),
        took.as_secs_f64()
    );

    let (read, _) = bench.query("SELECT * FROM cpu");
    assert_eq!(read, total_rows, "SELECT * returns every row");
    let mut runs: Vec<Duration> = (0..5).map(|_| bench.query("SELECT * FROM cpu").1).collect();
    runs.sort();
    let took = runs[runs.len() / 2];
    println!(
        "flight SELECT * streamed: {} rows/s ({read} rows, median {:.3} s of {:?})",
        common::per_second(read as f64, took),
        took.as_secs_f64(),
        runs.iter()
            .map(|r| format!("{:.3}", r.as_secs_f64()))
            .collect::<Vec<_>>()
    );

    let mut group = c.benchmark_group("flight");
    group.throughput(Throughput::Elements(total_rows as u64));
    group.sample_size(10);
    group.bench_function("select-star", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| bench.query("SELECT * FROM cpu").1).sum())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

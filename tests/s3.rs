//! The cold tier and exports on a real S3-compatible server: moto's `moto_server`
//! (PyPI `moto[server]`, in the venv `.ci/run` prepares and names with
//! `METRICSTORE_PYTHON`), started on 127.0.0.1 and stopped by its PID.
//!
//! Tiering to S3, querying across both tiers, restarting from the manifest on S3,
//! and `COPY ... TO 's3://...'`, each compared with an untiered copy of the data.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::util::pretty::pretty_format_batches;
use bytes::Bytes;
use metricstore::tier::{Policies, open_store};
use metricstore::{Config, MetricStore, StorageConfig, TagSet, TierConfig, WriteBatch};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const START: i64 = 1_767_225_600_000; // 2026-01-01

/// A moto server; killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    python: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Option<Moto> {
        let python = match std::env::var("METRICSTORE_PYTHON") {
            Ok(p) => p,
            Err(_) => {
                assert!(
                    std::env::var_os("METRICSTORE_CI").is_none(),
                    "METRICSTORE_PYTHON is not set but CI must run the S3 test"
                );
                println!("note: METRICSTORE_PYTHON not set; skipping the S3 test");
                return None;
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            python,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    fn options(&self) -> BTreeMap<String, String> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("aws_region", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn create_bucket(&self, bucket: &str) {
        let script = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='testing', \
             aws_secret_access_key='testing', region_name='us-east-1').create_bucket(Bucket='{bucket}')",
            self.endpoint
        );
        let status = Command::new(&self.python)
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(status.success(), "cannot create bucket {bucket}");
    }
}

fn storage() -> StorageConfig {
    StorageConfig {
        chunk_size: 64,
        out_of_order_window_ms: 4 * DAY,
        ..StorageConfig::default()
    }
}

fn tiered(moto: &Moto) -> Config {
    Config {
        storage: storage(),
        tier: Some(TierConfig {
            url: Some("s3://cold/metrics".into()),
            store_options: moto.options(),
            policies: Policies::hot_for_all(Duration::from_secs(12 * 3600)),
            ..TierConfig::new("unused")
        }),
        ..Config::default()
    }
}

fn data() -> Vec<WriteBatch> {
    (0..3 * 24 * 4)
        .map(|step| {
            let t = START + step * 15 * 60_000;
            let mut b = WriteBatch::new();
            for host in 0..3 {
                let tags = TagSet::new([("host", format!("h{host}"))]).unwrap();
                let value = (step * (host + 1)) as f64 % 97.0 + 0.25;
                b.add_sample("cpu", tags, "user", t, value);
            }
            b
        })
        .collect()
}

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(user), min(user), max(user), min(time), max(time) FROM cpu",
    "SELECT host, count(*), avg(user) FROM cpu GROUP BY host ORDER BY host",
    "SELECT time, user FROM cpu WHERE host = 'h1' AND time >= '2026-01-01T20:00:00Z' \
     AND time < '2026-01-02T04:00:00Z' ORDER BY time",
];

async fn answers(store: &MetricStore) -> Vec<String> {
    let mut out = Vec::new();
    for q in QUERIES {
        let batches = store.sql(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        out.push(format!("{q}\n{}", pretty_format_batches(&batches).unwrap()));
    }
    out
}

async fn get(store: &dyn ObjectStore, path: &str) -> Bytes {
    store
        .get(&Path::from(path))
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .bytes()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiering_queries_restart_and_export_on_s3() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("cold");
    moto.create_bucket("export");
    let copy = MetricStore::open(Config {
        storage: storage(),
        ..Config::default()
    })
    .unwrap();
    let store = MetricStore::open(tiered(&moto)).unwrap();
    for b in data() {
        store.write(&b).unwrap();
        copy.write(&b).unwrap();
    }
    let expected = answers(&copy).await;
    let report = store.run_tiering(START + 3 * DAY).await.unwrap().unwrap();
    assert!(report.rows > 0 && report.files >= 2, "{report:?}");
    assert_eq!(answers(&store).await, expected, "after tiering to S3");

    // The files are where the layout says, below the URL's prefix.
    let bucket = open_store("s3://cold", &moto.options()).unwrap();
    let manifest = store.cold().unwrap().manifest();
    let file = &manifest.tables["cpu"].files[0];
    assert!(
        file.path.starts_with("cpu/level=raw/date=2026-01-01/"),
        "{file:?}"
    );
    let bytes = get(bucket.as_ref(), &format!("metrics/{}", file.path)).await;
    assert_eq!(bytes.len() as u64, file.bytes);
    let listed = get(
        bucket.as_ref(),
        &format!("metrics/_manifest/{:020}.json", manifest.version),
    )
    .await;
    assert!(!listed.is_empty());

    // A new process finds the manifest on S3 (the hot rows it had are gone with the
    // old one, so only cold rows are compared).
    drop(store);
    let reopened = MetricStore::open(tiered(&moto)).unwrap();
    let cold_rows = reopened.sql("SELECT count(*) AS n FROM cpu").await.unwrap();
    assert_eq!(
        pretty_format_batches(&cold_rows).unwrap().to_string(),
        pretty_format_batches(
            &copy
                .sql(&format!(
                    "SELECT count(*) AS n FROM cpu WHERE time < to_timestamp_millis({})",
                    manifest.tables["cpu"].tiered_until
                ))
                .await
                .unwrap()
        )
        .unwrap()
        .to_string()
    );

    // COPY TO an S3 URL (a bucket opened on first use with the tier's options).
    let exported = reopened
        .sql("COPY (SELECT host, time, user FROM cpu ORDER BY host, time) TO 's3://export/cpu/all.parquet' STORED AS PARQUET")
        .await
        .unwrap();
    assert!(!exported.is_empty());
    let export = open_store("s3://export", &moto.options()).unwrap();
    let bytes = get(export.as_ref(), "cpu/all.parquet").await;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(
        rows as u64,
        manifest.tables["cpu"]
            .files
            .iter()
            .map(|f| f.rows)
            .sum::<u64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_an_error_naming_the_cold_tier() {
    let Some(moto) = Moto::start() else { return };
    let mut config = tiered(&moto);
    if let Some(t) = &mut config.tier {
        t.url = Some("s3://no-such-bucket/x".into());
    }
    let err = MetricStore::open(config).unwrap_err().to_string();
    assert!(err.contains("cold tier"), "{err}");
}

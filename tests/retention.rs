//! Raw retention and garbage collection in the cold tier, through the public API:
//! after a tiering run, queries answer exactly like an untiered copy from which a
//! naive loop removed the rows each series' policy expires (per UTC day file), and
//! unreferenced files of the tier's layout are collected while other objects stay.

use std::time::Duration;

use arrow::util::pretty::pretty_format_batches;
use metricstore::tier::{Policies, RetentionPolicy, SeriesSelector};
use metricstore::{Config, MetricStore, StorageConfig, TagSet, TierConfig, WriteBatch};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const START: i64 = 1_767_225_600_000; // 2026-01-01
const STEP: i64 = 15 * MIN;
const NOW: i64 = START + 5 * DAY;

fn storage() -> StorageConfig {
    StorageConfig {
        chunk_size: 64,
        out_of_order_window_ms: 10 * DAY,
        ..StorageConfig::default()
    }
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// `cpu{host="h0"}` keeps raw rows one day, everything else two.
fn policies() -> Policies {
    let mut default = RetentionPolicy::all(Duration::from_secs(12 * 3600));
    default.raw_for = Some(days(2));
    let short = RetentionPolicy {
        tables: "cpu".into(),
        series: Some(SeriesSelector::parse(r#"{host="h0"}"#).unwrap()),
        raw_for: Some(days(1)),
        ..default.clone()
    };
    Policies::new(vec![short], default).unwrap()
}

/// Whether a row survives: its day's file ends (last sample of the day) no earlier
/// than the series' retention cutoff. Rows the run keeps hot are not touched.
fn survives(table: &str, host: &str, t: i64) -> bool {
    let tiered_until = NOW - 12 * HOUR;
    if t >= tiered_until {
        return true;
    }
    let raw_for = if table == "cpu" && host == "h0" {
        DAY
    } else {
        2 * DAY
    };
    let file_end = (t.div_euclid(DAY) + 1) * DAY - STEP;
    file_end >= NOW - raw_for
}

fn data(keep: impl Fn(&str, &str, i64) -> bool) -> Vec<WriteBatch> {
    let mut out = Vec::new();
    let mut t = START;
    while t < NOW {
        let mut b = WriteBatch::new();
        for host in ["h0", "h1", "h2"] {
            let value = ((t - START) / STEP) as f64 + host.len() as f64;
            for table in ["cpu", "mem"] {
                if keep(table, host, t) {
                    let tags = TagSet::new([("host", host)]).unwrap();
                    b.add_sample(table, tags, "value", t, value);
                }
            }
        }
        out.push(b);
        t += STEP;
    }
    out
}

const QUERIES: &[&str] = &[
    "SELECT host, count(*), min(time), max(time), sum(value) FROM cpu GROUP BY host ORDER BY host",
    "SELECT host, count(*), min(time), max(time), sum(value) FROM mem GROUP BY host ORDER BY host",
    "SELECT date_bin(interval '1 day', time) AS d, count(*) FROM cpu GROUP BY d ORDER BY d",
];

async fn answers(store: &MetricStore) -> Vec<String> {
    let mut out = Vec::new();
    for q in QUERIES {
        let batches = store.sql(q).await.unwrap_or_else(|e| panic!("{q}: {e}"));
        out.push(format!("{q}\n{}", pretty_format_batches(&batches).unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_rows_past_retention_go_per_series_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let cold = dir.path().join("cold");
    let store = MetricStore::open(Config {
        storage: storage(),
        tier: Some(TierConfig {
            policies: policies(),
            ..TierConfig::new(&cold)
        }),
        ..Config::default()
    })
    .unwrap();
    let expected = MetricStore::open(Config {
        storage: storage(),
        ..Config::default()
    })
    .unwrap();
    for b in data(|_, _, _| true) {
        store.write(&b).unwrap();
    }
    for b in data(survives) {
        expected.write(&b).unwrap();
    }

    // A leftover of a failed run, and an object that is not the tier's.
    let stray = cold.join("cpu/level=raw/date=2025-12-31");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("1-2.parquet"), b"leftover").unwrap();
    std::fs::create_dir_all(cold.join("notes")).unwrap();
    std::fs::write(cold.join("notes/readme.txt"), b"mine").unwrap();

    let report = store.run_tiering(NOW).await.unwrap().unwrap();
    assert_eq!(report.garbage, 1, "{report:?}");
    assert!(!stray.join("1-2.parquet").exists());
    assert!(cold.join("notes/readme.txt").exists());
    // Days 0-2 of both tables go whole (3 days x 2 tables); day 3 of cpu loses h0.
    assert_eq!(report.expired.files_deleted, 6, "{report:?}");
    assert_eq!(report.expired.files_rewritten, 1, "{report:?}");
    let per_day = (DAY / STEP) as u64;
    assert_eq!(report.expired.rows, (3 * 3 * 2 + 1) * per_day, "{report:?}");
    assert_eq!(answers(&store).await, answers(&expected).await);

    let manifest = store.cold().unwrap().manifest();
    let cpu = &manifest.tables["cpu"];
    assert_eq!(cpu.raw_deleted_before, Some(START + 4 * DAY - STEP + 1));
    assert_eq!(
        manifest.tables["mem"].raw_deleted_before,
        Some(START + 3 * DAY - STEP + 1)
    );
    for f in &cpu.files {
        assert!(cold.join(&f.path).exists(), "{f:?}");
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(cold.join("cpu/level=raw"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|d| {
            std::fs::read_dir(cold.join("cpu/level=raw").join(d))
                .unwrap()
                .next()
                .is_some()
        })
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, ["date=2026-01-04", "date=2026-01-05"]);

    // A second run at the same time finds nothing more to do. After a clean run no
    // leftover can exist, so it does not list the cold root: a stray now stays.
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("1-2.parquet"), b"leftover").unwrap();
    let again = store.run_tiering(NOW).await.unwrap().unwrap();
    assert_eq!(again.expired, Default::default(), "{again:?}");
    assert_eq!(again.garbage, 0);
    assert!(stray.join("1-2.parquet").exists());
    assert_eq!(answers(&store).await, answers(&expected).await);

    // Restart reads the same manifest.
    drop(store);
    let reopened = MetricStore::open(Config {
        storage: storage(),
        tier: Some(TierConfig {
            policies: policies(),
            ..TierConfig::new(&cold)
        }),
        ..Config::default()
    })
    .unwrap();
    let cold_only: Vec<String> = {
        let mut out = Vec::new();
        for q in ["SELECT host, count(*) FROM cpu GROUP BY host ORDER BY host"] {
            let b = reopened.sql(q).await.unwrap();
            out.push(pretty_format_batches(&b).unwrap().to_string());
        }
        out
    };
    let tiered_until = NOW - 12 * HOUR;
    let b = expected
        .sql(&format!(
            "SELECT host, count(*) FROM cpu WHERE time < to_timestamp_millis({tiered_until}) \
             GROUP BY host ORDER BY host"
        ))
        .await
        .unwrap();
    assert_eq!(cold_only, [pretty_format_batches(&b).unwrap().to_string()]);

    // The first run after a restart collects what clean runs left alone.
    let first = reopened.run_tiering(NOW).await.unwrap().unwrap();
    assert_eq!(first.garbage, 1, "{first:?}");
    assert!(!stray.join("1-2.parquet").exists());

    // A run whose manifest commit fails (a directory sits where the next version
    // goes) may leave files behind: the run after it collects garbage again.
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("1-2.parquet"), b"leftover").unwrap();
    let blocked = cold.join(format!(
        "_manifest/{:020}.json",
        reopened.cold().unwrap().manifest().version + 1
    ));
    std::fs::create_dir_all(&blocked).unwrap();
    assert!(reopened.run_tiering(NOW + DAY).await.is_err());
    assert!(
        stray.join("1-2.parquet").exists(),
        "no collection after a clean run"
    );
    std::fs::remove_dir(&blocked).unwrap();
    let recovered = reopened.run_tiering(NOW + DAY).await.unwrap().unwrap();
    assert!(recovered.garbage >= 1, "{recovered:?}");
    assert!(!stray.join("1-2.parquet").exists());
    let manifest = reopened.cold().unwrap().manifest();
    for f in &manifest.tables["cpu"].files {
        assert!(cold.join(&f.path).exists(), "{f:?}");
    }
}

/// Rollup levels survive garbage collection, and go by their own `keep_for`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_levels_are_kept_for_their_own_time() {
    use metricstore::tier::RollupLevel;
    let dir = tempfile::tempdir().unwrap();
    let cold = dir.path().join("cold");
    let mut default = RetentionPolicy::all(Duration::from_secs(12 * 3600));
    default.raw_for = Some(days(2));
    default.levels = vec![
        RollupLevel {
            width: Duration::from_secs(300),
            keep_for: Some(days(3)),
        },
        RollupLevel {
            width: Duration::from_secs(3600),
            keep_for: None,
        },
    ];
    let config = || Config {
        storage: storage(),
        tier: Some(TierConfig {
            policies: Policies::new(Vec::new(), default.clone()).unwrap(),
            ..TierConfig::new(&cold)
        }),
        ..Config::default()
    };
    let store = MetricStore::open(config()).unwrap();
    for b in data(|table, _, _| table == "cpu") {
        store.write(&b).unwrap();
    }
    let report = store.run_tiering(NOW).await.unwrap().unwrap();
    // Raw: days 0-2 go (2 days); 5m: days 0-1 go (3 days, buckets end by the day's
    // end); 1h: kept forever.
    assert_eq!(report.expired.files_deleted, 3, "{report:?}");
    assert_eq!(report.expired.level_files_deleted, 2, "{report:?}");
    let dirs = |level: &str| -> Vec<String> {
        let mut d: Vec<String> = std::fs::read_dir(cold.join("cpu").join(level))
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| std::fs::read_dir(e.path()).unwrap().next().is_some())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        d.sort();
        d
    };
    assert_eq!(dirs("level=raw"), ["date=2026-01-04", "date=2026-01-05"]);
    assert_eq!(
        dirs("level=5m"),
        ["date=2026-01-03", "date=2026-01-04", "date=2026-01-05"]
    );
    assert_eq!(dirs("level=1h").len(), 5);
    // Another run collects nothing: the level files are referenced.
    let again = store.run_tiering(NOW).await.unwrap().unwrap();
    assert_eq!(again.garbage, 0, "{again:?}");
    assert_eq!(dirs("level=1h").len(), 5);
    let hourly = store
        .sql("SELECT sum(value_count) AS n FROM rollup('cpu', '1h')")
        .await
        .unwrap();
    let n = arrow::util::display::array_value_to_string(hourly[0].column(0), 0).unwrap();
    assert_eq!(n, (3 * (NOW - 12 * HOUR - START) / STEP).to_string());
}

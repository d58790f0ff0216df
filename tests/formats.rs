//! Files written by earlier versions still load: a data directory (checkpoint plus
//! WAL) written by each format version is checked in, and must recover to what an
//! in-memory store holds after the same writes.
//!
//! `METRICSTORE_WRITE_FIXTURES=1 cargo test --test formats` rewrites the current
//! version's files ([`CURRENT`]); do that only when adding a new version's
//! directory, never to make this test pass.

mod common;

use std::path::Path;

use metricstore::model::STALE_NAN_BITS;
use metricstore::{
    Config, DurabilityConfig, FsyncPolicy, MetricStore, StorageConfig, TagSet, TimeRange,
    WriteBatch,
};

fn storage() -> StorageConfig {
    StorageConfig {
        chunk_size: 4,
        ..StorageConfig::default()
    }
}

fn batches() -> Vec<WriteBatch> {
    (0..4)
        .map(|n: i64| {
            let mut b = WriteBatch::new();
            for host in ["a", "b"] {
                let tags = TagSet::new([("host", host), ("dc", "eu-1")]).unwrap();
                let s = b.series("cpu", tags, &["usage_user", "usage_idle"]);
                for i in 0..3 {
                    let t = n * 1000 + i * 100;
                    s.push(t, &[(n + i) as f64 * 0.25, 100.0 - i as f64])
                        .unwrap();
                }
            }
            let tags = TagSet::new([("job", "node")]).unwrap();
            b.add_sample("up", tags.clone(), "value", n * 1000, 1.0);
            b.add_sample(
                "up",
                tags,
                "value",
                n * 1000 + 1,
                f64::from_bits(STALE_NAN_BITS),
            );
            b
        })
        .collect()
}

fn dump(store: &MetricStore) -> Vec<String> {
    let mut out = Vec::new();
    for table in store.table_names() {
        let snapshot = store.select(&table, &[], TimeRange::ALL).unwrap();
        let rows = common::rows(&snapshot.record_batches(None).unwrap());
        out.extend(rows.iter().map(|r| format!("{table} {r:?}")));
    }
    out
}

fn durable(dir: &Path) -> Config {
    Config {
        storage: storage(),
        durability: Some(DurabilityConfig {
            fsync: FsyncPolicy::Always,
            checkpoint_interval: None,
            ..DurabilityConfig::new(dir)
        }),
        tier: None,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The directory the current build writes (WAL version 2, checkpoint version 1).
const CURRENT: &str = "durability-v2";

#[test]
fn version_1_data_directories_still_recover() {
    recovers("durability-v1");
}

#[test]
fn version_2_data_directories_still_recover() {
    recovers("durability-v2");
}

fn recovers(name: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    if name == CURRENT && std::env::var_os("METRICSTORE_WRITE_FIXTURES").is_some() {
        let _ = std::fs::remove_dir_all(&fixture);
        let store = MetricStore::open(durable(&fixture)).unwrap();
        for (n, b) in batches().iter().enumerate() {
            if n == 2 {
                store.checkpoint().unwrap();
            }
            store.write(b).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let store = MetricStore::open(durable(dir.path())).unwrap();
    let report = store.recovery().unwrap();
    assert!(report.checkpoint.is_some(), "{report:?}");
    assert_eq!(report.records_replayed, 2, "{report:?}");
    assert!(
        report.corrupt.is_empty() && report.torn.is_empty(),
        "{report:?}"
    );

    let expected = MetricStore::open(Config {
        storage: storage(),
        ..Config::default()
    })
    .unwrap();
    for b in batches() {
        expected.write(&b).unwrap();
    }
    assert_eq!(dump(&store), dump(&expected));
}

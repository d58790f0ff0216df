//! Writers and readers at the same time: every read is a consistent snapshot and no
//! acknowledged sample is lost.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use metricstore::{Config, MetricStore, StorageConfig, TagSet, TimeRange, WriteBatch};

const WRITERS: usize = 3;
const SERIES_PER_WRITER: usize = 20;
const ROUNDS: i64 = 400;

fn value(writer: usize, series: usize, t: i64) -> f64 {
    (writer * 1_000_000 + series * 10_000) as f64 + t as f64 / 4.0
}

#[test]
fn readers_see_consistent_snapshots_while_writers_write() {
    let store = MetricStore::open(Config {
        storage: StorageConfig {
            chunk_size: 16,
            ..StorageConfig::default()
        },
        ..Config::default()
    })
    .unwrap();
    let done = AtomicBool::new(false);
    let acknowledged = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = &store;
                let acknowledged = &acknowledged;
                scope.spawn(move || {
                    for t in 0..ROUNDS {
                        let mut batch = WriteBatch::new();
                        for s in 0..SERIES_PER_WRITER {
                            let tags = TagSet::new([
                                ("writer", w.to_string()),
                                ("series", format!("{s:02}")),
                            ])
                            .unwrap();
                            // Alternate tables so batches span several table locks.
                            let table = if s % 2 == 0 { "even" } else { "odd" };
                            batch.add_sample(table, tags, "v", t * 1_000, value(w, s, t));
                        }
                        store.write(&batch).unwrap();
                        acknowledged.fetch_add(SERIES_PER_WRITER as u64, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for _ in 0..2 {
            scope.spawn(|| {
                let mut last_counts: BTreeMap<(String, String, String), usize> = BTreeMap::new();
                let mut reads = 0;
                while !done.load(Ordering::SeqCst) || reads < 3 {
                    reads += 1;
                    for table in ["even", "odd"] {
                        let Ok(snapshot) = store.select(table, &[], TimeRange::ALL) else {
                            continue;
                        };
                        let rows = common::rows(&snapshot.record_batches(None).unwrap());
                        let mut per_series: BTreeMap<(String, String, String), Vec<i64>> =
                            BTreeMap::new();
                        for (tags, t, fields) in rows {
                            let series = tags[0].clone().unwrap();
                            let writer = tags[1].clone().unwrap();
                            let (w, s): (usize, usize) =
                                (writer.parse().unwrap(), series.parse().unwrap());
                            assert_eq!(
                                fields[0],
                                Some(value(w, s, t / 1_000).to_bits()),
                                "torn row in {table} {writer}/{series} at {t}"
                            );
                            per_series
                                .entry((table.to_string(), writer, series))
                                .or_default()
                                .push(t);
                        }
                        for (key, times) in per_series {
                            // Rows are contiguous from the first write: no gaps, in order.
                            let expected: Vec<i64> =
                                (0..times.len() as i64).map(|t| t * 1_000).collect();
                            assert_eq!(times, expected, "{key:?}");
                            let last = last_counts.entry(key.clone()).or_default();
                            assert!(times.len() >= *last, "count went backwards for {key:?}");
                            *last = times.len();
                        }
                    }
                }
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    let total: usize = ["even", "odd"]
        .iter()
        .map(|t| {
            let snap = store.select(t, &[], TimeRange::ALL).unwrap();
            common::rows(&snap.record_batches(None).unwrap()).len()
        })
        .sum();
    assert_eq!(total as u64, acknowledged.load(Ordering::SeqCst));
    assert_eq!(total, WRITERS * SERIES_PER_WRITER * ROUNDS as usize);
}

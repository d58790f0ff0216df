//! Durability through the public API: what was acknowledged survives a drop without
//! shutdown (a crash, as far as the files are concerned), a clean close replays
//! nothing, and damaged files are reported with file and offset.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use metricstore::model::STALE_NAN_BITS;
use metricstore::{
    Config, DurabilityConfig, FsyncPolicy, MetricStore, StorageConfig, TagSet, TimeRange,
    WriteBatch,
};

fn config(dir: &Path) -> Config {
    Config {
        storage: StorageConfig {
            chunk_size: 8,
            ..StorageConfig::default()
        },
        durability: Some(DurabilityConfig {
            fsync: FsyncPolicy::Always,
            checkpoint_interval: None,
            ..DurabilityConfig::new(dir)
        }),
        tier: None,
    }
}

fn open(dir: &Path) -> MetricStore {
    MetricStore::open(config(dir)).unwrap()
}

/// Batch `n`: a few series of two tables, one late row, a stale marker.
fn batch(n: i64) -> WriteBatch {
    let mut b = WriteBatch::new();
    for host in 0..3 {
        let tags = TagSet::new([("host", format!("h{host}"))]).unwrap();
        let s = b.series("cpu", tags, &["user", "system"]);
        for i in 0..5 {
            let t = n * 100 + i * 10;
            s.push(t, &[(n * i) as f64 + 0.5, -(host as f64)]).unwrap();
        }
    }
    let tags = TagSet::new([("job", "api")]).unwrap();
    b.add_sample("up", tags.clone(), "value", n * 100, 1.0);
    b.add_sample(
        "up",
        tags,
        "value",
        n * 100 + 1,
        f64::from_bits(STALE_NAN_BITS),
    );
    if n > 0 {
        // Late: lands among rows already written.
        let tags = TagSet::new([("host", "h0")]).unwrap();
        b.series("cpu", tags, &["user"])
            .push(n * 100 - 95, &[7.0])
            .unwrap();
    }
    b
}

/// Every table's schema and rows, floats as bits.
fn dump(store: &MetricStore) -> Vec<String> {
    let mut out = Vec::new();
    for table in store.table_names() {
        let snapshot = store.select(&table, &[], TimeRange::ALL).unwrap();
        let batches = snapshot.record_batches(None).unwrap();
        let fields: Vec<String> = batches
            .first()
            .map(|b| {
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            })
            .unwrap_or_default();
        out.push(format!("{table} {fields:?}"));
        out.extend(common::rows(&batches).iter().map(|r| format!("{r:?}")));
    }
    out
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    s.sort();
    s
}

#[test]
fn a_restart_without_shutdown_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 0..6 {
        store.write(&batch(n)).unwrap();
    }
    let before = dump(&store);
    drop(store);
    let store = open(dir.path());
    assert_eq!(dump(&store), before);
    let report = store.recovery().unwrap();
    assert_eq!(report.records_replayed, 6);
    assert_eq!(report.checkpoint, None);
    assert!(report.corrupt.is_empty() && report.torn.is_empty());
}

#[test]
fn close_checkpoints_so_the_next_start_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 0..4 {
        store.write(&batch(n)).unwrap();
    }
    let before = dump(&store);
    let info = store.close().unwrap().unwrap();
    assert_eq!(info.base_seq, 4);
    drop(store);
    let store = open(dir.path());
    let report = store.recovery().unwrap();
    assert_eq!(report.checkpoint.as_deref(), Some(info.path.as_path()));
    assert_eq!(report.records_replayed, 0);
    assert_eq!(dump(&store), before);
    // Later writes go on from the checkpoint.
    store.write(&batch(9)).unwrap();
    let after = dump(&store);
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.recovery().unwrap().records_replayed, 1);
    assert_eq!(dump(&store), after);
}

#[test]
fn checkpoints_trim_the_wal_and_recovery_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    if let Some(d) = &mut cfg.durability {
        d.segment_bytes = 600;
    }
    let store = MetricStore::open(cfg.clone()).unwrap();
    for n in 0..5 {
        store.write(&batch(n)).unwrap();
    }
    let old_segments = segments(dir.path());
    let kept: Vec<(PathBuf, Vec<u8>)> = old_segments
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    assert!(old_segments.len() > 2, "{old_segments:?}");
    let info = store.checkpoint().unwrap().unwrap();
    assert!(info.segments_removed >= old_segments.len() - 1, "{info:?}");
    for n in 5..8 {
        store.write(&batch(n)).unwrap();
    }
    let before = dump(&store);
    drop(store);
    // A crash during trimming leaves old segments behind: put them back. Their
    // records are in the checkpoint and must not be applied twice.
    // (Only the removed ones: the last may still be the live segment, holding the
    // records written after the checkpoint.)
    for (path, bytes) in &kept {
        if !path.exists() {
            std::fs::write(path, bytes).unwrap();
        }
    }
    for _ in 0..2 {
        let store = MetricStore::open(cfg.clone()).unwrap();
        assert_eq!(dump(&store), before);
        let report = store.recovery().unwrap().clone();
        assert_eq!(report.records_replayed, 3, "{report:?}");
        assert!(report.corrupt.is_empty(), "{report:?}");
    }
}

#[test]
fn a_torn_last_record_is_cut_off_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write(&batch(0)).unwrap();
    store.write(&batch(1)).unwrap();
    let before = dump(&store);
    drop(store);
    let last = segments(dir.path()).pop().unwrap();
    let good_len = std::fs::metadata(&last).unwrap().len();
    // Half a record header: a write cut short by the crash.
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 1, 2]);
    std::fs::write(&last, &bytes).unwrap();
    let store = open(dir.path());
    assert_eq!(dump(&store), before);
    let report = store.recovery().unwrap();
    assert_eq!(report.torn, vec![(last.clone(), good_len, 6)]);
    assert_eq!(std::fs::metadata(&last).unwrap().len(), good_len);
    drop(store);
    assert!(open(dir.path()).recovery().unwrap().torn.is_empty());
}

#[test]
fn a_damaged_record_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write(&batch(0)).unwrap();
    let first_only = dump(&store);
    store.write(&batch(1)).unwrap();
    store.write(&batch(2)).unwrap();
    drop(store);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let first_len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let second = 16 + 16 + first_len;
    bytes[second + 40] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();

    let store = open(dir.path());
    let report = store.recovery().unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.corrupt[0].path, segment);
    assert_eq!(report.corrupt[0].offset, second as u64);
    assert_eq!(dump(&store), first_only);
    drop(store);

    let mut refuse = config(dir.path());
    if let Some(d) = &mut refuse.durability {
        d.refuse_on_corruption = true;
    }
    let err = MetricStore::open(refuse).unwrap_err().to_string();
    assert!(
        err.contains(&segment.display().to_string()) && err.contains(&format!("byte {second}")),
        "{err}"
    );
}

#[test]
fn replay_ignores_limits_that_were_met_when_the_write_was_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for n in 0..3 {
        store.write(&batch(n)).unwrap();
    }
    let before = dump(&store);
    drop(store);
    let mut strict = config(dir.path());
    strict.storage.max_series_per_table = Some(1);
    strict.storage.out_of_order_window_ms = 0;
    let store = MetricStore::open(strict).unwrap();
    assert_eq!(dump(&store), before);
    assert!(store.recovery().unwrap().replay_errors.is_empty());
}

#[test]
fn concurrent_writers_share_fsyncs_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(dir.path()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let mut b = WriteBatch::new();
                    let tags = TagSet::new([("writer", w.to_string())]).unwrap();
                    b.add_sample("m", tags, "value", i, (w * 1000 + i) as f64);
                    store.write(&b).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let before = dump(&store);
    assert_eq!(before.len(), 1 + 200);
    drop(store);
    let store = open(dir.path());
    assert_eq!(dump(&store), before);
}

#[test]
fn the_interval_policy_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    if let Some(d) = &mut cfg.durability {
        d.fsync = FsyncPolicy::Interval;
        d.fsync_interval = Duration::from_millis(5);
        d.checkpoint_interval = Some(Duration::from_millis(20));
    }
    let store = MetricStore::open(cfg.clone()).unwrap();
    store.write(&batch(0)).unwrap();
    // The checkpoint task runs on its own; wait for its first checkpoint.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.durability_stats().unwrap().checkpoints == 0 {
        assert!(std::time::Instant::now() < deadline, "no checkpoint");
        std::thread::yield_now();
    }
    let before = dump(&store);
    drop(store);
    let store = MetricStore::open(cfg).unwrap();
    assert!(store.recovery().unwrap().checkpoint.is_some());
    assert_eq!(dump(&store), before);
}

#[test]
fn partial_writes_log_only_what_they_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write(&batch(3)).unwrap();
    let mut b = batch(4);
    // Far too old for the window: refused, the rest of the batch stored.
    let tags = TagSet::new([("host", "h1")]).unwrap();
    b.series("cpu", tags, &["user"])
        .push(-10_000_000, &[1.0])
        .unwrap();
    let refused = store.write_partial(&b).unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0, b.items().len() - 1);
    let before = dump(&store);
    drop(store);
    let store = open(dir.path());
    assert_eq!(dump(&store), before);
    assert!(store.recovery().unwrap().replay_errors.is_empty());
}

#[test]
fn a_data_directory_serves_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = MetricStore::open(config(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use by another process"), "{err}");
    first.write(&batch(1)).unwrap();
    drop(first);
    // Closing releases the lock, and the write is there.
    let again = open(dir.path());
    assert_eq!(dump(&again).len(), dump_len_of_one_batch());
}

fn dump_len_of_one_batch() -> usize {
    let scratch = tempfile::tempdir().unwrap();
    let store = open(scratch.path());
    store.write(&batch(1)).unwrap();
    dump(&store).len()
}

//! The storage engine through the public facade: round trips against a naive model,
//! out-of-order and duplicate semantics, atomic batches, limits and statistics.

mod common;

use std::collections::BTreeMap;

use metricstore::model::STALE_NAN_BITS;
use metricstore::storage::MatchOp;
use metricstore::{
    Config, Error, FieldKind, Matcher, MetricStore, StorageConfig, TagSet, TimeRange, WriteBatch,
};
use proptest::prelude::*;

fn tags(pairs: &[(&str, &str)]) -> TagSet {
    TagSet::new(pairs.iter().copied()).unwrap()
}

fn store(config: StorageConfig) -> MetricStore {
    MetricStore::open(Config {
        storage: config,
        ..Config::default()
    })
    .unwrap()
}

fn small_chunks() -> StorageConfig {
    StorageConfig {
        chunk_size: 8,
        chunk_span_ms: 1_000,
        out_of_order_window_ms: 500,
        ..StorageConfig::default()
    }
}

type Pairs = Vec<(String, String)>;

/// The naive twin: per series (sorted tag pairs), per timestamp, per field, the last
/// value written; plus the order in which tag keys and fields first appeared, which is
/// the table's column order.
#[derive(Default, Clone)]
struct Model {
    series: BTreeMap<Pairs, BTreeMap<i64, [Option<u64>; 2]>>,
    newest: BTreeMap<usize, i64>,
    tag_order: Vec<String>,
    field_order: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Op {
    host: usize,
    fields: Vec<usize>,
    time: i64,
    value: f64,
}

fn value_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-1000i64..1000).prop_map(|v| v as f64 / 10.0),
        1 => any::<u64>().prop_map(f64::from_bits),
        1 => prop::sample::select(vec![
            f64::from_bits(STALE_NAN_BITS), f64::NAN, -0.0, 0.0, f64::INFINITY,
            f64::NEG_INFINITY, f64::MIN_POSITIVE / 4.0, f64::MAX, f64::MIN,
        ]),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    (
        0usize..4,
        prop::sample::select(vec![vec![0], vec![1], vec![0, 1], vec![1, 0]]),
        0i64..3_000,
        value_strategy(),
    )
        .prop_map(|(host, fields, time, value)| Op {
            host,
            fields,
            time,
            value,
        })
}

const FIELDS: [&str; 2] = ["a", "b"];

fn host_tags(host: usize) -> TagSet {
    // Host 3 lacks the `dc` tag, so scans must read it as null.
    if host == 3 {
        tags(&[("host", "h3")])
    } else {
        tags(&[
            ("host", &format!("h{host}")),
            ("dc", if host.is_multiple_of(2) { "x" } else { "y" }),
        ])
    }
}

/// Applies one batch to the model unless some sample is outside the window.
fn apply_model(model: &mut Model, ops: &[Op], window: i64) -> bool {
    let mut trial = model.newest.clone();
    for op in ops {
        let n = trial.entry(op.host).or_insert(i64::MIN);
        if op.time < n.saturating_sub(window) {
            return false;
        }
        *n = (*n).max(op.time);
    }
    model.newest = trial;
    for op in ops {
        let key = host_tags(op.host).pairs().to_vec();
        for (k, _) in &key {
            if !model.tag_order.contains(k) {
                model.tag_order.push(k.clone());
            }
        }
        for &f in &op.fields {
            if !model.field_order.contains(&f) {
                model.field_order.push(f);
            }
        }
        let row = model
            .series
            .entry(key)
            .or_default()
            .entry(op.time)
            .or_insert([None, None]);
        for (i, &f) in op.fields.iter().enumerate() {
            row[f] = Some((op.value + i as f64).to_bits());
        }
    }
    true
}

thread_local! {
    static HOST_TAGS: std::cell::RefCell<BTreeMap<usize, TagSet>> = Default::default();
}

fn batch_of(ops: &[Op]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for op in ops {
        let names: Vec<&str> = op.fields.iter().map(|&f| FIELDS[f]).collect();
        let values: Vec<f64> = (0..op.fields.len()).map(|i| op.value + i as f64).collect();
        // Even hosts reuse one tag set across batches, as ingest does for a series
        // it has seen, so that writes take the tag set's series hint; odd hosts
        // build theirs afresh and are looked up by their strings.
        let tags = if op.host.is_multiple_of(2) {
            HOST_TAGS.with(|cache| {
                cache
                    .borrow_mut()
                    .entry(op.host)
                    .or_insert_with(|| host_tags(op.host))
                    .clone()
            })
        } else {
            host_tags(op.host)
        };
        batch
            .series("m", tags, &names)
            .push(op.time, &values)
            .unwrap();
    }
    batch
}

/// Expected scan output: stale markers read as null, series in tag order (nulls last).
fn expected_rows(model: &Model) -> Vec<common::Row> {
    let column = |pairs: &Pairs| -> Vec<Option<String>> {
        model
            .tag_order
            .iter()
            .map(|k| pairs.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone()))
            .collect()
    };
    let mut keys: Vec<(Vec<Option<String>>, &Pairs)> =
        model.series.keys().map(|k| (column(k), k)).collect();
    keys.sort_by(|(a, _), (b, _)| {
        a.iter()
            .zip(b.iter())
            .map(|(x, y)| match (x, y) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out = Vec::new();
    for (columns, key) in keys {
        for (&t, row) in &model.series[key] {
            let fields = model
                .field_order
                .iter()
                .map(|&f| row[f].filter(|&bits| bits != STALE_NAN_BITS))
                .collect();
            out.push((columns.clone(), t, fields));
        }
    }
    out
}

fn scan(store: &MetricStore, range: TimeRange) -> Vec<common::Row> {
    match store.select("m", &[], range) {
        Ok(snapshot) => common::rows(&snapshot.record_batches(None).unwrap()),
        Err(Error::TableNotFound(_)) => Vec::new(),
        Err(e) => panic!("{e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the order, duplicates and batching, a scan returns exactly what the
    /// naive model holds: last write wins per field, too-old batches change nothing,
    /// every float comes back bit for bit.
    #[test]
    fn scans_equal_the_naive_model(
        batches in prop::collection::vec(prop::collection::vec(op_strategy(), 1..12), 1..40),
        seal_at_end in any::<bool>(),
    ) {
        let config = small_chunks();
        let window = config.out_of_order_window_ms;
        let store = store(config);
        let mut model = Model::default();
        for ops in &batches {
            let accepted = apply_model(&mut model, ops, window);
            let result = store.write(&batch_of(ops));
            prop_assert_eq!(result.is_ok(), accepted, "{:?}", result);
        }
        if seal_at_end {
            store.seal_all();
        }
        prop_assert_eq!(scan(&store, TimeRange::ALL), expected_rows(&model));
        // A sub-range must be the matching part of the full answer.
        let (start, end) = (700, 1_900);
        let expected: Vec<_> = expected_rows(&model)
            .into_iter()
            .filter(|r| r.1 >= start && r.1 < end)
            .collect();
        prop_assert_eq!(scan(&store, TimeRange::new(start, end)), expected);
    }
}

#[test]
fn out_of_order_within_the_window_reads_back_in_time_order() {
    let store = store(StorageConfig {
        chunk_size: 4,
        ..StorageConfig::default()
    });
    let mut batch = WriteBatch::new();
    for t in [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 50_i64] {
        batch
            .series("m", tags(&[("host", "a")]), &["a"])
            .push(t + 1000, &[t as f64])
            .unwrap();
    }
    store.write(&batch).unwrap();
    let rows = scan(&store, TimeRange::ALL);
    let times: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    assert_eq!(times.len(), 11);
}

#[test]
fn too_old_samples_are_refused_with_series_and_timestamp() {
    let store = store(small_chunks());
    let mut batch = WriteBatch::new();
    batch.add_sample("m", tags(&[("host", "a")]), "a", 10_000, 1.0);
    store.write(&batch).unwrap();
    let mut late = WriteBatch::new();
    late.add_sample("m", tags(&[("host", "b")]), "a", 1, 1.0);
    late.add_sample("m", tags(&[("host", "a")]), "a", 9_000, 2.0);
    let err = store.write(&late).unwrap_err();
    assert_eq!(
        err.to_string(),
        "write batch item 1 (table \"m\"): sample at 9000 ms for series m{host=\"a\"} is too old: \
         the series' newest sample is at 10000 ms and the out-of-order window is 500 ms"
    );
    // Atomic: the valid first item was not stored either.
    assert_eq!(store.stats().total.series, 1);
    assert_eq!(scan(&store, TimeRange::ALL).len(), 1);
}

#[test]
fn the_same_timestamp_twice_keeps_the_last_value() {
    let store = store(small_chunks());
    for v in [1.0, 2.0, 3.0] {
        let mut batch = WriteBatch::new();
        batch.add_sample("m", tags(&[("host", "a")]), "a", 1_000, v);
        store.write(&batch).unwrap();
    }
    let rows = scan(&store, TimeRange::ALL);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2[0], Some(3.0f64.to_bits()));
}

#[test]
fn a_bad_item_leaves_the_store_unchanged_and_is_named() {
    let store = store(StorageConfig::default());
    let mut ok = WriteBatch::new();
    ok.add_sample("m", tags(&[("host", "a")]), "a", 1, 1.0);
    store.write(&ok).unwrap();
    let before = store.stats();

    let mut batch = WriteBatch::new();
    batch.add_sample("m", tags(&[("host", "a")]), "a", 2, 2.0);
    batch.add_sample("other", tags(&[("host", "b")]), "x", 2, 2.0);
    batch.add_sample("m", tags(&[("__bad", "b")]), "a", 2, 2.0);
    let err = store.write(&batch).unwrap_err();
    assert_eq!(
        err.to_string(),
        "write batch item 2 (table \"m\"): invalid tag name \"__bad\": \
         names starting with `__` are reserved"
    );
    assert_eq!(store.stats(), before);
    assert_eq!(store.table_names(), vec!["m"]);

    let mut conflict = WriteBatch::new();
    conflict.add_sample("m", tags(&[("a", "x")]), "v", 2, 2.0);
    let err = store.write(&conflict).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"a\" is already a field and cannot also be a tag"),
        "{err}"
    );
    let mut bad_table = WriteBatch::new();
    bad_table.add_sample("", TagSet::empty(), "v", 2, 2.0);
    assert!(matches!(
        store.write(&bad_table).unwrap_err(),
        Error::BatchItem { item: 0, .. }
    ));
    assert_eq!(store.stats(), before);
}

#[test]
fn the_memory_limit_refuses_writes_and_keeps_what_was_stored() {
    let store = store(StorageConfig {
        memory_limit: Some(200_000),
        ..StorageConfig::default()
    });
    let mut stored = 0;
    let mut refused = None;
    for round in 0..1_000 {
        let mut batch = WriteBatch::new();
        for s in 0..50 {
            batch.add_sample(
                "m",
                tags(&[("s", &s.to_string())]),
                "v",
                round,
                // Values that do not compress: the limit must come from samples.
                ((round * 7919 + s) as f64).sqrt(),
            );
        }
        match store.write(&batch) {
            Ok(()) => stored += 50,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
        assert!(store.stats().memory_used <= 200_000);
    }
    let err = refused.expect("the limit must be reached");
    assert!(
        matches!(err, Error::MemoryLimit { limit: 200_000, .. }),
        "{err}"
    );
    assert!(err.to_string().starts_with("memory limit reached"), "{err}");
    assert_eq!(scan_table(&store, "m"), stored);
}

fn scan_table(store: &MetricStore, table: &str) -> usize {
    store
        .select(table, &[], TimeRange::ALL)
        .unwrap()
        .record_batches(None)
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum()
}

#[test]
fn cardinality_limits_refuse_new_series_only() {
    let store = store(StorageConfig {
        max_series_per_table: Some(3),
        max_tag_values_per_key: Some(2),
        ..StorageConfig::default()
    });
    let write = |pairs: &[(&str, &str)], t: i64| {
        let mut b = WriteBatch::new();
        b.add_sample("m", tags(pairs), "v", t, 1.0);
        store.write(&b)
    };
    write(&[("a", "1"), ("b", "1")], 1).unwrap();
    write(&[("a", "2"), ("b", "1")], 1).unwrap();
    let err = write(&[("a", "3"), ("b", "1")], 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("tag \"a\" of table \"m\" has reached its limit of 2 distinct values"),
        "{err}"
    );
    write(&[("a", "1"), ("b", "2")], 1).unwrap();
    let err = write(&[("a", "2"), ("b", "2")], 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("table \"m\" has reached its limit of 3 series"),
        "{err}"
    );
    // Existing series still take writes.
    write(&[("a", "2"), ("b", "1")], 2).unwrap();
    assert_eq!(scan_table(&store, "m"), 4);
}

#[test]
fn matchers_select_like_prometheus() {
    let store = MetricStore::in_memory();
    let mut batch = WriteBatch::new();
    for (job, code) in [("api", "200"), ("api", "500"), ("web", "200"), ("db", "")] {
        batch.add_sample(
            "http_requests_total",
            tags(&[("job", job), ("code", code)]),
            "value",
            1,
            1.0,
        );
    }
    store.write(&batch).unwrap();
    let count = |matchers: &[Matcher]| {
        store
            .select("http_requests_total", matchers, TimeRange::ALL)
            .unwrap()
            .series()
            .len()
    };
    assert_eq!(count(&[]), 4);
    assert_eq!(count(&[Matcher::eq("job", "api")]), 2);
    assert_eq!(
        count(&[Matcher::new("job", MatchOp::RegexMatch, "a.*|w.*").unwrap()]),
        3
    );
    assert_eq!(
        count(&[Matcher::new("job", MatchOp::RegexMatch, "p").unwrap()]),
        0,
        "anchored"
    );
    assert_eq!(
        count(&[Matcher::eq("code", "")]),
        1,
        "missing label equals empty"
    );
    assert_eq!(
        count(&[Matcher::new("code", MatchOp::NotEqual, "200").unwrap()]),
        2
    );
    assert_eq!(
        count(&[Matcher::new("job", MatchOp::In(vec!["db".into(), "web".into()]), "").unwrap()]),
        2
    );
    assert_eq!(store.stats().tables[0].name, "http_requests_total");
    assert_eq!(
        store.stats().tables[0].tag_cardinality,
        vec![("job".to_string(), 3), ("code".to_string(), 2)]
    );
}

#[test]
fn latest_needs_no_decoding_and_follows_every_write() {
    let store = store(small_chunks());
    let mut batch = WriteBatch::new();
    let s = batch.series("m", tags(&[("host", "a")]), &["a", "b"]);
    for t in 0..20 {
        s.push(t * 10, &[t as f64, -(t as f64)]).unwrap();
    }
    store.write(&batch).unwrap();
    let snap = store.select("m", &[], TimeRange::ALL).unwrap();
    let (t, row) = snap.series()[0].latest().unwrap();
    assert_eq!((t, row.to_vec()), (190, vec![Some(19.0), Some(-19.0)]));
    // Overwrite the newest row after it was sealed.
    store.seal_all();
    let mut batch = WriteBatch::new();
    batch.add_sample("m", tags(&[("host", "a")]), "b", 190, 7.0);
    store.write(&batch).unwrap();
    let snap = store.select("m", &[], TimeRange::ALL).unwrap();
    assert_eq!(snap.series()[0].head_rows(), 0);
    let (t, row) = snap.series()[0].latest().unwrap();
    assert_eq!((t, row.to_vec()), (190, vec![Some(19.0), Some(7.0)]));
}

#[test]
fn stats_count_series_samples_and_bytes() {
    let store = MetricStore::in_memory();
    let mut batch = WriteBatch::new();
    for s in 0..10 {
        let w = batch.series(
            "cpu",
            tags(&[("host", &format!("h{s}"))]),
            &["user", "system"],
        );
        w.with_kind("user", FieldKind::Gauge);
        for t in 0..1_000 {
            w.push(t * 10_000, &[(t % 7) as f64, 1.0]).unwrap();
        }
    }
    store.write(&batch).unwrap();
    store.seal_all();
    let stats = store.stats();
    let cpu = &stats.tables[0];
    assert_eq!((cpu.series, cpu.rows, cpu.samples), (10, 10_000, 20_000));
    assert!(
        cpu.chunks >= 30,
        "sealed at 512 rows or the hour: {}",
        cpu.chunks
    );
    assert_eq!(cpu.head_bytes, 0);
    assert!(cpu.chunk_bytes > 0 && cpu.index_bytes > 0 && cpu.dictionary_bytes > 0);
    assert!(cpu.bytes_per_sample() < 2.0, "{}", cpu.bytes_per_sample());
    assert_eq!(stats.top_tables_by_series, vec![("cpu".to_string(), 10)]);
    assert_eq!(
        stats.top_tag_keys,
        vec![("cpu".to_string(), "host".to_string(), 10)]
    );
    assert_eq!(stats.total.samples, 20_000);
}

/// One item of a partial-write batch: table, host, extra tag, rows.
type PartialItem = (bool, usize, Option<String>, Vec<(i64, f64)>);

fn partial_item() -> impl Strategy<Value = PartialItem> {
    (
        prop::bool::weighted(0.9),
        0usize..6,
        prop::option::of(prop_oneof![
            Just("ok".to_string()),
            Just("__bad".to_string())
        ]),
        prop::collection::vec((0i64..3_000, -5.0f64..5.0), 1..5),
    )
}

fn partial_batch(items: &[PartialItem]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (good_table, host, extra, rows) in items {
        let table = if *good_table { "m" } else { "bad\ntable" };
        let mut pairs = vec![("host".to_string(), host.to_string())];
        if let Some(key) = extra {
            pairs.push((key.clone(), "x".to_string()));
        }
        let tags = TagSet::new(pairs).unwrap();
        let s = b.series(table, tags, &["v"]);
        for &(t, v) in rows {
            s.push(t, &[v]).unwrap();
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A partial write stores exactly what writing each item alone, in order, would:
    /// the same items are refused (too old, series limit, invalid names) and the
    /// stores end up equal.
    #[test]
    fn partial_writes_equal_item_by_item_writes(
        batches in prop::collection::vec(prop::collection::vec(partial_item(), 1..10), 1..6),
    ) {
        let config = StorageConfig {
            max_series_per_table: Some(4),
            ..small_chunks()
        };
        let partial = store(config.clone());
        let single = store(config);
        for items in &batches {
            let batch = partial_batch(items);
            let refused: Vec<usize> =
                partial.write_partial(&batch).unwrap().into_iter().map(|(i, _)| i).collect();
            let mut expected = Vec::new();
            for (i, item) in batch.items().iter().enumerate() {
                let mut one = WriteBatch::new();
                one.push(item.clone());
                if single.write(&one).is_err() {
                    expected.push(i);
                }
            }
            prop_assert_eq!(refused, expected);
        }
        prop_assert_eq!(partial.table_names(), single.table_names());
        prop_assert_eq!(scan(&partial, TimeRange::ALL), scan(&single, TimeRange::ALL));
    }
}

#[test]
fn refused_items_name_their_reason_and_the_rest_is_stored() {
    let store = store(StorageConfig {
        max_series_per_table: Some(3),
        ..small_chunks()
    });
    let mut b = WriteBatch::new();
    b.add_sample("m", tags(&[("host", "a")]), "v", 1_000, 1.0);
    b.add_sample("m", tags(&[("host", "a")]), "v", 100, 2.0); // too old
    b.add_sample("m", tags(&[("host", "b")]), "v", 1_000, 3.0);
    b.add_sample("m", tags(&[("__x", "c")]), "v", 1_000, 5.0); // invalid tag
    b.add_sample("m", tags(&[("host", "c")]), "v", 1_000, 4.0);
    b.add_sample("m", tags(&[("host", "d")]), "v", 1_000, 6.0); // fourth series
    let refused = store.write_partial(&b).unwrap();
    let reasons: Vec<(usize, String)> = refused.iter().map(|(i, e)| (*i, e.to_string())).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0].0, 1);
    assert!(reasons[0].1.contains("too old"), "{reasons:?}");
    assert_eq!(reasons[1].0, 3);
    assert!(reasons[1].1.contains("__x"), "{reasons:?}");
    assert_eq!(reasons[2].0, 5);
    assert!(reasons[2].1.contains("limit of 3 series"), "{reasons:?}");
    assert_eq!(scan(&store, TimeRange::ALL).len(), 3);
}

/// One tag set object written to several tables and stores lands in each one's own
/// series: the series a tag set remembers from one table must not be trusted by
/// another (where the same id is some other series).
#[test]
fn a_tag_set_shared_by_tables_and_stores_finds_its_own_series_in_each() {
    let (a, b) = (tags(&[("host", "a")]), tags(&[("host", "b")]));
    let write = |store: &MetricStore, table: &str, tags: &TagSet, t: i64, v: f64| {
        let mut batch = WriteBatch::new();
        batch.add_sample(table, tags.clone(), "value", t, v);
        store.write(&batch).unwrap();
    };
    let first = MetricStore::in_memory();
    let second = MetricStore::in_memory();
    // Ids in `first.t`: b 0, a 1. In `first.u`: a 0. In `second.t`: a 0, b 1.
    write(&first, "t", &b, 1_000, 1.0);
    write(&first, "t", &a, 1_000, 2.0);
    write(&first, "u", &a, 1_000, 3.0);
    write(&second, "t", &a, 1_000, 4.0);
    write(&second, "t", &b, 1_000, 5.0);
    // Again, each now arriving with the hint of the table written last.
    for (store, table, tags, v) in [
        (&first, "t", &b, 10.0),
        (&first, "t", &a, 20.0),
        (&first, "u", &a, 30.0),
        (&second, "t", &a, 40.0),
        (&second, "t", &b, 50.0),
        (&first, "t", &a, 21.0),
        (&second, "t", &b, 51.0),
    ] {
        write(store, table, tags, 2_000 + v as i64, v);
    }
    let values_of = |store: &MetricStore, table: &str, host: &str| -> Vec<f64> {
        let matcher = Matcher::new("host", MatchOp::Equal, host).unwrap();
        let snapshot = store.select(table, &[matcher], TimeRange::ALL).unwrap();
        common::rows(&snapshot.record_batches(None).unwrap())
            .into_iter()
            .map(|row| row.2[0].map(f64::from_bits).unwrap())
            .collect()
    };
    assert_eq!(values_of(&first, "t", "b"), [1.0, 10.0]);
    assert_eq!(values_of(&first, "t", "a"), [2.0, 20.0, 21.0]);
    assert_eq!(values_of(&first, "u", "a"), [3.0, 30.0]);
    assert_eq!(values_of(&second, "t", "a"), [4.0, 40.0]);
    assert_eq!(values_of(&second, "t", "b"), [5.0, 50.0, 51.0]);
    assert_eq!(first.stats().total.series, 3);
    assert_eq!(second.stats().total.series, 2);
}

/// Series left without rows when the cold tier takes their data are retired: the
/// table forgets their ids, postings and tag values, gives back their memory, and
/// writes to the live series (hinted or not) and to retired tag sets go on right.
#[test]
fn series_left_without_rows_are_retired() {
    let store = MetricStore::in_memory();
    let live = tags(&[("host", "live"), ("dc", "x")]);
    let write = |tags: &TagSet, t: i64, v: f64| {
        let mut batch = WriteBatch::new();
        batch.add_sample("m", tags.clone(), "value", t, v);
        store.write(&batch).unwrap();
    };
    // 20 series with only old rows, one with old and new rows.
    let gone: Vec<TagSet> = (0..20)
        .map(|i| tags(&[("host", &format!("gone{i}")), ("dc", "y")]))
        .collect();
    for (i, tags) in gone.iter().enumerate() {
        write(tags, 1_000 + i as i64, i as f64);
    }
    write(&live, 1_000, 0.5);
    write(&live, 50_000, 1.5);
    store.seal_all();
    let memory = store.storage().memory_used();
    let distinct = |store: &MetricStore, key: &str| {
        let stats = store.stats();
        let table = stats.tables.iter().find(|t| t.name == "m").unwrap();
        let found = table.tag_cardinality.iter().find(|(k, _)| k == key);
        found.map_or(0, |(_, n)| *n)
    };
    assert_eq!(
        (store.stats().total.series, distinct(&store, "host")),
        (21, 21)
    );

    store.storage().drop_before("m", 10_000);
    assert_eq!(store.stats().total.series, 1);
    assert_eq!((distinct(&store, "host"), distinct(&store, "dc")), (1, 1));
    assert!(store.storage().memory_used() < memory);
    let hosts = |value: &str| {
        let matcher = Matcher::new("host", MatchOp::RegexMatch, value).unwrap();
        let snapshot = store.select("m", &[matcher], TimeRange::ALL).unwrap();
        common::rows(&snapshot.record_batches(None).unwrap())
            .into_iter()
            .map(|row| {
                (
                    row.0[1].clone().unwrap(),
                    row.1,
                    row.2[0].map(f64::from_bits),
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(hosts("gone.*").is_empty());
    // `live` still carries its hint from before (id 20); the table now has one series.
    write(&live, 60_000, 2.5);
    write(&gone[0], 60_000, 9.0);
    assert_eq!(
        hosts("live"),
        [
            ("live".into(), 50_000, Some(1.5)),
            ("live".into(), 60_000, Some(2.5))
        ]
    );
    assert_eq!(hosts("gone.*"), [("gone0".into(), 60_000, Some(9.0))]);
    assert_eq!(store.stats().total.series, 2);
}

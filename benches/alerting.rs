//! Alert rule evaluation over the latest state (`latest('cpu')`), the targets:
//! - threshold-rule evaluations per second against the latest state of 10,000 series
//!   (`METRICSTORE_BENCH_ALERT_SERIES`; target ≥ 10,000/s on 2 cores);
//! - p99 of one rule over the current state of 100,000 series
//!   (`METRICSTORE_BENCH_ALERT_BIG`; target ≤ 5 ms).
//!
//! Each evaluation is a full group evaluation: execute the kept plan, step the state
//! machine, queue notifications (no receivers here; no history writes). Tiny sizes
//! under `cargo test --all-targets`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use metricstore::alert::{Alerting, AlertingConfig, RuleGroup};
use metricstore::{MetricStore, TagSet, WriteBatch};

const T0: i64 = 1_700_000_000_000;

/// `series` hosts of table cpu, one sample each; one in a hundred above 90.
fn store(series: usize) -> Arc<MetricStore> {
    let store = MetricStore::in_memory();
    let mut batch = WriteBatch::new();
    for i in 0..series {
        let tags = TagSet::new([("host", format!("host_{i}"))]).expect("tags");
        let usage = if i % 100 == 0 { 95.0 } else { (i % 80) as f64 };
        batch.add_sample("cpu", tags, "usage", T0, usage);
    }
    store.write(&batch).expect("write");
    Arc::new(store)
}

/// A group of `rules` threshold rules over the latest state.
fn group(name: &str, rules: usize) -> RuleGroup {
    let mut yaml = format!("name: {name}\nrules:\n");
    for r in 0..rules {
        yaml.push_str(&format!(
            "- alert: High{r}\n  sql: SELECT host, usage AS value FROM latest('cpu') WHERE usage > 90\n"
        ));
    }
    RuleGroup::parse(&yaml).expect("group")
}

async fn alerting(store: &Arc<MetricStore>, groups: &[RuleGroup]) -> Arc<Alerting> {
    let config = AlertingConfig {
        history: false,
        ..AlertingConfig::default()
    };
    let a = Alerting::new(store.clone(), config)
        .await
        .expect("alerting");
    for g in groups {
        a.put_group(g.clone()).await.expect("put");
    }
    a
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let series = common::size("METRICSTORE_BENCH_ALERT_SERIES", 100, 10_000);
    let big = common::size("METRICSTORE_BENCH_ALERT_BIG", 1_000, 100_000);
    let run_for = if common::bench_mode() {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(200)
    };

    // Throughput: two groups of 10 rules, one task each (one per core).
    let small = store(series);
    let groups = [group("a", 10), group("b", 10)];
    let a = runtime.block_on(alerting(&small, &groups));
    let start = Instant::now();
    let evaluations: usize = runtime.block_on(async {
        let tasks: Vec<_> = groups
            .iter()
            .map(|g| {
                let a = a.clone();
                let name = g.name.clone();
                tokio::spawn(async move {
                    let group = a.group(&name).expect("group");
                    let mut n = 0;
                    let mut at = T0;
                    while start.elapsed() < run_for {
                        at += 1_000;
                        a.evaluate_group(&group, at).await.expect("evaluate");
                        n += group.rules.len();
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("task");
        }
        total
    });
    let took = start.elapsed();
    println!(
        "alerting: {} threshold-rule evaluations/s against the latest state of {series} series \
         ({evaluations} in {:.2} s, 2 tasks)",
        common::per_second(evaluations as f64, took),
        took.as_secs_f64()
    );

    // Latency: one rule over `big` series.
    let large = store(big);
    let one = group("one", 1);
    let b = runtime.block_on(alerting(&large, std::slice::from_ref(&one)));
    let g = b.group("one").expect("group");
    let rounds = if common::bench_mode() { 500 } else { 20 };
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        let mut out = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let start = Instant::now();
            b.evaluate_group(&g, T0 + i as i64 * 1_000)
                .await
                .expect("evaluate");
            out.push(start.elapsed());
        }
        out
    });
    latencies.sort();
    let p = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "alerting: one rule over the latest state of {big} series: p50 {:.2} ms, p99 {:.2} ms ({rounds} evaluations)",
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3
    );

    let mut group_bench = c.benchmark_group("alerting");
    group_bench.sample_size(10);
    group_bench.bench_function("one rule over the big store", |bch| {
        let mut at = T0;
        bch.iter(|| {
            at += 1_000;
            runtime
                .block_on(b.evaluate_group(&g, at))
                .expect("evaluate")
        })
    });
    group_bench.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

use super::*;

fn small(seed: u64, variant: Variant) -> TsbsConfig {
    TsbsConfig {
        scale: 7,
        duration_ms: 10 * 60_000,
        seed,
        variant,
        ..TsbsConfig::standard()
    }
}

#[test]
fn same_seed_same_rows_and_other_seed_other_rows() {
    let a: Vec<Row> = CpuOnly::new(small(5, Variant::Float)).rows().collect();
    let b: Vec<Row> = CpuOnly::new(small(5, Variant::Float)).rows().collect();
    let c: Vec<Row> = CpuOnly::new(small(6, Variant::Float)).rows().collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(
        CpuOnly::new(small(5, Variant::Float)).hosts(),
        CpuOnly::new(small(5, Variant::Float)).hosts()
    );
}

#[test]
fn rows_are_in_time_then_host_order_and_count_scale_times_steps() {
    let config = small(1, Variant::Float);
    let data = CpuOnly::new(config.clone());
    let rows: Vec<Row> = data.rows().collect();
    assert_eq!(data.rows().len(), 7 * 60);
    assert_eq!(rows.len(), data.total_rows());
    assert_eq!(data.total_rows(), 7 * 10 * 60_000 / 10_000);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.host, i % 7);
        assert_eq!(row.timestamp_ms, config.start_ms + (i / 7) as i64 * 10_000);
    }
    assert_eq!(config.end_ms(), config.start_ms + 10 * 60_000);
    assert_eq!(TsbsConfig::standard().total_rows(), 8_640_000);
    assert_eq!(TsbsConfig::quick().total_rows(), 864_000);
}

#[test]
fn values_stay_in_range_and_walk_in_small_steps() {
    let rows: Vec<Row> = CpuOnly::new(small(2, Variant::Float)).rows().collect();
    for row in &rows {
        assert!(
            row.values.iter().all(|v| (0.0..=100.0).contains(v)),
            "{row:?}"
        );
    }
    let (first, next) = (rows[0].values, rows[7].values);
    assert!(first.iter().zip(next).all(|(a, b)| (a - b).abs() < 6.0));
    assert!(rows.iter().any(|r| r.values[0].fract() != 0.0));
}

#[test]
fn integer_variant_truncates_the_float_walk() {
    let ints: Vec<Row> = CpuOnly::new(small(3, Variant::Integer)).rows().collect();
    let floats: Vec<Row> = CpuOnly::new(small(3, Variant::Float)).rows().collect();
    for (i, f) in ints.iter().zip(&floats) {
        assert!(i.values.iter().all(|v| v.fract() == 0.0));
        let truncated = f.values.map(f64::trunc);
        assert_eq!(i.values, truncated);
    }
}

#[test]
fn hosts_carry_the_ten_tsbs_tags() {
    let data = CpuOnly::new(TsbsConfig::quick());
    assert_eq!(data.hosts().len(), 100);
    let keys: Vec<&str> = data.hosts()[0]
        .tags()
        .pairs()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "arch",
            "datacenter",
            "hostname",
            "os",
            "rack",
            "region",
            "service",
            "service_environment",
            "service_version",
            "team"
        ]
    );
    for host in data.hosts() {
        let tags = host.tags();
        assert_eq!(host.hostname(), format!("host_{}", host.index()));
        let region = tags.get("region").unwrap();
        assert!(tags.get("datacenter").unwrap().starts_with(region));
        assert!(tags.get("rack").unwrap().parse::<u32>().unwrap() < 100);
        assert!(tags.get("service").unwrap().parse::<u32>().unwrap() < 20);
    }
    let regions: std::collections::HashSet<_> = data
        .hosts()
        .iter()
        .map(|h| h.tags().get("region"))
        .collect();
    assert!(regions.len() >= 8, "{regions:?}");
    // Hosts do not depend on the scale.
    assert_eq!(
        CpuOnly::new(small(1, Variant::Float)).hosts()[3],
        data.hosts()[3]
    );
}

#[test]
fn batches_cover_every_row_exactly_once() {
    let data = CpuOnly::new(small(4, Variant::Integer));
    let rows: Vec<Row> = data.rows().collect();
    for per_batch in [1, 5, 7, 100, 1_000_000] {
        let mut seen = Vec::new();
        for batch in data.batches(per_batch) {
            assert!(batch.row_count() <= per_batch);
            for item in batch.items() {
                assert_eq!(item.table(), "cpu");
                let names: Vec<&str> = item.fields().iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(names, FIELDS);
                assert!(
                    item.fields()
                        .iter()
                        .all(|(_, k)| *k == Some(FieldKind::Gauge))
                );
                let host = item.tags().get("hostname").unwrap();
                let index: usize = host["host_".len()..].parse().unwrap();
                assert!(item.timestamps().windows(2).all(|w| w[0] < w[1]));
                for (i, &ts) in item.timestamps().iter().enumerate() {
                    seen.push(Row {
                        host: index,
                        timestamp_ms: ts,
                        values: item.row(i).try_into().unwrap(),
                    });
                }
            }
        }
        seen.sort_by_key(|r| (r.timestamp_ms, r.host));
        assert_eq!(seen, rows, "rows_per_batch {per_batch}");
    }
}

#[test]
fn degenerate_configs_generate_nothing() {
    for config in [
        TsbsConfig {
            interval_ms: 0,
            ..small(1, Variant::Float)
        },
        TsbsConfig {
            duration_ms: -5,
            ..small(1, Variant::Float)
        },
        TsbsConfig {
            scale: 0,
            ..small(1, Variant::Float)
        },
    ] {
        let data = CpuOnly::new(config);
        assert_eq!(data.total_rows(), 0);
        assert_eq!(data.rows().count(), 0);
        assert_eq!(data.batches(10).count(), 0);
    }
}

//! Property tests (round trip, never panic) and the real data set.

use super::*;
use proptest::prelude::*;

const TS: i64 = 1_000;

/// Hands out at most `step` bytes per read, to cut lines at every possible place.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        let (now, later) = self.data.split_at(n);
        buf[..n].copy_from_slice(now);
        self.data = later;
        Ok(n)
    }
}

/// Renders a label value with the format's escapes.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn value_strategy() -> impl Strategy<Value = (f64, String)> {
    prop_oneof![
        any::<f64>()
            .prop_filter("NaN payloads have no text form", |v| !v.is_nan())
            .prop_map(|v| (v, format!("{v}"))),
        any::<f64>()
            .prop_filter("no NaN", |v| !v.is_nan())
            .prop_map(|v| (v, format!("{v:e}"))),
        Just((f64::NAN, "NaN".to_string())),
        Just((f64::INFINITY, "+Inf".to_string())),
        Just((f64::INFINITY, "Inf".to_string())),
        Just((f64::NEG_INFINITY, "-Inf".to_string())),
        Just((-0.0, "-0".to_string())),
    ]
}

type Sample = (String, Vec<(String, String)>, (f64, String), Option<i64>);

fn sample_strategy() -> impl Strategy<Value = Sample> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "(\\PC|[\\\\\"\n]){1,8}", 0..4),
        value_strategy(),
        prop::option::of(any::<i64>()),
    )
        .prop_map(|(name, labels, value, ts)| (name, labels.into_iter().collect(), value, ts))
}

proptest! {
    #[test]
    fn round_trips_bit_exactly(samples in prop::collection::vec(sample_strategy(), 1..20), blanks in "[ \t]{1,3}") {
        let mut text = String::new();
        for (name, labels, (_, value), ts) in &samples {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            text.push_str(&format!("{name}{{{}}}{blanks}{value}", labels.join(",")));
            if let Some(ts) = ts {
                text.push_str(&format!("{blanks}{ts}"));
            }
            text.push('\n');
        }
        let batch = parse(&text, TS).unwrap();
        let mut got = Vec::new();
        for s in batch.items() {
            for (i, ts) in s.timestamps().iter().enumerate() {
                got.push((s.table().to_string(), s.tags().clone(), s.row(i)[0].to_bits(), *ts));
            }
        }
        let want: Vec<_> = samples
            .iter()
            .map(|(name, labels, (v, _), ts)| {
                (name.clone(), TagSet::new(labels.clone()).unwrap(), v.to_bits(), ts.unwrap_or(TS))
            })
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn reading_in_small_pieces_equals_parsing_the_whole(
        text in "([a-c]|[a-c]\\{x=\"[ab\\\\]{0,3}\"\\}|# TYPE a counter|[ \t]){1,3} (1|2.5|NaN)( -7)?(\r?\n){1,2}",
        repeat in 1usize..20,
        step in 1usize..17,
        max in 1usize..6,
    ) {
        let text = text.repeat(repeat);
        let whole = parse(&text, TS);
        let mut batches = Vec::new();
        let read = parse_reader(Trickle { data: text.as_bytes(), step }, TS, max, |b| {
            batches.push(b);
            Ok::<(), std::io::Error>(())
        });
        match (whole, read) {
            (Ok(whole), Ok(stats)) => {
                prop_assert_eq!(stats.samples, whole.sample_count());
                let flat = |b: &WriteBatch| -> Vec<(String, TagSet, i64, u64)> {
                    b.items().iter().flat_map(|s| (0..s.len()).map(move |i| {
                        (s.table().to_string(), s.tags().clone(), s.timestamps()[i], s.row(i)[0].to_bits())
                    })).collect()
                };
                let streamed: Vec<_> = batches.iter().flat_map(flat).collect();
                prop_assert_eq!(streamed, flat(&whole));
            }
            (Err(e), Err(ReadError::Parse(r))) => prop_assert_eq!(e, r),
            (whole, read) => prop_assert!(false, "parse {:?} but parse_reader {:?}", whole.err(), read.err()),
        }
    }

    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = parse(&text, TS);
    }

    #[test]
    fn never_panics_on_near_valid_text(text in "([a-z_:{}=,\"\\\\# \t\n.0-9eE+-]|NaN|Inf|TYPE|HELP|counter){0,120}") {
        let _ = parse(&text, TS);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300), max in 0usize..5) {
        let _ = parse_reader(&bytes[..], TS, max, |_| Ok::<(), std::io::Error>(()));
    }
}

#[test]
fn parses_the_real_node_exporter_file() {
    let path = "/work/shared/data/node-exporter.prom.zst";
    let Ok(file) = std::fs::File::open(path) else {
        println!("skipped: {path} not found");
        return;
    };
    let text = zstd::stream::decode_all(file).unwrap();
    let mut series = std::collections::HashSet::new();
    let (mut samples, mut nans) = (0usize, 0usize);
    let start = std::time::Instant::now();
    let stats = parse_reader(&text[..], 0, 100_000, |batch| {
        for s in batch.items() {
            series.insert((s.table().to_string(), s.tags().clone()));
            samples += s.len();
            nans += (0..s.len()).filter(|&i| s.row(i)[0].is_nan()).count();
        }
        Ok::<(), std::io::Error>(())
    })
    .unwrap();
    let streamed = start.elapsed();
    let text = std::str::from_utf8(&text).unwrap();
    let start = std::time::Instant::now();
    let whole = parse(text, 0).unwrap();
    let parsed = start.elapsed();
    let rate = |d: std::time::Duration| stats.lines as f64 / d.as_secs_f64();
    println!(
        "node-exporter: {} lines, {samples} samples, {} series, {nans} NaN, {} batches; \
         parse_reader {streamed:?} ({:.2}M lines/s), parse {parsed:?} ({:.2}M lines/s)",
        stats.lines,
        series.len(),
        stats.batches,
        rate(streamed) / 1e6,
        rate(parsed) / 1e6,
    );
    assert_eq!(samples, stats.samples);
    assert_eq!(whole.sample_count(), samples);
    assert!((1_200_000..1_300_000).contains(&samples), "{samples}");
    assert!((900..1_000).contains(&series.len()), "{}", series.len());
    assert!((38_000..39_500).contains(&nans), "{nans}");
}

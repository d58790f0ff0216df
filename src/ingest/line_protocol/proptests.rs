//! Property tests: rendered points parse back bit-exactly, and no input panics.

use std::collections::HashMap;

use super::*;
use proptest::prelude::*;

const TS: i64 = -3;

fn escape(s: &str, specials: &[char]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' || specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Names over the characters that need escapes, plus a few ordinary and non-ASCII ones.
fn name() -> impl Strategy<Value = String> {
    "[a-c ,=\\\\\"#é_.]{1,6}"
        .prop_filter("valid names", |n| validate_name(NameKind::Tag, n).is_ok())
}

/// A field value: its text and the f64 storage gets.
fn value() -> impl Strategy<Value = (String, f64)> {
    prop_oneof![
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| (format!("{v}"), v)),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| (format!("{v:e}"), v)),
        any::<i64>().prop_map(|v| (format!("{v}i"), v as f64)),
        any::<u64>().prop_map(|v| (format!("{v}u"), v as f64)),
        any::<bool>().prop_map(|v| (
            if v { "true" } else { "F" }.to_string(),
            f64::from(u8::from(v))
        )),
    ]
}

fn precision() -> impl Strategy<Value = Precision> {
    prop_oneof![
        Just(Precision::Nanosecond),
        Just(Precision::Microsecond),
        Just(Precision::Millisecond),
        Just(Precision::Second),
    ]
}

#[derive(Debug, Clone)]
struct Point {
    measurement: String,
    tags: Vec<(String, String)>,
    fields: Vec<(String, (String, f64))>,
    timestamp: Option<i64>,
}

fn point() -> impl Strategy<Value = Point> {
    (
        name(),
        prop::collection::vec((name(), name()), 0..4),
        prop::collection::vec((name(), value()), 1..4),
        prop::option::of(-(i64::MAX / 1000)..(i64::MAX / 1000)),
    )
        .prop_filter_map(
            "a field left",
            |(measurement, mut tags, mut fields, timestamp)| {
                let mut seen = std::collections::HashSet::new();
                tags.retain(|(k, _)| seen.insert(k.clone()));
                fields.retain(|(k, _)| seen.insert(k.clone()));
                // `#` cannot start a measurement: the line would be a comment.
                let measurement = match measurement.starts_with('#') {
                    true => format!("a{measurement}"),
                    false => measurement,
                };
                (!fields.is_empty()).then_some(Point {
                    measurement,
                    tags,
                    fields,
                    timestamp,
                })
            },
        )
}

fn render(p: &Point) -> String {
    let mut line = escape(&p.measurement, &[',', ' ']);
    for (k, v) in &p.tags {
        line.push(',');
        line.push_str(&escape(k, &[',', '=', ' ']));
        line.push('=');
        line.push_str(&escape(v, &[',', '=', ' ']));
    }
    for (i, (k, (text, _))) in p.fields.iter().enumerate() {
        line.push(if i == 0 { ' ' } else { ',' });
        line.push_str(&escape(k, &[',', '=', ' ']));
        line.push('=');
        line.push_str(text);
    }
    if let Some(ts) = p.timestamp {
        line.push_str(&format!(" {ts}"));
    }
    line
}

/// Per series, its rows in order: field names, timestamp, value bits.
type Rows = HashMap<(String, TagSet), Vec<(Vec<String>, i64, Vec<u64>)>>;

fn expected(points: &[Point], precision: Precision) -> Rows {
    let mut out = Rows::new();
    for p in points {
        let tags = TagSet::new(p.tags.iter().cloned()).unwrap();
        let names = p.fields.iter().map(|(k, _)| k.clone()).collect();
        let ts = p.timestamp.map_or(TS, |t| precision.to_millis(t).unwrap());
        let bits = p.fields.iter().map(|(_, (_, v))| v.to_bits()).collect();
        out.entry((p.measurement.clone(), tags))
            .or_default()
            .push((names, ts, bits));
    }
    out
}

fn actual(batch: &WriteBatch) -> Rows {
    let mut out = Rows::new();
    for s in batch.items() {
        let names: Vec<String> = s.fields().iter().map(|(n, _)| n.clone()).collect();
        let rows = out
            .entry((s.table().to_string(), s.tags().clone()))
            .or_default();
        for i in 0..s.len() {
            let bits = s.row(i).iter().map(|v| v.to_bits()).collect();
            rows.push((names.clone(), s.timestamps()[i], bits));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rendered_points_round_trip(
        points in prop::collection::vec(point(), 1..12),
        precision in precision(),
    ) {
        let text: Vec<String> = points.iter().map(render).collect();
        let text = text.join("\n");
        let batch = parse_strict(&text, precision, TS)
            .map_err(|e| TestCaseError::fail(format!("{e} in {text:?}")))?;
        prop_assert_eq!(actual(&batch), expected(&points, precision));
    }

    #[test]
    fn bad_lines_are_reported_and_good_ones_kept(
        lines in prop::collection::vec((point(), prop::option::of(0..4usize)), 1..12),
    ) {
        // Breaks some lines in ways that cannot parse; the rest must survive.
        let breaks = ["m v=\"text\"", ",a=1 v=1", "m v=nan", "m,a v=1"];
        let mut good = Vec::new();
        let mut bad_numbers = Vec::new();
        let mut text = String::new();
        for (i, (p, broken)) in lines.iter().enumerate() {
            match broken {
                Some(b) => {
                    text.push_str(breaks[*b]);
                    bad_numbers.push(i + 1);
                }
                None => {
                    text.push_str(&render(p));
                    good.push(p.clone());
                }
            }
            text.push_str("\r\n");
        }
        let result = parse(&text, Precision::Millisecond, TS);
        let numbers: Vec<usize> = result.errors.iter().map(|e| e.line).collect();
        prop_assert_eq!(numbers, bad_numbers);
        prop_assert_eq!(result.points, good.len());
        prop_assert_eq!(result.lines, lines.len());
        prop_assert_eq!(actual(&result.batch), expected(&good, Precision::Millisecond));
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let result = parse(&text, Precision::Nanosecond, TS);
        prop_assert_eq!(result.points, result.batch.row_count());
    }

    #[test]
    fn syntax_soup_never_panics(text in "[a-c0-9 ,=\\\\\"#é\t\r\nituTF.eE+-]{0,60}") {
        for precision in [Precision::Nanosecond, Precision::Second] {
            let result = parse(&text, precision, TS);
            prop_assert_eq!(result.points, result.batch.row_count());
            for e in &result.errors {
                prop_assert!(e.line >= 1 && e.line <= result.lines && e.column >= 1);
            }
            let _ = parse_strict(&text, precision, TS);
        }
    }

    #[test]
    fn arbitrary_bytes_as_lossy_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text, Precision::Microsecond, TS);
    }
}

use super::*;

const TS: i64 = 1_000;

/// (table, tags as `k=v` pairs, kind, timestamps, values) per item.
type Item = (
    String,
    Vec<(String, String)>,
    Option<FieldKind>,
    Vec<i64>,
    Vec<f64>,
);

fn items(batch: &WriteBatch) -> Vec<Item> {
    batch
        .items()
        .iter()
        .map(|s| {
            let values = (0..s.len()).map(|i| s.row(i)[0]).collect();
            (
                s.table().to_string(),
                s.tags().pairs().to_vec(),
                s.fields()[0].1,
                s.timestamps().to_vec(),
                values,
            )
        })
        .collect()
}

fn one(text: &str) -> (String, TagSet, i64, f64) {
    let batch = parse(text, TS).unwrap();
    assert_eq!(batch.items().len(), 1, "{text}");
    let s = &batch.items()[0];
    (
        s.table().to_string(),
        s.tags().clone(),
        s.timestamps()[0],
        s.row(0)[0],
    )
}

fn tags(pairs: &[(&str, &str)]) -> TagSet {
    TagSet::new(pairs.iter().copied()).unwrap()
}

fn error(text: &str) -> (usize, usize, String) {
    let e = parse(text, TS).unwrap_err();
    (e.line, e.column, e.message)
}

#[test]
fn parses_name_labels_value_and_timestamp() {
    let (t, tg, ts, v) =
        one("http_requests_total{code=\"200\",method=\"get\"} 1027 1395066363000\n");
    assert_eq!(t, "http_requests_total");
    assert_eq!(tg, tags(&[("code", "200"), ("method", "get")]));
    assert_eq!((ts, v), (1395066363000, 1027.0));
}

#[test]
fn a_missing_timestamp_takes_the_default_and_negative_ones_are_kept() {
    assert_eq!(one("up 1").2, TS);
    assert_eq!(one("up 1 -5").2, -5);
    assert_eq!(one("up 1 +7").2, 7);
}

#[test]
fn unescapes_label_values() {
    let (_, tg, _, _) = one(r#"m{a="x\\y",b="say \"hi\"",c="1\n2",d="ünï"} 1"#);
    assert_eq!(
        tg,
        tags(&[
            ("a", r"x\y"),
            ("b", "say \"hi\""),
            ("c", "1\n2"),
            ("d", "ünï")
        ])
    );
}

#[test]
fn accepts_trailing_commas_blanks_and_empty_label_sets() {
    let expected = tags(&[("a", "1"), ("b", "2")]);
    assert_eq!(one("m{a=\"1\",b=\"2\",} 3").1, expected);
    assert_eq!(
        one(" \tm { a = \"1\" ,\tb=\"2\" , }\t 3 \t 9 \t").1,
        expected
    );
    assert_eq!(one("m{} 3").1, TagSet::empty());
    assert_eq!(one("m{ } 3").1, TagSet::empty());
    // An empty value means "no such label", as in Prometheus.
    assert_eq!(one("m{a=\"\",b=\"2\"} 3").1, tags(&[("b", "2")]));
}

#[test]
fn values_are_exactly_what_rust_parses() {
    for text in [
        "NaN", "+Inf", "-Inf", "Inf", "1e-05", "-0", "1.5E+3", ".5", "0x",
    ] {
        let parsed = parse(&format!("m {text}"), TS);
        match text.parse::<f64>() {
            Ok(want) => assert_eq!(
                parsed.unwrap().items()[0].row(0)[0].to_bits(),
                want.to_bits()
            ),
            Err(_) => assert!(parsed.is_err()),
        }
    }
    assert!(one("m +Inf").3.is_infinite());
    assert_eq!(one("m 1e-05").3, 0.00001);
}

#[test]
fn names_may_hold_colons_and_comments_and_blank_lines_are_skipped() {
    let text =
        "# HELP job:rate5m Rate. \\n escaped\n\n   \n# any comment\n#\njob:rate5m{job=\"a\"} 2\n";
    let (t, _, _, v) = one(text);
    assert_eq!((t.as_str(), v), ("job:rate5m", 2.0));
}

#[test]
fn accepts_crlf_line_ends() {
    let batch = parse("a 1 5\r\nb 2\r\n", TS).unwrap();
    assert_eq!(batch.row_count(), 2);
}

#[test]
fn consecutive_samples_of_a_series_share_one_item() {
    let text = "a{x=\"1\"} 1 10\na{x=\"1\"} 2 20\n a{x=\"1\"} 3 30\na{x=\"2\"} 4 40\na 5 50\na 6 60\na{x=\"1\"} 7 70\n";
    let got = items(&parse(text, TS).unwrap());
    let runs: Vec<(Vec<i64>, Vec<f64>)> = got.iter().map(|i| (i.3.clone(), i.4.clone())).collect();
    assert_eq!(
        runs,
        [
            (vec![10, 20, 30], vec![1.0, 2.0, 3.0]),
            (vec![40], vec![4.0]),
            (vec![50, 60], vec![5.0, 6.0]),
            (vec![70], vec![7.0]),
        ]
    );
}

#[test]
fn a_name_prefix_followed_by_labels_is_another_series() {
    let got = items(&parse("up 1\nup {job=\"a\"} 2\nup\t{job=\"b\"} 3\n", TS).unwrap());
    let tag_sets: Vec<usize> = got.iter().map(|i| i.1.len()).collect();
    assert_eq!(tag_sets, [0, 1, 1]);
    assert_eq!(got[2].1, vec![("job".to_string(), "b".to_string())]);
}

#[test]
fn kinds_come_from_type_lines_or_the_name() {
    let text = "\
# TYPE c counter
c 1
c_total 1
# TYPE g gauge
g_total 1
g 1
# TYPE h histogram
h_bucket{le=\"1\"} 1
h_sum 1
h_count 1
# TYPE s summary
s{quantile=\"0.5\"} 1
s_sum 1
s_bucket 1
# TYPE u untyped
u_total 1
# TYPE k unknown
k 1
plain_total 1
plain 1
";
    let kinds: Vec<(String, Option<FieldKind>)> = items(&parse(text, TS).unwrap())
        .into_iter()
        .map(|i| (i.0, i.2))
        .collect();
    use FieldKind::*;
    let want = [
        ("c", Counter),
        ("c_total", Counter),
        ("g_total", Counter),
        ("g", Gauge),
        ("h_bucket", Histogram),
        ("h_sum", Histogram),
        ("h_count", Histogram),
        ("s", Histogram),
        ("s_sum", Histogram),
        ("s_bucket", Histogram),
        ("u_total", Counter),
        ("k", Gauge),
        ("plain_total", Counter),
        ("plain", Gauge),
    ];
    let want: Vec<(String, Option<FieldKind>)> = want
        .iter()
        .map(|(n, k)| (n.to_string(), Some(*k)))
        .collect();
    assert_eq!(kinds, want);
}

#[test]
fn a_type_line_applies_to_the_series_text_that_follows_it() {
    let got = items(&parse("x 1\n# TYPE x counter\nx 2\n", TS).unwrap());
    assert_eq!(
        got.iter().map(|i| i.2).collect::<Vec<_>>(),
        [Some(FieldKind::Gauge), Some(FieldKind::Counter)]
    );
}

#[test]
fn reports_malformed_input_with_position() {
    let cases: &[(&str, (usize, usize, &str))] = &[
        (
            "m{job=\"a} 1",
            (
                1,
                7,
                "unterminated value of label \"job\": missing closing '\"'",
            ),
        ),
        ("m{job=\"a\"}", (1, 11, "missing value")),
        ("m{job=\"a\"}   ", (1, 14, "missing value")),
        ("m abc", (1, 3, "invalid value \"abc\"")),
        (
            "m{a=\"1\",b=\"2\",a=\"3\"} 1",
            (1, 15, "duplicate label \"a\""),
        ),
        (
            "m{a=\"\\t\"} 1",
            (
                1,
                6,
                "invalid escape '\\t' in the value of label \"a\" (allowed: \\\\, \\\" and \\n)",
            ),
        ),
        (
            "m 1 2 x",
            (1, 7, "unexpected text after the timestamp: \"x\""),
        ),
        (
            "m 1 1.5",
            (
                1,
                5,
                "invalid timestamp \"1.5\": expected integer milliseconds",
            ),
        ),
        (
            "m{job \"x\"} 1",
            (1, 7, "expected '=' after label name \"job\""),
        ),
        (
            "m{job=x} 1",
            (
                1,
                7,
                "expected '\"' to open the value of label \"job\", found 'x'",
            ),
        ),
        (
            "m{job=\"x\" a=\"y\"} 1",
            (
                1,
                11,
                "expected ',' or '}' after the value of label \"job\", found 'a'",
            ),
        ),
        (
            "m{job=\"x\"",
            (
                1,
                10,
                "expected ',' or '}' after the value of label \"job\", found end of line",
            ),
        ),
        ("m{,} 1", (1, 3, "expected a label name or '}', found ','")),
        (
            "m{job=\"x\",",
            (1, 11, "unterminated label set: expected '}'"),
        ),
        (
            "m{1a=\"x\"} 1",
            (1, 3, "expected a label name or '}', found '1'"),
        ),
        ("1m 1", (1, 1, "expected a metric name, found '1'")),
        ("{a=\"b\"} 1", (1, 1, "expected a metric name, found '{'")),
        (
            "m-x 1",
            (1, 2, "expected a blank before the value, found '-'"),
        ),
        (
            "m{a=\"b\"}1",
            (1, 9, "expected a blank before the value, found '1'"),
        ),
        (
            "# TYPE m countr",
            (
                1,
                10,
                "unknown metric type \"countr\": expected counter, gauge, histogram, summary or untyped",
            ),
        ),
        (
            "# TYPE m",
            (1, 9, "missing metric type after the metric name"),
        ),
        (
            "# TYPE 9",
            (1, 8, "expected a metric name after '# TYPE', found '9'"),
        ),
        (
            "# TYPE m gauge x",
            (1, 16, "unexpected text after the metric type"),
        ),
        (
            "a 1\nb 2\n\nc{x=\"1\" 3",
            (
                4,
                9,
                "expected ',' or '}' after the value of label \"x\", found '3'",
            ),
        ),
    ];
    for (text, (line, column, message)) in cases {
        assert_eq!(
            error(text),
            (*line, *column, message.to_string()),
            "input {text:?}"
        );
    }
}

#[test]
fn errors_display_line_and_column_first() {
    let e = parse("ok 1\nm{job \"x\"} 1\n", TS).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 2, column 7: expected '=' after label name \"job\""
    );
}

#[test]
fn an_error_on_a_repeated_series_points_at_its_line() {
    assert_eq!(
        error("m 1\nm 2\nm two\n"),
        (3, 3, "invalid value \"two\"".to_string())
    );
}

#[test]
fn parse_reader_cuts_batches_and_continues_series_across_them() {
    let mut text = String::from("# TYPE a counter\n");
    for i in 0..10 {
        text.push_str(&format!("a{{x=\"1\"}} {i} {i}\n"));
    }
    text.push_str("b 1\nb 2\nc 3");
    let whole = items(&parse(&text, TS).unwrap());
    for max in [0, 1, 3, 4, 13, 100] {
        let mut batches = Vec::new();
        let stats = parse_reader(text.as_bytes(), TS, max, |b| {
            batches.push(b);
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
        assert_eq!(stats.samples, 13);
        assert_eq!(stats.lines, 14);
        assert_eq!(stats.batches, batches.len());
        assert!(
            batches
                .iter()
                .all(|b| b.sample_count() <= max.max(1) && !b.is_empty())
        );
        // Merging consecutive items of the same series gives back the single batch.
        let mut merged: Vec<Item> = Vec::new();
        for item in batches.iter().flat_map(items) {
            match merged.last_mut() {
                Some(last) if (&last.0, &last.1) == (&item.0, &item.1) => {
                    last.3.extend(item.3);
                    last.4.extend(item.4);
                }
                _ => merged.push(item),
            }
        }
        let bits = |v: &[Item]| -> Vec<_> {
            v.iter()
                .map(|i| {
                    (
                        i.0.clone(),
                        i.2,
                        i.3.clone(),
                        i.4.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
                    )
                })
                .collect()
        };
        assert_eq!(bits(&merged), bits(&whole), "max {max}");
    }
}

#[test]
fn parse_reader_reports_bad_utf8_io_and_sink_errors() {
    let bytes = b"a 1\nb 2\nc{x=\"\xff\"} 3\n";
    let err = parse_reader(&bytes[..], TS, 10, |_| Ok::<(), std::io::Error>(())).unwrap_err();
    match err {
        ReadError::Parse(e) => assert_eq!(
            (e.line, e.column, e.message.as_str()),
            (3, 6, "invalid UTF-8")
        ),
        other => panic!("{other:?}"),
    }
    let sink = parse_reader(&b"a 1\na 2\n"[..], TS, 1, |_| {
        Err(std::io::Error::other("full"))
    });
    assert_eq!(sink.unwrap_err().to_string(), "batch rejected: full");
    let long = vec![b'a'; MAX_LINE_BYTES + 10];
    let err = parse_reader(&long[..], TS, 10, |_| Ok::<(), std::io::Error>(())).unwrap_err();
    assert!(err.to_string().contains("line longer than"), "{err}");
}

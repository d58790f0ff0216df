//! The line syntax: every type and section, and where bad lines are reported.

use super::*;

#[test]
fn counters_keep_dotted_names_and_default_to_rate_one() {
    let m = one("api.requests.total:1|c");
    assert_eq!(m.name, "api.requests.total");
    assert_eq!(m.value, MetricValue::Counter(1.0));
    assert_eq!(m.sample_rate, 1.0);
    assert!(m.tags.is_empty());
    assert_eq!(one("é.ünï code:2.5e1|c").value, MetricValue::Counter(25.0));
    assert_eq!(one("m:+3|c").value, MetricValue::Counter(3.0));
}

#[test]
fn sample_rate_is_kept_for_the_aggregator() {
    let m = one("m:2|c|@0.1");
    assert_eq!(m.value, MetricValue::Counter(2.0));
    assert_eq!(m.sample_rate, 0.1);
    assert_eq!(one("m:2|c|@1").sample_rate, 1.0);
    assert_eq!(one("t:5|ms|@0.25").sample_rate, 0.25);
    // Gauges and sets accept a rate (and the aggregator ignores it).
    assert_eq!(one("g:5|g|@0.5").value, MetricValue::Gauge(5.0));
}

#[test]
fn gauges_set_without_sign_and_add_with_sign() {
    assert_eq!(one("g:5|g").value, MetricValue::Gauge(5.0));
    assert_eq!(one("g:0|g").value, MetricValue::Gauge(0.0));
    assert_eq!(one("g:+3|g").value, MetricValue::GaugeDelta(3.0));
    assert_eq!(one("g:-3.5|g").value, MetricValue::GaugeDelta(-3.5));
    assert_eq!(one("g:-0|g").value, MetricValue::GaugeDelta(-0.0));
}

#[test]
fn timers_histograms_and_distributions_take_one_or_more_values() {
    assert_eq!(one("t:12.5|ms").value, MetricValue::Timer(vec![12.5]));
    assert_eq!(
        one("t:1:2.5:-3|ms").value,
        MetricValue::Timer(vec![1.0, 2.5, -3.0])
    );
    assert_eq!(one("h:4:5|h").value, MetricValue::Histogram(vec![4.0, 5.0]));
    assert_eq!(
        one("d:1e3|d").value,
        MetricValue::Distribution(vec![1000.0])
    );
}

#[test]
fn set_members_are_the_whole_value_text() {
    assert_eq!(one("u:alice|s").value, MetricValue::Set("alice".into()));
    assert_eq!(
        one("ip:2001:db8::1|s").value,
        MetricValue::Set("2001:db8::1".into())
    );
    assert_eq!(one("u:42|s").value, MetricValue::Set("42".into()));
}

#[test]
fn type_codes_round_trip() {
    for line in [
        "a:1|c", "a:1|g", "a:+1|g", "a:1|ms", "a:1|h", "a:1|d", "a:x|s",
    ] {
        let code = line.rsplit('|').next().unwrap();
        assert_eq!(one(line).value.type_code(), code);
    }
}

#[test]
fn dogstatsd_tags_split_at_the_first_colon() {
    let m = one("m:1|c|#env:prod,region:eu-west:1,canary,,empty:");
    assert_eq!(
        m.tags,
        tags(&[("env", "prod"), ("region", "eu-west:1"), ("canary", "true")])
    );
    // Sections come in any order.
    let m = one("m:1|c|#env:prod|@0.5");
    assert_eq!((m.sample_rate, m.tags), (0.5, tags(&[("env", "prod")])));
    // A tag may share a name with another type's field.
    assert_eq!(one("m:1|c|#count:1").tags, tags(&[("count", "1")]));
    assert_eq!(one("t:1|ms|#value:1,p2p:x").tags.len(), 2);
}

#[test]
fn unknown_sections_are_ignored() {
    let m = one("m:1|c|c:83c0a99c0a54c0c187f461c7980e9b57f3f6a8b0|T1656581400|#a:b|x");
    assert_eq!(
        (m.value, m.tags),
        (MetricValue::Counter(1.0), tags(&[("a", "b")]))
    );
}

#[test]
fn several_metrics_per_packet_with_blank_lines_and_crlf() {
    let packet = b"a:1|c\r\n\nb:2|g\n   \nc:3:4|ms\nd:x|s\n";
    let (metrics, errors) = parse_packet(packet);
    assert!(errors.is_empty(), "{errors:?}");
    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    assert_eq!(parse_packet(b""), (vec![], vec![]));
}

#[test]
fn bad_lines_are_reported_and_good_ones_kept() {
    let packet = b"a:1|c\nb:oops|c\nc:2|g\nd:1|q\n";
    let (metrics, errors) = parse_packet(packet);
    let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "c"]);
    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "line 2, column 3: invalid number \"oops\"",
            "line 4, column 5: unknown metric type \"q\": expected c, g, ms, h, d or s",
        ]
    );
}

/// (line, 1-based column, a part of the message).
fn check(cases: &[(&[u8], usize, &str)]) {
    for &(line, column, message) in cases {
        let (l, c, m) = error(line);
        let text = String::from_utf8_lossy(line);
        assert_eq!((l, c), (1, column), "{text:?}: {m}");
        assert!(m.contains(message), "{text:?}: {m:?} lacks {message:?}");
    }
}

#[test]
fn structure_errors_name_the_column() {
    check(&[
        (
            b"nocolon|c",
            8,
            "expected ':' and a value after the metric name",
        ),
        (b"nocolon", 8, "expected ':'"),
        (b"a|b:1|c", 2, "expected ':'"),
        (b":1|c", 1, "empty metric name"),
        (b"m:1", 4, "expected '|' and a metric type after the value"),
        (b"m:1|", 5, "missing metric type"),
        (b"m:1|x", 5, "unknown metric type \"x\""),
        (b"m:1|C", 5, "unknown metric type \"C\""),
        (b"m:1|c|", 7, "empty section"),
        (b"m:1|c||#a:b", 7, "empty section"),
        (b"m\xff:1|c", 2, "invalid UTF-8"),
        (b"m\x01:1|c", 1, "control character"),
        (
            b"_e{5,4}:title|text",
            1,
            "events and service checks are not supported",
        ),
        (b"_sc|name|0", 1, "events and service checks"),
    ]);
}

#[test]
fn value_errors_name_the_column() {
    check(&[
        (b"m:abc|c", 3, "invalid number \"abc\""),
        (b"m:|c", 3, "missing value: expected a number"),
        (b"m: 1|c", 3, "invalid number \" 1\""),
        (b"m:NaN|g", 3, "\"NaN\" is not a finite number"),
        (b"m:inf|ms", 3, "not a finite number"),
        (b"m:1e999|h", 3, "not a finite number"),
        (b"m:-1|c", 3, "counter increments must not be negative"),
        (
            b"m:1:2|c",
            4,
            "several values (':') are accepted only for ms, h and d",
        ),
        (b"m:+1:2|g", 5, "several values"),
        (b"m:1:x|ms", 5, "invalid number \"x\""),
        (b"m:1:|h", 5, "missing value"),
        (b"m:1::2|d", 5, "missing value"),
        (b"m:|s", 3, "missing value: expected a set member"),
        // The value is checked before the sections after the type.
        (b"m:x|c|@5", 3, "invalid number"),
    ]);
}

#[test]
fn sample_rate_errors_name_the_column() {
    check(&[
        (
            b"m:1|c|@0",
            8,
            "sample rate 0 is out of range: expected 0 < rate <= 1",
        ),
        (b"m:1|c|@-0.5", 8, "out of range"),
        (b"m:1|c|@1.5", 8, "out of range"),
        (b"m:1|c|@x", 8, "invalid number \"x\""),
        (b"m:1|c|@", 8, "missing value"),
        (b"m:1|c|@0.5|@0.5", 12, "sample rate given twice"),
    ]);
}

#[test]
fn tag_errors_name_the_column() {
    check(&[
        (b"m:1|c|#a:1,a:2", 12, "duplicate tag key \"a\""),
        (b"m:1|c|#b:1,a:1,b", 16, "duplicate tag key \"b\""),
        (b"m:1|c|#a:1|#b:2", 12, "tags given twice"),
        (b"m:1|c|#time:1", 8, "`time` is the timestamp column"),
        (b"m:1|c|#__name__:x", 8, "reserved"),
        (b"m:1|c|#:v", 8, "must not be empty"),
        (b"m:1|c|#a:b\x01", 10, "control character"),
        (
            b"m:1|c|#value:1",
            8,
            "tag \"value\" would clash with the field",
        ),
        (b"m:1|g|#x:1,value:2", 12, "clash"),
        (b"m:x|s|#value:1", 8, "clash"),
        (b"m:1|ms|#count:1", 9, "clash"),
        (b"m:1|h|#p99:1", 8, "clash"),
        (b"m:1|d|#p99_9:1", 8, "clash"),
        (b"m:1|ms|#avg", 9, "clash"),
    ]);
}

#[test]
fn hostile_text_is_shortened_in_messages() {
    let line = format!("m:{}|c", "x".repeat(10_000));
    let (_, _, message) = error(line.as_bytes());
    assert!(message.len() < 100, "{message}");
    let line = format!("m:1|{}", "é".repeat(10_000));
    let (_, _, message) = error(line.as_bytes());
    assert!(message.len() < 200, "{message}");
}

#[test]
fn names_are_checked_like_table_names() {
    let line = format!("{}:1|c", "n".repeat(2000));
    let (_, column, message) = error(line.as_bytes());
    assert_eq!(column, 1);
    assert!(message.contains("longer than 1024 bytes"), "{message}");
}

#[test]
fn many_tags_parse_in_sorted_order() {
    let tag_list: Vec<String> = (0..3000).rev().map(|i| format!("k{i}:v{i}")).collect();
    let m = one(&format!("m:1|c|#{}", tag_list.join(",")));
    assert_eq!(m.tags.len(), 3000);
    assert_eq!(m.tags.get("k1234"), Some("v1234"));
}

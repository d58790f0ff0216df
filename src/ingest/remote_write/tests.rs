use prost::Message;

use super::proto::{Ignored, Sample, v1, v2};
use super::*;
use crate::model::STALE_NAN_BITS;

const LIMIT: usize = 1 << 20;

/// (table, tags, declared kind, (timestamp, value bits) per row) per batch item.
type Item = (
    String,
    Vec<(String, String)>,
    Option<FieldKind>,
    Vec<(i64, u64)>,
);

fn items(batch: &WriteBatch) -> Vec<Item> {
    batch
        .items()
        .iter()
        .map(|s| {
            assert_eq!(s.fields().len(), 1);
            assert_eq!(s.fields()[0].0, FIELD);
            let rows = (0..s.len())
                .map(|i| (s.timestamps()[i], s.row(i)[0].to_bits()))
                .collect();
            (
                s.table().to_string(),
                s.tags().pairs().to_vec(),
                s.fields()[0].1,
                rows,
            )
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> EncodeSeries {
    (labels(pairs), samples.to_vec())
}

/// Values that must survive bit for bit.
fn special_values() -> Vec<(i64, f64)> {
    vec![
        (1_000, f64::from_bits(STALE_NAN_BITS)),
        (2_000, -0.0),
        (3_000, f64::INFINITY),
        (4_000, f64::NEG_INFINITY),
        (5_000, f64::NAN),
        (6_000, f64::from_bits(0xfff8_0000_dead_beef)),
        (7_000, f64::MIN_POSITIVE / 2.0),
        (-8_000, 1.5),
        (i64::MAX, f64::MAX),
    ]
}

fn sample_request() -> Vec<EncodeSeries> {
    vec![
        series(
            &[("__name__", "up"), ("job", "api"), ("instance", "a:9090")],
            &special_values(),
        ),
        series(
            &[("job", "db"), ("__name__", "job:rate5m"), ("env", "")],
            &[(10, 0.25)],
        ),
        series(&[("__name__", "no_samples"), ("job", "x")], &[]),
    ]
}

fn expected_items() -> Vec<Item> {
    let bits = |s: &[(i64, f64)]| s.iter().map(|&(t, v)| (t, v.to_bits())).collect();
    vec![
        (
            "up".into(),
            labels(&[("instance", "a:9090"), ("job", "api")]),
            None,
            bits(&special_values()),
        ),
        (
            "job:rate5m".into(),
            labels(&[("job", "db")]),
            None,
            bits(&[(10, 0.25)]),
        ),
    ]
}

fn decode_snappy(body: &[u8], version: Version) -> Result<Decoded, RemoteWriteError> {
    decode(body, version, Encoding::Snappy, LIMIT)
}

fn error_v1(request: &v1::WriteRequest) -> String {
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    decode_snappy(&body, Version::V1).unwrap_err().to_string()
}

fn error_v2(request: &v2::Request) -> String {
    decode(
        &request.encode_to_vec(),
        Version::V2,
        Encoding::Identity,
        LIMIT,
    )
    .unwrap_err()
    .to_string()
}

fn v1_series(pairs: &[(&str, &str)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: pairs
            .iter()
            .map(|(k, v)| v1::Label {
                name: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: vec![Sample::new(1, 1.0)],
        ..Default::default()
    }
}

fn v1_request(series: Vec<v1::TimeSeries>) -> v1::WriteRequest {
    v1::WriteRequest {
        timeseries: series,
        metadata: vec![],
    }
}

fn v2_request(symbols: &[&str], refs: Vec<Vec<u32>>) -> v2::Request {
    v2::Request {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        timeseries: refs
            .into_iter()
            .map(|labels_refs| v2::TimeSeries {
                labels_refs,
                samples: vec![Sample::new(1, 1.0)],
                ..Default::default()
            })
            .collect(),
    }
}

#[test]
fn v1_round_trip_keeps_values_bit_exact() {
    let body = encode_v1(&sample_request(), &[]);
    let d = decode_snappy(&body, Version::V1).unwrap();
    assert_eq!(items(&d.batch), expected_items());
    assert_eq!((d.series, d.samples), (3, 10));
    assert_eq!((d.histograms_rejected, d.exemplars_ignored), (0, 0));
    let stale = d.batch.items()[0].row(0)[0];
    assert_eq!(stale.to_bits(), STALE_NAN_BITS);
}

#[test]
fn v2_round_trip_keeps_values_bit_exact() {
    let body = encode_v2(&sample_request(), &[]);
    let d = decode_snappy(&body, Version::V2).unwrap();
    assert_eq!(items(&d.batch), expected_items());
    assert_eq!((d.series, d.samples), (3, 10));
}

#[test]
fn zstd_and_identity_bodies_decode_alike() {
    let snappy = encode_v1(&sample_request(), &[]);
    let raw = snap::raw::Decoder::new().decompress_vec(&snappy).unwrap();
    let zstd = zstd::encode_all(&raw[..], 3).unwrap();
    for (body, encoding) in [(&zstd, Encoding::Zstd), (&raw, Encoding::Identity)] {
        let d = decode(body, Version::V1, encoding, LIMIT).unwrap();
        assert_eq!(items(&d.batch), expected_items(), "{encoding}");
    }
}

fn metadata() -> Vec<(String, MetricType)> {
    [
        ("http_requests_total", MetricType::Counter),
        ("reqs", MetricType::Counter),
        ("rpc", MetricType::Histogram),
        ("lat", MetricType::Summary),
        ("queue", MetricType::GaugeHistogram),
        ("temp", MetricType::Gauge),
        ("build_info", MetricType::Info),
    ]
    .into_iter()
    .map(|(f, t)| (f.to_string(), t))
    .collect()
}

fn kinds(body: &[u8], version: Version) -> Vec<(String, Option<FieldKind>)> {
    let d = decode_snappy(body, version).unwrap();
    items(&d.batch).into_iter().map(|i| (i.0, i.2)).collect()
}

#[test]
fn metadata_declares_kinds_by_family_in_both_versions() {
    use FieldKind::{Counter, Gauge, Histogram};
    let names = [
        ("http_requests_total", Some(Counter)),
        ("reqs_total", Some(Counter)),
        ("rpc_bucket", Some(Histogram)),
        ("rpc_sum", Some(Histogram)),
        ("rpc_count", Some(Histogram)),
        ("lat", Some(Histogram)),
        ("lat_sum", Some(Histogram)),
        ("lat_bucket", None), // summaries have no buckets
        ("queue_gsum", Some(Histogram)),
        ("temp", Some(Gauge)),
        ("temp_total", None), // not a counter's part
        ("build_info", None), // info says nothing useful: storage infers
        ("other_total", None),
    ];
    let series: Vec<_> = names
        .iter()
        .map(|(n, _)| series(&[("__name__", n)], &[(1, 1.0)]))
        .collect();
    let expected: Vec<_> = names.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    assert_eq!(
        kinds(&encode_v1(&series, &metadata()), Version::V1),
        expected
    );
    assert_eq!(
        kinds(&encode_v2(&series, &metadata()), Version::V2),
        expected
    );
    // Without metadata nothing is declared.
    let none: Vec<_> = names.iter().map(|(n, _)| (n.to_string(), None)).collect();
    assert_eq!(kinds(&encode_v1(&series, &[]), Version::V1), none);
}

#[test]
fn a_metadata_only_request_is_empty_and_fine() {
    let d = decode_snappy(&encode_v1(&[], &metadata()), Version::V1).unwrap();
    assert!(d.batch.is_empty());
    assert_eq!((d.series, d.samples), (0, 0));
}

#[test]
fn histograms_and_exemplars_are_counted_not_stored() {
    let mut ts = v1_series(&[("__name__", "h")]);
    ts.histograms = vec![Ignored {}; 2];
    ts.exemplars = vec![Ignored {}; 3];
    let mut only_histograms = v1_series(&[("__name__", "nh")]);
    only_histograms.samples.clear();
    only_histograms.histograms = vec![Ignored {}];
    let body = v1_request(vec![ts, only_histograms]).encode_to_vec();
    let d = decode(&body, Version::V1, Encoding::Identity, LIMIT).unwrap();
    assert_eq!((d.histograms_rejected, d.exemplars_ignored), (3, 3));
    assert_eq!((d.series, d.samples, d.batch.items().len()), (2, 1, 1));

    let mut request = v2_request(&["", "__name__", "h"], vec![vec![1, 2]]);
    request.timeseries[0].histograms = vec![Ignored {}; 4];
    request.timeseries[0].exemplars = vec![Ignored {}];
    let body = request.encode_to_vec();
    let d = decode(&body, Version::V2, Encoding::Identity, LIMIT).unwrap();
    assert_eq!(
        (d.histograms_rejected, d.exemplars_ignored, d.samples),
        (4, 1, 1)
    );
}

#[test]
fn series_errors_name_the_series_and_the_label() {
    let ok = v1_series(&[("__name__", "up")]);
    let cases: [(&[(&str, &str)], &str); 7] = [
        (
            &[("job", "a")],
            "series 1: no __name__ label (the metric name)",
        ),
        (
            &[("__name__", "")],
            "series 1, label \"__name__\": invalid table name \"\": must not be empty",
        ),
        (
            &[("__name__", "up"), ("job", "a"), ("job", "b")],
            "series 1: label \"job\" appears more than once",
        ),
        (
            &[("__name__", "up"), ("__name__", "down")],
            "series 1: label \"__name__\" appears more than once",
        ),
        (
            &[("__name__", "up"), ("__meta_x", "1")],
            "series 1, label \"__meta_x\": invalid tag name \"__meta_x\": \
             names starting with `__` are reserved",
        ),
        (
            &[("__name__", "up"), ("", "1")],
            "series 1, label \"\": invalid tag name \"\": must not be empty",
        ),
        (
            &[("__name__", "up"), ("msg", "a\nb")],
            "series 1, label \"msg\": invalid tag value name \"a\\nb\": contains a control character",
        ),
    ];
    for (pairs, message) in cases {
        let request = v1_request(vec![ok.clone(), v1_series(pairs)]);
        assert_eq!(error_v1(&request), message);
    }
}

#[test]
fn v2_ref_errors_name_the_series_and_the_ref() {
    let s = ["", "__name__", "up", "job"];
    let cases = [
        (
            vec![1, 2, 3],
            "series 1: 3 label refs, expected name/value pairs (an even count)",
        ),
        (
            vec![1, 2, 9, 2],
            "series 1: label name ref 9 is out of range: the request has 4 symbols",
        ),
        (
            vec![1, 2, 3, 4],
            "series 1: label value ref 4 is out of range: the request has 4 symbols",
        ),
        (vec![3, 2], "series 1: no __name__ label (the metric name)"),
        (
            vec![1, 2, 1, 3],
            "series 1: label \"__name__\" appears more than once",
        ),
    ];
    for (refs, message) in cases {
        assert_eq!(error_v2(&v2_request(&s, vec![vec![1, 2], refs])), message);
    }
    let mut request = v2_request(&s, vec![vec![1, 2]]);
    request.timeseries[0].metadata = Some(v2::Metadata {
        r#type: MetricType::Counter as i32,
        help_ref: 7,
        unit_ref: 0,
    });
    assert_eq!(
        error_v2(&request),
        "series 0: help ref 7 is out of range: the request has 4 symbols"
    );
    // No symbols at all: even ref 0 is out of range.
    assert!(error_v2(&v2_request(&[], vec![vec![0, 0]])).contains("label name ref 0"));
}

#[test]
fn malformed_protobuf_names_the_part_and_its_offset() {
    // Series 0 is 2 + 12 bytes long; series 1 holds a truncated sample.
    let mut body = v1_request(vec![v1_series(&[("__name__", "up")])]).encode_to_vec();
    let offset = body.len();
    body.extend_from_slice(&[0x0a, 4, 0x12, 2, 0x09, 0x00]);
    let e = decode(&body, Version::V1, Encoding::Identity, LIMIT).unwrap_err();
    let message = e.to_string();
    assert!(
        message.starts_with(&format!(
            "malformed protobuf in timeseries 1 at byte offset {offset}: "
        )),
        "{message}"
    );
    assert!(message.contains("TimeSeries.samples"), "{message}");

    // Top-level framing: a length past the end.
    let e = decode(&[0x0a, 9, 0], Version::V1, Encoding::Identity, LIMIT).unwrap_err();
    assert_eq!(
        e.to_string(),
        "malformed protobuf in request at byte offset 0: \
         field length runs past the end of the message"
    );

    // Invalid UTF-8 in a 1.0 label and in a 2.0 symbol.
    let mut ts = v1_series(&[("__name__", "up")]).encode_to_vec();
    let at = ts.iter().position(|&b| b == b'u').unwrap();
    ts[at] = 0xff;
    let mut body = vec![0x0a, ts.len() as u8];
    body.extend_from_slice(&ts);
    let e = decode(&body, Version::V1, Encoding::Identity, LIMIT).unwrap_err();
    assert!(
        e.to_string().contains("timeseries 0 at byte offset 0"),
        "{e}"
    );
    assert!(e.to_string().contains("UTF-8"), "{e}");
    let body = [0x22, 0, 0x22, 2, b'a', 0xff];
    let e = decode(&body, Version::V2, Encoding::Identity, LIMIT).unwrap_err();
    assert_eq!(
        e.to_string(),
        "malformed protobuf in symbol 1 at byte offset 2: invalid UTF-8 at byte 1 of the string"
    );
}

#[test]
fn a_body_of_the_other_version_decodes_to_nothing() {
    // 2.0 reserves 1.0's field numbers (and the other way round), so a wrong
    // Content-Type gives an empty request rather than garbage.
    let v1_body = encode_v1(&sample_request(), &metadata());
    let d = decode_snappy(&v1_body, Version::V2).unwrap();
    assert_eq!((d.series, d.samples), (0, 0));
    let v2_body = encode_v2(&sample_request(), &[]);
    let d = decode_snappy(&v2_body, Version::V1).unwrap();
    assert_eq!((d.series, d.samples), (0, 0));
}

#[test]
fn series_seen_before_decode_alike() {
    // The second decode of each body takes the labels from this thread's identity
    // cache; everything else must come out the same, bit for bit.
    let body = encode_v1(&sample_request(), &metadata());
    let first = decode_snappy(&body, Version::V1).unwrap();
    let again = decode_snappy(&body, Version::V1).unwrap();
    assert_eq!(items(&again.batch), items(&first.batch));
    assert_eq!(items(&again.batch)[0].2, items(&first.batch)[0].2, "kinds");

    // Known labels, new samples, histograms and exemplars: counted as before.
    let a = [("__name__", "cached"), ("job", "a")];
    let plain = v1_request(vec![v1_series(&a)]).encode_to_vec();
    decode(&plain, Version::V1, Encoding::Identity, LIMIT).unwrap();
    let mut ts = v1_series(&a);
    ts.samples = vec![Sample::new(5, -0.0), Sample::new(6, 2.5)];
    ts.histograms = vec![Ignored {}; 2];
    ts.exemplars = vec![Ignored {}];
    let other = v1_series(&[("__name__", "cached"), ("job", "b")]);
    let body = v1_request(vec![ts, other]).encode_to_vec();
    let d = decode(&body, Version::V1, Encoding::Identity, LIMIT).unwrap();
    assert_eq!((d.histograms_rejected, d.exemplars_ignored), (2, 1));
    assert_eq!(
        items(&d.batch),
        vec![
            (
                "cached".to_string(),
                labels(&[("job", "a")]),
                None,
                vec![(5, (-0.0f64).to_bits()), (6, 2.5f64.to_bits())]
            ),
            (
                "cached".to_string(),
                labels(&[("job", "b")]),
                None,
                vec![(1, 1.0f64.to_bits())]
            ),
        ]
    );

    // Known labels with a truncated sample: the same error as for unknown ones.
    let known = v1_series(&a).encode_to_vec();
    let unknown = v1_series(&[("__name__", "fresh")]).encode_to_vec();
    for ts in [known, unknown] {
        let mut ts = ts;
        ts.extend_from_slice(&[0x12, 2, 0x09, 0x00]);
        let mut body = vec![0x0a, ts.len() as u8];
        body.extend_from_slice(&ts);
        let e = decode(&body, Version::V1, Encoding::Identity, LIMIT).unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with("malformed protobuf in timeseries 0 at byte offset 0: "),
            "{message}"
        );
        assert!(message.contains("TimeSeries.samples"), "{message}");
    }
}

#[test]
fn labels_split_by_other_fields_decode_alike() {
    // The identity cache keys a series by the bytes from its first label field to its
    // last: a sample between two labels makes another key, never another identity.
    let pairs = [("__name__", "split"), ("job", "a"), ("zone", "z")];
    let clean = v1_series(&pairs);
    let mut split = Vec::new();
    prost::encoding::message::encode(1, &clean.labels[0], &mut split);
    prost::encoding::message::encode(2, &Sample::new(1, 1.0), &mut split);
    for label in &clean.labels[1..] {
        prost::encoding::message::encode(1, label, &mut split);
    }
    let mut body = Vec::new();
    prost::encoding::bytes::encode(1, &split, &mut body);
    let clean_body = v1_request(vec![clean]).encode_to_vec();
    let expected = items(
        &decode(&clean_body, Version::V1, Encoding::Identity, LIMIT)
            .unwrap()
            .batch,
    );
    for _ in 0..2 {
        let d = decode(&body, Version::V1, Encoding::Identity, LIMIT).unwrap();
        assert_eq!(items(&d.batch), expected);
        let d = decode(&clean_body, Version::V1, Encoding::Identity, LIMIT).unwrap();
        assert_eq!(items(&d.batch), expected);
    }
}

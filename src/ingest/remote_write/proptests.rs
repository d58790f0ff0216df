use proptest::prelude::*;

use super::*;
use crate::model::{NameKind, validate_name};

const LIMIT: usize = 1 << 20;

fn all_ways(body: &[u8]) {
    for version in [Version::V1, Version::V2] {
        for encoding in [Encoding::Snappy, Encoding::Zstd, Encoding::Identity] {
            // Errors are fine; panics are not.
            let _ = decode(body, version, encoding, LIMIT);
        }
    }
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_:][a-z0-9_:.]{0,12}".prop_filter("valid names", |n| {
        validate_name(NameKind::Tag, n).is_ok() && n != NAME_LABEL
    })
}

fn one_series() -> impl Strategy<Value = EncodeSeries> {
    (
        name(),
        prop::collection::btree_map(name(), "[ -~é]{0,8}", 0..4),
        prop::collection::vec((any::<i64>(), any::<u64>()), 0..6),
    )
        .prop_map(|(metric, tags, samples)| {
            let mut labels: Vec<(String, String)> = tags.into_iter().collect();
            labels.push((NAME_LABEL.to_string(), metric));
            let samples = samples
                .into_iter()
                .map(|(t, bits)| (t, f64::from_bits(bits)))
                .collect();
            (labels, samples)
        })
}

/// A valid request in both versions, with metadata for some families.
fn request() -> impl Strategy<Value = (Vec<EncodeSeries>, Vec<(String, MetricType)>)> {
    (
        prop::collection::vec(one_series(), 0..6),
        prop::collection::vec((name(), 0..9i32), 0..3),
    )
        .prop_map(|(series, meta)| {
            let meta = meta
                .into_iter()
                .map(|(n, t)| (n, MetricType::from_wire(t)))
                .collect();
            (series, meta)
        })
}

/// What a request should decode to: (table, tags, (timestamp, value bits)) per series
/// with samples.
type Expected = Vec<(String, Vec<(String, String)>, Vec<(i64, u64)>)>;

fn expected(series: &[EncodeSeries]) -> Expected {
    series
        .iter()
        .filter(|(_, samples)| !samples.is_empty())
        .map(|(labels, samples)| {
            let table = labels
                .iter()
                .find(|(k, _)| k == NAME_LABEL)
                .unwrap()
                .1
                .clone();
            let mut tags: Vec<_> = labels
                .iter()
                .filter(|(k, v)| k != NAME_LABEL && !v.is_empty())
                .cloned()
                .collect();
            tags.sort();
            let rows = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            (table, tags, rows)
        })
        .collect()
}

fn got(d: &Decoded) -> Expected {
    d.batch
        .items()
        .iter()
        .map(|s| {
            let rows = (0..s.len())
                .map(|i| (s.timestamps()[i], s.row(i)[0].to_bits()))
                .collect();
            (s.table().to_string(), s.tags().pairs().to_vec(), rows)
        })
        .collect()
}

fn kinds(d: &Decoded) -> Vec<Option<FieldKind>> {
    d.batch.items().iter().map(|s| s.fields()[0].1).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        all_ways(&body);
    }

    #[test]
    fn both_versions_round_trip_bit_exactly((series, meta) in request()) {
        let n: usize = series.iter().map(|s| s.1.len()).sum();
        let d1 = decode(&encode_v1(&series, &meta), Version::V1, Encoding::Snappy, LIMIT)
            .unwrap();
        let d2 = decode(&encode_v2(&series, &meta), Version::V2, Encoding::Snappy, LIMIT)
            .unwrap();
        prop_assert_eq!(got(&d1), expected(&series));
        prop_assert_eq!(got(&d2), expected(&series));
        prop_assert_eq!(kinds(&d1), kinds(&d2));
        prop_assert_eq!((d1.samples, d1.series), (n, series.len()));
        prop_assert_eq!((d2.samples, d2.series), (n, series.len()));
        // Again: now this thread's identity cache knows every series' labels, and
        // only the samples are decoded.
        let again = decode(&encode_v1(&series, &meta), Version::V1, Encoding::Snappy, LIMIT)
            .unwrap();
        prop_assert_eq!(got(&again), expected(&series));
        prop_assert_eq!(kinds(&again), kinds(&d1));
    }

    #[test]
    fn corrupted_bodies_never_panic(
        (series, meta) in request(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0..8u8), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for (raw_body, version) in [
            (encode_v1(&series, &meta), Version::V1),
            (encode_v2(&series, &meta), Version::V2),
        ] {
            let raw = snap::raw::Decoder::new().decompress_vec(&raw_body).unwrap();
            for body in [raw_body, raw] {
                if body.is_empty() {
                    continue;
                }
                let mut flipped = body.clone();
                for (at, bit) in &flips {
                    flipped[at.index(body.len())] ^= 1 << bit;
                }
                all_ways(&flipped);
                all_ways(&body[..cut.index(body.len())]);
                let _ = decode(&flipped, version, Encoding::Identity, LIMIT);
            }
        }
    }
}

//! Request encoders, for tests, benches and the load generator: the inverse of
//! decoding, snappy-compressed as Prometheus sends.

use std::collections::HashMap;

use prost::Message;

use super::MetricType;
use super::decode::family_type;
use super::proto::{Sample, v1, v2};

/// One series to encode: its labels (`__name__` included) and its samples as
/// `(timestamp in ms, value)`.
pub type EncodeSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

/// Encodes a remote write 1.0 request holding `series` and, as metric metadata, the
/// `(family name, type)` pairs of `metadata`, and snappy-compresses it.
///
/// # Panics
/// If the encoded request exceeds snappy's 4 GiB input limit.
pub fn encode_v1(series: &[EncodeSeries], metadata: &[(String, MetricType)]) -> Vec<u8> {
    let request = v1::WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| v1::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(name, value)| v1::Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: samples_of(samples),
                ..Default::default()
            })
            .collect(),
        metadata: metadata
            .iter()
            .map(|(family, t)| v1::MetricMetadata {
                r#type: *t as i32,
                metric_family_name: family.clone(),
            })
            .collect(),
    };
    snappy(&request.encode_to_vec())
}

/// Encodes a remote write 2.0 request holding `series`, and snappy-compresses it.
///
/// Each series carries, as its own metadata, the type that `metadata` gives its family
/// (resolved as 1.0 decoding resolves it, so both versions give the same kinds); series
/// without one carry no metadata. The symbol table starts with `""`, as 2.0 requires.
///
/// # Panics
/// If the encoded request exceeds snappy's 4 GiB input limit.
pub fn encode_v2(series: &[EncodeSeries], metadata: &[(String, MetricType)]) -> Vec<u8> {
    let types: HashMap<&str, MetricType> = metadata.iter().map(|(f, t)| (f.as_str(), *t)).collect();
    let mut symbols = vec![String::new()];
    let mut refs: HashMap<String, u32> = HashMap::from([(String::new(), 0)]);
    let mut symbol = |s: &str| -> u32 {
        if let Some(&r) = refs.get(s) {
            return r;
        }
        let r = symbols.len() as u32;
        symbols.push(s.to_string());
        refs.insert(s.to_string(), r);
        r
    };
    let timeseries = series
        .iter()
        .map(|(labels, samples)| {
            let name = labels
                .iter()
                .find(|(k, _)| k == super::NAME_LABEL)
                .map_or("", |(_, v)| v.as_str());
            let metadata = family_type(name, |n| types.get(n).copied()).map(|t| v2::Metadata {
                r#type: t as i32,
                help_ref: 0,
                unit_ref: 0,
            });
            v2::TimeSeries {
                labels_refs: labels
                    .iter()
                    .flat_map(|(k, v)| [symbol(k), symbol(v)])
                    .collect(),
                samples: samples_of(samples),
                metadata,
                ..Default::default()
            }
        })
        .collect();
    let request = v2::Request {
        symbols,
        timeseries,
    };
    snappy(&request.encode_to_vec())
}

fn samples_of(samples: &[(i64, f64)]) -> Vec<Sample> {
    samples
        .iter()
        .map(|&(timestamp, value)| Sample::new(timestamp, value))
        .collect()
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("remote write request over snappy's 4 GiB limit")
}

//! Decoded protobuf to batch, for both versions.
//!
//! The top-level message is walked field by field ([`proto::fields`]) and each series is
//! decoded on its own into one reused `TimeSeries` (so its sample vector is allocated
//! once per request, not once per series), then copied into the batch. Only one series
//! is ever held in decoded form, and a decode error names the series and its offset.
//! In 1.0, a series whose label bytes this thread has decoded before takes its table
//! and tags from the [`Identities`] cache and decodes only its samples, by hand
//! ([`proto::plain_samples`]) when the series has the plain form every sender writes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use super::identities::Identities;
use super::proto::{self, Field, Sample, WireError, v1, v2};
use super::{Decoded, FIELD, MetricType, NAME_LABEL, RemoteWriteError, RemoteWriteError as E};
use crate::model::{FieldKind, NameKind, TagSet, WriteBatch, validate_name};

impl From<WireError> for RemoteWriteError {
    fn from(e: WireError) -> RemoteWriteError {
        E::Malformed {
            context: "request".to_string(),
            offset: e.offset,
            message: e.message.to_string(),
        }
    }
}

/// A prost error in the part at `offset` named by `context`.
fn malformed(offset: usize, context: impl Into<String>, e: prost::DecodeError) -> E {
    let message = e.to_string();
    // prost prefixes every message with this; the variant's own text says it already.
    let message = message
        .strip_prefix("failed to decode Protobuf message: ")
        .map(str::to_string)
        .unwrap_or(message);
    E::Malformed {
        context: context.into(),
        offset,
        message,
    }
}

/// Decodes a remote write 1.0 `WriteRequest`.
pub(super) fn v1(msg: &[u8]) -> Result<Decoded, E> {
    let mut series = Vec::new();
    let mut families: HashMap<String, MetricType> = HashMap::new();
    let mut metadata = 0;
    proto::fields(msg, &[v1::TIMESERIES, v1::METADATA], |f| {
        match f.number {
            v1::TIMESERIES => series.push(f),
            v1::METADATA => {
                let context = || format!("metadata {metadata}");
                let m = v1::MetricMetadata::decode(f.payload)
                    .map_err(|e| malformed(f.offset, context(), e))?;
                families.insert(m.metric_family_name, MetricType::from_wire(m.r#type));
                metadata += 1;
            }
            _ => {}
        }
        Ok::<_, E>(())
    })?;

    let mut out = Builder::new(series.len());
    let mut ts = v1::TimeSeries::default();
    let mut known = v1::known::TimeSeries::default();
    IDENTITIES.with(|cache| {
        let mut cache = cache.borrow_mut();
        for (i, f) in series.iter().enumerate() {
            // The series is keyed by the bytes from its first label field's key to its
            // last label field's end: whole fields parse one way only, so equal bytes
            // mean equal labels (anything between them only makes the key stricter).
            // One range costs one hash and one compare, where keying each label field
            // cost one per label.
            //
            // A series in the plain form (labels and plain samples only) is keyed and
            // its samples read in one walk; others are framed here and decoded by prost.
            known.samples.clear();
            let plain = proto::plain_samples(f.payload, &mut known.samples);
            let (framed, span) = match &plain {
                Some(span) => (true, span.clone()),
                None => label_span(f.payload),
            };
            let labels: &[u8] = f.payload.get(span).unwrap_or_default();
            let label_fields = [labels];
            let hash = framed.then(|| cache.hash(&label_fields));
            let cached = hash.and_then(|h| cache.get(h, &label_fields));
            let (table, tags, samples) = match cached {
                Some((table, tags)) => {
                    if plain.is_none() {
                        decode_series(&mut known, i, f)?;
                        out.decoded.histograms_rejected += known.histograms.len();
                        out.decoded.exemplars_ignored += known.exemplars.len();
                    }
                    (table, tags, &known.samples)
                }
                None => {
                    decode_series(&mut ts, i, f)?;
                    out.decoded.histograms_rejected += ts.histograms.len();
                    out.decoded.exemplars_ignored += ts.exemplars.len();
                    out.labels
                        .extend(ts.labels.drain(..).map(|l| (l.name, l.value)));
                    let (table, tags) = out.identity(i)?;
                    if let Some(hash) = hash {
                        cache.insert(hash, &label_fields, &table, &tags);
                    }
                    (table, tags, &ts.samples)
                }
            };
            // Prometheus usually sends metadata in requests of its own: skip the lookups then.
            let kind = if families.is_empty() {
                None
            } else {
                family_type(&table, |name| families.get(name).copied())
                    .and_then(MetricType::field_kind)
            };
            out.push(table, tags, kind, samples);
        }
        Ok(out.decoded)
    })
}

/// Whether `series` frames as protobuf, and the bytes from its first label field's
/// key to its last label field's end (empty without labels). A series that does not
/// frame is left to prost, which says why.
fn label_span(series: &[u8]) -> (bool, std::ops::Range<usize>) {
    let mut span: Option<(usize, usize)> = None;
    let framed = proto::fields(series, &[v1::LABELS], |field| {
        if field.number == v1::LABELS {
            let start = field.payload.as_ptr() as usize - series.as_ptr() as usize;
            let end = start + field.payload.len();
            span = Some((span.map_or(field.offset, |(first, _)| first), end));
        }
        Ok::<_, WireError>(())
    })
    .is_ok();
    (framed, span.map_or(0..0, |(start, end)| start..end))
}

thread_local! {
    /// Series identities this thread has decoded (see [`Identities`]).
    static IDENTITIES: RefCell<Identities> = RefCell::new(Identities::default());
}

/// Decodes a remote write 2.0 `Request`.
pub(super) fn v2(msg: &[u8]) -> Result<Decoded, E> {
    // Symbols borrow from the body: no allocation per symbol.
    let mut symbols: Vec<&str> = Vec::new();
    let mut series = Vec::new();
    proto::fields(msg, &[v2::SYMBOLS, v2::TIMESERIES], |f| {
        match f.number {
            v2::SYMBOLS => {
                let s = std::str::from_utf8(f.payload).map_err(|e| E::Malformed {
                    context: format!("symbol {}", symbols.len()),
                    offset: f.offset,
                    message: format!("invalid UTF-8 at byte {} of the string", e.valid_up_to()),
                })?;
                symbols.push(s);
            }
            v2::TIMESERIES => series.push(f),
            _ => {}
        }
        Ok::<_, E>(())
    })?;

    let mut out = Builder::new(series.len());
    let mut ts = v2::TimeSeries::default();
    for (i, f) in series.iter().enumerate() {
        decode_series(&mut ts, i, f)?;
        out.decoded.histograms_rejected += ts.histograms.len();
        out.decoded.exemplars_ignored += ts.exemplars.len();
        let symbol = |what, index: u32| {
            symbols.get(index as usize).copied().ok_or(E::SymbolRef {
                series: i,
                what,
                index,
                symbols: symbols.len(),
            })
        };
        if ts.labels_refs.len() % 2 != 0 {
            return Err(E::OddLabelRefs {
                series: i,
                len: ts.labels_refs.len(),
            });
        }
        for pair in ts.labels_refs.chunks_exact(2) {
            let name = symbol("label name", pair[0])?;
            let value = symbol("label value", pair[1])?;
            out.labels.push((name.to_string(), value.to_string()));
        }
        let mut kind = None;
        if let Some(m) = ts.metadata {
            symbol("help", m.help_ref)?;
            symbol("unit", m.unit_ref)?;
            kind = MetricType::from_wire(m.r#type).field_kind();
        }
        let (table, tags) = out.identity(i)?;
        out.push(table, tags, kind, &ts.samples);
    }
    Ok(out.decoded)
}

/// Decodes series `index` into `ts`, reusing its allocations.
fn decode_series<M: Message>(ts: &mut M, index: usize, f: &Field<'_>) -> Result<(), E> {
    ts.clear();
    ts.merge(f.payload)
        .map_err(|e| malformed(f.offset, format!("timeseries {index}"), e))
}

/// The metadata type that applies to metric `name`: its own family's, or that of the
/// family it is a part of (`x_bucket` of histogram `x`, `x_total` of counter `x`, as
/// OpenMetrics names families).
pub(super) fn family_type(
    name: &str,
    lookup: impl Fn(&str) -> Option<MetricType>,
) -> Option<MetricType> {
    use MetricType::*;
    if let Some(t) = lookup(name) {
        return Some(t);
    }
    const HISTOGRAMS: &[MetricType] = &[Histogram, GaugeHistogram];
    const AGGREGATES: &[MetricType] = &[Histogram, GaugeHistogram, Summary];
    let parts: [(&str, &[MetricType]); 6] = [
        ("_bucket", HISTOGRAMS),
        ("_sum", AGGREGATES),
        ("_count", AGGREGATES),
        ("_gsum", &[GaugeHistogram]),
        ("_gcount", &[GaugeHistogram]),
        ("_total", &[Counter]),
    ];
    parts.into_iter().find_map(|(suffix, fits)| {
        let t = lookup(name.strip_suffix(suffix)?)?;
        fits.contains(&t).then_some(t)
    })
}

/// The batch being built, its counts, and a label buffer reused across series.
struct Builder {
    decoded: Decoded,
    labels: Vec<(String, String)>,
}

impl Builder {
    fn new(series: usize) -> Builder {
        Builder {
            decoded: Decoded {
                series,
                batch: WriteBatch::with_capacity(series),
                ..Decoded::default()
            },
            labels: Vec::new(),
        }
    }

    /// Turns the labels in the buffer (emptying it) into series `series`' table and tags,
    /// refusing what storage would refuse for the whole batch.
    fn identity(&mut self, series: usize) -> Result<(Arc<str>, TagSet), E> {
        let labels = &mut self.labels;
        labels.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
            let label = w[0].0.clone();
            return Err(E::DuplicateLabel { series, label });
        }
        let Some(at) = labels.iter().position(|(k, _)| k == NAME_LABEL) else {
            return Err(E::MissingName { series });
        };
        let (_, table) = labels.remove(at);
        let invalid = |label: &str, source| E::InvalidLabel {
            series,
            label: label.to_string(),
            source,
        };
        validate_name(NameKind::Table, &table).map_err(|e| invalid(NAME_LABEL, e))?;
        for (name, value) in labels.iter() {
            validate_name(NameKind::Tag, name).map_err(|e| invalid(name, e))?;
            validate_name(NameKind::TagValue, value).map_err(|e| invalid(name, e))?;
        }
        // Duplicates were refused above, so this cannot fail; map it all the same.
        let tags = TagSet::new(labels.drain(..)).map_err(|e| invalid(NAME_LABEL, e))?;
        Ok((table.into(), tags))
    }

    /// Adds one series' samples, bit for bit.
    fn push(&mut self, table: Arc<str>, tags: TagSet, kind: Option<FieldKind>, samples: &[Sample]) {
        self.decoded.samples += samples.len();
        if samples.is_empty() {
            return;
        }
        let s = self.decoded.batch.series(table, tags, &[FIELD]);
        if let Some(kind) = kind {
            s.with_kind(FIELD, kind);
        }
        s.reserve(samples.len());
        for sample in samples {
            // One value for the one field: the row always fits.
            let _ = s.push(sample.timestamp, &[sample.value()]);
        }
    }
}

//! The StatsD / DogStatsD line syntax (see the module docs for what is accepted).

use super::{Metric, MetricValue};
use crate::ingest::ParseError;
use crate::model::{NameKind, TagSet, validate_name};

/// Parses one packet: the metrics of its good lines, and one error per bad line (with
/// its 1-based line number within the packet and 1-based byte column). Blank lines are
/// skipped. Never panics, whatever the bytes.
pub fn parse_packet(packet: &[u8]) -> (Vec<Metric>, Vec<ParseError>) {
    let mut metrics = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in packet.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // A packet usually ends with `\n`; clients also pad or join with blank lines.
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(line, i + 1) {
            Ok(metric) => metrics.push(metric),
            Err(e) => errors.push(e),
        }
    }
    (metrics, errors)
}

/// The aggregation class a type code selects, before its value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
    Timer,
    Histogram,
    Distribution,
    Set,
}

impl Type {
    fn parse(code: &str) -> Option<Type> {
        Some(match code {
            "c" => Type::Counter,
            "g" => Type::Gauge,
            "ms" => Type::Timer,
            "h" => Type::Histogram,
            "d" => Type::Distribution,
            "s" => Type::Set,
            _ => return None,
        })
    }

    fn is_sampled(self) -> bool {
        matches!(self, Type::Timer | Type::Histogram | Type::Distribution)
    }

    /// Whether `key` is (or, for percentiles, could be) one of this type's field names.
    /// Such a tag would make the table hold one name as both a tag and a field, which
    /// storage refuses for the whole flushed batch; refusing the line here is cheaper.
    fn is_field_name(self, key: &str) -> bool {
        if !self.is_sampled() {
            return key == "value";
        }
        matches!(key, "count" | "sum" | "min" | "max" | "avg")
            || key.strip_prefix('p').is_some_and(|rest| {
                rest.starts_with(|c: char| c.is_ascii_digit())
                    && rest.bytes().all(|b| b.is_ascii_digit() || b == b'_')
            })
    }
}

/// One line of a packet, for error positions.
struct Line {
    number: usize,
}

impl Line {
    /// An error at 0-based byte offset `pos` of the line.
    fn err(&self, pos: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(self.number, pos + 1, message)
    }

    /// A finite number at `pos`.
    fn number(&self, pos: usize, text: &str) -> Result<f64, ParseError> {
        if text.is_empty() {
            return Err(self.err(pos, "missing value: expected a number"));
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(self.err(
                pos,
                format!(
                    "{:?} is not a finite number (NaN, infinities and numbers beyond f64 are refused)",
                    shorten(text)
                ),
            )),
            Err(_) => Err(self.err(pos, format!("invalid number {:?}", shorten(text)))),
        }
    }

    /// The one value of a counter or gauge: several values are a timer feature.
    fn single(&self, pos: usize, text: &str) -> Result<(), ParseError> {
        match text.find(':') {
            Some(i) => Err(self.err(
                pos + i,
                "several values (':') are accepted only for ms, h and d metrics",
            )),
            None => Ok(()),
        }
    }
}

fn parse_line(bytes: &[u8], number: usize) -> Result<Metric, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ParseError::new(number, e.valid_up_to() + 1, "invalid UTF-8 in StatsD line")
    })?;
    let line = Line { number };
    if text.starts_with("_e{") || text.starts_with("_sc|") {
        let message = "DogStatsD events and service checks are not supported: only metrics are";
        return Err(line.err(0, message));
    }
    let bar = text.find('|');
    let colon = text.find(':').filter(|&c| bar.is_none_or(|b| c < b));
    let Some(colon) = colon else {
        let pos = bar.unwrap_or(text.len());
        return Err(line.err(pos, "expected ':' and a value after the metric name"));
    };
    let name = &text[..colon];
    if name.is_empty() {
        return Err(line.err(0, "empty metric name"));
    }
    validate_name(NameKind::Table, name).map_err(|e| line.err(0, e.to_string()))?;
    let Some(bar) = bar else {
        return Err(line.err(text.len(), "expected '|' and a metric type after the value"));
    };
    let value_pos = colon + 1;
    let value_text = &text[value_pos..bar];

    let mut sections = Sections {
        rest: Some(&text[bar + 1..]),
        pos: bar + 1,
    };
    let (type_pos, code) = sections.next().unwrap_or((bar + 1, ""));
    let kind = match Type::parse(code) {
        Some(kind) => kind,
        None if code.is_empty() => return Err(line.err(type_pos, "missing metric type after '|'")),
        None => {
            let message = format!(
                "unknown metric type {:?}: expected c, g, ms, h, d or s",
                shorten(code)
            );
            return Err(line.err(type_pos, message));
        }
    };

    // Errors are reported left to right: the value before the sections after the type.
    let value = parse_value(&line, kind, value_pos, value_text)?;

    let mut sample_rate = None;
    let mut tags = None;
    for (pos, section) in sections {
        match section.as_bytes().first() {
            None => {
                let message = "empty section: expected @rate, #tags or an extension after '|'";
                return Err(line.err(pos, message));
            }
            Some(b'@') => {
                if sample_rate.is_some() {
                    return Err(line.err(pos, "sample rate given twice"));
                }
                sample_rate = Some(parse_rate(&line, pos + 1, &section[1..])?);
            }
            Some(b'#') => {
                if tags.is_some() {
                    return Err(line.err(pos, "tags given twice"));
                }
                tags = Some(parse_tags(&line, kind, pos + 1, &section[1..])?);
            }
            // DogStatsD extensions (`c:` container id, `T` timestamp) and future ones.
            Some(_) => {}
        }
    }
    Ok(Metric {
        name: name.to_string(),
        tags: tags.unwrap_or_default(),
        value,
        sample_rate: sample_rate.unwrap_or(1.0),
    })
}

fn parse_value(line: &Line, kind: Type, pos: usize, text: &str) -> Result<MetricValue, ParseError> {
    Ok(match kind {
        Type::Counter => {
            line.single(pos, text)?;
            let v = line.number(pos, text)?;
            if v < 0.0 {
                let message = "counter increments must not be negative: counters are stored \
                               cumulative and a total that goes down reads as a reset";
                return Err(line.err(pos, message));
            }
            MetricValue::Counter(v)
        }
        Type::Gauge => {
            line.single(pos, text)?;
            let v = line.number(pos, text)?;
            if text.starts_with(['+', '-']) {
                MetricValue::GaugeDelta(v)
            } else {
                MetricValue::Gauge(v)
            }
        }
        Type::Set => {
            if text.is_empty() {
                return Err(line.err(pos, "missing value: expected a set member"));
            }
            MetricValue::Set(text.to_string())
        }
        Type::Timer | Type::Histogram | Type::Distribution => {
            let mut values = Vec::with_capacity(1);
            let mut at = pos;
            for piece in text.split(':') {
                values.push(line.number(at, piece)?);
                at += piece.len() + 1;
            }
            match kind {
                Type::Timer => MetricValue::Timer(values),
                Type::Histogram => MetricValue::Histogram(values),
                _ => MetricValue::Distribution(values),
            }
        }
    })
}

fn parse_rate(line: &Line, pos: usize, text: &str) -> Result<f64, ParseError> {
    let rate = line.number(pos, text)?;
    if rate > 0.0 && rate <= 1.0 {
        Ok(rate)
    } else {
        let message = format!("sample rate {rate} is out of range: expected 0 < rate <= 1");
        Err(line.err(pos, message))
    }
}

/// DogStatsD tags `k:v,k2:v2` starting at byte `pos` of the line.
fn parse_tags(line: &Line, kind: Type, pos: usize, text: &str) -> Result<TagSet, ParseError> {
    // (key, value, position of the key)
    let mut pairs: Vec<(&str, &str, usize)> = Vec::new();
    let mut at = pos;
    for entry in text.split(',') {
        let entry_pos = at;
        at += entry.len() + 1;
        if entry.is_empty() {
            continue;
        }
        let (key, value, value_pos) = match entry.find(':') {
            Some(i) => (&entry[..i], &entry[i + 1..], entry_pos + i + 1),
            // A bare tag keeps its information as a boolean-like value.
            None => (entry, "true", entry_pos),
        };
        validate_name(NameKind::Tag, key).map_err(|e| line.err(entry_pos, e.to_string()))?;
        validate_name(NameKind::TagValue, value).map_err(|e| line.err(value_pos, e.to_string()))?;
        if kind.is_field_name(key) {
            let message = format!("tag {key:?} would clash with the field of the same name");
            return Err(line.err(entry_pos, message));
        }
        pairs.push((key, value, entry_pos));
    }
    // Sorting keeps a hostile line with thousands of tags O(n log n).
    let mut sorted: Vec<(&str, usize)> = pairs.iter().map(|&(k, _, p)| (k, p)).collect();
    sorted.sort_unstable();
    let repeat = sorted
        .windows(2)
        .filter_map(|w| match w {
            [(a, _), (b, p)] if a == b => Some((*p, *b)),
            _ => None,
        })
        .min();
    if let Some((p, key)) = repeat {
        return Err(line.err(p, format!("duplicate tag key {key:?}")));
    }
    TagSet::new(pairs.into_iter().map(|(k, v, _)| (k, v))).map_err(|e| line.err(pos, e.to_string()))
}

/// The `|`-separated sections after the value, with their byte positions in the line.
struct Sections<'a> {
    rest: Option<&'a str>,
    pos: usize,
}

impl<'a> Iterator for Sections<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        let rest = self.rest?;
        let pos = self.pos;
        match rest.split_once('|') {
            Some((section, tail)) => {
                self.rest = Some(tail);
                self.pos += section.len() + 1;
                Some((pos, section))
            }
            None => {
                self.rest = None;
                Some((pos, rest))
            }
        }
    }
}

/// At most 40 characters of `text`, for messages about hostile input.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

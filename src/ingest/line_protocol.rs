//! The InfluxDB line protocol (the v1 and v2 `/write` body), into write batches.
//!
//! ```text
//! cpu,host=a,region=eu usage_user=58i,usage_idle=24.5,up=t 1451606400000000000
//! # a comment
//! weather,station=Z\ 1 temp=-1.5e1
//! ```
//!
//! Each point becomes one row of table `measurement` with the tags as its series and one
//! value per field (all the fields of a line go to the same row). Rows of one series
//! with the same field set are grouped into one [`SeriesWrite`], even when other series'
//! lines come between them (TSBS-style input interleaves hosts), so storage resolves each
//! series once per group. A raw series key seen before (`cpu,host=a,...`, compared as
//! text) skips tag parsing entirely; a new key costs one [`TagSet`]. Rows of one series
//! keep their input order, also across groups; groups of different series are
//! independent and appear in the order their series first appear.
//!
//! # Syntax accepted
//! Following <https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/>:
//! `measurement[,tag=value...] field=value[,field=value...] [timestamp]`.
//! - Escapes: a backslash escapes `,` and space in measurements; `,`, `=` and space in
//!   tag keys, tag values and field keys; and, as the reference's backslash table says,
//!   itself (`\\` is one backslash) in all of them. A backslash before any other
//!   character is a literal backslash. An unescaped `=` in a tag value is an error.
//! - Field values: floats (`1`, `-1.5`, `1e3`, `.5`), integers `12i`, unsigned `12u`,
//!   booleans (`t`, `T`, `true`, `True`, `TRUE`, `f`, ... `FALSE`, stored as 1.0 and
//!   0.0). Everything is stored as `f64`: integers beyond 2^53 round to the nearest
//!   `f64` (ties to even). NaN, infinity and floats beyond `f64` are refused, as
//!   InfluxDB does; string fields are refused (MetricStore stores numbers).
//! - Timestamps: an integer in the request's [`Precision`], converted to milliseconds.
//!   Nanoseconds and microseconds are truncated toward negative infinity (floor, so
//!   `-1` ns is `-1` ms, the millisecond that contains it); seconds are multiplied by
//!   1000, and a product beyond `i64` is an error. No timestamp means the caller's
//!   `default_timestamp_ms` (the server's receive time).
//! - Blank lines and `#` comments (after optional blanks), `\n` and `\r\n` line ends;
//!   runs of spaces or tabs between the sections and after the timestamp.
//!
//! Refused per line, with the line, column and reason: what the format refuses,
//! duplicate tag or field keys, empty tag values, a key used both as a tag and as a
//! field, and names [`validate_name`] refuses (so one bad name does not make storage
//! refuse the whole batch).
//!
//! # Partial writes
//! [`parse`] follows InfluxDB: valid lines are kept, bad lines are reported, and the
//! caller stores [`LineResult::batch`] and answers with [`LineResult::errors`] (InfluxDB
//! answers 400 with the first error and still writes the valid points).
//! [`parse_strict`] stops at the first bad line instead. Refusals that depend on the
//! store (limits, memory, schema conflicts with earlier writes) still apply to the batch
//! as a whole when it is written.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use super::ParseError;
use crate::model::{NameKind, SeriesWrite, TagSet, WriteBatch, validate_name};
use syntax::{FieldKey, Line, Tag, skip_blank, sub};

mod syntax;

/// The unit of the timestamps in a write (the `precision` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Nanoseconds, InfluxDB's default.
    #[default]
    Nanosecond,
    /// Microseconds.
    Microsecond,
    /// Milliseconds, MetricStore's own unit.
    Millisecond,
    /// Seconds.
    Second,
}

/// A precision name InfluxDB does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision {0:?}: expected ns, us, ms or s (or v1's n and u)")]
pub struct UnknownPrecision(pub String);

impl Precision {
    /// Parses a `precision` parameter: v2's `ns`, `us`, `ms`, `s` and v1's `n`, `u`,
    /// `ms`, `s`. v1's `m` and `h` are not supported.
    pub fn parse(name: &str) -> Result<Precision, UnknownPrecision> {
        match name {
            "n" | "ns" => Ok(Precision::Nanosecond),
            "u" | "us" => Ok(Precision::Microsecond),
            "ms" => Ok(Precision::Millisecond),
            "s" => Ok(Precision::Second),
            other => Err(UnknownPrecision(syntax::shorten(other).into_owned())),
        }
    }

    /// The v2 name: `ns`, `us`, `ms` or `s`.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Nanosecond => "ns",
            Precision::Microsecond => "us",
            Precision::Millisecond => "ms",
            Precision::Second => "s",
        }
    }

    /// A timestamp in this unit as milliseconds: floor for `ns` and `us`, `None` when
    /// seconds overflow `i64` milliseconds.
    pub fn to_millis(self, timestamp: i64) -> Option<i64> {
        match self {
            Precision::Nanosecond => Some(timestamp.div_euclid(1_000_000)),
            Precision::Microsecond => Some(timestamp.div_euclid(1_000)),
            Precision::Millisecond => Some(timestamp),
            Precision::Second => timestamp.checked_mul(1_000),
        }
    }

    fn unit_name(self) -> &'static str {
        match self {
            Precision::Nanosecond => "nanoseconds",
            Precision::Microsecond => "microseconds",
            Precision::Millisecond => "milliseconds",
            Precision::Second => "seconds",
        }
    }
}

impl FromStr for Precision {
    type Err = UnknownPrecision;

    fn from_str(s: &str) -> Result<Precision, UnknownPrecision> {
        Precision::parse(s)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`parse`] made of a request body: the valid points, and why the others failed.
#[derive(Debug, Clone, Default)]
pub struct LineResult {
    /// Every valid point, ready for [`MetricStore::write`](crate::MetricStore::write).
    pub batch: WriteBatch,
    /// One error per bad line, in line order; the line's points are not in `batch`.
    pub errors: Vec<ParseError>,
    /// Lines read, comments and blank lines included.
    pub lines: usize,
    /// Points (rows) in `batch`.
    pub points: usize,
}

/// Parses a write body with InfluxDB's partial-write semantics: valid lines go into the
/// batch, each bad line adds an error naming its line, column and fault. Points without
/// a timestamp get `default_timestamp_ms`.
///
/// Store the batch even when there are errors, then report them (InfluxDB answers 400
/// `partial write` with the first one).
pub fn parse(text: &str, precision: Precision, default_timestamp_ms: i64) -> LineResult {
    let mut parser = Parser::new(precision, default_timestamp_ms);
    let mut errors = Vec::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        if let Err(e) = parser.line(line, lines) {
            errors.push(e);
        }
    }
    LineResult {
        points: parser.points,
        batch: parser.finish(),
        errors,
        lines,
    }
}

/// Like [`parse`], but all or nothing: the first bad line is the error.
pub fn parse_strict(
    text: &str,
    precision: Precision,
    default_timestamp_ms: i64,
) -> Result<WriteBatch, ParseError> {
    let mut parser = Parser::new(precision, default_timestamp_ms);
    for (i, line) in text.lines().enumerate() {
        parser.line(line, i + 1)?;
    }
    Ok(parser.finish())
}

/// A series seen in this body: its identity and its newest group.
#[derive(Debug)]
struct Series {
    table: String,
    tags: TagSet,
    /// Index in `Parser::items` of the series' newest group, if any.
    latest: Option<usize>,
}

/// The state of one parse. Borrows the body, so that raw series keys are looked up
/// without copying them.
struct Parser<'a> {
    precision: Precision,
    default_timestamp_ms: i64,
    /// Groups in creation order; they become the batch.
    items: Vec<SeriesWrite>,
    series: Vec<Series>,
    /// Raw series key text → index in `series`. Different spellings of one series
    /// (tag order, escapes) map to the same entry through `by_identity`.
    by_key: HashMap<&'a str, usize, ahash::RandomState>,
    by_identity: HashMap<(String, TagSet), usize, ahash::RandomState>,
    /// The previous valid line's key and series, to skip hashing sorted input.
    last: Option<(&'a str, usize)>,
    // Per-line scratch, reused so that a line allocates nothing in the common case.
    tags: Vec<Tag<'a>>,
    keys: Vec<FieldKey<'a>>,
    values: Vec<f64>,
    points: usize,
}

impl<'a> Parser<'a> {
    fn new(precision: Precision, default_timestamp_ms: i64) -> Parser<'a> {
        Parser {
            precision,
            default_timestamp_ms,
            items: Vec::new(),
            series: Vec::new(),
            by_key: HashMap::default(),
            by_identity: HashMap::default(),
            last: None,
            tags: Vec::new(),
            keys: Vec::new(),
            values: Vec::new(),
            points: 0,
        }
    }

    /// Parses one line (without its line end). Nothing changes unless the line is valid,
    /// except that a new series may be remembered (without rows).
    fn line(&mut self, text: &'a str, number: usize) -> Result<(), ParseError> {
        let text = text.strip_suffix('\r').unwrap_or(text);
        let line = Line { text, number };
        let b = text.as_bytes();
        let start = skip_blank(b, 0);
        match b.get(start) {
            None | Some(b'#') => return Ok(()),
            Some(_) => {}
        }
        let key_end = line.key_end(start);
        let key = sub(text, start, key_end);
        let known = match self.last {
            Some((last, id)) if last == key => Some(id),
            _ => self.by_key.get(key).copied(),
        };
        // Errors are found left to right: the series key before the fields.
        let measurement = match known {
            Some(_) => None,
            None => Some(line.series(start, key_end, &mut self.tags)?),
        };
        let fields_start = skip_blank(b, key_end);
        if fields_start >= b.len() {
            let message = "missing fields: expected a blank, then field=value";
            return Err(line.err(key_end, message));
        }
        self.keys.clear();
        self.values.clear();
        let fields_end = line.fields(fields_start, &mut self.keys, &mut self.values)?;
        let timestamp = line
            .timestamp(fields_end, self.precision)?
            .unwrap_or(self.default_timestamp_ms);
        let id = match (known, measurement) {
            (Some(id), _) => id,
            (None, Some(measurement)) => self.add_series(&line, start, key, measurement)?,
            (None, None) => return Err(line.err(start, "internal error: no series")),
        };
        let item = self.group(&line, id)?;
        let pushed = self
            .items
            .get_mut(item)
            .map(|s| s.push(timestamp, &self.values));
        match pushed {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(line.err(start, format!("internal error: {e}"))),
            None => return Err(line.err(start, "internal error: no group")),
        }
        self.last = Some((key, id));
        self.points += 1;
        Ok(())
    }

    /// Checks the names of a new raw key's series (in `self.tags`) and remembers it.
    fn add_series(
        &mut self,
        line: &Line<'_>,
        start: usize,
        key: &'a str,
        measurement: Cow<'_, str>,
    ) -> Result<usize, ParseError> {
        let name_err = |pos: usize, e: crate::model::Error| line.err(pos, e.to_string());
        validate_name(NameKind::Table, &measurement).map_err(|e| name_err(start, e))?;
        for tag in &self.tags {
            validate_name(NameKind::Tag, &tag.key).map_err(|e| name_err(tag.key_pos, e))?;
            validate_name(NameKind::TagValue, &tag.value)
                .map_err(|e| name_err(tag.value_pos, e))?;
        }
        let keys = self.tags.iter().map(|t| (t.key.as_ref(), t.key_pos));
        if let Some((pos, name)) = first_repeat(keys) {
            return Err(line.err(pos, format!("duplicate tag key {name:?}")));
        }
        let pairs = self.tags.drain(..).map(|t| (t.key, t.value));
        let tags = TagSet::new(pairs).map_err(|e| line.err(start, e.to_string()))?;
        let identity = (measurement.into_owned(), tags);
        let id = match self.by_identity.get(&identity) {
            Some(&id) => id,
            None => {
                let id = self.series.len();
                self.series.push(Series {
                    table: identity.0.clone(),
                    tags: identity.1.clone(),
                    latest: None,
                });
                self.by_identity.insert(identity, id);
                id
            }
        };
        self.by_key.insert(key, id);
        Ok(id)
    }

    /// The group of series `id` for this line's field keys: its newest group if the
    /// keys match, else a new group (after checking the keys).
    fn group(&mut self, line: &Line<'_>, id: usize) -> Result<usize, ParseError> {
        let Some(series) = self.series.get(id) else {
            return Err(line.err(0, "internal error: unknown series"));
        };
        if let Some(item) = series.latest
            && let Some(group) = self.items.get(item)
            && group.fields().len() == self.keys.len()
            && group
                .fields()
                .iter()
                .zip(&self.keys)
                .all(|((name, _), (key, _))| name == key)
        {
            return Ok(item);
        }
        for (key, pos) in &self.keys {
            validate_name(NameKind::Field, key).map_err(|e| line.err(*pos, e.to_string()))?;
            if series.tags.get(key).is_some() {
                let message = format!("{key:?} is both a tag and a field");
                return Err(line.err(*pos, message));
            }
        }
        if let Some((pos, name)) = first_repeat(self.keys.iter().map(|(k, p)| (k.as_ref(), *p))) {
            return Err(line.err(pos, format!("duplicate field key {name:?}")));
        }
        let names: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_ref()).collect();
        let group = SeriesWrite::new(series.table.clone(), series.tags.clone(), &names);
        let item = self.items.len();
        self.items.push(group);
        if let Some(series) = self.series.get_mut(id) {
            series.latest = Some(item);
        }
        Ok(item)
    }

    fn finish(self) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for item in self.items {
            batch.push(item);
        }
        batch
    }
}

/// The first key (in line order) that repeats an earlier one, with its position.
/// Sorts, so that a hostile line with many keys stays O(n log n).
fn first_repeat<'k>(keys: impl Iterator<Item = (&'k str, usize)>) -> Option<(usize, &'k str)> {
    let mut sorted: Vec<(&str, usize)> = keys.collect();
    if sorted.len() < 2 {
        return None;
    }
    sorted.sort_unstable();
    sorted
        .windows(2)
        .filter_map(|w| match w {
            [(a, _), (b, pos)] if a == b => Some((*pos, *b)),
            _ => None,
        })
        .min()
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

//! The Prometheus text exposition format (version 0.0.4), with optional timestamps.
//!
//! ```text
//! # HELP http_requests_total Requests served.
//! # TYPE http_requests_total counter
//! http_requests_total{code="200",path="/a\"b"} 1027 1395066363000
//! ```
//!
//! Each sample becomes one row of table `name` with the labels as tags and one field,
//! [`FIELD`] (`value`). Consecutive samples of one series (the same `name{...}` text)
//! share one [`SeriesWrite`], so storage resolves each series once per run of samples
//! and the parser allocates nothing for a repeated series: it compares the line's prefix
//! with the previous series' text and only parses the value and the timestamp.
//!
//! The field kind comes from the family's `# TYPE` line (`counter`, `gauge`;
//! `histogram` and `summary` give [`FieldKind::Histogram`] for `name`, `name_bucket`,
//! `name_sum` and `name_count`); `untyped`, OpenMetrics' `unknown` and a missing
//! `# TYPE` fall back to [`FieldKind::infer`] on the sample's name.
//!
//! Syntax accepted, following Prometheus' own parser: blanks (spaces, tabs) around every
//! token; `\\`, `\"` and `\n` escapes in label values; a trailing comma in a label set;
//! `{}`; values in any form [`str::parse::<f64>`] accepts (`NaN`, `+Inf`, `-Inf`,
//! `1e-05`, ...), parsed by it so the bits are exactly Rust's; integer millisecond
//! timestamps, possibly negative; `\r\n` line ends. Not supported: Prometheus 3's quoted
//! UTF-8 metric and label names, OpenMetrics exemplars and `# EOF`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read};

use super::{ParseError, ReadError};
use crate::model::{FieldKind, SeriesWrite, TagSet, WriteBatch};
use syntax::{Line, MetricType, describe, is_blank, metric_name_end, skip_blank, sub};

mod syntax;

/// The one field every sample is stored in.
pub const FIELD: &str = "value";

/// Longest accepted line in [`parse_reader`], in bytes; bounds memory on hostile input.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Counts over everything parsed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Lines read, comments and blank lines included.
    pub lines: usize,
    /// Samples parsed.
    pub samples: usize,
    /// Batches completed.
    pub batches: usize,
}

/// Parses a whole exposition into one batch. Samples without a timestamp get
/// `default_timestamp_ms` (typically the scrape time).
pub fn parse(text: &str, default_timestamp_ms: i64) -> Result<WriteBatch, ParseError> {
    let mut parser = Parser::new(default_timestamp_ms, usize::MAX);
    parser.feed(text)?;
    parser.finish();
    // With no sample limit there is at most one batch.
    Ok(parser.ready.pop().unwrap_or_default())
}

/// Parses everything `reader` yields, handing `on_batch` batches of at most
/// `max_samples_per_batch` samples (0 counts as 1) in input order.
///
/// Reads into one buffer of [`MAX_LINE_BYTES`], so memory stays bounded however large
/// the input is. Stops at the first error: an I/O error, malformed input (including invalid UTF-8 and
/// lines over [`MAX_LINE_BYTES`]) or an error returned by `on_batch`; batches handed over
/// before that stay handed over.
pub fn parse_reader<R: Read, E>(
    mut reader: R,
    default_timestamp_ms: i64,
    max_samples_per_batch: usize,
    mut on_batch: impl FnMut(WriteBatch) -> Result<(), E>,
) -> Result<ParseStats, ReadError<E>> {
    let mut parser = Parser::new(default_timestamp_ms, max_samples_per_batch);
    let mut buf = vec![0u8; MAX_LINE_BYTES];
    let mut len = 0;
    loop {
        if len == buf.len() {
            // A full buffer without a line end: the line is too long (the buffer holds
            // MAX_LINE_BYTES, and only a line's tail is kept between reads).
            let message = format!("line longer than {MAX_LINE_BYTES} bytes");
            return Err(ParseError::new(parser.stats.lines + 1, MAX_LINE_BYTES, message).into());
        }
        let n = match reader.read(buf.get_mut(len..).unwrap_or_default()) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        let eof = n == 0;
        len += n;
        let filled = buf.get(..len).unwrap_or_default();
        // Parse whole lines only; the tail waits for the rest of its line.
        let complete = if eof {
            len
        } else {
            match filled.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let chunk = filled.get(..complete).unwrap_or_default();
        let text = std::str::from_utf8(chunk).map_err(|e| parser.utf8_error(chunk, e))?;
        parser.feed(text)?;
        for batch in parser.take_batches() {
            on_batch(batch).map_err(ReadError::Sink)?;
        }
        if eof {
            break;
        }
        buf.copy_within(complete..len, 0);
        len -= complete;
    }
    parser.finish();
    for batch in parser.take_batches() {
        on_batch(batch).map_err(ReadError::Sink)?;
    }
    Ok(parser.stats)
}

/// An incremental parser: feed it text a run of whole lines at a time, take the
/// completed batches, and call [`finish`](Parser::finish) at the end.
///
/// It remembers the `# TYPE` lines seen (so a family's type applies to its samples in
/// later chunks), the open series and the batch being filled; nothing else.
#[derive(Debug)]
pub struct Parser {
    default_timestamp_ms: i64,
    max_samples: usize,
    types: HashMap<String, MetricType>,
    /// The `name{...}` text of the open series; empty when none is open.
    series_text: String,
    open: Option<SeriesWrite>,
    batch: WriteBatch,
    batch_samples: usize,
    ready: Vec<WriteBatch>,
    stats: ParseStats,
}

impl Parser {
    /// A parser giving samples without a timestamp `default_timestamp_ms`, and cutting
    /// batches at `max_samples_per_batch` samples (0 counts as 1).
    pub fn new(default_timestamp_ms: i64, max_samples_per_batch: usize) -> Parser {
        Parser {
            default_timestamp_ms,
            max_samples: max_samples_per_batch.max(1),
            types: HashMap::new(),
            series_text: String::new(),
            open: None,
            batch: WriteBatch::new(),
            batch_samples: 0,
            ready: Vec::new(),
            stats: ParseStats::default(),
        }
    }

    /// Parses `text`, which must end at a line end (a last line without `\n` counts as
    /// whole). Completed batches wait in the parser until [`take_batches`](Self::take_batches).
    /// Line numbers in errors count from the first line ever fed.
    pub fn feed(&mut self, text: &str) -> Result<(), ParseError> {
        for line in text.lines() {
            self.stats.lines += 1;
            self.line(line)?;
        }
        Ok(())
    }

    /// Ends the input: the partly filled batch becomes ready.
    pub fn finish(&mut self) {
        self.close_series();
        self.cut_batch();
    }

    /// Removes and returns the completed batches, oldest first.
    pub fn take_batches(&mut self) -> std::vec::Drain<'_, WriteBatch> {
        self.ready.drain(..)
    }

    /// Counts so far.
    pub fn stats(&self) -> ParseStats {
        self.stats
    }

    fn line(&mut self, text: &str) -> Result<(), ParseError> {
        let line = Line {
            text,
            number: self.stats.lines,
        };
        let b = text.as_bytes();
        // Fast path: the same series as the previous sample. The prefix must be followed
        // by a blank and then not by '{', else the name only was equal (`up {job=..}`).
        let prefix = self.series_text.len();
        if prefix > 0
            && b.starts_with(self.series_text.as_bytes())
            && b.get(prefix).is_some_and(|&c| is_blank(c))
            && b.get(skip_blank(b, prefix)) != Some(&b'{')
        {
            let (ts, value) = line.sample(prefix)?;
            return self.push_sample(ts, value);
        }
        let start = skip_blank(b, 0);
        match b.get(start) {
            None => Ok(()),
            Some(b'#') => {
                if let Some((family, metric_type)) = line.type_line(start + 1)? {
                    // Later samples of the open series' text must pick up the new type.
                    self.close_series();
                    self.types.insert(family.to_string(), metric_type);
                }
                Ok(())
            }
            Some(_) => self.series_line(line, start),
        }
    }

    /// A sample line whose series differs from the previous one (or starts with blanks).
    fn series_line(&mut self, line: Line<'_>, start: usize) -> Result<(), ParseError> {
        let b = line.text.as_bytes();
        let name_end = metric_name_end(b, start);
        if name_end == start {
            let found = describe(line.text, start);
            return Err(line.err(start, format!("expected a metric name, found {found}")));
        }
        let after_name = skip_blank(b, name_end);
        let mut labels = Vec::new();
        let series_end = if b.get(after_name) == Some(&b'{') {
            line.labels(after_name + 1, &mut labels)?
        } else {
            name_end
        };
        line.check_duplicates(&labels)?;
        let (ts, value) = line.sample(series_end)?;
        let raw = sub(line.text, start, series_end);
        if self.open.is_none() || raw != self.series_text {
            let name = sub(line.text, start, name_end);
            let tags = TagSet::new(labels.into_iter().map(|(k, v, _)| (k, v)))
                .map_err(|e| line.err(start, e.to_string()))?;
            let mut series = SeriesWrite::new(name, tags, &[FIELD]);
            series.with_kind(FIELD, self.kind_for(name));
            self.close_series();
            self.open = Some(series);
            self.series_text.push_str(raw);
        }
        self.push_sample(ts, value)
    }

    fn kind_for(&self, name: &str) -> FieldKind {
        use MetricType::*;
        let declared = |base: &str| self.types.get(base).copied();
        let metric_type = declared(name).or_else(|| {
            [
                ("_bucket", Histogram),
                ("_sum", Summary),
                ("_count", Summary),
                ("_total", Counter),
            ]
            .into_iter()
            .find_map(|(suffix, wanted)| {
                let t = declared(name.strip_suffix(suffix)?)?;
                let fits = t == wanted || (t == Histogram && wanted == Summary);
                fits.then_some(t)
            })
        });
        match metric_type {
            Some(Counter) => FieldKind::Counter,
            Some(Gauge) => FieldKind::Gauge,
            Some(Histogram | Summary) => FieldKind::Histogram,
            Some(Untyped) | None => FieldKind::infer(name),
        }
    }

    fn push_sample(&mut self, ts: Option<i64>, value: f64) -> Result<(), ParseError> {
        let ts = ts.unwrap_or(self.default_timestamp_ms);
        if self.batch_samples >= self.max_samples {
            self.cut_batch();
        }
        let line = self.stats.lines;
        let Some(open) = self.open.as_mut() else {
            return Err(ParseError::new(line, 1, "internal error: no open series"));
        };
        open.push(ts, &[value])
            .map_err(|e| ParseError::new(line, 1, e.to_string()))?;
        self.batch_samples += 1;
        self.stats.samples += 1;
        Ok(())
    }

    /// Moves the open series into the batch.
    fn close_series(&mut self) {
        if let Some(series) = self.open.take()
            && !series.is_empty()
        {
            self.batch.push(series);
        }
        self.series_text.clear();
    }

    /// Completes the current batch; the open series continues in the next one.
    fn cut_batch(&mut self) {
        if let Some(series) = self.open.take() {
            let mut next = SeriesWrite::new(series.table(), series.tags().clone(), &[FIELD]);
            if let Some(kind) = series.fields().first().and_then(|f| f.1) {
                next.with_kind(FIELD, kind);
            }
            if !series.is_empty() {
                self.batch.push(series);
            }
            self.open = Some(next);
        }
        let batch = std::mem::take(&mut self.batch);
        if !batch.is_empty() {
            self.ready.push(batch);
            self.stats.batches += 1;
        }
        self.batch_samples = 0;
    }

    /// Invalid UTF-8 in `chunk`: parses the whole lines before it first, so that earlier
    /// errors win and the line number is right.
    fn utf8_error(&mut self, chunk: &[u8], e: std::str::Utf8Error) -> ParseError {
        let bad = e.valid_up_to();
        let line_start = chunk
            .get(..bad)
            .and_then(|p| p.iter().rposition(|&c| c == b'\n'))
            .map_or(0, |i| i + 1);
        let before = chunk
            .get(..line_start)
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or_default();
        if let Err(earlier) = self.feed(before) {
            return earlier;
        }
        ParseError::new(self.stats.lines + 1, bad - line_start + 1, "invalid UTF-8")
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

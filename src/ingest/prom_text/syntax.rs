//! The syntax of one line of the text format, as pure functions of the line: no
//! parser state, so each piece can be tested and fuzzed alone.

use std::borrow::Cow;

use crate::ingest::ParseError;

/// A metric family's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// A parsed label: name, unescaped value, and the 0-based byte offset of the name.
pub(super) type Label<'a> = (&'a str, Cow<'a, str>, usize);

/// One line and its 1-based number, for errors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    pub(super) text: &'a str,
    pub(super) number: usize,
}

impl<'a> Line<'a> {
    /// An error at 0-based byte `pos` of the line.
    pub(super) fn err(&self, pos: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(self.number, pos + 1, message)
    }

    /// A `#` line from `pos` (after the `#`): the family and type of a `# TYPE` line,
    /// `None` for `# HELP` and other comments.
    pub(super) fn type_line(
        &self,
        pos: usize,
    ) -> Result<Option<(&'a str, MetricType)>, ParseError> {
        let (line, b) = (self.text, self.text.as_bytes());
        let word_start = skip_blank(b, pos);
        let word_end = token_end(b, word_start);
        if sub(line, word_start, word_end) != "TYPE" {
            return Ok(None);
        }
        let name_start = skip_blank(b, word_end);
        let name_end = metric_name_end(b, name_start);
        if name_end == name_start {
            let found = describe(line, name_start);
            return Err(self.err(
                name_start,
                format!("expected a metric name after '# TYPE', found {found}"),
            ));
        }
        let type_start = skip_blank(b, name_end);
        let type_end = token_end(b, type_start);
        let metric_type = match sub(line, type_start, type_end) {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" | "unknown" => MetricType::Untyped,
            "" => return Err(self.err(type_start, "missing metric type after the metric name")),
            other if type_start == name_end => {
                let message = format!(
                    "expected a blank after the metric name, found {:?}",
                    shorten(other)
                );
                return Err(self.err(type_start, message));
            }
            other => {
                let message = format!(
                    "unknown metric type {:?}: expected counter, gauge, histogram, summary or untyped",
                    shorten(other)
                );
                return Err(self.err(type_start, message));
            }
        };
        let rest = skip_blank(b, type_end);
        if rest < b.len() {
            return Err(self.err(rest, "unexpected text after the metric type"));
        }
        Ok(Some((sub(line, name_start, name_end), metric_type)))
    }

    /// Parses `name="value", ...}` from `pos` (just after `{`); returns the index after `}`.
    pub(super) fn labels(
        &self,
        mut pos: usize,
        out: &mut Vec<Label<'a>>,
    ) -> Result<usize, ParseError> {
        let (line, b) = (self.text, self.text.as_bytes());
        loop {
            pos = skip_blank(b, pos);
            match b.get(pos) {
                None => return Err(self.err(pos, "unterminated label set: expected '}'")),
                Some(b'}') => return Ok(pos + 1),
                Some(_) => {}
            }
            let name_start = pos;
            let name_end = label_name_end(b, pos);
            if name_end == name_start {
                let found = describe(line, pos);
                return Err(self.err(pos, format!("expected a label name or '}}', found {found}")));
            }
            let name = sub(line, name_start, name_end);
            pos = skip_blank(b, name_end);
            if b.get(pos) != Some(&b'=') {
                return Err(self.err(pos, format!("expected '=' after label name {name:?}")));
            }
            pos = skip_blank(b, pos + 1);
            if b.get(pos) != Some(&b'"') {
                let found = describe(line, pos);
                let message =
                    format!("expected '\"' to open the value of label {name:?}, found {found}");
                return Err(self.err(pos, message));
            }
            let (value, after) = self.label_value(pos + 1, name)?;
            out.push((name, value, name_start));
            pos = skip_blank(b, after);
            match b.get(pos) {
                Some(b',') => pos += 1,
                Some(b'}') => return Ok(pos + 1),
                _ => {
                    let found = describe(line, pos);
                    let message = format!(
                        "expected ',' or '}}' after the value of label {name:?}, found {found}"
                    );
                    return Err(self.err(pos, message));
                }
            }
        }
    }

    /// Reads a label value from `start` (just after its opening quote); returns the
    /// unescaped value (borrowed when it has no escapes) and the index after the quote.
    fn label_value(&self, start: usize, name: &str) -> Result<(Cow<'a, str>, usize), ParseError> {
        let (line, b) = (self.text, self.text.as_bytes());
        let mut owned: Option<String> = None;
        let (mut i, mut segment) = (start, start);
        while let Some(&c) = b.get(i) {
            match c {
                b'"' => {
                    let value = match owned {
                        None => Cow::Borrowed(sub(line, start, i)),
                        Some(mut s) => {
                            s.push_str(sub(line, segment, i));
                            Cow::Owned(s)
                        }
                    };
                    return Ok((value, i + 1));
                }
                b'\\' => {
                    let unescaped = match b.get(i + 1) {
                        Some(b'\\') => '\\',
                        Some(b'"') => '"',
                        Some(b'n') => '\n',
                        Some(_) => {
                            let bad = line
                                .get(i + 1..)
                                .and_then(|s| s.chars().next())
                                .unwrap_or('?');
                            let message = format!(
                                "invalid escape '\\{bad}' in the value of label {name:?} (allowed: \\\\, \\\" and \\n)"
                            );
                            return Err(self.err(i, message));
                        }
                        None => break,
                    };
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(sub(line, segment, i));
                    s.push(unescaped);
                    i += 2;
                    segment = i;
                }
                _ => i += 1,
            }
        }
        let message = format!("unterminated value of label {name:?}: missing closing '\"'");
        Err(self.err(start - 1, message))
    }

    /// Value and optional timestamp after the series text ending at `pos`.
    pub(super) fn sample(&self, pos: usize) -> Result<(Option<i64>, f64), ParseError> {
        let (line, b) = (self.text, self.text.as_bytes());
        match b.get(pos) {
            None => return Err(self.err(pos, "missing value")),
            Some(&c) if !is_blank(c) => {
                let found = describe(line, pos);
                return Err(self.err(
                    pos,
                    format!("expected a blank before the value, found {found}"),
                ));
            }
            Some(_) => {}
        }
        let value_start = skip_blank(b, pos);
        let value_end = token_end(b, value_start);
        let token = sub(line, value_start, value_end);
        if token.is_empty() {
            return Err(self.err(value_start, "missing value"));
        }
        let value: f64 = token
            .parse()
            .map_err(|_| self.err(value_start, format!("invalid value {:?}", shorten(token))))?;
        let ts_start = skip_blank(b, value_end);
        if ts_start == b.len() {
            return Ok((None, value));
        }
        let ts_end = token_end(b, ts_start);
        let token = sub(line, ts_start, ts_end);
        let ts: i64 = token.parse().map_err(|_| {
            let message = format!(
                "invalid timestamp {:?}: expected integer milliseconds",
                shorten(token)
            );
            self.err(ts_start, message)
        })?;
        let rest = skip_blank(b, ts_end);
        if rest < b.len() {
            let extra = shorten(sub(line, rest, b.len()));
            return Err(self.err(
                rest,
                format!("unexpected text after the timestamp: {extra:?}"),
            ));
        }
        Ok((Some(ts), value))
    }

    pub(super) fn check_duplicates(&self, labels: &[Label<'_>]) -> Result<(), ParseError> {
        if labels.len() < 2 {
            return Ok(());
        }
        let mut sorted: Vec<(&str, usize)> = labels.iter().map(|(k, _, col)| (*k, *col)).collect();
        sorted.sort_unstable();
        // Report the first repeat in line order.
        let repeat = sorted
            .windows(2)
            .filter_map(|w| match w {
                [(a, _), (b, col)] if a == b => Some((*col, *b)),
                _ => None,
            })
            .min();
        match repeat {
            Some((col, name)) => Err(self.err(col, format!("duplicate label {name:?}"))),
            None => Ok(()),
        }
    }
}

pub(super) fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

pub(super) fn skip_blank(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_blank(c)) {
        i += 1;
    }
    i
}

fn token_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| !is_blank(c)) {
        i += 1;
    }
    i
}

/// End of a metric name `[a-zA-Z_:][a-zA-Z0-9_:]*` starting at `i` (`i` if none).
pub(super) fn metric_name_end(b: &[u8], i: usize) -> usize {
    name_end(b, i, |c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
}

/// End of a label name `[a-zA-Z_][a-zA-Z0-9_]*` starting at `i` (`i` if none).
fn label_name_end(b: &[u8], i: usize) -> usize {
    name_end(b, i, |c| c.is_ascii_alphabetic() || c == b'_')
}

fn name_end(b: &[u8], mut i: usize, first: impl Fn(u8) -> bool) -> usize {
    if !b.get(i).is_some_and(|&c| first(c)) {
        return i;
    }
    i += 1;
    while b.get(i).is_some_and(|&c| first(c) || c.is_ascii_digit()) {
        i += 1;
    }
    i
}

/// `line[a..b]`, or "" if that is not a char range (never the case for the ASCII
/// delimiters the parser cuts at; this keeps the parser free of slicing panics).
pub(super) fn sub(line: &str, a: usize, b: usize) -> &str {
    line.get(a..b).unwrap_or_default()
}

/// The character at `pos` for messages: `'x'`, or `end of line`.
pub(super) fn describe(line: &str, pos: usize) -> String {
    match line.get(pos..).and_then(|s| s.chars().next()) {
        Some(c) => format!("{c:?}"),
        None => "end of line".to_string(),
    }
}

/// At most 40 bytes of `s`, cut at a char boundary, so messages stay readable.
fn shorten(s: &str) -> Cow<'_, str> {
    if s.len() <= 40 {
        return Cow::Borrowed(s);
    }
    let mut end = 40;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", sub(s, 0, end)))
}

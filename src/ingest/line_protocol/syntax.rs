//! The syntax of one line, as pure functions of the line: no parser state, so each
//! piece can be tested and fuzzed alone.
//!
//! Positions are 0-based byte offsets into the line. The parser only ever cuts the line
//! at ASCII delimiters, so every cut is a char boundary; [`sub`] still refuses to panic
//! if one were not.

use std::borrow::Cow;

use super::Precision;
use crate::ingest::ParseError;

/// Characters a backslash escapes in a measurement. A backslash before anything else
/// is a literal backslash.
const MEASUREMENT_ESCAPES: &[u8] = b", \\";

/// Characters a backslash escapes in tag keys, tag values and field keys.
const KEY_ESCAPES: &[u8] = b",= \\";

/// A tag as written: unescaped key and value, and where each starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tag<'a> {
    pub(super) key: Cow<'a, str>,
    pub(super) value: Cow<'a, str>,
    pub(super) key_pos: usize,
    pub(super) value_pos: usize,
}

/// A field key as written: unescaped, and where it starts. Its value is kept apart, in
/// the `&[f64]` row handed to storage.
pub(super) type FieldKey<'a> = (Cow<'a, str>, usize);

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

    /// End of the series key (`measurement,tags`) starting at `start`: the first
    /// unescaped space, or the end of the line.
    ///
    /// Hot path: jumps from space to space (`str::find` with a char uses memchr) and
    /// decides whether a space is escaped by the parity of the backslashes before it,
    /// since `\\` is an escaped backslash in every part of the key.
    pub(super) fn key_end(&self, start: usize) -> usize {
        let b = self.text.as_bytes();
        let mut from = start;
        while let Some(found) = self.text.get(from..).and_then(|rest| rest.find(' ')) {
            let space = from + found;
            let backslashes = b
                .get(start..space)
                .map_or(0, |k| k.iter().rev().take_while(|&&c| c == b'\\').count());
            if backslashes % 2 == 0 {
                return space;
            }
            from = space + 1;
        }
        b.len()
    }

    /// Parses the series key `[start, end)`: returns the unescaped measurement and fills
    /// `tags` (cleared first) in line order. Duplicates are not checked here.
    pub(super) fn series(
        &self,
        start: usize,
        end: usize,
        tags: &mut Vec<Tag<'a>>,
    ) -> Result<Cow<'a, str>, ParseError> {
        tags.clear();
        let b = self.text.as_bytes();
        let (name_end, measurement) = self.scan(start, end, MEASUREMENT_ESCAPES, |c| c == b',');
        if name_end == start {
            return Err(self.err(start, "missing measurement"));
        }
        let mut pos = name_end;
        // Here `pos` is at a ',' or at `end`.
        while pos < end {
            let key_pos = pos + 1;
            let (key_end, key) = self.scan(key_pos, end, KEY_ESCAPES, |c| c == b'=' || c == b',');
            if key_end == key_pos {
                return Err(self.err(key_pos, "missing tag key after ','"));
            }
            if b.get(key_end) != Some(&b'=') || key_end >= end {
                return Err(self.err(key_end, format!("expected '=' after tag key {key:?}")));
            }
            let value_pos = key_end + 1;
            let (value_end, value) =
                self.scan(value_pos, end, KEY_ESCAPES, |c| c == b'=' || c == b',');
            if value_end == value_pos {
                return Err(self.err(value_pos, format!("tag {key:?} has no value")));
            }
            if b.get(value_end) == Some(&b'=') && value_end < end {
                let message = format!("unescaped '=' in the value of tag {key:?} (write '\\=')");
                return Err(self.err(value_end, message));
            }
            tags.push(Tag {
                key,
                value,
                key_pos,
                value_pos,
            });
            pos = value_end;
        }
        Ok(measurement)
    }

    /// Parses `key=value[,key=value...]` from `pos`, appending keys and values; returns
    /// the position after the last value.
    pub(super) fn fields(
        &self,
        mut pos: usize,
        keys: &mut Vec<FieldKey<'a>>,
        values: &mut Vec<f64>,
    ) -> Result<usize, ParseError> {
        let b = self.text.as_bytes();
        loop {
            let (key_end, key) = self.scan(pos, b.len(), KEY_ESCAPES, |c| {
                c == b'=' || c == b',' || is_blank(c)
            });
            if key_end == pos {
                return Err(self.err(pos, "missing field key"));
            }
            if b.get(key_end) != Some(&b'=') {
                return Err(self.err(key_end, format!("expected '=' after field key {key:?}")));
            }
            let value_pos = key_end + 1;
            if b.get(value_pos) == Some(&b'"') {
                let message =
                    format!("string field {key:?} is not supported; MetricStore stores numbers");
                return Err(self.err(value_pos, message));
            }
            let mut value_end = value_pos;
            while b.get(value_end).is_some_and(|&c| c != b',' && !is_blank(c)) {
                value_end += 1;
            }
            let value = self.value(&key, value_pos, value_end)?;
            keys.push((key, pos));
            values.push(value);
            if b.get(value_end) != Some(&b',') {
                return Ok(value_end);
            }
            pos = value_end + 1;
        }
    }

    /// A field value `[start, end)`: float, `12i`, `12u` or boolean.
    fn value(&self, key: &str, start: usize, end: usize) -> Result<f64, ParseError> {
        let token = sub(self.text, start, end);
        let invalid = || {
            let message = format!(
                "invalid value {:?} for field {key:?}: expected a float, an integer (12i), \
                 an unsigned integer (12u) or a boolean",
                shorten(token)
            );
            self.err(start, message)
        };
        let out_of_range = |what: &str| {
            let message = format!(
                "value {:?} of field {key:?} is out of range for {what}",
                shorten(token)
            );
            self.err(start, message)
        };
        match token {
            "" => return Err(self.err(start, format!("missing value for field {key:?}"))),
            "t" | "T" | "true" | "True" | "TRUE" => return Ok(1.0),
            "f" | "F" | "false" | "False" | "FALSE" => return Ok(0.0),
            _ => {}
        }
        if let Some(digits) = token.strip_suffix('i') {
            // `as` rounds to the nearest f64 (ties to even) beyond 2^53.
            return match digits.parse::<i64>() {
                Ok(v) => Ok(v as f64),
                Err(_) if is_integer(digits) => Err(out_of_range("a 64-bit signed integer")),
                Err(_) => Err(invalid()),
            };
        }
        if let Some(digits) = token.strip_suffix('u') {
            return match digits.parse::<u64>() {
                Ok(v) => Ok(v as f64),
                Err(_) if is_integer(digits) => Err(out_of_range("a 64-bit unsigned integer")),
                Err(_) => Err(invalid()),
            };
        }
        let unsigned = token.trim_start_matches(['+', '-']);
        if ["nan", "inf", "infinity"]
            .iter()
            .any(|w| unsigned.eq_ignore_ascii_case(w))
        {
            let message = format!(
                "field {key:?}: NaN and infinity are not supported (InfluxDB refuses them too)"
            );
            return Err(self.err(start, message));
        }
        // Rust's parser also accepts "inf" and "nan" spellings; only digits, sign, point
        // and exponent reach it.
        if !token
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return Err(invalid());
        }
        match token.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(out_of_range("a 64-bit float")),
            Err(_) => Err(invalid()),
        }
    }

    /// The optional timestamp after the fields ending at `pos`, in milliseconds.
    pub(super) fn timestamp(
        &self,
        pos: usize,
        precision: Precision,
    ) -> Result<Option<i64>, ParseError> {
        let b = self.text.as_bytes();
        let start = skip_blank(b, pos);
        if start >= b.len() {
            return Ok(None);
        }
        let mut end = start;
        while b.get(end).is_some_and(|&c| !is_blank(c)) {
            end += 1;
        }
        let token = sub(self.text, start, end);
        let raw: i64 = token.parse().map_err(|_| {
            let message = format!(
                "invalid timestamp {:?}: expected an integer number of {}",
                shorten(token),
                precision.unit_name()
            );
            self.err(start, message)
        })?;
        let rest = skip_blank(b, end);
        if rest < b.len() {
            let extra = shorten(sub(self.text, rest, b.len()));
            let message = format!("unexpected text after the timestamp: {extra:?}");
            return Err(self.err(rest, message));
        }
        match precision.to_millis(raw) {
            Some(ms) => Ok(Some(ms)),
            None => {
                let message = format!("timestamp {raw} s is out of range for milliseconds");
                Err(self.err(start, message))
            }
        }
    }

    /// The first position in `[pos, end)` where `stop` holds outside an escape (or
    /// `end`), and the unescaped text before it. A backslash escapes the next byte only
    /// if that byte is in `escapes`. Borrows unless there was an escape, so the common
    /// case reads each byte once and allocates nothing.
    fn scan(
        &self,
        start: usize,
        end: usize,
        escapes: &[u8],
        stop: impl Fn(u8) -> bool,
    ) -> (usize, Cow<'a, str>) {
        let b = self.text.as_bytes();
        let mut pos = start;
        let mut escaped = false;
        while pos < end {
            let Some(&c) = b.get(pos) else { break };
            if c == b'\\' {
                escaped = true;
                let next_escaped =
                    pos + 1 < end && b.get(pos + 1).is_some_and(|n| escapes.contains(n));
                pos += if next_escaped { 2 } else { 1 };
            } else if stop(c) {
                break;
            } else {
                pos += 1;
            }
        }
        let pos = pos.min(end);
        let raw = sub(self.text, start, pos);
        let text = if escaped {
            unescape(raw, escapes)
        } else {
            Cow::Borrowed(raw)
        };
        (pos, text)
    }
}

/// Removes the backslashes that escape a byte of `escapes`.
fn unescape(raw: &str, escapes: &[u8]) -> Cow<'static, str> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let (mut i, mut segment) = (0, 0);
    while let Some(&c) = b.get(i) {
        if c == b'\\' && b.get(i + 1).is_some_and(|n| escapes.contains(n)) {
            out.push_str(sub(raw, segment, i));
            segment = i + 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    out.push_str(sub(raw, segment, b.len()));
    Cow::Owned(out)
}

/// `-?[0-9]+` or `+?[0-9]+`: an integer too large for its type rather than garbage.
fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
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

/// `line[a..b]`, or "" if that is not a char range (never the case for the ASCII
/// delimiters the parser cuts at; this keeps the parser free of slicing panics).
pub(super) fn sub(line: &str, a: usize, b: usize) -> &str {
    line.get(a..b).unwrap_or_default()
}

/// At most 40 bytes of `s`, cut at a char boundary, so messages stay readable.
pub(super) fn shorten(s: &str) -> Cow<'_, str> {
    if s.len() <= 40 {
        return Cow::Borrowed(s);
    }
    let mut end = 40;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", sub(s, 0, end)))
}

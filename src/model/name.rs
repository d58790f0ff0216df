//! Name validation for tables, tags and fields.
//!
//! Any UTF-8 is accepted (Prometheus recording rules use `:`, OpenTelemetry uses `.`),
//! since SQL can quote every identifier. What is refused is what would make a name
//! ambiguous or unprintable: empty names, control characters, over-long names, the
//! reserved `time` column and Prometheus' reserved `__` label prefix.

use std::fmt;

use super::error::{Error, Result};

/// The name of every table's timestamp column.
pub const TIME_COLUMN: &str = "time";

/// Longest accepted table, tag or field name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// Longest accepted tag value, in bytes.
pub const MAX_TAG_VALUE_BYTES: usize = 16 * 1024;

/// What a name names, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A table (metric family) name.
    Table,
    /// A tag key.
    Tag,
    /// A field name.
    Field,
    /// A tag value (not a name, but validated the same way).
    TagValue,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Table => "table",
            NameKind::Tag => "tag",
            NameKind::Field => "field",
            NameKind::TagValue => "tag value",
        })
    }
}

/// Checks `name` for use as a `kind`, returning an error that names it and says why.
pub fn validate_name(kind: NameKind, name: &str) -> Result<()> {
    let reason = if name.is_empty() && kind != NameKind::TagValue {
        Some("must not be empty")
    } else if kind != NameKind::TagValue && name.len() > MAX_NAME_BYTES {
        Some("longer than 1024 bytes")
    } else if kind == NameKind::TagValue && name.len() > MAX_TAG_VALUE_BYTES {
        Some("longer than 16384 bytes")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if matches!(kind, NameKind::Tag | NameKind::Field) && name == TIME_COLUMN {
        Some("`time` is the timestamp column of every table")
    } else if kind == NameKind::Tag && name.starts_with("__") {
        Some("names starting with `__` are reserved")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidName {
            kind,
            name: truncate(name, 200).to_string(),
            reason,
        }),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(kind: NameKind, name: &str) -> String {
        validate_name(kind, name).unwrap_err().to_string()
    }

    #[test]
    fn accepts_prometheus_otel_and_unicode_names() {
        for name in [
            "http_requests_total",
            "job:rate5m",
            "http.server.duration",
            "température",
        ] {
            validate_name(NameKind::Table, name).unwrap();
            validate_name(NameKind::Field, name).unwrap();
        }
        validate_name(NameKind::TagValue, "").unwrap();
    }

    #[test]
    fn refuses_with_the_name_and_the_reason() {
        assert_eq!(
            reason(NameKind::Table, ""),
            "invalid table name \"\": must not be empty"
        );
        assert_eq!(
            reason(NameKind::Tag, "time"),
            "invalid tag name \"time\": `time` is the timestamp column of every table"
        );
        assert!(reason(NameKind::Tag, "__name__").contains("reserved"));
        assert!(reason(NameKind::Field, "a\nb").contains("control character"));
        assert!(reason(NameKind::Table, &"x".repeat(2000)).contains("longer than 1024"));
        assert!(reason(NameKind::TagValue, &"é".repeat(9000)).contains("longer than 16384"));
    }

    #[test]
    fn time_is_a_fine_table_name() {
        validate_name(NameKind::Table, "time").unwrap();
    }
}

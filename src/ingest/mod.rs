//! Wire formats in, [`WriteBatch`](crate::model::WriteBatch)es out.
//!
//! Each submodule parses one protocol into write batches and holds no state beyond a
//! single parse (a [`prom_text::Parser`] remembers the `# TYPE` lines of the stream it is
//! reading, nothing else). Validation of names against the store's rules and the
//! write itself belong to storage; parsers only refuse what their format refuses.
//!
//! - [`prom_text`]: the Prometheus text exposition format 0.0.4, with timestamps.
//! - [`line_protocol`]: InfluxDB line protocol (v1 and v2 writes), valid lines stored
//!   and bad lines reported, as InfluxDB does.
//! - [`remote_write`]: Prometheus remote_write 1.0 and 2.0, all or nothing per request.
//! - [`arrow`]: Arrow record batches (Flight SQL bulk ingest), all or nothing per
//!   record batch.
//! - [`statsd`]: StatsD and DogStatsD packets, and the aggregator that turns them into
//!   rows per flush interval (the one stateful piece of ingest).

pub mod arrow;
pub mod line_protocol;
pub mod prom_text;
pub mod remote_write;
pub mod statsd;

/// Malformed input: where it is and what is wrong.
///
/// Displays as `line 12, column 7: expected '=' after label name "job"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based byte offset within the line.
    pub column: usize,
    /// What was expected or found.
    pub message: String,
}

impl ParseError {
    /// An error at `line` and 1-based byte `column`.
    pub fn new(line: usize, column: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Why reading a stream of batches stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E> {
    /// The reader failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// The input is malformed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The batch callback refused a batch (for example the store's write failed).
    #[error("batch rejected: {0}")]
    Sink(#[source] E),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_displays_position_then_message() {
        let e = ParseError::new(12, 7, "expected '=' after label name \"job\"");
        assert_eq!(
            e.to_string(),
            "line 12, column 7: expected '=' after label name \"job\""
        );
    }
}

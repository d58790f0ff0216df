//! The crate's error type. Variants are grouped by who is at fault: the caller's input
//! (names, batches, limits), the state of the store (memory), or a bug / corrupt data.

use std::fmt;

use super::name::NameKind;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in MetricStore, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A table, tag or field name is not acceptable.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// What the name was for.
        kind: NameKind,
        /// The offending name (truncated to 200 bytes for display).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A write batch item is malformed (row and field counts disagree, duplicate tags, ...).
    #[error("invalid write: {0}")]
    InvalidWrite(String),

    /// One item of a write batch failed; nothing of the batch was stored.
    #[error("write batch item {item} (table {table:?}): {source}")]
    BatchItem {
        /// Index of the failing [`crate::model::SeriesWrite`] in the batch.
        item: usize,
        /// Its table.
        table: String,
        /// What was wrong with it.
        #[source]
        source: Box<Error>,
    },

    /// A sample is older than its series' out-of-order window allows.
    #[error(
        "sample at {timestamp} ms for series {series} is too old: \
         the series' newest sample is at {newest} ms and the out-of-order window is {window_ms} ms"
    )]
    OutOfOrder {
        /// The series, as `table{k="v",...}`.
        series: String,
        /// The refused timestamp.
        timestamp: i64,
        /// The series' newest timestamp at the time of the write.
        newest: i64,
        /// The configured out-of-order window.
        window_ms: i64,
    },

    /// Storing the write would exceed the configured memory limit. Nothing was stored.
    #[error(
        "memory limit reached: {used} bytes in use + {requested} requested > limit of {limit} bytes"
    )]
    MemoryLimit {
        /// Configured limit in bytes.
        limit: usize,
        /// Bytes in use before the write.
        used: usize,
        /// Estimated bytes the write needed.
        requested: usize,
    },

    /// A new series would exceed the table's series limit.
    #[error("table {table:?} has reached its limit of {limit} series; new series are refused")]
    SeriesLimit {
        /// The table.
        table: String,
        /// The configured limit.
        limit: usize,
    },

    /// A new series would exceed the limit of distinct values of one tag key.
    #[error(
        "tag {key:?} of table {table:?} has reached its limit of {limit} distinct values; \
         new series are refused"
    )]
    TagValueLimit {
        /// The table.
        table: String,
        /// The tag key.
        key: String,
        /// The configured limit.
        limit: usize,
    },

    /// A name is used both as a tag and as a field of one table.
    #[error("table {table:?}: {name:?} is already a {existing} and cannot also be a {requested}")]
    SchemaConflict {
        /// The table.
        table: String,
        /// The conflicting column name.
        name: String,
        /// What the column already is.
        existing: &'static str,
        /// What the write wanted it to be.
        requested: &'static str,
    },

    /// The table does not exist.
    #[error("table {0:?} not found")]
    TableNotFound(String),

    /// A matcher could not be built (for example an invalid regex).
    #[error("invalid matcher: {0}")]
    InvalidMatcher(String),

    /// Stored bytes failed to decode: corruption or a bug, never the caller's fault.
    #[error("corrupt chunk in {context}: {message}")]
    Corrupt {
        /// Where the bytes came from.
        context: String,
        /// What the decoder reported.
        message: String,
    },

    /// A sample falls before the time its table has moved to the cold tier.
    #[error(
        "sample at {timestamp} ms for series {series} is too old: rows before {tiered_until} ms are in the cold tier"
    )]
    Tiered {
        /// The series, as `table{k="v",...}`.
        series: String,
        /// The refused timestamp.
        timestamp: i64,
        /// Where the hot tier begins.
        tiered_until: i64,
    },

    /// The write-ahead log or a checkpoint failed; the write was not acknowledged.
    #[error("durability: {0}")]
    Durability(String),

    /// The cold tier failed (the message names it and the object store's error).
    #[error("{0}")]
    ColdTier(String),

    /// An Arrow error while building results.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// A query failed to plan or run; the message is DataFusion's.
    #[error(transparent)]
    Query(#[from] datafusion::error::DataFusionError),
}

impl Error {
    /// Wraps an error with the batch item it came from.
    pub(crate) fn at_item(self, item: usize, table: &str) -> Error {
        Error::BatchItem {
            item,
            table: table.to_string(),
            source: Box::new(self),
        }
    }
}

/// Display helper for `table{k="v",...}`, used in error messages.
pub(crate) struct SeriesDisplay<'a, I>(pub &'a str, pub I);

impl<'a, I, K, V> fmt::Display for SeriesDisplay<'a, I>
where
    I: Clone + IntoIterator<Item = (K, V)>,
    K: fmt::Display,
    V: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{{", self.0)?;
        for (i, (k, v)) in self.1.clone().into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

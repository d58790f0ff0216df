//! The data model every other module speaks: names, tag sets, field kinds, write
//! batches and the errors they share.
//!
//! A **table** is a metric family. Its rows carry tag columns (strings), one `time`
//! column (milliseconds since the Unix epoch, UTC) and one or more `Float64` field
//! columns. A **series** is one table plus one [`TagSet`]. A [`WriteBatch`] groups rows
//! by series so that the storage engine resolves each series once per group, not once
//! per sample.
//!
//! This module depends on nothing else in the crate (chrono formats times).

mod batch;
pub(crate) mod error;
mod kind;
mod name;
mod tags;

pub use batch::{SeriesWrite, WriteBatch};
pub use error::{Error, Result};
pub use kind::FieldKind;
pub use name::{NameKind, TIME_COLUMN, validate_name};
pub use tags::TagSet;

/// Bits of the NaN that Prometheus writes as a staleness marker. Stored bit-exactly;
/// scans expose it as NULL so that SQL aggregates skip it.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A `time` value (milliseconds since the epoch) as RFC 3339 with milliseconds, UTC;
/// empty outside the years chrono represents.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

//! Storage settings. Every setting has a default that suits a single server.

/// How the hot tier seals chunks, accepts late samples and bounds memory.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// Rows per sealed chunk at most (default 512).
    pub chunk_size: usize,
    /// Chunks are also sealed when a row crosses a multiple of this span (default one
    /// hour), so that chunk headers line up with common query buckets.
    pub chunk_span_ms: i64,
    /// How far behind its series' newest sample a sample may arrive (default one hour).
    pub out_of_order_window_ms: i64,
    /// Bytes the hot tier may hold before writes fail with `MemoryLimit` (default: none).
    pub memory_limit: Option<usize>,
    /// Series per table before new series are refused (default: none).
    pub max_series_per_table: Option<usize>,
    /// Distinct values per tag key and table before new series are refused (default: none).
    pub max_tag_values_per_key: Option<usize>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            chunk_size: 512,
            chunk_span_ms: 3_600_000,
            out_of_order_window_ms: 3_600_000,
            memory_limit: None,
            max_series_per_table: None,
            max_tag_values_per_key: None,
        }
    }
}

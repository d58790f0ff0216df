//! Memory and cardinality statistics, what Prometheus' TSDB status page shows.

use super::series::Series;
use super::table::TableInner;

/// What the allocator takes for a heap block of `n` bytes: glibc-style 16-byte chunks
/// with an 8-byte header and a 32-byte minimum. Small blocks (a series' head, a short
/// tag value) pay this in full, so accounting that ignored it would undercount them by
/// half. mimalloc, the server's allocator, rounds to similar size classes without the
/// header, so this errs on the high side there.
pub(crate) fn malloc_bytes(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).next_multiple_of(16).max(32)
    }
}

/// Counts and bytes of one table, or of the whole store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableStats {
    /// Table name (empty for totals).
    pub name: String,
    /// Series.
    pub series: usize,
    /// Rows over all series.
    pub rows: u64,
    /// Field values present (not null), over all series; staleness markers count.
    pub samples: u64,
    /// Sealed chunks.
    pub chunks: usize,
    /// Bytes of sealed chunks: encoded blocks and chunk headers.
    pub chunk_bytes: usize,
    /// Bytes of open heads (and out-of-order heads).
    pub head_bytes: usize,
    /// Bytes of the label index.
    pub index_bytes: usize,
    /// Bytes of tag dictionaries, series lookup and per-series bookkeeping.
    pub dictionary_bytes: usize,
    /// Distinct values per tag key, most first.
    pub tag_cardinality: Vec<(String, usize)>,
}

impl TableStats {
    /// All bytes the table holds.
    pub fn total_bytes(&self) -> usize {
        self.chunk_bytes + self.head_bytes + self.index_bytes + self.dictionary_bytes
    }

    /// Bytes per sample: sealed chunk bytes over sealed samples would hide the heads, so
    /// this is all bytes over all samples.
    pub fn bytes_per_sample(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.total_bytes() as f64 / self.samples as f64
        }
    }

    fn add(&mut self, other: &TableStats) {
        self.series += other.series;
        self.rows += other.rows;
        self.samples += other.samples;
        self.chunks += other.chunks;
        self.chunk_bytes += other.chunk_bytes;
        self.head_bytes += other.head_bytes;
        self.index_bytes += other.index_bytes;
        self.dictionary_bytes += other.dictionary_bytes;
    }
}

/// Statistics of the whole store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    /// Per table, by name.
    pub tables: Vec<TableStats>,
    /// Sums over all tables.
    pub total: TableStats,
    /// Tables with the most series, most first (at most 10).
    pub top_tables_by_series: Vec<(String, usize)>,
    /// `(table, tag key, distinct values)`, most values first (at most 10).
    pub top_tag_keys: Vec<(String, String, usize)>,
    /// Bytes the memory limit is checked against.
    pub memory_used: usize,
}

impl StoreStats {
    pub(crate) fn from_tables(tables: Vec<TableStats>, memory_used: usize) -> StoreStats {
        let mut total = TableStats::default();
        for t in &tables {
            total.add(t);
        }
        let mut top_tables: Vec<(String, usize)> =
            tables.iter().map(|t| (t.name.clone(), t.series)).collect();
        top_tables.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top_tables.truncate(10);
        let mut top_keys: Vec<(String, String, usize)> = tables
            .iter()
            .flat_map(|t| {
                t.tag_cardinality
                    .iter()
                    .map(|(k, n)| (t.name.clone(), k.clone(), *n))
            })
            .collect();
        top_keys.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
        top_keys.truncate(10);
        StoreStats {
            tables,
            total,
            top_tables_by_series: top_tables,
            top_tag_keys: top_keys,
            memory_used,
        }
    }
}

impl TableInner {
    pub(crate) fn stats(&self, name: &str) -> TableStats {
        let mut s = TableStats {
            name: name.to_string(),
            series: self.series.len(),
            index_bytes: self.index.memory_bytes(),
            ..TableStats::default()
        };
        // Per-series structs and tag pairs sit in two table-wide vectors; count their
        // capacity, growth slack included.
        s.dictionary_bytes = self.series.capacity() * std::mem::size_of::<Series>()
            + self.tag_arena_bytes()
            + self.lookup_bytes()
            + self.tag_values.iter().map(|d| d.bytes()).sum::<usize>();
        for series in &self.series {
            s.rows += series.rows();
            s.chunks += series.chunks.len();
            s.chunk_bytes += series.chunk_bytes();
            s.head_bytes += series.head_bytes();
            s.dictionary_bytes += series.list_bytes();
            for chunk in series.chunks.iter() {
                s.samples += chunk
                    .columns()
                    .iter()
                    .map(|c| c.present() as u64)
                    .sum::<u64>();
            }
            s.samples += series.head.present();
        }
        let mut cardinality: Vec<(String, usize)> = self
            .tag_keys
            .iter()
            .zip(&self.tag_values)
            .map(|(k, d)| (k.to_string(), d.values.len()))
            .collect();
        cardinality.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        s.tag_cardinality = cardinality;
        s
    }
}

/// A human summary: totals, bytes per sample, the top tables and tag keys.
impl std::fmt::Display for StoreStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.total;
        writeln!(
            f,
            "{} tables, {} series, {} samples, {} chunks",
            self.tables.len(),
            t.series,
            t.samples,
            t.chunks
        )?;
        writeln!(
            f,
            "bytes/sample: {:.3} in sealed chunks (timestamps included), {:.3} with heads, \
             index and dictionaries",
            t.chunk_bytes as f64 / t.samples.max(1) as f64,
            t.bytes_per_sample()
        )?;
        writeln!(
            f,
            "bytes: chunks {}, heads {}, index {}, dictionaries {}",
            t.chunk_bytes, t.head_bytes, t.index_bytes, t.dictionary_bytes
        )?;
        writeln!(f, "top tables by series:")?;
        for (name, series) in self.top_tables_by_series.iter().take(5) {
            writeln!(f, "  {series:>8}  {name}")?;
        }
        writeln!(f, "top tag keys by distinct values:")?;
        for (table, key, values) in self.top_tag_keys.iter().take(5) {
            writeln!(f, "  {values:>8}  {table}.{key}")?;
        }
        Ok(())
    }
}

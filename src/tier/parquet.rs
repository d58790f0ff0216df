//! Hot rows to Parquet files: sorted by tags then time, zstd, dictionary-encoded tags,
//! page statistics, one file per UTC day in a Hive-style layout that DuckDB, Spark or
//! Trino read without MetricStore.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{
    SortColumn, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::TimestampMillisecondType;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::{FileEntry, TierError};
use crate::model::TIME_COLUMN;
use crate::storage::TableSnapshot;

const DAY_MS: i64 = 86_400_000;

/// What writing one table produced.
#[derive(Debug, Default)]
pub(super) struct Written {
    pub(super) rows: u64,
    pub(super) tags: Vec<String>,
    pub(super) fields: Vec<String>,
    pub(super) files: Vec<FileEntry>,
}

/// `yyyy-mm-dd` of a day number since the Unix epoch (proleptic Gregorian).
pub(super) fn civil_date(days: i64) -> String {
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(super) fn parquet_error(table: &str, e: impl std::fmt::Display) -> TierError {
    TierError::Parquet {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// Writes every row of `snapshot` to files under `root/table/level=raw/`. Sorting
/// and encoding run on a low-priority thread (see [`super::cpu`]); the puts here.
pub(super) async fn write_table(
    store: &dyn ObjectStore,
    root: &Path,
    table: &str,
    snapshot: &Arc<TableSnapshot>,
) -> Result<Written, TierError> {
    let (root_, table_, snapshot_) = (root.clone(), table.to_string(), snapshot.clone());
    let (mut written, files) =
        super::cpu::low_priority(move || encode_table(&root_, &table_, &snapshot_)).await??;
    for (path, bytes, entry) in files {
        store.put(&path, bytes.into()).await?;
        written.rows += entry.rows;
        written.files.push(entry);
    }
    Ok(written)
}

/// One encoded file: where it goes, its bytes, its manifest entry.
type Encoded = (Path, Vec<u8>, FileEntry);

/// The files of `snapshot`, one per UTC day, encoded but not yet written.
fn encode_table(
    root: &Path,
    table: &str,
    snapshot: &Arc<TableSnapshot>,
) -> Result<(Written, Vec<Encoded>), TierError> {
    let schema = snapshot.schema().clone();
    let time = schema
        .index_of(TIME_COLUMN)
        .map_err(|e| parquet_error(table, e))?;
    let written = Written {
        tags: schema.fields()[..time]
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        fields: schema.fields()[time + 1..]
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        ..Written::default()
    };
    let mut files = Vec::new();
    let batches = snapshot.record_batches(None)?;
    let batch = concat_batches(&schema, &batches).map_err(|e| parquet_error(table, e))?;
    if batch.num_rows() == 0 {
        return Ok((written, files));
    }
    // Sorted by tags then time: row groups then cover few series each, and their
    // statistics prune well.
    let sort: Vec<SortColumn> = (0..=time)
        .map(|c| SortColumn {
            values: batch.column(c).clone(),
            options: None,
        })
        .collect();
    let order = lexsort_to_indices(&sort, None).map_err(|e| parquet_error(table, e))?;
    let batch = take_record_batch(&batch, &order).map_err(|e| parquet_error(table, e))?;
    let times = batch
        .column(time)
        .as_primitive::<TimestampMillisecondType>();
    let mut days: Vec<i64> = times
        .values()
        .iter()
        .map(|t| t.div_euclid(DAY_MS))
        .collect();
    days.sort_unstable();
    days.dedup();
    let run_from = times.values().iter().copied().min().unwrap_or_default();
    let run_to = times.values().iter().copied().max().unwrap_or_default();
    for day in days {
        let part = day_rows(&batch, time, day).map_err(|e| parquet_error(table, e))?;
        let part_times = part.column(time).as_primitive::<TimestampMillisecondType>();
        let (Some(min), Some(max)) = (
            part_times.values().iter().min().copied(),
            part_times.values().iter().max().copied(),
        ) else {
            continue;
        };
        let bytes = encode(&part, time).map_err(|e| parquet_error(table, e))?;
        let path = root
            .clone()
            .join(table)
            .join("level=raw")
            .join(format!("date={}", civil_date(day)).as_str())
            .join(format!("{run_from}-{run_to}.parquet").as_str());
        let entry = FileEntry {
            path: path.to_string(),
            min_time: min,
            max_time: max,
            rows: part.num_rows() as u64,
            bytes: bytes.len() as u64,
        };
        files.push((path, bytes, entry));
    }
    Ok((written, files))
}

/// The rows of `batch` on UTC day `day`.
fn day_rows(
    batch: &RecordBatch,
    time: usize,
    day: i64,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let times = batch
        .column(time)
        .as_primitive::<TimestampMillisecondType>();
    let mask: arrow::array::BooleanArray = times
        .iter()
        .map(|t| Some(t.is_some_and(|t| t.div_euclid(DAY_MS) == day)))
        .collect();
    filter_record_batch(batch, &mask)
}

/// `batch` as a Parquet file: zstd, dictionary tags, page statistics, sorted by its
/// columns up to `time`.
pub(super) fn encode(
    batch: &RecordBatch,
    time: usize,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let sorting = (0..=time)
        .map(|c| parquet::file::metadata::SortingColumn {
            column_idx: c as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_sorting_columns(Some(sorting))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(-1), "1969-12-31");
        assert_eq!(civil_date(20_454), "2026-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
    }
}

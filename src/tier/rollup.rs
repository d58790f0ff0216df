//! Rollups (downsampling levels): per series, level and bucket, the partial aggregates
//! that answer avg, min, max, sum, count, increase, rate and percentiles once the raw
//! rows are gone.
//!
//! ```text
//!  tiering run: hot rows in [tiered_until, cutoff), per series (sorted by tags, time)
//!     ├─► level=raw/...                      (parquet.rs)
//!     └─► per level the series' policy lists (policy.rs, levels are per series):
//!         one row per series and bucket [b, b + width), b = t - t mod width
//!         ──► <table>/level=<5m|1h|..>/date=<yyyy-mm-dd of b>/<from>-<to>.parquet
//!  the same manifest version records the raw files and the rollup files (atomic)
//! ```
//!
//! A row's columns: the table's tags, `time` (bucket start), and per field `f`:
//!
//! | column | type | meaning over the bucket's non-NULL samples |
//! |---|---|---|
//! | `f_count` | Int64 | samples |
//! | `f_sum`, `f_min`, `f_max` | Float64 | sum, minimum, maximum |
//! | `f_first`, `f_first_time` | Float64, Timestamp(ms) | earliest sample |
//! | `f_last`, `f_last_time` | Float64, Timestamp(ms) | latest sample |
//! | `f_increase` | Float64 | sum of the deltas between consecutive samples, a drop counting as a restart from 0 (Prometheus' counter-reset rule) |
//! | `f_sketch` | Binary | [`DDSketch`] of the finite values, relative accuracy 1% |
//!
//! All but `f_count` are NULL when the bucket has no sample of `f` (`f_count` is 0,
//! or NULL in files written before `f` existed).
//!
//! **Rows are partial.** The tiering cutoff is aligned to the chunk span (1 hour by
//! default), not to the level, so a bucket wider than the span (a `1d` level) is cut in
//! two by consecutive runs, and each run writes its own row for it. Partials of one
//! series merge exactly ([`super::Partial::merge`]): counts and sums add, min/max fold, the
//! earlier first and later last win, sketches merge (DDSketch merging is exact), and
//! increases add plus the reset-aware delta across the seam. Queries therefore always
//! aggregate rollup rows (`sum(f_count)`, `sketch_merge(f_sketch)`,
//! `rollup_increase(...)`); see [`crate::query`]'s `rollup` table function.
//!
//! Stale markers and NULLs are skipped. Other NaNs count and make the sum NaN, as
//! in raw SQL; `min`/`max` ignore them and the sketch skips non-finite values.
//! `f_increase` is computed for every field (kinds are advisory); it means something
//! for counters only.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Float64Builder, Int64Builder, RecordBatch,
    StringDictionaryBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int32Type, Schema, SchemaRef, TimestampMillisecondType,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::parquet::{civil_date, encode};
use super::partial::Partial;
use super::{FileEntry, LevelManifest, Policies, TableManifest, TierError};
use crate::model::{STALE_NAN_BITS, TIME_COLUMN};
use crate::storage::{ReadOptions, SnapshotReader, TableSnapshot, tag_type, time_type};

const DAY_MS: i64 = 86_400_000;

/// Column suffixes of each field, in column order: `{field}_{suffix}`.
pub const STATS: [&str; 10] = [
    "count",
    "sum",
    "min",
    "max",
    "first",
    "first_time",
    "last",
    "last_time",
    "increase",
    "sketch",
];

/// The rollup files one run wrote for one level of one table.
#[derive(Debug)]
pub(super) struct LevelWritten {
    pub(super) name: String,
    pub(super) width_ms: i64,
    pub(super) tags: Vec<String>,
    pub(super) fields: Vec<String>,
    pub(super) files: Vec<FileEntry>,
    /// Earliest and latest raw sample time of the run, which names the files: runs
    /// cover disjoint times, so two runs that both add rows to one wide bucket (a
    /// `1d` level tiered hourly) never write the same path, and a rerun of a failed
    /// run overwrites its own leftovers.
    run: (i64, i64),
}

/// Adds what one run wrote to a table's manifest entry (same commit as its raw files).
pub(super) fn record(entry: &mut TableManifest, levels: Vec<LevelWritten>) {
    for l in levels {
        let level = entry.levels.entry(l.name).or_insert_with(|| LevelManifest {
            width_ms: l.width_ms,
            ..LevelManifest::default()
        });
        for t in l.tags {
            if !level.tags.contains(&t) {
                level.tags.push(t);
            }
        }
        for f in l.fields {
            if !level.fields.contains(&f) {
                level.fields.push(f);
            }
        }
        level.files.extend(l.files);
    }
}

/// One output row: a series (its index in the snapshot) and a bucket.
struct Row {
    series: usize,
    bucket: i64,
    fields: Vec<Option<Partial>>,
}

/// Computes and writes the rollup levels of `snapshot`'s series (each series gets the
/// levels of its own policy). Writes nothing when no series has a level.
pub(super) async fn write_levels(
    store: &dyn ObjectStore,
    root: &Path,
    snapshot: &Arc<TableSnapshot>,
    policies: &Policies,
) -> Result<Vec<LevelWritten>, TierError> {
    let table = snapshot.table().to_string();
    let bad = |e: &dyn std::fmt::Display| TierError::Parquet {
        table: table.clone(),
        message: format!("rollups: {e}"),
    };
    let schema = snapshot.schema().clone();
    let time = schema.index_of(TIME_COLUMN).map_err(|e| bad(&e))?;
    let tags: Vec<String> = schema.fields()[..time]
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let fields: Vec<String> = schema.fields()[time + 1..]
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // Each series' levels, from its own policy.
    let mut any = false;
    let series_levels: Vec<Vec<(String, i64)>> = snapshot
        .series()
        .iter()
        .map(|s| {
            let label = |l: &str| {
                let i = tags.iter().position(|t| t == l)?;
                s.tags.get(i)?.as_deref()
            };
            let levels: Vec<(String, i64)> = policies
                .for_series(&table, label)
                .levels
                .iter()
                .map(|l| (l.name(), l.width.as_millis() as i64))
                .collect();
            any |= !levels.is_empty();
            levels
        })
        .collect();
    if !any {
        return Ok(Vec::new());
    }
    if let Some(clash) = fields
        .iter()
        .flat_map(|f| STATS.iter().map(move |s| format!("{f}_{s}")))
        .find(|c| tags.contains(c))
    {
        return Err(bad(&format!(
            "tag {clash:?} has the name of a rollup column; rename the tag or drop the table's levels"
        )));
    }

    let mut levels: BTreeMap<String, (i64, Vec<Row>)> = BTreeMap::new();
    let mut run = (i64::MAX, i64::MIN);
    for (series, wanted) in series_levels.iter().enumerate() {
        if wanted.is_empty() {
            continue;
        }
        let samples = series_samples(snapshot, series, time, fields.len()).map_err(|e| bad(&e))?;
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            run = (run.0.min(first.0), run.1.max(last.0));
        }
        for (name, width) in wanted {
            let rows = &mut levels.entry(name.clone()).or_insert((*width, Vec::new())).1;
            bucket_series(rows, series, *width, &samples, fields.len());
        }
    }

    let mut out = Vec::new();
    for (name, (width_ms, rows)) in levels {
        if rows.is_empty() {
            continue;
        }
        let batch = to_batch(snapshot, &tags, &fields, &rows).map_err(|e| bad(&e))?;
        let mut written = LevelWritten {
            name: name.clone(),
            width_ms,
            tags: tags.clone(),
            fields: fields.clone(),
            files: Vec::new(),
            run,
        };
        write_days(store, root, &table, &name, &batch, time, &mut written)
            .await
            .map_err(|e| match e {
                TierError::Parquet { message, .. } => bad(&message),
                e => e,
            })?;
        out.push(written);
    }
    Ok(out)
}

/// One series' time-ordered samples, one value per field (`None` for NULL and stale
/// markers).
type Samples = Vec<(i64, Vec<Option<f64>>)>;

/// Decodes series `series` of the snapshot (time and fields only).
fn series_samples(
    snapshot: &Arc<TableSnapshot>,
    series: usize,
    time: usize,
    nfields: usize,
) -> Result<Samples, crate::Error> {
    let mut options = ReadOptions::new(snapshot);
    options.projection = (time..=time + nfields).collect();
    options.series = series..series + 1;
    let mut samples: Samples = Vec::new();
    for batch in SnapshotReader::new(snapshot.clone(), options) {
        let batch = batch?;
        let times = batch.column(0).as_primitive::<TimestampMillisecondType>();
        let values: Vec<_> = (0..nfields)
            .map(|f| batch.column(1 + f).as_primitive::<Float64Type>())
            .collect();
        samples.reserve(batch.num_rows());
        for row in 0..batch.num_rows() {
            let row_values = values
                .iter()
                .map(|a| {
                    (!a.is_null(row))
                        .then(|| a.value(row))
                        .filter(|v| v.to_bits() != STALE_NAN_BITS)
                })
                .collect();
            samples.push((times.value(row), row_values));
        }
    }
    if !samples.is_sorted_by_key(|s| s.0) {
        samples.sort_by_key(|s| s.0);
    }
    Ok(samples)
}

/// Appends `series`' rows of one level to `rows`.
fn bucket_series(rows: &mut Vec<Row>, series: usize, width: i64, samples: &Samples, n: usize) {
    for (t, values) in samples {
        let bucket = t - t.rem_euclid(width);
        let row = match rows.last_mut() {
            Some(r) if r.series == series && r.bucket == bucket => r,
            _ => {
                rows.push(Row {
                    series,
                    bucket,
                    fields: vec![None; n],
                });
                let Some(r) = rows.last_mut() else { return };
                r
            }
        };
        for (slot, v) in row.fields.iter_mut().zip(values) {
            if let Some(v) = *v {
                match slot {
                    Some(p) => p.push(*t, v),
                    None => *slot = Some(Partial::new(*t, v)),
                }
            }
        }
    }
}

/// The Arrow schema of a level's files.
pub fn level_schema(tags: &[String], fields: &[String]) -> SchemaRef {
    let mut columns: Vec<Field> = tags
        .iter()
        .map(|t| Field::new(t, tag_type(), true))
        .collect();
    columns.push(Field::new(TIME_COLUMN, time_type(), false));
    for f in fields {
        for s in STATS {
            let ty = match s {
                "count" => DataType::Int64,
                "first_time" | "last_time" => time_type(),
                "sketch" => DataType::Binary,
                _ => DataType::Float64,
            };
            // Nullable even for counts: files written before a field existed lack
            // its columns, and read them as NULL.
            columns.push(Field::new(format!("{f}_{s}"), ty, true));
        }
    }
    Arc::new(Schema::new(columns))
}

fn to_batch(
    snapshot: &TableSnapshot,
    tags: &[String],
    fields: &[String],
    rows: &[Row],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = level_schema(tags, fields);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for k in 0..tags.len() {
        let mut b = StringDictionaryBuilder::<Int32Type>::new();
        for r in rows {
            match snapshot.series().get(r.series).and_then(|s| s.tags.get(k)) {
                Some(Some(v)) => b.append_value(v.as_ref()),
                _ => b.append_null(),
            }
        }
        columns.push(Arc::new(b.finish()));
    }
    let times: TimestampMillisecondArray = rows.iter().map(|r| Some(r.bucket)).collect();
    columns.push(Arc::new(times.with_timezone("UTC")));
    for f in 0..fields.len() {
        let parts = || rows.iter().map(move |r| r.fields[f].as_ref());
        let float = |get: fn(&Partial) -> f64| -> ArrayRef {
            let mut b = Float64Builder::with_capacity(rows.len());
            parts().for_each(|p| b.append_option(p.map(get)));
            Arc::new(b.finish())
        };
        let stamp = |get: fn(&Partial) -> i64| -> ArrayRef {
            let mut b = TimestampMillisecondBuilder::with_capacity(rows.len());
            parts().for_each(|p| b.append_option(p.map(get)));
            Arc::new(b.finish().with_timezone("UTC"))
        };
        let mut count = Int64Builder::with_capacity(rows.len());
        parts().for_each(|p| count.append_value(p.map_or(0, |p| p.count as i64)));
        let mut sketch = BinaryBuilder::new();
        parts().for_each(|p| sketch.append_option(p.map(|p| p.sketch.to_bytes())));
        columns.push(Arc::new(count.finish()));
        columns.push(float(|p| p.sum));
        columns.push(float(|p| p.min));
        columns.push(float(|p| p.max));
        columns.push(float(|p| p.first.1));
        columns.push(stamp(|p| p.first.0));
        columns.push(float(|p| p.last.1));
        columns.push(stamp(|p| p.last.0));
        columns.push(float(|p| p.increase));
        columns.push(Arc::new(sketch.finish()));
    }
    RecordBatch::try_new(schema, columns)
}

/// Writes `batch` (rows sorted by series, then bucket) as one file per UTC day of the
/// bucket start, named after the run's raw time range (see [`LevelWritten::run`]).
async fn write_days(
    store: &dyn ObjectStore,
    root: &Path,
    table: &str,
    level: &str,
    batch: &RecordBatch,
    time: usize,
    written: &mut LevelWritten,
) -> Result<(), TierError> {
    let fail = |e: &dyn std::fmt::Display| TierError::Parquet {
        table: table.to_string(),
        message: e.to_string(),
    };
    let times = batch
        .column(time)
        .as_primitive::<TimestampMillisecondType>();
    let (from, to) = written.run;
    let mut days: Vec<i64> = times
        .values()
        .iter()
        .map(|t| t.div_euclid(DAY_MS))
        .collect();
    days.sort_unstable();
    days.dedup();
    for day in days {
        let mask: arrow::array::BooleanArray = times
            .values()
            .iter()
            .map(|t| Some(t.div_euclid(DAY_MS) == day))
            .collect();
        let part = arrow::compute::filter_record_batch(batch, &mask).map_err(|e| fail(&e))?;
        let part_times = part.column(time).as_primitive::<TimestampMillisecondType>();
        let (Some(&min), Some(&max)) = (
            part_times.values().iter().min(),
            part_times.values().iter().max(),
        ) else {
            continue;
        };
        let bytes = encode(&part, time).map_err(|e| fail(&e))?;
        let path = root
            .clone()
            .join(table)
            .join(format!("level={level}").as_str())
            .join(format!("date={}", civil_date(day)).as_str())
            .join(format!("{from}-{to}.parquet").as_str());
        let size = bytes.len() as u64;
        store.put(&path, bytes.into()).await?;
        written.files.push(FileEntry {
            path: path.to_string(),
            min_time: min,
            max_time: max,
            rows: part.num_rows() as u64,
            bytes: size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn manifests_without_levels_still_load() {
        let old = r#"{"tiered_until": 5, "tags": ["host"], "fields": ["v"], "files": []}"#;
        let m: super::super::TableManifest = serde_json::from_str(old).unwrap();
        assert!(m.levels.is_empty());
        assert_eq!(m.tiered_until, 5);
    }
}

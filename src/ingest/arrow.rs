//! Arrow record batches into [`WriteBatch`]es: the columnar ingest path (Flight SQL
//! `DoPut`).
//!
//! A record batch for one table has, by column type:
//! - **tags**: `Utf8`, `LargeUtf8`, `Utf8View`, or dictionaries of those. A null or
//!   empty value means the row's series lacks that tag.
//! - **`time`** (the column must be named so): a `Timestamp` of any unit, converted
//!   to milliseconds rounding towards negative infinity, or `Int64` milliseconds.
//!   Nulls are refused.
//! - **fields**: any integer, float or decimal type (converted to `f64`) or `Boolean`
//!   (1 / 0). A null means the field is absent from that row.
//!
//! Any other column type is refused, naming the column. Rows are grouped by series
//! and by the set of fields they carry into [`crate::SeriesWrite`] items, keeping
//! row order within each group; validation of names, limits and times stays with
//! storage, as for every other protocol.

use ahash::AHashMap;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimeUnit};

use crate::model::{TagSet, WriteBatch};

/// Why a record batch could not become a write batch. Rows are 0-based within the
/// record batch.
#[derive(Debug, thiserror::Error)]
pub enum ArrowIngestError {
    /// The batch has no column named `time`.
    #[error(
        "no \"time\" column: a batch needs a timestamp (or Int64 milliseconds) column named \"time\""
    )]
    MissingTime,
    /// Two columns share a name.
    #[error("column {column:?} appears more than once")]
    DuplicateColumn {
        /// The name.
        column: String,
    },
    /// The `time` column is neither a timestamp nor `Int64`.
    #[error("column \"time\" has type {data_type}: use a timestamp or Int64 milliseconds")]
    TimeType {
        /// Its type.
        data_type: DataType,
    },
    /// A column's type is neither a tag's nor a field's.
    #[error(
        "column {column:?} has type {data_type}, which is neither a tag (string) \
         nor a field (number or boolean)"
    )]
    UnsupportedType {
        /// The column.
        column: String,
        /// Its type.
        data_type: DataType,
    },
    /// A row has no time.
    #[error("row {row}: \"time\" is null")]
    NullTime {
        /// The row.
        row: usize,
    },
    /// A time does not fit in milliseconds since the epoch.
    #[error("row {row}: \"time\" {value} {unit:?} is outside the millisecond range")]
    TimeOverflow {
        /// The row.
        row: usize,
        /// The value as sent.
        value: i64,
        /// Its unit.
        unit: TimeUnit,
    },
    /// A row is not acceptable (for example an invalid tag name).
    #[error("row {row}: {source}")]
    Row {
        /// The row (for tags: the first row of the series).
        row: usize,
        /// What the validation said.
        #[source]
        source: crate::Error,
    },
    /// A column could not be read (a conversion Arrow refused).
    #[error("column {column:?}: {source}")]
    Arrow {
        /// The column.
        column: String,
        /// Arrow's error.
        #[source]
        source: arrow::error::ArrowError,
    },
}

/// Id of "no value" in a tag column: the row's series lacks the tag.
const ABSENT: u32 = u32::MAX;

/// A tag column as dictionary keys: rows with the same key have the same value.
struct TagColumn {
    name: String,
    /// `Dictionary(Int32, Utf8)`.
    dict: ArrayRef,
}

impl TagColumn {
    fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        let dict = self.dict.as_dictionary::<Int32Type>();
        let keys = dict.keys();
        (0..keys.len()).map(move |r| {
            if keys.is_valid(r) {
                // Keys of a valid dictionary array are non-negative.
                keys.value(r) as u32
            } else {
                ABSENT
            }
        })
    }

    fn value(&self, id: u32) -> &str {
        let dict = self.dict.as_dictionary::<Int32Type>();
        dict.values().as_string::<i32>().value(id as usize)
    }
}

/// A field column converted to `f64`.
struct FieldColumn {
    name: String,
    values: ArrayRef,
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_field(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Boolean
}

fn convert(column: &str, array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowIngestError> {
    cast(array, to).map_err(|source| ArrowIngestError::Arrow {
        column: column.to_string(),
        source,
    })
}

/// The rows' times in milliseconds.
fn times(array: &ArrayRef) -> Result<Vec<i64>, ArrowIngestError> {
    if let Some(row) = (0..array.len()).find(|&r| array.is_null(r)) {
        return Err(ArrowIngestError::NullTime { row });
    }
    let (unit, values) = match array.data_type() {
        DataType::Int64 => return Ok(array.as_primitive::<Int64Type>().values().to_vec()),
        DataType::Timestamp(unit, _) => {
            // Every timestamp type stores i64; reinterpret without conversion.
            let raw = convert("time", array, &DataType::Int64)?;
            (*unit, raw.as_primitive::<Int64Type>().values().to_vec())
        }
        other => {
            return Err(ArrowIngestError::TimeType {
                data_type: other.clone(),
            });
        }
    };
    match unit {
        TimeUnit::Millisecond => Ok(values),
        TimeUnit::Microsecond => Ok(values.into_iter().map(|v| v.div_euclid(1_000)).collect()),
        TimeUnit::Nanosecond => Ok(values
            .into_iter()
            .map(|v| v.div_euclid(1_000_000))
            .collect()),
        TimeUnit::Second => values
            .into_iter()
            .enumerate()
            .map(|(row, value)| {
                value
                    .checked_mul(1_000)
                    .ok_or(ArrowIngestError::TimeOverflow { row, value, unit })
            })
            .collect(),
    }
}

/// Converts `batch` into rows of `table`. Nothing is validated beyond the shape of
/// the batch and tag names: storage does the rest when the batch is written.
pub fn to_write_batch(table: &str, batch: &RecordBatch) -> Result<WriteBatch, ArrowIngestError> {
    let schema = batch.schema();
    let mut seen = ahash::AHashSet::new();
    let mut time = None;
    let mut tags = Vec::new();
    let mut fields = Vec::new();
    let tag_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name();
        if !seen.insert(name.as_str()) {
            return Err(ArrowIngestError::DuplicateColumn {
                column: name.clone(),
            });
        }
        let data_type = array.data_type();
        if name == "time" {
            time = Some(times(array)?);
        } else if is_string(data_type)
            || matches!(data_type, DataType::Dictionary(_, v) if is_string(v))
        {
            tags.push(TagColumn {
                name: name.clone(),
                dict: convert(name, array, &tag_type)?,
            });
        } else if is_field(data_type) {
            fields.push(FieldColumn {
                name: name.clone(),
                values: convert(name, array, &DataType::Float64)?,
            });
        } else {
            return Err(ArrowIngestError::UnsupportedType {
                column: name.clone(),
                data_type: data_type.clone(),
            });
        }
    }
    let time = time.ok_or(ArrowIngestError::MissingTime)?;
    group(table, &tags, &fields, &time)
}

/// Groups rows by (tag ids, present fields) and builds one series item per group.
fn group(
    table: &str,
    tags: &[TagColumn],
    fields: &[FieldColumn],
    time: &[i64],
) -> Result<WriteBatch, ArrowIngestError> {
    let rows = time.len();
    let sparse = fields.iter().any(|f| f.values.null_count() > 0);
    // Row keys, row-major: the tag ids, then (when some field is null) a bitmask of
    // the fields present. Grouping on integer slices avoids hashing strings per row.
    let mask_words = if sparse { fields.len().div_ceil(32) } else { 0 };
    let width = tags.len() + mask_words;
    let mut keys = vec![0u32; rows * width];
    for (c, tag) in tags.iter().enumerate() {
        for (r, id) in tag.ids().enumerate() {
            keys[r * width + c] = id;
        }
    }
    if sparse {
        for (f, field) in fields.iter().enumerate() {
            let Some(nulls) = field.values.nulls() else {
                for r in 0..rows {
                    keys[r * width + tags.len() + f / 32] |= 1 << (f % 32);
                }
                continue;
            };
            for r in nulls.valid_indices() {
                keys[r * width + tags.len() + f / 32] |= 1 << (f % 32);
            }
        }
    }
    let mut groups: AHashMap<&[u32], usize> = AHashMap::new();
    let mut members: Vec<Vec<u32>> = Vec::new();
    for r in 0..rows {
        let key = &keys[r * width..(r + 1) * width];
        let g = *groups.entry(key).or_insert_with(|| {
            members.push(Vec::new());
            members.len() - 1
        });
        members[g].push(r as u32);
    }
    let values: Vec<&[f64]> = fields
        .iter()
        .map(|f| f.values.as_primitive::<Float64Type>().values().as_ref())
        .collect();
    let mut out = WriteBatch::new();
    let mut row_values = Vec::with_capacity(fields.len());
    for rows_of_group in &members {
        let first = rows_of_group[0] as usize;
        let key = &keys[first * width..(first + 1) * width];
        let pairs = tags
            .iter()
            .zip(key)
            .filter(|(_, id)| **id != ABSENT)
            .map(|(tag, id)| (tag.name.as_str(), tag.value(*id)));
        let tag_set =
            TagSet::new(pairs).map_err(|source| ArrowIngestError::Row { row: first, source })?;
        let present: Vec<usize> = (0..fields.len())
            .filter(|&f| !sparse || key[tags.len() + f / 32] & (1 << (f % 32)) != 0)
            .collect();
        if present.is_empty() {
            // A row with every field null carries no sample.
            continue;
        }
        let names: Vec<&str> = present.iter().map(|&f| fields[f].name.as_str()).collect();
        let item = out.series(table, tag_set, &names);
        item.reserve(rows_of_group.len());
        for &r in rows_of_group {
            let r = r as usize;
            row_values.clear();
            row_values.extend(present.iter().map(|&f| values[f][r]));
            // The row has exactly one value per declared field, so this cannot fail.
            item.push(time[r], &row_values)
                .map_err(|source| ArrowIngestError::Row { row: r, source })?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

//! Helpers shared by the integration tests: reading record batches back as rows.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod server;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, TimestampMillisecondType};

/// One row read back: tag values (schema order), time, field bits (`None` = null).
pub type Row = (Vec<Option<String>>, i64, Vec<Option<u64>>);

/// Flattens batches of a full-schema scan (`tags..., time, fields...`) into rows.
pub fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let time_col = schema.index_of("time").expect("time column");
        for r in 0..batch.num_rows() {
            let mut tags = Vec::new();
            let mut fields = Vec::new();
            let mut time = 0;
            for (c, column) in batch.columns().iter().enumerate() {
                if c < time_col {
                    let dict = column.as_dictionary::<Int32Type>();
                    let values = dict.values().as_string::<i32>();
                    tags.push(
                        dict.is_valid(r)
                            .then(|| values.value(dict.keys().value(r) as usize).to_string()),
                    );
                } else if c == time_col {
                    time = column.as_primitive::<TimestampMillisecondType>().value(r);
                } else {
                    let f = column.as_primitive::<Float64Type>();
                    fields.push(f.is_valid(r).then(|| f.value(r).to_bits()));
                }
            }
            out.push((tags, time, fields));
        }
    }
    out
}

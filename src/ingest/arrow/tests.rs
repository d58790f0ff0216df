use std::sync::Arc;

use arrow::array::{
    BooleanArray, DictionaryArray, Float64Array, Int8Array, Int64Array, LargeStringArray,
    RecordBatch, StringArray, TimestampNanosecondArray, TimestampSecondArray, UInt32Array,
};
use arrow::datatypes::{Field, Int16Type, Schema};

use super::*;

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// (tags, fields, timestamps, rows) of one item, for comparison.
type Item = (Vec<(String, String)>, Vec<String>, Vec<i64>, Vec<Vec<f64>>);

fn items(b: &WriteBatch) -> Vec<Item> {
    b.items()
        .iter()
        .map(|i| {
            (
                i.tags().pairs().to_vec(),
                i.fields().iter().map(|(n, _)| n.clone()).collect(),
                i.timestamps().to_vec(),
                (0..i.len()).map(|r| i.row(r).to_vec()).collect(),
            )
        })
        .collect()
}

#[test]
fn rows_group_by_series_and_keep_their_order() {
    let host: DictionaryArray<Int16Type> = vec!["a", "b", "a", "b"].into_iter().collect();
    let b = batch(vec![
        ("host", Arc::new(host)),
        ("region", Arc::new(LargeStringArray::from(vec!["eu"; 4]))),
        (
            "time",
            Arc::new(TimestampNanosecondArray::from(vec![
                1_000_000, 1_000_000, 2_999_999, 3_000_000,
            ])),
        ),
        (
            "usage",
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
        ),
        ("count", Arc::new(UInt32Array::from(vec![1, 2, 3, 4]))),
        (
            "up",
            Arc::new(BooleanArray::from(vec![true, false, true, true])),
        ),
    ]);
    let w = to_write_batch("cpu", &b).unwrap();
    assert_eq!(w.row_count(), 4);
    assert_eq!(w.sample_count(), 12);
    let tags = |h: &str| vec![("host".into(), h.into()), ("region".into(), "eu".into())];
    let names = vec!["usage".to_string(), "count".into(), "up".into()];
    assert_eq!(
        items(&w),
        vec![
            (
                tags("a"),
                names.clone(),
                vec![1, 2],
                vec![vec![1.0, 1.0, 1.0], vec![3.0, 3.0, 1.0]]
            ),
            (
                tags("b"),
                names,
                vec![1, 3],
                vec![vec![2.0, 2.0, 0.0], vec![4.0, 4.0, 1.0]]
            ),
        ]
    );
    assert!(w.items().iter().all(|i| i.table() == "cpu"));
}

#[test]
fn null_fields_are_absent_and_null_tags_are_missing() {
    let b = batch(vec![
        (
            "host",
            Arc::new(StringArray::from(vec![Some("a"), None, Some("")])),
        ),
        ("time", Arc::new(Int64Array::from(vec![10, 20, 30]))),
        (
            "x",
            Arc::new(Float64Array::from(vec![Some(1.0), None, Some(3.0)])),
        ),
        ("y", Arc::new(Int8Array::from(vec![None, Some(2), None]))),
    ]);
    let w = to_write_batch("t", &b).unwrap();
    assert_eq!(
        items(&w),
        vec![
            (
                vec![("host".into(), "a".into())],
                vec!["x".to_string()],
                vec![10],
                vec![vec![1.0]]
            ),
            (vec![], vec!["y".to_string()], vec![20], vec![vec![2.0]]),
            (vec![], vec!["x".to_string()], vec![30], vec![vec![3.0]]),
        ]
    );
}

#[test]
fn a_row_without_any_field_carries_nothing() {
    let b = batch(vec![
        ("time", Arc::new(Int64Array::from(vec![1, 2]))),
        ("x", Arc::new(Float64Array::from(vec![None, Some(2.0)]))),
    ]);
    let w = to_write_batch("t", &b).unwrap();
    assert_eq!(w.row_count(), 1);
    assert_eq!(w.items()[0].timestamps(), &[2]);
}

#[test]
fn seconds_scale_up_and_overflow_is_named() {
    let b = batch(vec![
        (
            "time",
            Arc::new(TimestampSecondArray::from(vec![2, i64::MAX])),
        ),
        ("x", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
    ]);
    let err = to_write_batch("t", &b).unwrap_err();
    assert!(
        matches!(err, ArrowIngestError::TimeOverflow { row: 1, .. }),
        "{err}"
    );
    let b = batch(vec![
        ("time", Arc::new(TimestampSecondArray::from(vec![2]))),
        ("x", Arc::new(Float64Array::from(vec![1.0]))),
    ]);
    assert_eq!(
        to_write_batch("t", &b).unwrap().items()[0].timestamps(),
        &[2000]
    );
}

#[test]
fn mistakes_name_the_column_or_row() {
    let no_time = batch(vec![(
        "x",
        Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
    )]);
    assert!(matches!(
        to_write_batch("t", &no_time),
        Err(ArrowIngestError::MissingTime)
    ));

    let null_time = batch(vec![
        (
            "time",
            Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
        ),
        ("x", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
    ]);
    let err = to_write_batch("t", &null_time).unwrap_err();
    assert_eq!(err.to_string(), "row 1: \"time\" is null");

    let string_time = batch(vec![(
        "time",
        Arc::new(StringArray::from(vec!["now"])) as ArrayRef,
    )]);
    let err = to_write_batch("t", &string_time).unwrap_err();
    assert!(
        err.to_string().contains("column \"time\" has type Utf8"),
        "{err}"
    );

    let binary = batch(vec![
        ("time", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        (
            "blob",
            Arc::new(arrow::array::BinaryArray::from(vec![&b"x"[..]])),
        ),
    ]);
    let err = to_write_batch("t", &binary).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("column \"blob\" has type Binary, which is neither a tag"),
        "{err}"
    );

    let twice = batch(vec![
        ("time", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("x", Arc::new(Float64Array::from(vec![1.0]))),
        ("x", Arc::new(Float64Array::from(vec![2.0]))),
    ]);
    let err = to_write_batch("t", &twice).unwrap_err();
    assert_eq!(err.to_string(), "column \"x\" appears more than once");
}

use super::*;

const TS: i64 = 7_000;

mod values;

/// One row: table, tags, field names, timestamp, values.
type Row = (String, Vec<(String, String)>, Vec<String>, i64, Vec<f64>);

/// The rows of a batch, group by group.
pub(super) fn rows(batch: &WriteBatch) -> Vec<Row> {
    let mut out = Vec::new();
    for s in batch.items() {
        let names: Vec<String> = s.fields().iter().map(|(n, _)| n.clone()).collect();
        assert!(s.fields().iter().all(|(_, kind)| kind.is_none()));
        for i in 0..s.len() {
            out.push((
                s.table().to_string(),
                s.tags().pairs().to_vec(),
                names.clone(),
                s.timestamps()[i],
                s.row(i).to_vec(),
            ));
        }
    }
    out
}

pub(super) fn row(table: &str, tags: &[(&str, &str)], fields: &[(&str, f64)], ts: i64) -> Row {
    let mut tags: Vec<(String, String)> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tags.sort();
    (
        table.to_string(),
        tags,
        fields.iter().map(|(k, _)| k.to_string()).collect(),
        ts,
        fields.iter().map(|(_, v)| *v).collect(),
    )
}

pub(super) fn ms(text: &str) -> Vec<Row> {
    rows(&parse_strict(text, Precision::Millisecond, TS).unwrap())
}

/// The one value of a one-field line `m v=<value>`.
pub(super) fn value(v: &str) -> f64 {
    let rows = ms(&format!("m v={v}"));
    assert_eq!(rows.len(), 1);
    rows[0].4[0]
}

pub(super) fn error(text: &str) -> (usize, usize, String) {
    let e = parse_strict(text, Precision::Millisecond, TS).unwrap_err();
    (e.line, e.column, e.message)
}

#[test]
fn parses_a_full_line() {
    let text = "cpu,host=a,region=eu usage_user=58i,usage_idle=24.5 1451606400000000000";
    let batch = parse_strict(text, Precision::Nanosecond, TS).unwrap();
    let expected = row(
        "cpu",
        &[("host", "a"), ("region", "eu")],
        &[("usage_user", 58.0), ("usage_idle", 24.5)],
        1_451_606_400_000,
    );
    assert_eq!(rows(&batch), vec![expected]);
}

#[test]
fn missing_timestamp_and_tags() {
    assert_eq!(ms("m v=1"), vec![row("m", &[], &[("v", 1.0)], TS)]);
    assert_eq!(ms("m v=1 "), vec![row("m", &[], &[("v", 1.0)], TS)]);
}

#[test]
fn refuses_bad_field_keys() {
    assert_eq!(error("m =1"), (1, 3, "missing field key".into()));
    assert_eq!(error("m v=1,"), (1, 7, "missing field key".into()));
    assert_eq!(error("m v=1, w=2"), (1, 7, "missing field key".into()));
    assert_eq!(
        error("m v"),
        (1, 4, "expected '=' after field key \"v\"".into())
    );
    assert_eq!(
        error("m v 1"),
        (1, 4, "expected '=' after field key \"v\"".into())
    );
    assert_eq!(
        error("m v=1,w=2,v=3"),
        (1, 11, "duplicate field key \"v\"".into())
    );
    assert_eq!(
        error("m time=1"),
        (
            1,
            3,
            "invalid field name \"time\": `time` is the timestamp column of every table".into()
        )
    );
    assert_eq!(
        error("m,host=a v=1,host=2"),
        (1, 14, "\"host\" is both a tag and a field".into())
    );
}

#[test]
fn refuses_bad_series_keys() {
    assert_eq!(error(",a=1 v=1"), (1, 1, "missing measurement".into()));
    assert_eq!(error("m, v=1"), (1, 3, "missing tag key after ','".into()));
    assert_eq!(
        error("m,a=1, v=1"),
        (1, 7, "missing tag key after ','".into())
    );
    assert_eq!(
        error("m,a v=1"),
        (1, 4, "expected '=' after tag key \"a\"".into())
    );
    assert_eq!(
        error("m,a,b=1 v=1"),
        (1, 4, "expected '=' after tag key \"a\"".into())
    );
    assert_eq!(error("m,a= v=1"), (1, 5, "tag \"a\" has no value".into()));
    assert_eq!(
        error("m,a=,b=1 v=1"),
        (1, 5, "tag \"a\" has no value".into())
    );
    assert_eq!(
        error("m,a=b=c v=1"),
        (
            1,
            6,
            "unescaped '=' in the value of tag \"a\" (write '\\=')".into()
        )
    );
    assert_eq!(
        error("m,b=1,a=2,b=3 v=1"),
        (1, 11, "duplicate tag key \"b\"".into())
    );
    assert_eq!(
        error("m,__name__=x v=1"),
        (
            1,
            3,
            "invalid tag name \"__name__\": names starting with `__` are reserved".into()
        )
    );
    assert!(
        error("m,time=x v=1")
            .2
            .contains("`time` is the timestamp column")
    );
    let long = "x".repeat(17_000);
    assert_eq!(
        error(&format!("m,a={long} v=1")),
        (
            1,
            5,
            format!(
                "invalid tag value name {:?}: longer than 16384 bytes",
                &long[..200]
            )
        )
    );
    assert_eq!(
        error(&format!("{} v=1", "m".repeat(1025))).2,
        format!(
            "invalid table name {:?}: longer than 1024 bytes",
            "m".repeat(200)
        )
    );
}

#[test]
fn refuses_lines_without_fields() {
    let message = "missing fields: expected a blank, then field=value".to_string();
    assert_eq!(error("cpu"), (1, 4, message.clone()));
    assert_eq!(error("cpu,a=1"), (1, 8, message.clone()));
    assert_eq!(error("cpu   "), (1, 4, message.clone()));
    assert_eq!(error("m\\ x"), (1, 5, message));
}

#[test]
fn blanks_comments_and_line_ends() {
    let text = "# comment\n\n   \n  # indented comment\r\nm v=1 5\r\n\t m  v=2\t6 \t\nm v=3 7";
    let result = parse(text, Precision::Millisecond, TS);
    assert_eq!(result.errors, vec![]);
    assert_eq!((result.lines, result.points), (7, 3));
    let rows = rows(&result.batch);
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows.iter().map(|r| (r.3, r.4[0])).collect::<Vec<_>>(),
        vec![(5, 1.0), (6, 2.0), (7, 3.0)]
    );
    assert_eq!(result.batch.items().len(), 1);
}

#[test]
fn escapes() {
    let text = r#"my\ cpu\,x\=y,k\ 1\,\=\\=v\ 1\,\=\\,plain=a\b f\ 1\,\=\\=1,g\x=2"#;
    let expected = row(
        r"my cpu,x\=y",
        &[(r"k 1,=\", r"v 1,=\"), ("plain", r"a\b")],
        &[(r"f 1,=\", 1.0), (r"g\x", 2.0)],
        TS,
    );
    assert_eq!(ms(text), vec![expected]);
    // A space after an escaped backslash ends the key.
    assert_eq!(
        ms(r"m,a=b\\ v=1"),
        vec![row("m", &[("a", r"b\")], &[("v", 1.0)], TS)]
    );
    // '=' needs no escape in a measurement, so the backslash stays.
    assert_eq!(ms(r"m\= v=1"), vec![row(r"m\=", &[], &[("v", 1.0)], TS)]);
    // An escaped space is part of the name, not a separator.
    assert_eq!(
        error(r"m\ v=1").2,
        "missing fields: expected a blank, then field=value"
    );
    // A '#' after the start of a line is an ordinary character.
    assert_eq!(ms("m#1 v=1"), vec![row("m#1", &[], &[("v", 1.0)], TS)]);
}

#[test]
fn unicode_names_and_columns_in_bytes() {
    assert_eq!(
        ms("température,lieu=café\\ été v=1"),
        vec![row(
            "température",
            &[("lieu", "café été")],
            &[("v", 1.0)],
            TS
        )]
    );
    // "é" is 2 bytes: the value starts at byte 10.
    assert_eq!(error("mé,a=1 v=x").1, 11);
    assert!(error("m v=é").2.contains("invalid value \"é\""));
}

#[test]
fn groups_rows_by_series_and_field_set() {
    let text = "\
cpu,host=a u=1,s=2 1
cpu,host=a u=3,s=4 2
cpu,host=b u=5,s=6 1
cpu,host=a u=7,s=8 3
cpu,host=a u=9 4
cpu,host=a u=10,s=11 5
cpu,host=b u=12,s=13 2
mem,host=a u=1 1
";
    let batch = parse_strict(text, Precision::Millisecond, TS).unwrap();
    let groups: Vec<(String, usize, Vec<i64>)> = batch
        .items()
        .iter()
        .map(|s| {
            (
                s.tags().to_string(),
                s.fields().len(),
                s.timestamps().to_vec(),
            )
        })
        .collect();
    let a = r#"{host="a"}"#.to_string();
    let b = r#"{host="b"}"#.to_string();
    assert_eq!(
        groups,
        vec![
            (a.clone(), 2, vec![1, 2, 3]),
            (b, 2, vec![1, 2]),
            (a.clone(), 1, vec![4]),
            (a.clone(), 2, vec![5]),
            (a, 1, vec![1]),
        ]
    );
    assert_eq!(batch.items()[4].table(), "mem");
}

#[test]
fn spellings_of_one_series_keep_its_row_order() {
    let text =
        "m,a=1,b=2 v=1 1\nm,b=2,a=1 v=2 2\nm,a=1,b=2 v=3 3\nm,b=2,a=1 w=4 4\nm,a=1,b=2 w=5 5";
    let batch = parse_strict(text, Precision::Millisecond, TS).unwrap();
    let groups: Vec<Vec<i64>> = batch
        .items()
        .iter()
        .map(|s| s.timestamps().to_vec())
        .collect();
    assert_eq!(groups, vec![vec![1, 2, 3], vec![4, 5]]);
}

#[test]
fn partial_writes_keep_valid_lines_and_report_bad_ones() {
    let text = "m v=1 1\nm v=\"s\" 2\n# c\nm,a=1,a=2 v=3 3\nm v=4 4\nm v=5 x\n";
    let result = parse(text, Precision::Millisecond, TS);
    assert_eq!((result.lines, result.points), (6, 2));
    assert_eq!(
        rows(&result.batch)
            .iter()
            .map(|r| (r.3, r.4[0]))
            .collect::<Vec<_>>(),
        vec![(1, 1.0), (4, 4.0)]
    );
    let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        errors,
        vec![
            "line 2, column 5: string field \"v\" is not supported; MetricStore stores numbers",
            "line 4, column 7: duplicate tag key \"a\"",
            "line 6, column 7: invalid timestamp \"x\": expected an integer number of milliseconds",
        ]
    );
    let strict = parse_strict(text, Precision::Millisecond, TS).unwrap_err();
    assert_eq!(strict, result.errors[0]);
}

#[test]
fn a_bad_line_leaves_no_trace() {
    // The series of a failed line is remembered, but gets no group and no row.
    let result = parse("m,a=1 v=1,v=2\nm,a=1 v=\"x\"", Precision::Millisecond, TS);
    assert_eq!(result.errors.len(), 2);
    assert!(result.batch.items().is_empty());
    assert_eq!(result.points, 0);
    let empty = parse("", Precision::Millisecond, TS);
    assert_eq!((empty.lines, empty.points, empty.errors.len()), (0, 0, 0));
}

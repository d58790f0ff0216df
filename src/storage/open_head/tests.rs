//! Open heads against plain rows: every write, view and seal decodes to exactly what
//! the same writes make of a plain [`Head`].

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// A row `gap` milliseconds after the newest, with (field, value bits) pairs.
    Append(i64, Vec<(u16, u64)>),
    /// More fields for the newest row.
    Merge(Vec<(u16, u64)>),
    /// A snapshot's view, decoded at the end.
    View,
    /// A seal while the series is written: rows out, room kept.
    Seal,
}

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(crate::model::STALE_NAN_BITS),
        Just((-0.0f64).to_bits()),
        Just(f64::NEG_INFINITY.to_bits()),
        Just(1), // the smallest subnormal
        Just(f64::MAX.to_bits()),
        (0i64..1000).prop_map(|i| (i as f64 / 4.0).to_bits()),
        (0i64..40).prop_map(|i| (1e6 + i as f64).to_bits()),
        any::<u64>(),
    ]
}

/// Fields of one write, each at most once (as a validated batch has them).
fn fields() -> impl Strategy<Value = Vec<(u16, u64)>> {
    proptest::collection::vec((0u16..6, value()), 0..5).prop_map(|mut fv| {
        fv.reverse();
        let mut seen = std::collections::HashSet::new();
        fv.retain(|(f, _)| seen.insert(*f));
        fv
    })
}

fn op() -> impl Strategy<Value = Op> {
    let gap = prop_oneof![
        Just(10_000i64),
        9_990i64..10_010,
        1i64..100_000_000,
        Just(1i64 << 40),
    ];
    prop_oneof![
        8 => (gap, fields()).prop_map(|(g, f)| Op::Append(g, f)),
        2 => fields().prop_map(Op::Merge),
        1 => Just(Op::View),
        1 => Just(Op::Seal),
    ]
}

fn split(fv: &[(u16, u64)]) -> (Vec<u16>, Vec<f64>) {
    fv.iter().map(|&(f, v)| (f, f64::from_bits(v))).unzip()
}

fn bits(v: Option<f64>) -> Option<u64> {
    v.map(f64::to_bits)
}

fn check_same(got: &Head, want: &Head) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.times, &want.times);
    for f in 0..got.columns.len().max(want.columns.len()) {
        for i in 0..want.len() {
            prop_assert_eq!(
                bits(got.value(f, i)),
                bits(want.value(f, i)),
                "f{} row {}",
                f,
                i
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn open_heads_keep_rows_bit_exactly(
        start in -(1i64 << 50)..(1i64 << 50),
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let mut open = OpenHead::default();
        let mut model = Head::default();
        let mut views: Vec<(HeadView, Head)> = Vec::new();
        let mut time = start;
        for op in ops {
            match op {
                Op::Append(gap, fv) => {
                    time += gap;
                    let (f, v) = split(&fv);
                    open.append(time, &f, &v);
                    model.upsert(time, &f, &v);
                }
                Op::Merge(fv) => {
                    if let Some(last) = model.last_time() {
                        let (f, v) = split(&fv);
                        open.merge_last(&f, &v);
                        model.upsert(last, &f, &v);
                    }
                }
                Op::View => views.push((open.view(), model.clone())),
                Op::Seal => {
                    check_same(&open.take_keeping_room(), &model)?;
                    model = Head::default();
                }
            }
            prop_assert_eq!(open.len(), model.len());
            prop_assert_eq!(open.present(), model.present());
            prop_assert_eq!(open.first_time(), model.first_time());
            prop_assert_eq!(open.last_time(), model.last_time());
            let last = model.len().checked_sub(1);
            let want: Option<Vec<_>> =
                last.map(|i| (0..open.columns()).map(|f| bits(model.value(f, i))).collect());
            let got: Option<Vec<_>> = open.last_row().map(|r| r.iter().map(|&v| bits(v)).collect());
            prop_assert_eq!(got, want);
        }
        check_same(&open.to_head(), &model)?;
        // Views taken earlier still read their rows, whatever the writer did since.
        for (view, want) in &views {
            check_same(&view.decode(TimeRange::ALL), want)?;
        }
        if let (Some(first), Some(last)) = (model.first_time(), model.last_time()) {
            let range = TimeRange::new(first / 2 + last / 2, last);
            check_same(&open.view().decode(range), &model.slice(range.start, range.end))?;
        }
        let restored = OpenHead::from_head(&model);
        check_same(&restored.to_head(), &model)?;
        prop_assert_eq!(restored.present(), model.present());
    }
}

/// Writes `n` rows 10 s apart with `value(i)` in field 0 and returns the head.
fn regular(n: usize, value: impl Fn(usize) -> f64) -> OpenHead {
    let mut open = OpenHead::default();
    for i in 0..n {
        open.append(1_700_000_000_000 + 10_000 * i as i64, &[0], &[value(i)]);
    }
    open
}

#[test]
fn regular_rows_cost_bits_not_bytes() {
    // Plain columns took 16 bytes a row; here 3 bits, the stream's doubling and the
    // writer's state.
    let constant = regular(512, |_| 42.5);
    assert!(constant.bytes() < 2 * 512, "{} bytes", constant.bytes());
    let counter = regular(512, |i| (1000 + 7 * i) as f64);
    assert!(counter.bytes() < 512 * 4, "{} bytes", counter.bytes());
    assert_eq!(
        counter.to_head().value(0, 511),
        Some((1000 + 7 * 511) as f64)
    );
}

#[test]
fn seals_reuse_the_room_unless_a_reader_holds_it() {
    let mut open = regular(100, |i| i as f64);
    let bytes = open.bytes();
    open.take_keeping_room();
    assert_eq!(open.bytes(), bytes, "rows refill the kept room");
    for i in 0..100 {
        open.append(i, &[0], &[-(i as f64)]);
    }
    let view = open.view();
    open.take_keeping_room();
    for i in 0..100 {
        open.append(1000 + i, &[0], &[0.5]);
    }
    let seen = view.decode(TimeRange::ALL);
    assert_eq!(seen.times, (0..100).collect::<Vec<_>>());
    assert_eq!(seen.value(0, 99), Some(-99.0));
    open.take_keeping_room();
    open.release_room();
    assert_eq!((open.bytes(), open.len()), (0, 0));
}

#[test]
fn a_new_field_mid_head_reads_null_before() {
    let mut open = OpenHead::default();
    open.append(1, &[0], &[1.0]);
    open.append(2, &[0], &[2.0]);
    open.append(3, &[2, 0], &[30.0, 3.0]);
    open.append(4, &[1], &[4.0]);
    open.merge_last(&[1, 0], &[40.0, 4.5]);
    open.append(5, &[], &[]);
    let head = open.to_head();
    assert_eq!(head.times, vec![1, 2, 3, 4, 5]);
    let column = |f: usize| (0..5).map(|i| head.value(f, i)).collect::<Vec<_>>();
    assert_eq!(
        column(0),
        [Some(1.0), Some(2.0), Some(3.0), Some(4.5), None]
    );
    assert_eq!(column(1), [None, None, None, Some(40.0), None]);
    assert_eq!(column(2), [None, None, Some(30.0), None, None]);
    assert_eq!(open.present(), 6);
}

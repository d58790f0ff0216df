//! Field values, timestamps and precisions.

use super::*;

#[test]
fn float_values() {
    for (text, v) in [
        ("1", 1.0),
        ("1.5", 1.5),
        ("-1e3", -1000.0),
        (".5", 0.5),
        ("+2", 2.0),
        ("1E-2", 0.01),
        ("-0", -0.0),
        ("1.7976931348623157e308", f64::MAX),
    ] {
        assert_eq!(value(text).to_bits(), v.to_bits(), "{text}");
    }
}

#[test]
fn integer_unsigned_and_boolean_values() {
    assert_eq!(value("12i"), 12.0);
    assert_eq!(value("-12i"), -12.0);
    assert_eq!(value("9223372036854775807i"), 9.223_372_036_854_776e18);
    assert_eq!(value("-9223372036854775808i"), -9.223_372_036_854_776e18);
    assert_eq!(value("12u"), 12.0);
    assert_eq!(value("18446744073709551615u"), 1.844_674_407_370_955_2e19);
    // 2^53 + 1 is not an f64: it rounds to the even neighbour 2^53.
    assert_eq!(value("9007199254740993i"), 9_007_199_254_740_992.0);
    for t in ["t", "T", "true", "True", "TRUE"] {
        assert_eq!(value(t), 1.0, "{t}");
    }
    for f in ["f", "F", "false", "False", "FALSE"] {
        assert_eq!(value(f), 0.0, "{f}");
    }
}

#[test]
fn refuses_bad_values() {
    let expected_kinds =
        "expected a float, an integer (12i), an unsigned integer (12u) or a boolean";
    assert_eq!(
        error("m,a=1 x=1,msg=\"hello, world\" 5"),
        (
            1,
            15,
            "string field \"msg\" is not supported; MetricStore stores numbers".into()
        )
    );
    for bad in ["NaN", "nan", "inf", "-Inf", "+Infinity"] {
        assert_eq!(
            error(&format!("m v={bad}")),
            (
                1,
                5,
                "field \"v\": NaN and infinity are not supported (InfluxDB refuses them too)"
                    .into()
            ),
            "{bad}"
        );
    }
    assert_eq!(
        error("m v=1e400"),
        (
            1,
            5,
            "value \"1e400\" of field \"v\" is out of range for a 64-bit float".into()
        )
    );
    assert_eq!(
        error("m v=99999999999999999999i"),
        (
            1,
            5,
            "value \"99999999999999999999i\" of field \"v\" is out of range for a 64-bit signed integer".into()
        )
    );
    assert_eq!(
        error("m v=18446744073709551616u").2,
        "value \"18446744073709551616u\" of field \"v\" is out of range for a 64-bit unsigned integer"
    );
    for bad in [
        "12x", "1.5i", "i", "u", "1..2", "1e", "yes", "0x10", "1_000",
    ] {
        assert_eq!(
            error(&format!("m w=2,v={bad}")),
            (
                1,
                9,
                format!("invalid value {bad:?} for field \"v\": {expected_kinds}")
            ),
            "{bad}"
        );
    }
    assert_eq!(
        error("m v=-1u").2,
        "value \"-1u\" of field \"v\" is out of range for a 64-bit unsigned integer"
    );
    assert_eq!(
        error("m v= 5"),
        (1, 5, "missing value for field \"v\"".into())
    );
    assert_eq!(
        error("m v=,w=1"),
        (1, 5, "missing value for field \"v\"".into())
    );
}

#[test]
fn timestamps_in_every_precision() {
    let one = |text: &str, p: Precision| rows(&parse_strict(text, p, TS).unwrap())[0].3;
    assert_eq!(one("m v=1 1500000000", Precision::Nanosecond), 1500);
    assert_eq!(one("m v=1 1999999", Precision::Nanosecond), 1);
    assert_eq!(one("m v=1 1999", Precision::Microsecond), 1);
    assert_eq!(one("m v=1 1999", Precision::Millisecond), 1999);
    assert_eq!(one("m v=1 -5", Precision::Millisecond), -5);
    assert_eq!(one("m v=1 1999", Precision::Second), 1_999_000);
    // Floor, not truncation toward zero: -1 ns lies in millisecond -1.
    assert_eq!(one("m v=1 -1", Precision::Nanosecond), -1);
    assert_eq!(one("m v=1 -1000000", Precision::Nanosecond), -1);
    assert_eq!(one("m v=1 -1000001", Precision::Nanosecond), -2);
    assert_eq!(one("m v=1 -1", Precision::Microsecond), -1);
    assert_eq!(
        one("m v=1 9223372036854775807", Precision::Nanosecond),
        9_223_372_036_854
    );
    assert_eq!(
        one("m v=1 -9223372036854775808", Precision::Microsecond),
        -9_223_372_036_854_776
    );
    let e = parse_strict("m v=1 9223372036854776", Precision::Second, TS).unwrap_err();
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (
            1,
            7,
            "timestamp 9223372036854776 s is out of range for milliseconds"
        )
    );
    assert_eq!(
        one("m v=1 9223372036854775", Precision::Second),
        9_223_372_036_854_775_000
    );
}

#[test]
fn refuses_bad_timestamps() {
    assert_eq!(
        error("m v=1 12.5"),
        (
            1,
            7,
            "invalid timestamp \"12.5\": expected an integer number of milliseconds".into()
        )
    );
    let e = parse_strict("m v=1 1e9", Precision::Second, TS).unwrap_err();
    assert_eq!(
        e.message,
        "invalid timestamp \"1e9\": expected an integer number of seconds"
    );
    assert_eq!(
        error("m v=1 99999999999999999999"),
        (
            1,
            7,
            "invalid timestamp \"99999999999999999999\": expected an integer number of milliseconds"
                .into()
        )
    );
    assert_eq!(
        error("m v=1 5 6"),
        (1, 9, "unexpected text after the timestamp: \"6\"".into())
    );
    assert_eq!(
        error("m v=1 5 w=2"),
        (1, 9, "unexpected text after the timestamp: \"w=2\"".into())
    );
}

#[test]
fn precision_names() {
    for (name, p) in [
        ("n", Precision::Nanosecond),
        ("ns", Precision::Nanosecond),
        ("u", Precision::Microsecond),
        ("us", Precision::Microsecond),
        ("ms", Precision::Millisecond),
        ("s", Precision::Second),
    ] {
        assert_eq!(Precision::parse(name), Ok(p));
        assert_eq!(name.parse::<Precision>(), Ok(p));
        assert_eq!(Precision::parse(p.as_str()), Ok(p));
        assert_eq!(p.to_string(), p.as_str());
    }
    assert_eq!(Precision::default(), Precision::Nanosecond);
    for bad in ["", "h", "m", "NS", "µs", "sec"] {
        let e = Precision::parse(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("unknown precision {bad:?}: expected ns, us, ms or s (or v1's n and u)")
        );
    }
}

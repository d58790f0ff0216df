//! Cross-codec tests: shared strategies, truncation, bit flips, garbage input and the
//! size guarantees.

use super::*;
use proptest::prelude::*;

/// Floats that are not integers or short decimals: bit patterns and special values.
fn special() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::from_bits(0x7ff0_0000_0000_0002)), // Prometheus staleness marker
        Just(f64::from_bits(0x7ff0_0000_0000_0001)), // signalling NaN
        Just(f64::from_bits(0xfff8_0000_0000_0000)),
        Just(f64::NAN),
        Just(0.0),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN_POSITIVE),
        Just(f64::from_bits(1)), // smallest subnormal
        Just(-f64::from_bits(0x000f_ffff_ffff_ffff)),
        Just(f64::MIN),
        Just(f64::MAX),
        Just(f64::EPSILON),
        any::<u64>().prop_map(f64::from_bits),
    ]
}

/// Column-shaped float series: decimal gauges, counters with resets, constant runs,
/// arbitrary bits, and mixtures with a sprinkling of special values.
pub(super) fn floats() -> impl Strategy<Value = Vec<f64>> {
    let n = 0usize..700;
    let decimal = (n.clone(), 0i32..7, any::<u64>()).prop_map(|(n, k, seed)| {
        let mut x = seed as i64 % 1_000_000;
        (0..n)
            .map(|i| {
                x = x.wrapping_add((i as i64 * 7919 + seed as i64 % 13) % 201 - 100);
                x as f64 / 10f64.powi(k)
            })
            .collect()
    });
    let counter = proptest::collection::vec((0u32..5000, 0u8..50), n.clone()).prop_map(|steps| {
        let mut c = 0.0f64;
        steps
            .into_iter()
            .map(|(d, r)| {
                c = if r == 0 { 0.0 } else { c + f64::from(d) };
                c
            })
            .collect()
    });
    let constant = (special(), n.clone()).prop_map(|(v, n)| vec![v; n]);
    let arbitrary = proptest::collection::vec(special(), n.clone());
    let runs = proptest::collection::vec((special(), 1usize..40), 0..30).prop_map(|runs| {
        runs.into_iter()
            .flat_map(|(v, k)| std::iter::repeat_n(v, k))
            .collect()
    });
    let sprinkled = (
        proptest::collection::vec(-100_000i64..100_000, n),
        proptest::collection::vec((0usize..700, special()), 0..20),
    )
        .prop_map(|(ints, specials)| {
            let mut v: Vec<f64> = ints.iter().map(|&i| i as f64 / 100.0).collect();
            for (at, s) in specials {
                if let Some(slot) = v.get_mut(at) {
                    *slot = s;
                }
            }
            v
        });
    prop_oneof![decimal, counter, constant, arbitrary, runs, sprinkled]
}

/// Timestamp columns: jittered scrapes, constant steps, extremes, decreasing, random walks.
pub(super) fn timestamps() -> impl Strategy<Value = Vec<i64>> {
    let jittered =
        (any::<i32>(), 1i64..20_000, 0i64..20, 0usize..1500).prop_map(|(s, step, jit, n)| {
            (0..n as i64)
                .map(|i| s as i64 * 1000 + i * step + (i * 7919 % (jit + 1)))
                .collect()
        });
    let constant = (any::<i64>(), any::<i64>(), 0usize..600).prop_map(|(s, step, n)| {
        (0..n as i64)
            .map(|i| s.wrapping_add(step.wrapping_mul(i)))
            .collect()
    });
    let extremes = proptest::collection::vec(
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
            Just(-1),
            any::<i64>()
        ],
        0..300,
    );
    let decreasing = (any::<i64>(), 1i64..100_000, 0usize..600)
        .prop_map(|(s, step, n)| (0..n as i64).map(|i| s.wrapping_sub(i * step)).collect());
    let walk = proptest::collection::vec(-5000i64..5000, 0..600).prop_map(|steps| {
        let mut t = 1_700_000_000_000i64;
        steps
            .into_iter()
            .map(|d| {
                t += d;
                t
            })
            .collect()
    });
    prop_oneof![jittered, constant, extremes, decreasing, walk]
}

/// One block of every codec that applies to some fixed, varied inputs.
fn sample_blocks() -> Vec<(&'static str, Vec<u8>)> {
    let mut blocks = Vec::new();
    let ts_jitter: Vec<i64> = (0..300)
        .map(|i| 1_700_000_000_000 + i * 2000 + (i * 37 % 6))
        .collect();
    let ts_wild = vec![
        i64::MIN,
        i64::MAX,
        0,
        -1,
        5,
        i64::MIN,
        1 << 40,
        -(1 << 33),
        7,
    ];
    let ts_even: Vec<i64> = (0..300).map(|i| 1_700_000_000_000 + i * 10_000).collect();
    for (name, codec, ts) in [
        ("ts-const", TimestampCodec::ConstantStep, &ts_even),
        ("ts-dod", TimestampCodec::DeltaOfDelta, &ts_jitter),
        ("ts-dod-wild", TimestampCodec::DeltaOfDelta, &ts_wild),
        ("ts-packed", TimestampCodec::Packed, &ts_jitter),
        ("ts-packed-wild", TimestampCodec::Packed, &ts_wild),
    ] {
        let mut b = Vec::new();
        encode_timestamps_with(codec, ts, &mut b).unwrap();
        blocks.push((name, b));
    }
    let mut gauge: Vec<f64> = (0..300)
        .map(|i| ((i * 7919) % 5000) as f64 / 100.0)
        .collect();
    gauge[17] = f64::from_bits(0x7ff0_0000_0000_0002);
    let counter: Vec<f64> = (0..300).map(|i| f64::from(i * 13 % 1000)).collect();
    // Holds still with a jump every 40 rows: sparse packer blocks.
    let still: Vec<f64> = (0..300).map(|i| f64::from(1000 + (i / 40) * 7)).collect();
    let wild = [
        f64::NAN,
        -0.0,
        f64::MAX,
        f64::from_bits(1),
        1.5,
        1.5,
        f64::INFINITY,
        0.1,
        0.1 + 0.2,
    ];
    for (name, codec, v) in [
        ("f-const", FloatCodec::Constant, &[0.25; 300][..]),
        ("f-decimal", FloatCodec::Decimal, &gauge[..]),
        ("f-int", FloatCodec::IntDelta, &counter[..]),
        ("f-xor", FloatCodec::Xor, &gauge[..]),
        ("f-xor-wild", FloatCodec::Xor, &wild[..]),
        ("f-bitdelta", FloatCodec::BitDelta, &gauge[..]),
        ("f-bitdelta-wild", FloatCodec::BitDelta, &wild[..]),
        ("f-int-sparse", FloatCodec::IntDelta, &still[..]),
    ] {
        let mut b = Vec::new();
        encode_floats_with(codec, v, &mut b).unwrap();
        blocks.push((name, b));
    }
    blocks
}

/// Decodes `buf` as whichever column kind it claims; Err for garbage.
fn decode_any(buf: &[u8]) -> Result<usize, CodecError> {
    // Constant blocks may legitimately declare billions of rows; the property tests
    // only care that nothing panics, so they skip those the way a caller would.
    if let Ok(h) = peek_header(buf)
        && h.rows > 1 << 20
    {
        return Err(CodecError::corrupt(0, "test row limit"));
    }
    let mut ts = Vec::new();
    let mut fs = Vec::new();
    let a = decode_timestamps(buf, &mut ts);
    let b = decode_floats(buf, &mut fs);
    assert!(ts.len() <= 1 << 20 && fs.len() <= 1 << 20);
    a.or(b)
}

#[test]
fn every_strict_prefix_is_rejected() {
    for (name, block) in sample_blocks() {
        assert_eq!(decode_any(&block).unwrap(), block.len(), "{name}");
        for cut in 0..block.len() {
            assert!(
                decode_any(&block[..cut]).is_err(),
                "{name}: prefix of {cut} accepted"
            );
        }
    }
}

#[test]
fn every_single_bit_flip_is_survived() {
    for (_, block) in sample_blocks() {
        for bit in 0..block.len() * 8 {
            let mut b = block.clone();
            b[bit / 8] ^= 0x80 >> (bit % 8);
            let _ = decode_any(&b);
        }
    }
}

#[test]
fn errors_name_the_failing_offset() {
    let mut b = Vec::new();
    encode_floats_with(FloatCodec::Xor, &[1.0, 2.0, 3.0], &mut b).unwrap();
    let err = decode_floats(&b[..b.len() - 1], &mut Vec::new()).unwrap_err();
    assert!(
        matches!(err, CodecError::Truncated { offset, .. } if offset >= 2 && offset <= b.len()),
        "{err}"
    );
    assert_eq!(
        decode_timestamps(&b, &mut Vec::new()),
        Err(CodecError::UnknownCodec { offset: 0, id: 0xB })
    );
    assert_eq!(
        decode_floats(&[0x38, 0], &mut Vec::new()),
        Err(CodecError::UnsupportedVersion {
            offset: 0,
            version: 3
        })
    );
    assert_eq!(
        decode_floats(&[0x0B, 0], &mut Vec::new()),
        Err(CodecError::UnsupportedVersion {
            offset: 0,
            version: 0
        })
    );
    assert_eq!(
        decode_floats(&[0x1F, 0], &mut Vec::new()),
        Err(CodecError::UnknownCodec { offset: 0, id: 0xF })
    );
    assert!(matches!(
        decode_floats(&[], &mut Vec::new()),
        Err(CodecError::Truncated { offset: 0, .. })
    ));
    // A count above u32::MAX is refused even though the varint is well formed.
    assert!(matches!(
        decode_floats(&[0x18, 0x80, 0x80, 0x80, 0x80, 0x10], &mut Vec::new()),
        Err(CodecError::Corrupt { offset: 1, .. })
    ));
}

#[test]
fn absurd_counts_fail_before_allocating() {
    // u32::MAX rows claimed by tiny XOR, DoD, packed and decimal blocks.
    for id in [
        0x12u8, 0x13, 0x19, 0x1A, 0x1B, 0x22, 0x23, 0x29, 0x2A, 0x2B, 0x2C,
    ] {
        let mut b = vec![id, 0xff, 0xff, 0xff, 0xff, 0x0f];
        b.extend_from_slice(&[0u8; 64]);
        let mut ts = Vec::new();
        let mut fs = Vec::new();
        assert!(decode_timestamps(&b, &mut ts).is_err());
        assert!(decode_floats(&b, &mut fs).is_err());
        assert!(
            ts.capacity() < 1 << 16 && fs.capacity() < 1 << 16,
            "{id:#x}"
        );
    }
}

#[test]
fn failed_decode_leaves_output_untouched() {
    let mut b = Vec::new();
    encode_floats_with(FloatCodec::Xor, &[1.0, 2.0, 3.0, 4.0], &mut b).unwrap();
    let mut out = vec![9.0];
    assert!(decode_floats(&b[..b.len() - 1], &mut out).is_err());
    assert_eq!(out, vec![9.0]);
}

#[test]
fn size_guarantees() {
    let ts: Vec<i64> = (0..512).map(|i| 1_700_000_000_000 + i * 2000).collect();
    let mut b = Vec::new();
    encode_timestamps(&ts, &mut b);
    assert!(b.len() < 16, "constant-step timestamps: {} bytes", b.len());
    let mut b = Vec::new();
    encode_floats(&[123.456; 512], &mut b);
    assert!(b.len() <= 12, "equal values: {} bytes", b.len());
}

#[test]
fn empty_columns() {
    let mut b = Vec::new();
    encode_timestamps(&[], &mut b);
    encode_floats(&[], &mut b);
    for codec in [
        FloatCodec::Decimal,
        FloatCodec::IntDelta,
        FloatCodec::Xor,
        FloatCodec::BitDelta,
    ] {
        encode_floats_with(codec, &[], &mut b).unwrap();
    }
    let mut ts = Vec::new();
    let mut fs = Vec::new();
    let mut pos = decode_timestamps(&b, &mut ts).unwrap();
    for _ in 0..5 {
        pos += decode_floats(&b[pos..], &mut fs).unwrap();
    }
    assert_eq!(pos, b.len());
    assert!(ts.is_empty() && fs.is_empty());
}

proptest! {
    #[test]
    fn concatenated_blocks_decode_in_sequence(chunks in proptest::collection::vec((timestamps(), floats()), 1..4)) {
        let mut buf = Vec::new();
        for (ts, vs) in &chunks {
            encode_timestamps(ts, &mut buf);
            encode_floats(vs, &mut buf);
        }
        let mut pos = 0;
        for (ts, vs) in &chunks {
            let mut got_ts = Vec::new();
            let mut got_vs = Vec::new();
            pos += decode_timestamps(&buf[pos..], &mut got_ts).unwrap();
            pos += decode_floats(&buf[pos..], &mut got_vs).unwrap();
            prop_assert_eq!(&got_ts, ts);
            prop_assert_eq!(got_vs.iter().map(|f| f.to_bits()).collect::<Vec<_>>(), vs.iter().map(|f| f.to_bits()).collect::<Vec<_>>());
        }
        prop_assert_eq!(pos, buf.len());
    }

    #[test]
    fn random_bit_flips_never_panic(values in floats(), ts in timestamps(), flips in proptest::collection::vec(any::<usize>(), 1..8)) {
        let mut blocks = Vec::new();
        for codec in [FloatCodec::Constant, FloatCodec::Decimal, FloatCodec::IntDelta, FloatCodec::Xor, FloatCodec::BitDelta] {
            let mut b = Vec::new();
            if encode_floats_with(codec, &values, &mut b).is_some() {
                blocks.push(b);
            }
        }
        for codec in [TimestampCodec::ConstantStep, TimestampCodec::DeltaOfDelta, TimestampCodec::Packed] {
            let mut b = Vec::new();
            if encode_timestamps_with(codec, &ts, &mut b).is_some() {
                blocks.push(b);
            }
        }
        for mut b in blocks {
            for &f in &flips {
                let bit = f % (b.len() * 8);
                b[bit / 8] ^= 1 << (bit % 8);
            }
            let _ = decode_any(&b);
        }
    }

    #[test]
    fn garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), id in 0u8..16) {
        if let Some(first) = bytes.first_mut() {
            *first = 0x10 | id; // get past the version check most of the time
        }
        let _ = decode_any(&bytes);
    }
}

/// Blocks written by format version 1 (before sparse packer blocks and BitDelta),
/// checked in as bytes: current decoders must keep reading them.
#[test]
fn version_1_blocks_still_decode() {
    // ConstantStep: start 1_700_000_000_000, step 10_000, 4 rows.
    let ts_v1 = [
        0x11, 0x04, 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, 0xa0, 0x9c, 0x01,
    ];
    let mut ts = Vec::new();
    assert_eq!(decode_timestamps(&ts_v1, &mut ts).unwrap(), ts_v1.len());
    assert_eq!(
        ts,
        [
            1_700_000_000_000,
            1_700_000_010_000,
            1_700_000_020_000,
            1_700_000_030_000
        ]
    );
    // IntDelta, 3 rows [5, 6, 8]: order 1, head zvarint 5, one dense block of width 2
    // and base 1 packing residuals [0, 1].
    let int_v1 = [0x1A, 0x03, 0x01, 0x0a, 0x02, 0x02, 0b0000_0100];
    let mut fs = Vec::new();
    assert_eq!(decode_floats(&int_v1, &mut fs).unwrap(), int_v1.len());
    assert_eq!(fs, [5.0, 6.0, 8.0]);
    // Xor, 2 rows [1.0, 1.0]: 64 bits of 1.0 then a '0' control bit.
    let xor_v1 = [0x1B, 0x02, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x00];
    let mut fs = Vec::new();
    assert_eq!(decode_floats(&xor_v1, &mut fs).unwrap(), xor_v1.len());
    assert_eq!(fs, [1.0, 1.0]);
}

//! Float column dispatch: the Constant, IntDelta and BitDelta codecs, the forced-codec
//! entry point and the auto-selection that keeps the smallest encoding.

use super::{CodecError, FloatCodec, decimal, intpack, reserve, varint, write_header, xor};

/// Integer view of a float that is exactly an integer; `None` for fractions, NaN, inf
/// and -0.0 (whose integer would decode as +0.0).
#[inline]
fn as_int(v: f64) -> Option<i64> {
    let m = v as i64;
    ((m as f64).to_bits() == v.to_bits()).then_some(m)
}

/// Order-preserving map of a float's bits to an i64: non-negative floats keep their
/// bits, negative ones have their 63 low bits flipped, so that `a < b` as floats means
/// `ordered(a) < ordered(b)` and neighbouring values are close integers. It is its own
/// inverse and a bijection on all 2^64 patterns, so NaN payloads survive.
#[inline]
pub(super) fn ordered(bits: u64) -> i64 {
    let s = bits as i64;
    if s < 0 { s ^ i64::MAX } else { s }
}

fn is_constant(values: &[f64]) -> bool {
    let first = values.first().map(|v| v.to_bits());
    values.iter().all(|v| Some(v.to_bits()) == first)
}

pub(super) fn encode_with(codec: FloatCodec, values: &[f64], out: &mut Vec<u8>) -> Option<()> {
    match codec {
        FloatCodec::Constant => {
            if !is_constant(values) {
                return None;
            }
            write_header(out, codec.id(), values.len());
            if let Some(first) = values.first() {
                out.extend_from_slice(&first.to_bits().to_le_bytes());
            }
        }
        FloatCodec::IntDelta => {
            let ints = values
                .iter()
                .map(|&v| as_int(v))
                .collect::<Option<Vec<i64>>>()?;
            write_header(out, codec.id(), values.len());
            intpack::encode(&ints, out);
        }
        FloatCodec::Decimal => decimal::encode(values, out)?,
        FloatCodec::Xor => xor::encode(values, out),
        FloatCodec::BitDelta => {
            let ints: Vec<i64> = values.iter().map(|v| ordered(v.to_bits())).collect();
            write_header(out, codec.id(), values.len());
            intpack::encode(&ints, out);
        }
    }
    Some(())
}

pub(super) fn encode_auto(values: &[f64], out: &mut Vec<u8>) -> FloatCodec {
    let start = out.len();
    let mut best = FloatCodec::Constant;
    if encode_with(FloatCodec::Constant, values, out).is_none() {
        // Xor of a constant column is never smaller than Constant, so it only runs here.
        xor::encode(values, out);
        best = FloatCodec::Xor;
    }
    // BitDelta wins on full-precision walks (values that move by small amounts
    // relative to their magnitude), and on a lone tiny value even against Constant.
    let mut candidate = Vec::new();
    encode_with(FloatCodec::BitDelta, values, &mut candidate);
    if candidate.len() < out.len() - start {
        out.truncate(start);
        out.extend_from_slice(&candidate);
        best = FloatCodec::BitDelta;
    }
    // All-integer blocks skip Decimal: its exponent would be 0 and it would only add
    // the exponent and exception-count bytes to the same packed integers. A constant
    // block still tries it because a few small integers can pack below 8 bytes.
    let numeric = if values.iter().all(|&v| as_int(v).is_some()) {
        FloatCodec::IntDelta
    } else {
        FloatCodec::Decimal
    };
    candidate.clear();
    if encode_with(numeric, values, &mut candidate).is_some() && candidate.len() < out.len() - start
    {
        out.truncate(start);
        out.extend_from_slice(&candidate);
        best = numeric;
    }
    best
}

/// Decodes a float block whose header (codec id and count) has been read.
pub(super) fn decode_body(
    codec: FloatCodec,
    buf: &[u8],
    mut pos: usize,
    n: usize,
    out: &mut Vec<f64>,
) -> Result<usize, CodecError> {
    match codec {
        FloatCodec::Constant => {
            if n == 0 {
                return Ok(pos);
            }
            let raw = u64::from_le_bytes(varint::read_bytes::<8>(buf, &mut pos, "constant value")?);
            // Legitimately expands: 11 bytes may declare u32::MAX rows.
            reserve(out, n, pos)?;
            out.resize(out.len() + n, f64::from_bits(raw));
            Ok(pos)
        }
        FloatCodec::IntDelta => {
            if n > intpack::max_values(buf.len() - pos) {
                return Err(CodecError::truncated(pos, "integers (count exceeds data)"));
            }
            reserve(out, n, pos)?;
            intpack::decode(buf, pos, n, |ints| {
                out.extend(ints.iter().map(|&m| m as f64))
            })
        }
        FloatCodec::Decimal => decimal::decode_body(buf, pos, n, out),
        FloatCodec::Xor => xor::decode_body(buf, pos, n, out),
        FloatCodec::BitDelta => {
            if n > intpack::max_values(buf.len() - pos) {
                return Err(CodecError::truncated(
                    pos,
                    "float bits (count exceeds data)",
                ));
            }
            reserve(out, n, pos)?;
            intpack::decode(buf, pos, n, |ints| {
                out.extend(
                    ints.iter()
                        .map(|&o| f64::from_bits(ordered(o as u64) as u64)),
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{decode_floats, encode_floats, encode_floats_with, tests::floats};
    use super::*;
    use proptest::prelude::*;

    const ALL: [FloatCodec; 5] = [
        FloatCodec::Constant,
        FloatCodec::Decimal,
        FloatCodec::IntDelta,
        FloatCodec::Xor,
        FloatCodec::BitDelta,
    ];

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    proptest! {
        #[test]
        fn auto_is_smallest_and_exact(values in floats()) {
            let mut auto = Vec::new();
            let chosen = encode_floats(&values, &mut auto);
            let mut got = Vec::new();
            prop_assert_eq!(decode_floats(&auto, &mut got).unwrap(), auto.len());
            prop_assert_eq!(bits(&got), bits(&values));
            for codec in ALL {
                let mut forced = Vec::new();
                if encode_floats_with(codec, &values, &mut forced).is_some() {
                    let mut got = vec![1.0];
                    prop_assert_eq!(decode_floats(&forced, &mut got).unwrap(), forced.len());
                    prop_assert_eq!(bits(&got[1..]), bits(&values));
                    prop_assert!(auto.len() <= forced.len(), "{:?} beat {:?}", codec, chosen);
                }
            }
        }

        #[test]
        fn int_delta_applies_to_integers(ints in proptest::collection::vec(-(1i64 << 53)..(1i64 << 53), 0..600)) {
            let values: Vec<f64> = ints.iter().map(|&i| i as f64).collect();
            let mut buf = Vec::new();
            prop_assert!(encode_floats_with(FloatCodec::IntDelta, &values, &mut buf).is_some());
            let mut got = Vec::new();
            decode_floats(&buf, &mut got).unwrap();
            prop_assert_eq!(bits(&got), bits(&values));
        }
    }

    #[test]
    fn ordered_is_monotone_and_an_involution() {
        let mut v = [
            f64::NEG_INFINITY,
            f64::MIN,
            -1.5,
            -f64::MIN_POSITIVE,
            -f64::from_bits(1),
            -0.0,
            0.0,
            f64::from_bits(1),
            1.0,
            1.0000000000000002,
            f64::MAX,
            f64::INFINITY,
        ];
        v.sort_by(f64::total_cmp);
        let o: Vec<i64> = v.iter().map(|x| ordered(x.to_bits())).collect();
        assert!(o.windows(2).all(|w| w[0] < w[1]), "{o:?}");
        for bits in [
            0u64,
            1,
            u64::MAX,
            1 << 63,
            0x7ff0_0000_0000_0002,
            0xfff8_0000_0000_0001,
        ] {
            assert_eq!(ordered(ordered(bits) as u64) as u64, bits);
        }
    }

    #[test]
    fn bit_delta_beats_xor_on_full_precision_walks() {
        let mut x = 50.0f64;
        let values: Vec<f64> = (0..512u64)
            .map(|i| {
                // A deterministic walk with full-precision steps in (-1, 1).
                let r = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
                x += r * 2.0 - 1.0;
                x
            })
            .collect();
        let mut xor = Vec::new();
        encode_floats_with(FloatCodec::Xor, &values, &mut xor).unwrap();
        let mut auto = Vec::new();
        assert_eq!(encode_floats(&values, &mut auto), FloatCodec::BitDelta);
        assert!(
            auto.len() < xor.len() * 95 / 100,
            "{} vs {}",
            auto.len(),
            xor.len()
        );
    }

    #[test]
    fn applicability() {
        assert!(as_int(-0.0).is_none());
        assert!(as_int(f64::NAN).is_none());
        assert!(as_int(f64::INFINITY).is_none());
        assert!(as_int(0.5).is_none());
        assert_eq!(as_int(-3.0), Some(-3));
        assert_eq!(as_int(9.007_199_254_740_992e15), Some(1 << 53));
        let mut buf = Vec::new();
        assert!(encode_floats_with(FloatCodec::Constant, &[1.0, 2.0], &mut buf).is_none());
        assert!(buf.is_empty(), "a refused codec writes nothing");
        assert!(encode_floats_with(FloatCodec::IntDelta, &[1.0, 2.5], &mut buf).is_none());
        assert!(buf.is_empty());
    }

    #[test]
    fn equal_values_are_tiny() {
        for v in [
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0002),
            42.5,
        ] {
            let mut buf = Vec::new();
            assert_eq!(encode_floats(&[v; 512], &mut buf), FloatCodec::Constant);
            assert!(buf.len() <= 12, "{} bytes", buf.len());
        }
    }
}

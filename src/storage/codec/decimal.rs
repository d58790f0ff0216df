//! Decimal float codec (in the spirit of ALP): values that are short decimals, such as
//! 12.34, are stored as integers `m` with one block-wide exponent `e`, `v == m / 10^e`
//! bit-exactly. The few values that are not (NaN, inf, -0.0, huge, long fractions) go
//! to an exception list. The integers then go through the shared packer.

use super::{CodecError, FloatCodec, intpack, reserve, varint, write_header};

/// Largest exponent tried: 10^18 is the largest power of ten below 2^63.
pub(super) const MAX_EXPONENT: usize = 18;

/// Powers of ten, each exactly representable as f64 (true up to 10^22).
const POW10: [f64; MAX_EXPONENT + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// Bytes an exception costs at least: 1-byte position gap + 8 raw bytes.
const MIN_EXCEPTION_BYTES: usize = 9;

/// The integer representing `v` at exponent `e`, if decoding it gives back `v`'s exact
/// bits. This is the decoder's computation run forwards, so a pass is a guarantee.
#[inline]
fn digits(v: f64, e: usize) -> Option<i64> {
    let p = POW10[e];
    let m = (v * p).round() as i64; // saturating; the bit check below rejects overflow
    ((m as f64 / p).to_bits() == v.to_bits()).then_some(m)
}

/// Smallest-ish exponent for `v`, trying the previous value's exponent first because
/// neighbours usually share one.
fn exponent(v: f64, guess: usize) -> Option<usize> {
    // Cheap rejection of what can never pass: NaN, inf and out-of-i64 magnitudes.
    if v.is_nan() || v.abs() >= 9.2e18 {
        return None;
    }
    if digits(v, guess).is_some() {
        let mut e = guess;
        while e > 0 && digits(v, e - 1).is_some() {
            e -= 1;
        }
        return Some(e);
    }
    (0..=MAX_EXPONENT).find(|&e| e != guess && digits(v, e).is_some())
}

/// Most exceptions a block may carry before the codec is considered inapplicable.
fn max_exceptions(n: usize) -> usize {
    n / 8
}

struct Plan {
    exponent: usize,
    ints: Vec<i64>,
    exceptions: Vec<(usize, u64)>,
}

/// Builds the integers at exponent `e`; fails if too many values would be exceptions.
fn plan(values: &[f64], e: usize) -> Option<Plan> {
    let mut ints = Vec::with_capacity(values.len());
    let mut exceptions = Vec::new();
    let (mut last, mut step) = (0i64, 0i64);
    for (i, &v) in values.iter().enumerate() {
        // An exception's filler continues the trend so (double) deltas stay small.
        let m = match digits(v, e) {
            Some(m) => m,
            None => {
                exceptions.push((i, v.to_bits()));
                if exceptions.len() > max_exceptions(values.len()) {
                    return None;
                }
                last.wrapping_add(step)
            }
        };
        if i > 0 {
            step = m.wrapping_sub(last);
        }
        last = m;
        ints.push(m);
    }
    Some(Plan {
        exponent: e,
        ints,
        exceptions,
    })
}

fn write(plan: &Plan, n: usize, out: &mut Vec<u8>) {
    write_header(out, FloatCodec::Decimal.id(), n);
    out.push(plan.exponent as u8);
    varint::write_u64(out, plan.exceptions.len() as u64);
    let mut next = 0;
    for &(pos, raw) in &plan.exceptions {
        varint::write_u64(out, (pos - next) as u64);
        out.extend_from_slice(&raw.to_le_bytes());
        next = pos + 1;
    }
    intpack::encode(&plan.ints, out);
}

pub(super) fn encode(values: &[f64], out: &mut Vec<u8>) -> Option<()> {
    let n = values.len();
    let mut hist = [0usize; MAX_EXPONENT + 1];
    let mut hopeless = 0;
    let mut guess = 0;
    for &v in values {
        match exponent(v, guess) {
            Some(e) => {
                hist[e] += 1;
                guess = e;
            }
            None => {
                hopeless += 1;
                if hopeless > max_exceptions(n) {
                    return None;
                }
            }
        }
    }
    // Two candidates: the exponent that covers every value that has one, and the
    // smallest one that leaves few enough exceptions. A single long fraction should not
    // force 10^15 on every other value if listing it as an exception is cheaper.
    let full = hist.iter().rposition(|&c| c > 0).unwrap_or(0);
    let mut above = hopeless + hist.iter().sum::<usize>();
    let mut cut = full;
    for (e, &c) in hist.iter().enumerate() {
        above -= c;
        if above <= max_exceptions(n) {
            cut = e;
            break;
        }
    }
    let mut best: Option<Vec<u8>> = None;
    for e in if cut < full {
        vec![cut, full]
    } else {
        vec![full]
    } {
        let Some(p) = plan(values, e) else { continue };
        let mut buf = Vec::new();
        write(&p, n, &mut buf);
        if best.as_ref().is_none_or(|b| buf.len() < b.len()) {
            best = Some(buf);
        }
    }
    out.extend_from_slice(&best?);
    Some(())
}

pub(super) fn decode_body(
    buf: &[u8],
    mut pos: usize,
    n: usize,
    out: &mut Vec<f64>,
) -> Result<usize, CodecError> {
    let e_at = pos;
    let [e] = varint::read_bytes::<1>(buf, &mut pos, "decimal exponent")?;
    let p = *POW10
        .get(usize::from(e))
        .ok_or(CodecError::corrupt(e_at, "decimal exponent"))?;
    let count_at = pos;
    let count = varint::read_u64(buf, &mut pos, "exception count")?;
    if count > n as u64 || count as usize > (buf.len() - pos) / MIN_EXCEPTION_BYTES {
        return Err(CodecError::corrupt(count_at, "exception count"));
    }
    let mut exceptions = Vec::with_capacity(count as usize);
    let mut next = 0usize;
    for _ in 0..count {
        let gap_at = pos;
        let gap = varint::read_u64(buf, &mut pos, "exception position")?;
        let at = usize::try_from(gap)
            .ok()
            .and_then(|g| next.checked_add(g))
            .filter(|&at| at < n)
            .ok_or(CodecError::corrupt(gap_at, "exception position"))?;
        let raw = u64::from_le_bytes(varint::read_bytes::<8>(buf, &mut pos, "exception value")?);
        exceptions.push((at, raw));
        next = at + 1;
    }
    if n > intpack::max_values(buf.len() - pos) {
        return Err(CodecError::truncated(
            pos,
            "decimal digits (count exceeds data)",
        ));
    }
    reserve(out, n, pos)?;
    let start = out.len();
    let end = intpack::decode(buf, pos, n, |ints| {
        out.extend(ints.iter().map(|&m| m as f64 / p))
    })?;
    for (at, raw) in exceptions {
        if let Some(slot) = out.get_mut(start + at) {
            *slot = f64::from_bits(raw);
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::super::{decode_floats, encode_floats_with, tests::floats};
    use super::*;
    use proptest::prelude::*;

    fn round_trip(values: &[f64]) -> Option<usize> {
        let mut buf = Vec::new();
        encode_floats_with(FloatCodec::Decimal, values, &mut buf)?;
        let mut got = Vec::new();
        assert_eq!(decode_floats(&buf, &mut got).unwrap(), buf.len());
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(values));
        Some(buf.len())
    }

    proptest! {
        #[test]
        fn round_trips_when_applicable(values in floats()) {
            round_trip(&values);
        }

        #[test]
        fn decimals_always_apply(ints in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 1..600), k in 0i32..6) {
            let values: Vec<f64> = ints.iter().map(|&i| i as f64 / 10f64.powi(k)).collect();
            prop_assert!(round_trip(&values).is_some());
        }
    }

    #[test]
    fn picks_small_exponent_and_rejects_negative_zero() {
        assert_eq!(exponent(12.34, 0), Some(2));
        assert_eq!(exponent(12.34, 5), Some(2));
        assert_eq!(exponent(7.0, 3), Some(0));
        assert_eq!(exponent(-0.0, 0), None);
        assert_eq!(exponent(f64::NAN, 0), None);
        assert_eq!(exponent(f64::INFINITY, 0), None);
        assert_eq!(exponent(0.1, 0), Some(1));
    }

    #[test]
    fn exceptions_are_patched() {
        let mut values: Vec<f64> = (0..64).map(|i| f64::from(i) * 0.25).collect();
        values[3] = f64::from_bits(0x7ff0_0000_0000_0002);
        values[40] = -0.0;
        values[63] = f64::INFINITY;
        let size = round_trip(&values).unwrap();
        assert!(size < 64, "{size}");
    }

    #[test]
    fn too_many_exceptions_is_inapplicable() {
        let values = [f64::NAN; 16];
        assert_eq!(round_trip(&values), None);
    }

    #[test]
    fn long_fraction_becomes_exception() {
        let mut values: Vec<f64> = (0..100).map(|i| f64::from(i) / 10.0).collect();
        values[50] = std::f64::consts::PI;
        let mut buf = Vec::new();
        encode(&values, &mut buf).unwrap();
        assert_eq!(buf[2], 1, "exponent stays 1");
        round_trip(&values).unwrap();
    }
}

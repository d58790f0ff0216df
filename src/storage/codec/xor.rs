//! Gorilla XOR float codec: each value is XORed with its predecessor and only the
//! "meaningful" bits between the leading and trailing zeros are stored. Always
//! applicable, so it is the fallback for arbitrary bit patterns.

use super::bits::{BitReader, BitWriter};
use super::{CodecError, FloatCodec, reserve, write_header};

/// Bits of a '11' window header: 6 bits leading zeros + 6 bits (length - 1).
const WINDOW_HEADER_BITS: u32 = 12;

pub(super) fn encode(values: &[f64], out: &mut Vec<u8>) {
    write_header(out, FloatCodec::Xor.id(), values.len());
    let Some((first, rest)) = values.split_first() else {
        return;
    };
    let mut w = BitWriter::new(out);
    let mut prev = first.to_bits();
    w.write(prev, 64);
    // Current window as (leading zeros, trailing zeros); None until the first '11'.
    let mut window: Option<(u32, u32)> = None;
    for v in rest {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.write(0, 1);
            continue;
        }
        let (lz, tz) = (x.leading_zeros(), x.trailing_zeros());
        let len = 64 - lz - tz;
        if let Some((wl, wt)) = window {
            let wlen = 64 - wl - wt;
            // Reuse only when it is also cheaper than announcing a tighter window.
            if lz >= wl && tz >= wt && wlen <= len + WINDOW_HEADER_BITS {
                w.write(0b10, 2);
                w.write(x >> wt, wlen);
                continue;
            }
        }
        w.write((0b11 << 12) | (u64::from(lz) << 6) | u64::from(len - 1), 14);
        w.write(x >> tz, len);
        window = Some((lz, tz));
    }
    w.finish();
}

/// Decodes an XOR block body that starts at `pos` and holds `n` values.
pub(super) fn decode_body(
    buf: &[u8],
    pos: usize,
    n: usize,
    out: &mut Vec<f64>,
) -> Result<usize, CodecError> {
    if n == 0 {
        return Ok(pos);
    }
    // 64 bits for the first value, at least one control bit for each other one.
    let bits = (buf.len() - pos).saturating_mul(8);
    if bits < 64 || n - 1 > bits - 64 {
        return Err(CodecError::truncated(
            pos,
            "xor stream (count exceeds data)",
        ));
    }
    reserve(out, n, pos)?;
    let mut r = BitReader::new(buf, pos);
    let mut prev = r.read_long(64, "first value")?;
    out.push(f64::from_bits(prev));
    let (mut shift, mut len) = (0u32, 0u32); // len 0: no window yet
    for _ in 1..n {
        r.refill();
        let head = r.peek();
        if head >> 63 == 0 {
            r.consume(1, "xor control bit")?;
        } else if head >> 62 == 0b10 {
            r.consume(2, "xor control bits")?;
            if len == 0 {
                return Err(CodecError::corrupt(
                    r.byte_pos(),
                    "xor window reused before defined",
                ));
            }
            prev ^= r.read_long(len, "xor meaningful bits")? << shift;
        } else {
            r.consume(2, "xor control bits")?;
            let header = r.read(WINDOW_HEADER_BITS, "xor window header")? as u32;
            let lead = header >> 6;
            len = (header & 63) + 1;
            if lead + len > 64 {
                return Err(CodecError::corrupt(
                    r.byte_pos(),
                    "xor window beyond 64 bits",
                ));
            }
            shift = 64 - lead - len;
            prev ^= r.read_long(len, "xor meaningful bits")? << shift;
        }
        out.push(f64::from_bits(prev));
    }
    Ok(r.end())
}

#[cfg(test)]
mod tests {
    use super::super::tests::floats;
    use super::*;
    use proptest::prelude::*;

    fn round_trip(values: &[f64]) -> usize {
        let mut buf = Vec::new();
        encode(values, &mut buf);
        let mut got = Vec::new();
        assert_eq!(
            super::super::decode_floats(&buf, &mut got).unwrap(),
            buf.len()
        );
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(values));
        buf.len()
    }

    proptest! {
        #[test]
        fn round_trips(values in floats()) {
            round_trip(&values);
        }
    }

    #[test]
    fn repeated_value_costs_one_bit() {
        let size = round_trip(&[1.5; 513]);
        assert_eq!(size, 3 + 8 + 512 / 8);
    }

    #[test]
    fn full_width_window() {
        // XOR of these two has both the top and bottom bit set: a 64-bit window.
        let a = f64::from_bits(0x8000_0000_0000_0001);
        round_trip(&[0.0, a, 0.0, a, f64::NAN, -0.0]);
    }
}

//! Gorilla XOR float codec: each value is XORed with its predecessor and only the
//! "meaningful" bits between the leading and trailing zeros are stored. Always
//! applicable, so it is the fallback for arbitrary bit patterns.

use super::bits::{BitReader, BitWriter};
use super::{CodecError, FloatCodec, reserve, write_header};

/// Bits of a '11' window header: 6 bits leading zeros + 6 bits (length - 1).
pub(crate) const WINDOW_HEADER_BITS: u32 = 12;

/// The XOR window an encoder is in, and how it writes one value: shared by sealed
/// chunks and open heads (`storage::open_head`), which store the same bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct XorWindow {
    /// Leading zeros of the window.
    lead: u8,
    /// Width of the window; 0 before the first '11'.
    len: u8,
}

impl XorWindow {
    /// Writes `x`, a value XORed with its predecessor, through `put(bits, n)` (n in
    /// 1..=64): `0` when zero, `10` + the window's bits when `x` fits the window and
    /// the window is not much wider than `x` needs, else `11` + a new window header +
    /// the meaningful bits, which become the window.
    // Always inlined: it sits in the per-value loops of sealing and of head appends,
    // where a call per value cost a sixth of single-threaded ingest.
    #[inline(always)]
    pub(crate) fn put(&mut self, x: u64, mut put: impl FnMut(u64, u32)) {
        if x == 0 {
            put(0, 1);
            return;
        }
        let (lz, tz) = (x.leading_zeros(), x.trailing_zeros());
        let len = 64 - lz - tz;
        let (wl, wlen) = (u32::from(self.lead), u32::from(self.len));
        // Reuse only when it is also cheaper than announcing a tighter window.
        if wlen > 0 && lz >= wl && tz >= 64 - wl - wlen && wlen <= len + WINDOW_HEADER_BITS {
            put(0b10, 2);
            put(x >> (64 - wl - wlen), wlen);
            return;
        }
        put((0b11 << 12) | (u64::from(lz) << 6) | u64::from(len - 1), 14);
        put(x >> tz, len);
        // lz < 64 and 1 <= len <= 64: both fit a byte.
        (self.lead, self.len) = (lz as u8, len as u8);
    }
}

pub(super) fn encode(values: &[f64], out: &mut Vec<u8>) {
    write_header(out, FloatCodec::Xor.id(), values.len());
    let Some((first, rest)) = values.split_first() else {
        return;
    };
    let mut w = BitWriter::new(out);
    let mut prev = first.to_bits();
    w.write(prev, 64);
    let mut window = XorWindow::default();
    for v in rest {
        let bits = v.to_bits();
        window.put(bits ^ prev, |v, n| w.write(v, n));
        prev = bits;
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

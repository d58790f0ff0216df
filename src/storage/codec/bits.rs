//! MSB-first bit streams for the variable-width codecs (delta-of-delta timestamps, XOR).
//!
//! Bit `k` of a stream is bit `7 - k % 8` of byte `k / 8`: the first bit written is the
//! most significant bit of the first byte. A stream ends with zero padding up to the
//! next byte boundary.

use super::CodecError;

/// Accumulates bits in a u64 and flushes whole words, so a write is a couple of shifts.
pub(super) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    /// Bits used in `acc`, counted from the MSB; always < 64 between calls.
    used: u32,
}

impl<'a> BitWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            acc: 0,
            used: 0,
        }
    }

    /// Appends the low `n` bits of `v` (n <= 64), most significant first.
    #[inline]
    pub(super) fn write(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        let free = 64 - self.used;
        if n < free {
            self.acc |= v << (free - n);
            self.used += n;
        } else {
            // Fill the word, flush it, keep the spill-over (n - free < 64 bits).
            let spill = n - free;
            self.acc |= if spill == 0 { v } else { v >> spill };
            self.out.extend_from_slice(&self.acc.to_be_bytes());
            self.acc = if spill == 0 { 0 } else { v << (64 - spill) };
            self.used = spill;
        }
    }

    /// Flushes the partial word, padding the last byte with zero bits.
    pub(super) fn finish(self) {
        let bytes = self.used.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_be_bytes()[..bytes]);
    }
}

/// Reads an MSB-first stream starting at a byte offset of `buf`.
///
/// Holds up to 64 bits in `acc` (MSB-aligned). Bits below the `avail` valid ones are
/// either zero or already the correct upcoming stream bits, which lets `refill` OR in a
/// whole 8-byte load without masking.
pub(super) struct BitReader<'a> {
    buf: &'a [u8],
    /// Next byte of `buf` not yet counted in `avail`.
    next: usize,
    acc: u64,
    avail: u32,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(buf: &'a [u8], start: usize) -> Self {
        BitReader {
            buf,
            next: start,
            acc: 0,
            avail: 0,
        }
    }

    /// Tops `acc` up to at least 57 valid bits, or to every remaining bit near the end.
    #[inline]
    pub(super) fn refill(&mut self) {
        if self.avail > 56 {
            return;
        }
        if let Some(word) = self.buf.get(self.next..).and_then(|r| r.first_chunk::<8>()) {
            self.acc |= u64::from_be_bytes(*word) >> self.avail;
            let bytes = (63 - self.avail) >> 3;
            self.next += bytes as usize;
            self.avail += bytes << 3;
        } else {
            self.refill_slow();
        }
    }

    #[cold]
    fn refill_slow(&mut self) {
        while self.avail <= 56 {
            let Some(&byte) = self.buf.get(self.next) else {
                return;
            };
            self.acc |= u64::from(byte) << (56 - self.avail);
            self.avail += 8;
            self.next += 1;
        }
    }

    /// Position of the next unread bit, counted from the start of `buf`.
    #[inline]
    pub(super) fn bit_pos(&self) -> usize {
        self.next * 8 - self.avail as usize
    }

    /// Byte offset for error reports.
    #[inline]
    pub(super) fn byte_pos(&self) -> usize {
        self.bit_pos() / 8
    }

    /// Bytes of `buf` covered once reading stops here (the padding of the last byte included).
    pub(super) fn end(&self) -> usize {
        self.bit_pos().div_ceil(8)
    }

    /// The next 64 stream bits, zero past the end of the input. Call after `refill`;
    /// only the first `avail` bits are guaranteed to be real.
    #[inline]
    pub(super) fn peek(&self) -> u64 {
        self.acc
    }

    /// Drops `n` (<= avail, < 64) bits the caller has already looked at via `peek`.
    #[inline]
    pub(super) fn consume(&mut self, n: u32, what: &'static str) -> Result<(), CodecError> {
        if n > self.avail {
            return Err(CodecError::truncated(self.byte_pos(), what));
        }
        self.acc = self.acc.checked_shl(n).unwrap_or(0);
        self.avail -= n;
        Ok(())
    }

    /// Reads `n` <= 56 bits as an unsigned number.
    #[inline]
    pub(super) fn read(&mut self, n: u32, what: &'static str) -> Result<u64, CodecError> {
        debug_assert!(n <= 56);
        if n > self.avail {
            self.refill();
            if n > self.avail {
                return Err(CodecError::truncated(self.byte_pos(), what));
            }
        }
        if n == 0 {
            return Ok(0);
        }
        let v = self.acc >> (64 - n);
        self.acc <<= n;
        self.avail -= n;
        Ok(v)
    }

    /// Reads `n` <= 64 bits.
    #[inline]
    pub(super) fn read_long(&mut self, n: u32, what: &'static str) -> Result<u64, CodecError> {
        if n <= 56 {
            self.read(n, what)
        } else {
            let hi = self.read(n - 32, what)?;
            let lo = self.read(32, what)?;
            Ok((hi << 32) | lo)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mask(v: u64, n: u32) -> u64 {
        if n == 64 { v } else { v & ((1u64 << n) - 1) }
    }

    proptest! {
        #[test]
        fn round_trip(items in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..200), lead in 0usize..3) {
            let mut out = vec![0xAB; lead];
            let mut w = BitWriter::new(&mut out);
            for &(v, n) in &items {
                w.write(v, n);
            }
            w.finish();
            let total: usize = items.iter().map(|&(_, n)| n as usize).sum();
            prop_assert_eq!(out.len(), lead + total.div_ceil(8));
            let mut r = BitReader::new(&out, lead);
            for &(v, n) in &items {
                prop_assert_eq!(r.read_long(n, "x").unwrap(), mask(v, n));
            }
            prop_assert_eq!(r.end(), out.len());
            prop_assert_eq!(r.bit_pos(), lead * 8 + total);
            // Past the end (beyond the zero padding) reads must fail.
            let pad = (out.len() * 8 - r.bit_pos()) as u32;
            prop_assert!(r.read_long(pad + 1, "x").is_err());
        }
    }

    #[test]
    fn msb_first_layout() {
        let mut out = Vec::new();
        let mut w = BitWriter::new(&mut out);
        w.write(1, 1);
        w.write(0b01, 2);
        w.write(0xF, 4);
        w.finish();
        assert_eq!(out, vec![0b1011_1110]);
        let mut r = BitReader::new(&out, 0);
        assert_eq!(r.read(1, "b").unwrap(), 1);
        assert_eq!(r.read(2, "b").unwrap(), 1);
        assert_eq!(r.read(5, "b").unwrap(), 0b11110);
        assert!(r.read(1, "b").is_err());
    }
}

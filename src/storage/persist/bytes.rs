//! Little-endian byte writing and bounds-checked reading for the WAL and checkpoint
//! formats. Every read names what it was reading and at which offset, so a corrupt
//! file yields an error a person can act on.

use super::FormatError;

/// Appends fixed-width little-endian values and length-prefixed strings.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Bit-exact: NaN payloads survive.
    pub(crate) fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }

    /// A `u32` length then the bytes.
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }

    pub(crate) fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    /// An unsigned LEB128 varint.
    pub(crate) fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A signed value as a zigzag varint (small magnitudes take one byte).
    pub(crate) fn zigzag(&mut self, v: i64) {
        self.var(((v << 1) ^ (v >> 63)) as u64);
    }
}

/// Reads what [`Writer`] wrote, failing with the offset instead of panicking.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the file, so errors name file offsets.
    base: u64,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: u64) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// File offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Checks that nothing follows the `last` thing read (a section's end).
    pub(crate) fn end(&self, last: &str) -> Result<(), FormatError> {
        if self.is_empty() {
            return Ok(());
        }
        Err(FormatError::Invalid {
            offset: self.offset(),
            message: format!("bytes after the last {last}"),
        })
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(FormatError::Truncated {
                offset: self.offset(),
                what,
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], FormatError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, FormatError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, FormatError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn f64(&mut self, what: &'static str) -> Result<f64, FormatError> {
        Ok(f64::from_bits(self.u64(what)?))
    }

    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], FormatError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    pub(crate) fn str(&mut self, what: &'static str) -> Result<&'a str, FormatError> {
        let offset = self.offset();
        let bytes = self.bytes(what)?;
        std::str::from_utf8(bytes).map_err(|_| FormatError::Invalid {
            offset,
            message: format!("{what} is not UTF-8"),
        })
    }

    /// An unsigned LEB128 varint of at most 10 bytes.
    pub(crate) fn var(&mut self, what: &'static str) -> Result<u64, FormatError> {
        let offset = self.offset();
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.u8(what)?;
            if shift == 63 && byte > 1 {
                break;
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(FormatError::Invalid {
            offset,
            message: format!("{what} is not a 64-bit varint"),
        })
    }

    /// A zigzag varint.
    pub(crate) fn zigzag(&mut self, what: &'static str) -> Result<i64, FormatError> {
        let v = self.var(what)?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A varint count of items that each take at least `min_item_bytes`, checked
    /// against the bytes left (see [`Reader::count`]).
    pub(crate) fn var_count(
        &mut self,
        min_item_bytes: usize,
        what: &'static str,
    ) -> Result<usize, FormatError> {
        let offset = self.offset();
        let n = self.var(what)?;
        self.fits(n, offset, min_item_bytes, what)
    }

    /// A count of items that each take at least `min_item_bytes`, checked against the
    /// bytes left so that a corrupt count cannot make us allocate gigabytes.
    pub(crate) fn count(
        &mut self,
        min_item_bytes: usize,
        what: &'static str,
    ) -> Result<usize, FormatError> {
        let offset = self.offset();
        let n = self.u32(what)?;
        self.fits(u64::from(n), offset, min_item_bytes, what)
    }

    /// `n` (read at `offset`) if that many items of `min_item_bytes` fit in the rest.
    fn fits(
        &self,
        n: u64,
        offset: u64,
        min_item_bytes: usize,
        what: &'static str,
    ) -> Result<usize, FormatError> {
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_item_bytes.max(1)) <= self.remaining() => Ok(n),
            _ => Err(FormatError::Invalid {
                offset,
                message: format!("{what} {n} exceeds the bytes left"),
            }),
        }
    }
}

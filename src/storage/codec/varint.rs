//! LEB128 varints and zigzag mapping: the byte-aligned framing used by every header.

use super::CodecError;

/// Longest LEB128 encoding of a u64.
pub(super) const MAX_VARINT_LEN: usize = 10;

/// Maps signed to unsigned so that small magnitudes of either sign stay small.
#[inline]
pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(super) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ ((u & 1) as i64).wrapping_neg()
}

/// Appends `v` as LEB128: 7 bits per byte, least significant group first, high bit set
/// on every byte but the last.
pub(super) fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn write_i64(out: &mut Vec<u8>, v: i64) {
    write_u64(out, zigzag(v));
}

/// Encoded length of `v` in bytes, used by the size estimators.
#[inline]
pub(super) fn len_u64(v: u64) -> usize {
    // 1 byte per started 7-bit group; v = 0 still takes one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[inline]
pub(super) fn len_i64(v: i64) -> usize {
    len_u64(zigzag(v))
}

/// Reads a LEB128 u64 at `*pos`, advancing it. Rejects encodings longer than 10 bytes
/// or whose 10th byte carries bits beyond 64.
pub(super) fn read_u64(buf: &[u8], pos: &mut usize, what: &'static str) -> Result<u64, CodecError> {
    let start = *pos;
    let mut value = 0u64;
    for i in 0..MAX_VARINT_LEN {
        let Some(&byte) = buf.get(start + i) else {
            return Err(CodecError::truncated(start + i, what));
        };
        if i == MAX_VARINT_LEN - 1 && byte > 1 {
            return Err(CodecError::corrupt(start, what));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *pos = start + i + 1;
            return Ok(value);
        }
    }
    Err(CodecError::corrupt(start, what))
}

pub(super) fn read_i64(buf: &[u8], pos: &mut usize, what: &'static str) -> Result<i64, CodecError> {
    read_u64(buf, pos, what).map(unzigzag)
}

/// Reads `N` raw bytes at `*pos`, advancing it.
pub(super) fn read_bytes<const N: usize>(
    buf: &[u8],
    pos: &mut usize,
    what: &'static str,
) -> Result<[u8; N], CodecError> {
    let bytes = buf
        .get(*pos..)
        .and_then(|rest| rest.first_chunk::<N>())
        .ok_or(CodecError::truncated(*pos, what))?;
    *pos += N;
    Ok(*bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn u64_round_trip(v in any::<u64>(), junk in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut buf = Vec::new();
            write_u64(&mut buf, v);
            prop_assert_eq!(buf.len(), len_u64(v));
            let len = buf.len();
            buf.extend_from_slice(&junk);
            let mut pos = 0;
            prop_assert_eq!(read_u64(&buf, &mut pos, "v").unwrap(), v);
            prop_assert_eq!(pos, len);
            for cut in 0..len {
                let mut pos = 0;
                prop_assert!(read_u64(&buf[..cut], &mut pos, "v").is_err());
            }
        }

        #[test]
        fn zigzag_round_trip(v in any::<i64>()) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
            prop_assert_eq!(len_i64(v), { let mut b = Vec::new(); write_i64(&mut b, v); b.len() });
        }
    }

    #[test]
    fn zigzag_small_values_stay_small() {
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn rejects_overlong_and_overflowing() {
        let mut pos = 0;
        assert!(read_u64(&[0xff; 11], &mut pos, "v").is_err());
        let mut pos = 0;
        let mut ten = vec![0xff; 9];
        ten.push(0x02);
        assert!(matches!(
            read_u64(&ten, &mut pos, "v"),
            Err(CodecError::Corrupt { .. })
        ));
        let mut pos = 0;
        ten[9] = 0x01;
        assert_eq!(read_u64(&ten, &mut pos, "v").unwrap(), u64::MAX);
    }
}

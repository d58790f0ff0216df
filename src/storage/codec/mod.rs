//! Bit-level column codecs for sealed chunks.
//!
//! A sealed chunk stores each column as one *block*: a self-describing byte string that
//! names its codec, format version and row count, so blocks can be concatenated and
//! decoded without outside metadata. Encoders append to a `Vec<u8>`; decoders read only
//! within the slice they are given, append to a `Vec`, and return the number of bytes
//! the block occupied. Every codec round-trips bit-exactly (NaN payloads, -0.0,
//! subnormals, any i64), and decoding never panics on any input.
//!
//! # Notation
//!
//! - **varint**: unsigned LEB128. 7 value bits per byte, least significant group
//!   first; bit 7 (0x80) is set on every byte except the last. At most 10 bytes; the
//!   10th byte may only be 0 or 1. Over-long encodings (e.g. `80 00`) are accepted.
//! - **zvarint**: a signed i64 `v` mapped by zigzag `z = (v << 1) ^ (v >> 63)` (0, -1,
//!   1, -2, ... become 0, 1, 2, 3, ...) then written as a varint.
//!   Inverse: `v = (z >> 1) ^ -(z & 1)`.
//! - **u64le**: 8 bytes, little-endian; floats are stored as their raw IEEE-754 bits.
//! - **bit stream** (DeltaOfDelta, Xor): MSB-first. Stream bit `k` is the bit
//!   `0x80 >> (k % 8)` of the stream's byte `k / 8`, and a field of `w` bits is written
//!   most significant bit first. The stream is padded to the next byte boundary
//!   (encoders write zeros, decoders ignore them); the block ends there.
//! - **packed** (integer packer): LSB-first. Value `i` of a packed run of width `w`
//!   occupies run bits `i*w .. i*w + w`, least significant bit first, where run bit `k`
//!   is the bit `1 << (k % 8)` of the run's byte `k / 8`.
//! - All integer arithmetic below is two's-complement wrapping (mod 2^64).
//!
//! # Block header
//!
//! | bytes  | field                                                             |
//! |--------|-------------------------------------------------------------------|
//! | 1      | `version << 4 \| codec_id`; the version is 2 in this format        |
//! | varint | `n`, the row count, at most `u32::MAX`                             |
//! | ...    | codec payload                                                     |
//!
//! | first byte | column     | codec                       |
//! |------------|------------|-----------------------------|
//! | `0x11`     | timestamps | [`TimestampCodec::ConstantStep`] |
//! | `0x12`     | timestamps | [`TimestampCodec::DeltaOfDelta`] |
//! | `0x13`     | timestamps | [`TimestampCodec::Packed`]  |
//! | `0x18`     | floats     | [`FloatCodec::Constant`]    |
//! | `0x19`     | floats     | [`FloatCodec::Decimal`]     |
//! | `0x1A`     | floats     | [`FloatCodec::IntDelta`]    |
//! | `0x1B`     | floats     | [`FloatCodec::Xor`]         |
//! | `0x2C`     | floats     | [`FloatCodec::BitDelta`]    |
//!
//! (First bytes shown for the version that introduced each codec; writers put the
//! current version, 2, in every block: `0x21`, ..., `0x2C`.)
//!
//! Versions: **1** had every codec above except BitDelta, and packer blocks were dense
//! only. **2** (current) adds BitDelta (id `0xC`) and sparse packer blocks. Decoders
//! read versions 1 and 2 alike (a version-1 block is a valid version-2 block with a
//! different nibble) and reject other versions ([`CodecError::UnsupportedVersion`]),
//! ids of the other column kind and unassigned ids ([`CodecError::UnknownCodec`]).
//!
//! # Timestamp payloads (`t[0..n]`, i64)
//!
//! **ConstantStep**: zvarint `t[0]` if `n >= 1`; zvarint `step` if `n >= 2`.
//! `t[i] = t[0] + i * step`.
//!
//! **DeltaOfDelta**: zvarint `t[0]` if `n >= 1`; zvarint `d[1] = t[1] - t[0]` if
//! `n >= 2`; then, if `n >= 3`, a bit stream of `n - 2` entries, entry `i` (2 ≤ i < n)
//! giving `dod = d[i] - d[i-1]` where `d[i] = t[i] - t[i-1]`. Each entry is a prefix
//! followed by `zigzag(dod)` in the bucket's width:
//!
//! | prefix  | payload bits | zigzag(dod) range |
//! |---------|--------------|-------------------|
//! | `0`     | 0            | 0                 |
//! | `10`    | 4            | < 16              |
//! | `110`   | 7            | < 128             |
//! | `1110`  | 12           | < 4096            |
//! | `11110` | 32           | < 2^32            |
//! | `11111` | 64           | any               |
//!
//! **Packed**: the integer packer applied to `t[0..n]`.
//!
//! # Float payloads (`v[0..n]`, f64)
//!
//! **Constant**: if `n >= 1`, u64le bits of the value every row has.
//!
//! **IntDelta**: the integer packer applied to `m[i]`, decoded as `v[i] = m[i] as f64`.
//!
//! **BitDelta**: the integer packer applied to `o[i] = ordered(bits(v[i]))`, where for
//! the raw bits read as an i64 `s`, `ordered(s) = s` if `s >= 0` and `s ^ i64::MAX`
//! otherwise (the low 63 bits flipped). The map is its own inverse, so
//! `bits(v[i]) = ordered(o[i])`. It is monotone in the float order, so a full-precision
//! walk becomes integers with small deltas.
//!
//! **Decimal**:
//!
//! | bytes      | field                                                       |
//! |------------|-------------------------------------------------------------|
//! | 1          | exponent `e`, 0..=18                                        |
//! | varint     | `x`, the number of exceptions (≤ n)                         |
//! | x entries  | varint gap, u64le raw bits                                  |
//! | ...        | integer packer applied to `m[0..n]`                         |
//!
//! `v[i] = (m[i] as f64) / 10^e` with IEEE division by the exact f64 power of ten
//! (`1e0`, ..., `1e18`), except at exception positions, where `v[i]` is the exception's
//! raw bits and `m[i]` is filler the decoder ignores (the encoder extrapolates the
//! previous two integers so deltas stay small). Exception positions are strictly
//! increasing: the first is its gap, each next is previous + 1 + gap; all must be < n.
//!
//! **Xor**: if `n >= 1`, a bit stream: 64 bits of `v[0]`, then for each next value `x =
//! bits(v[i]) ^ bits(v[i-1])`, one of:
//!
//! - `0`: x = 0 (same bits as the previous value).
//! - `10` + `len` bits: reuse the current window (`lead`, `len`); x is those bits
//!   shifted left by `64 - lead - len`. Invalid before the first `11`.
//! - `11` + 6 bits `lead` + 6 bits `len - 1` + `len` bits: set the window, then as
//!   above. `lead + len` must be ≤ 64.
//!
//! # Integer packer (`m[0..n]`, i64; `n` is known from the block header)
//!
//! | bytes        | field                                                       |
//! |--------------|-------------------------------------------------------------|
//! | 1            | order `k`: 0 raw, 1 delta, 2 delta-of-delta                 |
//! | min(k, n) ×  | zvarint head: `m[0]` (k ≥ 1), then `m[1] - m[0]` (k = 2)    |
//! | blocks       | the `n - min(k, n)` residuals in blocks of 128 (last shorter) |
//!
//! Residual `r[i]` for `i >= k` is `m[i]` (k = 0), `m[i] - m[i-1]` (k = 1), or
//! `(m[i] - m[i-1]) - (m[i-1] - m[i-2])` (k = 2). Each residual block of `len` values
//! starts with a flags byte: bit 7 set = sparse, bits 0..=6 = width `w` (0..=64).
//!
//! - **dense** (bit 7 clear): zvarint `base`, then `ceil(len * w / 8)` bytes packing
//!   `r - base` (as u64) in `w` bits each. `w = 0` means every residual equals `base`.
//! - **sparse** (bit 7 set; version 2): zvarint `base`, then a bitmap of
//!   `ceil(len / 8)` bytes, LSB-first like packed runs (bit `i` set = residual `i` is
//!   not zero; bits at `i >= len` must be clear), then `ceil(k * w / 8)` bytes packing,
//!   for the `k` set bits in order, `r - base` in `w` bits each. Clear bits mean
//!   `r = 0`. Encoders pick sparse when it is smaller (mostly-zero residuals: values
//!   that hold still).
//!
//! The residuals `r[k..n]` fill the blocks in order; decoding inverts the transform
//! with wrapping additions (`m[i] = m[i-1] + r[i]`, or `d = d + r[i]; m[i] = m[i-1] + d`
//! starting from `d = m[1] - m[0]`).
//!
//! # Untrusted input
//!
//! Decoders check that the remaining bytes can hold the declared count before
//! allocating (bit streams need ≥ 1 bit per value, packed data ≥ 2 bytes per 128
//! values). Constant and ConstantStep blocks legitimately expand: 11 bytes may declare
//! `u32::MAX` rows (32 GiB decoded). Callers decoding untrusted bytes should check
//! [`peek_header`] against their chunk size limit first.

mod bits;
mod decimal;
mod error;
mod float;
mod gorilla;
mod intpack;
mod timestamp;
mod varint;
mod xor;

#[cfg(test)]
mod tests;

pub use error::CodecError;
pub(crate) use xor::{WINDOW_HEADER_BITS, XorWindow};

/// Format version written in the high nibble of every block's first byte.
pub const FORMAT_VERSION: u8 = 2;

/// Oldest format version the decoders read. Version 1 lacks sparse packer blocks and
/// BitDelta; every version-1 block is otherwise byte for byte a version-2 block.
pub const MIN_FORMAT_VERSION: u8 = 1;

/// Which float codec a column used (for stats and benches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloatCodec {
    /// Every value has the same bits; stored once.
    Constant,
    /// Short decimals as integers with a shared power-of-ten exponent.
    Decimal,
    /// Exact integers, packed as i64.
    IntDelta,
    /// Gorilla XOR against the previous value; applies to anything.
    Xor,
    /// The float bits mapped to order-preserving integers, then the integer packer;
    /// applies to anything. Since format version 2.
    BitDelta,
}

/// Which timestamp codec a column used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampCodec {
    /// Evenly spaced: start and step only.
    ConstantStep,
    /// Gorilla-style delta-of-delta with variable-width buckets.
    DeltaOfDelta,
    /// The fixed-width integer packer (usually delta + frame of reference); wins on
    /// steady jitter and decodes fastest.
    Packed,
}

/// What a block holds, as announced by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// A timestamp column block.
    Timestamps(TimestampCodec),
    /// A float column block.
    Floats(FloatCodec),
}

/// A block's header, readable without decoding the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Column kind and codec.
    pub kind: BlockKind,
    /// Declared row count.
    pub rows: u32,
    /// Bytes taken by the header (codec byte + count varint).
    pub header_len: usize,
}

impl TimestampCodec {
    fn id(self) -> u8 {
        match self {
            TimestampCodec::ConstantStep => 0x1,
            TimestampCodec::DeltaOfDelta => 0x2,
            TimestampCodec::Packed => 0x3,
        }
    }
}

impl FloatCodec {
    fn id(self) -> u8 {
        match self {
            FloatCodec::Constant => 0x8,
            FloatCodec::Decimal => 0x9,
            FloatCodec::IntDelta => 0xA,
            FloatCodec::Xor => 0xB,
            FloatCodec::BitDelta => 0xC,
        }
    }
}

impl BlockKind {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0x1 => BlockKind::Timestamps(TimestampCodec::ConstantStep),
            0x2 => BlockKind::Timestamps(TimestampCodec::DeltaOfDelta),
            0x3 => BlockKind::Timestamps(TimestampCodec::Packed),
            0x8 => BlockKind::Floats(FloatCodec::Constant),
            0x9 => BlockKind::Floats(FloatCodec::Decimal),
            0xA => BlockKind::Floats(FloatCodec::IntDelta),
            0xB => BlockKind::Floats(FloatCodec::Xor),
            0xC => BlockKind::Floats(FloatCodec::BitDelta),
            _ => return None,
        })
    }
}

/// Writes the codec byte and the row count.
///
/// # Panics
/// If `n > u32::MAX`: the format caps a block at `u32::MAX` rows and chunks are far
/// smaller, so this is a caller bug.
fn write_header(out: &mut Vec<u8>, id: u8, n: usize) {
    assert!(
        u32::try_from(n).is_ok(),
        "a block holds at most u32::MAX rows, got {n}"
    );
    out.push((FORMAT_VERSION << 4) | id);
    varint::write_u64(out, n as u64);
}

/// Reads the header of the block at the start of `buf`.
pub fn peek_header(buf: &[u8]) -> Result<BlockHeader, CodecError> {
    let &first = buf.first().ok_or(CodecError::truncated(0, "codec byte"))?;
    if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&(first >> 4)) {
        return Err(CodecError::UnsupportedVersion {
            offset: 0,
            version: first >> 4,
        });
    }
    let kind = BlockKind::from_id(first & 0xF).ok_or(CodecError::UnknownCodec {
        offset: 0,
        id: first & 0xF,
    })?;
    let mut pos = 1;
    let rows = varint::read_u64(buf, &mut pos, "row count")?;
    let rows = u32::try_from(rows).map_err(|_| CodecError::corrupt(1, "row count"))?;
    Ok(BlockHeader {
        kind,
        rows,
        header_len: pos,
    })
}

/// Reserves room for `n` more values without aborting on absurd sizes.
fn reserve<T>(out: &mut Vec<T>, n: usize, at: usize) -> Result<(), CodecError> {
    out.try_reserve(n)
        .map_err(|_| CodecError::corrupt(at, "row count (cannot allocate)"))
}

/// Appends one timestamp block for `ts`, choosing the smallest codec, and says which.
///
/// # Panics
/// If `ts` has more than `u32::MAX` values.
pub fn encode_timestamps(ts: &[i64], out: &mut Vec<u8>) -> TimestampCodec {
    timestamp::encode_auto(ts, out)
}

/// Appends one timestamp block using `codec`; `None` (and nothing written) if the codec
/// cannot represent `ts` (ConstantStep on uneven steps). For tests and benches.
pub fn encode_timestamps_with(codec: TimestampCodec, ts: &[i64], out: &mut Vec<u8>) -> Option<()> {
    timestamp::encode_with(codec, ts, out)
}

/// Decodes the timestamp block at the start of `buf`, appending its values to `out`;
/// returns the bytes the block occupied. On error `out` is left as it was.
pub fn decode_timestamps(buf: &[u8], out: &mut Vec<i64>) -> Result<usize, CodecError> {
    let header = peek_header(buf)?;
    let BlockKind::Timestamps(codec) = header.kind else {
        return Err(CodecError::UnknownCodec {
            offset: 0,
            id: buf.first().map_or(0, |b| b & 0xF),
        });
    };
    let len = out.len();
    timestamp::decode_body(codec, buf, header.header_len, header.rows as usize, out)
        .inspect_err(|_| out.truncate(len))
}

/// Appends one float block for `values`, trying every applicable codec and keeping the
/// smallest; returns the one chosen.
///
/// # Panics
/// If `values` has more than `u32::MAX` values.
pub fn encode_floats(values: &[f64], out: &mut Vec<u8>) -> FloatCodec {
    float::encode_auto(values, out)
}

/// Appends one float block using `codec`; `None` (and nothing written) if the codec
/// does not apply to `values`. For tests and benches.
pub fn encode_floats_with(codec: FloatCodec, values: &[f64], out: &mut Vec<u8>) -> Option<()> {
    float::encode_with(codec, values, out)
}

/// Decodes the float block at the start of `buf`, appending its values to `out`;
/// returns the bytes the block occupied. On error `out` is left as it was.
pub fn decode_floats(buf: &[u8], out: &mut Vec<f64>) -> Result<usize, CodecError> {
    let header = peek_header(buf)?;
    let BlockKind::Floats(codec) = header.kind else {
        return Err(CodecError::UnknownCodec {
            offset: 0,
            id: buf.first().map_or(0, |b| b & 0xF),
        });
    };
    let len = out.len();
    float::decode_body(codec, buf, header.header_len, header.rows as usize, out)
        .inspect_err(|_| out.truncate(len))
}

/// Size in bytes of plain Gorilla (delta-of-delta timestamps + XOR floats, the paper's
/// buckets, 64-bit first timestamp and value), the baseline the benches compare against.
/// The two columns are sized independently, so their lengths need not match.
pub fn gorilla_size(ts: &[i64], values: &[f64]) -> usize {
    gorilla::size(ts, values)
}

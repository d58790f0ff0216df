//! The integer packer shared by the Decimal and IntDelta float codecs and the Packed
//! timestamp codec: optional delta / delta-of-delta, then frame-of-reference
//! bit-packing in fixed-size blocks, each block with its own bit width.
//!
//! Fixed widths per block are what make decoding fast: a block unpacks in a branch-free
//! loop of one 8-byte load, shift and mask per value.
//!
//! A block whose residuals are mostly zero (a gauge that holds still between changes,
//! a counter that rarely moves) may instead be *sparse*: a one-bit-per-value bitmap
//! marks the non-zero residuals and only those are packed. Without it, one jump in a
//! block of 128 repeats would cost its full width on all 128 values.

use super::CodecError;
use super::varint;

/// Values per packed block. A multiple of 8 so every full block is byte-aligned.
pub(super) const BLOCK: usize = 128;
/// Largest packed block body: 128 values of 64 bits.
const MAX_BLOCK_BYTES: usize = BLOCK * 8;
/// The smallest possible block (width byte + 1-byte base) covers up to 128 values, so
/// a buffer of `r` bytes can never describe more than this many values.
pub(super) fn max_values(remaining_bytes: usize) -> usize {
    remaining_bytes.saturating_mul(BLOCK / 2).saturating_add(2)
}

/// How many leading values are stored verbatim, and how the rest become residuals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Residuals are the values themselves.
    Raw = 0,
    /// Residuals are `v[i] - v[i-1]`.
    Delta = 1,
    /// Residuals are `(v[i] - v[i-1]) - (v[i-1] - v[i-2])`.
    DeltaOfDelta = 2,
}

const ORDERS: [Order; 3] = [Order::Raw, Order::Delta, Order::DeltaOfDelta];

/// Flag in a block's width byte marking a sparse block.
const SPARSE: u8 = 0x80;

/// The order that packs `values` smallest, and its size without the order byte.
///
/// Each order's residuals are made one block at a time in a stack buffer and sized
/// by one branch-free pass ([`plan_block`]): sealing tries this for every chunk, so it
/// must not allocate or rescan.
fn best_order(values: &[i64]) -> (usize, Order) {
    let mut best = (usize::MAX, Order::Raw);
    for order in ORDERS {
        let (head, len) = head(values, order);
        let mut size = head[..len].iter().map(|&v| varint::len_i64(v)).sum();
        for_each_block(values, order, |block| size += plan_block(block).bytes);
        if size < best.0 {
            best = (size, order);
        }
    }
    best
}

/// The values stored verbatim before `order`'s residuals: `v[0]` and, for
/// delta-of-delta, `v[1] - v[0]`; the first `len` of the array (fewer when there are
/// fewer values).
fn head(values: &[i64], order: Order) -> ([i64; 2], usize) {
    let first = values.first().copied().unwrap_or(0);
    let second = values.get(1).map_or(0, |v| v.wrapping_sub(first));
    ([first, second], (order as usize).min(values.len()))
}

/// Calls `f` with `order`'s residuals of `values`, block by block, made in a stack
/// buffer.
#[inline]
fn for_each_block(values: &[i64], order: Order, mut f: impl FnMut(&[i64])) {
    let k = order as usize;
    let residuals = values.len().saturating_sub(k);
    let mut block = [0i64; BLOCK];
    let mut start = 0;
    while start < residuals {
        let b = &mut block[..(residuals - start).min(BLOCK)];
        let from = &values[start..start + b.len() + k];
        match order {
            Order::Raw => b.copy_from_slice(from),
            Order::Delta => {
                for (r, w) in b.iter_mut().zip(from.windows(2)) {
                    *r = w[1].wrapping_sub(w[0]);
                }
            }
            Order::DeltaOfDelta => {
                for (r, w) in b.iter_mut().zip(from.windows(3)) {
                    *r = w[2]
                        .wrapping_sub(w[1])
                        .wrapping_sub(w[1].wrapping_sub(w[0]));
                }
            }
        }
        f(b);
        start += b.len();
    }
}

/// How one block is packed: densely (frame of reference over every residual) or
/// sparsely (a bitmap of the non-zero residuals, and a frame over those), whichever is
/// smaller, sparse only when strictly so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockPlan {
    bytes: usize,
    sparse: bool,
    base: i64,
    width: u32,
}

/// The [`BlockPlan`] of a non-empty block, in one branch-free pass.
fn plan_block(block: &[i64]) -> BlockPlan {
    let (mut lo, mut hi, mut zeros) = (i64::MAX, i64::MIN, 0usize);
    let (mut nz_lo, mut nz_hi) = (i64::MAX, i64::MIN);
    for &r in block {
        let zero = r == 0;
        lo = lo.min(r);
        hi = hi.max(r);
        zeros += usize::from(zero);
        nz_lo = nz_lo.min(if zero { i64::MAX } else { r });
        nz_hi = nz_hi.max(if zero { i64::MIN } else { r });
    }
    // hi - lo fits in u64 exactly even when it overflows i64.
    let width = |lo: i64, hi: i64| 64 - (hi.wrapping_sub(lo) as u64).leading_zeros();
    let n = block.len();
    let dense_width = width(lo, hi);
    let dense = BlockPlan {
        bytes: 1 + varint::len_i64(lo) + (n * dense_width as usize).div_ceil(8),
        sparse: false,
        base: lo,
        width: dense_width,
    };
    // The bitmap costs a bit per value; below a quarter zeros it cannot win.
    if zeros * 4 < n {
        return dense;
    }
    let k = n - zeros;
    let (base, width) = if k == 0 {
        (0, 0)
    } else {
        (nz_lo, width(nz_lo, nz_hi))
    };
    let bytes = 1 + varint::len_i64(base) + n.div_ceil(8) + (k * width as usize).div_ceil(8);
    if bytes < dense.bytes {
        BlockPlan {
            bytes,
            sparse: true,
            base,
            width,
        }
    } else {
        dense
    }
}

/// Appends the packed form of `values` (the count is the caller's to store).
pub(super) fn encode(values: &[i64], out: &mut Vec<u8>) {
    let (size, order) = best_order(values);
    out.reserve(size + 1);
    out.push(order as u8);
    let (head, len) = head(values, order);
    for &v in &head[..len] {
        varint::write_i64(out, v);
    }
    let mut nonzero = [0i64; BLOCK];
    for_each_block(values, order, |block| {
        let plan = plan_block(block);
        if plan.sparse {
            out.push(SPARSE | plan.width as u8);
            varint::write_i64(out, plan.base);
            let mut bitmap = [0u8; BLOCK / 8];
            let mut k = 0;
            for (i, &v) in block.iter().enumerate() {
                if v != 0 {
                    bitmap[i / 8] |= 1 << (i % 8);
                    nonzero[k] = v;
                    k += 1;
                }
            }
            out.extend_from_slice(&bitmap[..block.len().div_ceil(8)]);
            pack(&nonzero[..k], plan.base, plan.width, out);
        } else {
            out.push(plan.width as u8);
            varint::write_i64(out, plan.base);
            pack(block, plan.base, plan.width, out);
        }
    });
}

/// LSB-first packing: value `i` of the block occupies bits `i*w .. (i+1)*w`, where bit
/// `k` is bit `k % 8` of byte `k / 8`.
fn pack(block: &[i64], base: i64, width: u32, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    let (mut acc, mut used) = (0u64, 0u32);
    for &v in block {
        let u = v.wrapping_sub(base) as u64;
        acc |= u << used;
        if used + width >= 64 {
            out.extend_from_slice(&acc.to_le_bytes());
            acc = if used == 0 { 0 } else { u >> (64 - used) };
            used = used + width - 64;
        } else {
            used += width;
        }
    }
    out.extend_from_slice(&acc.to_le_bytes()[..used.div_ceil(8) as usize]);
}

/// Decodes `n` integers starting at `pos`, handing them to `sink` in runs of at most
/// `BLOCK`; returns the position after the packed data.
pub(super) fn decode(
    buf: &[u8],
    mut pos: usize,
    n: usize,
    mut sink: impl FnMut(&[i64]),
) -> Result<usize, CodecError> {
    let order_at = pos;
    let [order] = varint::read_bytes::<1>(buf, &mut pos, "packer order")?;
    let order = match order {
        0 => Order::Raw,
        1 => Order::Delta,
        2 => Order::DeltaOfDelta,
        _ => return Err(CodecError::corrupt(order_at, "packer order")),
    };
    let head_len = (order as usize).min(n);
    let mut head = [0i64; 2];
    for h in head.iter_mut().take(head_len) {
        *h = varint::read_i64(buf, &mut pos, "packer head value")?;
    }
    // Running state of the inverse transform: last value and last delta.
    let mut delta = head[1];
    head[1] = head[0].wrapping_add(delta);
    sink(&head[..head_len]);
    let mut prev = head[head_len.saturating_sub(1)];

    let mut scratch = [0u8; MAX_BLOCK_BYTES + 16];
    let mut vals = [0i64; BLOCK];
    let mut left = n - head_len;
    while left > 0 {
        let len = left.min(BLOCK);
        let width_at = pos;
        let [flags] = varint::read_bytes::<1>(buf, &mut pos, "packer block width")?;
        let width = flags & !SPARSE;
        if width > 64 {
            return Err(CodecError::corrupt(width_at, "packer block width"));
        }
        let base = varint::read_i64(buf, &mut pos, "packer block base")?;
        let vals = &mut vals[..len];
        if flags & SPARSE == 0 {
            let bytes = (len * width as usize).div_ceil(8);
            let body = buf
                .get(pos..pos + bytes)
                .ok_or(CodecError::truncated(pos, "packed values"))?;
            scratch[..bytes].copy_from_slice(body);
            pos += bytes;
            unpack(&scratch, u32::from(width), base, vals);
        } else {
            pos = unpack_sparse(buf, pos, u32::from(width), base, &mut scratch, vals)?;
        }
        match order {
            Order::Raw => {}
            Order::Delta => {
                for v in vals.iter_mut() {
                    prev = prev.wrapping_add(*v);
                    *v = prev;
                }
            }
            Order::DeltaOfDelta => {
                for v in vals.iter_mut() {
                    delta = delta.wrapping_add(*v);
                    prev = prev.wrapping_add(delta);
                    *v = prev;
                }
            }
        }
        sink(vals);
        left -= len;
    }
    Ok(pos)
}

/// Reads a sparse block's bitmap and packed non-zero residuals at `pos` into `dst`
/// (`dst.len()` values); returns the position after the block.
fn unpack_sparse(
    buf: &[u8],
    mut pos: usize,
    width: u32,
    base: i64,
    scratch: &mut [u8; MAX_BLOCK_BYTES + 16],
    dst: &mut [i64],
) -> Result<usize, CodecError> {
    let len = dst.len();
    let map_len = len.div_ceil(8);
    let bitmap = buf
        .get(pos..pos + map_len)
        .ok_or(CodecError::truncated(pos, "sparse block bitmap"))?;
    // Bits past the last value must be clear, so that each block has one encoding.
    if let Some(&last) = bitmap.last()
        && !len.is_multiple_of(8)
        && last >> (len % 8) != 0
    {
        return Err(CodecError::corrupt(
            pos + map_len - 1,
            "sparse block bitmap",
        ));
    }
    let k: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
    let mut map = [0u8; BLOCK / 8];
    map[..map_len].copy_from_slice(bitmap);
    pos += map_len;
    let bytes = (k * width as usize).div_ceil(8);
    let body = buf
        .get(pos..pos + bytes)
        .ok_or(CodecError::truncated(pos, "sparse packed values"))?;
    scratch[..bytes].copy_from_slice(body);
    pos += bytes;
    // One slot more than a block: the scatter below may read slot `k` (zero).
    let mut nonzero = [0i64; BLOCK + 1];
    unpack(scratch, width, base, &mut nonzero[..k]);
    // Branch-free scatter: which deltas are zero is data, and a mispredicted branch
    // per value cost more than the rest of the decode.
    let mut next = 0usize;
    for (i, d) in dst.iter_mut().enumerate() {
        let bit = (map[i / 8] >> (i % 8)) & 1;
        *d = nonzero[next.min(BLOCK)] & -i64::from(bit);
        next += usize::from(bit);
    }
    Ok(pos)
}

/// Inverse of `pack` for one block already copied into the padded `src`.
#[inline]
fn unpack(src: &[u8; MAX_BLOCK_BYTES + 16], width: u32, base: i64, dst: &mut [i64]) {
    match width {
        0 => dst.fill(base),
        1..=56 => {
            let mask = (1u64 << width) - 1;
            for (i, d) in dst.iter_mut().enumerate() {
                let bit = i * width as usize;
                let word = src
                    .get(bit >> 3..)
                    .and_then(|s| s.first_chunk::<8>())
                    .map_or(0, |w| u64::from_le_bytes(*w));
                *d = base.wrapping_add(((word >> (bit & 7)) & mask) as i64);
            }
        }
        _ => {
            let mask = u64::MAX >> (64 - width.min(64));
            for (i, d) in dst.iter_mut().enumerate() {
                let bit = i * width as usize;
                let word = src
                    .get(bit >> 3..)
                    .and_then(|s| s.first_chunk::<16>())
                    .map_or(0, |w| u128::from_le_bytes(*w));
                *d = base.wrapping_add((((word >> (bit & 7)) as u64) & mask) as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The naive reference the streaming encoder is checked against: writes residuals
    /// of `values` for `order` into `res` (cleared first); returns the head stored before
    /// them: `m[0]` and, for delta-of-delta, `m[1] - m[0]`.
    fn residuals(values: &[i64], order: Order, res: &mut Vec<i64>) -> ([i64; 2], usize) {
        res.clear();
        let len = (order as usize).min(values.len());
        let mut head = [0i64; 2];
        if let Some(&first) = values.first() {
            head[0] = first;
        }
        if let Some(&second) = values.get(1) {
            head[1] = second.wrapping_sub(head[0]);
        }
        match order {
            Order::Raw => res.extend_from_slice(values),
            Order::Delta => res.extend(values.windows(2).map(|w| w[1].wrapping_sub(w[0]))),
            Order::DeltaOfDelta => res.extend(values.windows(3).map(|w| {
                w[2].wrapping_sub(w[1])
                    .wrapping_sub(w[1].wrapping_sub(w[0]))
            })),
        }
        (head, len)
    }

    /// Frame of reference of one block: its minimum and the bits needed above it.
    #[inline]
    fn frame(block: &[i64]) -> (i64, u32) {
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for &v in block {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if block.is_empty() {
            return (0, 0);
        }
        // hi - lo fits in u64 exactly even when it overflows i64.
        let span = hi.wrapping_sub(lo) as u64;
        (lo, 64 - span.leading_zeros())
    }

    /// Bytes of a block packed densely (frame of reference over every residual).
    fn dense_size(block: &[i64]) -> usize {
        let (base, width) = frame(block);
        1 + varint::len_i64(base) + (block.len() * width as usize).div_ceil(8)
    }

    /// Bytes of a block packed sparsely (bitmap + frame of reference over the non-zero
    /// residuals), or `None` when too few residuals are zero for it to pay.
    fn sparse_size(block: &[i64]) -> Option<(usize, i64, u32)> {
        let zeros = block.iter().filter(|&&v| v == 0).count();
        // The bitmap costs a bit per value; below a quarter zeros it cannot win.
        if zeros * 4 < block.len() {
            return None;
        }
        let (mut lo, mut hi, mut k) = (i64::MAX, i64::MIN, 0usize);
        for &v in block.iter().filter(|&&v| v != 0) {
            lo = lo.min(v);
            hi = hi.max(v);
            k += 1;
        }
        let (base, width) = if k == 0 {
            (0, 0)
        } else {
            (lo, 64 - (hi.wrapping_sub(lo) as u64).leading_zeros())
        };
        let size =
            1 + varint::len_i64(base) + block.len().div_ceil(8) + (k * width as usize).div_ceil(8);
        Some((size, base, width))
    }

    fn round_trip(values: &[i64]) -> Vec<u8> {
        let mut buf = vec![7u8];
        encode(values, &mut buf);
        let mut got = Vec::new();
        let end = decode(&buf, 1, values.len(), |b| got.extend_from_slice(b)).unwrap();
        assert_eq!(end, buf.len());
        check_best_order(values);
        assert_eq!(
            buf.len(),
            2 + best_order(values).0,
            "the order byte and its size"
        );
        assert_eq!(got, values);
        for cut in 1..buf.len() {
            assert!(
                decode(&buf[..cut], 1, values.len(), |_| {}).is_err(),
                "prefix {cut}"
            );
        }
        buf
    }

    /// Every order's size from its materialized residuals, block by block: the
    /// streaming count must pick the same smallest one.
    fn check_best_order(values: &[i64]) {
        let mut res = Vec::new();
        let naive = ORDERS.map(|order| {
            let (head, len) = residuals(values, order, &mut res);
            let blocks: usize = res
                .chunks(BLOCK)
                .map(|b| {
                    let dense = dense_size(b);
                    sparse_size(b).map_or(dense, |(sparse, ..)| sparse.min(dense))
                })
                .sum();
            head[..len]
                .iter()
                .map(|&v| varint::len_i64(v))
                .sum::<usize>()
                + blocks
        });
        let smallest = naive.iter().copied().min().unwrap_or(usize::MAX);
        let first = ORDERS[naive.iter().position(|&s| s == smallest).unwrap_or(0)];
        assert_eq!(best_order(values), (smallest, first), "{naive:?}");
    }

    fn counter() -> impl Strategy<Value = Vec<i64>> {
        (
            any::<i64>(),
            proptest::collection::vec((0i64..1000, 0u8..40), 0..700),
        )
            .prop_map(|(start, steps)| {
                let mut v = start;
                steps
                    .into_iter()
                    .map(|(step, reset)| {
                        v = if reset == 0 {
                            step
                        } else {
                            v.wrapping_add(step)
                        };
                        v
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn arbitrary_values(values in proptest::collection::vec(any::<i64>(), 0..300)) {
            round_trip(&values);
        }

        #[test]
        fn counters_with_resets(values in counter()) {
            round_trip(&values);
        }

        #[test]
        fn extremes(values in proptest::collection::vec(
            prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), Just(-1i64), any::<i64>()], 0..300)) {
            round_trip(&values);
        }
    }

    #[test]
    fn constant_and_linear_pack_to_nothing() {
        let linear: Vec<i64> = (0..512).map(|i| 1000 + 7 * i).collect();
        assert!(round_trip(&linear).len() < 16);
        assert!(round_trip(&[5; 512]).len() < 16);
    }

    #[test]
    fn mostly_still_values_pack_sparsely() {
        // A gauge that holds still and jumps now and then: deltas are mostly zero.
        let values: Vec<i64> = (0..512)
            .map(|i| if i % 50 < 25 { 1_000_000 } else { 7_000_000_123 } + i / 100)
            .collect();
        let sparse = round_trip(&values).len();
        let dense: usize = {
            let mut res = Vec::new();
            residuals(&values, Order::Delta, &mut res);
            res.chunks(BLOCK).map(dense_size).sum()
        };
        assert!(sparse * 2 < dense, "sparse {sparse} vs dense {dense}");
        for len in [1, 7, 8, 9, 127, 128, 129, 300] {
            let v: Vec<i64> = (0..len)
                .map(|i| if i % 9 == 0 { i * 3 } else { 0 })
                .collect();
            round_trip(&v);
        }
    }

    #[test]
    fn sparse_bitmap_padding_is_checked() {
        let values: Vec<i64> = (0..5).map(|i| if i == 2 { 9 } else { 0 }).collect();
        let mut buf = vec![7u8];
        encode(&values, &mut buf);
        assert_eq!(buf[2] & SPARSE, SPARSE, "{buf:?}");
        // The bitmap byte follows the width byte and the 1-byte base.
        let mut bad = buf.clone();
        bad[4] |= 0x80;
        assert!(decode(&bad, 1, values.len(), |_| {}).is_err());
    }

    #[test]
    fn every_width() {
        for width in 0..=64u32 {
            let top = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width).wrapping_sub(1)
            };
            let values: Vec<i64> = (0..300u64)
                .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & top) as i64)
                .collect();
            round_trip(&values);
        }
    }
}

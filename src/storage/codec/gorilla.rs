//! Size of the plain Gorilla encoding (Pelkonen et al., VLDB 2015), the baseline the
//! benches compare against. Only the size is computed; nothing is written.

/// Bits for the timestamp column: 64-bit first timestamp, then every delta-of-delta
/// (the first delta counts as a dod against 0) in the paper's buckets: '0';
/// '10' + 7 bits for [-63, 64]; '110' + 9 for [-255, 256]; '1110' + 12 for
/// [-2047, 2048]; otherwise '1111' + 32 bits, widened to 64 where 32 cannot hold it.
fn timestamp_bits(ts: &[i64]) -> u64 {
    let Some(&first) = ts.first() else { return 0 };
    let (mut bits, mut prev, mut delta) = (64u64, first, 0i64);
    for &t in &ts[1..] {
        let d = t.wrapping_sub(prev);
        let dod = d.wrapping_sub(delta);
        (prev, delta) = (t, d);
        bits += match dod {
            0 => 1,
            -63..=64 => 2 + 7,
            -255..=256 => 3 + 9,
            -2047..=2048 => 4 + 12,
            _ if i32::try_from(dod).is_ok() => 4 + 32,
            _ => 4 + 64,
        };
    }
    bits
}

/// Bits for the value column: 64-bit first value, then per value '0' (same), '10' +
/// meaningful bits in the previous window, or '11' + 5 bits leading zeros (capped at 31)
/// + 6 bits length + meaningful bits.
fn value_bits(values: &[f64]) -> u64 {
    let Some(first) = values.first() else {
        return 0;
    };
    let (mut bits, mut prev) = (64u64, first.to_bits());
    let mut window: Option<(u32, u32)> = None;
    for v in &values[1..] {
        let x = v.to_bits() ^ prev;
        prev = v.to_bits();
        if x == 0 {
            bits += 1;
            continue;
        }
        let (lz, tz) = (x.leading_zeros().min(31), x.trailing_zeros());
        match window {
            Some((wl, wt)) if lz >= wl && tz >= wt => bits += 2 + u64::from(64 - wl - wt),
            _ => {
                bits += 2 + 5 + 6 + u64::from(64 - lz - tz);
                window = Some((lz, tz));
            }
        }
    }
    bits
}

pub(super) fn size(ts: &[i64], values: &[f64]) -> usize {
    (timestamp_bits(ts) + value_bits(values)).div_ceil(8) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_series_cost() {
        let ts: Vec<i64> = (0..120).map(|i| i * 1_000).collect();
        // 64 + first delta (16 bits) + 118 zero dods.
        assert_eq!(timestamp_bits(&ts), 64 + 16 + 118);
        assert_eq!(value_bits(&[2.0; 120]), 64 + 119);
        assert_eq!(
            size(&ts, &[2.0; 120]),
            (64 + 16 + 118 + 64 + 119usize).div_ceil(8)
        );
        assert_eq!(size(&[], &[]), 0);
    }
}

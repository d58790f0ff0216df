//! Timestamp column codecs: ConstantStep, DeltaOfDelta (Gorilla-style buckets) and
//! Packed (the integer packer). All arithmetic wraps, so any i64 sequence round-trips.

use super::bits::{BitReader, BitWriter};
use super::{CodecError, TimestampCodec, intpack, reserve, varint, write_header};

/// Delta-of-delta buckets as (prefix bits, prefix length, payload width). The payload is
/// the zigzagged delta-of-delta. Widths are tuned for scrape jitter: a few ms around a
/// fixed interval gives |dod| < 8, which costs 6 bits.
const BUCKETS: [(u64, u32, u32); 6] = [
    (0b0, 1, 0),
    (0b10, 2, 4),
    (0b110, 3, 7),
    (0b1110, 4, 12),
    (0b11110, 5, 32),
    (0b11111, 5, 64),
];

/// The step shared by every consecutive pair, if there is one.
fn constant_step(ts: &[i64]) -> Option<i64> {
    let step = match ts {
        [a, b, ..] => b.wrapping_sub(*a),
        _ => 0,
    };
    ts.windows(2)
        .all(|w| w[1].wrapping_sub(w[0]) == step)
        .then_some(step)
}

pub(super) fn encode_auto(ts: &[i64], out: &mut Vec<u8>) -> TimestampCodec {
    let start = out.len();
    let mut best = if encode_with(TimestampCodec::ConstantStep, ts, out).is_some() {
        // Realistic constant-step blocks are ~11 bytes and cannot be beaten; only
        // extreme starts and steps (10-byte varints) can lose to raw packing.
        if out.len() - start < 16 {
            return TimestampCodec::ConstantStep;
        }
        TimestampCodec::ConstantStep
    } else {
        encode_dod(ts, out);
        TimestampCodec::DeltaOfDelta
    };
    let mut packed = Vec::new();
    encode_packed(ts, &mut packed);
    // Ties go to Packed over DeltaOfDelta: fixed-width blocks decode several times faster.
    let current = out.len() - start;
    let wins = match best {
        TimestampCodec::ConstantStep => packed.len() < current,
        _ => packed.len() <= current,
    };
    if wins {
        out.truncate(start);
        out.extend_from_slice(&packed);
        best = TimestampCodec::Packed;
    }
    best
}

pub(super) fn encode_with(codec: TimestampCodec, ts: &[i64], out: &mut Vec<u8>) -> Option<()> {
    match codec {
        TimestampCodec::ConstantStep => {
            let step = constant_step(ts)?;
            write_header(out, codec.id(), ts.len());
            if let Some(&first) = ts.first() {
                varint::write_i64(out, first);
            }
            if ts.len() >= 2 {
                varint::write_i64(out, step);
            }
        }
        TimestampCodec::DeltaOfDelta => encode_dod(ts, out),
        TimestampCodec::Packed => encode_packed(ts, out),
    }
    Some(())
}

fn encode_packed(ts: &[i64], out: &mut Vec<u8>) {
    write_header(out, TimestampCodec::Packed.id(), ts.len());
    intpack::encode(ts, out);
}

fn encode_dod(ts: &[i64], out: &mut Vec<u8>) {
    write_header(out, TimestampCodec::DeltaOfDelta.id(), ts.len());
    let (Some(&t0), Some(&t1)) = (ts.first(), ts.get(1)) else {
        if let Some(&t0) = ts.first() {
            varint::write_i64(out, t0);
        }
        return;
    };
    let mut delta = t1.wrapping_sub(t0);
    varint::write_i64(out, t0);
    varint::write_i64(out, delta);
    let mut w = BitWriter::new(out);
    for pair in ts[1..].windows(2) {
        let d = pair[1].wrapping_sub(pair[0]);
        let dod = d.wrapping_sub(delta);
        delta = d;
        let z = varint::zigzag(dod);
        let bucket = match z {
            0 => 0,
            1..16 => 1,
            16..128 => 2,
            128..4096 => 3,
            4096..0x1_0000_0000 => 4,
            _ => 5,
        };
        let (prefix, plen, width) = BUCKETS[bucket];
        if width <= 32 {
            w.write((prefix << width) | z, plen + width);
        } else {
            w.write(prefix, plen);
            w.write(z, width);
        }
    }
    w.finish();
}

/// Decodes a timestamp block whose header (codec id and count) has been read.
pub(super) fn decode_body(
    codec: TimestampCodec,
    buf: &[u8],
    mut pos: usize,
    n: usize,
    out: &mut Vec<i64>,
) -> Result<usize, CodecError> {
    match codec {
        TimestampCodec::ConstantStep => {
            let start = if n >= 1 {
                varint::read_i64(buf, &mut pos, "start timestamp")?
            } else {
                0
            };
            let step = if n >= 2 {
                varint::read_i64(buf, &mut pos, "timestamp step")?
            } else {
                0
            };
            // Legitimately expands: a handful of bytes may declare u32::MAX rows.
            reserve(out, n, pos)?;
            out.extend((0..n as i64).map(|i| start.wrapping_add(step.wrapping_mul(i))));
            Ok(pos)
        }
        TimestampCodec::Packed => {
            if n > intpack::max_values(buf.len() - pos) {
                return Err(CodecError::truncated(
                    pos,
                    "packed timestamps (count exceeds data)",
                ));
            }
            reserve(out, n, pos)?;
            intpack::decode(buf, pos, n, |vals| out.extend_from_slice(vals))
        }
        TimestampCodec::DeltaOfDelta => decode_dod(buf, pos, n, out),
    }
}

fn decode_dod(
    buf: &[u8],
    mut pos: usize,
    n: usize,
    out: &mut Vec<i64>,
) -> Result<usize, CodecError> {
    if n == 0 {
        return Ok(pos);
    }
    let mut t = varint::read_i64(buf, &mut pos, "start timestamp")?;
    if n == 1 {
        reserve(out, 1, pos)?;
        out.push(t);
        return Ok(pos);
    }
    let mut delta = varint::read_i64(buf, &mut pos, "first delta")?;
    // Every delta-of-delta takes at least one bit.
    if n - 2 > (buf.len() - pos).saturating_mul(8) {
        return Err(CodecError::truncated(
            pos,
            "delta-of-delta stream (count exceeds data)",
        ));
    }
    reserve(out, n, pos)?;
    out.push(t);
    t = t.wrapping_add(delta);
    out.push(t);
    let mut r = BitReader::new(buf, pos);
    for _ in 2..n {
        r.refill();
        let ones = r.peek().leading_ones().min(5) as usize;
        let (_, plen, width) = BUCKETS[ones];
        r.consume(plen, "delta-of-delta prefix")?;
        let z = if width == 0 {
            0
        } else {
            r.read_long(width, "delta-of-delta")?
        };
        delta = delta.wrapping_add(varint::unzigzag(z));
        t = t.wrapping_add(delta);
        out.push(t);
    }
    Ok(r.end())
}

#[cfg(test)]
mod tests {
    use super::super::tests::timestamps;
    use super::super::{decode_timestamps, encode_timestamps, encode_timestamps_with};
    use super::*;
    use proptest::prelude::*;

    fn check(ts: &[i64], codec: TimestampCodec) -> Option<usize> {
        let mut buf = Vec::new();
        encode_timestamps_with(codec, ts, &mut buf)?;
        let mut got = vec![42];
        buf.push(0xEE); // trailing junk must not be consumed
        assert_eq!(decode_timestamps(&buf, &mut got).unwrap(), buf.len() - 1);
        assert_eq!(&got[1..], ts);
        Some(buf.len() - 1)
    }

    proptest! {
        #[test]
        fn round_trip_all_codecs(ts in timestamps()) {
            let mut auto = Vec::new();
            let chosen = encode_timestamps(&ts, &mut auto);
            let mut got = Vec::new();
            prop_assert_eq!(decode_timestamps(&auto, &mut got).unwrap(), auto.len());
            prop_assert_eq!(&got, &ts);
            for codec in [TimestampCodec::ConstantStep, TimestampCodec::DeltaOfDelta, TimestampCodec::Packed] {
                if let Some(size) = check(&ts, codec) {
                    prop_assert!(auto.len() <= size, "{chosen:?} larger than {codec:?}");
                }
            }
        }
    }

    #[test]
    fn constant_step_is_tiny() {
        let ts: Vec<i64> = (0..512).map(|i| 1_700_000_000_000 + i * 10_000).collect();
        let mut buf = Vec::new();
        assert_eq!(
            encode_timestamps(&ts, &mut buf),
            TimestampCodec::ConstantStep
        );
        assert!(buf.len() < 16, "{} bytes", buf.len());
    }

    #[test]
    fn every_bucket() {
        let dods = [
            0i64,
            1,
            -8,
            7,
            8,
            -64,
            63,
            64,
            -2048,
            2047,
            2048,
            i32::MAX as i64,
            i64::MAX,
            i64::MIN,
        ];
        let mut ts = vec![0i64, 2000];
        let mut delta = 2000i64;
        for &d in dods.iter().cycle().take(100) {
            delta = delta.wrapping_add(d);
            ts.push(ts[ts.len() - 1].wrapping_add(delta));
        }
        check(&ts, TimestampCodec::DeltaOfDelta).unwrap();
        check(&ts, TimestampCodec::Packed).unwrap();
    }
}

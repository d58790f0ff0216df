//! Format tests: WAL framing and checkpoints round trip bit for bit, and damage of
//! any kind is an error naming its offset, never a panic or silently wrong data.

use std::sync::Arc;

use proptest::prelude::*;

use super::FormatError;
use super::bytes::{Reader, Writer};
use super::checkpoint::{decode_checkpoint, write_checkpoint};
use super::record::{decode_batch, encode_batch, encode_v1};
use super::wal::{FsyncPolicy, SegmentEnd, Wal, frame_record, list_segments, read_segment};
use crate::model::{FieldKind, STALE_NAN_BITS, TagSet, WriteBatch};
use crate::storage::{Storage, StorageConfig};

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(-0.0),
        Just(f64::MIN_POSITIVE / 4.0),
        (0i64..1000).prop_map(|v| v as f64),
    ]
}

fn batch() -> impl Strategy<Value = WriteBatch> {
    let item = (
        prop::sample::select(vec!["cpu", "mem", "up:recorded", "métrique"]),
        prop::collection::btree_map("[a-z]{1,3}", "[a-zA-Z0-9 ,=\"]{0,6}", 0..4),
        1usize..4,
        prop::collection::vec((any::<i64>(), prop::collection::vec(value(), 3)), 1..8),
        prop::option::of(prop::sample::select(vec![
            FieldKind::Counter,
            FieldKind::Gauge,
            FieldKind::Histogram,
        ])),
    );
    prop::collection::vec(item, 0..6).prop_map(|items| {
        let mut b = WriteBatch::new();
        for (table, tags, fields, rows, kind) in items {
            let names: Vec<String> = (0..fields).map(|f| format!("f{f}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let s = b.series(table, TagSet::new(tags).unwrap(), &refs);
            if let Some(kind) = kind {
                s.with_kind("f0", kind);
            }
            for (t, values) in rows {
                s.push(t, &values[..fields]).unwrap();
            }
        }
        b
    })
}

/// Everything a batch says, with floats as bits so NaN payloads compare.
fn canonical(b: &WriteBatch) -> Vec<String> {
    b.items()
        .iter()
        .filter(|i| !i.is_empty())
        .map(|i| {
            let rows: Vec<(i64, Vec<u64>)> = (0..i.len())
                .map(|r| {
                    (
                        i.timestamps()[r],
                        i.row(r).iter().map(|v| v.to_bits()).collect(),
                    )
                })
                .collect();
            format!(
                "{} {:?} {:?} {:?}",
                i.table(),
                i.tags().pairs(),
                i.fields(),
                rows
            )
        })
        .collect()
}

fn encode(b: &WriteBatch) -> Vec<u8> {
    let mut w = Writer::default();
    encode_batch(b, &mut w);
    w.buf
}

/// A segment file holding one record per payload, seqs from `first`.
fn segment(first: u64, payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0u8; 16];
    out[..5].copy_from_slice(b"MSWAL");
    out[5] = super::wal::WAL_VERSION;
    out[8..].copy_from_slice(&first.to_le_bytes());
    for (i, p) in payloads.iter().enumerate() {
        frame_record(&mut out, first + i as u64, p);
    }
    out
}

fn read_all(bytes: &[u8], first: u64, last: bool) -> (Vec<(u64, Vec<u8>)>, SegmentEnd) {
    let mut got = Vec::new();
    let end = read_segment(bytes, first, last, |seq, p, _| got.push((seq, p.to_vec())));
    (got, end)
}

proptest! {
    #[test]
    fn batches_round_trip_bit_for_bit(b in batch()) {
        let bytes = encode(&b);
        let back = decode_batch(&mut Reader::new(&bytes, 0), 2).unwrap();
        prop_assert_eq!(canonical(&back), canonical(&b));
        let mut v1 = Writer::default();
        encode_v1(&b, &mut v1);
        let back = decode_batch(&mut Reader::new(&v1.buf, 0), 1).unwrap();
        prop_assert_eq!(canonical(&back), canonical(&b));
    }

    #[test]
    fn segments_round_trip(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..20), first in 0u64..1 << 40) {
        let bytes = segment(first, &payloads);
        let (got, end) = read_all(&bytes, first, true);
        prop_assert_eq!(end, SegmentEnd::Clean);
        let expected: Vec<(u64, Vec<u8>)> =
            payloads.iter().enumerate().map(|(i, p)| (first + i as u64, p.clone())).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn garbage_payloads_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_batch(&mut Reader::new(&bytes, 0), 1);
        let _ = decode_batch(&mut Reader::new(&bytes, 0), 2);
        let _ = decode_checkpoint(&bytes, &Arc::default());
    }
}

fn sample_payloads() -> Vec<Vec<u8>> {
    (0..5)
        .map(|i| {
            let mut b = WriteBatch::new();
            let tags = TagSet::new([("host", format!("h{i}"))]).unwrap();
            b.add_sample("cpu", tags, "value", i, i as f64 * 1.5);
            encode(&b)
        })
        .collect()
}

/// Byte offsets where each record of `segment(0, payloads)` ends.
fn record_ends(payloads: &[Vec<u8>]) -> Vec<usize> {
    let mut end = 16;
    payloads
        .iter()
        .map(|p| {
            end += 16 + p.len();
            end
        })
        .collect()
}

#[test]
fn a_cut_at_every_byte_keeps_whole_records_and_reports_the_rest() {
    let payloads = sample_payloads();
    let bytes = segment(7, &payloads);
    let ends = record_ends(&payloads);
    for cut in 0..bytes.len() {
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        let (got, end) = read_all(&bytes[..cut], 7, true);
        assert_eq!(got.len(), whole, "cut at {cut}");
        let at_boundary = cut == 16 || ends.contains(&cut);
        if at_boundary {
            assert_eq!(end, SegmentEnd::Clean, "cut at {cut}");
        } else {
            let offset = if cut < 16 {
                0
            } else {
                *[16]
                    .iter()
                    .chain(&ends)
                    .filter(|&&e| e <= cut)
                    .max()
                    .unwrap() as u64
            };
            assert_eq!(end, SegmentEnd::Torn { offset }, "cut at {cut}");
        }
        // In an older segment the same cut is damage, not a torn write.
        let (_, end) = read_all(&bytes[..cut], 7, false);
        assert!(
            at_boundary || matches!(end, SegmentEnd::Corrupt { .. }),
            "cut at {cut}: {end:?}"
        );
    }
}

#[test]
fn every_bit_flip_is_caught() {
    let payloads = sample_payloads();
    let bytes = segment(3, &payloads);
    let ends = record_ends(&payloads);
    for bit in 0..bytes.len() * 8 {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        for last in [false, true] {
            let (got, end) = read_all(&damaged, 3, last);
            assert_ne!(end, SegmentEnd::Clean, "bit {bit} went unnoticed");
            // What was returned is an undamaged prefix.
            let byte = bit / 8;
            let intact = ends.iter().filter(|&&e| e <= byte).count();
            assert!(got.len() <= intact, "bit {bit}: {} records", got.len());
            for (i, (seq, p)) in got.iter().enumerate() {
                assert_eq!((*seq, p), (3 + i as u64, &payloads[i]));
            }
        }
    }
}

#[test]
fn records_out_of_sequence_are_corruption() {
    let payloads = sample_payloads();
    let mut bytes = segment(0, &payloads[..1]);
    frame_record(&mut bytes, 5, &payloads[1]);
    let (got, end) = read_all(&bytes, 0, true);
    assert_eq!(got.len(), 1);
    assert!(
        matches!(end, SegmentEnd::Corrupt { ref message, .. } if message.contains("expected 1")),
        "{end:?}"
    );
}

#[test]
fn segments_roll_over_and_trim_below_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), 0, Vec::new(), FsyncPolicy::Never, 200).unwrap();
    let payloads = sample_payloads();
    for round in 0..6 {
        for p in &payloads {
            let seq = wal.append(p).unwrap();
            wal.commit(seq).unwrap();
        }
        assert!(wal.segment_count() > round / 2, "round {round}");
    }
    let segments = list_segments(dir.path()).unwrap();
    assert!(segments.len() > 3, "{segments:?}");
    let mut seen = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let bytes = std::fs::read(&s.path).unwrap();
        let (got, end) = read_all(&bytes, s.first_seq, i + 1 == segments.len());
        assert_eq!(end, SegmentEnd::Clean);
        seen.extend(got.into_iter().map(|(seq, _)| seq));
    }
    assert_eq!(seen, (0..30).collect::<Vec<u64>>());
    // Trimming below seq 12 keeps the segment holding 12 and everything after.
    let removed = wal.trim_below(12).unwrap();
    let left = list_segments(dir.path()).unwrap();
    assert_eq!(left.len(), segments.len() - removed);
    assert!(left[0].first_seq <= 12 && left.get(1).is_none_or(|s| s.first_seq > 12));
    // Trimming past the end keeps the active segment.
    wal.trim_below(u64::MAX).unwrap();
    assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
}

fn checkpoint_store() -> Storage {
    let storage = Storage::new(StorageConfig {
        chunk_size: 4,
        ..StorageConfig::default()
    });
    let mut b = WriteBatch::new();
    for host in 0..3 {
        let tags = TagSet::new([("host", format!("h{host}")), ("dc", "eu".into())]).unwrap();
        let s = b.series("cpu", tags, &["user", "system"]);
        for t in 0..11 {
            s.push(t * 10, &[t as f64, f64::from_bits(STALE_NAN_BITS)])
                .unwrap();
        }
    }
    b.add_sample("up", TagSet::empty(), "value", 5, -0.0);
    storage.write(&b).unwrap();
    // A late row lands in the out-of-order head.
    let mut late = WriteBatch::new();
    let tags = TagSet::new([("host", "h0"), ("dc", "eu")]).unwrap();
    late.series("cpu", tags, &["user"])
        .push(15, &[99.0])
        .unwrap();
    storage.write(&late).unwrap();
    storage
}

fn checkpoint_bytes(storage: &Storage) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (_, tables) = storage.checkpoint_tables(|| 42);
    let mut tables = tables.into_iter();
    let (path, size) = write_checkpoint(dir.path(), 42, || {
        tables.next().map(|t| storage.table_image(&t, || 42))
    })
    .unwrap();
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len() as u64, size);
    bytes
}

fn dump(storage: &Storage) -> Vec<String> {
    let mut out = Vec::new();
    for table in storage.table_names() {
        let snapshot = storage.select(&table, &[], crate::TimeRange::ALL).unwrap();
        for batch in snapshot.record_batches(None).unwrap() {
            out.push(format!("{table}: {batch:?}"));
        }
        out.push(format!("{:?}", storage.latest(&table)));
    }
    out
}

#[test]
fn checkpoints_round_trip() {
    let storage = checkpoint_store();
    let bytes = checkpoint_bytes(&storage);
    let restored = Storage::new(storage.config().clone());
    let loaded = decode_checkpoint(&bytes, restored.shared_timestamps()).unwrap();
    assert_eq!(loaded.base_seq, 42);
    restored.restore(loaded.tables).unwrap();
    assert_eq!(dump(&restored), dump(&storage));
    assert_eq!(restored.stats().total.rows, storage.stats().total.rows);
    // And it keeps working: sealing merges the restored out-of-order row.
    restored.seal_all();
    storage.seal_all();
    assert_eq!(dump(&restored), dump(&storage));
}

#[test]
fn damaged_checkpoints_are_refused_with_an_offset() {
    let bytes = checkpoint_bytes(&checkpoint_store());
    for cut in 0..bytes.len() {
        let err = decode_checkpoint(&bytes[..cut], &Arc::default()).unwrap_err();
        assert!(err.to_string().contains("byte"), "cut {cut}: {err}");
    }
    for bit in (0..bytes.len() * 8).step_by(7) {
        let mut damaged = bytes.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(
            decode_checkpoint(&damaged, &Arc::default()).is_err(),
            "bit {bit} went unnoticed"
        );
    }
}

/// A version 2 payload cut anywhere is an error, and a flipped bit never panics.
#[test]
fn truncated_or_flipped_v2_payloads_fail_cleanly() {
    let mut b = WriteBatch::new();
    for host in ["a", "b"] {
        let tags = TagSet::new([("host", host), ("dc", "eu")]).unwrap();
        let s = b.series("cpu", tags, &["user", "idle"]);
        s.with_kind("user", FieldKind::Counter);
        for t in [i64::MIN, -5, 0, 10, i64::MAX] {
            s.push(t, &[f64::NAN, -0.0]).unwrap();
        }
    }
    let bytes = encode(&b);
    for cut in 0..bytes.len() {
        assert!(
            decode_batch(&mut Reader::new(&bytes[..cut], 0), 2).is_err(),
            "cut at {cut}"
        );
    }
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let _ = decode_batch(&mut Reader::new(&flipped, 0), 2);
    }
    let back = decode_batch(&mut Reader::new(&bytes, 0), 2).unwrap();
    assert_eq!(canonical(&back), canonical(&b));

    // A byte after either section is named, with its offset.
    let trailing =
        |bytes: &[u8], version: u8| match decode_batch(&mut Reader::new(bytes, 0), version) {
            Err(FormatError::Invalid { offset, message }) => (offset, message),
            other => panic!("expected an error, got {other:?}"),
        };
    let mut after_strings = bytes.clone();
    after_strings.push(0);
    assert_eq!(
        trailing(&after_strings, 2),
        (
            bytes.len() as u64,
            "bytes after the last string".to_string()
        )
    );
    let items = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let mut after_items = ((items + 1) as u32).to_le_bytes().to_vec();
    after_items.extend_from_slice(&bytes[4..4 + items]);
    after_items.push(0);
    after_items.extend_from_slice(&bytes[4 + items..]);
    assert_eq!(
        trailing(&after_items, 2),
        ((4 + items) as u64, "bytes after the last item".to_string())
    );
    let mut w = Writer::default();
    encode_v1(&b, &mut w);
    let v1_len = w.buf.len();
    w.buf.push(0);
    assert_eq!(
        trailing(&w.buf, 1),
        (v1_len as u64, "bytes after the last item".to_string())
    );
}

/// Varints round-trip at the edges; an overlong or overflowing one, or a count the
/// bytes left cannot hold, is an error naming what and where.
#[test]
fn varints_and_counts_refuse_what_cannot_be() {
    let mut w = Writer::default();
    for v in [0, 1, 127, 128, u64::MAX] {
        w.var(v);
    }
    for v in [0, -1, i64::MIN, i64::MAX] {
        w.zigzag(v);
    }
    let mut r = Reader::new(&w.buf, 0);
    for v in [0, 1, 127, 128, u64::MAX] {
        assert_eq!(r.var("v").unwrap(), v);
    }
    for v in [0, -1, i64::MIN, i64::MAX] {
        assert_eq!(r.zigzag("z").unwrap(), v);
    }
    assert!(r.is_empty());
    // u64::MAX with its last byte one too large, and eleven bytes.
    let mut over = vec![0xff; 9];
    over.push(0x02);
    let mut long = vec![0x80; 10];
    long.push(0x00);
    for bytes in [over, long] {
        let err = Reader::new(&bytes, 100).var("tag count").unwrap_err();
        assert!(
            matches!(&err, super::FormatError::Invalid { offset: 100, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("tag count is not a 64-bit varint"),
            "{err}"
        );
    }
    let err = Reader::new(&[5, 0, 0], 7)
        .var_count(1, "string count")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("string count 5 exceeds the bytes left"),
        "{err}"
    );
    let err = Reader::new(&[3, 0, 0, 0, 9], 0)
        .count(1, "item count")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("item count 3 exceeds the bytes left"),
        "{err}"
    );
}

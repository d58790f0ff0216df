//! Feeds arbitrary bytes to the chunk column decoders, walking the input as a sequence
//! of concatenated blocks the way a chunk reader does. Decoders must never panic; a
//! block that decodes must re-encode and decode to the same bits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metricstore::storage::codec::{
    decode_floats, decode_timestamps, encode_floats, encode_timestamps, peek_header,
};

/// Far above any real chunk. Constant and ConstantStep blocks may legitimately declare
/// up to u32::MAX rows from a dozen bytes; decoding those would only test the allocator.
const MAX_ROWS: u32 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let mut pos = 0;
    while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
        let header = match peek_header(rest) {
            Ok(h) if h.rows > MAX_ROWS => return,
            Ok(h) => Some(h),
            Err(_) => None,
        };
        let mut ts = Vec::new();
        let mut fs = Vec::new();
        // Both decoders see every block: the wrong kind must be refused cleanly.
        let t = decode_timestamps(rest, &mut ts);
        let f = decode_floats(rest, &mut fs);
        let used = match (t, f) {
            (Ok(used), Err(_)) => {
                assert_eq!(Some(ts.len()), header.map(|h| h.rows as usize));
                let mut again = Vec::new();
                encode_timestamps(&ts, &mut again);
                let mut back = Vec::new();
                assert_eq!(decode_timestamps(&again, &mut back), Ok(again.len()));
                assert_eq!(back, ts);
                used
            }
            (Err(_), Ok(used)) => {
                assert_eq!(Some(fs.len()), header.map(|h| h.rows as usize));
                let mut again = Vec::new();
                encode_floats(&fs, &mut again);
                let mut back = Vec::new();
                assert_eq!(decode_floats(&again, &mut back), Ok(again.len()));
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&back), bits(&fs));
                used
            }
            (Err(_), Err(_)) => {
                assert!(
                    ts.is_empty() && fs.is_empty(),
                    "failed decode left output behind"
                );
                return;
            }
            (Ok(_), Ok(_)) => panic!("a block decoded as both column kinds: {header:?}"),
        };
        assert!(
            used > 0 && used <= rest.len(),
            "consumed {used} of {}",
            rest.len()
        );
        pos += used;
    }
});

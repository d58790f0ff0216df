//! Headers, compression and size limits.

use super::*;

const LIMIT: usize = 1 << 20;

fn body() -> Vec<u8> {
    let labels = vec![("__name__".to_string(), "up".to_string())];
    encode_v1(&[(labels, (0..100).map(|i| (i, i as f64)).collect())], &[])
}

fn decode_snappy(body: &[u8], version: Version) -> Result<Decoded, RemoteWriteError> {
    decode(body, version, Encoding::Snappy, LIMIT)
}

#[test]
fn corrupt_compression_is_refused() {
    let e = decode_snappy(b"", Version::V1).unwrap_err().to_string();
    assert!(e.starts_with("invalid snappy request body: "), "{e}");
    let mut body = body();
    body.truncate(body.len() / 2);
    let e = decode_snappy(&body, Version::V1).unwrap_err().to_string();
    assert!(e.starts_with("invalid snappy request body: "), "{e}");
    let e = decode(b"not zstd", Version::V1, Encoding::Zstd, LIMIT).unwrap_err();
    assert!(
        e.to_string().starts_with("invalid zstd request body: "),
        "{e}"
    );
}

#[test]
fn bodies_over_the_limit_are_refused_before_allocating() {
    // A snappy header claiming 4 GiB: allocating it first would take 4 GiB.
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    let e = decode_snappy(&body, Version::V1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "snappy request body decompresses to 4294967295 bytes, over the limit of 1048576 bytes"
    );
    let big = vec![7u8; 100_000];
    let snappy = snap::raw::Encoder::new().compress_vec(&big).unwrap();
    assert!(decode(&snappy, Version::V1, Encoding::Snappy, 99_999).is_err());
    // zstd with the size in the frame header, and streamed without it.
    let sized = zstd::bulk::compress(&big, 3).unwrap();
    let e = decode(&sized, Version::V1, Encoding::Zstd, 1000).unwrap_err();
    assert_eq!(
        e.to_string(),
        "zstd request body decompresses to 100000 bytes, over the limit of 1000 bytes"
    );
    let mut streamed = Vec::new();
    let mut encoder = zstd::stream::write::Encoder::new(&mut streamed, 3).unwrap();
    std::io::Write::write_all(&mut encoder, &big).unwrap();
    encoder.finish().unwrap();
    assert!(matches!(
        zstd::zstd_safe::get_frame_content_size(&streamed),
        Ok(None)
    ));
    let e = decode(&streamed, Version::V1, Encoding::Zstd, 99_999).unwrap_err();
    assert_eq!(
        e.to_string(),
        "zstd request body decompresses to more bytes, over the limit of 99999 bytes"
    );
    assert_eq!(
        decompress(&streamed, Encoding::Zstd, 100_000)
            .unwrap()
            .len(),
        100_000
    );
    let e = decode(&big, Version::V1, Encoding::Identity, 10).unwrap_err();
    assert!(matches!(
        e,
        RemoteWriteError::TooLarge {
            declared: Some(100_000),
            ..
        }
    ));
}

#[test]
fn content_type_picks_the_version() {
    let v = |ct| version_from_content_type(ct).map_err(|e| e.to_string());
    assert_eq!(v(None), Ok(Version::V1));
    assert_eq!(v(Some(" ")), Ok(Version::V1));
    assert_eq!(v(Some("application/x-protobuf")), Ok(Version::V1));
    for version in [Version::V1, Version::V2] {
        assert_eq!(v(Some(version.content_type())), Ok(version));
    }
    assert_eq!(
        v(Some(
            "Application/X-Protobuf; charset=utf-8; Proto=\"io.prometheus.write.v2.Request\""
        )),
        Ok(Version::V2)
    );
    assert_eq!(
        v(Some("application/json")),
        Err(
            "unsupported Content-Type \"application/json\": expected application/x-protobuf, \
             optionally with proto=prometheus.WriteRequest (remote write 1.0) or \
             proto=io.prometheus.write.v2.Request (2.0)"
                .to_string()
        )
    );
    assert!(v(Some("application/x-protobuf;proto=foo.Bar")).is_err());
}

#[test]
fn content_encoding_picks_the_decompressor() {
    let e = |ce| encoding_from_header(ce).map_err(|e| e.to_string());
    assert_eq!(e(None), Ok(Encoding::Snappy));
    assert_eq!(e(Some("")), Ok(Encoding::Snappy));
    assert_eq!(e(Some("snappy")), Ok(Encoding::Snappy));
    assert_eq!(e(Some(" ZSTD ")), Ok(Encoding::Zstd));
    assert_eq!(e(Some("identity")), Ok(Encoding::Identity));
    assert_eq!(
        e(Some("gzip")),
        Err("unsupported Content-Encoding \"gzip\": expected snappy, zstd or identity".into())
    );
}

#[test]
fn zstd_window_follows_the_limit() {
    assert_eq!(zstd_window_log(0), 23);
    assert_eq!(zstd_window_log(1 << 24), 24);
    assert_eq!(zstd_window_log((1 << 24) + 1), 25);
    assert_eq!(zstd_window_log(usize::MAX), 27);
}

//! The `binary_windows` input format: one window per message, little-endian.
//!
//! | offset      | size      | field                                              |
//! |-------------|-----------|----------------------------------------------------|
//! | 0           | 4         | magic, the bytes `LAE1`                            |
//! | 4           | 2         | `T`, u16: window length (rows)                     |
//! | 6           | 2         | `F`, u16: features per row                         |
//! | 8           | 8         | `end_ts_ms`, i64: epoch milliseconds of the last row |
//! | 16          | 2         | `K`, u16: key length in bytes (0 → use the Kafka key) |
//! | 18          | K         | key, UTF-8                                         |
//! | 18 + K      | 4·T·F     | values, f32, row-major (row 0 = oldest)            |
//!
//! The payload must be exactly `18 + K + 4·T·F` bytes. There is no start
//! timestamp. [`encode_binary_window`] writes this layout.

use super::{check_ts, resolve_key, CodecError, Decoded, MAX_KEY_BYTES};

/// Magic prefix of the binary window encoding (version 1).
pub const BINARY_MAGIC: &[u8; 4] = b"LAE1";

/// Bytes before the key in the binary window encoding.
const BINARY_HEADER_BYTES: usize = 18;

/// Reads `N` bytes at `at`; the caller has checked the length.
fn take<const N: usize>(payload: &[u8], at: usize) -> Result<[u8; N], CodecError> {
    payload
        .get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(CodecError::BadBinary("truncated header"))
}

pub(super) fn decode_window(
    kafka_key: Option<&[u8]>,
    payload: &[u8],
    expect_features: usize,
    expect_window: usize,
) -> Result<Decoded, CodecError> {
    if payload.len() < BINARY_HEADER_BYTES {
        return Err(CodecError::BadBinary("shorter than the 18-byte header"));
    }
    if &payload[..4] != BINARY_MAGIC {
        return Err(CodecError::BadBinary("magic is not LAE1"));
    }
    let t = usize::from(u16::from_le_bytes(take(payload, 4)?));
    let f = usize::from(u16::from_le_bytes(take(payload, 6)?));
    let end_ts_ms = i64::from_le_bytes(take(payload, 8)?);
    let key_len = usize::from(u16::from_le_bytes(take(payload, 16)?));
    // Lengths first: a wrong total means the header itself is not trustworthy.
    let values_at = BINARY_HEADER_BYTES + key_len;
    let expected_len = values_at.saturating_add(t.saturating_mul(f).saturating_mul(4));
    if payload.len() != expected_len {
        return Err(CodecError::BadBinary(
            "length does not match the header (18 + key length + 4·T·F)",
        ));
    }
    if t != expect_window {
        return Err(CodecError::WrongWindowLength {
            expected: expect_window,
            got: t,
        });
    }
    if f != expect_features {
        return Err(CodecError::WrongFeatureCount {
            expected: expect_features,
            got: f,
        });
    }
    let end_ts_ms = check_ts("end_ts", end_ts_ms)?;
    let body_key = if key_len == 0 {
        None
    } else {
        Some(
            std::str::from_utf8(&payload[BINARY_HEADER_BYTES..values_at])
                .map_err(|_| CodecError::InvalidUtf8 { what: "key" })?,
        )
    };
    let key = resolve_key(body_key, kafka_key)?;
    let mut values = Vec::with_capacity(t * f);
    for (index, chunk) in payload[values_at..].chunks_exact(4).enumerate() {
        let x = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if !x.is_finite() {
            return Err(CodecError::NonFinite {
                field: "values",
                index,
            });
        }
        values.push(x);
    }
    Ok(Decoded::Window {
        key,
        end_ts_ms,
        start_ts_ms: None,
        values,
    })
}

/// Encodes a window in the layout of the module docs, for producers
/// and tests. An empty `key` means "use the Kafka message key".
///
/// Refuses what [`super::decode`] would refuse about the shape: T or F above
/// `u16::MAX`, `values.len() != t·f`, a key over [`MAX_KEY_BYTES`]. Values
/// are written as given (a NaN is encoded, and rejected by the decoder).
pub fn encode_binary_window(
    key: &str,
    end_ts_ms: i64,
    t: usize,
    f: usize,
    values: &[f32],
) -> Result<Vec<u8>, CodecError> {
    let (Ok(t16), Ok(f16)) = (u16::try_from(t), u16::try_from(f)) else {
        return Err(CodecError::BadBinary("T and F must fit in u16"));
    };
    if values.len() != t * f {
        return Err(CodecError::BadBinary("values.len() must equal T·F"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(CodecError::BadKey { len: key.len() });
    }
    // MAX_KEY_BYTES < u16::MAX, so the conversion cannot fail.
    let key_len = u16::try_from(key.len()).map_err(|_| CodecError::BadKey { len: key.len() })?;
    let mut out = Vec::with_capacity(BINARY_HEADER_BYTES + key.len() + 4 * values.len());
    out.extend_from_slice(BINARY_MAGIC);
    out.extend_from_slice(&t16.to_le_bytes());
    out.extend_from_slice(&f16.to_le_bytes());
    out.extend_from_slice(&end_ts_ms.to_le_bytes());
    out.extend_from_slice(&key_len.to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    for x in values {
        out.extend_from_slice(&x.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{kind, MAX, NEW_YEAR_MS};
    use super::super::{decode, Format};
    use super::*;

    #[test]
    fn binary_layout_is_as_documented() {
        // T = 1, F = 1, end_ts = 1, key "k", value 1.0 (0x3f800000).
        let bytes = encode_binary_window("k", 1, 1, 1, &[1.0]).unwrap();
        let expected: Vec<u8> = [
            &b"LAE1"[..],
            &[1, 0],
            &[1, 0],
            &[1, 0, 0, 0, 0, 0, 0, 0],
            &[1, 0],
            b"k",
            &[0x00, 0x00, 0x80, 0x3f],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn binary_round_trip_and_key_fallback() {
        let values = [0.5, -1.25, 3.0, 4.5, 1e-3, -0.0];
        let bytes = encode_binary_window("pump-7", NEW_YEAR_MS, 3, 2, &values).unwrap();
        assert_eq!(bytes.len(), 18 + 6 + 4 * 6);
        let d = decode(
            Format::BinaryWindows,
            Some(b"other"),
            Some(&bytes),
            2,
            3,
            MAX,
        )
        .unwrap();
        assert_eq!(
            d,
            Decoded::Window {
                key: "pump-7".into(),
                end_ts_ms: NEW_YEAR_MS,
                start_ts_ms: None,
                values: values.to_vec(),
            }
        );
        let bytes = encode_binary_window("", 7, 1, 2, &[1.0, 2.0]).unwrap();
        let d = decode(Format::BinaryWindows, Some(b"kk"), Some(&bytes), 2, 1, MAX).unwrap();
        assert!(matches!(d, Decoded::Window { ref key, end_ts_ms: 7, .. } if key == "kk"));
        let r = decode(Format::BinaryWindows, None, Some(&bytes), 2, 1, MAX);
        assert_eq!(kind(r), "missing_key");
    }

    #[test]
    fn binary_rejections() {
        let good = encode_binary_window("k", 5, 2, 2, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let dec = |b: &[u8], f: usize, t: usize| {
            decode(Format::BinaryWindows, None, Some(b), f, t, MAX)
                .unwrap_err()
                .kind()
        };
        assert!(decode(Format::BinaryWindows, None, Some(&good), 2, 2, MAX).is_ok());
        let mut bad_magic = good.clone();
        bad_magic[3] = b'2';
        assert_eq!(dec(&bad_magic, 2, 2), "bad_binary");
        assert_eq!(dec(&good[..10], 2, 2), "bad_binary");
        assert_eq!(dec(&good[..good.len() - 1], 2, 2), "bad_binary");
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(dec(&longer, 2, 2), "bad_binary");
        assert_eq!(dec(&good, 2, 3), "wrong_window_length");
        assert_eq!(dec(&good, 1, 2), "wrong_feature_count");
        let nan = encode_binary_window("k", 5, 2, 2, &[1.0, 2.0, f32::NAN, 4.0]).unwrap();
        assert_eq!(
            decode(Format::BinaryWindows, None, Some(&nan), 2, 2, MAX).unwrap_err(),
            CodecError::NonFinite {
                field: "values",
                index: 2
            }
        );
        let inf = encode_binary_window("k", 5, 1, 1, &[f32::NEG_INFINITY]).unwrap();
        assert_eq!(dec(&inf, 1, 1), "non_finite");
        let neg_ts = encode_binary_window("k", -5, 1, 1, &[1.0]).unwrap();
        assert_eq!(dec(&neg_ts, 1, 1), "bad_timestamp");
        let mut bad_key = encode_binary_window("kk", 5, 1, 1, &[1.0]).unwrap();
        bad_key[18] = 0xff;
        assert_eq!(dec(&bad_key, 1, 1), "invalid_utf8");
        // The encoder refuses shapes the decoder could not read back.
        assert_eq!(
            encode_binary_window("k", 5, 2, 2, &[1.0])
                .unwrap_err()
                .kind(),
            "bad_binary"
        );
        assert_eq!(
            encode_binary_window("k", 5, 70_000, 0, &[])
                .unwrap_err()
                .kind(),
            "bad_binary"
        );
        let long = "x".repeat(257);
        assert_eq!(
            encode_binary_window(&long, 5, 1, 1, &[1.0])
                .unwrap_err()
                .kind(),
            "bad_key"
        );
    }
}

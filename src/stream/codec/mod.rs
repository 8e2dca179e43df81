//! Input decoding for the daemon's Kafka topics: what a valid input message
//! is, and the reason a message is rejected (a [`CodecError`] with a stable
//! [`CodecError::kind`]). Nothing here touches Kafka: the glue hands over the
//! message key and payload as bytes. What the daemon publishes is in
//! [`super::records`]; the headers of a dead letter in [`super::dead_letter`].
//!
//! ## Input formats ([`Format`], chosen per input topic)
//!
//! - `points`, one observation per message, and `windows`, one pre-cut window
//!   per message: JSON objects (their fields are documented in `json.rs`);
//! - `binary_windows`: a compact little-endian window encoding (its layout is
//!   documented in `binary.rs`), written by [`encode_binary_window`].
//!
//! ## Validation rules (all formats)
//!
//! - Payload: absent or zero bytes → `empty`; more than `max_bytes` →
//!   `oversized` (checked before any parsing).
//! - Key: the body's key if present and non-empty, else the Kafka message
//!   key (`missing_key` when neither gives one); valid UTF-8
//!   (`invalid_utf8` otherwise), at most [`MAX_KEY_BYTES`] bytes (`bad_key`).
//! - Numbers: every value must be finite as an `f32`. `NaN`/`Infinity`
//!   strings (JSON has no such literals), `null` (what JavaScript's
//!   `JSON.stringify` writes for NaN), numbers beyond the `f32` range, and
//!   binary NaN/Inf bit patterns are all `non_finite`.
//! - Timestamps: `0 ≤ ts ≤` [`MAX_TS_MS`] (9999-12-31T23:59:59.999Z);
//!   negative, fractional or larger values, and strings that are not RFC
//!   3339, are `bad_timestamp`.
//!
//! The error kinds ([`CodecError::KINDS`]) are a fixed, small set: they are
//! a metrics label and a dead-letter header, so they never carry data.

mod binary;
mod json;

pub use binary::{encode_binary_window, BINARY_MAGIC};
pub use json::{encode_point, encode_window};

use serde::{Deserialize, Serialize};

/// Longest accepted series key, in bytes. Keys end up in output records
/// and logs; a bound keeps a misbehaving producer from inflating them.
pub const MAX_KEY_BYTES: usize = 256;

/// Latest accepted timestamp: 9999-12-31T23:59:59.999Z in epoch ms. Larger
/// values are almost certainly a unit mix-up (µs or ns) and cannot be
/// printed as RFC 3339 anyway.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Which wire format an input topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON, one observation per message; the daemon windows them.
    Points,
    /// JSON, one complete window per message.
    Windows,
    /// The compact binary window encoding (layout in `binary.rs`).
    BinaryWindows,
}

/// A successfully decoded and validated input message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// One observation of a series.
    Point {
        /// Series key.
        key: String,
        /// Event time, epoch milliseconds.
        ts_ms: i64,
        /// Exactly F finite values.
        values: Vec<f32>,
    },
    /// A complete window of a series.
    Window {
        /// Series key.
        key: String,
        /// Event time of the last row, epoch milliseconds.
        end_ts_ms: i64,
        /// Event time of the first row, when the producer sent it.
        start_ts_ms: Option<i64>,
        /// T·F finite values, row-major, oldest row first.
        values: Vec<f32>,
    },
}

/// Why an input message was rejected. Each variant maps to one
/// [`kind`](CodecError::kind), a stable low-cardinality string for the
/// dead-letter header and the metrics label; the `Display` message adds the
/// detail a human needs (which field, expected vs. got) without echoing
/// payload data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The message has no payload or a zero-length one.
    #[error("empty payload")]
    Empty,
    /// The payload is larger than the configured maximum.
    #[error("payload of {len} bytes exceeds the maximum of {max} bytes")]
    Oversized {
        /// Payload length in bytes.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The payload is not JSON (syntax error, trailing data…).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The payload or the key is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// `"payload"`, `"key"` or `"kafka key"`.
        what: &'static str,
    },
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// The field (`"body"` for the top level).
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// A point or a window row does not have F values.
    #[error("expected {expected} feature values, got {got}")]
    WrongFeatureCount {
        /// F of the model.
        expected: usize,
        /// What the message carries.
        got: usize,
    },
    /// A window does not have T rows.
    #[error("expected a window of {expected} steps, got {got}")]
    WrongWindowLength {
        /// T of the model.
        expected: usize,
        /// What the message carries.
        got: usize,
    },
    /// A value is NaN, infinite, null, or outside the f32 range.
    #[error("value {index} of `{field}` is not a finite f32")]
    NonFinite {
        /// The field holding the value.
        field: &'static str,
        /// Row-major index of the value within the field.
        index: usize,
    },
    /// A timestamp is malformed or out of range.
    #[error("bad timestamp in `{field}`: {reason}")]
    BadTimestamp {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Neither the body nor the Kafka message key gives a series key.
    #[error("no series key in the body or the Kafka message key")]
    MissingKey,
    /// The series key is too long.
    #[error("series key of {len} bytes exceeds {max} bytes", max = MAX_KEY_BYTES)]
    BadKey {
        /// Key length in bytes.
        len: usize,
    },
    /// The binary window encoding is malformed (magic, lengths).
    #[error("bad binary window: {0}")]
    BadBinary(&'static str),
}

impl CodecError {
    /// Every value [`kind`](Self::kind) can return, so metrics can be
    /// pre-registered with each label value.
    pub const KINDS: &'static [&'static str] = &[
        "empty",
        "oversized",
        "invalid_json",
        "invalid_utf8",
        "missing_field",
        "wrong_type",
        "wrong_feature_count",
        "wrong_window_length",
        "non_finite",
        "bad_timestamp",
        "missing_key",
        "bad_key",
        "bad_binary",
    ];

    /// The machine-readable reason: stable across releases, one of
    /// [`KINDS`](Self::KINDS).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Oversized { .. } => "oversized",
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::MissingField(_) => "missing_field",
            Self::WrongType { .. } => "wrong_type",
            Self::WrongFeatureCount { .. } => "wrong_feature_count",
            Self::WrongWindowLength { .. } => "wrong_window_length",
            Self::NonFinite { .. } => "non_finite",
            Self::BadTimestamp { .. } => "bad_timestamp",
            Self::MissingKey => "missing_key",
            Self::BadKey { .. } => "bad_key",
            Self::BadBinary(_) => "bad_binary",
        }
    }
}

/// Decodes and validates one input message.
///
/// `kafka_key` is the message key, used as the series key when the body has
/// none; `expect_features` (F) and `expect_window` (T) come from the model's
/// manifest (`expect_window` is ignored for points); `max_bytes` bounds the
/// payload before any parsing, so one huge message cannot cost much.
pub fn decode(
    format: Format,
    kafka_key: Option<&[u8]>,
    payload: Option<&[u8]>,
    expect_features: usize,
    expect_window: usize,
    max_bytes: usize,
) -> Result<Decoded, CodecError> {
    let payload = match payload {
        Some(p) if !p.is_empty() => p,
        _ => return Err(CodecError::Empty),
    };
    if payload.len() > max_bytes {
        return Err(CodecError::Oversized {
            len: payload.len(),
            max: max_bytes,
        });
    }
    match format {
        Format::Points => json::decode_point(kafka_key, payload, expect_features),
        Format::Windows => json::decode_window(kafka_key, payload, expect_features, expect_window),
        Format::BinaryWindows => {
            binary::decode_window(kafka_key, payload, expect_features, expect_window)
        }
    }
}

/// The series key: the body's `key` if present and non-empty, else the
/// Kafka key.
fn resolve_key(body_key: Option<&str>, kafka_key: Option<&[u8]>) -> Result<String, CodecError> {
    let key = match body_key {
        Some(k) if !k.is_empty() => k,
        _ => match kafka_key {
            Some(k) if !k.is_empty() => {
                std::str::from_utf8(k).map_err(|_| CodecError::InvalidUtf8 { what: "kafka key" })?
            }
            _ => return Err(CodecError::MissingKey),
        },
    };
    if key.len() > MAX_KEY_BYTES {
        return Err(CodecError::BadKey { len: key.len() });
    }
    Ok(key.to_owned())
}

/// A timestamp in epoch milliseconds, checked against the accepted range.
fn check_ts(field: &'static str, ms: i64) -> Result<i64, CodecError> {
    if ms < 0 {
        Err(CodecError::BadTimestamp {
            field,
            reason: "before 1970-01-01",
        })
    } else if ms > MAX_TS_MS {
        Err(CodecError::BadTimestamp {
            field,
            reason: "after year 9999 (microseconds or nanoseconds instead of milliseconds?)",
        })
    } else {
        Ok(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// 2026-01-01T00:00:00Z in epoch ms: 2025-01-01 is 1_735_689_600 s,
    /// plus 365 days × 86_400 s.
    pub(super) const NEW_YEAR_MS: i64 = 1_767_225_600_000;
    pub(super) const MAX: usize = 1 << 16;

    pub(super) fn point(body: &str, f: usize) -> Result<Decoded, CodecError> {
        decode(Format::Points, None, Some(body.as_bytes()), f, 0, MAX)
    }

    pub(super) fn window(body: &str, t: usize, f: usize) -> Result<Decoded, CodecError> {
        decode(Format::Windows, None, Some(body.as_bytes()), f, t, MAX)
    }

    pub(super) fn kind(r: Result<Decoded, CodecError>) -> &'static str {
        r.unwrap_err().kind()
    }

    #[test]
    fn key_problems() {
        let no_key = br#"{"ts":5,"value":1}"#;
        let k = |key: Option<&[u8]>| {
            decode(Format::Points, key, Some(no_key), 1, 0, MAX)
                .unwrap_err()
                .kind()
        };
        assert_eq!(k(None), "missing_key");
        assert_eq!(k(Some(b"")), "missing_key");
        assert_eq!(k(Some(b"\xff\xfe")), "invalid_utf8");
        assert_eq!(k(Some(&[b'k'; 257])), "bad_key");
        assert!(decode(Format::Points, Some(&[b'k'; 256]), Some(no_key), 1, 0, MAX).is_ok());
        assert_eq!(
            kind(point(r#"{"key":7,"ts":5,"value":1}"#, 1)),
            "wrong_type"
        );
    }

    #[test]
    fn empty_and_oversized_payloads() {
        assert_eq!(kind(decode(Format::Points, None, None, 1, 0, MAX)), "empty");
        assert_eq!(
            kind(decode(Format::Windows, None, Some(b""), 1, 1, MAX)),
            "empty"
        );
        let body = br#"{"key":"a","ts":5,"value":1}"#;
        let n = body.len();
        assert!(decode(Format::Points, None, Some(body), 1, 0, n).is_ok());
        let err = decode(Format::Points, None, Some(body), 1, 0, n - 1).unwrap_err();
        assert_eq!(err, CodecError::Oversized { len: n, max: n - 1 });
        assert_eq!(err.kind(), "oversized");
        // Checked before parsing: garbage that is too big is "oversized".
        let junk = vec![0xffu8; 100];
        let err = decode(Format::BinaryWindows, None, Some(&junk), 1, 1, 99).unwrap_err();
        assert_eq!(err.kind(), "oversized");
    }

    /// Every documented kind is reachable, and nothing else is produced.
    #[test]
    fn kinds_are_the_documented_set() {
        let errors = [
            CodecError::Empty,
            CodecError::Oversized { len: 2, max: 1 },
            CodecError::InvalidJson("x".into()),
            CodecError::InvalidUtf8 { what: "key" },
            CodecError::MissingField("ts"),
            CodecError::WrongType {
                field: "ts",
                expected: "x",
            },
            CodecError::WrongFeatureCount {
                expected: 1,
                got: 2,
            },
            CodecError::WrongWindowLength {
                expected: 1,
                got: 2,
            },
            CodecError::NonFinite {
                field: "values",
                index: 0,
            },
            CodecError::BadTimestamp {
                field: "ts",
                reason: "x",
            },
            CodecError::MissingKey,
            CodecError::BadKey { len: 300 },
            CodecError::BadBinary("x"),
        ];
        let produced: BTreeSet<&str> = errors.iter().map(CodecError::kind).collect();
        let documented: BTreeSet<&str> = CodecError::KINDS.iter().copied().collect();
        assert_eq!(produced, documented);
        assert_eq!(documented.len(), CodecError::KINDS.len());
        assert!(documented.iter().all(|k| k
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')));
    }

    #[test]
    fn format_is_snake_case_in_config() {
        let f: Format = serde_json::from_str(r#""binary_windows""#).unwrap();
        assert_eq!(f, Format::BinaryWindows);
        assert_eq!(
            serde_json::to_string(&Format::Points).unwrap(),
            r#""points""#
        );
        assert!(serde_json::from_str::<Format>(r#""BinaryWindows""#).is_err());
    }
}

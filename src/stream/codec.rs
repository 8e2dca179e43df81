//! Input decoding and output encoding for the daemon's Kafka topics.
//!
//! This module owns the wire formats: what a valid input message is, the
//! reason a message is rejected (a [`CodecError`] with a stable
//! [`CodecError::kind`]), the JSON records the daemon publishes
//! ([`EmbeddingRecord`], [`AnomalyRecord`]) and the headers of a dead letter
//! ([`DeadLetterHeaders`]). Nothing here touches Kafka: the glue hands over
//! the message key and payload as bytes.
//!
//! ## Input formats ([`Format`], chosen per input topic)
//!
//! ### `points` — one observation per message (JSON object)
//!
//! ```json
//! {"key": "pump-7", "ts": "2026-01-01T00:00:00Z", "values": [1.5, 0.2]}
//! {"key": "pump-7", "ts": 1767225600000, "value": 1.5}
//! ```
//!
//! - `key`: the series key. Absent, `null` or `""` → the Kafka message key
//!   is used; if that is absent or empty too → `missing_key`.
//! - `ts`: RFC 3339 string, or an integer: epoch seconds below 10^11, epoch
//!   milliseconds otherwise (the one rule for integers, [`crate::data::time`]).
//! - `values`: exactly F numbers; or `value`: one number, only when F = 1.
//!   Giving both is `wrong_type`.
//!
//! ### `windows` — one pre-cut window per message (JSON object)
//!
//! ```json
//! {"key": "pump-7", "end_ts": 1767225660000, "start_ts": "2026-01-01T00:00:00Z",
//!  "values": [[1.5, 0.2], [1.6, 0.1], ...]}
//! ```
//!
//! - `key`: as for points.
//! - `end_ts` (required), `start_ts` (optional, must not be after `end_ts`):
//!   timestamps as for points.
//! - `values`: exactly T rows (oldest first) of exactly F numbers each.
//!
//! Unknown fields are ignored in both JSON formats, so producers can add
//! their own metadata.
//!
//! ### `binary_windows` — the compact window encoding (little-endian)
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
//!
//! ## Validation rules (all formats)
//!
//! - Payload: absent or zero bytes → `empty`; more than `max_bytes` →
//!   `oversized` (checked before any parsing).
//! - Key: valid UTF-8 (`invalid_utf8` otherwise), at most
//!   [`MAX_KEY_BYTES`] bytes (`bad_key`).
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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::data::time;

/// Longest accepted series key, in bytes. Keys end up in output records
/// and logs; a bound keeps a misbehaving producer from inflating them.
pub const MAX_KEY_BYTES: usize = 256;

/// Latest accepted timestamp: 9999-12-31T23:59:59.999Z in epoch ms. Larger
/// values are almost certainly a unit mix-up (µs or ns) and cannot be
/// printed as RFC 3339 anyway.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Magic prefix of the binary window encoding (version 1).
pub const BINARY_MAGIC: &[u8; 4] = b"LAE1";

/// Bytes before the key in the binary window encoding.
const BINARY_HEADER_BYTES: usize = 18;

/// Which wire format an input topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON, one observation per message; the daemon windows them.
    Points,
    /// JSON, one complete window per message.
    Windows,
    /// The binary window encoding described in the module docs.
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
        Format::Points => decode_point(kafka_key, payload, expect_features),
        Format::Windows => decode_json_window(kafka_key, payload, expect_features, expect_window),
        Format::BinaryWindows => {
            decode_binary_window(kafka_key, payload, expect_features, expect_window)
        }
    }
}

fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, CodecError> {
    let text =
        std::str::from_utf8(payload).map_err(|_| CodecError::InvalidUtf8 { what: "payload" })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        // serde_json refuses numbers beyond the f64 range with this message;
        // such a number is a value that cannot be represented, not bad syntax.
        let msg = e.to_string();
        if msg.starts_with("number out of range") {
            CodecError::NonFinite {
                field: "body",
                index: 0,
            }
        } else {
            CodecError::InvalidJson(msg)
        }
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(CodecError::WrongType {
            field: "body",
            expected: "a JSON object",
        }),
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

fn json_key(obj: &Map<String, Value>, kafka_key: Option<&[u8]>) -> Result<String, CodecError> {
    let body_key = match obj.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(CodecError::WrongType {
                field: "key",
                expected: "a string",
            })
        }
    };
    resolve_key(body_key, kafka_key)
}

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

fn json_ts(field: &'static str, value: &Value) -> Result<i64, CodecError> {
    match value {
        Value::String(s) => {
            let ms = time::parse_rfc3339(s).ok_or(CodecError::BadTimestamp {
                field,
                reason: "not an RFC 3339 timestamp",
            })?;
            check_ts(field, ms)
        }
        Value::Number(n) => match n.as_i64() {
            Some(n) => check_ts(field, time::epoch_integer_ms(n).unwrap_or(i64::MAX)),
            None if n.is_u64() => check_ts(field, i64::MAX),
            None => Err(CodecError::BadTimestamp {
                field,
                reason: "an epoch timestamp must be an integer",
            }),
        },
        _ => Err(CodecError::WrongType {
            field,
            expected: "an RFC 3339 string or integer epoch seconds or milliseconds",
        }),
    }
}

fn required<'a>(obj: &'a Map<String, Value>, field: &'static str) -> Result<&'a Value, CodecError> {
    match obj.get(field) {
        None => Err(CodecError::MissingField(field)),
        Some(v) => Ok(v),
    }
}

/// One JSON value as a finite f32; `index` is for the error message.
fn json_f32(field: &'static str, index: usize, value: &Value) -> Result<f32, CodecError> {
    let non_finite = CodecError::NonFinite { field, index };
    match value {
        Value::Number(n) => {
            // as_f64 is Some for every Number without arbitrary_precision.
            let x = n.as_f64().ok_or(non_finite.clone())? as f32;
            if x.is_finite() {
                Ok(x)
            } else {
                Err(non_finite)
            }
        }
        Value::Null => Err(non_finite),
        Value::String(s) => {
            let t = s.trim().trim_start_matches(['+', '-']).to_ascii_lowercase();
            if matches!(t.as_str(), "nan" | "inf" | "infinity") {
                Err(non_finite)
            } else {
                Err(CodecError::WrongType {
                    field,
                    expected: "numbers",
                })
            }
        }
        _ => Err(CodecError::WrongType {
            field,
            expected: "numbers",
        }),
    }
}

fn json_row(
    field: &'static str,
    row: &[Value],
    base_index: usize,
    expect_features: usize,
    out: &mut Vec<f32>,
) -> Result<(), CodecError> {
    if row.len() != expect_features {
        return Err(CodecError::WrongFeatureCount {
            expected: expect_features,
            got: row.len(),
        });
    }
    for (j, v) in row.iter().enumerate() {
        out.push(json_f32(field, base_index + j, v)?);
    }
    Ok(())
}

fn decode_point(
    kafka_key: Option<&[u8]>,
    payload: &[u8],
    expect_features: usize,
) -> Result<Decoded, CodecError> {
    let obj = parse_object(payload)?;
    let ts_ms = json_ts("ts", required(&obj, "ts")?)?;
    let values = match (obj.get("values"), obj.get("value")) {
        (Some(_), Some(_)) => {
            return Err(CodecError::WrongType {
                field: "values",
                expected: "given alone (not together with `value`)",
            })
        }
        (Some(Value::Array(row)), None) => {
            let mut out = Vec::with_capacity(row.len());
            json_row("values", row, 0, expect_features, &mut out)?;
            out
        }
        (Some(_), None) => {
            return Err(CodecError::WrongType {
                field: "values",
                expected: "an array of numbers",
            })
        }
        (None, Some(v)) => {
            if expect_features != 1 {
                return Err(CodecError::WrongFeatureCount {
                    expected: expect_features,
                    got: 1,
                });
            }
            vec![json_f32("value", 0, v)?]
        }
        (None, None) => return Err(CodecError::MissingField("values")),
    };
    let key = json_key(&obj, kafka_key)?;
    Ok(Decoded::Point { key, ts_ms, values })
}

fn decode_json_window(
    kafka_key: Option<&[u8]>,
    payload: &[u8],
    expect_features: usize,
    expect_window: usize,
) -> Result<Decoded, CodecError> {
    let obj = parse_object(payload)?;
    let end_ts_ms = json_ts("end_ts", required(&obj, "end_ts")?)?;
    let start_ts_ms = match obj.get("start_ts") {
        None | Some(Value::Null) => None,
        Some(v) => Some(json_ts("start_ts", v)?),
    };
    if start_ts_ms.is_some_and(|s| s > end_ts_ms) {
        return Err(CodecError::BadTimestamp {
            field: "start_ts",
            reason: "after end_ts",
        });
    }
    let rows = match required(&obj, "values")? {
        Value::Array(rows) => rows,
        _ => {
            return Err(CodecError::WrongType {
                field: "values",
                expected: "an array of rows",
            })
        }
    };
    if rows.len() != expect_window {
        return Err(CodecError::WrongWindowLength {
            expected: expect_window,
            got: rows.len(),
        });
    }
    let mut values = Vec::with_capacity(expect_window.saturating_mul(expect_features));
    for (i, row) in rows.iter().enumerate() {
        let Value::Array(row) = row else {
            return Err(CodecError::WrongType {
                field: "values",
                expected: "an array of rows, each an array of numbers",
            });
        };
        json_row(
            "values",
            row,
            i.saturating_mul(expect_features),
            expect_features,
            &mut values,
        )?;
    }
    let key = json_key(&obj, kafka_key)?;
    Ok(Decoded::Window {
        key,
        end_ts_ms,
        start_ts_ms,
        values,
    })
}

/// Reads `N` bytes at `at`; the caller has checked the length.
fn take<const N: usize>(payload: &[u8], at: usize) -> Result<[u8; N], CodecError> {
    payload
        .get(at..at + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(CodecError::BadBinary("truncated header"))
}

fn decode_binary_window(
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

/// Encodes a window in the binary layout of the module docs, for producers
/// and tests. An empty `key` means "use the Kafka message key".
///
/// Refuses what [`decode`] would refuse about the shape: T or F above
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

/// Encodes one observation as a `points` message: `{"key", "ts" (epoch
/// ms), "values"}`, for producers (`lstm-ae produce`, the demo) and tests.
/// An empty `key` is left out, so the daemon uses the Kafka message key.
pub fn encode_point(key: &str, ts_ms: i64, values: &[f32]) -> Vec<u8> {
    let body = if key.is_empty() {
        serde_json::json!({"ts": ts_ms, "values": values})
    } else {
        serde_json::json!({"key": key, "ts": ts_ms, "values": values})
    };
    body.to_string().into_bytes()
}

/// Encodes a window as a `windows` message: `{"key", "start_ts", "end_ts"
/// (epoch ms), "values": [[F numbers] × T rows]}`, oldest row first. An
/// empty `key` is left out (the Kafka key is used). Refuses
/// `values.len() != t·f` and `t == 0` or `f == 0`.
pub fn encode_window(
    key: &str,
    start_ts_ms: i64,
    end_ts_ms: i64,
    t: usize,
    f: usize,
    values: &[f32],
) -> Result<Vec<u8>, CodecError> {
    if t == 0 || f == 0 || values.len() != t * f {
        return Err(CodecError::WrongWindowLength {
            expected: t,
            got: values.len().checked_div(f).unwrap_or(0),
        });
    }
    let rows: Vec<&[f32]> = values.chunks_exact(f).collect();
    let mut body =
        serde_json::json!({"start_ts": start_ts_ms, "end_ts": end_ts_ms, "values": rows});
    if !key.is_empty() {
        body["key"] = Value::String(key.to_string());
    }
    Ok(body.to_string().into_bytes())
}

// ---------------------------------------------------------------- outputs

/// Formats epoch milliseconds as the RFC 3339 string used in every output
/// record: always UTC, always millisecond precision
/// (`2026-01-01T00:00:00.000Z`), so consumers can parse one fixed shape.
/// Timestamps outside chrono's range (impossible for validated input) fall
/// back to the decimal number of milliseconds.
pub fn format_ts_ms(ms: i64) -> String {
    time::format_timestamp_millis(ms)
}

/// One record on the embeddings topic: the encoder's vector for a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRecord {
    /// Series key.
    pub key: String,
    /// First row's event time, RFC 3339 ([`format_ts_ms`]).
    pub window_start_ts: String,
    /// Last row's event time, RFC 3339.
    pub window_end_ts: String,
    /// The model that produced it, so consumers can tell embedding spaces apart.
    pub model_version: String,
    /// The encoder's last hidden state.
    pub embedding: Vec<f32>,
    /// Reconstruction error of the window.
    pub score: f32,
    /// `score / threshold`: 1 or more is anomalous under `rule = "threshold"`.
    pub normalized_score: f32,
    /// The key's anomaly likelihood in `[0, 1]`; only with
    /// `anomalies.rule = "likelihood"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_likelihood: Option<f64>,
}

/// Where an output came from, so an alert can be traced to the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Offset of the message that completed the window.
    pub offset: i64,
}

/// One cell of a window that contributed much to its reconstruction error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    /// Row within the window, 0 = oldest.
    pub step: usize,
    /// Event time of that row, RFC 3339 (empty if unknown).
    pub ts: String,
    /// Feature name from the manifest.
    pub feature: String,
    /// Squared reconstruction error of the cell.
    pub squared_error: f32,
}

/// One record on the anomalies topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRecord {
    /// Series key.
    pub key: String,
    /// First row's event time, RFC 3339.
    pub window_start_ts: String,
    /// Last row's event time, RFC 3339.
    pub window_end_ts: String,
    /// Reconstruction error of the window.
    pub score: f32,
    /// The calibrated threshold the score exceeded.
    pub threshold: f32,
    /// `score / threshold`.
    pub normalized_score: f32,
    /// The key's anomaly likelihood; only with `anomalies.rule = "likelihood"`
    /// (it is then what crossed `anomalies.likelihood_threshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_likelihood: Option<f64>,
    /// Why it is anomalous: `threshold`, `likelihood` or `non_finite_score`
    /// (the score is infinite or NaN; `score` then reads 3.4028235e38).
    pub reason: String,
    /// The model that scored it.
    pub model_version: String,
    /// The cells with the largest squared error, largest first.
    pub contributors: Vec<Contributor>,
    /// The input message that completed the window.
    pub source: SourceRef,
}

/// One record on the optional scores topic: every window's score, without
/// the embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRecord {
    /// Series key.
    pub key: String,
    /// First row's event time, RFC 3339.
    pub window_start_ts: String,
    /// Last row's event time, RFC 3339.
    pub window_end_ts: String,
    /// The model that scored it.
    pub model_version: String,
    /// Reconstruction error of the window.
    pub score: f32,
    /// `score / threshold`.
    pub normalized_score: f32,
    /// The key's anomaly likelihood; only with `anomalies.rule = "likelihood"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_likelihood: Option<f64>,
}

impl ScoreRecord {
    /// The record as JSON bytes.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

impl EmbeddingRecord {
    /// The record as JSON bytes (non-finite floats become `null`).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

impl AnomalyRecord {
    /// The record as JSON bytes (non-finite floats become `null`).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// The `n` cells of a T×F squared-error matrix (row-major) with the largest
/// error, largest first; ties go to the earlier step, then the lower
/// feature index, so the explanation is deterministic.
///
/// An anomaly is only actionable if it says *where*: which time step and
/// which sensor. Non-finite errors are skipped (they say nothing useful);
/// a feature without a name is called `f<index>`, a step without a
/// timestamp gets an empty `ts`. Only the first `t·f` entries are read.
pub fn top_contributors(
    squared_error: &[f32],
    t: usize,
    f: usize,
    feature_names: &[String],
    timestamps: &[i64],
    n: usize,
) -> Vec<Contributor> {
    if f == 0 || n == 0 {
        return Vec::new();
    }
    let cells = squared_error.len().min(t.saturating_mul(f));
    let mut idx: Vec<usize> = (0..cells)
        .filter(|&i| squared_error[i].is_finite())
        .collect();
    let order = |a: &usize, b: &usize| {
        squared_error[*b]
            .total_cmp(&squared_error[*a])
            .then(a.cmp(b))
    };
    if idx.len() > n {
        idx.select_nth_unstable_by(n - 1, order);
        idx.truncate(n);
    }
    idx.sort_unstable_by(order);
    idx.into_iter()
        .map(|i| {
            let (step, feat) = (i / f, i % f);
            Contributor {
                step,
                ts: timestamps
                    .get(step)
                    .map(|&ms| format_ts_ms(ms))
                    .unwrap_or_default(),
                feature: feature_names
                    .get(feat)
                    .cloned()
                    .unwrap_or_else(|| format!("f{feat}")),
                squared_error: squared_error[i],
            }
        })
        .collect()
}

/// Headers of a dead letter: why the message was rejected and where it came
/// from. The dead letter's payload and key are the original bytes; the
/// headers make it possible to triage (by kind) and replay (by source)
/// without parsing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterHeaders {
    kind: &'static str,
    message: String,
    topic: String,
    partition: i32,
    offset: i64,
}

impl DeadLetterHeaders {
    /// Header carrying [`CodecError::kind`].
    pub const KIND: &'static str = "lstm_ae.error.kind";
    /// Header carrying the human-readable reason.
    pub const MESSAGE: &'static str = "lstm_ae.error.message";
    /// Header carrying the input topic.
    pub const SOURCE_TOPIC: &'static str = "lstm_ae.source.topic";
    /// Header carrying the input partition (decimal).
    pub const SOURCE_PARTITION: &'static str = "lstm_ae.source.partition";
    /// Header carrying the input offset (decimal).
    pub const SOURCE_OFFSET: &'static str = "lstm_ae.source.offset";
    /// Longest message kept, in bytes; headers are not the place for essays.
    pub const MAX_MESSAGE_BYTES: usize = 512;

    /// Headers for a message rejected by the codec.
    pub fn for_codec_error(error: &CodecError, topic: &str, partition: i32, offset: i64) -> Self {
        Self::new(error.kind(), &error.to_string(), topic, partition, offset)
    }

    /// Headers for a rejection with any other low-cardinality `kind`
    /// (a static string, so a data-dependent kind cannot slip in).
    pub fn new(
        kind: &'static str,
        message: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Self {
        let mut end = message.len().min(Self::MAX_MESSAGE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            kind,
            message: message[..end].to_owned(),
            topic: topic.to_owned(),
            partition,
            offset,
        }
    }

    /// The headers as (name, value) pairs, in a fixed order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            (Self::KIND, self.kind.to_owned()),
            (Self::MESSAGE, self.message.clone()),
            (Self::SOURCE_TOPIC, self.topic.clone()),
            (Self::SOURCE_PARTITION, self.partition.to_string()),
            (Self::SOURCE_OFFSET, self.offset.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// 2026-01-01T00:00:00Z in epoch ms: 2025-01-01 is 1_735_689_600 s,
    /// plus 365 days × 86_400 s.
    const NEW_YEAR_MS: i64 = 1_767_225_600_000;
    const MAX: usize = 1 << 16;

    fn point(body: &str, f: usize) -> Result<Decoded, CodecError> {
        decode(Format::Points, None, Some(body.as_bytes()), f, 0, MAX)
    }

    fn window(body: &str, t: usize, f: usize) -> Result<Decoded, CodecError> {
        decode(Format::Windows, None, Some(body.as_bytes()), f, t, MAX)
    }

    fn kind(r: Result<Decoded, CodecError>) -> &'static str {
        r.unwrap_err().kind()
    }

    #[test]
    fn point_with_values_and_rfc3339_ts() {
        let d = point(
            r#"{"key":"pump-7","ts":"2026-01-01T00:00:00Z","values":[1.5,-2,0.25]}"#,
            3,
        )
        .unwrap();
        assert_eq!(
            d,
            Decoded::Point {
                key: "pump-7".into(),
                ts_ms: NEW_YEAR_MS,
                values: vec![1.5, -2.0, 0.25]
            }
        );
    }

    #[test]
    fn point_with_single_value_epoch_ms_and_offset_timezone() {
        let d = point(r#"{"key":"a","ts":1767225600123,"value":3}"#, 1).unwrap();
        assert_eq!(
            d,
            Decoded::Point {
                key: "a".into(),
                ts_ms: NEW_YEAR_MS + 123,
                values: vec![3.0]
            }
        );
        // 01:00 at +01:00 is midnight UTC.
        let d = point(
            r#"{"key":"a","ts":"2026-01-01T01:00:00+01:00","value":3}"#,
            1,
        )
        .unwrap();
        assert!(matches!(d, Decoded::Point { ts_ms, .. } if ts_ms == NEW_YEAR_MS));
        // Epoch seconds are the same instant as their milliseconds.
        let d = point(r#"{"key":"a","ts":1767225600,"value":3}"#, 1).unwrap();
        assert!(matches!(d, Decoded::Point { ts_ms, .. } if ts_ms == NEW_YEAR_MS));
    }

    #[test]
    fn kafka_key_is_the_fallback_only() {
        let body = br#"{"ts":5,"value":1}"#;
        let d = decode(Format::Points, Some(b"pump-9"), Some(body), 1, 0, MAX).unwrap();
        assert!(matches!(d, Decoded::Point { ref key, .. } if key == "pump-9"));
        let body = br#"{"key":"","ts":5,"value":1}"#;
        let d = decode(Format::Points, Some(b"pump-9"), Some(body), 1, 0, MAX).unwrap();
        assert!(matches!(d, Decoded::Point { ref key, .. } if key == "pump-9"));
        let body = br#"{"key":"body-key","ts":5,"value":1}"#;
        let d = decode(Format::Points, Some(b"pump-9"), Some(body), 1, 0, MAX).unwrap();
        assert!(matches!(d, Decoded::Point { ref key, .. } if key == "body-key"));
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

    #[test]
    fn syntax_and_encoding_errors() {
        assert_eq!(kind(point("{not json", 1)), "invalid_json");
        assert_eq!(
            kind(point(r#"{"key":"a","ts":5,"value":1} x"#, 1)),
            "invalid_json"
        );
        let r = decode(Format::Points, None, Some(b"{\"key\":\"\xff\"}"), 1, 0, MAX);
        assert_eq!(kind(r), "invalid_utf8");
    }

    #[test]
    fn missing_fields() {
        assert_eq!(
            point(r#"{"key":"a","value":1}"#, 1).unwrap_err(),
            CodecError::MissingField("ts")
        );
        assert_eq!(
            point(r#"{"key":"a","ts":1}"#, 1).unwrap_err(),
            CodecError::MissingField("values")
        );
        assert_eq!(
            window(r#"{"key":"a","values":[[1]]}"#, 1, 1).unwrap_err(),
            CodecError::MissingField("end_ts")
        );
        assert_eq!(
            window(r#"{"key":"a","end_ts":1}"#, 1, 1).unwrap_err(),
            CodecError::MissingField("values")
        );
    }

    #[test]
    fn wrong_types() {
        for body in [
            r#"[1,2]"#,
            r#""a string""#,
            r#"{"key":"a","ts":1,"values":"1,2"}"#,
            r#"{"key":"a","ts":1,"values":[1,"two"]}"#,
            r#"{"key":"a","ts":1,"values":[1,[2]]}"#,
            r#"{"key":"a","ts":true,"values":[1,2]}"#,
            r#"{"key":"a","ts":1,"values":[1,2],"value":1}"#,
        ] {
            assert_eq!(kind(point(body, 2)), "wrong_type", "{body}");
        }
        assert_eq!(
            kind(window(r#"{"key":"a","end_ts":1,"values":[1,2]}"#, 2, 1)),
            "wrong_type"
        );
        assert_eq!(
            kind(window(r#"{"key":"a","end_ts":1,"values":{"a":1}}"#, 2, 1)),
            "wrong_type"
        );
    }

    #[test]
    fn wrong_shapes() {
        assert_eq!(
            point(r#"{"key":"a","ts":1,"values":[1,2,3]}"#, 2).unwrap_err(),
            CodecError::WrongFeatureCount {
                expected: 2,
                got: 3
            }
        );
        assert_eq!(
            kind(point(r#"{"key":"a","ts":1,"value":1}"#, 2)),
            "wrong_feature_count"
        );
        assert_eq!(
            window(r#"{"key":"a","end_ts":1,"values":[[1],[2]]}"#, 3, 1).unwrap_err(),
            CodecError::WrongWindowLength {
                expected: 3,
                got: 2
            }
        );
        assert_eq!(
            kind(window(
                r#"{"key":"a","end_ts":1,"values":[[1,2],[3]]}"#,
                2,
                2
            )),
            "wrong_feature_count"
        );
    }

    #[test]
    fn non_finite_values() {
        for v in [
            r#""NaN""#,
            r#""nan""#,
            r#""-Infinity""#,
            r#""inf""#,
            "null",
            "1e39",  // finite as f64, overflows f32
            "-1e39", // likewise, negative
            "1e400", // overflows f64: serde_json refuses it
        ] {
            let body = format!(r#"{{"key":"a","ts":1,"values":[0,{v}]}}"#);
            assert_eq!(kind(point(&body, 2)), "non_finite", "{v}");
        }
        assert_eq!(
            point(r#"{"key":"a","ts":1,"values":[0,"NaN"]}"#, 2).unwrap_err(),
            CodecError::NonFinite {
                field: "values",
                index: 1
            }
        );
        // Row-major index within a window: row 1, feature 0 of F = 2 → 2.
        assert_eq!(
            window(r#"{"key":"a","end_ts":1,"values":[[0,0],[null,0]]}"#, 2, 2).unwrap_err(),
            CodecError::NonFinite {
                field: "values",
                index: 2
            }
        );
        // Largest finite f32 is accepted.
        assert!(point(r#"{"key":"a","ts":1,"value":3.4028235e38}"#, 1).is_ok());
    }

    #[test]
    fn timestamps_out_of_range_or_malformed() {
        for ts in [
            "-1",
            "1767225600000.5",
            "253402300800000", // MAX_TS_MS + 1
            "18446744073709551615",
            "100000000000000000000",
            r#""yesterday""#,
            r#""2026-01-01 00:00:00""#, // not RFC 3339 (no zone)
            r#""1969-12-31T23:59:59Z""#,
        ] {
            let body = format!(r#"{{"key":"a","ts":{ts},"value":1}}"#);
            assert_eq!(kind(point(&body, 1)), "bad_timestamp", "{ts}");
        }
        let ok = point(r#"{"key":"a","ts":253402300799999,"value":1}"#, 1).unwrap();
        assert!(matches!(
            ok,
            Decoded::Point {
                ts_ms: 253_402_300_799_999,
                ..
            }
        ));
        let ok = point(r#"{"key":"a","ts":0,"value":1}"#, 1).unwrap();
        assert!(matches!(ok, Decoded::Point { ts_ms: 0, .. }));
        assert_eq!(
            window(
                r#"{"key":"a","end_ts":10,"start_ts":11,"values":[[1]]}"#,
                1,
                1
            )
            .unwrap_err(),
            CodecError::BadTimestamp {
                field: "start_ts",
                reason: "after end_ts"
            }
        );
    }

    #[test]
    fn json_window_decodes_row_major() {
        let d = decode(
            Format::Windows,
            Some(b"from-kafka"),
            Some(
                br#"{"end_ts":"2026-01-01T00:00:02Z","start_ts":1767225600000,
                     "values":[[1,2],[3,4],[5,6]],"extra":{"ignored":true}}"#,
            ),
            2,
            3,
            MAX,
        )
        .unwrap();
        assert_eq!(
            d,
            Decoded::Window {
                key: "from-kafka".into(),
                end_ts_ms: NEW_YEAR_MS + 2000,
                start_ts_ms: Some(NEW_YEAR_MS),
                values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            }
        );
    }

    #[test]
    fn encoded_points_and_windows_decode_to_what_was_encoded() {
        let p = encode_point("pump-7", NEW_YEAR_MS, &[1.5, -0.25]);
        assert_eq!(
            decode(Format::Points, None, Some(&p), 2, 0, MAX).unwrap(),
            Decoded::Point {
                key: "pump-7".into(),
                ts_ms: NEW_YEAR_MS,
                values: vec![1.5, -0.25],
            }
        );
        // No key in the body: the Kafka key is the series key.
        let p = encode_point("", NEW_YEAR_MS + 5, &[73.96732]);
        assert!(!String::from_utf8_lossy(&p).contains("key"));
        assert_eq!(
            decode(Format::Points, Some(b"k"), Some(&p), 1, 0, MAX).unwrap(),
            Decoded::Point {
                key: "k".into(),
                ts_ms: NEW_YEAR_MS + 5,
                values: vec![73.96732],
            }
        );
        let w = encode_window(
            "pump-7",
            NEW_YEAR_MS + 1,
            NEW_YEAR_MS + 3,
            3,
            2,
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5],
        )
        .unwrap();
        assert_eq!(
            decode(Format::Windows, None, Some(&w), 2, 3, MAX).unwrap(),
            Decoded::Window {
                key: "pump-7".into(),
                end_ts_ms: NEW_YEAR_MS + 3,
                start_ts_ms: Some(NEW_YEAR_MS + 1),
                values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5],
            }
        );
        assert!(encode_window("k", 1, 3, 3, 2, &[1.0]).is_err());
        assert!(encode_window("k", 1, 3, 0, 0, &[]).is_err());
    }

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

    #[test]
    fn timestamps_in_outputs_have_one_fixed_shape() {
        assert_eq!(format_ts_ms(NEW_YEAR_MS), "2026-01-01T00:00:00.000Z");
        assert_eq!(
            format_ts_ms(NEW_YEAR_MS + 1_234),
            "2026-01-01T00:00:01.234Z"
        );
    }

    #[test]
    fn top_contributors_largest_first_ties_by_position() {
        // T = 3, F = 2; cells (step, feature) → error:
        // (0,0)=0.1 (0,1)=0.5 (1,0)=0.5 (1,1)=NaN (2,0)=0.9 (2,1)=0.0
        let se = [0.1, 0.5, 0.5, f32::NAN, 0.9, 0.0];
        let names = vec!["temp".to_string()]; // feature 1 has no name
        let ts = [1000, 2000, 3000];
        let top = top_contributors(&se, 3, 2, &names, &ts, 3);
        let got: Vec<(usize, &str, f32)> = top
            .iter()
            .map(|c| (c.step, c.feature.as_str(), c.squared_error))
            .collect();
        assert_eq!(
            got,
            vec![(2, "temp", 0.9), (0, "f1", 0.5), (1, "temp", 0.5)]
        );
        assert_eq!(top[0].ts, "1970-01-01T00:00:03.000Z");
        // n larger than the finite cells: all five finite ones, NaN skipped.
        let all = top_contributors(&se, 3, 2, &names, &ts, 10);
        assert_eq!(all.len(), 5);
        assert_eq!(all[4].squared_error, 0.0);
        // Missing timestamps leave ts empty instead of failing.
        let no_ts = top_contributors(&se, 3, 2, &names, &[], 1);
        assert_eq!(no_ts[0].ts, "");
        assert!(top_contributors(&se, 3, 2, &names, &ts, 0).is_empty());
    }

    #[test]
    fn dead_letter_headers() {
        let err = CodecError::MissingField("ts");
        let h = DeadLetterHeaders::for_codec_error(&err, "points-in", 3, 42);
        assert_eq!(
            h.pairs(),
            vec![
                ("lstm_ae.error.kind", "missing_field".to_string()),
                ("lstm_ae.error.message", "missing field `ts`".to_string()),
                ("lstm_ae.source.topic", "points-in".to_string()),
                ("lstm_ae.source.partition", "3".to_string()),
                ("lstm_ae.source.offset", "42".to_string()),
            ]
        );
        // Long messages are cut at a character boundary (é is 2 bytes).
        let long = "é".repeat(400);
        let h = DeadLetterHeaders::new("invalid_json", &long, "t", 0, 0);
        let msg = &h.pairs()[1].1;
        assert_eq!(msg.len(), 512);
        assert!(msg.chars().all(|c| c == 'é'));
    }

    #[test]
    fn output_records_serialise_with_the_documented_fields() {
        let rec = AnomalyRecord {
            key: "pump-7".into(),
            window_start_ts: format_ts_ms(NEW_YEAR_MS),
            window_end_ts: format_ts_ms(NEW_YEAR_MS + 60_000),
            score: 2.5,
            threshold: 1.25,
            normalized_score: 2.0,
            anomaly_likelihood: Some(0.75),
            reason: "likelihood".into(),
            model_version: "m@1".into(),
            contributors: vec![Contributor {
                step: 3,
                ts: format_ts_ms(NEW_YEAR_MS),
                feature: "temp".into(),
                squared_error: 0.75,
            }],
            source: SourceRef {
                topic: "in".into(),
                partition: 2,
                offset: 9,
            },
        };
        let v: Value = serde_json::from_slice(&rec.to_json().unwrap()).unwrap();
        assert_eq!(v["window_end_ts"], "2026-01-01T00:01:00.000Z");
        assert_eq!(v["threshold"], 1.25);
        assert_eq!(v["anomaly_likelihood"], 0.75);
        assert_eq!(v["reason"], "likelihood");
        assert_eq!(v["contributors"][0]["feature"], "temp");
        assert_eq!(v["contributors"][0]["step"], 3);
        assert_eq!(v["source"]["partition"], 2);
        assert_eq!(v["source"]["offset"], 9);
        let emb = EmbeddingRecord {
            key: "k".into(),
            window_start_ts: "a".into(),
            window_end_ts: "b".into(),
            model_version: "m@1".into(),
            embedding: vec![0.5, f32::NAN],
            score: 1.0,
            normalized_score: 0.5,
            anomaly_likelihood: None,
        };
        let v: Value = serde_json::from_slice(&emb.to_json().unwrap()).unwrap();
        assert_eq!(v["embedding"], serde_json::json!([0.5, null]));
        assert_eq!(v["normalized_score"], 0.5);
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "key",
                "window_start_ts",
                "window_end_ts",
                "model_version",
                "embedding",
                "score",
                "normalized_score"
            ])
        );
    }
}

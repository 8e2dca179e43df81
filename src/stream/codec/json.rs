//! The two JSON input formats.
//!
//! ### `points`: one observation per message (JSON object)
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
//! ### `windows`: one pre-cut window per message (JSON object)
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
//! Unknown fields are ignored in both formats, so producers can add their
//! own metadata.

use serde_json::{Map, Value};

use super::{check_ts, resolve_key, CodecError, Decoded};
use crate::data::time;

/// The payload as a JSON object.
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

pub(super) fn decode_point(
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

pub(super) fn decode_window(
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

#[cfg(test)]
mod tests {
    use super::super::tests::{kind, point, window, MAX, NEW_YEAR_MS};
    use super::super::{decode, Format};
    use super::*;

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
}

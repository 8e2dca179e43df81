//! Timestamps: the one place that turns text and integers into epoch
//! milliseconds (UTC, `i64`) and back. CSV files, NAB's labels and results,
//! and the daemon's Kafka messages all go through here, so a timestamp
//! means the same instant whichever way it came in.
//!
//! ## The rule for integers
//!
//! An integer is epoch **seconds** when its magnitude is below
//! [`SECONDS_BELOW`] (10^11), and epoch **milliseconds** otherwise.
//! 10^11 seconds is the year 5138 and 10^11 milliseconds is 3 March 1973,
//! so every real clock reading of the last fifty years and the next three
//! thousand is read right whichever unit the producer chose. The cost: a
//! millisecond epoch before March 1973 (or a small counter meant as
//! milliseconds) is read as seconds. Where a unit is part of a binary
//! layout (the `end_ts_ms` field of `binary_windows`, Kafka's own message
//! timestamp) it is milliseconds by definition and this rule does not apply.
//!
//! ## Text
//!
//! [`parse_timestamp`] accepts RFC 3339 (`2026-01-01T00:00:00Z`, or with an
//! offset), `YYYY-MM-DD HH:MM:SS` with optional fractional seconds (also
//! with `T`; no offset means UTC — NAB's layout), `YYYY-MM-DD` (midnight
//! UTC) and integers as above. [`parse_rfc3339`] accepts RFC 3339 only: the
//! daemon's wire format insists on an explicit zone. [`parse_instant`]
//! also reads a duration back from now (`7d`), for command-line ranges.
//!
//! ## Output
//!
//! - [`format_timestamp`]: RFC 3339 UTC, milliseconds only when non-zero
//!   (`2013-12-02T21:15:00Z`): manifests, scored CSVs, reports.
//! - [`format_timestamp_millis`]: RFC 3339 UTC, always milliseconds
//!   (`2026-01-01T00:00:00.000Z`): the daemon's records, one fixed shape.
//! - [`format_naive`]: `YYYY-MM-DD HH:MM:SS[.fff]`, NAB's layout, so NAB's
//!   own scorer reads our results files.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Integers with a magnitude below this are epoch seconds, the others epoch
/// milliseconds (see the module docs).
pub const SECONDS_BELOW: i64 = 100_000_000_000;

/// Epoch milliseconds of an integer timestamp under the magnitude rule;
/// `None` if seconds overflow `i64` milliseconds (impossible below
/// [`SECONDS_BELOW`], so never in practice).
pub fn epoch_integer_ms(n: i64) -> Option<i64> {
    if n.unsigned_abs() < SECONDS_BELOW as u64 {
        n.checked_mul(1000)
    } else {
        Some(n)
    }
}

/// Parses any accepted text form (module docs) into epoch milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return epoch_integer_ms(s.parse().ok()?);
    }
    if let Some(ms) = parse_rfc3339(s) {
        return Some(ms);
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// Parses RFC 3339 only (a `Z` or an offset is required).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|dt| dt.timestamp_millis())
}

/// RFC 3339 UTC, e.g. `2013-12-02T21:15:00Z`; milliseconds shown only when
/// non-zero. A value outside chrono's range (beyond ±262,000 years) is
/// A point in time as a command-line flag gives it (`--since`, `--until`):
/// a duration back from `now_ms` (`7d`, `12h`, `30m`, `45s`), any text form
/// [`parse_timestamp`] reads, or epoch milliseconds.
pub fn parse_instant(s: &str, now_ms: i64) -> Result<i64, InstantError> {
    let s = s.trim();
    let units = [
        ('d', 86_400_000i64),
        ('h', 3_600_000),
        ('m', 60_000),
        ('s', 1000),
    ];
    for (u, ms) in units {
        if let Some(n) = s.strip_suffix(u).and_then(|n| n.parse::<i64>().ok()) {
            return n
                .checked_mul(ms)
                .and_then(|back| now_ms.checked_sub(back))
                .ok_or_else(|| InstantError(s.to_string()));
        }
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    parse_timestamp(s).ok_or_else(|| InstantError(s.to_string()))
}

/// Text that [`parse_instant`] cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected a duration back from now (7d, 12h, 30m, 45s), a timestamp (2026-01-31T12:00:00Z) or epoch milliseconds")]
pub struct InstantError(pub String);

/// printed as `<n> ms`.
pub fn format_timestamp(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(dt) if ms.rem_euclid(1000) == 0 => dt.to_rfc3339_opts(SecondsFormat::Secs, true),
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{ms} ms"),
    }
}

/// RFC 3339 UTC with milliseconds always, e.g. `2026-01-01T00:00:00.000Z`,
/// so consumers parse one fixed shape. Out of chrono's range (impossible for
/// validated input): the decimal number of milliseconds.
pub fn format_timestamp_millis(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// NAB's layout, `YYYY-MM-DD HH:MM:SS`, with `.fff` only when the
/// milliseconds are non-zero, so NAB's whole-second data round-trips
/// unchanged; `None` outside chrono's range.
pub fn format_naive(ms: i64) -> Option<String> {
    let t = DateTime::from_timestamp_millis(ms)?.naive_utc();
    let layout = if ms.rem_euclid(1000) == 0 {
        "%Y-%m-%d %H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M:%S%.3f"
    };
    Some(t.format(layout).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known instants, from `date -u -d @…` and NAB's own files:
    // 2013-12-02T21:15:00Z = 1386018900 s (NAB machine_temperature, row 1);
    // 2014-07-01T00:00:00Z = 1404172800 s; 2026-01-01T00:00:00Z = 1767225600 s.
    const NAB_FIRST_S: i64 = 1_386_018_900;
    const JULY_2014_S: i64 = 1_404_172_800;
    const NEW_YEAR_2026_S: i64 = 1_767_225_600;

    #[test]
    fn integers_follow_the_magnitude_rule() {
        // Seconds and milliseconds of the same instant give the same answer.
        assert_eq!(
            epoch_integer_ms(NEW_YEAR_2026_S),
            Some(NEW_YEAR_2026_S * 1000)
        );
        assert_eq!(
            epoch_integer_ms(NEW_YEAR_2026_S * 1000),
            Some(NEW_YEAR_2026_S * 1000)
        );
        // The boundary: 10^11 − 1 is seconds (the year 5138), 10^11 is ms (1973).
        assert_eq!(epoch_integer_ms(99_999_999_999), Some(99_999_999_999_000));
        assert_eq!(epoch_integer_ms(100_000_000_000), Some(100_000_000_000));
        assert_eq!(format_timestamp(100_000_000_000), "1973-03-03T09:46:40Z");
        assert_eq!(format_timestamp(99_999_999_999_000), "5138-11-16T09:46:39Z");
        // Small and negative integers are seconds.
        assert_eq!(epoch_integer_ms(0), Some(0));
        assert_eq!(epoch_integer_ms(-1), Some(-1000));
        assert_eq!(epoch_integer_ms(5), Some(5000));
        assert_eq!(parse_timestamp("1386018900"), Some(NAB_FIRST_S * 1000));
        assert_eq!(parse_timestamp("1386018900000"), Some(NAB_FIRST_S * 1000));
        assert_eq!(parse_timestamp("-86400"), Some(-86_400_000));
        assert_eq!(parse_timestamp("99999999999999999999"), None);
    }

    #[test]
    fn text_forms_agree_on_the_instant() {
        let ms = NAB_FIRST_S * 1000;
        for text in [
            "2013-12-02 21:15:00",
            "2013-12-02T21:15:00",
            "2013-12-02 21:15:00.000000",
            "2013-12-02T21:15:00Z",
            "2013-12-02T22:15:00+01:00",
            " 2013-12-02 21:15:00 ",
        ] {
            assert_eq!(parse_timestamp(text), Some(ms), "{text}");
        }
        assert_eq!(parse_timestamp("2014-07-01"), Some(JULY_2014_S * 1000));
        assert_eq!(
            parse_timestamp("2014-04-10 07:15:00.250"),
            Some(1_397_114_100_250)
        );
        for bad in ["", "yesterday", "02/12/2013 21:20", "2013-13-02", "12e3"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_only_needs_a_zone() {
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00Z"),
            Some(NEW_YEAR_2026_S * 1000)
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T01:00:00.123+01:00"),
            Some(NEW_YEAR_2026_S * 1000 + 123)
        );
        assert_eq!(parse_rfc3339("2026-01-01 00:00:00"), None);
        assert_eq!(parse_rfc3339("1767225600"), None);
    }

    #[test]
    fn the_three_output_forms() {
        let ms = JULY_2014_S * 1000;
        assert_eq!(format_timestamp(ms), "2014-07-01T00:00:00Z");
        assert_eq!(format_timestamp(ms + 123), "2014-07-01T00:00:00.123Z");
        assert_eq!(format_timestamp_millis(ms), "2014-07-01T00:00:00.000Z");
        assert_eq!(format_naive(ms).as_deref(), Some("2014-07-01 00:00:00"));
        assert_eq!(
            format_naive(ms + 123).as_deref(),
            Some("2014-07-01 00:00:00.123")
        );
        assert_eq!(format_timestamp(i64::MAX), format!("{} ms", i64::MAX));
        assert_eq!(format_timestamp_millis(i64::MAX), i64::MAX.to_string());
        assert_eq!(format_naive(i64::MAX), None);
        // Each form parses back to the instant.
        for ms in [ms, ms + 123, -1_500] {
            assert_eq!(parse_timestamp(&format_timestamp(ms)), Some(ms));
            assert_eq!(parse_rfc3339(&format_timestamp_millis(ms)), Some(ms));
            assert_eq!(parse_timestamp(&format_naive(ms).unwrap()), Some(ms));
        }
    }

    #[test]
    fn parses_timestamp_formats() {
        let ms = NAB_FIRST_S * 1000;
        assert_eq!(parse_timestamp("2013-12-02 21:15:00"), Some(ms));
        assert_eq!(parse_timestamp(" 2013-12-02 21:15:00 "), Some(ms));
        assert_eq!(parse_timestamp("2013-12-02 21:15:00.250"), Some(ms + 250));
        assert_eq!(parse_timestamp("2013-12-02T21:15:00"), Some(ms));
        assert_eq!(parse_timestamp("2013-12-02T21:15:00Z"), Some(ms));
        assert_eq!(parse_timestamp("2013-12-02T21:15:00.5Z"), Some(ms + 500));
        // 23:15 at +02:00 is 21:15 UTC.
        assert_eq!(parse_timestamp("2013-12-02T23:15:00+02:00"), Some(ms));
        assert_eq!(parse_timestamp("2013-12-02T16:15:00-05:00"), Some(ms));
        assert_eq!(
            parse_timestamp("2026-01-01T00:00:00Z"),
            Some(1_767_225_600_000)
        );
        assert_eq!(parse_timestamp("2014-02-19"), Some(1_392_768_000_000));
        assert_eq!(parse_timestamp("1386018900"), Some(ms));
        assert_eq!(parse_timestamp("1386018900000"), Some(ms));
        assert_eq!(parse_timestamp("0"), Some(0));
        assert_eq!(parse_timestamp("-60"), Some(-60_000));
        for bad in [
            "",
            "-",
            "yesterday",
            "2013-13-02 21:15:00",
            "2013-12-02 25:15:00",
            "02/12/2013",
            "1386018900.5",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_timestamps_as_rfc3339_utc() {
        assert_eq!(format_timestamp(NAB_FIRST_S * 1000), "2013-12-02T21:15:00Z");
        assert_eq!(
            format_timestamp(NAB_FIRST_S * 1000 + 250),
            "2013-12-02T21:15:00.250Z"
        );
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(-1000), "1969-12-31T23:59:59Z");
        assert_eq!(format_timestamp(i64::MAX), format!("{} ms", i64::MAX));
        for ms in [
            NAB_FIRST_S * 1000,
            NAB_FIRST_S * 1000 + 1,
            1_767_225_600_000,
        ] {
            assert_eq!(parse_timestamp(&format_timestamp(ms)), Some(ms));
        }
    }

    #[test]
    fn times_are_durations_timestamps_or_milliseconds() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_instant("7d", now), Ok(3 * 86_400_000));
        assert_eq!(parse_instant("90m", now), Ok(now - 90 * 60_000));
        assert_eq!(parse_instant("1700000000000", now), Ok(1_700_000_000_000));
        assert_eq!(
            parse_instant("1970-01-02T00:00:00Z", now),
            Ok(86_400_000),
            "RFC 3339"
        );
        assert!(parse_instant("yesterday", now)
            .unwrap_err()
            .to_string()
            .contains("7d"));
        assert!(parse_instant("99999999999999999d", now).is_err());
    }
}

//! Timestamp parsing shared by the Segment and PostHog parsers.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Parses an ISO-8601 / RFC 3339 timestamp. A timestamp without an offset is taken as UTC
/// (several SDKs and CSV exports drop the `Z`). Numbers are read as Unix milliseconds.
pub(crate) fn parse_timestamp(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    parse_scalar_timestamp(&v.into())
}

/// [`parse_timestamp`] for a value read by [`crate::wire`].
pub(crate) fn parse_scalar_timestamp(v: &crate::wire::Scalar) -> Option<DateTime<Utc>> {
    use crate::wire::Scalar;
    match v {
        Scalar::String(s) => parse_str(s),
        Scalar::Number(n) => {
            let ms = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?;
            DateTime::from_timestamp_millis(ms)
        }
        _ => None,
    }
}

fn parse_str(s: &str) -> Option<DateTime<Utc>> {
    let s = crate::wire::trimmed(s);
    if let Some(t) = parse_utc_fast(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    // "2026-01-02 03:04:05+00" / "+00:00" with a space separator, as DuckDB and Postgres print.
    if let Some((date, time)) = s.split_once(' ') {
        if let Ok(t) = DateTime::parse_from_rfc3339(&format!("{date}T{time}")) {
            return Some(t.with_timezone(&Utc));
        }
        if let Ok(t) =
            DateTime::parse_from_str(&format!("{date}T{time}"), "%Y-%m-%dT%H:%M:%S%.f%#z")
        {
            return Some(t.with_timezone(&Utc));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    None
}

/// The shape SDKs send nearly always, `2026-03-04T05:06:07.123Z` (the fraction optional, up
/// to nanoseconds), read without chrono's general RFC 3339 parser: three timestamps per event
/// through it were ~13% of reading a typical analytics.js event. Anything else (offsets,
/// lowercase letters, leap seconds, out-of-range fields) is None here and left to chrono,
/// which gives the same answers (property test below).
fn parse_utc_fast(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 20 || b[b.len() - 1] != b'Z' {
        return None;
    }
    // The fixed part, `YYYY-MM-DDTHH:MM:SS`, checked against its pattern in one pass over a
    // fixed-size array (no bounds checks; reading it digit by digit through a closure was
    // ~345 of the ~560 instructions a timestamp took, callgrind, 200k events).
    const PATTERN: &[u8; 19] = b"0000-00-00T00:00:00";
    let head: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    let mut misfits = 0u8;
    for i in 0..19 {
        let (c, p) = (head[i], PATTERN[i]);
        misfits |= u8::from(if p == b'0' {
            c.wrapping_sub(b'0') > 9
        } else {
            c != p
        });
    }
    if misfits != 0 {
        return None;
    }
    let two = |i: usize| u32::from(head[i] - b'0') * 10 + u32::from(head[i + 1] - b'0');
    let year = two(0) * 100 + two(2);
    let (month, day) = (two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    let nanos = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            let mut v = 0u32;
            for &c in fraction {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + u32::from(c - b'0');
            }
            v * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    if second > 59 {
        return None; // a leap second: chrono's rules
    }
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_shapes_sdks_send() {
        let want = "2026-03-04T05:06:07Z";
        for s in [
            "2026-03-04T05:06:07Z",
            "2026-03-04T05:06:07+00:00",
            "2026-03-04T07:06:07+02:00",
            "2026-03-04T05:06:07.000000+00:00",
            "2026-03-04T05:06:07",
            "2026-03-04 05:06:07",
            "2026-03-04 05:06:07+00",
        ] {
            let t = parse_timestamp(&json!(s)).unwrap_or_else(|| panic!("{s} did not parse"));
            assert_eq!(
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                want,
                "{s}"
            );
        }
        assert!(parse_timestamp(&json!(1772600767000i64)).is_some());
        assert!(parse_timestamp(&json!("yesterday")).is_none());
        assert!(parse_timestamp(&json!(true)).is_none());
    }

    #[test]
    fn the_fast_path_reads_what_it_takes_and_leaves_the_rest() {
        let fast = |s: &str| parse_utc_fast(s).map(|t| t.to_rfc3339());
        assert_eq!(
            fast("2026-03-04T05:06:07Z").as_deref(),
            Some("2026-03-04T05:06:07+00:00")
        );
        assert_eq!(
            fast("2026-03-04T05:06:07.1Z").as_deref(),
            Some("2026-03-04T05:06:07.100+00:00")
        );
        assert_eq!(
            fast("2026-03-04T05:06:07.123456789Z").as_deref(),
            Some("2026-03-04T05:06:07.123456789+00:00")
        );
        for other in [
            "2026-03-04T05:06:07+00:00",
            "2026-03-04t05:06:07z",
            "2026-03-04T05:06:07.Z",
            "2026-03-04T05:06:07.1234567890Z",
            "2026-02-30T05:06:07Z",
            "2026-03-04T24:00:00Z",
            "2026-03-04T23:59:60Z",
            "2026-03-04 05:06:07Z",
            "+2026-03-04T05:06:07Z",
            "2026-0x-04T05:06:07Z",
            "2026/03/04T05:06:07Z",
            "2026-03-04T05:06:07.12a4Z",
            "2026-03-04T05-06-07Z",
        ] {
            assert_eq!(fast(other), None, "{other}");
        }
    }

    proptest::proptest! {
        /// Whatever the fast path reads, chrono reads the same; and every timestamp of the
        /// shape it takes (`Z`, at most nine fraction digits, no leap second) is read by it.
        #[test]
        fn the_fast_path_agrees_with_chrono(
            y in 0u32..10000, mo in 0u32..14, d in 0u32..33, h in 0u32..26, mi in 0u32..62,
            se in 0u32..62, frac in proptest::option::of("[0-9]{1,10}"), garbage in "[0-9TZ:.+-]{0,3}",
        ) {
            let short = frac.as_ref().is_none_or(|f| f.len() <= 9);
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let canonical = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{frac}Z");
            let other = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{frac}{garbage}");
            for s in [&canonical, &other] {
                let chrono = DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc));
                if let Some(t) = parse_utc_fast(s) {
                    proptest::prop_assert_eq!(Some(t), chrono, "{}", s);
                }
            }
            let chrono = DateTime::parse_from_rfc3339(&canonical).ok();
            if chrono.is_some() && short && se <= 59 {
                proptest::prop_assert!(parse_utc_fast(&canonical).is_some(), "{} not taken", canonical);
            }
        }
    }
}

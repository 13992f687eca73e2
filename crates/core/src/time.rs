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
}

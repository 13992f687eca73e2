//! `upmarket import`: NDJSON (Segment and PostHog shapes), CSV, Parquet, re-runs.

use std::fs;

use serde_json::Value;
use upmarket_store::Store;

use crate::{open_store, upmarket};

fn import(work: &std::path::Path, files: &[&str]) -> Value {
    let out = upmarket(work)
        .args(["import", "--json", "--data-dir", "data"])
        .args(files)
        .output()
        .expect("run import");
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary is JSON")
}

#[test]
fn ndjson_and_csv_import_with_dedup_and_reasons() {
    let work = tempfile::tempdir().unwrap();
    let ndjson = [
        r#"{"type":"identify","userId":"u1","messageId":"n1","timestamp":"2026-01-01T00:00:00Z","traits":{"email":"u1@hooli.com"}}"#,
        r#"{"type":"track","event":"Report Created","userId":"u1","messageId":"n2","timestamp":"2026-01-02T00:00:00Z"}"#,
        r#"{"event":"$pageview","distinct_id":"u1","uuid":"018f0000-0000-7000-8000-000000000001","timestamp":"2026-01-03T00:00:00Z","properties":{"$current_url":"https://x.io/pricing"}}"#,
        r#"{"type":"track","userId":"u1","messageId":"bad1"}"#,
        r#"not json"#,
        "",
        r#"{"type":"track","event":"Report Created","userId":"u1","messageId":"n2","timestamp":"2026-01-02T00:00:00Z"}"#,
    ]
    .join("\n");
    fs::write(work.path().join("events.ndjson"), ndjson).unwrap();
    fs::write(
        work.path().join("events.csv"),
        "type,event,userId,messageId,timestamp,properties.plan\ntrack,Plan Upgraded,u1,c1,2026-01-04T00:00:00Z,pro\ntrack,,u1,c2,2026-01-04T00:00:00Z,\n",
    )
    .unwrap();

    let first = import(work.path(), &["events.ndjson", "events.csv"]);
    assert_eq!(first["rows"], 8);
    assert_eq!(first["stored"], 4);
    assert_eq!(first["duplicates"], 1, "the repeated line is a duplicate");
    assert_eq!(first["rejected"], 3);
    assert_eq!(
        first["rollup_collected"], true,
        "the daily rollup is computed while importing (only new events: the duplicate line is not counted)"
    );
    assert_eq!(first["account_rows_collected"], true);
    assert_eq!(first["rejected_by_reason"]["missing_field"], 2);
    assert_eq!(first["rejected_by_reason"]["invalid_json"], 1);
    assert_eq!(
        first["examples"][0]["line"], 4,
        "rejections point at their line"
    );

    // Safe to re-run: nothing is stored twice.
    let again = import(work.path(), &["events.ndjson", "events.csv"]);
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(5))
    );

    let store = open_store(&work.path().join("data"));
    let reader = store.reader().unwrap();
    assert_eq!(reader.stats().unwrap().events, 4);
    let a = reader
        .attribution("018f0000-0000-7000-8000-000000000001")
        .unwrap()
        .unwrap();
    assert_eq!(a.company_id.as_deref(), Some("hooli.com"));
    let conn = store.sql_connection().unwrap();
    let plan: String = conn
        .query_row(
            "SELECT properties->>'plan' FROM events WHERE message_id = 'c1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(plan, "pro");
    // The import left the model's daily rollup built (grouped events only: none here, so it
    // covers the events by seq and holds no rows).
    let (rollups, through): (i64, i64) = conn
        .query_row("SELECT count(*), max(through_seq) FROM rollups", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((rollups, through), (1, 4));
}

/// Lines are read in chunks (`lines.rs`): a line with bytes that are not UTF-8, one far past
/// the event limit (skipped unread) and one just past it are each rejected with their line
/// number, and the lines around them, the last one without a line feed, are stored; gzipped
/// the same.
#[test]
fn bad_bytes_and_giant_lines_are_rejected_by_line_and_the_rest_stored() {
    let work = tempfile::tempdir().unwrap();
    let event = |id: &str, pad: usize| {
        format!(
            r#"{{"type":"track","event":"Report Created","userId":"u1","messageId":"{id}","timestamp":"2026-01-02T00:00:00Z","properties":{{"pad":"{}"}}}}"#,
            "x".repeat(pad)
        )
        .into_bytes()
    };
    let mut bytes = event("ok1", 1);
    bytes.push(b'\n');
    bytes.extend_from_slice(b"{\"type\":\"track\",\"event\":\"\xff\xfe\",\"userId\":\"u1\"}\n");
    bytes.extend(event("giant", 300_000));
    bytes.push(b'\n');
    bytes.extend(event("big", 40_000));
    bytes.push(b'\n');
    bytes.extend(event("ok2", 1));
    fs::write(work.path().join("events.ndjson"), &bytes).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    fs::write(work.path().join("again.ndjson.gz"), gz.finish().unwrap()).unwrap();

    for (file, stored) in [("events.ndjson", 2), ("again.ndjson.gz", 0)] {
        let s = import(work.path(), &[file]);
        assert_eq!(s["rows"], 5, "{file}: {s}");
        assert_eq!(s["stored"], stored, "{file}: {s}");
        assert_eq!(s["duplicates"], 2 - stored, "{file}: {s}");
        assert_eq!(s["rejected"], 3, "{file}: {s}");
        assert_eq!(s["rejected_by_reason"]["invalid_json"], 1, "{file}: {s}");
        assert_eq!(s["rejected_by_reason"]["event_too_large"], 2, "{file}: {s}");
        let lines: Vec<u64> = s["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, [2, 3, 4], "{file}: {s}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let work = tempfile::tempdir().unwrap();
    let out = upmarket(work.path())
        .args(["import", "--data-dir", "data", "nope.ndjson"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.ndjson: no such file"));
}

#[test]
fn parquet_import_with_nested_properties_and_typed_timestamps() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("events.parquet");
    {
        // A warehouse export: typed columns, properties as a STRUCT.
        let scratch =
            upmarket_store::DuckDbStore::open_in_memory(&upmarket_core::FreeMailDomains::default())
                .unwrap();
        let conn = scratch.sql_connection().unwrap();
        conn.execute_batch(&format!(
            "COPY (
                SELECT 'track' AS type, 'Report Created' AS event, 'u1' AS userId, 'p1' AS messageId,
                       TIMESTAMP '2026-01-05 10:00:00' AS timestamp, {{'plan': 'pro', 'seats': 3}} AS properties
                UNION ALL
                SELECT 'track', 'Query Run', 'u2', 'p2', TIMESTAMP '2026-01-06 11:30:00', {{'plan': 'free', 'seats': 1}}
                UNION ALL
                SELECT 'track', NULL, 'u3', 'p3', TIMESTAMP '2026-01-07 00:00:00', NULL
            ) TO '{}' (FORMAT parquet)",
            file.display()
        ))
        .unwrap();
    }
    let first = import(work.path(), &["events.parquet"]);
    assert_eq!(
        (
            first["rows"].as_u64(),
            first["stored"].as_u64(),
            first["rejected"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{first}"
    );
    assert_eq!(first["rejected_by_reason"]["missing_field"], 1, "{first}");
    let again = import(work.path(), &["events.parquet"]);
    assert_eq!(again["duplicates"], 2, "safe to re-run: {again}");

    let store = open_store(&work.path().join("data"));
    let conn = store.sql_connection().unwrap();
    let (plan, seats, ts): (String, String, String) = conn
        .query_row(
            "SELECT properties->>'plan', properties->>'seats', strftime(timestamp, '%Y-%m-%d %H:%M:%S') FROM events WHERE message_id = 'p1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (plan.as_str(), seats.as_str(), ts.as_str()),
        ("pro", "3", "2026-01-05 10:00:00")
    );
}

//! Events as one columnar Arrow batch, in the `events` table's column order, for DuckDB's
//! chunk appender. Appending column by column costs a fraction of the row appender, which
//! binds the 18 values of every row one by one through the C API (measured in BENCHMARKS.md).

use std::fmt::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use duckdb::arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::error::ArrowError;
use duckdb::arrow::record_batch::RecordBatch;

use crate::prepared::PreparedEvent;

/// The `events` table's columns as Arrow fields. The key is decimal text, which DuckDB casts
/// to HUGEINT on append (Arrow's 128-bit decimal holds 38 digits, a 128-bit key up to 39);
/// the JSON columns are text.
fn schema() -> Schema {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let time = |name: &str, nullable: bool| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            nullable,
        )
    };
    Schema::new(vec![
        text("msg_key", false),
        Field::new("seq", DataType::Int64, false),
        text("message_id", false),
        text("type", false),
        text("event", true),
        text("name", true),
        text("user_id", true),
        text("anonymous_id", true),
        text("group_id", true),
        text("previous_id", true),
        time("timestamp", false),
        time("original_timestamp", true),
        time("sent_at", true),
        time("received_at", false),
        text("properties", true),
        text("traits", true),
        text("context", true),
        text("source", false),
    ])
}

/// Builds the batch of `events`, numbered from `first_seq` in order.
pub(crate) fn event_batch<'a>(
    events: impl ExactSizeIterator<Item = &'a PreparedEvent> + Clone,
    first_seq: i64,
) -> Result<RecordBatch, ArrowError> {
    let n = events.len();
    let text = |get: &dyn Fn(&PreparedEvent) -> Option<&str>| -> ArrayRef {
        // Sized exactly: a row group's JSON columns are tens of MB, which grown by doubling
        // were copied several times over (memmove was the applier's largest symbol).
        let bytes = events.clone().map(|p| get(p).map_or(0, str::len)).sum();
        let mut b = StringBuilder::with_capacity(n, bytes);
        for p in events.clone() {
            b.append_option(get(p));
        }
        Arc::new(b.finish())
    };
    let time = |get: &dyn Fn(&PreparedEvent) -> Option<DateTime<Utc>>| -> ArrayRef {
        let mut b = TimestampMicrosecondBuilder::with_capacity(n);
        for p in events.clone() {
            b.append_option(get(p).map(|t| t.timestamp_micros()));
        }
        Arc::new(b.finish())
    };
    let mut keys = StringBuilder::with_capacity(n, n * 40);
    let mut seqs = Int64Builder::with_capacity(n);
    for (i, p) in events.clone().enumerate() {
        // Writing to a string builder cannot fail.
        let _ = write!(keys, "{}", p.key);
        keys.append_value("");
        seqs.append_value(first_seq + i as i64);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(keys.finish()),
        Arc::new(seqs.finish()),
        text(&|p| Some(&p.event.message_id)),
        text(&|p| Some(p.event.kind.as_str())),
        text(&|p| p.event.event.as_deref()),
        text(&|p| p.event.name.as_deref()),
        text(&|p| p.event.user_id.as_deref()),
        text(&|p| p.event.anonymous_id.as_deref()),
        text(&|p| p.event.group_id.as_deref()),
        text(&|p| p.event.previous_id.as_deref()),
        time(&|p| Some(p.event.timestamp)),
        time(&|p| p.event.original_timestamp),
        time(&|p| p.event.sent_at),
        time(&|p| Some(p.event.received_at)),
        text(&|p| p.event.properties.text()),
        text(&|p| p.event.traits.text()),
        text(&|p| p.event.context.text()),
        text(&|p| Some(p.event.source.as_str())),
    ];
    RecordBatch::try_new(Arc::new(schema()), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use duckdb::Connection;
    use upmarket_core::segment::{parse_event, BatchDefaults, ParseContext};

    fn prepared(json: &str, key: i128) -> PreparedEvent {
        let ctx = ParseContext {
            received_at: chrono::Utc::now(),
            source: upmarket_core::IngestSource::Segment,
            max_event_bytes: 32 * 1024,
            trust_received_at: false,
        };
        let e = parse_event(json, None, &BatchDefaults::default(), &ctx).unwrap();
        let mut p = PreparedEvent::new(e);
        p.key = key;
        p
    }

    /// Regression: keys are full 128-bit digests; Arrow's 128-bit decimal (38 digits) refused
    /// those of 39 digits, failing whole commits.
    #[test]
    fn appends_every_column_and_keys_of_any_size() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::schema::MIGRATIONS[0].2).unwrap();
        let events = [
            prepared(
                r#"{"type":"track","event":"Report Created","userId":"u1","messageId":"m1",
                    "timestamp":"2026-11-01T10:00:00.123456Z","sentAt":"2026-11-01T10:00:01Z",
                    "properties":{"rows":3},"context":{"groupId":"ws-1"}}"#,
                i128::MAX,
            ),
            prepared(
                r#"{"type":"identify","anonymousId":"a1","messageId":"m2",
                    "traits":{"email":"x@acme.com"}}"#,
                i128::MIN,
            ),
        ];
        let batch = event_batch(events.iter(), 41).unwrap();
        let mut app = conn.appender("events").unwrap();
        app.append_record_batch(batch).unwrap();
        app.flush().unwrap();
        drop(app);
        let rows: Vec<(String, i64, String, String, Option<String>, Option<String>)> = conn
            .prepare(
                "SELECT msg_key::VARCHAR, seq, message_id, type, event, \
                 coalesce(properties, traits)::VARCHAR FROM events ORDER BY seq",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    i128::MAX.to_string(),
                    41,
                    "m1".into(),
                    "track".into(),
                    Some("Report Created".into()),
                    Some(r#"{"rows":3}"#.into())
                ),
                (
                    i128::MIN.to_string(),
                    42,
                    "m2".into(),
                    "identify".into(),
                    None,
                    Some(r#"{"email":"x@acme.com"}"#.into())
                ),
            ]
        );
        let (ts, sent, user, anon): (String, String, Option<String>, Option<String>) = conn
            .query_row(
                "SELECT strftime(original_timestamp, '%Y-%m-%d %H:%M:%S.%f'), \
                 sent_at::VARCHAR, user_id, anonymous_id FROM events WHERE seq = 41",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(ts, "2026-11-01 10:00:00.123456");
        assert_eq!(sent, "2026-11-01 10:00:01");
        assert_eq!((user.as_deref(), anon), (Some("u1"), None));
    }
}

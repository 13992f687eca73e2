//! Events made ready for the writer: their JSON columns serialized and their dedup key
//! computed on the caller's thread (a request handler, the import's parsing thread), so the
//! single writer only appends. Measured on 2 cores with 32 HTTP clients: the writer thread is
//! the bottleneck (87% of a core); in its `perf` profile JSON serialization and map walking
//! had been ~4% of the machine's samples and the allocator ~5% (part of that DuckDB's), against
//! the writer's ~44%. The writer borrows the prepared events (`Store::append_prepared` takes
//! references) and hands them back with the answer, so they are freed here too.

use upmarket_core::Event;

use crate::duckdb_store::json_or_null;
use crate::StoreError;

/// An event with what storing it needs, computed once.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    /// The event.
    pub event: Event,
    /// Its deduplication key ([`Event::dedup_key`]).
    pub(crate) key: i128,
    /// `properties`, `traits` and `context` as JSON text (None when empty).
    pub(crate) properties: Option<String>,
    pub(crate) traits: Option<String>,
    pub(crate) context: Option<String>,
}

impl PreparedEvent {
    /// Serializes the event's JSON columns and computes its key.
    pub fn new(event: Event) -> Result<Self, StoreError> {
        Ok(PreparedEvent {
            key: event.dedup_key(),
            properties: json_or_null(&event.properties)?,
            traits: json_or_null(&event.traits)?,
            context: json_or_null(&event.context)?,
            event,
        })
    }

    /// Prepares every event of a batch.
    pub fn all(events: Vec<Event>) -> Result<Vec<Self>, StoreError> {
        events.into_iter().map(Self::new).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upmarket_core::segment::{parse_event, BatchDefaults, ParseContext};

    #[test]
    fn serializes_json_columns_once_and_keeps_the_key() {
        let ctx = ParseContext {
            received_at: chrono::Utc::now(),
            source: upmarket_core::IngestSource::Segment,
            max_event_bytes: 32 * 1024,
            trust_received_at: false,
        };
        let e = parse_event(
            r#"{"type":"track","event":"Report Created","userId":"u1","messageId":"m1",
                "properties":{"b":2,"a":"x"},"context":{"groupId":"ws-1"}}"#,
            None,
            &BatchDefaults::default(),
            &ctx,
        )
        .unwrap();
        let p = PreparedEvent::new(e.clone()).unwrap();
        assert_eq!(p.key, e.dedup_key());
        assert_eq!(p.properties.as_deref(), Some(r#"{"a":"x","b":2}"#));
        assert_eq!(p.traits, None, "empty maps are stored as NULL");
        assert_eq!(p.context.as_deref(), Some(r#"{"groupId":"ws-1"}"#));
    }
}

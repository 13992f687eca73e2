//! Events made ready for the writer: their dedup key computed on the caller's thread (a request
//! handler, the import's parsing thread), so the single writer only appends. Their JSON columns
//! need no work: events keep `properties`, `traits` and `context` as the text the client sent
//! ([`upmarket_core::JsonObject`]). Measured on 2 cores with 32 HTTP clients: the writer thread
//! is the bottleneck. The writer borrows the prepared events (`Store::append_prepared` takes
//! references) and hands them back with the answer, so they are freed on the caller's thread.

use upmarket_core::Event;

/// An event with what storing it needs, computed once.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    /// The event.
    pub event: Event,
    /// Its deduplication key ([`Event::dedup_key`]).
    pub(crate) key: i128,
}

impl PreparedEvent {
    /// Computes the event's key.
    pub fn new(event: Event) -> Self {
        PreparedEvent {
            key: event.dedup_key(),
            event,
        }
    }

    /// Its deduplication key.
    pub fn key(&self) -> i128 {
        self.key
    }

    /// Prepares every event of a batch.
    pub fn all(events: Vec<Event>) -> Vec<Self> {
        events.into_iter().map(Self::new).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upmarket_core::segment::{parse_event, BatchDefaults, ParseContext};

    #[test]
    fn keeps_json_columns_as_sent_and_computes_the_key() {
        let ctx = ParseContext {
            received_at: chrono::Utc::now(),
            source: upmarket_core::IngestSource::Segment,
            max_event_bytes: 32 * 1024,
            trust_received_at: false,
        };
        let e = parse_event(
            r#"{"type":"track","event":"Report Created","userId":"u1","messageId":"m1",
                "properties":{"b":2,"a":"x"},"traits":{},"context":{"groupId":"ws-1"}}"#,
            None,
            &BatchDefaults::default(),
            &ctx,
        )
        .unwrap();
        let p = PreparedEvent::new(e.clone());
        assert_eq!(p.key, e.dedup_key());
        assert_eq!(p.event.properties.text(), Some(r#"{"b":2,"a":"x"}"#));
        assert_eq!(
            p.event.traits.text(),
            None,
            "empty objects are stored as NULL"
        );
        assert_eq!(p.event.context.text(), Some(r#"{"groupId":"ws-1"}"#));
    }
}

//! Integration tests of the DuckDB store: deduplication, persistence and identity resolution.
//! One binary for the crate (see ARCHITECTURE.md).

mod identity;
mod persistence;
mod scoring;
mod simulated;

use upmarket_core::segment::{parse_event, BatchDefaults, ParseContext};
use upmarket_core::{Event, FreeMailDomains, IngestSource};
use upmarket_store::DuckDbStore;

/// Parses a Segment event written as JSON in a test.
pub fn ev(json: serde_json::Value) -> Event {
    let ctx = ParseContext {
        received_at: "2026-06-01T00:00:00Z".parse().unwrap(),
        source: IngestSource::Segment,
        max_event_bytes: 32 * 1024,
        trust_received_at: false,
    };
    parse_event(&json.to_string(), None, &BatchDefaults::default(), &ctx)
        .expect("test event is valid")
}

/// A fresh in-memory store with the default free-mail list.
pub fn memory_store() -> DuckDbStore {
    DuckDbStore::open_in_memory(&FreeMailDomains::default()).expect("in-memory store opens")
}

/// The first column of every row `sql` returns.
pub fn column<T: duckdb::types::FromSql>(conn: &duckdb::Connection, sql: &str) -> Vec<T> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

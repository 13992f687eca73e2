//! The store's deduplication: the key of every stored event, held by the single writer.
//!
//! A retried messageId (or PostHog uuid) must be stored once, whenever it comes back: seconds
//! later from an SDK's retry, or months later from a re-run import. `events` has no primary
//! key for that (schema migration 8 says what the index cost); instead the writer, the only
//! one who appends events, keeps every stored key in a hash set, read from the table when the
//! store opens. An append claims its events' keys before its transaction (one hash-set
//! operation an event also finds the duplicates within the batch) and releases them if the
//! transaction fails, so a rolled-back append leaves nothing behind.
//!
//! Cost: 16 bytes a key in a table at most 3/4 full whose size is a power of two
//! ([`KeyTable`]): 21–43 bytes an event, ~268 MB at 10M events and ~2.1 GB at 100M.
//! The set is read from the key column at the first append after the store opens, so commands
//! that only read never pay for it; the server reads it before it serves: at 10M events
//! 0.53–0.68 s into [`KeyTable`], 1.3–2.4 s into std's `HashSet` before it (the `stored event
//! keys read` log line, same DuckDB build).
//!
//! A keyed hash on purpose: the keys are unkeyed digests of ids the clients choose (and
//! browser write keys are public), so a fixed hash could be made to collide into one bucket.
//! aHash with per-process random keys instead of std's SipHash: reading 10M keys into std's
//! `HashSet`, before the key table, took 1.1 s against 3.1 s (the `stored event keys read`
//! log line, BENCHMARKS.md); the key table keeps aHash.

use duckdb::arrow::array::{Array, AsArray};
use duckdb::arrow::datatypes::{DataType, Decimal128Type};
use duckdb::Connection;

use crate::key_table::KeyTable;
use crate::StoreError;

/// The keys of the stored events.
#[derive(Debug, Default)]
pub struct StoredKeys(KeyTable);

impl StoredKeys {
    /// Every key in `events`.
    pub(crate) fn load(conn: &Connection) -> Result<Self, StoreError> {
        let n: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let mut keys = KeyTable::default();
        keys.reserve(usize::try_from(n).unwrap_or(0));
        let mut stmt = conn.prepare("SELECT msg_key FROM events")?;
        for batch in stmt.stream_arrow([])? {
            let batch = batch?;
            let col = batch.column(0);
            match col.data_type() {
                // DuckDB hands HUGEINT to Arrow as a 128-bit decimal; its raw values are the
                // keys (even those beyond the decimal's 38 digits).
                DataType::Decimal128(_, _) => {
                    let values = col.as_primitive::<Decimal128Type>();
                    keys.insert_all(values.values(), |_, _| {});
                }
                other => {
                    return Err(StoreError::UnexpectedColumn {
                        column: "msg_key".into(),
                        ty: other.to_string(),
                    })
                }
            }
        }
        Ok(StoredKeys(keys))
    }

    /// Claims `key` for an event about to be appended: false if an event with it is stored
    /// (or claimed earlier in the same append). A claim of a failed append must be released.
    pub fn claim(&mut self, key: i128) -> bool {
        self.0.insert(key)
    }

    /// Claims every key of `keys` in order (as [`StoredKeys::claim`] one by one would),
    /// calling `claimed(i, true)` for a key that was free and `claimed(i, false)` for one
    /// stored or claimed before (earlier in `keys` included). Faster than one by one: the
    /// table's slots for later keys are fetched while earlier ones are claimed.
    pub fn claim_all(&mut self, keys: &[i128], claimed: impl FnMut(usize, bool)) {
        self.0.insert_all(keys, claimed);
    }

    /// Gives back the claim on `key` (its append was rolled back).
    pub fn release(&mut self, key: i128) {
        self.0.remove(key);
    }

    /// Makes room for `additional` more keys at once, instead of growing the table by
    /// doubling (each doubling moves every key held).
    pub fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_every_key_of_any_size() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE events (msg_key HUGEINT NOT NULL);
             INSERT INTO events SELECT i::HUGEINT FROM range(5000) t(i);
             INSERT INTO events VALUES (170141183460469231731687303715884105727::HUGEINT),
                                       (-170141183460469231731687303715884105727::HUGEINT - 1);",
        )
        .unwrap();
        let mut keys = StoredKeys::load(&conn).unwrap();
        assert_eq!(keys.len(), 5002);
        assert!(!keys.claim(0) && !keys.claim(4999));
        assert!(!keys.claim(i128::MAX) && !keys.claim(i128::MIN));
        assert!(keys.claim(5000), "a new key");
        assert!(!keys.claim(5000), "claimed once");
        keys.release(5000);
        assert!(keys.claim(5000), "released keys can be claimed again");
    }
}

//! Deduplication and durability.

use serde_json::json;
use upmarket_core::FreeMailDomains;
use upmarket_store::{AppendStatus, DuckDbStore, Store};

use crate::{column, ev, memory_store};

fn t(msg: &str) -> upmarket_core::Event {
    ev(
        json!({"type":"track","event":"x","userId":"u","messageId":msg,"timestamp":"2026-01-01T00:00:00Z"}),
    )
}

#[test]
fn a_retried_message_id_is_stored_once() {
    let mut store = memory_store();
    assert_eq!(
        store.append(&[t("a"), t("b")]).unwrap(),
        vec![AppendStatus::Stored, AppendStatus::Stored]
    );
    assert_eq!(
        store.append(&[t("b"), t("c"), t("c")]).unwrap(),
        vec![
            AppendStatus::Duplicate,
            AppendStatus::Stored,
            AppendStatus::Duplicate
        ]
    );
    let r = store.reader().unwrap();
    let counts = r
        .message_counts(&["a".into(), "b".into(), "c".into(), "zzz".into()])
        .unwrap();
    assert_eq!(
        (counts["a"], counts["b"], counts["c"], counts["zzz"]),
        (1, 1, 1, 0)
    );
    assert_eq!(r.stats().unwrap().events, 3);
}

#[test]
fn events_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
        store.append(&[t("a"), t("b")]).unwrap();
    }
    let mut store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
    assert_eq!(
        store.append(&[t("a")]).unwrap(),
        vec![AppendStatus::Duplicate],
        "dedup survives a restart"
    );
    assert_eq!(store.reader().unwrap().stats().unwrap().events, 2);
}

/// An idle server's checkpoint: the write-ahead log goes into the database file (only when it
/// is at least as large as asked), and the events stay.
#[test]
fn a_checkpoint_empties_the_log_it_was_asked_about() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
    store.append(&[t("a"), t("b")]).unwrap();
    let wal = dir.path().join("upmarket.duckdb.wal");
    let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(size() > 0, "a small transaction goes through the log");
    assert!(
        !store.checkpoint(u64::MAX).unwrap(),
        "log smaller than asked"
    );
    assert!(size() > 0);
    // A server's lowered thread count is kept (the checkpoint itself runs on every core).
    store.set_threads(1).unwrap();
    assert!(store.checkpoint(1).unwrap());
    assert_eq!(size(), 0);
    let threads: Vec<i64> = column(
        &store.sql_connection().unwrap(),
        "SELECT current_setting('threads')",
    );
    assert_eq!(threads, [1]);
    assert!(!store.checkpoint(1).unwrap(), "nothing left to move");
    drop(store);
    let store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
    assert_eq!(store.reader().unwrap().stats().unwrap().events, 2);
}

/// A store made before migration 8 (a primary key on `events`) keeps its events, their order
/// and their deduplication when it is opened by this build, its message ids are then
/// compressed with zstd (migration 10), and its call types and sources become ENUMs with the
/// same values (migration 11).
#[test]
fn a_store_with_keyed_events_is_migrated_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = duckdb::Connection::open(dir.path().join(upmarket_store::DB_FILE)).unwrap();
        conn.execute_batch("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)").unwrap();
        for (version, name, sql) in upmarket_store::schema::MIGRATIONS.iter().take(7) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                duckdb::params![version, name],
            )
            .unwrap();
        }
        let mut insert = conn
            .prepare(
                "INSERT INTO events (msg_key, seq, message_id, type, timestamp, received_at, source)
                 VALUES (?, ?, ?, ?, TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01', ?)",
            )
            .unwrap();
        for seq in 1..=300i64 {
            let e = t(&format!("m{seq}"));
            let i = (seq % 3) as usize;
            let kind = ["track", "page", "identify"][i];
            let source = ["segment", "posthog", "import"][i];
            insert
                .execute(duckdb::params![
                    e.dedup_key(),
                    seq,
                    e.message_id,
                    kind,
                    source
                ])
                .unwrap();
        }
    }
    let mut store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
    let conn = store.sql_connection().unwrap();
    let keyed: i64 = conn
        .query_row(
            "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'events' AND constraint_type = 'PRIMARY KEY'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(keyed, 0, "the primary key is gone");
    let in_order: bool = conn
        .query_row(
            "SELECT bool_and(seq = rn) FROM (SELECT seq, row_number() OVER () AS rn FROM events)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(in_order, "rows keep their physical order");
    let ddl: String = conn
        .query_row(
            "SELECT sql FROM duckdb_tables() WHERE table_name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        ddl.contains("message_id VARCHAR USING COMPRESSION ZSTD NOT NULL"),
        "{ddl}"
    );
    assert!(ddl.contains(r#""type" ENUM('track', "#), "{ddl}");
    assert!(ddl.contains(r#""source" ENUM('segment', "#), "{ddl}");
    let values: Vec<(String, String, i64)> = conn
        .prepare(
            "SELECT type::VARCHAR, source::VARCHAR, count(*) FROM events GROUP BY ALL ORDER BY 1",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        values,
        vec![
            ("identify".into(), "import".into(), 100),
            ("page".into(), "posthog".into(), 100),
            ("track".into(), "segment".into(), 100),
        ]
    );
    assert_eq!(
        store.append(&[t("m1"), t("new"), t("m300")]).unwrap(),
        vec![
            AppendStatus::Duplicate,
            AppendStatus::Stored,
            AppendStatus::Duplicate
        ],
        "the migrated events' keys are known"
    );
    assert_eq!(store.reader().unwrap().stats().unwrap().events, 301);
    let next: i64 = conn
        .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(next, 301);
}

#[test]
fn json_columns_keep_what_was_sent() {
    let mut store = memory_store();
    store
        .append(&[ev(json!({"type":"track","event":"Invite Sent","userId":"u","messageId":"m","timestamp":"2026-01-01T00:00:00Z",
            "properties":{"count":3,"note":"it's \"quoted\""}}))])
        .unwrap();
    let conn = store.sql_connection().unwrap();
    let (count, note): (i64, String) = conn
        .query_row(
            "SELECT properties->>'count', properties->>'note' FROM events WHERE message_id = 'm'",
            [],
            |r| Ok((r.get::<_, String>(0)?.parse().unwrap(), r.get(1)?)),
        )
        .unwrap();
    assert_eq!((count, note.as_str()), (3, "it's \"quoted\""));
}

#[test]
fn a_batch_mixing_old_and_new_events_after_a_restart_stores_only_the_new() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
        store.append(&[t("a"), t("b")]).unwrap();
    }
    // After a restart the writer knows the stored keys from the table.
    let mut store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
    assert_eq!(
        store.append(&[t("c"), t("a"), t("d")]).unwrap(),
        vec![
            AppendStatus::Stored,
            AppendStatus::Duplicate,
            AppendStatus::Stored
        ]
    );
    let conn = store.sql_connection().unwrap();
    let order: Vec<String> = column(&conn, "SELECT message_id FROM events ORDER BY seq");
    assert_eq!(order, ["a", "b", "c", "d"], "seq keeps arrival order");
}

fn identify(msg: &str, user: &str, email: &str) -> upmarket_core::Event {
    ev(
        json!({"type":"identify","userId":user,"messageId":msg,"timestamp":"2026-01-01T00:00:00Z","traits":{"email":email}}),
    )
}

#[test]
fn deferred_identity_is_written_on_flush() {
    let mut store = memory_store();
    store.defer_identity(std::time::Duration::from_secs(3600));
    store
        .append(&[identify("i1", "ann", "ann@acme.com")])
        .unwrap();
    let r = store.reader().unwrap();
    assert!(r.attribution("i1").unwrap().unwrap().company_id.is_none());
    store.flush().unwrap();
    assert_eq!(
        r.attribution("i1").unwrap().unwrap().company_id.as_deref(),
        Some("acme.com")
    );
}

#[test]
fn identity_deferred_at_a_crash_is_replayed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
        store.defer_identity(std::time::Duration::from_secs(3600));
        store
            .append(&[identify("i1", "ann", "ann@acme.com"), t("x1")])
            .unwrap();
        // Dropped without flush: the events are committed, their identity facts are not.
    }
    let store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
    let r = store.reader().unwrap();
    assert_eq!(
        r.attribution("i1").unwrap().unwrap().company_id.as_deref(),
        Some("acme.com")
    );
    let (touched, _) = r
        .touched_accounts(upmarket_core::model::Level::Company, 0)
        .unwrap();
    assert_eq!(touched, ["acme.com"]);
}

/// A store on disk that appends two batches at once, identity deferred (as imports open it).
fn parallel_store(dir: &std::path::Path) -> DuckDbStore {
    let mut store = DuckDbStore::open(dir, &FreeMailDomains::default()).unwrap();
    store.defer_identity(std::time::Duration::from_secs(3600));
    store.parallel_appends(2).unwrap();
    store
}

/// Track events with these messageIds, prepared.
fn prepared(ids: &[&str]) -> Vec<upmarket_store::PreparedEvent> {
    ids.iter()
        .map(|id| upmarket_store::PreparedEvent::new(t(id)))
        .collect()
}

/// `Store::append_prepared_many` of `batches`.
fn append_many(
    store: &mut DuckDbStore,
    batches: &[&Vec<upmarket_store::PreparedEvent>],
) -> Vec<Result<Vec<AppendStatus>, upmarket_store::StoreError>> {
    let refs: Vec<Vec<&upmarket_store::PreparedEvent>> =
        batches.iter().map(|x| x.iter().collect()).collect();
    let slices: Vec<&[&upmarket_store::PreparedEvent]> = refs.iter().map(Vec::as_slice).collect();
    store.append_prepared_many(&slices)
}

/// Batches appended (and committed) in parallel: numbers follow the batches, a messageId in
/// two batches is stored by the first, and deferred identity covers all of them.
#[test]
fn batches_appended_in_parallel_keep_their_order_and_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = parallel_store(dir.path());
    store.append(&[t("old")]).unwrap();
    let (a, b, c) = (
        prepared(&["a1", "a2", "old"]),
        prepared(&["b1", "a2", "b2"]),
        prepared(&["c1"]),
    );
    let results: Vec<Vec<AppendStatus>> = append_many(&mut store, &[&a, &b, &c])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    use AppendStatus::{Duplicate as D, Stored as S};
    assert_eq!(results, vec![vec![S, S, D], vec![S, D, S], vec![S]]);
    let conn = store.sql_connection().unwrap();
    let order: Vec<(i64, String)> = conn
        .prepare("SELECT seq, message_id FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want = ["old", "a1", "a2", "b1", "b2", "c1"];
    assert_eq!(
        order,
        want.iter()
            .enumerate()
            .map(|(i, m)| (i as i64 + 1, m.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store.append(&[t("b2"), t("d1")]).unwrap(),
        vec![D, S],
        "keys of parallel batches are known afterwards"
    );
    store.flush().unwrap();
    let through: i64 = conn
        .query_row("SELECT max(through_seq) FROM identity_state", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(through, 7, "identity applied through the last event");
}

/// Regression guard for the claims: an append whose transaction fails gives its keys back, so
/// the same events are stored when sent again (here the append fails because `events` is
/// renamed away meanwhile).
#[test]
fn a_failed_append_leaves_its_events_storable() {
    let mut store = memory_store();
    store.append(&[t("before")]).unwrap();
    let conn = store.sql_connection().unwrap();
    conn.execute_batch("ALTER TABLE events RENAME TO events_away")
        .unwrap();
    assert!(store.append(&[t("x1"), t("x2")]).is_err());
    conn.execute_batch("ALTER TABLE events_away RENAME TO events")
        .unwrap();
    assert_eq!(
        store.append(&[t("x1"), t("x2"), t("before")]).unwrap(),
        vec![
            AppendStatus::Stored,
            AppendStatus::Stored,
            AppendStatus::Duplicate
        ]
    );
    let seqs: Vec<i64> = column(&conn, "SELECT seq FROM events ORDER BY seq");
    assert_eq!(seqs, [1, 2, 3], "no numbers lost to the failed append");
}

/// The same for batches appended in parallel: every failed batch gives its keys back, and the
/// numbers continue after the last stored event.
#[test]
fn failed_parallel_batches_leave_their_events_storable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = parallel_store(dir.path());
    store.append(&[t("before")]).unwrap();
    let conn = store.sql_connection().unwrap();
    let (a, b) = (prepared(&["a1", "a2"]), prepared(&["b1", "before"]));
    conn.execute_batch("ALTER TABLE events RENAME TO events_away")
        .unwrap();
    assert!(append_many(&mut store, &[&a, &b])
        .iter()
        .all(Result::is_err));
    conn.execute_batch("ALTER TABLE events_away RENAME TO events")
        .unwrap();
    let results: Vec<Vec<AppendStatus>> = append_many(&mut store, &[&a, &b])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    use AppendStatus::{Duplicate as D, Stored as S};
    assert_eq!(results, vec![vec![S, S], vec![S, D]]);
    let seqs: Vec<i64> = column(&conn, "SELECT seq FROM events ORDER BY seq");
    assert_eq!(seqs, [1, 2, 3, 4], "no numbers lost to the failed appends");
}

/// Events the server journaled (acknowledged) but had not stored in DuckDB when it stopped
/// are stored when the store next opens, with their identity; those it had stored too are not
/// stored twice; the journal is gone afterwards.
#[test]
fn journaled_events_are_stored_once_at_the_next_open() {
    use upmarket_store::journal::{self, Journal};
    use upmarket_store::PreparedEvent;
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join(journal::JOURNAL_DIR);
    {
        let mut store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
        assert_eq!(store.journal_dir(), Some(journal_dir.clone()));
        let mut keys = store.take_stored_keys().unwrap();
        let events = PreparedEvent::all(vec![
            t("applied"),
            identify("journaled-1", "ann", "ann@acme.com"),
            t("journaled-2"),
        ]);
        assert!(events.iter().all(|p| keys.claim(p.key())));
        let mut j = Journal::create(&journal_dir).unwrap();
        j.append(&events.iter().collect::<Vec<_>>()).unwrap();
        // The applier stored the first event, then the process died.
        store.append_unique(&[&events[0]]).unwrap();
    }
    assert_eq!(journal::segments(&journal_dir).unwrap().len(), 1);
    let mut store = DuckDbStore::open(dir.path(), &FreeMailDomains::default()).unwrap();
    assert!(journal::segments(&journal_dir).unwrap().is_empty());
    let r = store.reader().unwrap();
    let counts = r
        .message_counts(&["applied".into(), "journaled-1".into(), "journaled-2".into()])
        .unwrap();
    assert_eq!(
        (
            counts["applied"],
            counts["journaled-1"],
            counts["journaled-2"]
        ),
        (1, 1, 1)
    );
    assert_eq!(
        r.attribution("journaled-1")
            .unwrap()
            .unwrap()
            .company_id
            .as_deref(),
        Some("acme.com")
    );
    assert_eq!(
        store.append(&[t("journaled-2")]).unwrap(),
        vec![AppendStatus::Duplicate]
    );
}

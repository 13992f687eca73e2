//! The embedded backend: one DuckDB file in the data directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value as DbValue};
use duckdb::{params, Connection, OptionalExt};
use serde_json::{Map, Value};
use upmarket_core::FreeMailDomains;

use crate::identity_batch::IdentityBatch;
use crate::identity_write::{applied_through, facts_after, set_applied_through, write_identity};
use crate::journal::{self, JOURNAL_DIR};
use crate::schema::MIGRATIONS;
use crate::stored_keys::StoredKeys;
use crate::write_cache::WriteCache;
use crate::{
    AccountSignals, AppendStatus, Attribution, HistoryPoint, PreparedEvent, Store, StoreError,
    StoreSession, StoreStats, StoredScore, TierChange,
};
use chrono::{NaiveDate, NaiveDateTime};
use upmarket_core::model::{Level, Model, ScoreDetails};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "upmarket.duckdb";

/// WAL size at which DuckDB checkpoints (see [`DuckDbStore::open`]).
pub const CHECKPOINT_THRESHOLD: &str = "1GB";

/// The path an in-memory store reports.
const IN_MEMORY: &str = ":memory:";

/// Events in one DuckDB row group: a transaction of whole row groups is written straight
/// into the database file at commit, not through the write-ahead log. The import's batch
/// size and the server's largest append.
pub const ROW_GROUP_EVENTS: usize = 122_880;

/// An event of a batch being appended, with its index in the batch.
type Keyed<'a> = (usize, &'a PreparedEvent);

/// The embedded DuckDB store. The value itself is the writing handle; [`Store::reader`] gives
/// read handles on the same database for other threads.
pub struct DuckDbStore {
    conn: Connection,
    path: PathBuf,
    /// The `seq` the next stored event gets (the writer numbers events itself).
    next_seq: i64,
    /// The key of every stored event: deduplication (see [`crate::stored_keys`]). Read at
    /// the first append, or handed to the server's writer ([`Store::take_stored_keys`]).
    keys: Option<StoredKeys>,
    /// Identity state remembered between commits (see [`crate::write_cache`]).
    cache: WriteCache,
    /// How long identity facts of committed events may wait before they are written
    /// (zero: in the events' own transaction).
    identity_delay: Duration,
    /// Identity facts of committed events not yet written, when deferred.
    pending: IdentityBatch,
    /// The last event `pending` covers, and since when it has waited.
    pending_through: i64,
    pending_since: Option<Instant>,
    /// Further connections for appending several batches at once
    /// ([`Store::append_prepared_many`]); empty unless [`DuckDbStore::parallel_appends`] asked.
    lanes: Vec<Connection>,
    /// The daily rollup of the events appended since [`Store::collect_derived`], computed as
    /// they commit, written by [`Store::prepare_derived`].
    collector: Option<Collectors>,
}

/// What an import collects as it appends (see [`Store::collect_derived`]).
struct Collectors {
    rollup: Option<crate::rollup_collect::Collector>,
    accounts: Option<crate::account_collect::AccountCollector>,
}

impl Collectors {
    /// Adds `batches`' events, numbered from `first_seqs`.
    fn add(&mut self, batches: &[Vec<Keyed>], first_seqs: &[i64]) {
        for (unique, &first) in batches.iter().zip(first_seqs) {
            if let Some(r) = &mut self.rollup {
                r.add(unique.iter().map(|(_, p)| &p.event));
            }
            if let Some(a) = &mut self.accounts {
                a.add(first, unique.iter().map(|(_, p)| &p.event));
            }
        }
    }

    fn abandon(&mut self, why: &str) {
        if let Some(r) = &mut self.rollup {
            r.abandon(why);
        }
        if let Some(a) = &mut self.accounts {
            a.broken.get_or_insert_with(|| why.to_string());
        }
    }
}

pub(crate) fn ts(t: DateTime<Utc>) -> DbValue {
    DbValue::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

pub(crate) fn json_or_null(m: &Map<String, Value>) -> Result<Option<String>, StoreError> {
    if m.is_empty() {
        Ok(None)
    } else {
        Ok(Some(serde_json::to_string(m)?))
    }
}

impl DuckDbStore {
    /// Opens (creating if needed) the store in `data_dir`, applies pending migrations and sets
    /// the free-mail domain list.
    pub fn open(data_dir: &Path, free_mail: &FreeMailDomains) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        let mut store = Self::from_connection(conn, path, free_mail)?;
        store.replay_journal(&data_dir.join(JOURNAL_DIR))?;
        Ok(store)
    }

    /// Stores the events of the ingest journal at `dir` that are not stored yet (the server
    /// acknowledged them and stopped before they reached DuckDB), then deletes the journal.
    fn replay_journal(&mut self, dir: &Path) -> Result<(), StoreError> {
        let found = journal::segments(dir)?;
        let Some((last, _)) = found.last() else {
            return Ok(());
        };
        let started = Instant::now();
        // Identity is not deferred yet (the store is just open): each transaction writes its
        // own facts.
        let events = PreparedEvent::all(journal::recover(dir)?);
        let mut stored = 0;
        for chunk in events.chunks(ROW_GROUP_EVENTS) {
            let statuses = self.append_prepared(&chunk.iter().collect::<Vec<_>>())?;
            stored += statuses
                .iter()
                .filter(|s| **s == AppendStatus::Stored)
                .count();
        }
        journal::remove_before(dir, last + 1)?;
        tracing::info!(
            events = events.len(),
            stored,
            ms = started.elapsed().as_millis() as u64,
            "ingest journal replayed"
        );
        Ok(())
    }

    /// An in-memory store, for tests and benchmarks.
    pub fn open_in_memory(free_mail: &FreeMailDomains) -> Result<Self, StoreError> {
        Self::from_connection(
            Connection::open_in_memory()?,
            PathBuf::from(IN_MEMORY),
            free_mail,
        )
    }

    fn from_connection(
        conn: Connection,
        path: PathBuf,
        free_mail: &FreeMailDomains,
    ) -> Result<Self, StoreError> {
        migrate(&conn, &path)?;
        // DuckDB checkpoints (writes the WAL into the database file) whenever the WAL passes
        // this size. At its default (16 MB) a long import
        // checkpoints every ~100k events and each checkpoint costs more as the table grows;
        // a 100M-event import slowed about threefold by 36M events. A larger WAL
        // costs only a longer replay after a crash.
        conn.execute_batch(&format!(
            "SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'"
        ))?;
        conn.execute_batch(crate::identity_write::STAGING)?;
        crate::event_rows::register(&conn)?;
        crate::rollup_rows::register(&conn)?;
        crate::account_rows_out::register(&conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        let next_seq: i64 =
            conn.query_row("SELECT coalesce(max(seq), 0) + 1 FROM events", [], |r| {
                r.get(0)
            })?;
        let mut store = DuckDbStore {
            conn,
            path,
            next_seq,
            keys: None,
            cache: WriteCache::default(),
            identity_delay: Duration::ZERO,
            pending: IdentityBatch::default(),
            pending_through: 0,
            pending_since: None,
            lanes: Vec::new(),
            collector: None,
        };
        store.set_free_mail_domains(free_mail)?;
        store.replay_identity()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lets identity facts of committed events wait up to `delay` and be written together
    /// (the server's setting: under load, a commit then costs one append). Readers see a new
    /// person's workspace and company that much later; events are never delayed, and a crash
    /// loses nothing (the facts are replayed from the events at the next open).
    pub fn defer_identity(&mut self, delay: Duration) {
        self.identity_delay = delay;
    }

    /// Sets how many threads DuckDB runs queries on, for every connection of this store
    /// (DuckDB's default: every core; the server's `server.duckdb_threads`). Scoring every
    /// account or a few, derived tables and checkpoints still run on every core ([`on_all_cores`]).
    pub fn set_threads(&mut self, n: usize) -> Result<(), StoreError> {
        set_threads(&self.conn, n)
    }

    /// Lets [`Store::append_prepared_many`] append up to `n` batches at once, each on its own
    /// connection and thread. DuckDB appends of different transactions to one table run in
    /// parallel; their commits stay in order. Takes effect only with identity deferred
    /// ([`DuckDbStore::defer_identity`]), since each batch commits alone.
    pub fn parallel_appends(&mut self, n: usize) -> Result<(), StoreError> {
        while self.lanes.len() + 1 < n {
            self.lanes.push(self.conn.try_clone()?);
        }
        self.lanes.truncate(n.saturating_sub(1));
        Ok(())
    }

    fn stored_keys(&mut self) -> Result<&mut StoredKeys, StoreError> {
        if self.keys.is_none() {
            let started = Instant::now();
            let keys = StoredKeys::load(&self.conn)?;
            tracing::info!(
                events = keys.len(),
                ms = started.elapsed().as_millis() as u64,
                "stored event keys read"
            );
            self.keys = Some(keys);
        }
        Ok(self.keys.get_or_insert_with(StoredKeys::default))
    }

    /// Gives back the claims of an append that failed.
    fn release(&mut self, events: &[Keyed]) {
        if let Some(keys) = &mut self.keys {
            for (_, p) in events {
                keys.release(p.key);
            }
        }
    }

    /// Writes the identity facts of events committed before and not yet applied (a crash
    /// between an events commit and its deferred identity write).
    fn replay_identity(&mut self) -> Result<(), StoreError> {
        let through = applied_through(&self.conn)?;
        let newest = self.next_seq - 1;
        if newest <= through {
            return Ok(());
        }
        let started = Instant::now();
        let mut facts = facts_after(&self.conn, through)?;
        self.identity_transaction(&mut facts, newest)?;
        tracing::info!(
            events = newest - through,
            ms = started.elapsed().as_millis() as u64,
            "identity replayed"
        );
        Ok(())
    }

    /// Writes `facts` and moves the watermark to `through`, in one transaction.
    fn identity_transaction(
        &mut self,
        facts: &mut IdentityBatch,
        through: i64,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        run(&self.conn, "BEGIN TRANSACTION")?;
        let result = write_identity(&self.conn, &mut self.cache, facts)
            .and_then(|()| set_applied_through(&self.conn, through))
            .and_then(|()| run(&self.conn, "COMMIT").map(|_| ()));
        if result.is_err() {
            self.abandon();
        }
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            "identity transaction"
        );
        result
    }

    /// After a failed statement: roll back, and forget cached state that may name its rows.
    fn abandon(&mut self) {
        self.cache.forget_identity();
        if let Err(rollback) = run(&self.conn, "ROLLBACK") {
            tracing::debug!(error = %rollback, "rollback after a failed transaction");
        }
    }

    /// Replaces the free-mail domain list (takes effect on the next read).
    pub fn set_free_mail_domains(&mut self, free_mail: &FreeMailDomains) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM free_mail_domains", [])?;
        {
            let mut app = tx.appender("free_mail_domains")?;
            for d in free_mail.sorted() {
                app.append_row(params![d])?;
            }
            app.flush()?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A read-only SQL connection on the same database, for the CLI and tests.
    pub fn sql_connection(&self) -> Result<Connection, StoreError> {
        Ok(self.conn.try_clone()?)
    }

    /// One transaction: append the events to `events`, numbered from `next_seq` in order,
    /// then, unless identity is deferred, write their identity facts. Commits, or rolls back.
    fn transact(&mut self, events: &[Keyed]) -> Result<(), StoreError> {
        let t0 = Instant::now();
        // A failed append has rolled back already and written no identity.
        begin_append(&self.conn, events, self.next_seq)?;
        let t1 = Instant::now();
        let result = (|| -> Result<(), StoreError> {
            if self.identity_delay.is_zero() {
                let mut facts = std::mem::take(&mut self.pending);
                for (_, p) in events {
                    facts.add(&p.event);
                }
                let through = self.next_seq + events.len() as i64 - 1;
                let written = write_identity(&self.conn, &mut self.cache, &mut facts)
                    .and_then(|()| set_applied_through(&self.conn, through));
                if let Err(err) = written {
                    self.pending = facts;
                    return Err(err);
                }
                self.pending_since = None;
            }
            Ok(())
        })();
        let t2 = Instant::now();
        let committed = result.and_then(|()| {
            run(&self.conn, "COMMIT")?;
            tracing::debug!(
                events = events.len(),
                insert_ms = (t1 - t0).as_secs_f64() * 1e3,
                identity_ms = (t2 - t1).as_secs_f64() * 1e3,
                commit_ms = t2.elapsed().as_secs_f64() * 1e3,
                "append"
            );
            Ok(())
        });
        if committed.is_err() {
            self.abandon();
        }
        committed
    }

    /// Stores `unique` (the new events of a batch of `n`) in one transaction: their statuses.
    /// Claiming their keys, and giving them back on failure, is the caller's part.
    fn store_unique(
        &mut self,
        n: usize,
        unique: &[Keyed],
    ) -> Result<Vec<AppendStatus>, StoreError> {
        self.transact(unique)?;
        let statuses = self.committed(n, unique);
        self.flush_when_due();
        Ok(statuses)
    }

    /// After `unique` (claimed from a batch of `n` events) committed with the next numbers:
    /// their statuses, and their identity facts queued when deferred.
    fn committed(&mut self, n: usize, unique: &[Keyed]) -> Vec<AppendStatus> {
        self.committed_at(self.next_seq, n, unique)
    }

    /// [`DuckDbStore::committed`] for events numbered from `first_seq` (batches committed in
    /// parallel: a later one may have committed while an earlier one failed).
    fn committed_at(&mut self, first_seq: i64, n: usize, unique: &[Keyed]) -> Vec<AppendStatus> {
        let mut statuses = vec![AppendStatus::Duplicate; n];
        if unique.is_empty() {
            return statuses;
        }
        self.next_seq = self.next_seq.max(first_seq + unique.len() as i64);
        let deferred = !self.identity_delay.is_zero();
        for &(i, p) in unique {
            statuses[i] = AppendStatus::Stored;
            if deferred {
                self.pending.add(&p.event);
            }
        }
        if deferred {
            self.pending_through = self.next_seq - 1;
            self.pending_since.get_or_insert_with(Instant::now);
        }
        statuses
    }

    /// Puts the collector back after an append (None: its thread panicked, and the rollup is
    /// left to SQL); a failed append abandons the collection, which counted its events.
    fn collected(&mut self, collector: Option<Collectors>, failed: bool) {
        self.collector = collector.map(|mut c| {
            if failed {
                c.abandon("an append failed");
            }
            c
        });
    }

    /// Inserts collected account rows into `base` in two halves at once, each on a connection
    /// of its own and in order, split at a row-group boundary: every row group of the base
    /// stays one range of keys (one thread took 3.0–3.3 s for the 3.6M rows of 10M events).
    fn insert_halves(
        &self,
        base: &str,
        collector: &crate::account_collect::AccountCollector,
        out: &crate::account_collect::OutRows,
    ) -> Result<(), StoreError> {
        let rows = &out.rows;
        let groups = rows.len().div_ceil(ROW_GROUP_EVENTS);
        let split = (groups / 2 * ROW_GROUP_EVENTS).min(rows.len());
        let (first, second) = rows.split_at(split);
        let other = self.conn.try_clone()?;
        std::thread::scope(|scope| {
            let later = scope.spawn(move || {
                crate::account_rows_out::insert(&other, base, collector, out, second)
            });
            let now = crate::account_rows_out::insert(&self.conn, base, collector, out, first);
            let later = later.join().unwrap_or(Err(StoreError::Stopped));
            now.and(later)
        })
    }

    /// Writes deferred identity facts once they have waited long enough.
    fn flush_when_due(&mut self) {
        // Only deferred facts wait (`pending_since` is set by `committed` when deferred).
        let due = self
            .pending_since
            .is_some_and(|since| since.elapsed() >= self.identity_delay);
        if due {
            // The events are committed whatever happens here; a failure leaves the facts
            // pending (and replayable from the events at the next open).
            if let Err(err) = self.flush() {
                tracing::error!(error = %err, "writing deferred identity facts failed");
            }
        }
    }
}

/// `batches`' events (numbered from `first_seqs`) added to `collector`, which is handed back.
fn collect(mut collector: Collectors, batches: &[Vec<Keyed>], first_seqs: &[i64]) -> Collectors {
    collector.add(batches, first_seqs);
    collector
}

/// Claims the keys of `events` in `keys`: the events not stored yet, with their index.
fn claim<'a>(keys: &mut StoredKeys, events: &[&'a PreparedEvent]) -> Vec<Keyed<'a>> {
    let wanted: Vec<i128> = events.iter().map(|p| p.key).collect();
    let mut unique = Vec::with_capacity(events.len());
    keys.claim_all(&wanted, |i, free| {
        if free {
            unique.push((i, events[i]));
        }
    });
    unique
}

/// [`begin_append`] and its commit, or nothing (rolled back).
fn append_and_commit(
    conn: &Connection,
    events: &[Keyed],
    first_seq: i64,
) -> Result<(), StoreError> {
    begin_append(conn, events, first_seq)?;
    run(conn, "COMMIT").map(|_| ()).inspect_err(|_| {
        let _ = run(conn, "ROLLBACK");
    })
}

/// Begins a transaction on `conn` and appends `events` to `events`, numbered from `first_seq`
/// in order. Rolls back if the append fails; leaves the transaction open otherwise.
fn begin_append(conn: &Connection, events: &[Keyed], first_seq: i64) -> Result<(), StoreError> {
    run(conn, "BEGIN TRANSACTION")?;
    let appended = crate::event_rows::insert(conn, events.iter().map(|(_, p)| *p), first_seq);
    if appended.is_err() {
        if let Err(rollback) = run(conn, "ROLLBACK") {
            tracing::debug!(error = %rollback, "rollback after a failed append");
        }
    }
    appended
}

impl Store for DuckDbStore {
    fn append_prepared(
        &mut self,
        events: &[&PreparedEvent],
    ) -> Result<Vec<AppendStatus>, StoreError> {
        // An event whose key is stored is a duplicate; within the batch, the first copy of a
        // messageId is the one stored. The keys are claimed now (one hash-set operation an
        // event) and given back if the transaction fails.
        let unique = claim(self.stored_keys()?, events);
        if unique.is_empty() {
            return Ok(vec![AppendStatus::Duplicate; events.len()]);
        }
        // The collector (an import's) adds the events on another thread meanwhile.
        let adding = self.collector.take();
        let first = [self.next_seq];
        let (stored, collector) = std::thread::scope(|scope| {
            let adding =
                adding.map(|c| scope.spawn(|| collect(c, std::slice::from_ref(&unique), &first)));
            let stored = self.store_unique(events.len(), &unique);
            (stored, adding.and_then(|h| h.join().ok()))
        });
        self.collected(collector, stored.is_err());
        stored.inspect_err(|_| self.release(&unique))
    }

    fn append_prepared_many(
        &mut self,
        batches: &[&[&PreparedEvent]],
    ) -> Vec<Result<Vec<AppendStatus>, StoreError>> {
        if batches.len() < 2 || self.lanes.is_empty() || self.identity_delay.is_zero() {
            return batches.iter().map(|b| self.append_prepared(b)).collect();
        }
        let (now, later) = batches.split_at(batches.len().min(self.lanes.len() + 1));
        // Claims in batch order (a messageId in two batches is stored by the first), then
        // each batch's numbers follow the previous batch's.
        let keys = match self.stored_keys() {
            Ok(keys) => keys,
            Err(err) => {
                let mut results = vec![Err(err)];
                results.extend(
                    batches[1..]
                        .iter()
                        .map(|_| Err(StoreError::EarlierBatchFailed)),
                );
                return results;
            }
        };
        let claimed: Vec<Vec<Keyed>> = now.iter().map(|b| claim(keys, b)).collect();
        let mut first_seq = Vec::with_capacity(claimed.len());
        let mut next = self.next_seq;
        for unique in &claimed {
            first_seq.push(next);
            next += unique.len() as i64;
        }
        // Append and commit in parallel: the first batch on this thread, each other one on a
        // lane of its own (the connection moves to the thread and back). Commits too: most of
        // a commit's work is DuckDB compressing and writing the batch's row group, which it
        // does before taking its commit lock, so commits made one after another on one thread
        // left that thread the import's bottleneck (1M events: ~0.6 s of appends on one core
        // after the last row was parsed). Per batch after the first: its lane (None if its
        // thread died: append_and_commit does not panic, but should it, the lane is opened
        // again below) and the result.
        let mut idle = std::mem::take(&mut self.lanes);
        let busy: Vec<Connection> = idle.drain(..claimed.len() - 1).collect();
        let adding = self.collector.take();
        let (first, others, collector) = std::thread::scope(|scope| {
            // The collector (an import's) adds the events on a thread of its own meanwhile.
            let adding = adding.map(|c| scope.spawn(|| collect(c, &claimed, &first_seq)));
            let handles: Vec<_> = busy
                .into_iter()
                .zip(claimed.iter().zip(&first_seq).skip(1))
                .map(|(lane, (unique, &seq))| {
                    scope.spawn(move || {
                        let result = append_and_commit(&lane, unique, seq);
                        (lane, result)
                    })
                })
                .collect();
            let first = append_and_commit(&self.conn, &claimed[0], first_seq[0]);
            let others: Vec<(Option<Connection>, Result<(), StoreError>)> = handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok((lane, result)) => (Some(lane), result),
                    Err(_) => (None, Err(StoreError::Stopped)),
                })
                .collect();
            (first, others, adding.and_then(|h| h.join().ok()))
        });
        let failed = first.is_err() || others.iter().any(|(_, r)| r.is_err());
        self.collected(collector, failed);
        let mut lanes: Vec<Option<Connection>> = vec![None];
        let mut outcomes = vec![first];
        for (lane, result) in others {
            lanes.push(lane);
            outcomes.push(result);
        }
        // Each batch stands alone: a failed one gives its keys back, and the numbers continue
        // after the last batch that committed (a failed batch's numbers stay unused).
        let mut results = Vec::with_capacity(batches.len());
        for (i, (unique, outcome)) in claimed.iter().zip(outcomes).enumerate() {
            results.push(match outcome {
                Ok(()) => Ok(self.committed_at(first_seq[i], now[i].len(), unique)),
                Err(err) => {
                    self.release(unique);
                    Err(err)
                }
            });
        }
        self.lanes = lanes.into_iter().flatten().collect();
        self.lanes.append(&mut idle);
        while self.lanes.len() + 1 < claimed.len() {
            match self.conn.try_clone() {
                Ok(lane) => self.lanes.push(lane),
                Err(err) => {
                    tracing::error!(error = %err, "reopening an append lane failed");
                    break;
                }
            }
        }
        self.flush_when_due();
        results.extend(later.iter().map(|b| self.append_prepared(b)));
        results
    }

    fn take_stored_keys(&mut self) -> Result<StoredKeys, StoreError> {
        self.stored_keys()?;
        Ok(self.keys.take().unwrap_or_default())
    }

    fn append_unique(&mut self, events: &[&PreparedEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let keyed: Vec<Keyed> = events.iter().copied().enumerate().collect();
        self.store_unique(events.len(), &keyed).map(|_| ())
    }

    fn journal_dir(&self) -> Option<PathBuf> {
        if self.path == Path::new(IN_MEMORY) {
            return None;
        }
        Some(self.path.parent()?.join(JOURNAL_DIR))
    }

    fn checkpoint(&mut self, min_log_bytes: u64) -> Result<bool, StoreError> {
        let mut wal = self.path.clone().into_os_string();
        wal.push(".wal");
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        if size == 0 || size < min_log_bytes {
            return Ok(false);
        }
        let started = Instant::now();
        // A checkpoint compresses what it moves on DuckDB's threads: every core for it (a
        // server on one thread, stopped after a 10M-event load: 15.8 s when DuckDB
        // checkpointed at close on that thread; 8.7 s for 988 MB of log checkpointed here on
        // both cores). DuckDB refuses a checkpoint while other transactions run (a re-scoring
        // pass).
        let done = on_all_cores(&self.conn, || Ok(self.conn.execute_batch("CHECKPOINT")))?;
        match done {
            Ok(()) => {
                tracing::info!(
                    wal_mb = size / 1_000_000,
                    ms = started.elapsed().as_millis() as u64,
                    "checkpoint"
                );
                Ok(true)
            }
            Err(err) => {
                tracing::debug!(error = %err, "checkpoint declined");
                Ok(false)
            }
        }
    }

    fn expect_events(&mut self, events: usize) -> Result<(), StoreError> {
        // Only into an empty store: re-running an import over the events it stored (every
        // one a duplicate) must not double the key set's memory for keys that never come.
        let keys = self.stored_keys()?;
        if keys.is_empty() {
            keys.reserve(events);
        }
        if let Some(rollup) = self.collector.as_mut().and_then(|c| c.rollup.as_mut()) {
            rollup.expect(events);
        }
        Ok(())
    }

    fn collect_derived(&mut self, model: &Model) -> Result<(), StoreError> {
        let start = self.next_seq - 1;
        let collectors = Collectors {
            rollup: crate::rollup_collect::Collector::new(model, start),
            // Only into an empty store: the account rows of events already stored are SQL's.
            accounts: (start == 0)
                .then(|| crate::account_collect::AccountCollector::new(model, start))
                .flatten(),
        };
        self.collector =
            (collectors.rollup.is_some() || collectors.accounts.is_some()).then_some(collectors);
        Ok(())
    }

    fn prepare_derived(&mut self, model: &Model) -> Result<crate::DerivedTables, StoreError> {
        let newest = self.next_seq - 1;
        let (rollup, accounts) = match self.collector.take() {
            Some(c) => (c.rollup, c.accounts),
            None => (None, None),
        };
        // The account rows' boundary and order are worked out on a thread of their own while
        // the rollup is written: sorting them is one core's work (~0.5 s at 10M events), and
        // the rollup's sort and parts of its insert leave the other core free.
        let accounts = accounts
            .filter(|a| a.broken.is_none() && a.events > 0 && a.start_seq + a.events == newest);
        let from = match accounts {
            Some(_) => Some(crate::account_rows::kept_from(&self.conn, model)?),
            None => None,
        };
        let (rollup_collected, account_rows) = std::thread::scope(|scope| {
            let ordered = accounts
                .as_ref()
                .zip(from)
                .map(|(a, from)| scope.spawn(move || a.rows(from.and_utc().timestamp_micros())));
            let rollup_collected = match rollup {
                Some(collected) => collected.write(&self.conn, newest),
                None => Ok(false),
            };
            let ordered = ordered.map(|t| t.join().map_err(|_| StoreError::Stopped));
            (rollup_collected, ordered.transpose())
        });
        let rollup_collected = rollup_collected?;
        let mut account_rows_collected = false;
        if let (Some(a), Some(from), Some(Some(rows))) = (accounts.as_ref(), from, account_rows?) {
            let started = Instant::now();
            account_rows_collected = on_all_cores(&self.conn, || {
                crate::account_rows::create_collected(&self.conn, model, newest, from, &|base| {
                    self.insert_halves(base, a, &rows)
                })
            })?;
            tracing::debug!(
                ms = started.elapsed().as_secs_f64() * 1e3,
                account_rows_collected,
                "collected account rows"
            );
        }
        self.reader()?.prepare_derived(model)?;
        Ok(crate::DerivedTables {
            rollup_collected,
            account_rows_collected,
        })
    }

    fn use_all_cores(&mut self) -> Result<(), StoreError> {
        set_threads(&self.conn, all_cores())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending_since.is_none() {
            return Ok(());
        }
        let mut facts = std::mem::take(&mut self.pending);
        if let Err(err) = self.identity_transaction(&mut facts, self.pending_through) {
            self.pending = facts;
            return Err(err);
        }
        self.pending_since = None;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn StoreSession>, StoreError> {
        Ok(Box::new(DuckDbSession {
            conn: self.conn.try_clone()?,
        }))
    }
}

/// Runs `f` with DuckDB on every core, then sets the lowered thread count again, if the
/// server had lowered it for ingestion (`server.duckdb_threads`, [`DuckDbStore::set_threads`]).
/// Scoring passes (which may build or extend the derived tables), building the derived tables
/// and checkpoints are work that DuckDB spreads over its threads. The setting is the
/// database's, not the connection's: two callers at once may leave each other on fewer
/// threads for a while (only slower), and the last to finish restores what it found.
fn on_all_cores<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let all = all_cores();
    let threads: i64 = conn.query_row("SELECT current_setting('threads')", [], |r| r.get(0))?;
    let lowered = usize::try_from(threads).ok().filter(|&n| n < all);
    if lowered.is_some() {
        set_threads(conn, all)?;
    }
    let out = f();
    if let Some(n) = lowered {
        set_threads(conn, n)?;
    }
    out
}

/// DuckDB's thread count for the whole database (at least one).
/// The machine's cores.
pub(crate) fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn set_threads(conn: &Connection, n: usize) -> Result<(), StoreError> {
    conn.execute_batch(&format!("SET threads = {}", n.max(1)))?;
    Ok(())
}

/// A read handle on a [`DuckDbStore`].
pub struct DuckDbSession {
    conn: Connection,
}

impl StoreSession for DuckDbSession {
    fn fork(&self) -> Result<Box<dyn StoreSession>, StoreError> {
        Ok(Box::new(DuckDbSession {
            conn: self.conn.try_clone()?,
        }))
    }

    fn interrupter(&self) -> Box<dyn Fn() + Send + Sync> {
        let handle = self.conn.interrupt_handle();
        Box::new(move || handle.interrupt())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let count = |sql: &str| -> Result<u64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok(StoreStats {
            events: count("SELECT count(*) FROM events")?,
            people: count("SELECT count(DISTINCT person) FROM event_attribution")?,
            workspaces: count("SELECT count(*) FROM workspace_companies")?,
            companies: count(
                "SELECT count(DISTINCT company_id) FROM (SELECT company_id FROM workspace_companies UNION ALL SELECT company_id FROM person_companies) WHERE company_id IS NOT NULL",
            )?,
        })
    }

    fn attribution(&self, message_id: &str) -> Result<Option<Attribution>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT person, workspace_id, company_id FROM event_attribution WHERE message_id = ?",
        )?;
        Ok(stmt
            .query_row(params![message_id], |r| {
                Ok(Attribution {
                    person: r.get(0)?,
                    workspace_id: r.get(1)?,
                    company_id: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn message_counts(&self, message_ids: &[String]) -> Result<HashMap<String, u64>, StoreError> {
        let mut counts: HashMap<String, u64> = message_ids.iter().map(|m| (m.clone(), 0)).collect();
        let tx_conn = &self.conn;
        tx_conn.execute_batch("CREATE OR REPLACE TEMP TABLE wanted_ids (message_id VARCHAR)")?;
        {
            let mut app = tx_conn.appender_to_catalog_and_db("wanted_ids", "temp", "main")?;
            for m in message_ids {
                app.append_row(params![m])?;
            }
            app.flush()?;
        }
        let mut stmt = tx_conn.prepare("SELECT e.message_id, count(*) FROM events e JOIN temp.wanted_ids w USING (message_id) GROUP BY 1")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (id, n) = row?;
            counts.insert(id, n as u64);
        }
        Ok(counts)
    }

    fn person_of(&self, id: &str) -> Result<String, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT person FROM person_ids WHERE id = ?")?;
        Ok(stmt
            .query_row(params![id], |r| r.get(0))
            .optional()?
            .unwrap_or_else(|| id.to_string()))
    }

    fn workspace_company(&self, workspace_id: &str) -> Result<Option<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT company_id FROM workspace_companies WHERE workspace_id = ?")?;
        Ok(stmt
            .query_row(params![workspace_id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    fn measure(
        &self,
        model: &Model,
        as_of: NaiveDateTime,
        accounts: Option<&[String]>,
    ) -> Result<Vec<AccountSignals>, StoreError> {
        on_all_cores(&self.conn, || {
            crate::scoring::measure(&self.conn, model, as_of, accounts)
        })
    }

    fn save_current_scores(
        &self,
        model: &Model,
        as_of: NaiveDateTime,
        scores: &[(String, ScoreDetails)],
    ) -> Result<Vec<TierChange>, StoreError> {
        crate::scores::save_current(&self.conn, model, as_of, scores)
    }

    fn save_history(
        &self,
        model: &Model,
        day: NaiveDate,
        scores: &[(String, ScoreDetails)],
    ) -> Result<(), StoreError> {
        crate::scores::save_history(&self.conn, model, day, scores)
    }

    fn current_scores(
        &self,
        model: &Model,
        tier: Option<&str>,
    ) -> Result<Vec<StoredScore>, StoreError> {
        crate::scores::current(&self.conn, model, tier, None)
    }

    fn current_score(
        &self,
        model: &Model,
        account: &str,
    ) -> Result<Option<StoredScore>, StoreError> {
        Ok(
            crate::scores::current(&self.conn, model, None, Some(account))?
                .into_iter()
                .next(),
        )
    }

    fn history(&self, model: &Model, account: &str) -> Result<Vec<HistoryPoint>, StoreError> {
        crate::scores::history(&self.conn, model, account)
    }

    fn tier_changes(&self, model: &Model, limit: usize) -> Result<Vec<TierChange>, StoreError> {
        crate::scores::tier_changes(&self.conn, model, limit)
    }

    fn prepare_derived(&self, model: &Model) -> Result<(), StoreError> {
        on_all_cores(&self.conn, || {
            crate::rollup::current(&self.conn, model)?;
            crate::account_rows::current(&self.conn, model).map(|_| ())
        })
    }

    fn latest_event_time(&self) -> Result<Option<NaiveDateTime>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT max(timestamp) FROM events", [], |r| {
                r.get::<_, Option<NaiveDateTime>>(0)
            })?)
    }

    fn touched_accounts(
        &self,
        level: Level,
        after_seq: i64,
    ) -> Result<(Vec<String>, i64), StoreError> {
        let col = match level {
            Level::Workspace => "workspace_id",
            Level::Company => "company_id",
        };
        // Only events whose identity facts are applied: the accounts of the rest are not known
        // yet (the writer may defer them a moment).
        let newest: i64 = self.conn.query_row(
            "SELECT least(coalesce(max(seq), 0), (SELECT max(through_seq) FROM identity_state)) FROM events",
            [],
            |r| r.get(0),
        )?;
        if newest <= after_seq {
            return Ok((Vec::new(), newest));
        }
        // The people who sent the new events (a range of `seq`, which DuckDB's zone maps
        // find without reading the rest), then every account they can count for: the groups
        // those events named and every workspace the people belong to (and at company level,
        // those workspaces' companies and the people's own). No scan of the attribution view.
        let accounts = match level {
            Level::Workspace => "SELECT workspace_id FROM ws",
            Level::Company => {
                "SELECT wc.company_id FROM ws JOIN workspace_companies wc USING (workspace_id)
                 UNION SELECT pc.company_id FROM people JOIN person_companies pc USING (person)"
            }
        };
        let sql = format!(
            "WITH new_events AS (
                SELECT user_id, anonymous_id, group_id FROM events WHERE seq > ? AND seq <= ?
            ), people AS (
                SELECT DISTINCT coalesce(au.person, e.user_id, aa.person, e.anonymous_id) AS person
                FROM new_events e
                LEFT JOIN person_ids au ON au.id = e.user_id
                LEFT JOIN person_ids aa ON aa.id = e.anonymous_id
            ), ws AS (
                SELECT group_id AS workspace_id FROM new_events WHERE group_id IS NOT NULL
                UNION SELECT pm.workspace_id FROM people JOIN person_memberships pm USING (person)
            )
            SELECT DISTINCT {col} FROM ({accounts}) AS t({col}) WHERE {col} IS NOT NULL ORDER BY 1"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![after_seq, newest], |r| r.get::<_, String>(0))?;
        Ok((rows.collect::<Result<Vec<_>, _>>()?, newest))
    }
}

/// Runs one statement of the write path, prepared once per connection: parsing and planning
/// cost more than the work itself for the small commits of live ingestion.
pub(crate) fn run(conn: &Connection, sql: &str) -> Result<usize, StoreError> {
    Ok(conn.prepare_cached(sql)?.execute([])?)
}

/// The first column of every row `sql` returns, as strings.
pub(crate) fn strings(conn: &Connection, sql: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The migration that rewrites `events` (see `schema.rs`, V8).
const REWRITES_EVENTS: i64 = 8;

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")?;
    let current: i64 = conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: newest,
        });
    }
    if current > 0 && current < REWRITES_EVENTS {
        // The copy of `events` takes about as much disk as the store: refuse before starting
        // rather than fail half-way with the disk full.
        let needed = std::fs::metadata(path).map_or(0, |m| m.len());
        if let Some(free) = crate::disk::free_bytes(path) {
            if free < needed {
                return Err(StoreError::NotEnoughDisk {
                    path: path.display().to_string(),
                    needed_mb: needed / 1_000_000 + 1,
                    free_mb: free / 1_000_000,
                });
            }
        }
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tracing::info!(version, name, "applying migration");
        conn.execute_batch(&format!("BEGIN TRANSACTION; {sql}; INSERT INTO schema_migrations (version, name) VALUES ({version}, {}); COMMIT;", crate::sql::quote_literal(name)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threads(conn: &Connection) -> i64 {
        conn.query_row("SELECT current_setting('threads')", [], |r| r.get(0))
            .unwrap()
    }

    /// Batches committed in parallel finish in any order, and one may fail: the next number
    /// is always after the last committed batch's, whichever order they were reported in.
    #[test]
    fn numbers_continue_after_the_last_batch_committed_in_any_order() {
        let mut store = DuckDbStore::open_in_memory(&FreeMailDomains::default()).unwrap();
        let e = |id: &str| {
            let ctx = upmarket_core::segment::ParseContext {
                received_at: chrono::Utc::now(),
                source: upmarket_core::IngestSource::Import,
                max_event_bytes: 32 * 1024,
                trust_received_at: false,
            };
            let json = format!(r#"{{"type":"track","event":"E","userId":"u","messageId":"{id}"}}"#);
            PreparedEvent::new(
                upmarket_core::segment::parse_event(&json, None, &Default::default(), &ctx)
                    .unwrap(),
            )
        };
        let (a, b) = ([e("a1"), e("a2")], [e("b1"), e("b2"), e("b3")]);
        fn keyed(batch: &[PreparedEvent]) -> Vec<Keyed<'_>> {
            batch.iter().enumerate().collect()
        }
        let start = store.next_seq;
        // Batch b (numbered after a) reported first, then a.
        store.committed_at(start + 2, 3, &keyed(&b));
        assert_eq!(store.next_seq, start + 5);
        store.committed_at(start, 2, &keyed(&a));
        assert_eq!(store.next_seq, start + 5);
        // Only the later batch committed (the earlier failed): its numbers still count.
        let mut other = DuckDbStore::open_in_memory(&FreeMailDomains::default()).unwrap();
        let start = other.next_seq;
        other.committed_at(start + 2, 3, &keyed(&b));
        assert_eq!(other.next_seq, start + 5);
    }

    /// A stopping server ends a re-scoring pass through its session's interrupter: the query
    /// running fails as an interrupt (which the derived-table steps pass on instead of
    /// carrying on without their table).
    #[test]
    fn an_interrupted_query_fails_as_an_interrupt() {
        let session = DuckDbSession {
            conn: Connection::open_in_memory().unwrap(),
        };
        let interrupt = session.interrupter();
        let other = session.conn.try_clone().unwrap();
        let running = std::thread::spawn(move || -> Result<i64, StoreError> {
            let sql = "SELECT sum(range % 7)::BIGINT FROM range(100000000000)";
            Ok(session.conn.query_row(sql, [], |r| r.get(0))?)
        });
        // Until the query has started and been interrupted (calling it before does nothing).
        while !running.is_finished() {
            interrupt();
            std::thread::sleep(Duration::from_millis(10));
        }
        let err = running.join().unwrap().unwrap_err();
        assert!(err.is_interrupt(), "{err}");
        let other: StoreError = other
            .execute_batch("SELECT * FROM no_such_table")
            .unwrap_err()
            .into();
        assert!(!other.is_interrupt());
    }

    #[test]
    fn whole_table_work_runs_on_every_core_and_the_lowered_setting_comes_back() {
        let all = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("SET threads = 1").unwrap();
        let inside = on_all_cores(&conn, || Ok(threads(&conn))).unwrap();
        assert_eq!((inside, threads(&conn)), (all, 1));
        // Also when the work fails.
        let failed: Result<(), _> = on_all_cores(&conn, || {
            Ok(conn.execute_batch("SELECT * FROM no_such_table")?)
        });
        assert!(failed.is_err());
        assert_eq!(threads(&conn), 1);
        // A setting that was not lowered is left alone.
        conn.execute_batch(&format!("SET threads = {all}")).unwrap();
        on_all_cores(&conn, || Ok(())).unwrap();
        assert_eq!(threads(&conn), all);
    }
}

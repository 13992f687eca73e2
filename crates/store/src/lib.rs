//! # upmarket-store
//!
//! Where upmarket keeps events and identity: the [`Store`] trait and its embedded backend on
//! DuckDB ([`DuckDbStore`]).
//!
//! The key design decision: identity is resolved when data is *read*, not when it is written.
//! The writer stores every event as it came, plus small identity tables (aliases, memberships,
//! users, workspaces); the views in [`schema`] join them at query time. So a membership
//! declared today applies to events that arrive later without rewriting any history, an
//! anonymous history joins its user as soon as an identify or alias arrives, and a change to the
//! free-mail list takes effect on the next read.
//!
//! What it refuses to do: parse or validate client JSON (that is `upmarket-core`'s job, done
//! before anything reaches a store), or speak HTTP. A store only accepts validated [`Event`]s.
#![deny(missing_docs)]

mod account_collect;
mod account_rows;
mod account_rows_out;
mod attribution;
mod chunked;
mod columns;
mod disk;
mod duckdb_store;
pub mod error;
mod event_rows;
mod few;
mod identity_batch;
mod identity_write;
mod interner;
pub mod journal;
mod key_table;
mod lend;
mod prepared;
mod rollup;
mod rollup_collect;
mod rollup_rows;
pub mod schema;
pub mod scores;
pub mod scoring;
pub mod sql;
mod stored_keys;
pub mod tabular;
mod write_cache;

/// For tests: extend the re-scorer's account rows once this many events arrived (default
/// 100,000), so that small stores exercise their runs and merges. Process-wide.
#[doc(hidden)]
pub fn set_account_rows_extend_after(events: i64) {
    account_rows::set_extend_after(events);
}

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use upmarket_core::model::{Level, Model, ScoreDetails};

pub use duckdb_store::{DuckDbStore, CHECKPOINT_THRESHOLD, DB_FILE, ROW_GROUP_EVENTS};
pub use error::StoreError;
pub use prepared::PreparedEvent;
pub use scores::{HistoryPoint, StoredScore, TierChange};
pub use scoring::AccountSignals;
pub use stored_keys::StoredKeys;
use upmarket_core::Event;

/// What happened to one event handed to [`Store::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendStatus {
    /// Newly stored.
    Stored,
    /// Its messageId was already stored (a retry); nothing changed.
    Duplicate,
}

/// Counts of what a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Stored events.
    pub events: u64,
    /// Distinct people (after alias resolution) who sent events.
    pub people: u64,
    /// Workspaces (groups) seen.
    pub workspaces: u64,
    /// Companies (work-email domains) formed.
    pub companies: u64,
}

/// Who an event belongs to, after identity resolution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attribution {
    /// The canonical person (a userId, or an anonymousId never tied to one).
    pub person: String,
    /// The workspace the event counts for, if any.
    pub workspace_id: Option<String>,
    /// The company (domain) the event counts for, if any.
    pub company_id: Option<String>,
}

/// Data whose newest event is older than this is scored as of just after that event, not now.
pub const STALE_DATA_AFTER_HOURS: i64 = 24;

/// [`StoreSession::scoring_clock`] for a newest event time and a wall-clock time. A live feed
/// (events minutes old) is scored as of now; a history that ended in the past, as of its end.
pub fn clock_for(latest: Option<NaiveDateTime>, now: NaiveDateTime) -> NaiveDateTime {
    match latest {
        Some(t) if t < now - chrono::Duration::hours(STALE_DATA_AFTER_HOURS) => {
            t + chrono::Duration::seconds(1)
        }
        _ => now,
    }
}

/// What [`Store::prepare_derived`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DerivedTables {
    /// Whether the daily rollup was computed from the events as they were appended (else it
    /// was built or extended from the stored events).
    pub rollup_collected: bool,
    /// Whether the account rows were built from rows collected as the events were appended.
    pub account_rows_collected: bool,
}

/// Storage for events and identity. The embedded default is [`DuckDbStore`]; a ClickHouse
/// backend will implement the same trait.
///
/// Writes go through one writer: `append` takes `&mut self`, and the server runs exactly one
/// task that owns the writing handle. Reads go through handles from [`Store::reader`].
pub trait Store: Send {
    /// Durably stores a batch in one transaction: when this returns `Ok`, every event is
    /// committed (or was already there). Returns one status per input event, in order.
    fn append_prepared(
        &mut self,
        events: &[&PreparedEvent],
    ) -> Result<Vec<AppendStatus>, StoreError>;

    /// Stores several batches, each in its own transaction: one result per batch. Events
    /// are numbered in batch order, and a messageId in two batches is stored by the first. A
    /// backend may append and commit them in parallel (DuckDB: [`DuckDbStore::parallel_appends`]),
    /// so until this returns a reader may see a later batch before an earlier one, and a
    /// failed batch does not undo the others (its numbers stay unused; its events, a re-run of
    /// an import stores). The default appends one after another.
    fn append_prepared_many(
        &mut self,
        batches: &[&[&PreparedEvent]],
    ) -> Vec<Result<Vec<AppendStatus>, StoreError>> {
        batches.iter().map(|b| self.append_prepared(b)).collect()
    }

    /// [`Store::append_prepared`] for events not prepared yet (preparing them on this thread).
    fn append(&mut self, events: &[Event]) -> Result<Vec<AppendStatus>, StoreError> {
        let prepared = PreparedEvent::all(events.to_vec());
        self.append_prepared(&prepared.iter().collect::<Vec<_>>())
    }

    /// Hands the caller the keys of every stored event, for a writer that deduplicates
    /// before it appends (the server claims keys when it journals events, and appends them
    /// later with [`Store::append_unique`]). The store keeps no keys afterwards: from then on
    /// the caller deduplicates every append.
    fn take_stored_keys(&mut self) -> Result<StoredKeys, StoreError>;

    /// Durably stores events that are not stored yet (the caller claimed their keys in the
    /// set [`Store::take_stored_keys`] gave it), in one transaction, numbered in order.
    fn append_unique(&mut self, events: &[&PreparedEvent]) -> Result<(), StoreError>;

    /// Where a server writing to this store keeps its ingest journal ([`journal`]): the store
    /// replays it when it opens. None for a store that does not outlive the process (in
    /// memory): events are then acknowledged after their DuckDB commit.
    fn journal_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Moves what the store's write-ahead log holds into its main file when the log has grown
    /// past `min_log_bytes`, so that neither a later stop nor a crash recovery has to do it.
    /// The server's applier calls it when ingestion has paused. Returns whether it did; a store
    /// busy with other transactions declines (false) and is asked again later.
    fn checkpoint(&mut self, _min_log_bytes: u64) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Tells the store that about `events` more events are coming (an import's estimate from
    /// its file sizes), so that it can make room for them at once. Only a hint (DuckDB: taken
    /// when the store is empty; into a store holding events, they may be re-sent duplicates).
    fn expect_events(&mut self, _events: usize) -> Result<(), StoreError> {
        Ok(())
    }

    /// Tells the store that many events are about to be appended (an import), so that it may
    /// compute `model`'s scoring tables from them as they commit instead of reading them back
    /// afterwards (DuckDB: the daily rollup, [`Store::prepare_derived`] writes it). Only a
    /// hint: whatever the store could not compute that way, `prepare_derived` builds as usual.
    fn collect_derived(&mut self, _model: &Model) -> Result<(), StoreError> {
        Ok(())
    }

    /// Brings `model`'s scoring tables (the daily rollup, the account rows) up to date with
    /// the stored events: what [`Store::collect_derived`] collected is written, the rest built
    /// from the events ([`StoreSession::prepare_derived`]).
    fn prepare_derived(&mut self, model: &Model) -> Result<DerivedTables, StoreError> {
        self.reader()?.prepare_derived(model)?;
        Ok(DerivedTables::default())
    }

    /// Lets the store's own work use every core from now on (an import that has parsed its
    /// last event leaves its parsing core free for the appends still to come). Stores without
    /// threads of their own ignore it.
    fn use_all_cores(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Writes whatever derived data the store deferred (identity facts the server lets wait a
    /// moment). The writer calls it when idle and before stopping. Events themselves are
    /// always durable when `append` returns.
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// A handle for reading, usable from another thread.
    fn reader(&self) -> Result<Box<dyn StoreSession>, StoreError>;
}

/// A session on a store, usable from any thread: reads, and writes of *derived* data (scores).
/// Events are only ever written through [`Store::append`].
pub trait StoreSession: Send {
    /// Another session on the same store (for another thread).
    fn fork(&self) -> Result<Box<dyn StoreSession>, StoreError>;

    /// Something another thread can call to make this session's running query fail at once
    /// (a stopping server ends a re-scoring pass with it). Calling it while no query runs does
    /// nothing.
    fn interrupter(&self) -> Box<dyn Fn() + Send + Sync> {
        Box::new(|| {})
    }

    /// What the store holds.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Who the event with this messageId belongs to.
    fn attribution(&self, message_id: &str) -> Result<Option<Attribution>, StoreError>;

    /// How many stored rows carry each of these messageIds (0 when absent). Used to prove that
    /// an acknowledged event is stored exactly once.
    fn message_counts(&self, message_ids: &[String]) -> Result<HashMap<String, u64>, StoreError>;

    /// The canonical person behind any id (userId, anonymousId or alias).
    fn person_of(&self, id: &str) -> Result<String, StoreError>;

    /// The company of a workspace, if it has one.
    fn workspace_company(&self, workspace_id: &str) -> Result<Option<String>, StoreError>;

    /// Measures `model`'s signals as of `as_of` from earlier events only, for every account
    /// (or only `accounts`).
    fn measure(
        &self,
        model: &Model,
        as_of: NaiveDateTime,
        accounts: Option<&[String]>,
    ) -> Result<Vec<AccountSignals>, StoreError>;

    /// Saves current scores and records tier changes (returned).
    fn save_current_scores(
        &self,
        model: &Model,
        as_of: NaiveDateTime,
        scores: &[(String, ScoreDetails)],
    ) -> Result<Vec<TierChange>, StoreError>;

    /// Saves one day of score history.
    fn save_history(
        &self,
        model: &Model,
        day: NaiveDate,
        scores: &[(String, ScoreDetails)],
    ) -> Result<(), StoreError>;

    /// Current scores, highest first, optionally of one tier.
    fn current_scores(
        &self,
        model: &Model,
        tier: Option<&str>,
    ) -> Result<Vec<StoredScore>, StoreError>;

    /// One account's current score, if it has one.
    fn current_score(
        &self,
        model: &Model,
        account: &str,
    ) -> Result<Option<StoredScore>, StoreError>;

    /// One account's daily score history.
    fn history(&self, model: &Model, account: &str) -> Result<Vec<HistoryPoint>, StoreError>;

    /// Recorded tier changes, newest first.
    fn tier_changes(&self, model: &Model, limit: usize) -> Result<Vec<TierChange>, StoreError>;

    /// Accounts with events stored after sequence number `after_seq`, and the newest sequence
    /// number: what incremental re-scoring must look at.
    fn touched_accounts(
        &self,
        level: Level,
        after_seq: i64,
    ) -> Result<(Vec<String>, i64), StoreError>;

    /// The newest event time stored, if any.
    fn latest_event_time(&self) -> Result<Option<NaiveDateTime>, StoreError>;

    /// Creates or extends the model's daily rollup and account rows now, as scoring every
    /// account as of a midnight and re-scoring a few would (after a bulk import, so that the
    /// first scoring does not pay for them).
    fn prepare_derived(&self, model: &Model) -> Result<(), StoreError>;

    /// The clock scores are computed at: now, or just after the newest event when the data
    /// ended more than [`STALE_DATA_AFTER_HOURS`] ago (an imported history, the demo), so that
    /// such data is scored as of its own last day rather than as long-idle.
    fn scoring_clock(&self) -> Result<NaiveDateTime, StoreError> {
        Ok(clock_for(
            self.latest_event_time()?,
            chrono::Utc::now().naive_utc(),
        ))
    }

    /// Scores accounts as of a time (measure, then score): the engine's one entry point.
    fn score_accounts(
        &self,
        model: &Model,
        as_of: NaiveDateTime,
        accounts: Option<&[String]>,
    ) -> Result<Vec<(String, ScoreDetails)>, StoreError> {
        let measured = self.measure(model, as_of, accounts)?;
        let started = std::time::Instant::now();
        let scores = score_measured(model, measured);
        tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            accounts = scores.len(),
            "scores and explanations"
        );
        Ok(scores)
    }
}

/// Scores measured accounts, in order; many accounts are split over the cores (writing the
/// explanations is most of the cost: ~7 µs an account, 160 ms for 23k accounts on one core).
pub fn score_measured(model: &Model, measured: Vec<AccountSignals>) -> Vec<(String, ScoreDetails)> {
    let one = |a: &AccountSignals| {
        (
            a.account_id.clone(),
            upmarket_core::model::score(model, &a.values),
        )
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || measured.len() < 2_000 {
        return measured.iter().map(one).collect();
    }
    let chunk = measured.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = measured
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    /// Regression: live events (minutes old) put the clock just after the newest event, while
    /// the re-scorer's first pass, on an empty store, had used now: tier changes went back in
    /// time.
    #[test]
    fn live_data_is_scored_as_of_now_and_old_histories_as_of_their_end() {
        let now = t("2026-11-24 12:00:00");
        assert_eq!(clock_for(None, now), now);
        assert_eq!(clock_for(Some(t("2026-11-24 11:40:00")), now), now);
        assert_eq!(
            clock_for(Some(t("2026-10-31 18:59:59")), now),
            t("2026-10-31 19:00:00")
        );
    }
}

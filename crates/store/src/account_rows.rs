//! Account rows: the re-scorer's access path by account. A narrow copy of every event's
//! scoring-relevant facts (time, event name, ids, and the model's per-row match and trait
//! values already evaluated), sorted by a lookup key, so that re-scoring one account reads the
//! few row groups that hold its keys instead of scanning every event.
//!
//! Why: a store filled live holds events in arrival (time) order, so every row group holds
//! every active account and the re-scorer's IN-list filters on `events` prune nothing (~240 ms
//! for one account at 10M events, BENCHMARKS.md). Sorted by key, one account's rows sit together.
//!
//! The key says how the re-scorer finds a row: the group id for events that carry their group;
//! for the others (1–2% of events) the user id, or the anonymous id when there is no user id.
//! (A group-less event whose user id is not one of the account's people's ids cannot count for
//! the account, whatever its anonymous id: attribution takes the person from the user id
//! first.) Keys are hashed ([`key_sql`]).
//!
//! Exactness, as for the daily rollup: the rows cover exactly the events with
//! `seq <= through_seq`, and readers filter on that bound, so events that arrived since (late
//! ones included) are read raw from `events` and nothing is counted twice. Attribution (who the
//! row counts for) is not stored: it is computed at read time from the identity tables, so an
//! identity change applies at once. The stored values depend only on the event and the model's
//! signal definitions; the table is named by a hash of those definitions, so a changed model
//! gets a new table and never reads a stale one.
//!
//! Layout, a small log-structured merge: a sorted `base`, and a `delta` of up to
//! [`MAX_DELTA_RUNS`] sorted runs appended as events arrive ([`EXTEND_AFTER_EVENTS`] at a time).
//! Each run costs a lookup about a millisecond, so when the runs are many the delta is rewritten
//! as one run, and when it has grown past an eighth of the base both are rewritten as one base:
//! rewriting costs are geometric, about two passes over the rows per doubling of the history.
//!
//! What the base keeps: its readers score as of the scoring clock or later (the re-scorer, an
//! explanation as of now), and such a score reads no event older than the model's longest
//! look-back before it ([`crate::scoring::max_window`]) except for two signals: recency (the
//! account's last event, however old) and traits (declared by identify and group calls,
//! however old). So when the base is written (created, or merged with the delta), the grouped
//! events older than `kept_from` = clock − look-back are folded into one row per key and ids
//! (group, user id, anonymous id: what attribution reads) holding their last time and number
//! and no match; events that declare a trait the model reads, and group-less events (placed
//! by the membership of their own time), are kept whole. A reader asking about an earlier
//! time reads raw events instead ([`AccountRows::serves`]). An imported year of history is
//! thus written as its last two months plus a row per person and workspace: 3.6M instead of
//! 10M rows at 10M simulated events, 1.7 s instead of 3.3 s to build (Python's DuckDB).

use chrono::NaiveDateTime;
use duckdb::{params, Connection, OptionalExt};
use upmarket_core::model::{Model, SignalKind};

use crate::rollup::events_with_path;
use crate::sql::{quote_ident, quote_literal};
use crate::StoreError;

/// Append a run when at least this many events arrived after the rows.
pub const EXTEND_AFTER_EVENTS: i64 = 100_000;

/// The extension threshold in force: [`EXTEND_AFTER_EVENTS`] unless a test lowered it (to
/// exercise runs and merges on small data; see `crate::set_account_rows_extend_after`).
static EXTEND_AFTER: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(EXTEND_AFTER_EVENTS);

pub(crate) fn set_extend_after(events: i64) {
    EXTEND_AFTER.store(events.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// At most this many runs in the delta; the next extension merges them.
pub const MAX_DELTA_RUNS: i64 = 8;

/// The per-row expression a signal needs, if any, over an event with its `path`: a BOOLEAN
/// "matches" or, for feature tiers, the row's tier (0–3, NULL when the row is not a track call).
fn match_column(kind: &SignalKind) -> Option<String> {
    use crate::scoring::{event_filter_sql, in_list, selector_sql, tier_sql};
    use upmarket_core::model::VelocityMetric;
    Some(match kind {
        SignalKind::EventCount {
            select, filters, ..
        } => {
            let mut cond = vec![selector_sql(select)];
            cond.extend(event_filter_sql(filters));
            cond.join(" AND ")
        }
        SignalKind::DistinctUsers { select, .. } => selector_sql(select),
        SignalKind::Velocity {
            metric: VelocityMetric::Selected(sel),
            ..
        } => selector_sql(sel),
        SignalKind::FeatureBreadth { features, .. } => {
            format!("type = 'track' AND event IN ({})", in_list(features))
        }
        SignalKind::FeatureTier {
            core,
            advanced,
            enterprise,
            ..
        } => format!(
            "CASE WHEN type = 'track' THEN {} END",
            tier_sql(core, advanced, enterprise)
        ),
        _ => return None,
    })
}

/// Columns by signal index: `(signal index, SQL)`.
pub(crate) type NamedColumns = Vec<(usize, String)>;

/// The model's per-row values, in model order: `(signal index, column name, expression)`, the
/// match columns `m{i}` (TINYINT) first, then the trait columns `t{i}` (the trait an identify
/// or group call declared).
pub(crate) fn value_columns(model: &Model) -> (NamedColumns, NamedColumns) {
    let mut marks = Vec::new();
    let mut traits = Vec::new();
    for (i, s) in model.signals.iter().enumerate() {
        if let Some(m) = match_column(&s.kind) {
            marks.push((i, format!("CAST(({m}) AS TINYINT) AS m{i}")));
        }
        if let Some(t) = trait_column(&s.kind) {
            traits.push((i, format!("{t} AS t{i}")));
        }
    }
    (marks, traits)
}

/// The per-row value a trait signal needs: the trait an identify or group call declared.
fn trait_column(kind: &SignalKind) -> Option<String> {
    let SignalKind::Trait { name } = kind else {
        return None;
    };
    let path = quote_literal(&format!("$.\"{}\"", name.replace('"', "")));
    Some(format!(
        "CASE WHEN type IN ('identify', 'group') THEN json_extract_string(traits, {path}) END"
    ))
}

/// How the match columns are stored: packed into BIGINT columns `marks_{n}`, a bit for each
/// yes/no match (NULL stored as 0: readers only ask whether a row matches) and three bits for
/// a feature tier (0 for NULL, the tier plus one otherwise). Nine TINYINT columns cost DuckDB
/// more to write than the rest of a row: copying the 10M-event account rows took 2.6 s with
/// them and 1.9 s packed (Python's DuckDB, 2 threads).
pub(crate) struct Packing {
    /// Per match column, in [`value_columns`] order: signal index, expression, whether it is
    /// a tier, packed column and bit offset.
    pub marks: Vec<PackedMark>,
    /// Packed columns.
    pub columns: usize,
}

/// Where one match column is stored (see [`Packing`]).
pub(crate) struct PackedMark {
    pub signal: usize,
    expr: String,
    pub tier: bool,
    pub column: usize,
    pub shift: u32,
}

/// Bits used in each packed column (BIGINT: the sign bit stays clear).
const PACKED_BITS: u32 = 63;

/// The model's match columns, laid out over as many packed columns as they need.
pub(crate) fn packing(model: &Model) -> Packing {
    let mut marks = Vec::new();
    let (mut column, mut shift) = (0, 0);
    for (i, s) in model.signals.iter().enumerate() {
        let Some(expr) = match_column(&s.kind) else {
            continue;
        };
        let tier = matches!(s.kind, SignalKind::FeatureTier { .. });
        let width = if tier { 3 } else { 1 };
        if shift + width > PACKED_BITS {
            column += 1;
            shift = 0;
        }
        marks.push(PackedMark {
            signal: i,
            expr,
            tier,
            column,
            shift,
        });
        shift += width;
    }
    let columns = if marks.is_empty() { 0 } else { column + 1 };
    Packing { marks, columns }
}

/// The packed match columns over raw events with their `path`: `expr AS marks_{n}, …`.
fn packed_columns(p: &Packing) -> Vec<String> {
    (0..p.columns)
        .map(|n| {
            let terms: Vec<String> = p
                .marks
                .iter()
                .filter(|m| m.column == n)
                .map(|m| {
                    if m.tier {
                        format!(
                            "(coalesce(CAST(({}) AS BIGINT) + 1, 0) << {})",
                            m.expr, m.shift
                        )
                    } else {
                        format!("CASE WHEN ({}) THEN {} ELSE 0 END", m.expr, 1i64 << m.shift)
                    }
                })
                .collect();
            format!("CAST({} AS BIGINT) AS marks_{n}", terms.join(" + "))
        })
        .collect()
}

/// The match columns `m{i}` read back from the packed ones.
fn unpacked_columns(p: &Packing) -> Vec<String> {
    p.marks
        .iter()
        .map(|m| {
            let (col, shift, i) = (m.column, m.shift, m.signal);
            if m.tier {
                format!("CAST(nullif((marks_{col} >> {shift}) & 7, 0) - 1 AS TINYINT) AS m{i}")
            } else {
                format!("CAST((marks_{col} >> {shift}) & 1 AS TINYINT) AS m{i}")
            }
        })
        .collect()
}

/// The columns every candidate row has, evaluated over raw events with their `path`:
/// timestamp, event, the ids, then the value columns.
pub(crate) fn raw_columns(model: &Model) -> String {
    let (marks, traits) = value_columns(model);
    after_ids(marks.into_iter().chain(traits).map(|(_, c)| c))
}

/// The columns of a stored row, over raw events with their `path`: the ids, the packed match
/// columns, the trait columns.
pub(crate) fn stored_row_columns(model: &Model) -> String {
    let (_, traits) = value_columns(model);
    after_ids(
        packed_columns(&packing(model))
            .into_iter()
            .chain(traits.into_iter().map(|(_, c)| c)),
    )
}

/// The same columns as [`raw_columns`], read back from stored rows.
pub(crate) fn stored_columns(model: &Model) -> String {
    let (_, traits) = value_columns(model);
    after_ids(
        unpacked_columns(&packing(model))
            .into_iter()
            .chain(traits.iter().map(|(i, _)| format!("t{i}"))),
    )
}

/// The columns every row starts with, then `more`, as a SELECT list.
fn after_ids(more: impl Iterator<Item = String>) -> String {
    let mut cols = "seq, timestamp, event, user_id, anonymous_id, group_id".to_string();
    for c in more {
        cols.push_str(", ");
        cols.push_str(&c);
    }
    cols
}

/// The model's account rows: the tables and the events they cover (`seq <= through_seq`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AccountRows {
    pub base: String,
    pub delta: String,
    /// The base's group-less rows again, indexed by key (see [`ids_table_sql`]).
    pub ids: String,
    pub through_seq: i64,
    /// Runs in the delta (0: it is empty and not read).
    pub delta_runs: i64,
    /// The newest event when these were looked up: the raw part is read only when newer
    /// than `through_seq` (events arriving later are re-scored by the next pass).
    pub newest: i64,
    /// Grouped events older than this are folded in the base (see "What the base keeps");
    /// None: every event is kept whole.
    pub kept_from: Option<NaiveDateTime>,
}

impl AccountRows {
    /// Whether these rows hold what scoring as of `as_of` reads: every event of the model's
    /// longest look-back before it is kept whole.
    pub(crate) fn serves(&self, model: &Model, as_of: NaiveDateTime) -> bool {
        let lookback = chrono::Duration::days(crate::scoring::max_window(model).into());
        self.kept_from.is_none_or(|from| as_of - lookback >= from)
    }
}

/// The layout of the tables; part of their names, so a build with another layout creates its
/// own tables (and drops those of layout 1, [`drop_earlier_layouts`]).
/// 2: the base's group-less rows also in an indexed `_ids` table.
/// 3: the match columns packed into `marks_{n}` ([`Packing`]).
const LAYOUT: u32 = 3;

/// The table names for this model (by a hash of the layout and what the rows store): base,
/// delta, ids.
fn names(model: &Model) -> (String, String, String) {
    let h =
        xxhash_rust::xxh3::xxh3_64(format!("{LAYOUT}\n{}", stored_row_columns(model)).as_bytes());
    let base = format!("account_rows_{h:016x}");
    let delta = format!("{base}_delta");
    let ids = format!("{base}_ids");
    (base, delta, ids)
}

/// Drops the account rows of earlier layouts, whatever model they were for: layout 1 (no
/// `_ids` table) and layout 2 (a TINYINT column `m{i}` per match). No build reads them any
/// more, and at 100M events they hold ~3 GB that would otherwise wait 30 days for
/// [`crate::rollup::drop_stale`].
fn drop_earlier_layouts(conn: &Connection) -> Result<(), StoreError> {
    let old = crate::duckdb_store::strings(
        conn,
        "SELECT r.name FROM account_row_tables r
         WHERE NOT EXISTS (SELECT 1 FROM duckdb_tables() t
                           WHERE t.database_name = current_database()
                             AND t.schema_name = 'main' AND t.table_name = r.name || '_ids')
            OR EXISTS (SELECT 1 FROM duckdb_columns() c
                       WHERE c.database_name = current_database() AND c.schema_name = 'main'
                         AND c.table_name = r.name AND regexp_full_match(c.column_name, 'm[0-9]+'))",
    )?;
    crate::rollup::drop_registered(conn, "account_row_tables", &old, &["_delta", "_ids"])?;
    if !old.is_empty() {
        tracing::info!(dropped = ?old, "account rows of an earlier layout dropped");
    }
    Ok(())
}

/// (Re)creates `ids` from the group-less rows of `base`, with an ART index on the key. The
/// group-less rows are ~1.2% of events but spread over every person's ids: at 100M events
/// they fill ten row groups of the base, and looking up an account's six ids there read
/// 550k rows (30 ms, IN list) or took ~10 ms (six equality scans); through the index the same
/// lookup takes ~1.6 ms (Python's DuckDB on the same rows).
fn ids_table_sql(base: &str, ids: &str) -> String {
    let index = quote_ident(&format!("{ids}_k"));
    let (b, i) = (quote_ident(base), quote_ident(ids));
    format!(
        "CREATE OR REPLACE TABLE {i} AS SELECT * FROM {b} WHERE groupless ORDER BY k, seq;
         CREATE INDEX {index} ON {i} (k);"
    )
}

/// What the registry says of one table pair.
struct State {
    base_through_seq: i64,
    through_seq: i64,
    delta_runs: i64,
    kept_from: Option<NaiveDateTime>,
}

/// The model's account rows, created when missing and extended when at least
/// [`EXTEND_AFTER_EVENTS`] events arrived after them (and something did arrive). A failed creation or extension (another
/// connection doing the same at that moment) leaves them as they were and is logged: readers
/// then read more raw events, never wrong ones. None when they do not exist and could not be
/// created.
pub(crate) fn current(conn: &Connection, model: &Model) -> Result<Option<AccountRows>, StoreError> {
    let (base, delta, ids) = names(model);
    let state: Option<State> = conn
        .prepare_cached(
            "SELECT base_through_seq, through_seq, delta_runs, kept_from
             FROM account_row_tables WHERE name = ?",
        )?
        .query_row(params![base], |r| {
            Ok(State {
                base_through_seq: r.get(0)?,
                through_seq: r.get(1)?,
                delta_runs: r.get(2)?,
                kept_from: r.get(3)?,
            })
        })
        .optional()?;
    // Plain max(), NULL handled here: at 100M events `coalesce(max(seq), 0)` took ~0.9 ms,
    // `max(seq)` ~0.55 (Python's DuckDB, same file).
    let newest: i64 = conn
        .query_row("SELECT max(seq) FROM events", [], |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .unwrap_or(0);
    let rows = |through_seq, delta_runs, kept_from| AccountRows {
        base: base.clone(),
        delta: delta.clone(),
        ids: ids.clone(),
        through_seq,
        delta_runs,
        newest,
        kept_from,
    };
    if let Some(s) = &state {
        let extend_after = EXTEND_AFTER.load(std::sync::atomic::Ordering::Relaxed);
        if newest - s.through_seq < extend_after {
            return Ok(Some(rows(s.through_seq, s.delta_runs, s.kept_from)));
        }
    }
    let started = std::time::Instant::now();
    let done = conn
        .execute_batch("BEGIN TRANSACTION")
        .map_err(StoreError::from)
        .and_then(|_| maintain(conn, model, (&base, &delta, &ids), state.as_ref(), newest))
        .and_then(|kept| {
            conn.execute_batch("COMMIT")?;
            Ok(kept)
        });
    match done {
        Ok((runs, kept_from)) => {
            crate::scoring::debug_elapsed(started, "account rows extended");
            Ok(Some(rows(newest, runs, kept_from)))
        }
        Err(err) => {
            if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                tracing::debug!(error = %rollback, "rollback after a failed account-rows update");
            }
            if err.is_interrupt() {
                // The whole pass was asked to end (a stopping server), not just this step.
                return Err(err);
            }
            tracing::warn!(error = %err, "updating the account rows failed; re-scoring reads more raw events");
            Ok(state.map(|s| rows(s.through_seq, s.delta_runs, s.kept_from)))
        }
    }
}

/// Brings the tables to `newest` (inside the caller's transaction): creates them, appends a
/// run, rewrites the delta as one run, or merges it into the base. Returns the delta's runs
/// and the base's `kept_from`.
fn maintain(
    conn: &Connection,
    model: &Model,
    (base, delta, ids): (&str, &str, &str),
    state: Option<&State>,
    newest: i64,
) -> Result<(i64, Option<NaiveDateTime>), StoreError> {
    let (b, d) = (quote_ident(base), quote_ident(delta));
    let (base_through, runs, kept_from) = match state {
        None => {
            crate::rollup::drop_stale(conn, "account_row_tables", &["_delta", "_ids"])?;
            drop_earlier_layouts(conn)?;
            let from = kept_from(conn, model)?;
            let all = folded(model, &keyed_rows(model, &format!("seq <= {newest}")), from);
            conn.execute_batch(&format!(
                "CREATE OR REPLACE TABLE {b} AS SELECT * FROM ({all}) ORDER BY groupless, k, seq;
                 CREATE OR REPLACE TABLE {d} AS SELECT * FROM {b} LIMIT 0;
                 {}",
                ids_table_sql(base, ids)
            ))?;
            (newest, 0, Some(from))
        }
        Some(s) => {
            let tail = keyed_rows(
                model,
                &format!("seq > {} AND seq <= {newest}", s.through_seq),
            );
            if s.delta_runs < MAX_DELTA_RUNS {
                conn.execute_batch(&format!(
                    "INSERT INTO {d} SELECT * FROM ({tail}) ORDER BY groupless, k, seq"
                ))?;
                (s.base_through_seq, s.delta_runs + 1, s.kept_from)
            } else {
                let count = |t: &str| -> Result<i64, StoreError> {
                    Ok(conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?)
                };
                let merged = format!("SELECT * FROM {d} UNION ALL SELECT * FROM ({tail})");
                if count(&d)? * 8 > count(&b)? {
                    // The base is rewritten: folded again as of the clock now.
                    let from = kept_from(conn, model)?;
                    let all = folded(
                        model,
                        &format!("SELECT * FROM {b} UNION ALL {merged}"),
                        from,
                    );
                    conn.execute_batch(&format!(
                        "CREATE OR REPLACE TABLE {b} AS
                             SELECT * FROM ({all}) ORDER BY groupless, k, seq;
                         DELETE FROM {d};
                         {}",
                        ids_table_sql(base, ids)
                    ))?;
                    (newest, 0, Some(from))
                } else {
                    conn.execute_batch(&format!(
                        "CREATE OR REPLACE TABLE {d} AS SELECT * FROM ({merged}) ORDER BY groupless, k, seq"
                    ))?;
                    (s.base_through_seq, 1, s.kept_from)
                }
            }
        }
    };
    register(conn, base, base_through, newest, runs, kept_from)?;
    Ok((runs, kept_from))
}

/// The registry row of one table pair.
fn register(
    conn: &Connection,
    base: &str,
    base_through: i64,
    newest: i64,
    runs: i64,
    kept_from: Option<NaiveDateTime>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO account_row_tables
             (name, base_through_seq, through_seq, delta_runs, extended_at, kept_from)
         VALUES (?, ?, ?, ?, current_timestamp, CAST(? AS TIMESTAMP))",
        params![
            base,
            base_through,
            newest,
            runs,
            kept_from.map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
        ],
    )?;
    Ok(())
}

/// Creates the model's account rows, covering the events through `newest`, from rows an import
/// collected and folded at `from` ([`kept_from`]): `fill` inserts them into the base (named),
/// sorted as the base is, on connections of its own. Three steps: the empty tables (committed,
/// so other connections see them), `fill`, then the `_ids` table and the registry row in one
/// transaction. Until that registry row exists nothing reads the tables, and a failure on the
/// way leaves them to `current`, which creates them anew from the events. Returns false, doing
/// nothing, when the model's account rows exist already.
pub(crate) fn create_collected(
    conn: &Connection,
    model: &Model,
    newest: i64,
    from: NaiveDateTime,
    fill: &dyn Fn(&str) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    let (base, delta, ids) = names(model);
    let exists: Option<i64> = conn
        .prepare_cached("SELECT through_seq FROM account_row_tables WHERE name = ?")?
        .query_row(params![base], |r| r.get(0))
        .optional()?;
    if exists.is_some() {
        return Ok(false);
    }
    let (b, d) = (quote_ident(&base), quote_ident(&delta));
    let in_transaction = |f: &dyn Fn() -> Result<(), StoreError>| -> Result<(), StoreError> {
        conn.execute_batch("BEGIN TRANSACTION")?;
        let done = f().and_then(|()| Ok(conn.execute_batch("COMMIT")?));
        if done.is_err() {
            if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                tracing::debug!(error = %rollback, "rollback after failed collected account rows");
            }
        }
        done
    };
    in_transaction(&|| {
        crate::rollup::drop_stale(conn, "account_row_tables", &["_delta", "_ids"])?;
        drop_earlier_layouts(conn)?;
        // The columns and types from the SQL itself, over no events.
        let none = folded(model, &keyed_rows(model, "FALSE"), from);
        conn.execute_batch(&format!(
            "CREATE OR REPLACE TABLE {b} AS SELECT * FROM ({none}) LIMIT 0;
             CREATE OR REPLACE TABLE {d} AS SELECT * FROM {b} LIMIT 0;"
        ))?;
        Ok(())
    })?;
    fill(&base)?;
    in_transaction(&|| {
        conn.execute_batch(&ids_table_sql(&base, &ids))?;
        register(conn, &base, newest, newest, 0, Some(from))
    })?;
    Ok(true)
}

/// The `kept_from` of a base written now: the scoring clock (now, or just after the newest
/// event of a history that ended earlier) less the model's longest look-back. The clock only
/// moves forward, so every later re-scoring pass is served.
pub(crate) fn kept_from(conn: &Connection, model: &Model) -> Result<NaiveDateTime, StoreError> {
    let latest: Option<NaiveDateTime> =
        conn.query_row("SELECT max(timestamp) FROM events", [], |r| r.get(0))?;
    let clock = crate::clock_for(latest, chrono::Utc::now().naive_utc());
    Ok(clock - chrono::Duration::days(crate::scoring::max_window(model).into()))
}

/// `rows` (a SELECT of stored rows) with the grouped rows older than `from` folded (see
/// "What the base keeps"): the rows no score as of `from` + look-back or later reads whole
/// become one row per key and ids, with their last time and number, no event name, no match
/// and no trait. `rows` is inlined twice (NOT MATERIALIZED): the folding side reads only the
/// ids and times of the old events, where materializing every row first cost 2.2–2.5 s
/// instead of 1.7 s at 10M events (Python's DuckDB).
pub(crate) fn folded(model: &Model, rows: &str, from: NaiveDateTime) -> String {
    let (_, traits) = value_columns(model);
    let mut whole = vec![
        format!("timestamp >= {}", crate::scoring::timestamp_literal(from)),
        "groupless".to_string(),
    ];
    whole.extend(traits.iter().map(|(i, _)| format!("t{i} IS NOT NULL")));
    let whole = whole.join(" OR ");
    let nothing: Vec<String> = (0..packing(model).columns)
        .map(|n| format!("0::BIGINT AS marks_{n}"))
        .chain(traits.iter().map(|(i, _)| format!("NULL::VARCHAR AS t{i}")))
        .collect();
    // The columns of a stored row, in order (see `after_ids`).
    let last = [
        "false AS groupless",
        "k",
        "max(seq) AS seq",
        "max(timestamp) AS timestamp",
        "NULL::VARCHAR AS event",
        "user_id",
        "anonymous_id",
        "group_id",
    ]
    .into_iter()
    .map(str::to_string)
    .chain(nothing)
    .collect::<Vec<_>>()
    .join(", ");
    format!(
        "WITH r AS NOT MATERIALIZED ({rows})
         SELECT * FROM r WHERE {whole}
         UNION ALL
         SELECT {last}
         FROM r WHERE NOT ({whole}) GROUP BY k, user_id, anonymous_id, group_id"
    )
}

/// The rows of the events matching `filter`, each with its lookup key `k`: the group for events
/// that carry one, else the user id, else the anonymous id; `groupless` says which (runs are
/// sorted by it first, so the group-less rows of a run sit together). The MD5 is computed once
/// per distinct id and joined back, not once per row: on the 1M bench set the key expression
/// alone took 0.04 s instead of 0.18 s (DuckDB, 2 threads), and building the account rows at
/// the end of `upmarket import` 0.61–0.76 s instead of 0.84–0.99 s. Grouped and group-less
/// rows are joined separately, on the id itself: joining every row on a tagged id (`'g' ||
/// group_id`, built for each of them) took 0.42–0.56 s at 10M events, the two joins 0.30 s
/// (Python's DuckDB, 2 threads; same rows and keys).
pub(crate) fn keyed_rows(model: &Model, filter: &str) -> String {
    let cols = stored_row_columns(model);
    // `id(prefix)`: the id the key is made of, over columns named with `prefix`.
    let part = |groupless: bool, which: &str, id: &dyn Fn(&str) -> String, tag: char| {
        let filter = format!("({filter}) AND {which}");
        format!(
            "SELECT {groupless} AS groupless, ids._key AS k, {cols}
             FROM ({}) e
             JOIN (SELECT _id, {} AS _key
                   FROM (SELECT DISTINCT {} AS _id FROM events WHERE {filter})) ids
               ON ids._id = {}",
            events_with_path(&filter),
            key_sql(&format!("'{tag}' || _id")),
            id(""),
            id("e."),
        )
    };
    format!(
        "{}\nUNION ALL\n{}",
        part(
            false,
            "group_id IS NOT NULL",
            &|e| format!("{e}group_id"),
            'g'
        ),
        part(
            true,
            "group_id IS NULL AND coalesce(user_id, anonymous_id) IS NOT NULL",
            &|e| format!("coalesce({e}user_id, {e}anonymous_id)"),
            'i'
        )
    )
}

/// The lookup key of a tagged id (`g` + group id, `i` + user or anonymous id): the upper half
/// of its MD5 as an unsigned 64-bit integer. A hash, not the id itself, because DuckDB keeps
/// only an 8-byte prefix of strings in its row-group statistics, and ids often share longer
/// prefixes (`user_0001…`): sorted by hash, every key's rows sit in one place and the
/// statistics tell exactly which row groups hold it. MD5, because it is defined independently
/// of DuckDB's version (its `hash()` is not). A collision only adds rows, which the readers'
/// exact filters on the ids drop.
fn key_sql(tagged: &str) -> String {
    format!("md5_number_upper({tagged})")
}

/// The key of `tagged` (an id with its tag) computed here, as a SQL literal: what
/// [`key_sql`] gives in DuckDB (the first 8 bytes of the MD5 digest, little-endian). Readers
/// send literals, not `md5_number_upper(…)` calls: a re-scoring pass over 327 accounts named
/// 2,199 keys, and binding and folding those calls was most of its planning (planner 198 →
/// 21 ms, optimizer 95 → 29 ms with literals; Python's DuckDB on the same query).
fn key_literal(tagged: &str) -> String {
    format!("{}::UBIGINT", key_of(tagged))
}

/// The key of `tagged` as a number: what [`key_sql`] gives in DuckDB.
pub(crate) fn key_of(tagged: &str) -> u64 {
    use md5::{Digest, Md5};
    let digest = Md5::digest(tagged.as_bytes());
    let mut upper = [0u8; 8];
    upper.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(upper)
}

/// Above this many keys (of groups, or of people's ids), one scan with an IN list instead of
/// one equality scan per key.
const MAX_KEY_SCANS: usize = 64;

/// The rows of `table` in `region` (`groupless` or `NOT groupless`) whose key is one of
/// `keys`: one equality scan per key, or one IN list when there are many.
fn key_scans(table: &str, region: &str, keys: &[String]) -> Vec<String> {
    match keys.len() {
        0 => Vec::new(),
        n if n <= MAX_KEY_SCANS => keys
            .iter()
            .map(|k| format!("SELECT * FROM {table} WHERE {region} AND k = {k}"))
            .collect(),
        _ => vec![format!(
            "SELECT * FROM {table} WHERE {region} AND k IN ({})",
            keys.join(", ")
        )],
    }
}

/// The candidate rows of accounts whose workspaces are `workspaces` and whose people are known
/// by `ids` (see `crate::few::measure_few`), before `at`: the stored rows up to
/// `rows.through_seq` found by key, and the events after it read raw. Each part selects
/// [`stored_columns`].
pub(crate) fn candidates_sql(
    model: &Model,
    rows: &AccountRows,
    at: &str,
    workspaces: &[String],
    ids: &[String],
) -> String {
    use crate::scoring::in_list;
    let stored = stored_columns(model);
    let group_keys: Vec<String> = workspaces
        .iter()
        .map(|w| key_literal(&format!("g{w}")))
        .collect();
    let id_keys: Vec<String> = ids.iter().map(|i| key_literal(&format!("i{i}"))).collect();
    // Only the time bounds here: a filter on the ids would be copied into every key's scan
    // and cost more than the scans (30 ms for 47 keys at 10M events); a hash collision's
    // extra rows are attributed to their own accounts, and duplicates are dropped by `seq`.
    let covered = format!("seq <= {} AND timestamp < {at}", rows.through_seq);
    // Grouped rows: an equality filter per key is applied inside DuckDB's scan (only the
    // vectors holding the key are read), where an IN list only prunes row groups and then
    // reads all of them.
    let mut base = key_scans(&quote_ident(&rows.base), "NOT groupless", &group_keys);
    if !id_keys.is_empty() {
        // The base's group-less rows: one lookup through the `_ids` table's index.
        base.push(format!(
            "SELECT * FROM {} WHERE k IN ({})",
            quote_ident(&rows.ids),
            id_keys.join(", ")
        ));
    }
    let mut found = vec![base];
    if rows.delta_runs > 0 {
        // The delta is small (at most its runs' events): its group-less rows fill a row group
        // or two, and equality scans read only the keys' vectors there.
        let d = quote_ident(&rows.delta);
        let mut delta = key_scans(&d, "NOT groupless", &group_keys);
        delta.extend(key_scans(&d, "groupless", &id_keys));
        found.push(delta);
    }
    let mut parts: Vec<String> = found
        .into_iter()
        .filter(|scans| !scans.is_empty())
        .map(|scans| {
            format!(
                "SELECT {stored} FROM ({}) WHERE {covered}",
                scans.join(" UNION ALL ")
            )
        })
        .collect();
    if rows.newest > rows.through_seq {
        parts.push(raw_candidates_sql(
            model,
            rows.through_seq,
            at,
            workspaces,
            &in_list(ids),
        ));
    }
    if parts.is_empty() {
        // No group and no person to look up (a company known by name only): no rows.
        parts.push(format!(
            "SELECT {stored} FROM {} WHERE false",
            quote_ident(&rows.base)
        ));
    }
    parts.join("\nUNION ALL\n")
}

/// The candidate events with `seq > after_seq` read raw from `events` (all of them when the
/// account rows cannot be had), with the same columns; `ids` is already an IN list.
pub(crate) fn raw_candidates_sql(
    model: &Model,
    after_seq: i64,
    at: &str,
    workspaces: &[String],
    ids: &str,
) -> String {
    format!(
        "SELECT {} FROM ({}) e",
        raw_columns(model),
        events_with_path(&format!(
            "seq > {after_seq} AND timestamp < {at}
             AND (group_id IN ({}) OR (group_id IS NULL AND coalesce(user_id, anonymous_id) IN ({ids})))",
            crate::scoring::in_list(workspaces)
        ))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creating_account_rows_drops_those_of_earlier_layouts() {
        let store =
            crate::DuckDbStore::open_in_memory(&upmarket_core::FreeMailDomains::default()).unwrap();
        let conn = store.sql_connection().unwrap();
        // Layout 1: no `_ids` table. Layout 2: a TINYINT column per match.
        conn.execute_batch(
            "CREATE TABLE account_rows_00000000deadbeef (k UBIGINT);
             CREATE TABLE account_rows_00000000deadbeef_delta (k UBIGINT);
             CREATE TABLE account_rows_00000000cafef00d (k UBIGINT, m1 TINYINT, t11 VARCHAR);
             CREATE TABLE account_rows_00000000cafef00d_delta (k UBIGINT, m1 TINYINT, t11 VARCHAR);
             CREATE TABLE account_rows_00000000cafef00d_ids (k UBIGINT, m1 TINYINT, t11 VARCHAR);
             INSERT INTO account_row_tables
                 (name, base_through_seq, through_seq, delta_runs, extended_at) VALUES
                 ('account_rows_00000000deadbeef', 0, 0, 0, current_timestamp),
                 ('account_rows_00000000cafef00d', 0, 0, 0, current_timestamp);",
        )
        .unwrap();
        let model = Model::from_toml(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.toml"),
            )
            .unwrap(),
            "default.toml",
        )
        .unwrap();
        let rows = current(&conn, &model).unwrap().unwrap();
        let tables = crate::duckdb_store::strings(
            &conn,
            "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'account_rows_%'
             ORDER BY 1",
        )
        .unwrap();
        assert_eq!(tables, vec![rows.base.clone(), rows.delta, rows.ids]);
        let registered =
            crate::duckdb_store::strings(&conn, "SELECT name FROM account_row_tables").unwrap();
        assert_eq!(registered, vec![rows.base]);
    }

    fn model(file: &str) -> Model {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .join(file);
        Model::from_toml(&std::fs::read_to_string(path).unwrap(), file).unwrap()
    }

    /// Every match read back from the packed columns is the match evaluated on the raw event
    /// (a NULL yes/no match reads back as 0, which no reader tells from NULL), across more
    /// matches than one packed column holds and with feature tiers (NULL, 0 and up).
    #[test]
    fn packed_matches_read_back_as_evaluated() {
        use crate::Store;
        let mut m = model("default.toml");
        let defaults = m.signals.clone();
        for _ in 0..7 {
            m.signals.extend(defaults.iter().cloned());
        }
        let tiers = model("004-worked-example.toml");
        m.signals.extend(
            tiers
                .signals
                .iter()
                .filter(|s| matches!(s.kind, SignalKind::FeatureTier { .. }))
                .cloned(),
        );
        m.signals.extend(defaults.iter().cloned());
        let p = packing(&m);
        assert!(p.columns >= 2, "the test needs more than one packed column");
        assert!(p.marks.iter().any(|k| k.tier) && p.marks.iter().any(|k| k.tier && k.column > 0));

        let mut store =
            crate::DuckDbStore::open_in_memory(&upmarket_core::FreeMailDomains::default()).unwrap();
        let events: Vec<upmarket_core::Event> = [
            r#"{"type":"track","event":"Report Created","userId":"u1","messageId":"1"}"#,
            r#"{"type":"track","event":"SSO Configured","userId":"u1","messageId":"2"}"#,
            r#"{"type":"track","event":"Alert Configured","userId":"u1","messageId":"3"}"#,
            r#"{"type":"track","event":"Something Else","userId":"u1","messageId":"4"}"#,
            r#"{"type":"track","event":"Teammate Invited","userId":"u1","messageId":"5"}"#,
            r#"{"type":"page","name":"Pricing","properties":{"path":"/pricing"},"userId":"u1","messageId":"6"}"#,
            r#"{"type":"page","properties":{"path":"/legal/terms/v2"},"userId":"u1","messageId":"7"}"#,
            r#"{"type":"page","userId":"u1","messageId":"8"}"#,
            r#"{"type":"identify","userId":"u1","traits":{"company_size":"11-50"},"messageId":"9"}"#,
        ]
        .iter()
        .map(|j| {
            let ctx = upmarket_core::segment::ParseContext {
                received_at: chrono::Utc::now(),
                source: upmarket_core::IngestSource::Segment,
                max_event_bytes: 32 * 1024,
                trust_received_at: false,
            };
            let defaults = upmarket_core::segment::BatchDefaults::default();
            upmarket_core::segment::parse_event(j, None, &defaults, &ctx).unwrap()
        })
        .collect();
        store.append(&events).unwrap();
        let conn = store.sql_connection().unwrap();
        let marks: Vec<String> = p.marks.iter().map(|k| format!("m{}", k.signal)).collect();
        let read = |sql: String| -> Vec<Vec<Option<i64>>> {
            let mut stmt = conn.prepare(&sql).unwrap();
            stmt.query_map([], |r| {
                (0..marks.len())
                    .map(|c| r.get::<_, Option<i64>>(c))
                    .collect()
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        };
        let all = crate::rollup::events_with_path("true");
        let list = marks.join(", ");
        let raw = read(format!(
            "SELECT {list} FROM (SELECT {} FROM ({all})) ORDER BY seq",
            raw_columns(&m)
        ));
        let stored = read(format!(
            "SELECT {list} FROM (SELECT {} FROM (SELECT {} FROM ({all}))) ORDER BY seq",
            stored_columns(&m),
            stored_row_columns(&m)
        ));
        assert_eq!(raw.len(), events.len());
        let mut seen = std::collections::BTreeSet::new();
        for (row, (r, s)) in raw.iter().zip(&stored).enumerate() {
            for (k, mark) in p.marks.iter().enumerate() {
                let expected = if mark.tier {
                    r[k]
                } else {
                    Some(r[k].unwrap_or(0))
                };
                assert_eq!(s[k], expected, "row {row}, m{}", mark.signal);
                seen.insert((mark.tier, r[k]));
            }
        }
        // The events exercise every kind of value.
        for v in [
            (false, None),
            (false, Some(0)),
            (false, Some(1)),
            (true, None),
            (true, Some(0)),
            (true, Some(1)),
            (true, Some(2)),
        ] {
            assert!(seen.contains(&v), "no {v:?} among {seen:?}");
        }
    }

    /// Creating the base folds the grouped events older than the clock less the look-back
    /// into one row per key and ids (last time, no event, no match), and keeps whole the
    /// recent ones, the group-less ones and those declaring a trait the model reads.
    #[test]
    fn old_grouped_events_are_folded_into_their_last_time() {
        use crate::Store;
        let m = model("default.toml");
        assert_eq!(crate::scoring::max_window(&m), 60);
        let latest = chrono::NaiveDate::from_ymd_opt(2025, 6, 1)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        let at = |days: i64| {
            (latest - chrono::Duration::days(days))
                .and_utc()
                .to_rfc3339()
        };
        let ctx = upmarket_core::segment::ParseContext {
            received_at: chrono::Utc::now(),
            source: upmarket_core::IngestSource::Import,
            max_event_bytes: 32 * 1024,
            trust_received_at: true,
        };
        let event = |n: usize, json: serde_json::Value| {
            let mut json = json;
            json["messageId"] = serde_json::json!(format!("m{n}"));
            upmarket_core::segment::parse_event(
                &json.to_string(),
                None,
                &upmarket_core::segment::BatchDefaults::default(),
                &ctx,
            )
            .unwrap()
        };
        let g = |id: &str| serde_json::json!({ "groupId": id });
        let events: Vec<upmarket_core::Event> = [
            // g1: u1's two old events fold into one row at the later; u2's (with an
            // anonymous id) into another; u1's recent one stays whole.
            serde_json::json!({"type":"track","event":"Report Created","userId":"u1","timestamp":at(100),"context":g("g1")}),
            serde_json::json!({"type":"track","event":"Query Run","userId":"u1","timestamp":at(90),"context":g("g1")}),
            serde_json::json!({"type":"track","event":"Query Run","userId":"u2","anonymousId":"a2","timestamp":at(95),"context":g("g1")}),
            serde_json::json!({"type":"track","event":"Query Run","userId":"u1","timestamp":at(0),"context":g("g1")}),
            // g2, dormant: one row at its last event.
            serde_json::json!({"type":"page","properties":{"path":"/pricing"},"userId":"u3","timestamp":at(200),"context":g("g2")}),
            serde_json::json!({"type":"track","event":"Query Run","userId":"u3","timestamp":at(150),"context":g("g2")}),
            // A trait declared long ago, and an old group-less event: whole.
            serde_json::json!({"type":"group","groupId":"g2","userId":"u3","traits":{"company_size":"11-50"},"timestamp":at(130)}),
            serde_json::json!({"type":"track","event":"Report Created","userId":"u4","timestamp":at(100)}),
        ]
        .into_iter()
        .enumerate()
        .map(|(n, j)| event(n, j))
        .collect();
        let mut store =
            crate::DuckDbStore::open_in_memory(&upmarket_core::FreeMailDomains::default()).unwrap();
        store.append(&events).unwrap();
        let conn = store.sql_connection().unwrap();
        let rows = current(&conn, &m).unwrap().unwrap();
        let clock = latest + chrono::Duration::seconds(1);
        let from = clock - chrono::Duration::days(60);
        assert_eq!(rows.kept_from, Some(from));
        assert!(rows.serves(&m, clock));
        assert!(rows.serves(&m, clock + chrono::Duration::days(30)));
        assert!(!rows.serves(&m, clock - chrono::Duration::seconds(1)));

        let mut stmt = conn
            .prepare(&format!(
                "SELECT groupless, coalesce(group_id, '-'), coalesce(user_id, '-'),
                        coalesce(anonymous_id, '-'), strftime(timestamp, '%Y-%m-%d'),
                        coalesce(event, '-'), marks_0, coalesce(t11, '-')
                 FROM {} ORDER BY 2, 3, 5",
                quote_ident(&rows.base)
            ))
            .unwrap();
        let base: Vec<String> = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{} {} {} {} {} {} {} {}",
                    r.get::<_, bool>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            base,
            [
                "true - u4 - 2025-02-21 Report Created 1 -",
                "false g1 u1 - 2025-03-03 - 0 -",
                "false g1 u1 - 2025-06-01 Query Run 1 -",
                "false g1 u2 a2 2025-02-26 - 0 -",
                "false g2 u3 - 2025-01-02 - 0 -",
                "false g2 u3 - 2025-01-22 - 0 11-50",
            ]
        );
    }

    #[test]
    fn keys_computed_here_equal_duckdbs() {
        let conn = Connection::open_in_memory().unwrap();
        for id in ["gws1-0", "iu92575-0-0", "ianon-éñ-漢字", "g", "i'quoted'"] {
            let ours: u64 = conn
                .query_row(&format!("SELECT {}", key_literal(id)), [], |r| r.get(0))
                .unwrap();
            let duckdb: u64 = conn
                .query_row(
                    &format!("SELECT {}", key_sql(&quote_literal(id))),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(ours, duckdb, "{id}");
        }
    }
}

//! Daily rollups: the numeric signals' per-day partial aggregates (and the day's last event, for
//! recency), kept per (day, group, user id, anonymous id), so that scoring every account reads a
//! few rows per person-day instead of every event of the window (4–5× fewer rows at 10M
//! simulated events).
//!
//! Exactness rules, which make a score from the rollup equal the score from raw events:
//! - Only scoring as of a midnight uses the rollup (`upmarket score --as-of DATE`,
//!   `--history-days` backfills, backtests): then every window `timestamp >= as_of - N days` is
//!   a whole number of days. Scoring as of any other moment reads raw events.
//! - Only events that carry their group are rolled up: the others are placed by the membership
//!   the person had at the event's exact time, so they are always read raw.
//! - A rollup covers exactly the grouped events with `seq <= through_seq` (`seq` numbers events
//!   in arrival order). Everything else in the window (events that arrived since, late ones for
//!   old days included) is read raw and aggregated into the same per-day partials, so nothing
//!   is lost or counted twice.
//! - The partial aggregates are decomposable (counts sum, flags OR, bit masks OR, maxima max), so
//!   one key may have several rows (one per extension) without changing any value.
//!
//! A rollup belongs to the model's signal definitions: its table is named by a hash of the
//! partial aggregates' SQL, so a changed model gets a new rollup and never reads a stale one.
//! It is extended at the start of a full scoring pass when enough new events have arrived.

use std::collections::HashMap;

use chrono::{NaiveDateTime, NaiveTime};
use duckdb::{params, Connection, OptionalExt};
use upmarket_core::model::{EventSelector, Model, SignalKind, SignalValue, VelocityMetric};

use crate::attribution::{attribution_with, IdentityRelations};
pub(crate) use crate::rollup_collect::{Cond, Eval};
use crate::scoring::{
    account_column, event_filter_sql, fill_numeric, selector_sql, timestamp_literal, two_level,
};
use crate::StoreError;

/// Extend a rollup when at least this many events arrived after it.
pub const EXTEND_AFTER_EVENTS: i64 = 100_000;

/// One per-person column of a signal: its per-day partial aggregate (over events) and how the
/// partials of the days inside the window combine (over rollup rows, `d` = whole days before
/// the as-of midnight, 0 for the day just before it).
pub(crate) struct DayColumn {
    /// The per-person column name (the same as the raw path's, so account expressions apply).
    pub person: String,
    /// The per-day partial aggregate (None: row presence).
    pub partial: Option<Partial>,
    /// The per-person aggregate over partial rows.
    pub combine: String,
}

/// One per-day partial aggregate of a rollup row.
pub(crate) struct Partial {
    /// Column name.
    pub name: String,
    /// Its aggregate over one day's events, in SQL (over events with their `path`).
    pub sql: String,
    /// The same aggregate as [`crate::rollup_collect`] computes it while events are
    /// imported; None when only SQL computes it (property filters, more than 62 features).
    pub eval: Option<Eval>,
}

/// The day-level decomposition of numeric signal `i`, or None for traits and recency.
pub(crate) fn day_columns(i: usize, kind: &SignalKind) -> Option<Vec<DayColumn>> {
    let col = |k: &str| format!("s{i}_{k}");
    let part = |k: &str| format!("p{i}_{k}");
    let partial = |k: &str, sql: String, eval: Option<Eval>| {
        Some(Partial {
            name: part(k),
            sql,
            eval,
        })
    };
    // Per-day partial counting events that match `cond`; per person, the sum over the window.
    let counted = |k: &str, cond: &str, eval: Option<Cond>, window: &str| DayColumn {
        person: col(k),
        partial: partial(
            k,
            format!("count(*) FILTER (WHERE {cond})"),
            eval.map(Eval::Count),
        ),
        combine: format!("sum({}) FILTER (WHERE {window})", part(k)),
    };
    // Per-day flag: did the person do it that day; per person, on any day of the window.
    let flagged = |k: &str, sel: &EventSelector, window: &str| DayColumn {
        person: col(k),
        partial: partial(
            k,
            format!("bool_or({})", selector_sql(sel)),
            Some(Eval::Flag(Cond::Select(sel.clone()))),
        ),
        combine: format!("bool_or({} AND {window})", part(k)),
    };
    // Any event at all that day (every rollup row has one).
    let present = |k: &str, window: &str| DayColumn {
        person: col(k),
        partial: None,
        combine: format!("bool_or({window})"),
    };
    let within = |days: u32| format!("d < {days}");
    Some(match kind {
        SignalKind::ActiveUsers { window_days } => vec![present("a", &within(*window_days))],
        SignalKind::ActiveDays { window_days } => vec![DayColumn {
            person: col("d"),
            partial: None,
            combine: format!("list(DISTINCT day) FILTER (WHERE {})", within(*window_days)),
        }],
        SignalKind::EventCount {
            window_days,
            select,
            filters,
        } => {
            let mut cond = vec![selector_sql(select)];
            cond.extend(event_filter_sql(filters));
            // Property filters read the event's JSON: SQL only.
            let eval = filters.is_empty().then(|| Cond::Select(select.clone()));
            vec![counted(
                "n",
                &cond.join(" AND "),
                eval,
                &within(*window_days),
            )]
        }
        SignalKind::DistinctUsers {
            window_days,
            select,
        } => vec![flagged("a", select, &within(*window_days))],
        SignalKind::Velocity {
            metric,
            recent_days,
            baseline_days,
        } => {
            let recent = within(*recent_days);
            let base = format!("d >= {recent_days} AND d < {}", recent_days + baseline_days);
            match metric {
                VelocityMetric::Events => vec![
                    counted("r", "TRUE", Some(Cond::Always), &recent),
                    DayColumn {
                        person: col("b"),
                        partial: None,
                        combine: format!("sum({}) FILTER (WHERE {base})", part("r")),
                    },
                ],
                VelocityMetric::Selected(sel) => {
                    let s = selector_sql(sel);
                    vec![
                        counted("r", &s, Some(Cond::Select(sel.clone())), &recent),
                        DayColumn {
                            person: col("b"),
                            partial: None,
                            combine: format!("sum({}) FILTER (WHERE {base})", part("r")),
                        },
                    ]
                }
                VelocityMetric::ActiveUsers => vec![present("r", &recent), present("b", &base)],
            }
        }
        SignalKind::FeatureBreadth {
            window_days,
            features,
        } => {
            let window = within(*window_days);
            if features.len() <= 62 {
                let mask = features
                    .iter()
                    .enumerate()
                    .map(|(n, f)| {
                        format!("WHEN {} THEN {}", crate::sql::quote_literal(f), 1i64 << n)
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![DayColumn {
                    person: col("f"),
                    partial: partial(
                        "f",
                        format!(
                            "bit_or(CASE event {mask} ELSE 0 END) FILTER (WHERE type = 'track')"
                        ),
                        Some(Eval::Mask(features.clone())),
                    ),
                    combine: format!("bit_or({}) FILTER (WHERE {window})", part("f")),
                }]
            } else {
                vec![DayColumn {
                    person: col("f"),
                    partial: partial(
                        "f",
                        format!(
                            "list(DISTINCT event) FILTER (WHERE type = 'track' AND event IN ({}))",
                            crate::scoring::in_list(features)
                        ),
                        None,
                    ),
                    combine: format!(
                        "flatten(list({p}) FILTER (WHERE {window} AND {p} IS NOT NULL))",
                        p = part("f")
                    ),
                }]
            }
        }
        SignalKind::FeatureTier {
            window_days,
            core,
            advanced,
            enterprise,
        } => vec![DayColumn {
            person: col("t"),
            partial: partial(
                "t",
                format!(
                    "max({}) FILTER (WHERE type = 'track')",
                    crate::scoring::tier_sql(core, advanced, enterprise)
                ),
                Some(Eval::Tier {
                    core: core.clone(),
                    advanced: advanced.clone(),
                    enterprise: enterprise.clone(),
                }),
            ),
            combine: format!("max({}) FILTER (WHERE {})", part("t"), within(*window_days)),
        }],
        SignalKind::Trait { .. } | SignalKind::Recency => return None,
    })
}

/// Every numeric signal's day columns, in signal order.
pub(crate) fn model_day_columns(model: &Model) -> Vec<(usize, Vec<DayColumn>)> {
    model
        .signals
        .iter()
        .enumerate()
        .filter_map(|(i, s)| day_columns(i, &s.kind).map(|c| (i, c)))
        .collect()
}

/// Every partial column (name, aggregate), formatted by `item` and concatenated.
fn partials(columns: &[(usize, Vec<DayColumn>)], item: impl Fn(&str, &str) -> String) -> String {
    columns
        .iter()
        .flat_map(|(_, cols)| cols.iter())
        .filter_map(|c| c.partial.as_ref())
        .map(|p| item(&p.name, &p.sql))
        .collect()
}

/// `partial AS name` for every partial column, comma-separated (with a leading comma), or "".
pub(crate) fn partial_select(columns: &[(usize, Vec<DayColumn>)]) -> String {
    partials(columns, |name, agg| format!(",\n       {agg} AS {name}"))
}

/// The names of the partial columns, comma-separated (with a leading comma), or "".
pub(crate) fn partial_names(columns: &[(usize, Vec<DayColumn>)]) -> String {
    partials(columns, |name, _| format!(", {name}"))
}

/// Events with the `path` column the selectors read.
pub(crate) fn events_with_path(filter: &str) -> String {
    format!(
        "SELECT *, CASE WHEN type IN ('page', 'screen')
                        THEN coalesce(json_extract_string(properties, '$.path'), name) END AS path
         FROM events WHERE {filter}"
    )
}

/// A rollup's state: its table and the events it covers (grouped events with
/// `seq <= through_seq`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rollup {
    pub table: String,
    pub through_seq: i64,
}

/// What a rollup row holds besides its key: the day's last event (recency) and the partials.
fn stored_columns(columns: &[(usize, Vec<DayColumn>)]) -> String {
    format!(
        ",\n       max(timestamp) AS last_ts{}",
        partial_select(columns)
    )
}

/// The rollup table for this model's partials.
pub(crate) fn table_name(columns: &[(usize, Vec<DayColumn>)]) -> String {
    let h = xxhash_rust::xxh3::xxh3_64(stored_columns(columns).as_bytes());
    format!("rollup_{h:016x}")
}

/// Whether `t` is a midnight (the rollup serves only such as-of times).
pub(crate) fn is_midnight(t: NaiveDateTime) -> bool {
    t.time() == NaiveTime::MIN
}

/// The model's rollup, first created or extended when at least [`EXTEND_AFTER_EVENTS`] events
/// arrived after it. None when the model has no numeric signal. A failed extension (another
/// connection extending at the same moment) leaves the rollup as it was: scoring then reads
/// more raw events, never wrong ones.
pub(crate) fn current(conn: &Connection, model: &Model) -> Result<Option<Rollup>, StoreError> {
    let Some((table, known)) = lookup(conn, model)? else {
        return Ok(None);
    };
    let columns = model_day_columns(model);
    let newest: i64 =
        conn.query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
    let rollup = Rollup {
        table,
        through_seq: known.unwrap_or(0),
    };
    if known.is_some() && newest - rollup.through_seq < EXTEND_AFTER_EVENTS {
        return Ok(Some(rollup));
    }
    let started = std::time::Instant::now();
    match extend(conn, &columns, &rollup, known.is_some(), newest) {
        Ok(extended) => {
            crate::scoring::debug_elapsed(started, "rollup extended");
            Ok(Some(extended))
        }
        Err(err) => {
            if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                tracing::debug!(error = %rollback, "rollback after a failed rollup extension");
            }
            if err.is_interrupt() {
                // The whole pass was asked to end (a stopping server), not just this step.
                return Err(err);
            }
            tracing::warn!(error = %err, "extending the daily rollup failed; scoring reads raw events");
            Ok(known.map(|_| rollup))
        }
    }
}

/// Adds the grouped events with `old.through_seq < seq <= newest`, in one transaction with
/// the registry row.
fn extend(
    conn: &Connection,
    columns: &[(usize, Vec<DayColumn>)],
    old: &Rollup,
    exists: bool,
    newest: i64,
) -> Result<Rollup, StoreError> {
    let filter = format!(
        "group_id IS NOT NULL AND seq > {} AND seq <= {newest}",
        old.through_seq
    );
    let rows = rows_sql(columns, &filter);
    conn.execute_batch("BEGIN TRANSACTION")?;
    if exists {
        conn.execute_batch(&format!("INSERT INTO {} {rows}", old.table))?;
    } else {
        create(conn, &old.table, &rows)?;
    }
    register(conn, &old.table, newest)?;
    conn.execute_batch("COMMIT")?;
    Ok(Rollup {
        table: old.table.clone(),
        through_seq: newest,
    })
}

/// The rollup rows of the events matching `filter`, sorted by day and group.
pub(crate) fn rows_sql(columns: &[(usize, Vec<DayColumn>)], filter: &str) -> String {
    format!(
        "SELECT CAST(timestamp AS DATE) AS day, group_id, user_id, anonymous_id{}
         FROM ({}) GROUP BY ALL ORDER BY day, group_id",
        stored_columns(columns),
        events_with_path(filter)
    )
}

/// Creates rollup `table` holding `rows` (stale rollups of other definitions dropped first).
pub(crate) fn create(conn: &Connection, table: &str, rows: &str) -> Result<(), StoreError> {
    drop_stale(conn, "rollups", &[])?;
    conn.execute_batch(&format!("CREATE OR REPLACE TABLE {table} AS {rows}"))?;
    Ok(())
}

/// Records that rollup `table` covers the grouped events with `seq <= through_seq`.
pub(crate) fn register(conn: &Connection, table: &str, through_seq: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO rollups (name, through_seq, extended_at) VALUES (?, ?, current_timestamp)",
        params![table, through_seq],
    )?;
    Ok(())
}

/// The model's rollup table and what it covers (None: it does not exist), without creating
/// or extending it. None when the model has no numeric signal.
pub(crate) fn lookup(
    conn: &Connection,
    model: &Model,
) -> Result<Option<(String, Option<i64>)>, StoreError> {
    let columns = model_day_columns(model);
    if columns.is_empty() {
        return Ok(None);
    }
    let table = table_name(&columns);
    let known: Option<i64> = conn
        .prepare_cached("SELECT through_seq FROM rollups WHERE name = ?")?
        .query_row(params![table], |r| r.get(0))
        .optional()?;
    Ok(Some((table, known)))
}

/// Derived tables (daily rollups, account rows) not extended for this many days are dropped
/// when another of their kind is created (a changed model leaves its old definition's tables
/// behind; one still in use is rebuilt when next needed).
pub const STALE_AFTER_DAYS: u32 = 30;

/// Drops the tables `registry` lists that were not extended for [`STALE_AFTER_DAYS`] (each
/// registered name, and the name with each of `suffixes`), and their registry rows.
pub(crate) fn drop_stale(
    conn: &Connection,
    registry: &str,
    suffixes: &[&str],
) -> Result<(), StoreError> {
    // The cutoff is computed here: interval arithmetic on DuckDB's current_timestamp (WITH
    // TIME ZONE) needs the ICU extension, which this build does not load.
    let cutoff = crate::scoring::timestamp_literal(
        chrono::Utc::now().naive_utc() - chrono::Duration::days(STALE_AFTER_DAYS.into()),
    );
    let stale = crate::duckdb_store::strings(
        conn,
        &format!("SELECT name FROM {registry} WHERE extended_at < {cutoff}"),
    )?;
    drop_registered(conn, registry, &stale, suffixes)?;
    if !stale.is_empty() {
        tracing::info!(%registry, dropped = ?stale, "stale derived tables dropped");
    }
    Ok(())
}

/// Drops the tables of `names` from `registry` (each name, and the name with each of
/// `suffixes`) and their registry rows.
pub(crate) fn drop_registered(
    conn: &Connection,
    registry: &str,
    names: &[String],
    suffixes: &[&str],
) -> Result<(), StoreError> {
    for name in names {
        for suffix in std::iter::once(&"").chain(suffixes) {
            conn.execute_batch(&format!(
                "DROP TABLE IF EXISTS {}",
                crate::sql::quote_ident(&format!("{name}{suffix}"))
            ))?;
        }
        conn.execute(
            &format!("DELETE FROM {registry} WHERE name = ?"),
            duckdb::params![name],
        )?;
    }
    Ok(())
}

/// The numeric signals of every account as of `as_of` (a midnight), from the rollup's days in
/// the window plus the raw events it does not cover, in one query. Same values as
/// [`crate::scoring`]'s raw query (test `scoring_from_the_rollup_equals_scoring_raw_events`).
pub(crate) fn numeric_sql(
    conn: &Connection,
    model: &Model,
    as_of: NaiveDateTime,
    window: u32,
    rollup: &Rollup,
    identity: &IdentityRelations,
    values: &mut HashMap<String, Vec<SignalValue>>,
) -> Result<(), StoreError> {
    let columns = model_day_columns(model);
    if columns.is_empty() {
        return Ok(());
    }
    let at = timestamp_literal(as_of);
    let day = format!("DATE '{}'", as_of.date().format("%Y-%m-%d"));
    let acct = account_column(model.level);
    let names = partial_names(&columns);
    let rolled = format!(
        "(SELECT day, group_id, user_id, anonymous_id, NULL::TIMESTAMP AS timestamp{names}
          FROM {table} WHERE day >= {day} - INTERVAL {window} DAY AND day < {day})",
        table = rollup.table
    );
    let raw = format!(
        "({})",
        events_with_path(&format!(
            "timestamp >= {at} - INTERVAL {window} DAY AND timestamp < {at}
             AND (group_id IS NULL OR seq > {})",
            rollup.through_seq
        ))
    );
    let combine = columns
        .iter()
        .flat_map(|(_, cols)| cols.iter())
        .map(|c| format!("{} AS {}", c.combine, c.person))
        .collect::<Vec<_>>()
        .join(",\n              ");
    let accounts = columns
        .iter()
        .filter_map(|(i, _)| two_level(*i, &model.signals[*i].kind, &at))
        .map(|t| format!("CAST({} AS DOUBLE)", t.account))
        .collect::<Vec<_>>()
        .join(",\n       ");
    let sql = format!(
        "WITH parts AS (
            SELECT {acct} AS account_id, person, day{names}
            FROM ({rolled_attr}) WHERE {acct} IS NOT NULL
            UNION ALL
            SELECT {acct} AS account_id, person, CAST(timestamp AS DATE) AS day{partials}
            FROM ({raw_attr}) WHERE {acct} IS NOT NULL GROUP BY ALL
        ), per_person AS (
            SELECT account_id, person,
              {combine}
            FROM (SELECT *, date_diff('day', day, {day}) - 1 AS d FROM parts)
            GROUP BY account_id, person
        )
        SELECT account_id,\n       {accounts}\nFROM per_person GROUP BY account_id",
        rolled_attr = attribution_with(&rolled, identity),
        raw_attr = attribution_with(&raw, identity),
        partials = partial_select(&columns),
    );
    tracing::trace!(%sql, "numeric signals from the rollup");
    let indices: Vec<usize> = columns.iter().map(|(i, _)| *i).collect();
    fill_numeric(conn, &sql, &indices, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(window: u32) -> Model {
        Model::from_toml(
            &format!(
                r#"
[model]
name = "m"
version = 1
level = "workspace"
scale = "raw"

[events]
core_feature = ["Report Created"]

[[signal]]
id = "core"
kind = "event_count"
role = "core_feature"
window_days = {window}

[[signal]]
id = "recency"
kind = "recency"

[[component]]
signal = "core"
weight = 1.0
points_per_unit = 1.0

[[tier]]
name = "self_serve"
min = 0
"#
            ),
            "test",
        )
        .expect("test model")
    }

    #[test]
    fn only_midnights_use_the_rollup() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert!(is_midnight(day.and_hms_opt(0, 0, 0).unwrap()));
        assert!(!is_midnight(day.and_hms_opt(0, 0, 1).unwrap()));
        assert!(!is_midnight(
            day.and_hms_micro_opt(23, 59, 59, 999_999).unwrap()
        ));
    }

    #[test]
    fn a_rollup_belongs_to_its_partials_not_to_the_windows() {
        // Windows are applied when reading, so a model that only changes a window keeps its
        // rollup; a change of what is counted gets a new one.
        let a = table_name(&model_day_columns(&model(28)));
        let b = table_name(&model_day_columns(&model(60)));
        assert_eq!(a, b);
        let other = model(28);
        let text = stored_columns(&model_day_columns(&other));
        assert!(text.contains("count(*) FILTER"), "{text}");
        let mut changed = other.clone();
        if let SignalKind::EventCount { select, .. } = &mut changed.signals[0].kind {
            select.events.push("Query Run".into());
        }
        assert_ne!(a, table_name(&model_day_columns(&changed)));
    }

    #[test]
    fn recency_and_traits_have_no_day_columns() {
        assert!(day_columns(0, &SignalKind::Recency).is_none());
        let cols = model_day_columns(&model(7));
        assert_eq!(cols.len(), 1);
        assert_eq!(cols[0].1[0].combine, "sum(p0_n) FILTER (WHERE d < 7)");
    }
}

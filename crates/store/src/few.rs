//! Measuring a few accounts' signals: the re-scorer's path ([`measure_few`]). Re-scoring the
//! accounts that new events touched reads a few thousand attributed rows, found without
//! attributing every event; DuckDB's hash aggregate costs milliseconds per signal whatever the
//! input size, so those rows are fetched once, in one query, and counted here in Rust. Scoring
//! every account is `crate::scoring::measure`'s SQL path.
//!
//! SQL still decides what each row *is* (the same selector and property-filter expressions as
//! the full scoring query, evaluated per row as match columns, and the trait values); Rust only
//! applies the time windows, counts, and picks the most common trait value. The bench and the
//! store tests check that both paths give the same values.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Duration, NaiveDateTime};
use duckdb::Connection;
use upmarket_core::model::{Level, Model, Signal, SignalKind, SignalValue, VelocityMetric};

use crate::attribution::{attribution_with, IdentityRelations};
use crate::columns;
use crate::duckdb_store::strings;
use crate::scoring::{account_column, debug_elapsed, in_list, timestamp_literal};
use crate::{AccountSignals, StoreError};

/// One candidate event, attributed, with what the signals need of it.
pub(crate) struct Row {
    /// The account it counts for (None: it counts for no account, or another level's).
    pub account: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    person: String,
    at: NaiveDateTime,
    event: Option<String>,
    /// The event's number: a row found twice (two keys with one hash) is counted once.
    seq: i64,
    /// One value per signal with a match column (bool as 0/1, tier 0–3), NULL as None.
    marks: Vec<Option<i64>>,
    /// One value per trait signal: the trait an identify / group call declared.
    traits: Vec<Option<String>>,
}

/// The signals with a match column, and the trait signals, in model order.
fn marked_and_traits(model: &Model) -> (Vec<usize>, Vec<usize>) {
    let (marks, traits) = crate::account_rows::value_columns(model);
    (
        marks.into_iter().map(|(i, _)| i).collect(),
        traits.into_iter().map(|(i, _)| i).collect(),
    )
}

/// The SELECT list [`fetch`] expects, over attributed candidate rows (which carry the value
/// columns, `crate::account_rows::stored_columns`) whose account column is `acct`:
/// account_id, user_id, anonymous_id, person, timestamp, event, seq, then m{i} per match
/// column and t{i} per trait signal.
fn select_list(model: &Model, acct: &str) -> String {
    let (marked, traits) = marked_and_traits(model);
    let mut cols =
        format!("{acct} AS account_id, user_id, anonymous_id, person, timestamp, event, seq");
    for i in marked {
        cols.push_str(&format!(", CAST(m{i} AS BIGINT) AS m{i}"));
    }
    for i in traits {
        cols.push_str(&format!(", t{i}"));
    }
    cols
}

/// Runs `sql` (selecting [`select_list`]) and collects its rows.
fn fetch(conn: &Connection, model: &Model, sql: &str) -> Result<Vec<Row>, StoreError> {
    let (marked, traits) = marked_and_traits(model);
    tracing::trace!(%sql, "few: candidate rows");
    let mut stmt = conn.prepare(sql)?;
    let mut rows = Vec::new();
    for batch in stmt.stream_arrow([])? {
        let batch = batch?;
        let account = columns::strings(&batch, 0)?;
        let user_id = columns::strings(&batch, 1)?;
        let anonymous_id = columns::strings(&batch, 2)?;
        let person = columns::strings(&batch, 3)?;
        let at = columns::timestamps(&batch, 4)?;
        let event = columns::strings(&batch, 5)?;
        let seq = columns::ints(&batch, 6)?;
        let marks = (0..marked.len())
            .map(|k| columns::ints(&batch, 7 + k))
            .collect::<Result<Vec<_>, _>>()?;
        let values = (0..traits.len())
            .map(|k| columns::strings(&batch, 7 + marked.len() + k))
            .collect::<Result<Vec<_>, _>>()?;
        let owned = |s: Option<&str>| s.map(str::to_string);
        for r in 0..batch.num_rows() {
            // NOT NULL in every table the candidates come from: a NULL here is a bug.
            let (Some(at), Some(seq)) = (at[r], seq[r]) else {
                return Err(StoreError::UnexpectedNull(
                    "timestamp or seq of a candidate row",
                ));
            };
            rows.push(Row {
                account: owned(account[r]),
                user_id: owned(user_id[r]),
                anonymous_id: owned(anonymous_id[r]),
                person: person[r].unwrap_or_default().to_string(),
                at,
                event: owned(event[r]),
                seq,
                marks: marks.iter().map(|m| m[r]).collect(),
                traits: values.iter().map(|v| owned(v[r])).collect(),
            });
        }
    }
    rows.sort_by_key(|r| r.seq);
    rows.dedup_by_key(|r| r.seq);
    Ok(rows)
}

/// Every signal of each of `accounts` that has rows, in account order, from the rows (events
/// before `as_of`) that count for it.
fn evaluate(
    model: &Model,
    as_of: NaiveDateTime,
    accounts: &[String],
    rows: &[Row],
) -> Vec<AccountSignals> {
    let (marked, trait_signals) = marked_and_traits(model);
    let wanted: HashSet<&str> = accounts.iter().map(String::as_str).collect();
    let mut by_account: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        if let Some(a) = r.account.as_deref().filter(|a| wanted.contains(a)) {
            by_account.entry(a).or_default().push(r);
        }
    }
    let mark_of = |signal: usize| marked.iter().position(|&i| i == signal);
    let trait_of = |signal: usize| trait_signals.iter().position(|&i| i == signal);
    by_account
        .into_iter()
        .map(|(account, rows)| {
            let values = model
                .signals
                .iter()
                .enumerate()
                .map(|(i, s)| signal(s, &rows, as_of, mark_of(i), trait_of(i)))
                .collect();
            AccountSignals {
                account_id: account.to_string(),
                values,
            }
        })
        .collect()
}

/// One signal over one account's rows.
fn signal(
    s: &Signal,
    rows: &[&Row],
    as_of: NaiveDateTime,
    m: Option<usize>,
    t: Option<usize>,
) -> SignalValue {
    let matches = |r: &Row| m.is_none_or(|k| r.marks[k] == Some(1));
    let since = |days: u32| as_of - Duration::days(days as i64);
    let person = |r: &Row| r.person.clone();
    SignalValue::Number(match &s.kind {
        SignalKind::Recency => {
            // DuckDB's date_diff('day', …): day boundaries crossed.
            let last = rows.iter().map(|r| r.at).max().unwrap_or(as_of);
            (as_of.date() - last.date()).num_days() as f64
        }
        SignalKind::Trait { .. } => {
            // The most common value, ties to the smallest (as the SQL path).
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for v in rows
                .iter()
                .filter_map(|r| t.and_then(|k| r.traits[k].as_deref()))
            {
                *counts.entry(v).or_default() += 1;
            }
            let best = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(v, _)| v.to_string());
            return SignalValue::Text(best);
        }
        SignalKind::ActiveUsers { window_days } => {
            distinct(rows, since(*window_days), as_of, |_| true, person)
        }
        SignalKind::ActiveDays { window_days } => distinct(
            rows,
            since(*window_days),
            as_of,
            |_| true,
            |r| r.at.date().to_string(),
        ),
        SignalKind::EventCount { window_days, .. } => {
            let from = since(*window_days);
            rows.iter().filter(|r| r.at >= from && matches(r)).count() as f64
        }
        SignalKind::DistinctUsers { window_days, .. } => {
            distinct(rows, since(*window_days), as_of, matches, person)
        }
        SignalKind::FeatureBreadth { window_days, .. } => distinct(
            rows,
            since(*window_days),
            as_of,
            |r| matches(r) && r.event.is_some(),
            |r| r.event.clone().unwrap_or_default(),
        ),
        SignalKind::FeatureTier { window_days, .. } => {
            let from = since(*window_days);
            rows.iter()
                .filter(|r| r.at >= from)
                .filter_map(|r| m.and_then(|k| r.marks[k]))
                .max()
                .unwrap_or(0) as f64
        }
        SignalKind::Velocity {
            metric,
            recent_days,
            baseline_days,
        } => {
            let (r_days, b_days) = (*recent_days, *baseline_days);
            let recent_from = since(r_days);
            let base_from = since(r_days + b_days);
            let (rv, bv, rs, bs) = match metric {
                VelocityMetric::ActiveUsers => (
                    distinct(rows, recent_from, as_of, |_| true, person),
                    distinct(rows, base_from, recent_from, |_| true, person),
                    1.0,
                    1.0,
                ),
                VelocityMetric::Events | VelocityMetric::Selected(_) => {
                    let count = |from: NaiveDateTime, to: NaiveDateTime| {
                        rows.iter()
                            .filter(|r| r.at >= from && r.at < to && matches(r))
                            .count() as f64
                    };
                    (
                        count(recent_from, as_of),
                        count(base_from, recent_from),
                        b_days as f64,
                        r_days as f64,
                    )
                }
            };
            // The same arithmetic as the SQL (scoring.rs), so both give equal doubles.
            if bv == 0.0 {
                if rv > 0.0 {
                    100.0
                } else {
                    0.0
                }
            } else {
                ((rv * rs) / (bv * bs) - 1.0) * 100.0
            }
        }
    })
}

/// Distinct `key`s of the matching rows in `[from, to)`.
fn distinct(
    rows: &[&Row],
    from: NaiveDateTime,
    to: NaiveDateTime,
    keep: impl Fn(&Row) -> bool,
    key: impl Fn(&Row) -> String,
) -> f64 {
    rows.iter()
        .filter(|r| r.at >= from && r.at < to && keep(r))
        .map(|r| key(r))
        .collect::<HashSet<_>>()
        .len() as f64
}

/// Re-scoring a few accounts: their signals from their candidate events, attributed and
/// fetched in one query and counted in Rust.
///
/// Candidates are a superset of the events that can count for the accounts, found from the
/// identity tables without attributing every event: the events of the accounts' workspaces (at
/// company level, the workspaces of the company and the company-less workspaces its people
/// belong to, whose events fall back to the person's e-mail domain), and the events without a
/// group sent by the accounts' people under any of their ids (those are placed by membership).
/// They are read from the model's account rows (`crate::account_rows`: the events' values
/// sorted by group / user id / anonymous id, so one account's rows sit in a few row groups)
/// and, for the events that arrived after those rows were last extended, from `events`.
///
/// The identity relations are restricted to the accounts' people. That is exact when every id
/// the candidates name belongs to those people (a grouped event makes its sender a member, so
/// this is the rule); when one does not, the query runs again with the people of every id named.
pub(crate) fn measure_few(
    conn: &Connection,
    model: &Model,
    as_of: NaiveDateTime,
    accounts: &[String],
) -> Result<Vec<AccountSignals>, StoreError> {
    let at = timestamp_literal(as_of);
    let started = std::time::Instant::now();
    let (workspaces, ids) = scope(conn, model.level, accounts)?;
    debug_elapsed(started, "few: people and ids");
    let started = std::time::Instant::now();
    // Scoring as of an earlier time than the account rows keep whole events for (an
    // explanation as of a past day) reads raw events.
    let candidates = match crate::account_rows::current(conn, model)? {
        Some(stored) if stored.serves(model, as_of) => {
            crate::account_rows::candidates_sql(model, &stored, &at, &workspaces, &ids)
        }
        _ => crate::account_rows::raw_candidates_sql(model, 0, &at, &workspaces, &in_list(&ids)),
    };
    debug_elapsed(started, "few: account rows");
    let started = std::time::Instant::now();
    let mut rows = fetch(conn, model, &few_sql(model, &candidates, &ids))?;
    let named_elsewhere = rows
        .iter()
        .flat_map(|r| [r.user_id.as_ref(), r.anonymous_id.as_ref()])
        .flatten()
        .any(|id| ids.binary_search(id).is_err());
    if named_elsewhere {
        tracing::debug!("few: candidates name ids of other people; fetching again");
        let mut named: Vec<String> = rows
            .iter()
            .flat_map(|r| [r.user_id.clone(), r.anonymous_id.clone()])
            .flatten()
            .collect();
        named.sort();
        named.dedup();
        let mut all = ids_of(conn, &people_of(conn, &named)?)?;
        all.extend(ids.iter().cloned());
        all.sort();
        all.dedup();
        rows = fetch(conn, model, &few_sql(model, &candidates, &all))?;
    }
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        rows = rows.len(),
        workspaces = workspaces.len(),
        ids = ids.len(),
        "few: fetched"
    );
    Ok(evaluate(model, as_of, accounts, &rows))
}

/// The accounts' workspaces, and every id their people are known by (sorted).
fn scope(
    conn: &Connection,
    level: Level,
    accounts: &[String],
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let list = in_list(accounts);
    let (workspaces, member_ids) = match level {
        Level::Workspace => (
            accounts.to_vec(),
            strings(
                conn,
                &format!("SELECT DISTINCT user_id FROM memberships WHERE workspace_id IN ({list})"),
            )?,
        ),
        Level::Company => {
            let own = strings(
                conn,
                &format!(
                    "SELECT workspace_id FROM workspace_companies WHERE company_id IN ({list})"
                ),
            )?;
            let people = strings(
                conn,
                &format!(
                    "SELECT person FROM person_companies WHERE company_id IN ({list})
                     UNION SELECT person FROM person_memberships WHERE workspace_id IN ({})",
                    in_list(&own)
                ),
            )?;
            let mut workspaces = own;
            workspaces.extend(strings(
                conn,
                &format!(
                    "SELECT DISTINCT pm.workspace_id FROM person_memberships pm
                     JOIN workspace_companies wc USING (workspace_id)
                     WHERE wc.company_id IS NULL AND pm.person IN ({})",
                    in_list(&people)
                ),
            )?);
            (workspaces, people)
        }
    };
    let people = people_of(conn, &member_ids)?;
    Ok((workspaces, ids_of(conn, &people)?))
}

/// One query: the candidates, attributed with the identity relations restricted to the people
/// `ids` name (the views' definitions, schema.rs, over the matching rows only), as
/// [`crate::few::select_list`] rows.
fn few_sql(model: &Model, candidates: &str, ids: &[String]) -> String {
    let ids = in_list(ids);
    let identity = IdentityRelations {
        person_ids: "c_person_ids".into(),
        person_memberships: "c_person_memberships".into(),
        companies: (model.level == Level::Company)
            .then(|| ("workspace_companies".into(), "person_companies".into())),
    };
    format!(
        "WITH candidate_events AS ({candidates}),
         c_person_ids AS (SELECT alias AS id, user_id AS person FROM aliases WHERE alias IN ({ids})),
         c_person_memberships AS (
             SELECT coalesce(a.user_id, m.user_id) AS person, m.workspace_id, min(m.since) AS since
             FROM (SELECT * FROM memberships WHERE user_id IN ({ids})) m
             LEFT JOIN (SELECT * FROM aliases WHERE alias IN ({ids})) a ON a.alias = m.user_id
             GROUP BY ALL)
         SELECT {} FROM ({}) AS attributed",
        select_list(model, account_column(model.level)),
        attribution_with("candidate_events", &identity)
    )
}

/// The people (canonical ids) behind `ids`, through the alias map.
fn people_of(conn: &Connection, ids: &[String]) -> Result<Vec<String>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT alias, user_id FROM aliases WHERE alias IN ({})",
        in_list(ids)
    ))?;
    let mapped: HashMap<String, String> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut people: Vec<String> = ids
        .iter()
        .map(|id| mapped.get(id).unwrap_or(id).clone())
        .collect();
    people.sort();
    people.dedup();
    Ok(people)
}

/// Every id `people` are known by: themselves and their aliases.
fn ids_of(conn: &Connection, people: &[String]) -> Result<Vec<String>, StoreError> {
    let mut ids = people.to_vec();
    if !people.is_empty() {
        ids.extend(strings(
            conn,
            &format!(
                "SELECT alias FROM aliases WHERE user_id IN ({})",
                in_list(people)
            ),
        )?);
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

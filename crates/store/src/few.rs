//! Counting a few accounts' signals in Rust. Re-scoring the accounts that new events touched
//! reads a few thousand attributed rows; DuckDB's hash aggregate costs milliseconds per signal
//! whatever the input size, so those rows are fetched once, in one query, and counted here.
//!
//! SQL still decides what each row *is* (the same selector and property-filter expressions as
//! the full scoring query, evaluated per row as match columns, and the trait values); Rust only
//! applies the time windows, counts, and picks the most common trait value. The bench and the
//! store tests check that both paths give the same values.

use std::collections::{BTreeMap, HashSet};

use chrono::{Duration, NaiveDateTime};
use duckdb::Connection;
use upmarket_core::model::{Model, Signal, SignalKind, SignalValue, VelocityMetric};

use crate::{AccountSignals, StoreError};

/// The per-row expression a signal needs, if any: a BOOLEAN "matches" or, for feature tiers,
/// the row's tier (0–3, NULL when the row is not a track call).
pub(crate) fn match_column(kind: &SignalKind) -> Option<String> {
    use crate::scoring::{event_filter_sql, in_list, selector_sql, tier_sql};
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

/// One candidate event, attributed, with what the signals need of it.
pub(crate) struct Row {
    /// The account it counts for (None: it counts for no account, or another level's).
    pub account: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    person: String,
    at: NaiveDateTime,
    event: Option<String>,
    /// One value per signal with a match column (bool as 0/1, tier 0–3), NULL as None.
    marks: Vec<Option<i64>>,
    /// One value per trait signal: the trait an identify / group call declared.
    traits: Vec<Option<String>>,
}

/// The signals with a match column, and the trait signals, in model order.
fn marked_and_traits(model: &Model) -> (Vec<usize>, Vec<usize>) {
    let marked = model
        .signals
        .iter()
        .enumerate()
        .filter(|(_, s)| match_column(&s.kind).is_some())
        .map(|(i, _)| i)
        .collect();
    let traits = model
        .signals
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.kind, SignalKind::Trait { .. }))
        .map(|(i, _)| i)
        .collect();
    (marked, traits)
}

/// The SELECT list [`fetch`] expects, over attributed rows whose account column is `acct`:
/// account_id, user_id, anonymous_id, person, timestamp, event, then m{i} per match column and
/// t{i} per trait signal.
pub(crate) fn select_list(model: &Model, acct: &str) -> String {
    let (marked, traits) = marked_and_traits(model);
    let mut cols = format!("{acct} AS account_id, user_id, anonymous_id, person, timestamp, event");
    for i in marked {
        if let Some(m) = match_column(&model.signals[i].kind) {
            cols.push_str(&format!(", CAST(({m}) AS BIGINT) AS m{i}"));
        }
    }
    for i in traits {
        if let SignalKind::Trait { name } = &model.signals[i].kind {
            let path = crate::sql::quote_literal(&format!("$.\"{}\"", name.replace('"', "")));
            cols.push_str(&format!(
                ", CASE WHEN type IN ('identify', 'group') THEN json_extract_string(traits, {path}) END AS t{i}"
            ));
        }
    }
    cols
}

/// Runs `sql` (selecting [`select_list`]) and collects its rows.
pub(crate) fn fetch(conn: &Connection, model: &Model, sql: &str) -> Result<Vec<Row>, StoreError> {
    let (marked, traits) = marked_and_traits(model);
    let mut stmt = conn.prepare(sql)?;
    let mut q = stmt.query([])?;
    let mut rows = Vec::new();
    while let Some(r) = q.next()? {
        let mut marks = Vec::with_capacity(marked.len());
        for k in 0..marked.len() {
            marks.push(r.get::<_, Option<i64>>(6 + k)?);
        }
        let mut values = Vec::with_capacity(traits.len());
        for k in 0..traits.len() {
            values.push(r.get::<_, Option<String>>(6 + marked.len() + k)?);
        }
        rows.push(Row {
            account: r.get(0)?,
            user_id: r.get(1)?,
            anonymous_id: r.get(2)?,
            person: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            at: r.get(4)?,
            event: r.get(5)?,
            marks,
            traits: values,
        });
    }
    Ok(rows)
}

/// Every signal of each of `accounts` that has rows, in account order, from the rows (events
/// before `as_of`) that count for it.
pub(crate) fn evaluate(
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

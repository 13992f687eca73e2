//! Counting a few accounts' signals in Rust. Re-scoring the accounts that new events touched
//! reads a few thousand attributed rows; DuckDB's hash aggregate costs milliseconds per signal
//! whatever the input size, so those rows are fetched once and counted here instead.
//!
//! SQL still decides what each row *is* (the same selector and property-filter expressions as
//! the full scoring query, evaluated per row as match columns); Rust only applies the time
//! windows and counts. The bench and the store tests check that both paths give the same values.

use std::collections::{HashMap, HashSet};

use chrono::{Duration, NaiveDateTime};
use duckdb::Connection;
use upmarket_core::model::{Model, SignalKind, SignalValue, VelocityMetric};

use crate::StoreError;

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

/// One fetched row.
struct Row {
    person: String,
    at: NaiveDateTime,
    event: Option<String>,
    /// One value per signal with a match column (bool as 0/1, tier 0–3), NULL as None.
    marks: Vec<Option<i64>>,
}

/// Fills `values` (account → one value per signal, recency and traits left alone) with the
/// numeric signals counted over `table`, which holds the accounts' attributed events before
/// `as_of` with the columns account_id, person, timestamp, event and m0, m1… as
/// [`match_column`] lists them for the model's signals in order.
pub(crate) fn count_numeric(
    conn: &Connection,
    model: &Model,
    as_of: NaiveDateTime,
    table: &str,
    values: &mut HashMap<String, Vec<SignalValue>>,
) -> Result<(), StoreError> {
    let marked: Vec<usize> = model
        .signals
        .iter()
        .enumerate()
        .filter(|(_, s)| match_column(&s.kind).is_some())
        .map(|(i, _)| i)
        .collect();
    let marks_sql: String = marked
        .iter()
        .map(|i| format!(", CAST(m{i} AS BIGINT)"))
        .collect();
    let mut stmt = conn.prepare(&format!(
        "SELECT account_id, person, timestamp, event{marks_sql} FROM {table}"
    ))?;
    let mut by_account: HashMap<String, Vec<Row>> = HashMap::new();
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let mut marks = Vec::with_capacity(marked.len());
        for k in 0..marked.len() {
            marks.push(r.get::<_, Option<i64>>(4 + k)?);
        }
        by_account.entry(r.get(0)?).or_default().push(Row {
            person: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            at: r.get(2)?,
            event: r.get(3)?,
            marks,
        });
    }
    let mark_of = |signal: usize| marked.iter().position(|&i| i == signal);
    for (account, rows) in &by_account {
        let Some(out) = values.get_mut(account) else {
            continue;
        };
        for (i, s) in model.signals.iter().enumerate() {
            let m = mark_of(i);
            let matches = |r: &Row| m.is_none_or(|k| r.marks[k] == Some(1));
            let since = |days: u32| as_of - Duration::days(days as i64);
            let value = match &s.kind {
                SignalKind::ActiveUsers { window_days } => distinct(
                    rows,
                    since(*window_days),
                    as_of,
                    |_| true,
                    |r| r.person.clone(),
                ),
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
                    distinct(rows, since(*window_days), as_of, matches, |r| {
                        r.person.clone()
                    })
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
                            distinct(rows, recent_from, as_of, |_| true, |r| r.person.clone()),
                            distinct(rows, base_from, recent_from, |_| true, |r| r.person.clone()),
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
                SignalKind::Trait { .. } | SignalKind::Recency => continue,
            };
            out[i] = SignalValue::Number(value);
        }
    }
    Ok(())
}

/// Distinct `key`s of the matching rows in `[from, to)`.
fn distinct(
    rows: &[Row],
    from: NaiveDateTime,
    to: NaiveDateTime,
    keep: impl Fn(&Row) -> bool,
    key: impl Fn(&Row) -> String,
) -> f64 {
    rows.iter()
        .filter(|r| r.at >= from && r.at < to && keep(r))
        .map(key)
        .collect::<HashSet<_>>()
        .len() as f64
}

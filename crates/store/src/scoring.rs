//! Measuring a model's signals over the stored events, as of any moment, in SQL generated from
//! the model. Only events strictly before the as-of time are read, so a score computed for a
//! past date is the score upmarket would have shown that day (no leakage into backtests).
//!
//! Every name and value from the model reaches SQL through [`crate::sql`]'s quoting.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use duckdb::Connection;
use upmarket_core::model::{EventSelector, Level, Model, SignalKind, SignalValue, VelocityMetric};

use crate::attribution::{attribution_with, IdentityRelations};
use crate::sql::{quote_ident, quote_literal};
use crate::StoreError;

/// One account's measured signal values, indexed like `model.signals`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSignals {
    /// Workspace id or company domain, by the model's level.
    pub account_id: String,
    /// Values, one per signal.
    pub values: Vec<SignalValue>,
}

/// `TIMESTAMP '…'` for an as-of time.
pub fn timestamp_literal(t: NaiveDateTime) -> String {
    format!(
        "TIMESTAMP {}",
        quote_literal(&t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
    )
}

/// A quoted SQL list for `IN (…)`; `NULL` (which matches nothing) when empty.
pub(crate) fn in_list(items: &[String]) -> String {
    if items.is_empty() {
        return "NULL".into();
    }
    items
        .iter()
        .map(|s| quote_literal(s))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL condition for "the event matches this selector".
pub fn selector_sql(sel: &EventSelector) -> String {
    let mut parts = Vec::new();
    if !sel.events.is_empty() {
        parts.push(format!(
            "(type = 'track' AND event IN ({}))",
            in_list(&sel.events)
        ));
    }
    for p in &sel.pages {
        parts.push(format!(
            "(type IN ('page', 'screen') AND starts_with(path, {}))",
            quote_literal(p)
        ));
    }
    if parts.is_empty() {
        "FALSE".into()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

fn since(as_of: &str, days: u32) -> String {
    format!("timestamp >= {as_of} - INTERVAL {days} DAY")
}

fn json_path(key: &str) -> (String, String) {
    // "properties.plan" → (properties, '$.plan'); a bare key is a property.
    let (col, rest) = match key.split_once('.') {
        Some((c @ ("properties" | "traits" | "context"), rest)) => (c, rest),
        _ => ("properties", key),
    };
    let path = rest
        .split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "")))
        .collect::<Vec<_>>()
        .join(".");
    (col.to_string(), quote_literal(&format!("$.{path}")))
}

/// `properties.x = value` filters, one SQL condition each.
pub(crate) fn event_filter_sql(filters: &[(String, String)]) -> Vec<String> {
    filters
        .iter()
        .map(|(k, v)| {
            let (col, path) = json_path(k);
            format!(
                "json_extract_string({}, {path}) = {}",
                quote_ident(&col),
                quote_literal(v)
            )
        })
        .collect()
}

/// A track event's feature tier: 3 enterprise, 2 advanced, 1 core, 0 none.
pub(crate) fn tier_sql(core: &[String], advanced: &[String], enterprise: &[String]) -> String {
    let tier = |list: &[String], n: u8| {
        if list.is_empty() {
            String::new()
        } else {
            format!("WHEN event IN ({}) THEN {n} ", in_list(list))
        }
    };
    format!(
        "CASE {}{}{}ELSE 0 END",
        tier(enterprise, 3),
        tier(advanced, 2),
        tier(core, 1)
    )
}

/// How one numeric signal is aggregated in two levels: per (account, person) first, then per
/// account. Distinct people become "did this person do it" flags counted at the account level,
/// distinct features a bit mask OR-ed together: cheap aggregates instead of DuckDB's DISTINCT
/// machinery (about twice as fast at 10M events, same values).
pub(crate) struct TwoLevel {
    /// Per-person aggregates, each with its column name.
    pub person: Vec<(String, String)>,
    /// The account-level expression over those columns.
    pub account: String,
}

/// Distinct values of a feature list: a bit mask when it fits in 62 bits, else a list.
fn breadth(name: &str, cond: &str, features: &[String]) -> (Vec<(String, String)>, String) {
    if features.len() <= 62 {
        let mask = features
            .iter()
            .enumerate()
            .map(|(i, f)| format!("WHEN {} THEN {}", quote_literal(f), 1i64 << i))
            .collect::<Vec<_>>()
            .join(" ");
        (
            vec![(
                name.to_string(),
                format!("bit_or(CASE event {mask} ELSE 0 END) FILTER (WHERE {cond})"),
            )],
            format!("bit_count(coalesce(bit_or({name}), 0))"),
        )
    } else {
        (
            vec![(
                name.to_string(),
                format!(
                    "list(DISTINCT event) FILTER (WHERE {cond} AND event IN ({}))",
                    in_list(features)
                ),
            )],
            format!("coalesce(len(list_distinct(flatten(list({name}) FILTER (WHERE {name} IS NOT NULL)))), 0)"),
        )
    }
}

/// The two-level aggregation of signal `i`, or None for traits and recency.
pub(crate) fn two_level(i: usize, kind: &SignalKind, as_of: &str) -> Option<TwoLevel> {
    let col = |k: &str| format!("s{i}_{k}");
    let flag = |k: &str, cond: &str| (col(k), format!("bool_or({cond})"));
    let count = |k: &str, cond: &str| (col(k), format!("count(*) FILTER (WHERE {cond})"));
    let people = |k: &str| format!("count_if({})", col(k));
    let total = |k: &str| format!("coalesce(sum({}), 0)", col(k));
    Some(match kind {
        SignalKind::ActiveUsers { window_days } => TwoLevel {
            person: vec![flag("a", &since(as_of, *window_days))],
            account: people("a"),
        },
        SignalKind::ActiveDays { window_days } => TwoLevel {
            person: vec![(
                col("d"),
                format!(
                    "list(DISTINCT CAST(timestamp AS DATE)) FILTER (WHERE {})",
                    since(as_of, *window_days)
                ),
            )],
            account: format!(
                "coalesce(len(list_distinct(flatten(list({d}) FILTER (WHERE {d} IS NOT NULL)))), 0)",
                d = col("d")
            ),
        },
        SignalKind::EventCount {
            window_days,
            select,
            filters,
        } => {
            let mut cond = vec![since(as_of, *window_days), selector_sql(select)];
            cond.extend(event_filter_sql(filters));
            TwoLevel {
                person: vec![count("n", &cond.join(" AND "))],
                account: total("n"),
            }
        }
        SignalKind::DistinctUsers {
            window_days,
            select,
        } => TwoLevel {
            person: vec![flag(
                "a",
                &format!("{} AND {}", since(as_of, *window_days), selector_sql(select)),
            )],
            account: people("a"),
        },
        SignalKind::Velocity {
            metric,
            recent_days,
            baseline_days,
        } => {
            let (r, b) = (*recent_days, *baseline_days);
            let recent = format!("timestamp >= {as_of} - INTERVAL {r} DAY");
            let base = format!(
                "timestamp >= {as_of} - INTERVAL {} DAY AND timestamp < {as_of} - INTERVAL {r} DAY",
                r + b
            );
            // Events: compared as daily rates, `(recent / r) / (base / b)`, computed as
            // `(recent × b) / (base × r)` so that equal counts give exact ratios.
            // People: distinct people in each window (a team does not grow by being busier).
            let (person, rv, bv, rs, bs) = match metric {
                VelocityMetric::Events => (
                    vec![count("r", &recent), count("b", &base)],
                    total("r"),
                    total("b"),
                    b,
                    r,
                ),
                VelocityMetric::Selected(sel) => {
                    let s = selector_sql(sel);
                    (
                        vec![
                            count("r", &format!("{recent} AND {s}")),
                            count("b", &format!("{base} AND {s}")),
                        ],
                        total("r"),
                        total("b"),
                        b,
                        r,
                    )
                }
                VelocityMetric::ActiveUsers => (
                    vec![flag("r", &recent), flag("b", &base)],
                    people("r"),
                    people("b"),
                    1,
                    1,
                ),
            };
            // From nothing to something counts as +100%.
            TwoLevel {
                person,
                account: format!(
                    "CASE WHEN ({bv}) = 0 THEN CASE WHEN ({rv}) > 0 THEN 100.0 ELSE 0.0 END \
                     ELSE (CAST(({rv}) * {rs} AS DOUBLE) / CAST(({bv}) * {bs} AS DOUBLE) - 1.0) * 100.0 END"
                ),
            }
        }
        SignalKind::FeatureBreadth {
            window_days,
            features,
        } => {
            let cond = format!("{} AND type = 'track'", since(as_of, *window_days));
            let (person, account) = breadth(&col("f"), &cond, features);
            TwoLevel { person, account }
        }
        SignalKind::FeatureTier {
            window_days,
            core,
            advanced,
            enterprise,
        } => TwoLevel {
            person: vec![(
                col("t"),
                format!(
                    "max({}) FILTER (WHERE {} AND type = 'track')",
                    tier_sql(core, advanced, enterprise),
                    since(as_of, *window_days)
                ),
            )],
            account: format!("coalesce(max({}), 0)", col("t")),
        },
        SignalKind::Trait { .. } | SignalKind::Recency => return None,
    })
}

/// The longest look-back any numeric signal needs, in days.
pub(crate) fn max_window(model: &Model) -> u32 {
    model
        .signals
        .iter()
        .map(|s| match &s.kind {
            SignalKind::ActiveUsers { window_days }
            | SignalKind::ActiveDays { window_days }
            | SignalKind::EventCount { window_days, .. }
            | SignalKind::DistinctUsers { window_days, .. }
            | SignalKind::FeatureBreadth { window_days, .. }
            | SignalKind::FeatureTier { window_days, .. } => *window_days,
            SignalKind::Velocity {
                recent_days,
                baseline_days,
                ..
            } => recent_days + baseline_days,
            SignalKind::Trait { .. } | SignalKind::Recency => 0,
        })
        .max()
        .unwrap_or(0)
}

pub(crate) fn account_column(level: Level) -> &'static str {
    match level {
        Level::Workspace => "workspace_id",
        Level::Company => "company_id",
    }
}

/// Measures every signal of `model` for every account with events before `as_of` (or only
/// `accounts`, when given).
pub fn measure(
    conn: &Connection,
    model: &Model,
    as_of: NaiveDateTime,
    accounts: Option<&[String]>,
) -> Result<Vec<AccountSignals>, StoreError> {
    measure_with(conn, model, as_of, accounts, true)
}

/// [`measure`], choosing whether scoring every account as of a midnight may use (and create
/// or extend) the daily rollup; without it every signal reads raw events (the reference the
/// rollup is tested against).
pub fn measure_with(
    conn: &Connection,
    model: &Model,
    as_of: NaiveDateTime,
    accounts: Option<&[String]>,
    use_rollup: bool,
) -> Result<Vec<AccountSignals>, StoreError> {
    let at = timestamp_literal(as_of);
    let acct = account_column(model.level);
    let window = max_window(model).max(1);
    // The columns the signals read. Properties are kept only when a signal filters on them.
    let needs_properties = model
        .signals
        .iter()
        .any(|s| matches!(&s.kind, SignalKind::EventCount { filters, .. } if !filters.is_empty()));
    let columns = format!(
        "{acct} AS account_id, person, timestamp, type, event,
         CASE WHEN type IN ('page', 'screen')
              THEN coalesce(json_extract_string(properties, '$.path'), name) END AS path,
         {} AS properties,
         CASE WHEN type IN ('identify', 'group') THEN traits END AS traits",
        if needs_properties {
            "properties"
        } else {
            "NULL::JSON"
        }
    );
    let mut values: HashMap<String, Vec<SignalValue>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    match accounts {
        Some([]) => return Ok(Vec::new()),
        Some(list) => return crate::few::measure_few(conn, model, as_of, list),
        // Every account: one query for every account's last event (recency), one aggregate
        // query for the numeric signals (over the longest window's events, or the daily rollup
        // and the events it does not cover), and the identify / group calls for traits.
        None => {
            // The identity views (aliases and memberships joined, companies grouped) are read
            // by each of the three attributions below: computed once into small tables.
            let started = std::time::Instant::now();
            let identity = snapshot_identity(conn, model.level == Level::Company)?;
            debug_elapsed(started, "identity snapshot");
            // Each attribution reads only the events it needs: the scan's filters (time,
            // call type) are applied before the identity joins, not after.
            let attributed = |events: &str| {
                format!(
                    "({}) AS attributed WHERE {acct} IS NOT NULL",
                    attribution_with(&format!("({events})"), &identity)
                )
            };
            // Recency: an event that carries its group is placed by its ids alone (at workspace
            // level by the group alone), so those are first reduced to their latest time per
            // group (and user and anonymous id, for companies); events without a group are
            // placed by time and go through one by one.
            let grouped_by = match model.level {
                Level::Workspace => {
                    "group_id, NULL::VARCHAR AS user_id, NULL::VARCHAR AS anonymous_id"
                }
                Level::Company => "group_id, user_id, anonymous_id",
            };
            // As of a midnight the signals read the daily rollup (created or extended here
            // when enough events arrived), plus the events it does not cover.
            let rollup = if use_rollup && crate::rollup::is_midnight(as_of) {
                crate::rollup::current(conn, model)?
            } else {
                None
            };
            let grouped_latest = match &rollup {
                // The rollup's grouped events (its days before as-of are all before as-of),
                // and the grouped events that arrived after it.
                Some(r) => format!(
                    "SELECT {grouped_by}, max(last_ts) AS timestamp FROM {table}
                     WHERE day < CAST({at} AS DATE) GROUP BY ALL
                     UNION ALL
                     SELECT {grouped_by}, max(timestamp) AS timestamp FROM events
                     WHERE group_id IS NOT NULL AND seq > {through} AND timestamp < {at} GROUP BY ALL",
                    table = r.table,
                    through = r.through_seq
                ),
                None => format!(
                    "SELECT {grouped_by}, max(timestamp) AS timestamp FROM events
                     WHERE group_id IS NOT NULL AND timestamp < {at} GROUP BY ALL"
                ),
            };
            let latest = format!(
                "({grouped_latest}
                  UNION ALL
                  SELECT group_id, user_id, anonymous_id, timestamp FROM events
                  WHERE group_id IS NULL AND timestamp < {at})"
            );
            let started = std::time::Instant::now();
            accounts_and_recency(
                conn,
                model,
                &format!(
                    "SELECT {acct}, max(timestamp) FROM ({}) AS attributed WHERE {acct} IS NOT NULL GROUP BY 1",
                    attribution_with(&latest, &identity)
                ),
                as_of,
                &mut values,
                &mut order,
            )?;
            debug_elapsed(started, "accounts and recency");
            // The numeric signals stream over the attributed events of the longest window
            // (materializing them first would cost as much again), or the rollup's days and
            // the events it does not cover; traits read the identify / group calls, kept in a
            // small table.
            let started = std::time::Instant::now();
            if let Some(rollup) = &rollup {
                crate::rollup::numeric_sql(
                    conn,
                    model,
                    as_of,
                    window,
                    rollup,
                    &identity,
                    &mut values,
                )?;
            } else {
                let window_events = attributed(&format!(
                    "SELECT * FROM events WHERE timestamp >= {at} - INTERVAL {window} DAY AND timestamp < {at}"
                ));
                let source = format!("(SELECT {columns} FROM {window_events}) AS window_events");
                numeric_sql(conn, model, &at, window, &source, &mut values)?;
            }
            debug_elapsed(started, "numeric signals");
            let started = std::time::Instant::now();
            conn.execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE scoring_events AS SELECT {columns} FROM {}",
                attributed(&format!(
                    "SELECT * FROM events WHERE type IN ('identify', 'group') AND timestamp < {at}"
                ))
            ))?;
            debug_elapsed(started, "trait calls");
        }
    }
    let started = std::time::Instant::now();
    traits_sql(conn, model, &mut values)?;
    debug_elapsed(started, "traits");
    // The pass's temporary tables are not needed after it (a connection keeps them otherwise).
    let started = std::time::Instant::now();
    conn.execute_batch(
        "DROP TABLE IF EXISTS temp.scoring_events;
         DROP TABLE IF EXISTS temp.scoring_person_ids;
         DROP TABLE IF EXISTS temp.scoring_person_memberships;
         DROP TABLE IF EXISTS temp.scoring_workspace_companies;
         DROP TABLE IF EXISTS temp.scoring_person_companies;",
    )?;
    debug_elapsed(started, "temporary tables dropped");
    Ok(order
        .into_iter()
        .filter_map(|id| {
            values.remove(&id).map(|values| AccountSignals {
                account_id: id,
                values,
            })
        })
        .collect())
}

/// Copies of the identity views into temporary tables, for one scoring pass that reads them
/// several times (they are small: one row per alias, membership and company person).
fn snapshot_identity(
    conn: &Connection,
    with_company: bool,
) -> Result<IdentityRelations, StoreError> {
    let mut sql = String::from(
        "CREATE OR REPLACE TEMP TABLE scoring_person_ids AS SELECT * FROM person_ids;
         CREATE OR REPLACE TEMP TABLE scoring_person_memberships AS SELECT * FROM person_memberships;",
    );
    if with_company {
        sql.push_str(
            "CREATE OR REPLACE TEMP TABLE scoring_workspace_companies AS SELECT * FROM workspace_companies;
             CREATE OR REPLACE TEMP TABLE scoring_person_companies AS SELECT * FROM person_companies;",
        );
    }
    conn.execute_batch(&sql)?;
    Ok(IdentityRelations {
        person_ids: "temp.scoring_person_ids".into(),
        person_memberships: "temp.scoring_person_memberships".into(),
        companies: with_company.then(|| {
            (
                "temp.scoring_workspace_companies".into(),
                "temp.scoring_person_companies".into(),
            )
        }),
    })
}

pub(crate) fn debug_elapsed(started: std::time::Instant, step: &str) {
    tracing::debug!(ms = started.elapsed().as_millis() as u64, step, "measure");
}

/// Every account `sql` (account, last event time) returns, in order, with its recency and
/// zeros for the rest.
fn accounts_and_recency(
    conn: &Connection,
    model: &Model,
    sql: &str,
    as_of: NaiveDateTime,
    values: &mut HashMap<String, Vec<SignalValue>>,
    order: &mut Vec<String>,
) -> Result<(), StoreError> {
    tracing::trace!(%sql, "accounts and recency");
    let mut stmt = conn.prepare(&format!("{sql} ORDER BY 1"))?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let id: String = r.get(0)?;
        let last: NaiveDateTime = r.get(1)?;
        // DuckDB's date_diff('day', …): day boundaries crossed.
        let recency = (as_of.date() - last.date()).num_days();
        let row = model
            .signals
            .iter()
            .map(|s| match s.kind {
                SignalKind::Recency => SignalValue::Number(recency as f64),
                SignalKind::Trait { .. } => SignalValue::Text(None),
                _ => SignalValue::Number(0.0),
            })
            .collect();
        values.insert(id.clone(), row);
        order.push(id);
    }
    Ok(())
}

/// The numeric signals of every account in `source` (attributed events with the scoring
/// columns), in one aggregate query.
fn numeric_sql(
    conn: &Connection,
    model: &Model,
    at: &str,
    window: u32,
    source: &str,
    values: &mut HashMap<String, Vec<SignalValue>>,
) -> Result<(), StoreError> {
    let numeric: Vec<(usize, TwoLevel)> = model
        .signals
        .iter()
        .enumerate()
        .filter_map(|(i, s)| two_level(i, &s.kind, at).map(|t| (i, t)))
        .collect();
    if numeric.is_empty() {
        return Ok(());
    }
    let per_person = numeric
        .iter()
        .flat_map(|(_, t)| t.person.iter())
        .map(|(name, agg)| format!("{agg} AS {name}"))
        .collect::<Vec<_>>()
        .join(",\n              ");
    let cols = numeric
        .iter()
        .map(|(_, t)| format!("CAST({} AS DOUBLE)", t.account))
        .collect::<Vec<_>>()
        .join(",\n       ");
    let sql = format!(
        "WITH per_person AS (
            SELECT account_id, person,
              {per_person}
            FROM {source} WHERE timestamp >= {at} - INTERVAL {window} DAY GROUP BY account_id, person
        )
        SELECT account_id,\n       {cols}\nFROM per_person GROUP BY account_id"
    );
    tracing::trace!(%sql, "numeric signals");
    let indices: Vec<usize> = numeric.iter().map(|(i, _)| *i).collect();
    fill_numeric(conn, &sql, &indices, values)
}

/// Runs `sql` (account id, then one DOUBLE per numeric signal in `indices` order) and stores
/// the values of the accounts already in `values`.
pub(crate) fn fill_numeric(
    conn: &Connection,
    sql: &str,
    indices: &[usize],
    values: &mut HashMap<String, Vec<SignalValue>>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let id: String = r.get(0)?;
        if let Some(row) = values.get_mut(&id) {
            for (col, i) in indices.iter().enumerate() {
                let v: Option<f64> = r.get(col + 1)?;
                row[*i] = SignalValue::Number(v.unwrap_or(0.0));
            }
        }
    }
    Ok(())
}

/// Traits: the most common value the account's identify / group calls declared before as-of
/// (from `temp.scoring_events`, which holds at least those calls), ties to the smallest.
fn traits_sql(
    conn: &Connection,
    model: &Model,
    values: &mut HashMap<String, Vec<SignalValue>>,
) -> Result<(), StoreError> {
    for (i, s) in model.signals.iter().enumerate() {
        let SignalKind::Trait { name } = &s.kind else {
            continue;
        };
        let path = quote_literal(&format!("$.\"{}\"", name.replace('"', "")));
        // The most common value; a tie goes to the smallest, so that every path (and any
        // order of rows) gives the same answer.
        let sql = format!(
            "SELECT account_id, first(v ORDER BY n DESC, v) FROM (
                SELECT account_id, v, count(*) AS n FROM (
                    SELECT account_id, json_extract_string(traits, {path}) AS v
                    FROM temp.scoring_events WHERE traits IS NOT NULL
                ) WHERE v IS NOT NULL GROUP BY 1, 2
             ) GROUP BY 1"
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            let id: String = r.get(0)?;
            let v: Option<String> = r.get(1)?;
            if let Some(row) = values.get_mut(&id) {
                row[i] = SignalValue::Text(v);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_quote_hostile_names() {
        let sel = EventSelector {
            events: vec!["x'); DROP TABLE events; --".into()],
            pages: vec!["/a'b".into()],
        };
        let sql = selector_sql(&sel);
        assert_eq!(sql, "((type = 'track' AND event IN ('x''); DROP TABLE events; --')) OR (type IN ('page', 'screen') AND starts_with(path, '/a''b')))");
    }

    #[test]
    fn json_paths_are_quoted() {
        assert_eq!(
            json_path("properties.plan"),
            ("properties".into(), "'$.\"plan\"'".into())
        );
        assert_eq!(
            json_path("seats"),
            ("properties".into(), "'$.\"seats\"'".into())
        );
        assert_eq!(
            json_path("traits.o'x"),
            ("traits".into(), "'$.\"o''x\"'".into())
        );
    }
}

//! Measuring a model's signals over the stored events, as of any moment, in SQL generated from
//! the model. Only events strictly before the as-of time are read, so a score computed for a
//! past date is the score upmarket would have shown that day (no leakage into backtests).
//!
//! Every name and value from the model reaches SQL through [`crate::sql`]'s quoting.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use duckdb::Connection;
use upmarket_core::model::{EventSelector, Level, Model, SignalKind, SignalValue, VelocityMetric};

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

fn in_list(items: &[String]) -> String {
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

/// The aggregate expression measuring one numeric signal over `scoring_events`.
fn aggregate(kind: &SignalKind, as_of: &str) -> Option<String> {
    Some(match kind {
        SignalKind::ActiveUsers { window_days } => format!(
            "count(DISTINCT person) FILTER (WHERE {})",
            since(as_of, *window_days)
        ),
        SignalKind::ActiveDays { window_days } => format!(
            "count(DISTINCT CAST(timestamp AS DATE)) FILTER (WHERE {})",
            since(as_of, *window_days)
        ),
        SignalKind::EventCount {
            window_days,
            select,
            filters,
        } => {
            let mut cond = vec![since(as_of, *window_days), selector_sql(select)];
            for (k, v) in filters {
                let (col, path) = json_path(k);
                cond.push(format!(
                    "json_extract_string({}, {path}) = {}",
                    quote_ident(&col),
                    quote_literal(v)
                ));
            }
            format!("count(*) FILTER (WHERE {})", cond.join(" AND "))
        }
        SignalKind::DistinctUsers {
            window_days,
            select,
        } => format!(
            "count(DISTINCT person) FILTER (WHERE {} AND {})",
            since(as_of, *window_days),
            selector_sql(select)
        ),
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
            let (rv, bv, rs, bs) = match metric {
                VelocityMetric::Events => (
                    format!("count(*) FILTER (WHERE {recent})"),
                    format!("count(*) FILTER (WHERE {base})"),
                    b,
                    r,
                ),
                VelocityMetric::Selected(sel) => {
                    let s = selector_sql(sel);
                    (
                        format!("count(*) FILTER (WHERE {recent} AND {s})"),
                        format!("count(*) FILTER (WHERE {base} AND {s})"),
                        b,
                        r,
                    )
                }
                VelocityMetric::ActiveUsers => (
                    format!("count(DISTINCT person) FILTER (WHERE {recent})"),
                    format!("count(DISTINCT person) FILTER (WHERE {base})"),
                    1,
                    1,
                ),
            };
            // From nothing to something counts as +100%.
            format!(
                "CASE WHEN ({bv}) = 0 THEN CASE WHEN ({rv}) > 0 THEN 100.0 ELSE 0.0 END \
                 ELSE (CAST(({rv}) * {rs} AS DOUBLE) / CAST(({bv}) * {bs} AS DOUBLE) - 1.0) * 100.0 END"
            )
        }
        SignalKind::FeatureBreadth {
            window_days,
            features,
        } => {
            format!(
                "count(DISTINCT event) FILTER (WHERE {} AND type = 'track' AND event IN ({}))",
                since(as_of, *window_days),
                in_list(features)
            )
        }
        SignalKind::FeatureTier {
            window_days,
            core,
            advanced,
            enterprise,
        } => {
            let tier = |list: &Vec<String>, n: u8| {
                if list.is_empty() {
                    String::new()
                } else {
                    format!("WHEN event IN ({}) THEN {n} ", in_list(list))
                }
            };
            format!(
                "coalesce(max(CASE {}{}{}ELSE 0 END) FILTER (WHERE {} AND type = 'track'), 0)",
                tier(enterprise, 3),
                tier(advanced, 2),
                tier(core, 1),
                since(as_of, *window_days)
            )
        }
        SignalKind::Trait { .. } | SignalKind::Recency => return None,
    })
}

/// The longest look-back any numeric signal needs, in days.
fn max_window(model: &Model) -> u32 {
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

fn account_column(level: Level) -> &'static str {
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
    let at = timestamp_literal(as_of);
    let acct = account_column(model.level);
    let only = match accounts {
        Some(list) if list.is_empty() => return Ok(Vec::new()),
        Some(list) => format!(" AND {acct} IN ({})", in_list(list)),
        None => String::new(),
    };
    // One pass over the events before as-of, attributed once; every query below reads it.
    // Properties are kept only when a signal filters on them, traits only for identify / group.
    let needs_properties = model
        .signals
        .iter()
        .any(|s| matches!(&s.kind, SignalKind::EventCount { filters, .. } if !filters.is_empty()));
    conn.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE scoring_events AS
         SELECT {acct} AS account_id, person, timestamp, type, event,
                coalesce(json_extract_string(properties, '$.path'), name) AS path,
                {} AS properties,
                CASE WHEN type IN ('identify', 'group') THEN traits END AS traits
         FROM event_attribution
         WHERE timestamp < {at} AND {acct} IS NOT NULL{only}",
        if needs_properties {
            "properties"
        } else {
            "NULL::JSON"
        }
    ))?;
    // Every account with any event before as-of, and when it was last active.
    let mut rows: HashMap<String, Vec<SignalValue>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    {
        let sql = format!("SELECT account_id, date_diff('day', max(timestamp), {at}) FROM temp.scoring_events GROUP BY 1 ORDER BY 1");
        let mut stmt = conn.prepare(&sql)?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            let id: String = r.get(0)?;
            let recency: i64 = r.get(1)?;
            let values = model
                .signals
                .iter()
                .map(|s| match s.kind {
                    SignalKind::Recency => SignalValue::Number(recency as f64),
                    SignalKind::Trait { .. } => SignalValue::Text(None),
                    _ => SignalValue::Number(0.0),
                })
                .collect();
            rows.insert(id.clone(), values);
            order.push(id);
        }
    }
    // Numeric signals: one aggregate query.
    let numeric: Vec<(usize, String)> = model
        .signals
        .iter()
        .enumerate()
        .filter_map(|(i, s)| aggregate(&s.kind, &at).map(|a| (i, a)))
        .collect();
    if !numeric.is_empty() {
        let cols = numeric
            .iter()
            .map(|(_, a)| format!("CAST({a} AS DOUBLE)"))
            .collect::<Vec<_>>()
            .join(",\n       ");
        let window = max_window(model).max(1);
        let mut stmt = conn.prepare(&format!(
            "SELECT account_id,\n       {cols}\nFROM temp.scoring_events WHERE timestamp >= {at} - INTERVAL {window} DAY GROUP BY account_id"
        ))?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            let id: String = r.get(0)?;
            if let Some(values) = rows.get_mut(&id) {
                for (col, (i, _)) in numeric.iter().enumerate() {
                    let v: Option<f64> = r.get(col + 1)?;
                    values[*i] = SignalValue::Number(v.unwrap_or(0.0));
                }
            }
        }
    }
    // Traits: the most common value the account's identify / group calls declared before as-of.
    for (i, s) in model.signals.iter().enumerate() {
        let SignalKind::Trait { name } = &s.kind else {
            continue;
        };
        let path = quote_literal(&format!("$.\"{}\"", name.replace('"', "")));
        let sql = format!(
            "SELECT account_id, mode(v) FROM (
                SELECT account_id, json_extract_string(traits, {path}) AS v FROM temp.scoring_events
                WHERE traits IS NOT NULL
             ) WHERE v IS NOT NULL GROUP BY 1"
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut q = stmt.query([])?;
        while let Some(r) = q.next()? {
            let id: String = r.get(0)?;
            let v: Option<String> = r.get(1)?;
            if let Some(values) = rows.get_mut(&id) {
                values[i] = SignalValue::Text(v);
            }
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|id| {
            rows.remove(&id).map(|values| AccountSignals {
                account_id: id,
                values,
            })
        })
        .collect())
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

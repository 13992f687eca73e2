//! Persisting scores: the current score per account (with its explanation), one score per
//! account per day (history), and every tier change.

use chrono::{NaiveDate, NaiveDateTime};
use duckdb::{params, Connection};
use upmarket_core::model::{Level, Model, ScoreDetails};

use crate::StoreError;

/// A stored score.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredScore {
    /// Workspace id or company domain.
    pub account_id: String,
    /// When it was computed for.
    pub as_of: NaiveDateTime,
    /// The explained score.
    pub details: ScoreDetails,
}

/// A day of an account's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryPoint {
    /// The day (score as of the end of it).
    pub day: NaiveDate,
    /// Score.
    pub score: f64,
    /// Tier.
    pub tier: String,
}

/// A recorded tier change.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TierChange {
    /// When it was seen.
    pub at: NaiveDateTime,
    /// Account.
    pub account_id: String,
    /// Previous tier (none for a first score).
    pub from_tier: Option<String>,
    /// New tier.
    pub to_tier: String,
    /// Score at the change.
    pub score: f64,
}

pub(crate) fn level_str(level: Level) -> &'static str {
    match level {
        Level::Workspace => "workspace",
        Level::Company => "company",
    }
}

/// Stages `scores` in `temp.new_scores`; the explanations (serialized, the costly part) only
/// `with_details` (history keeps none).
fn stage(
    conn: &Connection,
    model: &Model,
    as_of: NaiveDateTime,
    scores: &[(String, ScoreDetails)],
    with_details: bool,
) -> Result<(), StoreError> {
    // Created once per connection and emptied: re-creating it was a catalog change on every
    // re-scoring.
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS new_scores (level VARCHAR, account_id VARCHAR, model_name VARCHAR, model_version INTEGER,
         as_of TIMESTAMP, score DOUBLE, tier VARCHAR, pqa BOOLEAN, details VARCHAR);
         DELETE FROM temp.new_scores;",
    )?;
    let mut app = conn.appender_to_catalog_and_db("new_scores", "temp", "main")?;
    let level = level_str(model.level);
    for (account, d) in scores {
        app.append_row(params![
            level,
            account,
            model.name,
            model.version,
            as_of,
            d.score,
            d.tier,
            d.pqa,
            if with_details {
                Some(serde_json::to_string(d)?)
            } else {
                None
            }
        ])?;
    }
    app.flush()?;
    Ok(())
}

fn in_transaction<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    match f() {
        Ok(v) => {
            conn.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Saves current scores; records a tier change for every account whose tier moved (a first
/// score counts as entering its tier). Returns the changes. Set-based: one statement each.
pub fn save_current(
    conn: &Connection,
    model: &Model,
    as_of: NaiveDateTime,
    scores: &[(String, ScoreDetails)],
) -> Result<Vec<TierChange>, StoreError> {
    let started = std::time::Instant::now();
    stage(conn, model, as_of, scores, true)?;
    let saved = in_transaction(conn, || {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO tier_changes
             SELECT n.as_of, n.level, n.account_id, n.model_name, n.model_version, c.tier, n.tier, n.score
             FROM temp.new_scores n
             LEFT JOIN current_scores c USING (level, account_id, model_name, model_version)
             WHERE c.tier IS DISTINCT FROM n.tier
             RETURNING changed_at, account_id, from_tier, to_tier, score",
        )?;
        let changes = stmt
            .query_map([], tier_change)?
            .collect::<Result<Vec<_>, _>>()?;
        conn.execute_batch(
            "INSERT OR REPLACE INTO current_scores
             SELECT level, account_id, model_name, model_version, as_of, score, tier, pqa, details::JSON FROM temp.new_scores",
        )?;
        Ok(changes)
    })?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        accounts = scores.len(),
        "current scores saved"
    );
    Ok(saved)
}

/// A `tier_changes` row selected as changed_at, account_id, from_tier, to_tier, score.
fn tier_change(r: &duckdb::Row<'_>) -> duckdb::Result<TierChange> {
    Ok(TierChange {
        at: r.get(0)?,
        account_id: r.get(1)?,
        from_tier: r.get(2)?,
        to_tier: r.get(3)?,
        score: r.get(4)?,
    })
}

/// The latest tier changes of a model version, newest first.
pub fn tier_changes(
    conn: &Connection,
    model: &Model,
    limit: usize,
) -> Result<Vec<TierChange>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT changed_at, account_id, from_tier, to_tier, score FROM tier_changes
         WHERE level = ? AND model_name = ? AND model_version = ?
         ORDER BY changed_at DESC, account_id LIMIT ?",
    )?;
    let rows = stmt.query_map(
        params![
            level_str(model.level),
            model.name,
            model.version,
            limit as i64
        ],
        tier_change,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Saves one day of history for these accounts (replacing their earlier score of that day).
pub fn save_history(
    conn: &Connection,
    model: &Model,
    day: NaiveDate,
    scores: &[(String, ScoreDetails)],
) -> Result<(), StoreError> {
    stage(
        conn,
        model,
        day.and_time(chrono::NaiveTime::MIN),
        scores,
        false,
    )?;
    in_transaction(conn, || {
        conn.execute_batch(
            "INSERT OR REPLACE INTO score_history
             SELECT CAST(as_of AS DATE), level, account_id, model_name, model_version, score, tier, pqa FROM temp.new_scores",
        )?;
        Ok(())
    })
}

/// Current scores of a model version, highest first, optionally for one tier.
pub fn current(
    conn: &Connection,
    model: &Model,
    tier: Option<&str>,
    account: Option<&str>,
) -> Result<Vec<StoredScore>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT account_id, as_of, details::VARCHAR FROM current_scores
         WHERE level = ? AND model_name = ? AND model_version = ? AND (? IS NULL OR tier = ?)
           AND (? IS NULL OR account_id = ?)
         ORDER BY score DESC, account_id",
    )?;
    let rows = stmt.query_map(
        params![
            level_str(model.level),
            model.name,
            model.version,
            tier,
            tier,
            account,
            account
        ],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, NaiveDateTime>(1)?,
                r.get::<_, String>(2)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (account_id, as_of, json) = row?;
        let details: ScoreDetails = serde_json::from_str(&json)?;
        out.push(StoredScore {
            account_id,
            as_of,
            details,
        });
    }
    Ok(out)
}

/// An account's daily history under a model version, oldest first.
pub fn history(
    conn: &Connection,
    model: &Model,
    account: &str,
) -> Result<Vec<HistoryPoint>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT day, score, tier FROM score_history WHERE level = ? AND account_id = ? AND model_name = ? AND model_version = ? ORDER BY day",
    )?;
    let rows = stmt.query_map(
        params![level_str(model.level), account, model.name, model.version],
        |r| {
            Ok(HistoryPoint {
                day: r.get(0)?,
                score: r.get(1)?,
                tier: r.get(2)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

//! Persisting scores: the current score per account (with its explanation), one score per
//! account per day (history), and every tier change.

use chrono::{NaiveDate, NaiveDateTime};
use duckdb::{params, Connection, OptionalExt};
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

/// Saves current scores; records a tier change for every account whose tier moved. Returns the
/// changes.
pub fn save_current(conn: &Connection, model: &Model, as_of: NaiveDateTime, scores: &[(String, ScoreDetails)]) -> Result<Vec<TierChange>, StoreError> {
    let level = level_str(model.level);
    let mut changes = Vec::new();
    conn.execute_batch("BEGIN TRANSACTION")?;
    let result = (|| -> Result<(), StoreError> {
        let mut previous = conn.prepare_cached("SELECT tier FROM current_scores WHERE level = ? AND account_id = ? AND model_name = ? AND model_version = ?")?;
        let mut upsert = conn.prepare_cached(
            "INSERT OR REPLACE INTO current_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?::JSON)",
        )?;
        let mut change = conn.prepare_cached("INSERT INTO tier_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?)")?;
        for (account, d) in scores {
            let before: Option<String> = previous.query_row(params![level, account, model.name, model.version], |r| r.get(0)).optional()?;
            upsert.execute(params![level, account, model.name, model.version, as_of, d.score, d.tier, d.pqa, serde_json::to_string(d)?])?;
            if before.as_deref() != Some(d.tier.as_str()) {
                change.execute(params![as_of, level, account, model.name, model.version, before, d.tier, d.score])?;
                changes.push(TierChange { at: as_of, account_id: account.clone(), from_tier: before, to_tier: d.tier.clone(), score: d.score });
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            conn.execute_batch("COMMIT")?;
            Ok(changes)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Saves one day of history for these accounts (replacing their earlier score of that day).
pub fn save_history(conn: &Connection, model: &Model, day: NaiveDate, scores: &[(String, ScoreDetails)]) -> Result<(), StoreError> {
    let level = level_str(model.level);
    conn.execute_batch("BEGIN TRANSACTION")?;
    let result = (|| -> Result<(), StoreError> {
        let mut stmt = conn.prepare_cached("INSERT OR REPLACE INTO score_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)")?;
        for (account, d) in scores {
            stmt.execute(params![day, level, account, model.name, model.version, d.score, d.tier, d.pqa])?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Current scores of a model version, highest first, optionally for one tier.
pub fn current(conn: &Connection, model: &Model, tier: Option<&str>) -> Result<Vec<StoredScore>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT account_id, as_of, details::VARCHAR FROM current_scores
         WHERE level = ? AND model_name = ? AND model_version = ? AND (? IS NULL OR tier = ?)
         ORDER BY score DESC, account_id",
    )?;
    let rows = stmt.query_map(params![level_str(model.level), model.name, model.version, tier, tier], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, NaiveDateTime>(1)?, r.get::<_, String>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (account_id, as_of, json) = row?;
        let details: ScoreDetails = serde_json::from_str(&json)?;
        out.push(StoredScore { account_id, as_of, details });
    }
    Ok(out)
}

/// An account's daily history under a model version, oldest first.
pub fn history(conn: &Connection, model: &Model, account: &str) -> Result<Vec<HistoryPoint>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT day, score, tier FROM score_history WHERE level = ? AND account_id = ? AND model_name = ? AND model_version = ? ORDER BY day",
    )?;
    let rows = stmt.query_map(params![level_str(model.level), account, model.name, model.version], |r| Ok(HistoryPoint { day: r.get(0)?, score: r.get(1)?, tier: r.get(2)? }))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

//! The read REST API: ranked accounts and one account with its explanation and history.
//! Every route needs a read token (`Authorization: Bearer …`); write keys cannot read.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use upmarket_store::{HistoryPoint, StoredScore};

use crate::error::ApiError;
use crate::AppState;

/// Checks the read token.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = crate::ingest::body::auth_key(headers) else {
        return Err(ApiError::MissingKey("read token"));
    };
    if state.config.read_tokens.contains(&token) {
        Ok(())
    } else if state.config.write_keys.contains(&token) {
        Err(ApiError::Forbidden(
            "a write key cannot read: use a read token (api.read_tokens)".into(),
        ))
    } else {
        Err(ApiError::InvalidKey("read token"))
    }
}

/// Query of `GET /api/accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsQuery {
    /// Only this tier.
    pub tier: Option<String>,
    /// Only scores at or above.
    pub min_score: Option<f64>,
    /// Only PQAs.
    pub pqa: Option<bool>,
    /// "score" (default) or "account".
    pub sort: Option<String>,
    /// "desc" (default) or "asc".
    pub order: Option<String>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<usize>,
    /// Rows to skip.
    pub offset: Option<usize>,
}

/// One row of the account list.
#[derive(Debug, Serialize)]
pub struct AccountRow {
    /// Workspace id or company domain.
    pub account_id: String,
    /// 0–100.
    pub score: f64,
    /// Tier name.
    pub tier: String,
    /// At or above the PQA threshold.
    pub pqa: bool,
    /// The explanation in one line.
    pub summary: String,
    /// When the score was computed for.
    pub as_of: chrono::NaiveDateTime,
}

/// Body of `GET /api/accounts`.
#[derive(Debug, Serialize)]
pub struct AccountsPage {
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: u32,
    /// "workspace" or "company".
    pub level: upmarket_core::model::Level,
    /// Accounts matching the filters (before paging).
    pub total: usize,
    /// This page.
    pub accounts: Vec<AccountRow>,
}

async fn session_call<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn upmarket_store::StoreSession) -> Result<T, upmarket_store::StoreError>
        + Send
        + 'static,
) -> Result<T, ApiError> {
    let sessions = state.sessions.clone();
    tokio::task::spawn_blocking(move || {
        let session = sessions.take()?;
        let out = f(session.as_ref());
        sessions.give_back(session);
        out
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "read task failed");
        ApiError::Internal
    })?
    .map_err(|e| {
        tracing::error!(error = %e, "read failed");
        ApiError::Internal
    })
}

/// `GET /api/accounts`.
pub async fn accounts(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<AccountsQuery>, QueryRejection>,
) -> Result<Json<AccountsPage>, ApiError> {
    authorize(&state, &headers)?;
    // Axum's own rejection is plain text; answer in the API's error shape, naming the problem.
    let Query(q) = query
        .map_err(|e| ApiError::InvalidRequest(format!("bad query string: {}", e.body_text())))?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::InvalidRequest(
            "`limit` must be between 1 and 1000".into(),
        ));
    }
    let sort = q.sort.as_deref().unwrap_or("score");
    if !matches!(sort, "score" | "account") {
        return Err(ApiError::InvalidRequest(format!(
            "`sort` must be \"score\" or \"account\", got {sort:?}"
        )));
    }
    let desc = match q.order.as_deref().unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => {
            return Err(ApiError::InvalidRequest(format!(
                "`order` must be \"asc\" or \"desc\", got {other:?}"
            )))
        }
    };
    let model = state.config.model.clone();
    let tier = q.tier.clone();
    if let Some(t) = &tier {
        if !model.tiers.iter().any(|x| &x.name == t) {
            let names: Vec<&str> = model.tiers.iter().map(|t| t.name.as_str()).collect();
            return Err(ApiError::InvalidRequest(format!(
                "unknown tier {t:?}; this model's tiers: {}",
                names.join(", ")
            )));
        }
    }
    let m = model.clone();
    let mut rows: Vec<StoredScore> =
        session_call(&state, move |s| s.current_scores(&m, tier.as_deref())).await?;
    rows.retain(|r| {
        q.min_score.is_none_or(|min| r.details.score >= min)
            && q.pqa.is_none_or(|p| r.details.pqa == p)
    });
    match (sort, desc) {
        ("account", false) => rows.sort_by(|a, b| a.account_id.cmp(&b.account_id)),
        ("account", true) => rows.sort_by(|a, b| b.account_id.cmp(&a.account_id)),
        (_, false) => rows.reverse(),
        _ => {}
    }
    let total = rows.len();
    let accounts = rows
        .into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .map(|r| AccountRow {
            account_id: r.account_id,
            score: r.details.score,
            tier: r.details.tier,
            pqa: r.details.pqa,
            summary: r.details.summary,
            as_of: r.as_of,
        })
        .collect();
    Ok(Json(AccountsPage {
        model: model.name.clone(),
        model_version: model.version,
        level: model.level,
        total,
        accounts,
    }))
}

/// Body of `GET /api/accounts/{id}`.
#[derive(Debug, Serialize)]
pub struct AccountDetail {
    /// Workspace id or company domain.
    pub account_id: String,
    /// When the score was computed for.
    pub as_of: chrono::NaiveDateTime,
    /// The explained score.
    pub score: upmarket_core::model::ScoreDetails,
    /// Daily history, oldest first.
    pub history: Vec<HistoryPoint>,
}

/// `GET /api/accounts/{id}`.
pub async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<AccountDetail>, ApiError> {
    authorize(&state, &headers)?;
    let model = state.config.model.clone();
    let wanted = id.clone();
    let (current, history) = session_call(&state, move |s| {
        let current = s.current_score(&model, &wanted)?;
        let history = s.history(&model, &wanted)?;
        Ok((current, history))
    })
    .await?;
    let Some(current) = current else {
        return Err(ApiError::AccountNotFound(id));
    };
    Ok(Json(AccountDetail {
        account_id: current.account_id,
        as_of: current.as_of,
        score: current.details,
        history,
    }))
}

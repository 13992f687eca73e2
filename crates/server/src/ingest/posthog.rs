//! PostHog capture: `POST /batch/`, `/capture/`, `/e/`, `/i/v0/e/` (with or without the
//! trailing slash). The project key travels as `api_key` (or `token`) in the body.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{Map, Value};
use upmarket_core::segment::ParseContext;
use upmarket_core::IngestSource;

use super::body::{json_error, read_body};
use super::{check_write_key, store_events};
use crate::error::{ApiError, Rejected};
use crate::AppState;

/// The body of a successful PostHog-style call.
#[derive(Debug, serde::Serialize)]
pub struct PosthogReply {
    /// 1, as PostHog answers.
    pub status: u8,
    /// What was stored.
    #[serde(flatten)]
    pub report: super::IngestReport,
}

fn key_of(obj: &Map<String, Value>) -> Option<String> {
    ["api_key", "token"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str))
        .or_else(|| {
            obj.get("properties")
                .and_then(|p| p.get("token"))
                .and_then(Value::as_str)
        })
        .map(str::to_string)
}

/// Any of the capture routes: a batch object, a single event, or an array of events.
pub async fn capture(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PosthogReply>, ApiError> {
    let bytes = read_body(&headers, body, state.config.limits.max_request_bytes).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| json_error(&bytes))?;
    let (key, sent_at, items): (Option<String>, Option<Value>, Vec<Value>) = match value {
        Value::Object(mut obj) => match obj.remove("batch") {
            Some(Value::Array(items)) => (key_of(&obj), obj.remove("sent_at"), items),
            Some(_) => {
                return Err(ApiError::InvalidRequest(
                    "`batch` must be an array of events".into(),
                ))
            }
            None => (key_of(&obj), None, vec![Value::Object(obj)]),
        },
        Value::Array(items) => (
            items.iter().filter_map(Value::as_object).find_map(key_of),
            None,
            items,
        ),
        _ => {
            return Err(ApiError::InvalidRequest(
                "the body must be a JSON object or an array of events".into(),
            ))
        }
    };
    let key = super::body::auth_key(&headers).or(key);
    check_write_key(&state, key.as_deref())?;
    let limit = state.config.limits.max_batch_events;
    if items.len() > limit {
        return Err(ApiError::TooManyEvents {
            count: items.len(),
            limit,
        });
    }
    let ctx = ParseContext {
        received_at: chrono::Utc::now(),
        source: IngestSource::Posthog,
        max_event_bytes: state.config.limits.max_event_bytes,
        trust_received_at: false,
    };
    let batch_sent_at = sent_at
        .as_ref()
        .and_then(upmarket_core::segment::parse_timestamp_value);
    let mut events = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let raw = serde_json::to_vec(&item).unwrap_or_default();
        let result = if raw.len() > ctx.max_event_bytes {
            Err(upmarket_core::EventError::TooLarge {
                size: raw.len(),
                limit: ctx.max_event_bytes,
            })
        } else {
            match item {
                Value::Object(mut obj) => {
                    obj.remove("api_key");
                    upmarket_core::posthog::event_from_object(
                        obj,
                        &raw,
                        batch_sent_at,
                        &state.config.posthog_group_type,
                        &ctx,
                    )
                }
                other => Err(upmarket_core::EventError::NotAnObject(match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                })),
            }
        };
        match result {
            Ok(e) => events.push(e),
            Err(e) => rejected.push(Rejected::new(index, &e)),
        }
    }
    let report = store_events(&state, events, rejected).await?;
    Ok(Json(PosthogReply { status: 1, report }))
}

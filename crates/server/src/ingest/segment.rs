//! Segment HTTP Tracking API: `POST /v1/{track,identify,group,page,screen,alias,batch}`.
//! RudderStack's SDKs use the same routes and shapes.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use upmarket_core::segment::{event_from_object, parse_event, BatchDefaults, ParseContext};
use upmarket_core::{EventKind, IngestSource};

use super::body::{auth_key, json_error, read_body};
use super::{check_write_key, store_events};
use crate::error::{ApiError, Rejected};
use crate::AppState;

/// The body of a successful Segment-style call.
#[derive(Debug, serde::Serialize)]
pub struct SegmentReply {
    /// Always true (Segment's SDKs look for it).
    pub success: bool,
    /// What was stored.
    #[serde(flatten)]
    pub report: super::IngestReport,
}

fn context(state: &AppState) -> ParseContext {
    ParseContext {
        received_at: chrono::Utc::now(),
        source: IngestSource::Segment,
        max_event_bytes: state.config.limits.max_event_bytes,
        trust_received_at: false,
    }
}

/// A single call (`/v1/track` and friends). The route decides the call type.
pub async fn single(
    kind: EventKind,
    state: AppState,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SegmentReply>, ApiError> {
    let bytes = read_body(&headers, body, state.config.limits.max_request_bytes).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| json_error(&bytes))?;
    let Value::Object(mut obj) = value else {
        return Err(ApiError::InvalidRequest(
            "the body must be a JSON object (one event)".into(),
        ));
    };
    let body_key = match obj.remove("writeKey") {
        Some(Value::String(k)) => Some(k),
        _ => None,
    };
    check_write_key(&state, auth_key(&headers).or(body_key).as_deref())?;
    let ctx = context(&state);
    if bytes.len() > ctx.max_event_bytes {
        let err = upmarket_core::EventError::TooLarge {
            size: bytes.len(),
            limit: ctx.max_event_bytes,
        };
        return Err(ApiError::InvalidEvent {
            code: err.code(),
            message: err.to_string(),
        });
    }
    let event = event_from_object(obj, &bytes, Some(kind), &BatchDefaults::default(), &ctx)
        .map_err(|e| ApiError::InvalidEvent {
            code: e.code(),
            message: e.to_string(),
        })?;
    let report = store_events(&state, vec![event], Vec::new()).await?;
    Ok(Json(SegmentReply {
        success: true,
        report,
    }))
}

#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
    #[serde(rename = "sentAt", default)]
    sent_at: Option<Value>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
    #[serde(rename = "writeKey", default)]
    write_key: Option<String>,
}

/// `POST /v1/batch`.
pub async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SegmentReply>, ApiError> {
    let bytes = read_body(&headers, body, state.config.limits.max_request_bytes).await?;
    let parsed: BatchBody =
        serde_json::from_slice(&bytes).map_err(|_| batch_shape_error(&bytes))?;
    check_write_key(
        &state,
        auth_key(&headers).or(parsed.write_key.clone()).as_deref(),
    )?;
    let limit = state.config.limits.max_batch_events;
    if parsed.batch.len() > limit {
        return Err(ApiError::TooManyEvents {
            count: parsed.batch.len(),
            limit,
        });
    }
    let ctx = context(&state);
    let defaults = BatchDefaults {
        sent_at: parsed
            .sent_at
            .as_ref()
            .and_then(upmarket_core::segment::parse_timestamp_value),
        context: parsed.context,
    };
    let mut events = Vec::with_capacity(parsed.batch.len());
    let mut rejected = Vec::new();
    for (index, raw) in parsed.batch.iter().enumerate() {
        match parse_event(raw.get(), None, &defaults, &ctx) {
            Ok(e) => events.push(e),
            Err(e) => rejected.push(Rejected::new(index, &e)),
        }
    }
    let report = store_events(&state, events, rejected).await?;
    Ok(Json(SegmentReply {
        success: true,
        report,
    }))
}

fn batch_shape_error(bytes: &[u8]) -> ApiError {
    match serde_json::from_slice::<Value>(bytes) {
        Err(_) => json_error(bytes),
        Ok(Value::Object(obj)) => match obj.get("batch") {
            None => ApiError::InvalidRequest("`batch` is required: an array of events".into()),
            Some(Value::Array(_)) => ApiError::InvalidRequest(
                "`writeKey` must be a string and `context` an object".into(),
            ),
            Some(_) => ApiError::InvalidRequest("`batch` must be an array of events".into()),
        },
        Ok(_) => {
            ApiError::InvalidRequest("the body must be a JSON object with a `batch` array".into())
        }
    }
}

//! The one table of public errors, and the one place that turns them into HTTP responses.
//!
//! Every error body has the same shape: `{"message", "code", "type", "link"}` (plus `rejected`
//! when a batch had bad events). Internal details are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Where the error codes are documented.
pub const ERRORS_DOC: &str = "docs/errors.md";

/// One rejected event of a batch: its position and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rejected {
    /// Index of the event in the request's batch (0-based).
    pub index: usize,
    /// Stable error code.
    pub code: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
}

impl Rejected {
    /// The event at `index` of a batch, refused for `error`.
    pub fn new(index: usize, error: &upmarket_core::EventError) -> Self {
        Rejected {
            index,
            code: error.code(),
            message: error.to_string(),
        }
    }
}

/// A public API error.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The body is not JSON, or not the expected shape.
    InvalidRequest(String),
    /// No write key (or read token) was given.
    MissingKey(&'static str),
    /// The key is not one of the configured ones.
    InvalidKey(&'static str),
    /// The key is valid, but not for this (a write key on a read route).
    Forbidden(String),
    /// The body is over the request limit.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The batch has more events than allowed.
    TooManyEvents {
        /// Events in the batch.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A `Content-Encoding` we cannot read.
    UnsupportedEncoding(String),
    /// A single event was invalid.
    InvalidEvent {
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Every event of a batch was invalid.
    AllEventsRejected(Vec<Rejected>),
    /// The writer's queue is full: retry later.
    Saturated,
    /// Something broke on our side (details are in the log).
    Internal,
    /// No such route.
    NotFound,
    /// No scored account with this id.
    AccountNotFound(String),
}

impl ApiError {
    /// HTTP status, stable code, and error type.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            InvalidRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "invalid_request",
            ),
            MissingKey(_) => (StatusCode::UNAUTHORIZED, "missing_key", "auth"),
            InvalidKey(_) => (StatusCode::UNAUTHORIZED, "invalid_key", "auth"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "auth"),
            PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "invalid_request",
            ),
            TooManyEvents { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                "invalid_request",
            ),
            UnsupportedEncoding(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                "invalid_request",
            ),
            InvalidEvent { code, .. } => (StatusCode::BAD_REQUEST, code, "invalid_request"),
            AllEventsRejected(_) => (
                StatusCode::BAD_REQUEST,
                "all_events_rejected",
                "invalid_request",
            ),
            Saturated => (StatusCode::TOO_MANY_REQUESTS, "writer_saturated", "system"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "system"),
            NotFound => (StatusCode::NOT_FOUND, "not_found", "invalid_request"),
            AccountNotFound(_) => (
                StatusCode::NOT_FOUND,
                "account_not_found",
                "invalid_request",
            ),
        }
    }

    /// The human message.
    pub fn message(&self) -> String {
        use ApiError::*;
        match self {
            InvalidRequest(m) | Forbidden(m) => m.clone(),
            MissingKey(what) => format!("no {what} given: send it as HTTP Basic auth username, or in the body"),
            InvalidKey(what) => format!("the {what} is not valid for this upmarket"),
            PayloadTooLarge { limit } => format!("request body is over the limit of {limit} bytes"),
            TooManyEvents { count, limit } => format!("batch has {count} events, over the limit of {limit}"),
            UnsupportedEncoding(e) => format!("unsupported Content-Encoding {e:?}: send gzip or no encoding"),
            InvalidEvent { message, .. } => message.clone(),
            AllEventsRejected(r) => match r.first() {
                Some(first) => format!("all {} events were rejected; the first (index {}): {}", r.len(), first.index, first.message),
                None => "all events were rejected".into(),
            },
            Saturated => "the writer is saturated; retry after the delay in Retry-After".into(),
            Internal => "internal error; the server log has the details".into(),
            NotFound => "no such route".into(),
            AccountNotFound(id) => format!("no scored account {id:?} (accounts are workspace ids or company domains, by the model's level)"),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    message: String,
    code: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    link: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected: Option<Vec<Rejected>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, kind) = self.parts();
        let body = ErrorBody {
            message: self.message(),
            code,
            kind,
            link: format!("{ERRORS_DOC}#{code}"),
            rejected: match self {
                ApiError::AllEventsRejected(r) => Some(r),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

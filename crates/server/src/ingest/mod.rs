//! Ingestion routes: the Segment / RudderStack Tracking API and PostHog capture.
//!
//! Both protocols share [`body`] (limits, gzip, keys) and [`store_events`]: validate every
//! event, store the valid ones through the single writer, and report the rest. A batch with
//! some bad events stores the good ones and answers 200 with the bad ones listed under
//! `rejected` (RudderStack's SDKs retry anything that is not 200, so a 4xx would make them
//! resend the good events forever); a batch whose events are all bad answers 400.

pub mod body;
pub mod posthog;
pub mod segment;

use serde::Serialize;
use upmarket_core::Event;
use upmarket_store::AppendStatus;

use crate::error::{ApiError, Rejected};
use crate::writer::WriteError;
use crate::AppState;

/// What an ingestion request did.
#[derive(Debug, Serialize)]
pub struct IngestReport {
    /// Events newly stored.
    pub stored: usize,
    /// Events whose messageId was already stored (retries).
    pub duplicates: usize,
    /// Events refused, with the reason.
    pub rejected: Vec<Rejected>,
}

/// Stores the valid events and builds the report. Errors only when nothing could be stored.
pub async fn store_events(
    state: &AppState,
    events: Vec<Event>,
    rejected: Vec<Rejected>,
) -> Result<IngestReport, ApiError> {
    if events.is_empty() && !rejected.is_empty() {
        return Err(ApiError::AllEventsRejected(rejected));
    }
    let statuses = if events.is_empty() {
        Vec::new()
    } else {
        state.writer.write(events).await.map_err(write_error)?
    };
    let stored = statuses
        .iter()
        .filter(|s| **s == AppendStatus::Stored)
        .count();
    Ok(IngestReport {
        stored,
        duplicates: statuses.len() - stored,
        rejected,
    })
}

fn write_error(err: WriteError) -> ApiError {
    match err {
        WriteError::Saturated | WriteError::Stopped => ApiError::Saturated,
        WriteError::Store(detail) => {
            tracing::error!(%detail, "write failed");
            ApiError::Internal
        }
    }
}

/// Checks a write key against the configured ones.
pub fn check_write_key(state: &AppState, key: Option<&str>) -> Result<(), ApiError> {
    match key {
        None => Err(ApiError::MissingKey("write key")),
        Some(k) if state.config.write_keys.iter().any(|w| w == k) => Ok(()),
        Some(_) => Err(ApiError::InvalidKey("write key")),
    }
}

//! Size limits on incoming data. Defaults follow Segment's HTTP Tracking API.

use serde::{Deserialize, Serialize};

/// Limits applied to every incoming request and event, whatever the route or file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestLimits {
    /// Largest single event, in bytes of JSON (Segment: 32 KB).
    pub max_event_bytes: usize,
    /// Largest request body after decompression, in bytes (Segment: 500 KB).
    pub max_request_bytes: usize,
    /// Most events in one batch request (Segment: 2,500).
    pub max_batch_events: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_event_bytes: 32 * 1024,
            max_request_bytes: 500 * 1024,
            max_batch_events: 2500,
        }
    }
}

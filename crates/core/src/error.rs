//! Why an incoming event was refused.
//!
//! Each variant has a stable machine code (`code()`) used in API error bodies and import
//! reports, and a message that names the field at fault.

/// A problem with one incoming event. The message names the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The bytes were not JSON at all.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The event was JSON but not an object.
    #[error("an event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// `type` was missing or not one of the Segment call types.
    #[error("`type` must be one of track, identify, group, page, screen, alias; got {0}")]
    UnknownType(String),
    /// A required field was absent.
    #[error("`{field}` is required for {kind} calls")]
    MissingField {
        /// The JSON field name.
        field: &'static str,
        /// The call type that requires it.
        kind: &'static str,
    },
    /// Neither userId nor anonymousId was present.
    #[error("every event needs a `userId` or an `anonymousId`")]
    MissingIdentity,
    /// A field had the wrong JSON type.
    #[error("`{field}` must be {expected}, got {got}")]
    WrongType {
        /// The JSON field name.
        field: &'static str,
        /// What was expected ("a string", "an object"...).
        expected: &'static str,
        /// The JSON type received.
        got: &'static str,
    },
    /// A timestamp field could not be parsed.
    #[error("`{field}` is not an ISO-8601 timestamp: {value:?}")]
    BadTimestamp {
        /// The JSON field name.
        field: &'static str,
        /// The value received (truncated).
        value: String,
    },
    /// The event is larger than the configured per-event limit.
    #[error("event is {size} bytes, over the limit of {limit} bytes per event")]
    TooLarge {
        /// Size of the event in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A string field is empty or absurdly long.
    #[error("`{field}` must be a non-empty string of at most {max} characters")]
    BadString {
        /// The JSON field name.
        field: &'static str,
        /// Maximum allowed characters.
        max: usize,
    },
}

impl EventError {
    /// The stable machine-readable code of this error, used in API bodies and import reports.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::InvalidJson(_) => "invalid_json",
            EventError::NotAnObject(_) => "not_an_object",
            EventError::UnknownType(_) => "unknown_event_type",
            EventError::MissingField { .. } => "missing_field",
            EventError::MissingIdentity => "missing_identity",
            EventError::WrongType { .. } => "wrong_type",
            EventError::BadTimestamp { .. } => "bad_timestamp",
            EventError::TooLarge { .. } => "event_too_large",
            EventError::BadString { .. } => "bad_string",
        }
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type(v: &serde_json::Value) -> &'static str {
    crate::wire::Scalar::from(v).type_name()
}

//! Segment (and RudderStack) Tracking API JSON → [`Event`].
//!
//! Follows the Segment spec: <https://segment.com/docs/connections/spec/common/>. RudderStack's
//! SDKs send the same shape. Unknown fields are ignored, as Segment does.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{json_type, EventError};
use crate::event::{Event, EventKind, IngestSource};
use crate::time::parse_timestamp;

/// Longest id (userId, anonymousId, groupId, messageId...) accepted, in characters.
pub const MAX_ID_CHARS: usize = 1024;

/// What the parser needs to know besides the event itself.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// When the request (or import) arrived; becomes `receivedAt`.
    pub received_at: DateTime<Utc>,
    /// How the event came in.
    pub source: IngestSource,
    /// Largest event in bytes.
    pub max_event_bytes: usize,
    /// Imports keep a `receivedAt` found in the file (it was set by the original collector);
    /// the live API never trusts a client's `receivedAt`.
    pub trust_received_at: bool,
}

/// Batch-level defaults that apply to each event of a `/v1/batch` request.
#[derive(Debug, Clone, Default)]
pub struct BatchDefaults {
    /// The batch's `sentAt`.
    pub sent_at: Option<DateTime<Utc>>,
    /// The batch's `context`, merged under each event's own context.
    pub context: Option<Map<String, Value>>,
}

/// Parses one Segment event from its raw JSON text.
///
/// `forced_kind` is the call type given by the route (`/v1/track` → track); for `/v1/batch` and
/// imports it is `None` and the event's own `type` decides.
pub fn parse_event(
    raw: &str,
    forced_kind: Option<EventKind>,
    defaults: &BatchDefaults,
    ctx: &ParseContext,
) -> Result<Event, EventError> {
    if raw.len() > ctx.max_event_bytes {
        return Err(EventError::TooLarge {
            size: raw.len(),
            limit: ctx.max_event_bytes,
        });
    }
    let value: Value =
        serde_json::from_str(raw).map_err(|e| EventError::InvalidJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(EventError::NotAnObject(json_type(&value)));
    };
    event_from_object(obj, raw.as_bytes(), forced_kind, defaults, ctx)
}

/// Builds an [`Event`] from an already-parsed JSON object. `raw` is the event's bytes, used
/// only to derive a stable `messageId` when the client sent none.
pub fn event_from_object(
    mut obj: Map<String, Value>,
    raw: &[u8],
    forced_kind: Option<EventKind>,
    defaults: &BatchDefaults,
    ctx: &ParseContext,
) -> Result<Event, EventError> {
    let kind = match forced_kind {
        Some(k) => k,
        None => match obj.get("type") {
            Some(Value::String(s)) => {
                EventKind::parse(s).ok_or_else(|| EventError::UnknownType(format!("{s:?}")))?
            }
            Some(other) => return Err(EventError::UnknownType(json_type(other).to_string())),
            None => {
                return Err(EventError::MissingField {
                    field: "type",
                    kind: "batched",
                })
            }
        },
    };
    let user_id = id_field(&obj, "userId")?;
    let anonymous_id = id_field(&obj, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(EventError::MissingIdentity);
    }
    let mut context = object_field(&mut obj, "context")?;
    if let Some(batch_ctx) = &defaults.context {
        for (k, v) in batch_ctx {
            context.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let properties = object_field(&mut obj, "properties")?;
    let traits = object_field(&mut obj, "traits")?;
    let event = string_field(&obj, "event")?;
    let name = string_field(&obj, "name")?;
    let previous_id = id_field(&obj, "previousId")?;
    let mut group_id = id_field(&obj, "groupId")?;
    if group_id.is_none() && kind != EventKind::Group {
        group_id = match context.get("groupId") {
            None | Some(Value::Null) => None,
            Some(v) => Some(id_value(v, "context.groupId")?),
        };
    }
    match kind {
        EventKind::Track if event.is_none() => {
            return Err(EventError::MissingField {
                field: "event",
                kind: "track",
            })
        }
        EventKind::Group if group_id.is_none() => {
            return Err(EventError::MissingField {
                field: "groupId",
                kind: "group",
            })
        }
        EventKind::Alias if previous_id.is_none() => {
            return Err(EventError::MissingField {
                field: "previousId",
                kind: "alias",
            })
        }
        EventKind::Alias if user_id.is_none() => {
            return Err(EventError::MissingField {
                field: "userId",
                kind: "alias",
            })
        }
        _ => {}
    }
    let message_id = match id_field(&obj, "messageId")? {
        Some(id) => id,
        None => content_message_id(raw),
    };
    let original_timestamp =
        timestamp_field(&obj, "timestamp")?.or(timestamp_field(&obj, "originalTimestamp")?);
    let sent_at = timestamp_field(&obj, "sentAt")?.or(defaults.sent_at);
    let received_at = match (ctx.trust_received_at, timestamp_field(&obj, "receivedAt")?) {
        (true, Some(t)) => t,
        _ => ctx.received_at,
    };
    let timestamp = corrected_timestamp(original_timestamp, sent_at, received_at);
    Ok(Event {
        kind,
        event,
        name,
        user_id,
        anonymous_id,
        group_id,
        previous_id,
        message_id,
        timestamp,
        original_timestamp,
        sent_at,
        received_at,
        properties,
        traits,
        context,
        source: ctx.source,
    })
}

/// Segment's clock-skew correction: the event happened `sentAt - timestamp` before the batch was
/// sent, and the batch was received at `receivedAt`. A timestamp-less event happened when it was
/// received.
pub fn corrected_timestamp(
    original: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
) -> DateTime<Utc> {
    match (original, sent_at) {
        (Some(ts), Some(sent)) => received_at - (sent - ts),
        (Some(ts), None) => ts,
        (None, _) => received_at,
    }
}

/// Parses a timestamp value as the parsers do (ISO-8601, or Unix milliseconds).
pub fn parse_timestamp_value(v: &Value) -> Option<DateTime<Utc>> {
    parse_timestamp(v)
}

/// A stable messageId for an event that came without one: retries of the same bytes get the
/// same id, so they are stored once.
pub fn content_message_id(raw: &[u8]) -> String {
    format!("h-{:032x}", xxhash_rust::xxh3::xxh3_128(raw))
}

pub(crate) fn id_value(v: &Value, field: &'static str) -> Result<String, EventError> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(EventError::WrongType {
                field,
                expected: "a string",
                got: json_type(other),
            })
        }
    };
    if s.is_empty() || s.chars().count() > MAX_ID_CHARS {
        return Err(EventError::BadString {
            field,
            max: MAX_ID_CHARS,
        });
    }
    Ok(s)
}

fn id_field(obj: &Map<String, Value>, field: &'static str) -> Result<Option<String>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => id_value(v, field).map(Some),
    }
}

fn string_field(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(EventError::WrongType {
            field,
            expected: "a string",
            got: json_type(other),
        }),
    }
}

fn object_field(
    obj: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Map<String, Value>, EventError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(EventError::WrongType {
            field,
            expected: "an object",
            got: json_type(&other),
        }),
    }
}

pub(crate) fn timestamp_field(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_timestamp(v)
            .map(Some)
            .ok_or_else(|| EventError::BadTimestamp {
                field,
                value: v.to_string().chars().take(64).collect(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ParseContext {
        ParseContext {
            received_at: "2026-05-01T12:00:10Z".parse().unwrap(),
            source: IngestSource::Segment,
            max_event_bytes: 32 * 1024,
            trust_received_at: false,
        }
    }

    fn parse(raw: &str) -> Result<Event, EventError> {
        parse_event(raw, None, &BatchDefaults::default(), &ctx())
    }

    #[test]
    fn a_track_call_parses_with_skew_correction() {
        let e = parse(
            r#"{"type":"track","event":"Report Created","userId":"u1","messageId":"m1",
            "timestamp":"2026-05-01T12:00:00Z","sentAt":"2026-05-01T12:00:05Z",
            "properties":{"plan":"free"},"context":{"groupId":"ws1"}}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventKind::Track);
        assert_eq!(e.group_id.as_deref(), Some("ws1"));
        // Sent 5 s after it happened, received at 12:00:10 → happened at 12:00:05.
        assert_eq!(
            e.timestamp,
            "2026-05-01T12:00:05Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(e.properties["plan"], "free");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"type":"track","userId":"u"}"#,
                "`event` is required for track calls",
            ),
            (
                r#"{"type":"track","event":"x"}"#,
                "every event needs a `userId` or an `anonymousId`",
            ),
            (
                r#"{"type":"track","event":"x","userId":{"a":1}}"#,
                "`userId` must be a string, got an object",
            ),
            (
                r#"{"type":"track","event":"x","userId":"u","properties":[1]}"#,
                "`properties` must be an object, got an array",
            ),
            (
                r#"{"type":"track","event":"x","userId":"u","timestamp":"soon"}"#,
                "`timestamp` is not an ISO-8601 timestamp: \"\\\"soon\\\"\"",
            ),
            (
                r#"{"type":"fly","userId":"u"}"#,
                "`type` must be one of track, identify, group, page, screen, alias; got \"fly\"",
            ),
            (
                r#"{"type":"group","userId":"u"}"#,
                "`groupId` is required for group calls",
            ),
            (
                r#"{"type":"alias","userId":"u"}"#,
                "`previousId` is required for alias calls",
            ),
            (r#"[1,2]"#, "an event must be a JSON object, got an array"),
        ];
        for (raw, want) in cases {
            let got = parse(raw).unwrap_err().to_string();
            assert_eq!(got, want, "{raw}");
        }
    }

    #[test]
    fn oversize_events_are_refused() {
        let big = format!(
            r#"{{"type":"track","event":"x","userId":"u","properties":{{"p":"{}"}}}}"#,
            "a".repeat(40_000)
        );
        assert_eq!(parse(&big).unwrap_err().code(), "event_too_large");
    }

    #[test]
    fn a_missing_message_id_is_derived_from_content() {
        let raw = r#"{"type":"track","event":"x","userId":"u"}"#;
        let a = parse(raw).unwrap();
        let b = parse(raw).unwrap();
        assert_eq!(a.message_id, b.message_id);
        assert!(a.message_id.starts_with("h-"));
        assert_ne!(
            a.message_id,
            parse(r#"{"type":"track","event":"y","userId":"u"}"#)
                .unwrap()
                .message_id
        );
    }

    #[test]
    fn numeric_ids_become_strings_and_route_type_wins() {
        let e = parse_event(
            r#"{"type":"track","userId":42,"traits":{"email":"a@acme.com"}}"#,
            Some(EventKind::Identify),
            &BatchDefaults::default(),
            &ctx(),
        )
        .unwrap();
        assert_eq!(e.kind, EventKind::Identify);
        assert_eq!(e.user_id.as_deref(), Some("42"));
        assert_eq!(e.email(), Some("a@acme.com"));
    }
}

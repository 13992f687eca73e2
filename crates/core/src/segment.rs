//! Segment (and RudderStack) Tracking API JSON → [`Event`].
//!
//! Follows the Segment spec: <https://segment.com/docs/connections/spec/common/>. RudderStack's
//! SDKs send the same shape. Unknown fields are ignored, as Segment does.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{json_type, EventError};
use crate::event::{Event, EventKind, IngestSource, JsonObject};
use crate::time::{parse_scalar_timestamp, parse_timestamp};
use crate::wire::{email_from, ContextView, Raw, Scalar, WireEvent};

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
    check_size(raw, ctx)?;
    let mut wire = WireEvent::default();
    read_wire(raw, &mut wire)?;
    event_from_wire(&wire, raw.as_bytes(), forced_kind, defaults, ctx)
}

/// One line of an NDJSON export: a Segment event, or a PostHog-export event (a `distinct_id`
/// and no `type`), which goes to [`crate::posthog::event_from_object`] with
/// `posthog_group_type` as its preferred group type.
pub fn parse_export_line(
    raw: &str,
    ctx: &ParseContext,
    posthog_group_type: &str,
) -> Result<Event, EventError> {
    check_size(raw, ctx)?;
    let mut wire = WireEvent::default();
    read_wire(raw, &mut wire)?;
    if wire.kind.is_none() && wire.distinct_id.is_some() {
        let obj: Map<String, Value> =
            serde_json::from_str(raw).map_err(|e| EventError::InvalidJson(e.to_string()))?;
        return crate::posthog::event_from_object(
            obj,
            raw.as_bytes(),
            None,
            posthog_group_type,
            ctx,
        );
    }
    event_from_wire(&wire, raw.as_bytes(), None, &BatchDefaults::default(), ctx)
}

/// [`parse_export_line`] for a row already read as an object (CSV and Parquet).
pub fn export_object(
    obj: Map<String, Value>,
    raw: &[u8],
    ctx: &ParseContext,
    posthog_group_type: &str,
) -> Result<Event, EventError> {
    if !obj.contains_key("type") && obj.contains_key("distinct_id") {
        crate::posthog::event_from_object(obj, raw, None, posthog_group_type, ctx)
    } else {
        event_from_object(obj, raw, None, &BatchDefaults::default(), ctx)
    }
}

/// Builds an [`Event`] from an already-parsed JSON object (CSV and Parquet rows, the single
/// routes). `raw` is the event's bytes, used only to derive a stable `messageId` when the
/// client sent none.
pub fn event_from_object(
    obj: Map<String, Value>,
    raw: &[u8],
    forced_kind: Option<EventKind>,
    defaults: &BatchDefaults,
    ctx: &ParseContext,
) -> Result<Event, EventError> {
    let text = serde_json::to_string(&obj).map_err(|e| EventError::InvalidJson(e.to_string()))?;
    let mut wire = WireEvent::default();
    read_wire(&text, &mut wire)?;
    event_from_wire(&wire, raw, forced_kind, defaults, ctx)
}

fn check_size(raw: &str, ctx: &ParseContext) -> Result<(), EventError> {
    if raw.len() > ctx.max_event_bytes {
        return Err(EventError::TooLarge {
            size: raw.len(),
            limit: ctx.max_event_bytes,
        });
    }
    Ok(())
}

/// Reads the fields of one event into `wire` (fresh: all None); anything but a JSON object is
/// refused. Filled in place, not returned: the fields are ~500 bytes, and moving them from
/// the reader to the checks cost two copies an event.
fn read_wire<'a>(raw: &'a str, wire: &mut WireEvent<'a>) -> Result<(), EventError> {
    if crate::wire_scan::event(raw, wire).is_some() {
        return Ok(());
    }
    match raw.trim_start().as_bytes().first() {
        Some(b'{') => {
            *wire =
                serde_json::from_str(raw).map_err(|e| EventError::InvalidJson(e.to_string()))?;
            Ok(())
        }
        _ => match serde_json::from_str::<Value>(raw) {
            Ok(other) => Err(EventError::NotAnObject(json_type(&other))),
            Err(e) => Err(EventError::InvalidJson(e.to_string())),
        },
    }
}

/// The rules of a Segment event, in the order its problems are reported.
fn event_from_wire(
    w: &WireEvent<'_>,
    raw: &[u8],
    forced_kind: Option<EventKind>,
    defaults: &BatchDefaults,
    ctx: &ParseContext,
) -> Result<Event, EventError> {
    let kind = match forced_kind {
        Some(k) => k,
        None => match &w.kind {
            Some(Scalar::String(s)) => {
                EventKind::parse(s).ok_or_else(|| EventError::UnknownType(format!("{s:?}")))?
            }
            Some(other) => return Err(EventError::UnknownType(other.type_name().to_string())),
            None => {
                return Err(EventError::MissingField {
                    field: "type",
                    kind: "batched",
                })
            }
        },
    };
    let user_id = id_field(&w.user_id, "userId")?;
    let anonymous_id = id_field(&w.anonymous_id, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(EventError::MissingIdentity);
    }
    let mut context = object_field(w.context, "context")?;
    let batch_context = defaults.context.as_ref().filter(|c| !c.is_empty());
    if let Some(batch_ctx) = batch_context {
        let mut merged = context.to_map();
        for (k, v) in batch_ctx {
            merged.entry(k.clone()).or_insert_with(|| v.clone());
        }
        context = JsonObject::from_map(&merged);
    }
    let properties = object_field(w.properties, "properties")?;
    let traits = object_field(w.traits, "traits")?;
    let event = string_field(&w.event, "event")?;
    let name = string_field(&w.name, "name")?;
    let previous_id = id_field(&w.previous_id, "previousId")?;
    let mut group_id = id_field(&w.group_id, "groupId")?;
    // The view read with the event, unless the batch's context was merged in.
    let worked_out: ContextView;
    let context_view: &ContextView = match &w.context_view {
        Some(view) if batch_context.is_none() => view,
        _ => {
            worked_out = context
                .text()
                .map(crate::wire::context_view)
                .unwrap_or_default();
            &worked_out
        }
    };
    if group_id.is_none() && kind != EventKind::Group {
        group_id = match &context_view.group_id {
            None | Some(Scalar::Null) => None,
            Some(v) => Some(id_scalar(v, "context.groupId")?),
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
    let message_id = match id_field(&w.message_id, "messageId")? {
        Some(id) => id,
        None => content_message_id(raw),
    };
    let original_timestamp = scalar_timestamp(&w.timestamp, "timestamp")?.or(scalar_timestamp(
        &w.original_timestamp,
        "originalTimestamp",
    )?);
    let sent_at = scalar_timestamp(&w.sent_at, "sentAt")?.or(defaults.sent_at);
    let received_at = match (
        ctx.trust_received_at,
        scalar_timestamp(&w.received_at, "receivedAt")?,
    ) {
        (true, Some(t)) => t,
        _ => ctx.received_at,
    };
    let timestamp = corrected_timestamp(original_timestamp, sent_at, received_at);
    let email = email_from(kind, traits.text(), context_view.traits.map(Raw::get));
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
        email,
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
    id_scalar(&v.into(), field)
}

/// An id: a string (trimmed) or a number (as text), non-empty and at most [`MAX_ID_CHARS`].
fn id_scalar(v: &Scalar, field: &'static str) -> Result<String, EventError> {
    let s = match v {
        Scalar::String(s) => crate::wire::trimmed(s).to_string(),
        Scalar::Number(n) => n.to_string(),
        other => {
            return Err(EventError::WrongType {
                field,
                expected: "a string",
                got: other.type_name(),
            })
        }
    };
    // Counting characters only when the bytes could be too many (a character is ≥ 1 byte).
    if s.is_empty() || (s.len() > MAX_ID_CHARS && s.chars().count() > MAX_ID_CHARS) {
        return Err(EventError::BadString {
            field,
            max: MAX_ID_CHARS,
        });
    }
    Ok(s)
}

/// An optional id: absent, null and blank strings are none.
fn id_field(v: &Option<Scalar>, field: &'static str) -> Result<Option<String>, EventError> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::String(s)) if crate::wire::trimmed(s).is_empty() => Ok(None),
        Some(v) => id_scalar(v, field).map(Some),
    }
}

/// An optional name (kept as sent): absent, null and blank strings are none.
fn string_field(v: &Option<Scalar>, field: &'static str) -> Result<Option<String>, EventError> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::String(s)) if crate::wire::trimmed(s).is_empty() => Ok(None),
        Some(Scalar::String(s)) => Ok(Some(s.to_string())),
        Some(other) => Err(EventError::WrongType {
            field,
            expected: "a string",
            got: other.type_name(),
        }),
    }
}

fn object_field(v: Option<Raw>, field: &'static str) -> Result<JsonObject, EventError> {
    match v {
        None => Ok(JsonObject::empty()),
        Some(raw) => JsonObject::from_raw(raw.get(), field),
    }
}

fn scalar_timestamp(
    v: &Option<Scalar>,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, EventError> {
    match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(v) => parse_scalar_timestamp(v)
            .map(Some)
            .ok_or_else(|| EventError::BadTimestamp {
                field,
                value: v.to_json().chars().take(64).collect(),
            }),
    }
}

pub(crate) fn timestamp_field(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, EventError> {
    scalar_timestamp(&obj.get(field).map(Scalar::from), field)
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
        assert_eq!(e.properties.text(), Some(r#"{"plan":"free"}"#));
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

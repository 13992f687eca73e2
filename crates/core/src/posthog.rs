//! PostHog capture JSON → [`Event`].
//!
//! PostHog has one call, `capture`, with special event names for identity. They map onto
//! Segment's vocabulary so that one identity model serves both:
//!
//! | PostHog | upmarket |
//! |---|---|
//! | `$identify` (with `$anon_distinct_id`, `$set`) | identify: userId = distinct_id, anonymousId = `$anon_distinct_id`, traits = `$set` |
//! | `$set` | identify with traits = `$set` |
//! | `$create_alias` | alias: previousId = distinct_id, userId = `properties.alias` |
//! | `$groupidentify` | group with traits = `$group_set` (declares the group, not a membership) |
//! | `$pageview` / `$screen` | page / screen, with `path` and `url` properties filled in |
//! | `properties.$groups` | groupId: the group of the preferred type, else the first |
//! | anything else | track |
//!
//! `distinct_id` becomes `userId`: PostHog cannot tell anonymous from known ids, and the alias
//! map resolves either to the person.

use serde_json::{Map, Value};

use crate::error::{json_type, EventError};
use crate::event::{email_of, Event, EventKind, JsonObject};
use crate::segment::{
    content_message_id, corrected_timestamp, id_value, timestamp_field, ParseContext,
};

/// The event name PostHog uses to declare a group's properties.
pub const GROUP_IDENTIFY: &str = "$groupidentify";

/// Builds an [`Event`] from one PostHog capture object. `preferred_group_type` picks which of
/// `$groups` is the workspace when an event carries several.
pub fn event_from_object(
    mut obj: Map<String, Value>,
    raw: &[u8],
    batch_sent_at: Option<chrono::DateTime<chrono::Utc>>,
    preferred_group_type: &str,
    ctx: &ParseContext,
) -> Result<Event, EventError> {
    let name = match obj.get("event") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(EventError::MissingField {
                field: "event",
                kind: "capture",
            })
        }
        Some(other) => {
            return Err(EventError::WrongType {
                field: "event",
                expected: "a string",
                got: json_type(other),
            })
        }
    };
    let mut properties = match obj.remove("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(EventError::WrongType {
                field: "properties",
                expected: "an object",
                got: json_type(&other),
            })
        }
    };
    let distinct_id = match obj
        .get("distinct_id")
        .or_else(|| properties.get("distinct_id"))
        .or_else(|| obj.get("$distinct_id"))
    {
        None | Some(Value::Null) => {
            return Err(EventError::MissingField {
                field: "distinct_id",
                kind: "capture",
            })
        }
        Some(v) => id_value(v, "distinct_id")?,
    };
    let message_id = match obj.get("uuid").or_else(|| obj.get("message_id")) {
        None | Some(Value::Null) => content_message_id(raw),
        Some(v) => id_value(v, "uuid")?,
    };
    let original_timestamp = timestamp_field(&obj, "timestamp")?;
    let sent_at = timestamp_field(&obj, "sent_at")?.or(batch_sent_at);
    let timestamp = corrected_timestamp(original_timestamp, sent_at, ctx.received_at);

    let take_object = |props: &mut Map<String, Value>,
                       obj: &mut Map<String, Value>,
                       key: &str|
     -> Map<String, Value> {
        let mut out = Map::new();
        for source in [obj.remove(key), props.remove(key)] {
            if let Some(Value::Object(m)) = source {
                out.extend(m);
            }
        }
        out
    };

    let group_id = match properties.get("$groups") {
        Some(Value::Object(groups)) => groups
            .get(preferred_group_type)
            .or_else(|| groups.values().next())
            .map(|v| id_value(v, "$groups"))
            .transpose()?,
        _ => None,
    };

    let mut event = Event {
        kind: EventKind::Track,
        event: None,
        name: None,
        user_id: Some(distinct_id.clone()),
        anonymous_id: None,
        group_id,
        previous_id: None,
        message_id,
        timestamp,
        original_timestamp,
        sent_at,
        received_at: ctx.received_at,
        properties: JsonObject::empty(),
        traits: JsonObject::empty(),
        context: JsonObject::empty(),
        email: None,
        source: ctx.source,
    };
    let mut traits = Map::new();
    let mut context = Map::new();
    match name.as_str() {
        "$identify" | "$set" => {
            event.kind = EventKind::Identify;
            traits = take_object(&mut properties, &mut obj, "$set");
            if let Some(anon) = properties.get("$anon_distinct_id") {
                let anon = id_value(anon, "$anon_distinct_id")?;
                if anon != distinct_id {
                    event.anonymous_id = Some(anon);
                }
            }
        }
        "$create_alias" => {
            event.kind = EventKind::Alias;
            let alias = properties.get("alias").ok_or(EventError::MissingField {
                field: "properties.alias",
                kind: "$create_alias",
            })?;
            event.previous_id = Some(distinct_id);
            event.user_id = Some(id_value(alias, "properties.alias")?);
        }
        GROUP_IDENTIFY => {
            event.kind = EventKind::Group;
            event.event = Some(GROUP_IDENTIFY.to_string());
            let key = properties
                .get("$group_key")
                .ok_or(EventError::MissingField {
                    field: "properties.$group_key",
                    kind: "$groupidentify",
                })?;
            event.group_id = Some(id_value(key, "properties.$group_key")?);
            traits = take_object(&mut properties, &mut obj, "$group_set");
        }
        "$pageview" => {
            event.kind = EventKind::Page;
            let url = properties
                .get("$current_url")
                .and_then(Value::as_str)
                .map(str::to_string);
            let path = properties
                .get("$pathname")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| url.as_deref().map(url_path));
            event.name = path.clone();
            if let Some(path) = path {
                properties.entry("path").or_insert(Value::String(path));
            }
            if let Some(url) = url {
                properties.entry("url").or_insert(Value::String(url));
            }
        }
        "$screen" => {
            event.kind = EventKind::Screen;
            event.name = properties
                .get("$screen_name")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        _ => event.event = Some(name),
    }
    // PostHog puts person properties for any event under `$set`; keep them as context traits so
    // a work e-mail seen on any event can place the user in a company.
    if event.kind != EventKind::Identify {
        let set = take_object(&mut properties, &mut obj, "$set");
        if !set.is_empty() {
            context.insert("traits".into(), Value::Object(set));
        }
    }
    if let Some(lib) = properties.get("$lib").cloned() {
        let mut library = Map::new();
        library.insert("name".into(), lib);
        if let Some(v) = properties.get("$lib_version").cloned() {
            library.insert("version".into(), v);
        }
        context.insert("library".into(), Value::Object(library));
    }
    event.properties = JsonObject::from_map(&properties);
    event.traits = JsonObject::from_map(&traits);
    event.context = JsonObject::from_map(&context);
    event.email = email_of(event.kind, &event.traits, &event.context);
    Ok(event)
}

/// The path of a URL ("https://x.com/pricing?a=1" → "/pricing").
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map(|(_, rest)| rest).unwrap_or(url);
    let path = after_scheme
        .find('/')
        .map(|i| &after_scheme[i..])
        .unwrap_or("/");
    path.split(['?', '#']).next().unwrap_or("/").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::IngestSource;

    fn parse(raw: &str) -> Result<Event, EventError> {
        let ctx = ParseContext {
            received_at: "2026-05-01T12:00:00Z".parse().unwrap(),
            source: IngestSource::Posthog,
            max_event_bytes: 32 * 1024,
            trust_received_at: false,
        };
        let Value::Object(obj) = serde_json::from_str(raw).unwrap() else {
            panic!()
        };
        event_from_object(obj, raw.as_bytes(), None, "company", &ctx)
    }

    #[test]
    fn identity_events_map_onto_segment_calls() {
        let e = parse(r#"{"event":"$identify","distinct_id":"u1","properties":{"$anon_distinct_id":"anon1","$set":{"email":"a@acme.com"}}}"#).unwrap();
        assert_eq!(
            (
                e.kind,
                e.user_id.as_deref(),
                e.anonymous_id.as_deref(),
                e.email()
            ),
            (
                EventKind::Identify,
                Some("u1"),
                Some("anon1"),
                Some("a@acme.com")
            )
        );

        let e =
            parse(r#"{"event":"$create_alias","distinct_id":"anon1","properties":{"alias":"u1"}}"#)
                .unwrap();
        assert_eq!(
            (e.kind, e.previous_id.as_deref(), e.user_id.as_deref()),
            (EventKind::Alias, Some("anon1"), Some("u1"))
        );

        let e = parse(r#"{"event":"$groupidentify","distinct_id":"$company_c1","properties":{"$group_type":"company","$group_key":"c1","$group_set":{"name":"Acme"}}}"#).unwrap();
        assert_eq!(
            (
                e.kind,
                e.group_id.as_deref(),
                e.traits.to_map()["name"].as_str().map(str::to_string)
            ),
            (EventKind::Group, Some("c1"), Some("Acme".to_string()))
        );
    }

    #[test]
    fn groups_and_pageviews() {
        let e = parse(r#"{"event":"Report Created","distinct_id":"u1","uuid":"0190-a","properties":{"$groups":{"project":"p9","company":"c1"}}}"#).unwrap();
        assert_eq!(
            (e.kind, e.group_id.as_deref(), e.message_id.as_str()),
            (EventKind::Track, Some("c1"), "0190-a")
        );
        let e = parse(r#"{"event":"$pageview","distinct_id":"u1","properties":{"$current_url":"https://app.x.com/legal/terms?ref=1"}}"#).unwrap();
        assert_eq!(
            (
                e.kind,
                e.properties.to_map()["path"].as_str().map(str::to_string)
            ),
            (EventKind::Page, Some("/legal/terms".to_string()))
        );
    }

    #[test]
    fn bad_posthog_events_name_the_field() {
        assert_eq!(
            parse(r#"{"distinct_id":"u1"}"#).unwrap_err().to_string(),
            "`event` is required for capture calls"
        );
        assert_eq!(
            parse(r#"{"event":"x"}"#).unwrap_err().to_string(),
            "`distinct_id` is required for capture calls"
        );
        assert_eq!(
            parse(r#"{"event":"x","distinct_id":"u","properties":"p"}"#)
                .unwrap_err()
                .to_string(),
            "`properties` must be an object, got a string"
        );
    }
}

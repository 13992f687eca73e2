//! Reading an event's JSON without building a tree of it.
//!
//! An event is read once, field by field, into borrowed views: ids and names as strings that
//! point into the request (copied only when they hold escapes), `properties` / `traits` /
//! `context` as their raw text, which is what the store keeps. Parsing into
//! `serde_json::Value` instead built a B-tree map per object, and storing the event serialized
//! those maps back to text: measured on 1M simulated events, one thread, 1.73 s for parsing and
//! preparing against 0.52 s for reading the same fields this way (BENCHMARKS.md).
//!
//! Duplicate keys behave as in `serde_json::Value`: the last one wins. Unknown fields are
//! skipped, as Segment does.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Number;

/// One JSON value, kept only as far as a field check needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array,
    Object,
}

impl Scalar<'_> {
    /// The JSON type name, for error messages (as [`crate::error::json_type`]).
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Number(_) => "a number",
            Scalar::String(_) => "a string",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
        }
    }

    /// The value as JSON text, for error messages (arrays and objects abbreviated).
    pub(crate) fn to_json(&self) -> String {
        match self {
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Number(n) => n.to_string(),
            Scalar::String(s) => serde_json::to_string(s).unwrap_or_default(),
            Scalar::Array => "[...]".into(),
            Scalar::Object => "{...}".into(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
                Ok(Number::from_f64(n).map_or(Scalar::Null, Scalar::Number))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::String(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Scalar::String(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Scalar::String(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads the fields of one JSON object: `field` is called with each key and reads (or skips)
/// its value. The key is borrowed unless it holds escapes.
fn read_object<'de, A, F>(mut map: A, mut field: F) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    F: FnMut(&str, &mut A) -> Result<(), A::Error>,
{
    while let Some(key) = map.next_key::<Cow<'de, str>>()? {
        field(&key, &mut map)?;
    }
    Ok(())
}

/// Skips the value of a field nobody reads.
fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

/// The fields of a Segment event that upmarket reads (plus whether a PostHog `distinct_id`
/// is there, which tells an import which parser a line needs).
#[derive(Debug, Default)]
pub(crate) struct WireEvent<'a> {
    pub kind: Option<Scalar<'a>>,
    pub user_id: Option<Scalar<'a>>,
    pub anonymous_id: Option<Scalar<'a>>,
    pub group_id: Option<Scalar<'a>>,
    pub previous_id: Option<Scalar<'a>>,
    pub message_id: Option<Scalar<'a>>,
    pub event: Option<Scalar<'a>>,
    pub name: Option<Scalar<'a>>,
    pub timestamp: Option<Scalar<'a>>,
    pub original_timestamp: Option<Scalar<'a>>,
    pub sent_at: Option<Scalar<'a>>,
    pub received_at: Option<Scalar<'a>>,
    pub properties: Option<&'a RawValue>,
    pub traits: Option<&'a RawValue>,
    pub context: Option<&'a RawValue>,
    pub has_distinct_id: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireEvent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireEvent<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let mut w = WireEvent::default();
                read_object(map, |key, map| {
                    let slot = match key {
                        "type" => &mut w.kind,
                        "userId" => &mut w.user_id,
                        "anonymousId" => &mut w.anonymous_id,
                        "groupId" => &mut w.group_id,
                        "previousId" => &mut w.previous_id,
                        "messageId" => &mut w.message_id,
                        "event" => &mut w.event,
                        "name" => &mut w.name,
                        "timestamp" => &mut w.timestamp,
                        "originalTimestamp" => &mut w.original_timestamp,
                        "sentAt" => &mut w.sent_at,
                        "receivedAt" => &mut w.received_at,
                        "properties" | "traits" | "context" => {
                            let raw = Some(map.next_value::<&'de RawValue>()?);
                            match key {
                                "properties" => w.properties = raw,
                                "traits" => w.traits = raw,
                                _ => w.context = raw,
                            }
                            return Ok(());
                        }
                        "distinct_id" => {
                            w.has_distinct_id = true;
                            return skip(map);
                        }
                        _ => return skip(map),
                    };
                    *slot = Some(map.next_value()?);
                    Ok(())
                })?;
                Ok(w)
            }
        }
        d.deserialize_map(V)
    }
}

/// What identity needs from `context`: its `groupId` and `traits`.
#[derive(Debug, Default)]
pub(crate) struct ContextView<'a> {
    pub group_id: Option<Scalar<'a>>,
    pub traits: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ContextView<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ContextView<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let mut c = ContextView::default();
                read_object(map, |key, map| {
                    match key {
                        "groupId" => c.group_id = Some(map.next_value()?),
                        "traits" => c.traits = Some(map.next_value()?),
                        _ => skip(map)?,
                    }
                    Ok(())
                })?;
                Ok(c)
            }
        }
        d.deserialize_map(V)
    }
}

/// What identity needs from a traits object: `email`.
#[derive(Debug, Default)]
pub(crate) struct TraitsView<'a> {
    pub email: Option<Scalar<'a>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for TraitsView<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TraitsView<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let mut t = TraitsView::default();
                read_object(map, |key, map| {
                    match key {
                        "email" => t.email = Some(map.next_value()?),
                        _ => skip(map)?,
                    }
                    Ok(())
                })?;
                Ok(t)
            }
        }
        d.deserialize_map(V)
    }
}

/// The e-mail of an event of `kind`: for identify calls `traits.email`, else (and for every
/// other call) `context.traits.email`. `traits` and `context_traits` are JSON objects' text.
pub(crate) fn email_from(
    kind: crate::EventKind,
    traits: Option<&str>,
    context_traits: Option<&str>,
) -> Option<String> {
    let own = match kind {
        crate::EventKind::Identify => traits.and_then(email_in),
        _ => None,
    };
    own.or_else(|| context_traits.and_then(email_in))
}

/// The e-mail an object of traits holds: `email`, a non-empty string, trimmed.
pub(crate) fn email_in(traits_json: &str) -> Option<String> {
    match serde_json::from_str::<TraitsView>(traits_json)
        .ok()?
        .email?
    {
        Scalar::String(s) => Some(s.trim().to_string()).filter(|e| !e.is_empty()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_known_fields_and_skips_the_rest() {
        let w: WireEvent = serde_json::from_str(
            r#"{"type":"track","userId":42,"extra":{"a":[1,2]},"event":"Se\u00f1al",
                "properties":{"b":2, "a":"x"},"context":null,"distinct_id":"d"}"#,
        )
        .unwrap();
        assert_eq!(w.kind, Some(Scalar::String("track".into())));
        assert_eq!(w.user_id, Some(Scalar::Number(42.into())));
        assert_eq!(w.event, Some(Scalar::String("Señal".into())));
        assert_eq!(w.properties.map(RawValue::get), Some(r#"{"b":2, "a":"x"}"#));
        assert_eq!(w.context.map(RawValue::get), Some("null"));
        assert!(w.has_distinct_id);
        assert_eq!(w.anonymous_id, None);
    }

    #[test]
    fn the_last_of_duplicate_keys_wins() {
        let w: WireEvent = serde_json::from_str(r#"{"userId":"a","userId":"b"}"#).unwrap();
        assert_eq!(w.user_id, Some(Scalar::String("b".into())));
    }

    #[test]
    fn an_email_is_a_trimmed_non_empty_string() {
        assert_eq!(
            email_in(r#"{"email":" a@acme.com ","x":1}"#).as_deref(),
            Some("a@acme.com")
        );
        assert_eq!(email_in(r#"{"email":"  "}"#), None);
        assert_eq!(email_in(r#"{"email":7}"#), None);
        assert_eq!(email_in(r#"[1]"#), None);
    }
}

//! [`JsonObject`]: an event's `properties`, `traits` or `context`, kept as JSON text.

use serde_json::{Map, Value};

use crate::error::EventError;

/// A JSON object as text, exactly as the client sent it (validated JSON, key order and
/// spacing kept), or nothing for an absent, null or empty object. The store keeps the text
/// as it is; the few readers that need members (identity: traits of identify and group calls)
/// parse it on demand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonObject(Option<String>);

impl JsonObject {
    /// No members.
    pub fn empty() -> Self {
        JsonObject(None)
    }

    /// The object of `map` (none when it is empty).
    pub fn from_map(map: &Map<String, Value>) -> Self {
        if map.is_empty() {
            return JsonObject(None);
        }
        JsonObject(serde_json::to_string(map).ok())
    }

    /// Text that is known to be a JSON object (read back from the store); anything else,
    /// an empty object included, is taken as none.
    pub fn from_stored(text: Option<String>) -> Self {
        JsonObject(text.filter(|t| t.trim_start().starts_with('{') && !is_empty_object(t)))
    }

    /// The text of `field`'s value (validated JSON): an object, or null (none); any other
    /// JSON type is refused with the field's name.
    pub(crate) fn from_raw(text: &str, field: &'static str) -> Result<Self, EventError> {
        let got = match text.as_bytes().first() {
            Some(b'{') if is_empty_object(text) => return Ok(JsonObject(None)),
            Some(b'{') => return Ok(JsonObject(Some(text.to_string()))),
            Some(b'n') => return Ok(JsonObject(None)),
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            _ => "a number",
        };
        Err(EventError::WrongType {
            field,
            expected: "an object",
            got,
        })
    }

    /// The JSON text, or None for no members.
    pub fn text(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether the object has no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The members, parsed.
    pub fn to_map(&self) -> Map<String, Value> {
        self.0
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }
}

/// Whether `text` (a JSON object) is `{}`, spaces allowed. Byte by byte from the front: a
/// member's opening quote ends it at once (`str::trim` from both ends, three times, was ~215
/// of the ~360 instructions `from_raw` took: callgrind, 200k events).
fn is_empty_object(text: &str) -> bool {
    match text.as_bytes().trim_ascii().split_first() {
        Some((b'{', inner)) => inner.trim_ascii() == b"}",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_objects_as_sent_and_refuses_other_types() {
        let o = JsonObject::from_raw(r#"{"b": 2, "a":"x"}"#, "properties").unwrap();
        assert_eq!(o.text(), Some(r#"{"b": 2, "a":"x"}"#));
        assert_eq!(o.to_map()["a"], "x");
        for empty in ["{}", "{ }", "{\n\t\r }", "null"] {
            assert!(JsonObject::from_raw(empty, "traits").unwrap().is_empty());
        }
        for members in [r#"{"":1}"#, r#"{ "a": {}}"#] {
            let o = JsonObject::from_raw(members, "traits").unwrap();
            assert_eq!(o.text(), Some(members));
        }
        for (text, got) in [
            ("[1]", "an array"),
            ("\"p\"", "a string"),
            ("3", "a number"),
        ] {
            assert_eq!(
                JsonObject::from_raw(text, "context")
                    .unwrap_err()
                    .to_string(),
                format!("`context` must be an object, got {got}")
            );
        }
    }

    #[test]
    fn maps_and_stored_text() {
        assert!(JsonObject::from_map(&Map::new()).is_empty());
        let mut m = Map::new();
        m.insert("plan".into(), Value::from("pro"));
        assert_eq!(JsonObject::from_map(&m).text(), Some(r#"{"plan":"pro"}"#));
        assert!(JsonObject::from_stored(Some("{}".into())).is_empty());
        assert!(JsonObject::from_stored(Some(" { } ".into())).is_empty());
        assert!(JsonObject::from_stored(None).is_empty());
        assert_eq!(
            JsonObject::from_stored(Some(r#"{"a":1}"#.into())).text(),
            Some(r#"{"a":1}"#)
        );
    }
}

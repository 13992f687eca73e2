//! Reading an event's JSON without building a tree of it.
//!
//! An event is read once, field by field, into borrowed views: ids and names as strings that
//! point into the request (copied only when they hold escapes), `properties` / `traits` /
//! `context` as their raw text, which is what the store keeps. Parsing into
//! `serde_json::Value` instead built a B-tree map per object, and storing the event serialized
//! those maps back to text: parsing and preparing 1M simulated events on one thread took 3.7 s
//! that way and 1.8–2.2 s this way (the writer bench, BENCHMARKS.md).
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
    /// The JSON type name, for error messages.
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

impl<'a> From<&'a serde_json::Value> for Scalar<'a> {
    /// A value already parsed into a tree (PostHog events, CSV rows): the same checks apply.
    fn from(v: &'a serde_json::Value) -> Self {
        use serde_json::Value;
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => Scalar::Number(n.clone()),
            Value::String(s) => Scalar::String(Cow::Borrowed(s)),
            Value::Array(_) => Scalar::Array,
            Value::Object(_) => Scalar::Object,
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

/// A JSON value's text exactly as it was sent, validated (a field kept whole: `properties`,
/// `traits`, `context`). Read through serde_json's `RawValue`, or by [`crate::wire_scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw<'a>(pub(crate) &'a str);

impl<'a> Raw<'a> {
    /// The text.
    pub(crate) fn get(self) -> &'a str {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| Raw(r.get()))
    }
}

/// Defines a view of a JSON object: a struct of optional fields, each read from the member of
/// the given name (the last one wins when a name repeats), every other member skipped unread;
/// `extra` fields are never read from the JSON (left None by serde).
macro_rules! object_view {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty = $key:literal,)* }
     $(extra { $($(#[$xdoc:meta])* $xfield:ident: $xty:ty,)* })?) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub(crate) struct $name<'a> {
            $($(#[$fdoc])* pub $field: Option<$ty>,)*
            $($($(#[$xdoc])* pub $xfield: Option<$xty>,)*)?
        }

        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Self::Value, A::Error> {
                        let mut view = $name::default();
                        // Names are read as `Scalar`s, borrowed unless they hold escapes
                        // (serde's own `Cow<str>` always copies: an allocation per name).
                        while let Some(key) = map.next_key::<Scalar<'de>>()? {
                            let name = match &key {
                                Scalar::String(name) => name.as_ref(),
                                _ => "",
                            };
                            match name {
                                $($key => view.$field = Some(map.next_value()?),)*
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(view)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

object_view! {
    /// The fields of a Segment event that upmarket reads (and whether a PostHog `distinct_id` is
    /// there, which tells an import which parser a line needs).
    WireEvent {
        kind: Scalar<'a> = "type",
        user_id: Scalar<'a> = "userId",
        anonymous_id: Scalar<'a> = "anonymousId",
        group_id: Scalar<'a> = "groupId",
        previous_id: Scalar<'a> = "previousId",
        message_id: Scalar<'a> = "messageId",
        event: Scalar<'a> = "event",
        name: Scalar<'a> = "name",
        timestamp: Scalar<'a> = "timestamp",
        original_timestamp: Scalar<'a> = "originalTimestamp",
        sent_at: Scalar<'a> = "sentAt",
        received_at: Scalar<'a> = "receivedAt",
        /// The objects, as their text.
        properties: Raw<'a> = "properties",
        traits: Raw<'a> = "traits",
        context: Raw<'a> = "context",
        distinct_id: IgnoredAny = "distinct_id",
    } extra {
        /// `context`'s own view, when the reading picked it up on the way
        /// ([`crate::wire_scan`]); else it is read from `context`'s text.
        context_view: ContextView<'a>,
    }
}

object_view! {
    /// What identity needs from `context`: its `groupId` and `traits`.
    ContextView {
        group_id: Scalar<'a> = "groupId",
        traits: Raw<'a> = "traits",
    }
}

/// What identity needs from `context` (a JSON object's text): its `groupId` and `traits`. The
/// object is read only when its text could name either: contexts that SDKs send are mostly
/// `library`, `page`, `userAgent`, `ip`…, and parsing them a second time was a quarter of
/// reading a typical analytics.js track event (1.32 µs, 1.00 with this check). A name written
/// with an escape (`\u0067roupId`) contains a backslash, so it is read too: by
/// [`crate::wire_scan::context`] when it can vouch for the text, else by serde_json.
pub(crate) fn context_view(text: &str) -> ContextView<'_> {
    use memchr::memmem::Finder;
    use std::sync::OnceLock;
    // SIMD substring searches, built once (with `str::contains` the check cost ~0.05 µs).
    static NAMES: OnceLock<[Finder<'static>; 2]> = OnceLock::new();
    let names = NAMES.get_or_init(|| [Finder::new("groupId"), Finder::new("traits")]);
    let bytes = text.as_bytes();
    let may_name = names.iter().any(|n| n.find(bytes).is_some());
    if !may_name && memchr::memchr(b'\\', bytes).is_none() {
        return ContextView::default();
    }
    crate::wire_scan::context(text)
        .unwrap_or_else(|| serde_json::from_str(text).unwrap_or_default())
}

object_view! {
    /// What identity needs from a traits object: `email`.
    TraitsView {
        email: Scalar<'a> = "email",
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

/// `s` without leading and trailing whitespace ([`str::trim`]), checking the two ends' bytes
/// first: ids and names rarely have any, and `trim`'s Unicode search was ~1.5% of an import.
pub(crate) fn trimmed(s: &str) -> &str {
    let clean = |b: Option<&u8>| b.is_some_and(|&c| c > b' ' && c < 0x80);
    let bytes = s.as_bytes();
    if clean(bytes.first()) && clean(bytes.last()) {
        s
    } else {
        s.trim()
    }
}

/// The e-mail an object of traits holds: `email`, a non-empty string, trimmed.
pub(crate) fn email_in(traits_json: &str) -> Option<String> {
    match serde_json::from_str::<TraitsView>(traits_json)
        .ok()?
        .email?
    {
        Scalar::String(s) => Some(trimmed(&s).to_string()).filter(|e| !e.is_empty()),
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
        assert_eq!(w.properties.map(Raw::get), Some(r#"{"b":2, "a":"x"}"#));
        assert_eq!(w.context.map(Raw::get), Some("null"));
        assert!(w.distinct_id.is_some());
        assert_eq!(w.anonymous_id, None);
    }

    /// Strings, and so member names (read as `Scalar`s), are borrowed from the input unless
    /// they hold escapes; an escaped name still names its field.
    #[test]
    fn strings_are_borrowed_unless_escaped_and_escaped_names_still_match() {
        let key = |json| serde_json::from_str::<Scalar>(json).unwrap();
        assert!(matches!(
            key(r#""userId""#),
            Scalar::String(Cow::Borrowed("userId"))
        ));
        assert!(matches!(key(r#""user\u0049d""#), Scalar::String(Cow::Owned(k)) if k == "userId"));
        let w: WireEvent = serde_json::from_str(r#"{"user\u0049d":"u1"}"#).unwrap();
        assert_eq!(w.user_id, Some(Scalar::String("u1".into())));
    }

    #[test]
    fn the_last_of_duplicate_keys_wins() {
        let w: WireEvent = serde_json::from_str(r#"{"userId":"a","userId":"b"}"#).unwrap();
        assert_eq!(w.user_id, Some(Scalar::String("b".into())));
    }

    #[test]
    fn a_context_is_read_for_group_and_traits_however_its_names_are_written() {
        let group = |text: &str| match context_view(text).group_id {
            Some(Scalar::String(s)) => Some(s.to_string()),
            _ => None,
        };
        assert_eq!(
            group(r#"{"library":{"name":"x"},"groupId":"ws1"}"#).as_deref(),
            Some("ws1")
        );
        assert_eq!(group(r#"{"\u0067roupId":"ws2"}"#).as_deref(), Some("ws2"));
        assert_eq!(
            group(r#"{"library":{"name":"analytics.js"},"page":{"path":"/"}}"#),
            None
        );
        let traits = context_view(r#"{"traits":{"email":"a@b.co"}}"#)
            .traits
            .map(Raw::get);
        assert_eq!(traits, Some(r#"{"email":"a@b.co"}"#));
        assert!(context_view(r#"{"tr\u0061its":{"email":"a@b.co"}}"#)
            .traits
            .is_some());
        assert!(context_view("not json but groupId").group_id.is_none());
    }

    /// The scan finds what serde_json finds, for every shape of member before, around and
    /// inside the ones wanted; what it declines, serde_json reads, to the same view.
    #[test]
    fn a_scanned_context_equals_the_parsed_one() {
        let same = |a: &ContextView, b: &ContextView, text: &str| {
            assert_eq!(a.group_id, b.group_id, "{text}");
            assert_eq!(a.traits.map(Raw::get), b.traits.map(Raw::get), "{text}");
        };
        let scanned = [
            r#"{"groupId":"ws1","library":{"name":"x"}}"#,
            r#"{"library":{"name":"x","groupId":"nested"},"groupId":"top"}"#,
            r#" { "groupId" : 42 , "traits" : { "email" : "a@b.co" , "n" : [1,{"x":"}"}] } } "#,
            r#"{"groupId":null,"traits":null}"#,
            r#"{"groupId":"a","groupId":"b","traits":{"email":"x@y.z"},"traits":{}}"#,
            r#"{"page":{"path":"/a,b}"},"groupId":true,"ip":"1.2.3.4"}"#,
            r#"{"traits":"text","groupId":"{not an object}"}"#,
            r#"{}"#,
            r#"{"a":[],"b":{},"groupId":"é"}"#,
        ];
        for text in scanned {
            let parsed: ContextView = serde_json::from_str(text).unwrap();
            same(&crate::wire_scan::context(text).expect(text), &parsed, text);
        }
        let declined = [
            r#"{"groupId":["x"],"traits":[1,2]}"#,
            r#"{"groupId":1.5e3}"#,
            r#"{"gr\u006fupId":"g"}"#,
        ];
        for text in declined {
            assert!(crate::wire_scan::context(text).is_none(), "{text}");
            let parsed: ContextView = serde_json::from_str(text).unwrap();
            same(&context_view(text), &parsed, text);
        }
        for not_an_object in ["[1]", "null", r#""groupId""#, "", "{", r#"{"groupId""#] {
            assert!(
                crate::wire_scan::context(not_an_object).is_none(),
                "{not_an_object}"
            );
        }
    }

    #[test]
    fn trimming_checks_the_ends_then_trims_any_whitespace() {
        for s in [
            "abc",
            " abc",
            "abc\t",
            "\u{3000}abc\u{3000}",
            "a b",
            "",
            "   ",
            "é",
            "\u{a0}x",
        ] {
            assert_eq!(trimmed(s), s.trim(), "{s:?}");
        }
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

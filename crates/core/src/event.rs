//! The normalized event every route and importer produces.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::json_object::JsonObject;

/// The Segment call type of an event. PostHog events are mapped onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Something a user did (`event` names it).
    Track,
    /// Who a user is (`traits`).
    Identify,
    /// A user belongs to a group (workspace / organization), `groupId` names it.
    Group,
    /// A web page view.
    Page,
    /// A mobile screen view.
    Screen,
    /// Two ids are the same person (`previousId` → `userId`).
    Alias,
}

impl EventKind {
    /// Every call type.
    pub const ALL: [EventKind; 6] = [
        EventKind::Track,
        EventKind::Identify,
        EventKind::Group,
        EventKind::Page,
        EventKind::Screen,
        EventKind::Alias,
    ];

    /// The lowercase Segment name of the call type.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Track => "track",
            EventKind::Identify => "identify",
            EventKind::Group => "group",
            EventKind::Page => "page",
            EventKind::Screen => "screen",
            EventKind::Alias => "alias",
        }
    }

    /// Parses a Segment call type name (case-insensitive).
    pub fn parse(s: &str) -> Option<EventKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// Which protocol or path an event came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestSource {
    /// Segment / RudderStack HTTP Tracking API.
    Segment,
    /// PostHog capture API.
    Posthog,
    /// `upmarket import`.
    Import,
}

impl IngestSource {
    /// Lowercase name stored with each event.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestSource::Segment => "segment",
            IngestSource::Posthog => "posthog",
            IngestSource::Import => "import",
        }
    }
}

/// One validated event, in Segment's vocabulary.
///
/// Invariants (established by the parsers): at least one of `user_id` / `anonymous_id` is set;
/// `message_id` is never empty; a track event has `event`; a group event has `group_id`; an alias
/// has `previous_id` and `user_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Call type.
    pub kind: EventKind,
    /// Track: the event name ("Report Created").
    pub event: Option<String>,
    /// Page / screen: the page name.
    pub name: Option<String>,
    /// The known user id.
    pub user_id: Option<String>,
    /// The anonymous (device / cookie) id.
    pub anonymous_id: Option<String>,
    /// Group / workspace id: the group call's `groupId`, or `context.groupId`, or a PostHog group.
    pub group_id: Option<String>,
    /// Alias: the id being merged into `user_id`.
    pub previous_id: Option<String>,
    /// Unique id; retries of one event carry the same one. Generated from content when absent.
    pub message_id: String,
    /// When the event happened, corrected for client clock skew (Segment's rule:
    /// `receivedAt - (sentAt - originalTimestamp)`).
    pub timestamp: DateTime<Utc>,
    /// The timestamp as the client sent it.
    pub original_timestamp: Option<DateTime<Utc>>,
    /// When the client sent the batch.
    pub sent_at: Option<DateTime<Utc>>,
    /// When upmarket (or the original collector, for imports) received it.
    pub received_at: DateTime<Utc>,
    /// Track / page / screen properties.
    pub properties: JsonObject,
    /// Identify / group traits.
    pub traits: JsonObject,
    /// Segment `context` (library, page, ip, traits...).
    pub context: JsonObject,
    /// The user's e-mail: an identify call's `traits.email`, else `context.traits.email`
    /// (trimmed; see [`email_of`]).
    pub email: Option<String>,
    /// How it came in.
    pub source: IngestSource,
}

impl Event {
    /// The id that names the person behind the event before alias resolution:
    /// `userId` when known, else `anonymousId`.
    pub fn distinct_id(&self) -> &str {
        self.user_id
            .as_deref()
            .or(self.anonymous_id.as_deref())
            .unwrap_or_default()
    }

    /// The user's e-mail, from identify traits or `context.traits`.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// A 128-bit key derived from `message_id`, used as the store's deduplication key.
    pub fn dedup_key(&self) -> i128 {
        xxhash_rust::xxh3::xxh3_128(self.message_id.as_bytes()) as i128
    }
}

/// The e-mail an event of `kind` with these traits and context carries: for identify calls
/// `traits.email`, else (and for every other call) `context.traits.email`; a non-empty string,
/// trimmed. The parsers fill [`Event::email`] with it.
pub fn email_of(kind: EventKind, traits: &JsonObject, context: &JsonObject) -> Option<String> {
    let view = context.text().map(crate::wire::context_view);
    let context_traits = view.as_ref().and_then(|v| v.traits).map(|t| t.get());
    crate::wire::email_from(kind, traits.text(), context_traits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_types_parse_in_any_case_and_nothing_else_does() {
        for kind in EventKind::ALL {
            let name = kind.as_str();
            assert_eq!(EventKind::parse(name), Some(kind));
            assert_eq!(EventKind::parse(&name.to_ascii_uppercase()), Some(kind));
        }
        for other in ["", "tracks", "trac", " track", "capture"] {
            assert_eq!(EventKind::parse(other), None, "{other:?}");
        }
    }
}

//! The identity facts one batch of events declares, aggregated so that each key is written once
//! per batch (DuckDB's upsert refuses to touch one row twice in a statement).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use upmarket_core::identity::{email_domain, normalize_domain};
use upmarket_core::posthog::GROUP_IDENTIFY;
use upmarket_core::{Event, EventKind, IngestSource, JsonObject};

/// A user row to upsert.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct UserFacts {
    pub email: Option<String>,
    pub traits: Map<String, Value>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
}

/// A workspace row to upsert.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct WorkspaceFacts {
    pub traits: Map<String, Value>,
    pub first_seen: Option<DateTime<Utc>>,
}

/// A map by string, hashed with aHash: every event of a batch looks its ids up here (with
/// SipHash, hashing was ~3.5% of the applier's CPU samples under load).
pub(crate) type IdMap<V> = HashMap<String, V, ahash::RandomState>;

/// Everything a batch says about identity.
#[derive(Debug, Default)]
pub(crate) struct IdentityBatch {
    pub users: IdMap<UserFacts>,
    /// alias → (user, since); the earliest mapping in the batch wins.
    pub aliases: IdMap<(String, DateTime<Utc>)>,
    /// user → workspace → since.
    pub memberships: IdMap<IdMap<DateTime<Utc>>>,
    pub workspaces: IdMap<WorkspaceFacts>,
    /// The plain events (see [`Run`]) since the last other one, all of the same ids: their
    /// times only, applied by [`IdentityBatch::settle`] (which whatever reads the maps calls).
    run: Option<Run>,
}

/// Events that can only widen times their ids already have in the batch: track, page and
/// screen calls without an e-mail, following an event of the same user, anonymous and group
/// ids. SDKs and exports send a person's events one after another, so most events are such;
/// their three map lookups were ~860 instructions an event (callgrind, 200k events).
#[derive(Debug)]
struct Run {
    user: Option<String>,
    anon: Option<String>,
    group: Option<String>,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Run {
    fn plain(e: &Event) -> bool {
        matches!(
            e.kind,
            EventKind::Track | EventKind::Page | EventKind::Screen
        ) && e.email().is_none()
    }

    fn continues(&self, e: &Event) -> bool {
        self.user == e.user_id && self.anon == e.anonymous_id && self.group == e.group_id
    }
}

/// Runs `f` on the value under `key`, inserted (default) when missing. The key is copied only
/// then, and found with one lookup when present: most events name ids the batch has already
/// seen (a lookup to test and another to fetch were ~2.5% of an import's instructions).
fn with_slot<V: Default, R>(map: &mut IdMap<V>, key: &str, f: impl FnOnce(&mut V) -> R) -> R {
    match map.get_mut(key) {
        Some(v) => f(v),
        None => f(map.entry(key.to_owned()).or_default()),
    }
}

fn widen(range: (&mut Option<DateTime<Utc>>, &mut Option<DateTime<Utc>>), t: DateTime<Utc>) {
    let (first, last) = range;
    *first = Some(first.map_or(t, |f| f.min(t)));
    *last = Some(last.map_or(t, |l| l.max(t)));
}

impl IdentityBatch {
    /// Adds one event's facts.
    pub(crate) fn add(&mut self, e: &Event) {
        let t = e.timestamp;
        let plain = Run::plain(e);
        if let Some(run) = self.run.as_mut().filter(|r| plain && r.continues(e)) {
            run.first = run.first.min(t);
            run.last = run.last.max(t);
            return;
        }
        self.settle();
        if plain {
            self.run = Some(Run {
                user: e.user_id.clone(),
                anon: e.anonymous_id.clone(),
                group: e.group_id.clone(),
                first: t,
                last: t,
            });
        } else {
            self.apply(e, t, t);
        }
    }

    /// Applies the run of plain events, if any: its ids' facts over its first and last times
    /// (every fact a plain event gives is an earliest or a latest time, so these two are all
    /// the run's events would have given one by one).
    pub(crate) fn settle(&mut self) {
        let Some(run) = self.run.take() else {
            return;
        };
        let e = Event {
            kind: EventKind::Track,
            event: None,
            name: None,
            user_id: run.user,
            anonymous_id: run.anon,
            group_id: run.group,
            previous_id: None,
            message_id: String::new(),
            timestamp: run.first,
            original_timestamp: None,
            sent_at: None,
            received_at: run.first,
            properties: JsonObject::empty(),
            traits: JsonObject::empty(),
            context: JsonObject::empty(),
            email: None,
            source: IngestSource::Import,
        };
        self.apply(&e, run.first, run.last);
    }

    /// The facts of an event, or of a run of plain ones, from `t` (its earliest time) to
    /// `last`.
    fn apply(&mut self, e: &Event, t: DateTime<Utc>, last: DateTime<Utc>) {
        // Users: anyone with a userId, with traits from identify calls.
        if let Some(user) = &e.user_id {
            with_slot(&mut self.users, user, |facts| {
                widen((&mut facts.first_seen, &mut facts.last_seen), t);
                widen((&mut facts.first_seen, &mut facts.last_seen), last);
                if e.kind == EventKind::Identify {
                    facts.traits.extend(e.traits.to_map());
                }
                if let Some(email) = e.email() {
                    facts.email = Some(email.to_string());
                }
            });
        }
        // Aliases: an anonymousId seen with a userId is that user; alias calls merge ids.
        let mut link = |alias: &str, user: &str| {
            if alias == user {
                return;
            }
            match self.aliases.get_mut(alias) {
                Some((u, since)) => {
                    if t < *since {
                        *u = user.to_string();
                        *since = t;
                    }
                }
                None => {
                    self.aliases
                        .insert(alias.to_string(), (user.to_string(), t));
                }
            }
        };
        match (&e.kind, &e.user_id, &e.anonymous_id, &e.previous_id) {
            (EventKind::Alias, Some(user), _, Some(previous)) => link(previous, user),
            (_, Some(user), Some(anon), _) => link(anon, user),
            _ => {}
        }
        // Memberships: a group call, or any event that names its group. PostHog's
        // $groupidentify only describes the group, it does not make its sender a member.
        let declares_group_only =
            e.kind == EventKind::Group && e.event.as_deref() == Some(GROUP_IDENTIFY);
        if let Some(ws) = &e.group_id {
            if !declares_group_only {
                with_slot(
                    &mut self.memberships,
                    e.distinct_id(),
                    |of_user| match of_user.get_mut(ws.as_str()) {
                        Some(since) => *since = (*since).min(t),
                        None => {
                            of_user.insert(ws.clone(), t);
                        }
                    },
                );
            }
            with_slot(&mut self.workspaces, ws, |facts| {
                facts.first_seen = Some(facts.first_seen.map_or(t, |f| f.min(t)));
                if e.kind == EventKind::Group {
                    facts.traits.extend(e.traits.to_map());
                }
            });
        }
    }
}

impl UserFacts {
    pub(crate) fn email_domain(&self) -> Option<String> {
        self.email.as_deref().and_then(email_domain)
    }
}

impl WorkspaceFacts {
    pub(crate) fn name(&self) -> Option<String> {
        self.traits
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The domain a group call declares: `domain`, else `website`.
    pub(crate) fn domain(&self) -> Option<String> {
        ["domain", "website"].iter().find_map(|k| {
            self.traits
                .get(*k)
                .and_then(Value::as_str)
                .and_then(normalize_domain)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upmarket_core::segment::{parse_event, BatchDefaults, ParseContext};

    fn event(json: &str) -> Event {
        let ctx = ParseContext {
            received_at: Utc::now(),
            source: IngestSource::Import,
            max_event_bytes: 32 * 1024,
            trust_received_at: true,
        };
        parse_event(json, None, &BatchDefaults::default(), &ctx).unwrap()
    }

    /// Runs of plain events give the batch exactly the facts the events give one by one
    /// (settling after each event leaves no run).
    #[test]
    fn a_run_of_plain_events_gives_what_its_events_give() {
        let t = |n: u32| format!("2026-01-01T00:{:02}:00Z", n % 60);
        let mut lines = Vec::new();
        for (i, (user, anon, group)) in [
            ("u1", "a1", "w1"),
            ("u1", "a1", "w1"),
            ("u1", "a1", "w1"),
            ("u1", "a2", "w1"),
            ("u2", "a1", "w2"),
            ("u2", "a1", "w2"),
        ]
        .into_iter()
        .enumerate()
        {
            // Out of time order on purpose: a run's first and last times are its extremes.
            for (j, minute) in [30u32, 10, 50].into_iter().enumerate() {
                let n = minute + i as u32;
                lines.push(format!(
                    r#"{{"type":"track","event":"E","userId":"{user}","anonymousId":"{anon}","context":{{"groupId":"{group}"}},"timestamp":"{}","messageId":"m{i}-{j}"}}"#,
                    t(n)
                ));
            }
        }
        // Calls that are not plain break runs: an identify, an e-mail in context, an alias.
        lines.insert(4, r#"{"type":"identify","userId":"u1","traits":{"email":"x@acme.com"},"timestamp":"2026-01-01T00:05:00Z"}"#.into());
        lines.insert(8, r#"{"type":"page","userId":"u1","anonymousId":"a1","context":{"groupId":"w1","traits":{"email":"y@acme.com"}},"timestamp":"2026-01-01T00:01:00Z"}"#.into());
        lines.insert(12, r#"{"type":"alias","userId":"u3","previousId":"u2","timestamp":"2026-01-01T00:02:00Z"}"#.into());
        let events: Vec<Event> = lines.iter().map(|l| event(l)).collect();
        let (mut runs, mut one_by_one) = (IdentityBatch::default(), IdentityBatch::default());
        for e in &events {
            runs.add(e);
            one_by_one.add(e);
            one_by_one.settle();
        }
        runs.settle();
        assert_eq!(runs.users, one_by_one.users);
        assert_eq!(runs.aliases, one_by_one.aliases);
        assert_eq!(runs.memberships, one_by_one.memberships);
        assert_eq!(runs.workspaces, one_by_one.workspaces);
        let u1 = &runs.users["u1"];
        assert_eq!(u1.email.as_deref(), Some("y@acme.com"));
        assert_eq!(
            u1.first_seen.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-01-01T00:01:00+00:00")
        );
    }
}

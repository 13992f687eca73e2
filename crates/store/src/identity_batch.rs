//! The identity facts one batch of events declares, aggregated so that each key is written once
//! per batch (DuckDB's upsert refuses to touch one row twice in a statement).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use upmarket_core::identity::{email_domain, normalize_domain};
use upmarket_core::posthog::GROUP_IDENTIFY;
use upmarket_core::{Event, EventKind};

/// A user row to upsert.
#[derive(Debug, Default)]
pub(crate) struct UserFacts {
    pub email: Option<String>,
    pub traits: Map<String, Value>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
}

/// A workspace row to upsert.
#[derive(Debug, Default)]
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
        // Users: anyone with a userId, with traits from identify calls.
        if let Some(user) = &e.user_id {
            with_slot(&mut self.users, user, |facts| {
                widen((&mut facts.first_seen, &mut facts.last_seen), t);
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

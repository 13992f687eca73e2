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

/// Everything a batch says about identity.
#[derive(Debug, Default)]
pub(crate) struct IdentityBatch {
    pub users: HashMap<String, UserFacts>,
    /// alias → (user, since); the earliest mapping in the batch wins.
    pub aliases: HashMap<String, (String, DateTime<Utc>)>,
    /// (user, workspace) → since.
    pub memberships: HashMap<(String, String), DateTime<Utc>>,
    pub workspaces: HashMap<String, WorkspaceFacts>,
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
            let facts = self.users.entry(user.clone()).or_default();
            widen((&mut facts.first_seen, &mut facts.last_seen), t);
            if e.kind == EventKind::Identify {
                facts.traits.extend(e.traits.to_map());
            }
            if let Some(email) = e.email() {
                facts.email = Some(email.to_string());
            }
        }
        // Aliases: an anonymousId seen with a userId is that user; alias calls merge ids.
        let mut link = |alias: &str, user: &str| {
            if alias != user {
                self.aliases
                    .entry(alias.to_string())
                    .and_modify(|(u, since)| {
                        if t < *since {
                            *u = user.to_string();
                            *since = t;
                        }
                    })
                    .or_insert_with(|| (user.to_string(), t));
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
                let key = (e.distinct_id().to_string(), ws.clone());
                self.memberships
                    .entry(key)
                    .and_modify(|s| *s = (*s).min(t))
                    .or_insert(t);
            }
            let facts = self.workspaces.entry(ws.clone()).or_default();
            facts.first_seen = Some(facts.first_seen.map_or(t, |f| f.min(t)));
            if e.kind == EventKind::Group {
                facts.traits.extend(e.traits.to_map());
            }
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

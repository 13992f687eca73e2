//! What the single writer remembers of identity between commits, so that a steady stream of
//! events costs almost no identity writes: per user and per workspace, what the store already
//! holds, so that a row is rewritten only when an event says something new about it (a new
//! e-mail, new traits, an earlier first-seen, a last-seen more than
//! [`LAST_SEEN_RESOLUTION_SECS`] later), and the aliases and memberships already written.
//!
//! Everything here is a cache of committed state: after a failed transaction it is cleared,
//! and after a restart it starts empty (the first writes then go through the upserts, which
//! are correct either way). The keys of stored events are not a cache: see `stored_keys.rs`.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// `users.last_seen` is refreshed at most this often per user (it orders a person's e-mail
/// domains; an hour is far finer than that needs).
pub const LAST_SEEN_RESOLUTION_SECS: i64 = 3600;

/// A stable-within-process fingerprint of a traits object; [`EMPTY_TRAITS`] for no traits.
pub(crate) fn traits_hash(traits: &Map<String, Value>) -> u64 {
    if traits.is_empty() {
        return EMPTY_TRAITS;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    // serde_json's Map is ordered (BTreeMap), so equal objects serialize equally.
    serde_json::to_string(traits)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish().max(1)
}

/// What the store holds for one user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserState {
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub email: Option<String>,
    pub traits: u64,
}

impl UserState {
    /// Whether writing `next` would change the stored row in a way that matters.
    pub(crate) fn outdated_by(&self, next: &UserState) -> bool {
        next.first_seen < self.first_seen
            || (next.last_seen - self.last_seen).num_seconds() >= LAST_SEEN_RESOLUTION_SECS
            || (next.email.is_some() && next.email != self.email)
            || (next.traits != EMPTY_TRAITS && next.traits != self.traits)
    }

    /// The state after `next` was merged into the stored row.
    pub(crate) fn merged(&self, next: &UserState) -> UserState {
        UserState {
            first_seen: self.first_seen.min(next.first_seen),
            last_seen: self.last_seen.max(next.last_seen),
            email: next.email.clone().or_else(|| self.email.clone()),
            traits: if next.traits == EMPTY_TRAITS {
                self.traits
            } else {
                next.traits
            },
        }
    }
}

/// The fingerprint of "no traits".
pub(crate) const EMPTY_TRAITS: u64 = 0;

/// What the store holds for one workspace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct WorkspaceState {
    pub first_seen: DateTime<Utc>,
    pub traits: u64,
}

impl WorkspaceState {
    pub(crate) fn outdated_by(&self, next: &WorkspaceState) -> bool {
        next.first_seen < self.first_seen
            || (next.traits != EMPTY_TRAITS && next.traits != self.traits)
    }

    pub(crate) fn merged(&self, next: &WorkspaceState) -> WorkspaceState {
        WorkspaceState {
            first_seen: self.first_seen.min(next.first_seen),
            traits: if next.traits == EMPTY_TRAITS {
                self.traits
            } else {
                next.traits
            },
        }
    }
}

/// The writer's memory of committed state.
#[derive(Debug, Default)]
pub(crate) struct WriteCache {
    pub users: HashMap<String, UserState>,
    pub workspaces: HashMap<String, WorkspaceState>,
    /// Aliases already written.
    pub aliases: HashSet<String>,
    /// Memberships already written, with their `since`.
    pub memberships: HashMap<(String, String), DateTime<Utc>>,
}

impl WriteCache {
    /// Forgets the identity state (after a rolled-back transaction it may name its rows).
    pub(crate) fn forget_identity(&mut self) {
        self.users.clear();
        self.workspaces.clear();
        self.aliases.clear();
        self.memberships.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap()
    }

    #[test]
    fn a_user_row_is_rewritten_only_for_news() {
        let stored = UserState {
            first_seen: at(1),
            last_seen: at(2),
            email: Some("a@x.com".into()),
            traits: 7,
        };
        let same = UserState {
            first_seen: at(2),
            last_seen: at(2),
            email: None,
            traits: EMPTY_TRAITS,
        };
        assert!(!stored.outdated_by(&same));
        let later = UserState {
            last_seen: at(3),
            ..same.clone()
        };
        assert!(stored.outdated_by(&later));
        let new_mail = UserState {
            email: Some("a@y.com".into()),
            ..same.clone()
        };
        assert!(stored.outdated_by(&new_mail));
        let new_traits = UserState {
            traits: 8,
            ..same.clone()
        };
        assert!(stored.outdated_by(&new_traits));
        assert_eq!(stored.merged(&new_traits).traits, 8);
        assert_eq!(stored.merged(&same), stored);
    }

    #[test]
    fn only_empty_traits_hash_to_empty() {
        let mut m = Map::new();
        assert_eq!(traits_hash(&m), EMPTY_TRAITS);
        m.insert("plan".into(), Value::from("pro"));
        assert_ne!(traits_hash(&m), EMPTY_TRAITS);
    }
}

//! Writing identity facts (users, aliases, memberships, workspaces) set-based: each table's new
//! rows are appended to a temp table, then merged with one prepared statement (per-row upserts
//! cost milliseconds each). The writer's cache ([`WriteCache`]) drops facts the store already
//! holds, so a steady stream of events from known people writes nothing here.

use chrono::{DateTime, NaiveDateTime, Utc};
use duckdb::{params, Connection};
use upmarket_core::{email_of, Event, EventKind, IngestSource, JsonObject};

use crate::duckdb_store::{json_or_null, run, ts};
use crate::identity_batch::IdentityBatch;
use crate::write_cache::{traits_hash, UserState, WorkspaceState, WriteCache};
use crate::StoreError;

/// The temp tables the merges read.
pub(crate) const STAGING: &str = r#"
CREATE OR REPLACE TEMP TABLE staging_users (user_id VARCHAR, email VARCHAR, email_domain VARCHAR, traits VARCHAR, first_seen TIMESTAMP, last_seen TIMESTAMP);
CREATE OR REPLACE TEMP TABLE staging_aliases (alias VARCHAR, user_id VARCHAR, since TIMESTAMP);
CREATE OR REPLACE TEMP TABLE staging_memberships (user_id VARCHAR, workspace_id VARCHAR, since TIMESTAMP);
CREATE OR REPLACE TEMP TABLE staging_workspaces (workspace_id VARCHAR, name VARCHAR, domain VARCHAR, traits VARCHAR, first_seen TIMESTAMP);
"#;

/// Records that identity facts are applied for every event up to `seq`.
pub(crate) fn set_applied_through(conn: &Connection, seq: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE identity_state SET through_seq = ?")?
        .execute(params![seq])?;
    Ok(())
}

/// Up to which event identity facts are applied.
pub(crate) fn applied_through(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row("SELECT max(through_seq) FROM identity_state", [], |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .unwrap_or(0))
}

/// The identity facts of the stored events after `seq` (what a crash may have left unapplied).
pub(crate) fn facts_after(conn: &Connection, seq: i64) -> Result<IdentityBatch, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT message_id, type, event, name, user_id, anonymous_id, group_id, previous_id,
                timestamp, received_at, traits::VARCHAR, context::VARCHAR
         FROM events WHERE seq > ? ORDER BY seq",
    )?;
    let mut rows = stmt.query(params![seq])?;
    let mut batch = IdentityBatch::default();
    while let Some(r) = rows.next()? {
        let kind: String = r.get(1)?;
        let Some(kind) = EventKind::parse(&kind) else {
            continue;
        };
        let timestamp: NaiveDateTime = r.get(8)?;
        let received: NaiveDateTime = r.get(9)?;
        let traits = JsonObject::from_stored(r.get(10)?);
        let context = JsonObject::from_stored(r.get(11)?);
        batch.add(&Event {
            kind,
            message_id: r.get(0)?,
            event: r.get(2)?,
            name: r.get(3)?,
            user_id: r.get(4)?,
            anonymous_id: r.get(5)?,
            group_id: r.get(6)?,
            previous_id: r.get(7)?,
            timestamp: timestamp.and_utc(),
            original_timestamp: None,
            sent_at: None,
            received_at: received.and_utc(),
            properties: JsonObject::empty(),
            email: email_of(kind, &traits, &context),
            traits,
            context,
            source: IngestSource::Import,
        });
    }
    Ok(batch)
}

/// Writes `batch`, skipping what `cache` says is stored already, and records what it wrote in
/// `cache`. Runs inside the caller's transaction.
/// Writes a batch's identity facts set-based: each table's rows are appended to a temp
/// table, then merged with one statement (per-row upserts cost milliseconds each).
pub(crate) fn write_identity(
    conn: &Connection,
    cache: &mut WriteCache,
    batch: &mut IdentityBatch,
) -> Result<(), StoreError> {
    batch.settle();
    let mut users = Vec::new();
    for (id, u) in &batch.users {
        let (Some(first), Some(last)) = (u.first_seen, u.last_seen) else {
            continue;
        };
        let next = UserState {
            first_seen: first,
            last_seen: last,
            email: u.email.clone(),
            traits: traits_hash(&u.traits),
        };
        match cache.users.get_mut(id) {
            Some(known) if !known.outdated_by(&next) => {}
            Some(known) => {
                *known = known.merged(&next);
                users.push((id, u, first, last));
            }
            None => {
                cache.users.insert(id.clone(), next);
                users.push((id, u, first, last));
            }
        }
    }
    if !users.is_empty() {
        run(conn, "DELETE FROM temp.staging_users")?;
        let mut app = conn.appender_to_catalog_and_db("staging_users", "temp", "main")?;
        for (id, u, first, last) in users {
            app.append_row(params![
                id,
                u.email,
                u.email_domain(),
                json_or_null(&u.traits)?,
                ts(first),
                ts(last)
            ])?;
        }
        app.flush()?;
        drop(app);
        run(conn, MERGE_USERS)?;
    }
    let new_aliases: Vec<(&String, &(String, DateTime<Utc>))> = batch
        .aliases
        .iter()
        .filter(|(a, _)| !cache.aliases.contains(*a))
        .collect();
    if !new_aliases.is_empty() {
        run(conn, "DELETE FROM temp.staging_aliases")?;
        let mut app = conn.appender_to_catalog_and_db("staging_aliases", "temp", "main")?;
        for (alias, (user, since)) in &new_aliases {
            app.append_row(params![alias, user, ts(*since)])?;
        }
        app.flush()?;
        drop(app);
        run(conn, MERGE_ALIASES)?;
        for (alias, _) in new_aliases {
            cache.aliases.insert(alias.clone());
        }
    }
    let new_members: Vec<((String, String), DateTime<Utc>)> = batch
        .memberships
        .iter()
        .flat_map(|(user, of_user)| {
            of_user
                .iter()
                .map(move |(ws, since)| ((user.clone(), ws.clone()), *since))
        })
        .filter(|(k, since)| cache.memberships.get(k).is_none_or(|known| since < known))
        .collect();
    if !new_members.is_empty() {
        run(conn, "DELETE FROM temp.staging_memberships")?;
        let mut app = conn.appender_to_catalog_and_db("staging_memberships", "temp", "main")?;
        for ((user, ws), since) in &new_members {
            app.append_row(params![user, ws, ts(*since)])?;
        }
        app.flush()?;
        drop(app);
        run(conn, MERGE_MEMBERSHIPS)?;
        cache.memberships.extend(new_members);
    }
    let mut workspaces = Vec::new();
    for (id, w) in &batch.workspaces {
        let Some(first) = w.first_seen else { continue };
        let next = WorkspaceState {
            first_seen: first,
            traits: traits_hash(&w.traits),
        };
        match cache.workspaces.get_mut(id) {
            Some(known) if !known.outdated_by(&next) => {}
            Some(known) => {
                *known = known.merged(&next);
                workspaces.push((id, w, first));
            }
            None => {
                cache.workspaces.insert(id.clone(), next);
                workspaces.push((id, w, first));
            }
        }
    }
    if !workspaces.is_empty() {
        run(conn, "DELETE FROM temp.staging_workspaces")?;
        let mut app = conn.appender_to_catalog_and_db("staging_workspaces", "temp", "main")?;
        for (id, w, first) in workspaces {
            app.append_row(params![
                id,
                w.name(),
                w.domain(),
                json_or_null(&w.traits)?,
                ts(first)
            ])?;
        }
        app.flush()?;
        drop(app);
        run(conn, MERGE_WORKSPACES)?;
    }
    Ok(())
}

const MERGE_USERS: &str = r#"
INSERT INTO users SELECT user_id, email, email_domain, traits::JSON, first_seen, last_seen FROM temp.staging_users
ON CONFLICT (user_id) DO UPDATE SET
    email = coalesce(excluded.email, users.email),
    email_domain = coalesce(excluded.email_domain, users.email_domain),
    traits = CASE WHEN excluded.traits IS NULL THEN users.traits
                  WHEN users.traits IS NULL THEN excluded.traits
                  ELSE json_merge_patch(users.traits, excluded.traits) END,
    first_seen = least(users.first_seen, excluded.first_seen),
    last_seen = greatest(users.last_seen, excluded.last_seen)
"#;

// An alias of an alias points at the final person; the first mapping of an id wins.
const MERGE_ALIASES: &str = r#"
INSERT INTO aliases
SELECT s.alias, coalesce(a.user_id, s.user_id), s.since
FROM temp.staging_aliases s LEFT JOIN aliases a ON a.alias = s.user_id
ON CONFLICT (alias) DO NOTHING
"#;

const MERGE_MEMBERSHIPS: &str = r#"
INSERT INTO memberships SELECT user_id, workspace_id, since FROM temp.staging_memberships
ON CONFLICT (user_id, workspace_id) DO UPDATE SET since = least(memberships.since, excluded.since)
"#;

const MERGE_WORKSPACES: &str = r#"
INSERT INTO workspaces SELECT workspace_id, name, domain, traits::JSON, first_seen FROM temp.staging_workspaces
ON CONFLICT (workspace_id) DO UPDATE SET
    name = coalesce(excluded.name, workspaces.name),
    domain = coalesce(excluded.domain, workspaces.domain),
    traits = CASE WHEN excluded.traits IS NULL THEN workspaces.traits
                  WHEN workspaces.traits IS NULL THEN excluded.traits
                  ELSE json_merge_patch(workspaces.traits, excluded.traits) END,
    first_seen = least(workspaces.first_seen, excluded.first_seen)
"#;

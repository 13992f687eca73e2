//! The embedded backend: one DuckDB file in the data directory.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value as DbValue};
use duckdb::{params, Connection, OptionalExt};
use serde_json::{Map, Value};
use upmarket_core::{Event, FreeMailDomains};

use crate::identity_batch::IdentityBatch;
use crate::schema::MIGRATIONS;
use crate::{
    AccountSignals, AppendStatus, Attribution, HistoryPoint, Store, StoreError, StoreSession,
    StoreStats, StoredScore, TierChange,
};
use chrono::{NaiveDate, NaiveDateTime};
use upmarket_core::model::{Level, Model, ScoreDetails};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "upmarket.duckdb";

/// The embedded DuckDB store. The value itself is the writing handle; [`Store::reader`] gives
/// read handles on the same database for other threads.
pub struct DuckDbStore {
    conn: Connection,
    path: PathBuf,
    /// Aliases already written, so that the common case (every event of an identified user
    /// carries the same anonymousId) costs no write.
    known_aliases: HashSet<String>,
    /// Memberships already written, with their `since`.
    known_memberships: HashMap<(String, String), DateTime<Utc>>,
}

fn ts(t: DateTime<Utc>) -> DbValue {
    DbValue::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

fn opt_ts(t: Option<DateTime<Utc>>) -> DbValue {
    t.map_or(DbValue::Null, ts)
}

fn json_or_null(m: &Map<String, Value>) -> Result<Option<String>, StoreError> {
    if m.is_empty() {
        Ok(None)
    } else {
        Ok(Some(serde_json::to_string(m)?))
    }
}

impl DuckDbStore {
    /// Opens (creating if needed) the store in `data_dir`, applies pending migrations and sets
    /// the free-mail domain list.
    pub fn open(data_dir: &Path, free_mail: &FreeMailDomains) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path)?;
        Self::from_connection(conn, path, free_mail)
    }

    /// An in-memory store, for tests and benchmarks.
    pub fn open_in_memory(free_mail: &FreeMailDomains) -> Result<Self, StoreError> {
        Self::from_connection(
            Connection::open_in_memory()?,
            PathBuf::from(":memory:"),
            free_mail,
        )
    }

    fn from_connection(
        conn: Connection,
        path: PathBuf,
        free_mail: &FreeMailDomains,
    ) -> Result<Self, StoreError> {
        migrate(&conn)?;
        conn.execute_batch(STAGING)?;
        let mut store = DuckDbStore {
            conn,
            path,
            known_aliases: HashSet::new(),
            known_memberships: HashMap::new(),
        };
        store.set_free_mail_domains(free_mail)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the free-mail domain list (takes effect on the next read).
    pub fn set_free_mail_domains(&mut self, free_mail: &FreeMailDomains) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM free_mail_domains", [])?;
        {
            let mut app = tx.appender("free_mail_domains")?;
            for d in free_mail.sorted() {
                app.append_row(params![d])?;
            }
            app.flush()?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A read-only SQL connection on the same database, for the CLI and tests.
    pub fn sql_connection(&self) -> Result<Connection, StoreError> {
        Ok(self.conn.try_clone()?)
    }

    fn stage_events(&self, events: &[(usize, &Event)]) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM temp.staging_events", [])?;
        let mut app = self
            .conn
            .appender_to_catalog_and_db("staging_events", "temp", "main")?;
        for (ord, e) in events {
            app.append_row(params![
                DbValue::HugeInt(e.dedup_key()),
                *ord as i64,
                e.message_id,
                e.kind.as_str(),
                e.event,
                e.name,
                e.user_id,
                e.anonymous_id,
                e.group_id,
                e.previous_id,
                ts(e.timestamp),
                opt_ts(e.original_timestamp),
                opt_ts(e.sent_at),
                ts(e.received_at),
                json_or_null(&e.properties)?,
                json_or_null(&e.traits)?,
                json_or_null(&e.context)?,
                e.source.as_str(),
            ])?;
        }
        app.flush()?;
        Ok(())
    }

    /// Writes a batch's identity facts set-based: each table's rows are appended to a temp
    /// table, then merged with one statement (per-row upserts cost milliseconds each).
    fn write_identity(&mut self, batch: &IdentityBatch) -> Result<(), StoreError> {
        let conn = &self.conn;
        if !batch.users.is_empty() {
            conn.execute("DELETE FROM temp.staging_users", [])?;
            let mut app = conn.appender_to_catalog_and_db("staging_users", "temp", "main")?;
            for (id, u) in &batch.users {
                let (Some(first), Some(last)) = (u.first_seen, u.last_seen) else {
                    continue;
                };
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
            conn.execute_batch(MERGE_USERS)?;
        }
        let new_aliases: Vec<(&String, &(String, DateTime<Utc>))> = batch
            .aliases
            .iter()
            .filter(|(a, _)| !self.known_aliases.contains(*a))
            .collect();
        if !new_aliases.is_empty() {
            conn.execute("DELETE FROM temp.staging_aliases", [])?;
            let mut app = conn.appender_to_catalog_and_db("staging_aliases", "temp", "main")?;
            for (alias, (user, since)) in &new_aliases {
                app.append_row(params![alias, user, ts(*since)])?;
            }
            app.flush()?;
            drop(app);
            conn.execute_batch(MERGE_ALIASES)?;
            for (alias, _) in new_aliases {
                self.known_aliases.insert(alias.clone());
            }
        }
        let new_members: Vec<(&(String, String), &DateTime<Utc>)> = batch
            .memberships
            .iter()
            .filter(|(k, since)| {
                self.known_memberships
                    .get(*k)
                    .is_none_or(|known| *since < known)
            })
            .collect();
        if !new_members.is_empty() {
            conn.execute("DELETE FROM temp.staging_memberships", [])?;
            let mut app = conn.appender_to_catalog_and_db("staging_memberships", "temp", "main")?;
            for (key, since) in &new_members {
                app.append_row(params![key.0, key.1, ts(**since)])?;
            }
            app.flush()?;
            drop(app);
            conn.execute_batch(MERGE_MEMBERSHIPS)?;
            for (key, since) in new_members {
                self.known_memberships.insert(key.clone(), *since);
            }
        }
        if !batch.workspaces.is_empty() {
            conn.execute("DELETE FROM temp.staging_workspaces", [])?;
            let mut app = conn.appender_to_catalog_and_db("staging_workspaces", "temp", "main")?;
            for (id, w) in &batch.workspaces {
                let Some(first) = w.first_seen else { continue };
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
            conn.execute_batch(MERGE_WORKSPACES)?;
        }
        Ok(())
    }
}

impl Store for DuckDbStore {
    fn append(&mut self, events: &[Event]) -> Result<Vec<AppendStatus>, StoreError> {
        let mut statuses = vec![AppendStatus::Duplicate; events.len()];
        // Within the batch, the first copy of a messageId is the one stored.
        let mut seen = HashSet::with_capacity(events.len());
        let unique: Vec<(usize, &Event)> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| seen.insert(e.dedup_key()))
            .collect();
        if unique.is_empty() {
            return Ok(statuses);
        }
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        let result = (|| -> Result<HashSet<i128>, StoreError> {
            let t0 = std::time::Instant::now();
            self.stage_events(&unique)?;
            let t1 = std::time::Instant::now();
            let mut stmt = self.conn.prepare_cached(INSERT_EVENTS)?;
            let inserted = stmt
                .query_map([], |row| row.get::<_, i128>(0))?
                .collect::<Result<HashSet<_>, _>>()?;
            drop(stmt);
            let t2 = std::time::Instant::now();
            let new_events = unique
                .iter()
                .filter(|(_, e)| inserted.contains(&e.dedup_key()))
                .map(|(_, e)| *e);
            let identity = IdentityBatch::collect(new_events);
            self.write_identity(&identity)?;
            tracing::debug!(
                events = unique.len(),
                stage_ms = (t1 - t0).as_millis() as u64,
                insert_ms = (t2 - t1).as_millis() as u64,
                identity_ms = t2.elapsed().as_millis() as u64,
                "append"
            );
            Ok(inserted)
        })();
        match result {
            Ok(inserted) => {
                self.conn.execute_batch("COMMIT")?;
                for (i, e) in &unique {
                    if inserted.contains(&e.dedup_key()) {
                        statuses[*i] = AppendStatus::Stored;
                    }
                }
                Ok(statuses)
            }
            Err(err) => {
                // The caches may name rows of the rolled-back transaction.
                self.known_aliases.clear();
                self.known_memberships.clear();
                if let Err(rollback) = self.conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %rollback, "rollback failed");
                }
                Err(err)
            }
        }
    }

    fn reader(&self) -> Result<Box<dyn StoreSession>, StoreError> {
        Ok(Box::new(DuckDbSession {
            conn: self.conn.try_clone()?,
        }))
    }
}

/// A read handle on a [`DuckDbStore`].
pub struct DuckDbSession {
    conn: Connection,
}

impl StoreSession for DuckDbSession {
    fn fork(&self) -> Result<Box<dyn StoreSession>, StoreError> {
        Ok(Box::new(DuckDbSession {
            conn: self.conn.try_clone()?,
        }))
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let count = |sql: &str| -> Result<u64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok(StoreStats {
            events: count("SELECT count(*) FROM events")?,
            people: count("SELECT count(DISTINCT person) FROM event_attribution")?,
            workspaces: count("SELECT count(*) FROM workspace_companies")?,
            companies: count(
                "SELECT count(DISTINCT company_id) FROM (SELECT company_id FROM workspace_companies UNION ALL SELECT company_id FROM person_companies) WHERE company_id IS NOT NULL",
            )?,
        })
    }

    fn attribution(&self, message_id: &str) -> Result<Option<Attribution>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT person, workspace_id, company_id FROM event_attribution WHERE message_id = ?",
        )?;
        Ok(stmt
            .query_row(params![message_id], |r| {
                Ok(Attribution {
                    person: r.get(0)?,
                    workspace_id: r.get(1)?,
                    company_id: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn message_counts(&self, message_ids: &[String]) -> Result<HashMap<String, u64>, StoreError> {
        let mut counts: HashMap<String, u64> = message_ids.iter().map(|m| (m.clone(), 0)).collect();
        let tx_conn = &self.conn;
        tx_conn.execute_batch("CREATE OR REPLACE TEMP TABLE wanted_ids (message_id VARCHAR)")?;
        {
            let mut app = tx_conn.appender_to_catalog_and_db("wanted_ids", "temp", "main")?;
            for m in message_ids {
                app.append_row(params![m])?;
            }
            app.flush()?;
        }
        let mut stmt = tx_conn.prepare("SELECT e.message_id, count(*) FROM events e JOIN temp.wanted_ids w USING (message_id) GROUP BY 1")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (id, n) = row?;
            counts.insert(id, n as u64);
        }
        Ok(counts)
    }

    fn person_of(&self, id: &str) -> Result<String, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT person FROM person_ids WHERE id = ?")?;
        Ok(stmt
            .query_row(params![id], |r| r.get(0))
            .optional()?
            .unwrap_or_else(|| id.to_string()))
    }

    fn workspace_company(&self, workspace_id: &str) -> Result<Option<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT company_id FROM workspace_companies WHERE workspace_id = ?")?;
        Ok(stmt
            .query_row(params![workspace_id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    fn measure(
        &self,
        model: &Model,
        as_of: NaiveDateTime,
        accounts: Option<&[String]>,
    ) -> Result<Vec<AccountSignals>, StoreError> {
        crate::scoring::measure(&self.conn, model, as_of, accounts)
    }

    fn save_current_scores(
        &self,
        model: &Model,
        as_of: NaiveDateTime,
        scores: &[(String, ScoreDetails)],
    ) -> Result<Vec<TierChange>, StoreError> {
        crate::scores::save_current(&self.conn, model, as_of, scores)
    }

    fn save_history(
        &self,
        model: &Model,
        day: NaiveDate,
        scores: &[(String, ScoreDetails)],
    ) -> Result<(), StoreError> {
        crate::scores::save_history(&self.conn, model, day, scores)
    }

    fn current_scores(
        &self,
        model: &Model,
        tier: Option<&str>,
    ) -> Result<Vec<StoredScore>, StoreError> {
        crate::scores::current(&self.conn, model, tier)
    }

    fn history(&self, model: &Model, account: &str) -> Result<Vec<HistoryPoint>, StoreError> {
        crate::scores::history(&self.conn, model, account)
    }

    fn tier_changes(&self, model: &Model, limit: usize) -> Result<Vec<TierChange>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT changed_at, account_id, from_tier, to_tier, score FROM tier_changes WHERE level = ? AND model_name = ? AND model_version = ? ORDER BY changed_at DESC, account_id LIMIT ?",
        )?;
        let rows = stmt.query_map(
            params![
                crate::scores::level_str(model.level),
                model.name,
                model.version,
                limit as i64
            ],
            |r| {
                Ok(TierChange {
                    at: r.get(0)?,
                    account_id: r.get(1)?,
                    from_tier: r.get(2)?,
                    to_tier: r.get(3)?,
                    score: r.get(4)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn latest_event_time(&self) -> Result<Option<NaiveDateTime>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT max(timestamp) FROM events", [], |r| {
                r.get::<_, Option<NaiveDateTime>>(0)
            })?)
    }

    fn touched_accounts(
        &self,
        level: Level,
        after_seq: i64,
    ) -> Result<(Vec<String>, i64), StoreError> {
        let col = match level {
            Level::Workspace => "workspace_id",
            Level::Company => "company_id",
        };
        let newest: i64 =
            self.conn
                .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?;
        if newest <= after_seq {
            return Ok((Vec::new(), newest));
        }
        // People who sent new events, then every account they count for.
        let sql = format!(
            "SELECT DISTINCT {col} FROM event_attribution WHERE {col} IS NOT NULL AND person IN (
                SELECT DISTINCT coalesce(a.person, e.user_id, e.anonymous_id) FROM events e
                LEFT JOIN person_ids a ON a.id = coalesce(e.user_id, e.anonymous_id)
                WHERE e.seq > ? AND e.seq <= ?) ORDER BY 1"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![after_seq, newest], |r| r.get::<_, String>(0))?;
        Ok((rows.collect::<Result<Vec<_>, _>>()?, newest))
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")?;
    let current: i64 = conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: newest,
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tracing::info!(version, name, "applying migration");
        conn.execute_batch(&format!("BEGIN TRANSACTION; {sql}; INSERT INTO schema_migrations (version, name) VALUES ({version}, {}); COMMIT;", crate::sql::quote_literal(name)))?;
    }
    Ok(())
}

const STAGING: &str = r#"
CREATE OR REPLACE TEMP TABLE staging_events (
    msg_key HUGEINT, ord BIGINT, message_id VARCHAR, type VARCHAR, event VARCHAR, name VARCHAR,
    user_id VARCHAR, anonymous_id VARCHAR, group_id VARCHAR, previous_id VARCHAR,
    timestamp TIMESTAMP, original_timestamp TIMESTAMP, sent_at TIMESTAMP, received_at TIMESTAMP,
    properties VARCHAR, traits VARCHAR, context VARCHAR, source VARCHAR
);
CREATE OR REPLACE TEMP TABLE staging_users (user_id VARCHAR, email VARCHAR, email_domain VARCHAR, traits VARCHAR, first_seen TIMESTAMP, last_seen TIMESTAMP);
CREATE OR REPLACE TEMP TABLE staging_aliases (alias VARCHAR, user_id VARCHAR, since TIMESTAMP);
CREATE OR REPLACE TEMP TABLE staging_memberships (user_id VARCHAR, workspace_id VARCHAR, since TIMESTAMP);
CREATE OR REPLACE TEMP TABLE staging_workspaces (workspace_id VARCHAR, name VARCHAR, domain VARCHAR, traits VARCHAR, first_seen TIMESTAMP);
"#;

const INSERT_EVENTS: &str = r#"
INSERT OR IGNORE INTO events
SELECT msg_key, nextval('event_seq'), message_id, type, event, name, user_id, anonymous_id,
       group_id, previous_id, timestamp, original_timestamp, sent_at, received_at,
       properties::JSON, traits::JSON, context::JSON, source
FROM temp.staging_events ORDER BY ord
RETURNING msg_key
"#;

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

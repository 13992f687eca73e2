//! The versioned schema. Migrations are applied in order, each in its own transaction, and
//! recorded in `schema_migrations`; a database newer than this build is refused.
//!
//! All timestamps are UTC, stored as `TIMESTAMP` (microseconds).

/// The migrations, in order. Never edit a released one: append a new one.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "events and identity", V1),
    (2, "scores", V2),
    (3, "identity watermark", V3),
    (4, "attribution without ASOF for grouped events", V4),
    (5, "daily rollups registry", V5),
    (6, "identity lookup indexes", V6),
    (7, "account rows registry", V7),
    (
        8,
        "events deduplicated by the writer, not a primary key",
        V8,
    ),
    (9, "account rows keep old events folded", V9),
    (10, "message ids compressed with zstd", V10),
    (11, "call types and sources as enums", V11),
];

const V1: &str = r#"
CREATE SEQUENCE IF NOT EXISTS event_seq;

-- Every event as it came, in Segment's vocabulary. msg_key is a 128-bit hash of messageId:
-- the primary key that makes a retried event land once.
CREATE TABLE events (
    msg_key            HUGEINT PRIMARY KEY,
    seq                BIGINT NOT NULL,
    message_id         VARCHAR NOT NULL,
    type               VARCHAR NOT NULL,
    event              VARCHAR,
    name               VARCHAR,
    user_id            VARCHAR,
    anonymous_id       VARCHAR,
    group_id           VARCHAR,
    previous_id        VARCHAR,
    timestamp          TIMESTAMP NOT NULL,
    original_timestamp TIMESTAMP,
    sent_at            TIMESTAMP,
    received_at        TIMESTAMP NOT NULL,
    properties         JSON,
    traits             JSON,
    context            JSON,
    source             VARCHAR NOT NULL
);

-- Known users: identify calls, and any event that carried an e-mail.
CREATE TABLE users (
    user_id      VARCHAR PRIMARY KEY,
    email        VARCHAR,
    email_domain VARCHAR,
    traits       JSON,
    first_seen   TIMESTAMP NOT NULL,
    last_seen    TIMESTAMP NOT NULL
);

-- id → person: anonymousIds seen with a userId, and alias calls (previousId → userId).
-- The first mapping of an id wins.
CREATE TABLE aliases (
    alias   VARCHAR PRIMARY KEY,
    user_id VARCHAR NOT NULL,
    since   TIMESTAMP NOT NULL
);

-- Who belongs to which workspace, from group calls and events that name a group.
CREATE TABLE memberships (
    user_id      VARCHAR NOT NULL,
    workspace_id VARCHAR NOT NULL,
    since        TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, workspace_id)
);

-- Workspaces declared by group calls (traits, declared domain).
CREATE TABLE workspaces (
    workspace_id VARCHAR PRIMARY KEY,
    name         VARCHAR,
    domain       VARCHAR,
    traits       JSON,
    first_seen   TIMESTAMP NOT NULL
);

-- Domains that never form a company; rewritten from configuration at every start.
CREATE TABLE free_mail_domains (domain VARCHAR PRIMARY KEY);

-- id → canonical person.
CREATE VIEW person_ids AS
SELECT alias AS id, user_id AS person FROM aliases;

-- A person's company: the domain of a work e-mail.
CREATE VIEW person_companies AS
SELECT coalesce(a.user_id, u.user_id) AS person,
       first(u.email_domain ORDER BY u.last_seen DESC) AS company_id
FROM users u
LEFT JOIN aliases a ON a.alias = u.user_id
WHERE u.email_domain IS NOT NULL
  AND u.email_domain NOT IN (SELECT domain FROM free_mail_domains)
GROUP BY ALL;

-- Memberships keyed by canonical person.
CREATE VIEW person_memberships AS
SELECT coalesce(a.user_id, m.user_id) AS person, m.workspace_id, min(m.since) AS since
FROM memberships m
LEFT JOIN aliases a ON a.alias = m.user_id
GROUP BY ALL;

-- A workspace's company: the domain its group traits declare, else the work-email domain most
-- of its members share. Several workspaces of one domain so roll up into one company.
CREATE VIEW workspace_companies AS
WITH declared AS (
    SELECT workspace_id, domain FROM workspaces
    WHERE domain IS NOT NULL AND domain NOT IN (SELECT domain FROM free_mail_domains)
), voted AS (
    SELECT workspace_id, first(company_id ORDER BY n DESC, company_id) AS company_id
    FROM (
        SELECT pm.workspace_id, pc.company_id, count(*) AS n
        FROM person_memberships pm JOIN person_companies pc USING (person)
        GROUP BY ALL
    ) GROUP BY workspace_id
), all_ws AS (
    SELECT workspace_id FROM workspaces UNION SELECT workspace_id FROM memberships
)
SELECT w.workspace_id, coalesce(d.domain, v.company_id) AS company_id
FROM all_ws w LEFT JOIN declared d USING (workspace_id) LEFT JOIN voted v USING (workspace_id);

-- Every event with the person, workspace and company it counts for.
--   person:    userId (or anonymousId), through the alias map;
--   workspace: the event's own group, else the membership the person had declared at the
--              event's time, else the first workspace the person ever joined (so history from
--              before the group call joins too);
--   company:   the workspace's company, else the person's work-email domain.
CREATE VIEW event_attribution AS
WITH ev AS (
    SELECT e.*, coalesce(au.person, e.user_id, aa.person, e.anonymous_id) AS person
    FROM events e
    LEFT JOIN person_ids au ON au.id = e.user_id
    LEFT JOIN person_ids aa ON aa.id = e.anonymous_id
), first_membership AS (
    SELECT person, first(workspace_id ORDER BY since, workspace_id) AS workspace_id
    FROM person_memberships GROUP BY person
), placed AS (
    SELECT ev.*, coalesce(ev.group_id, pm.workspace_id, fm.workspace_id) AS workspace_id
    FROM ev
    ASOF LEFT JOIN person_memberships pm ON ev.person = pm.person AND ev.timestamp >= pm.since
    LEFT JOIN first_membership fm ON fm.person = ev.person
)
SELECT p.*, coalesce(wc.company_id, pc.company_id) AS company_id
FROM placed p
LEFT JOIN workspace_companies wc ON wc.workspace_id = p.workspace_id
LEFT JOIN person_companies pc ON pc.person = p.person;
"#;

const V2: &str = r#"
-- The latest score of each account under each model version, with its explanation.
CREATE TABLE current_scores (
    level         VARCHAR NOT NULL,
    account_id    VARCHAR NOT NULL,
    model_name    VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    as_of         TIMESTAMP NOT NULL,
    score         DOUBLE NOT NULL,
    tier          VARCHAR NOT NULL,
    pqa           BOOLEAN NOT NULL,
    details       JSON NOT NULL,
    PRIMARY KEY (level, account_id, model_name, model_version)
);

-- One score per account per day: trends, tier entries, time to PQA.
CREATE TABLE score_history (
    day           DATE NOT NULL,
    level         VARCHAR NOT NULL,
    account_id    VARCHAR NOT NULL,
    model_name    VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    score         DOUBLE NOT NULL,
    tier          VARCHAR NOT NULL,
    pqa           BOOLEAN NOT NULL,
    PRIMARY KEY (day, level, account_id, model_name, model_version)
);

-- Every change of tier, as an event for alerts and KPIs.
CREATE TABLE tier_changes (
    changed_at    TIMESTAMP NOT NULL,
    level         VARCHAR NOT NULL,
    account_id    VARCHAR NOT NULL,
    model_name    VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    from_tier     VARCHAR,
    to_tier       VARCHAR NOT NULL,
    score         DOUBLE NOT NULL
);
"#;

const V3: &str = r#"
-- Identity facts (users, aliases, memberships, workspaces) are derived from events; the writer
-- may apply them a little after the events commit (the server batches them). through_seq says
-- up to which event they are applied: at open, the store replays the events after it, so a
-- crash between the two loses nothing.
CREATE TABLE identity_state (through_seq BIGINT NOT NULL);
INSERT INTO identity_state SELECT coalesce(max(seq), 0) FROM events;
"#;

// The same rules as V1's view, placed faster: events that carry their group skip the ASOF
// membership lookup (crate::attribution, which also serves scoring over subsets).
const V4: &str = r#"
CREATE OR REPLACE VIEW event_attribution AS
WITH ev AS (
    SELECT e.*, coalesce(au.person, e.user_id, aa.person, e.anonymous_id) AS person
    FROM events e
    LEFT JOIN person_ids au ON au.id = e.user_id
    LEFT JOIN person_ids aa ON aa.id = e.anonymous_id
), first_membership AS (
    SELECT person, first(workspace_id ORDER BY since, workspace_id) AS workspace_id
    FROM person_memberships GROUP BY person
), placed AS (
    SELECT ev.*, ev.group_id AS workspace_id FROM ev WHERE ev.group_id IS NOT NULL
    UNION ALL
    SELECT ev.*, coalesce(pm.workspace_id, fm.workspace_id) AS workspace_id
    FROM (SELECT * FROM ev WHERE ev.group_id IS NULL) ev
    ASOF LEFT JOIN person_memberships pm ON ev.person = pm.person AND ev.timestamp >= pm.since
    LEFT JOIN first_membership fm ON fm.person = ev.person
)
SELECT p.*, coalesce(wc.company_id, pc.company_id) AS company_id
FROM placed p
LEFT JOIN workspace_companies wc ON wc.workspace_id = p.workspace_id
LEFT JOIN person_companies pc ON pc.person = p.person;
"#;

/// Daily rollups (see `rollup.rs`): one table per model definition, named by a hash of its
/// partial aggregates, registered here with the last event (`seq`) it covers.
const V5: &str = r#"
CREATE TABLE rollups (
    name        VARCHAR PRIMARY KEY,
    through_seq BIGINT NOT NULL,
    extended_at TIMESTAMP NOT NULL
);
"#;

/// Indexes for the re-scorer's identity lookups (an account's members, a person's ids and
/// memberships): without them each lookup scans the whole table (~14 ms for `aliases.user_id`
/// at 100M events). The identity writes update only `since`, which no index covers.
const V6: &str = r#"
CREATE INDEX aliases_user ON aliases (user_id);
CREATE INDEX memberships_workspace ON memberships (workspace_id);
CREATE INDEX memberships_user ON memberships (user_id);
"#;

/// Account rows (see `account_rows.rs`): per model definition, a sorted base table and a delta
/// of sorted runs, covering the events with `seq <= through_seq` (the base those up to
/// `base_through_seq`).
const V7: &str = r#"
CREATE TABLE account_row_tables (
    name             VARCHAR PRIMARY KEY,
    base_through_seq BIGINT NOT NULL,
    through_seq      BIGINT NOT NULL,
    delta_runs       BIGINT NOT NULL,
    extended_at      TIMESTAMP NOT NULL
);
"#;

/// `events` without its primary key: the writer deduplicates against the keys of every stored
/// event, which it holds in memory (`stored_keys.rs`). The key's index cost more than all the
/// rest of DuckDB's work on an append: DuckDB itself loads 1M events into this table in 2.75 s
/// with it and 1.75 s without, and commits them 3,200 at a time in 4.1 s with it and 2.5 s
/// without; its cost grew with the table (the 10M import ran at 80k events/s, the 100M one
/// at 54k). The rows are copied in their order (`seq`, and the layout account rows rely on).
const V8: &str = r#"
CREATE TABLE events_unkeyed (
    msg_key            HUGEINT NOT NULL,
    seq                BIGINT NOT NULL,
    message_id         VARCHAR NOT NULL,
    type               VARCHAR NOT NULL,
    event              VARCHAR,
    name               VARCHAR,
    user_id            VARCHAR,
    anonymous_id       VARCHAR,
    group_id           VARCHAR,
    previous_id        VARCHAR,
    timestamp          TIMESTAMP NOT NULL,
    original_timestamp TIMESTAMP,
    sent_at            TIMESTAMP,
    received_at        TIMESTAMP NOT NULL,
    properties         JSON,
    traits             JSON,
    context            JSON,
    source             VARCHAR NOT NULL
);
INSERT INTO events_unkeyed SELECT * FROM events;
DROP TABLE events;
ALTER TABLE events_unkeyed RENAME TO events;
"#;

/// Account rows whose base keeps the events older than `kept_from` only folded, one row per
/// key and ids with their last time (see `account_rows.rs`, "What the base keeps"). NULL:
/// every event is kept (bases built before this migration).
const V9: &str = r#"
ALTER TABLE account_row_tables ADD COLUMN kept_from TIMESTAMP;
"#;

/// `events` with `message_id` compressed by zstd. Message ids are unique, so DuckDB's default
/// choice for text (a dictionary, then FSST over it) builds a dictionary that never repeats and
/// trains a symbol table for each segment: in the 10M-event import that was ~4 CPU-seconds of
/// ~41 (events part 18.2–19.0 s against 16.4–17.4 s with zstd, the same 61 bytes an event on
/// disk). Nothing scans the column in bulk (deduplication reads `msg_key`). DuckDB sets a
/// column's compression only when the table is created, so the rows are copied, in their order.
const V10: &str = r#"
CREATE TABLE events_zstd (
    msg_key            HUGEINT NOT NULL,
    seq                BIGINT NOT NULL,
    message_id         VARCHAR NOT NULL USING COMPRESSION ZSTD,
    type               VARCHAR NOT NULL,
    event              VARCHAR,
    name               VARCHAR,
    user_id            VARCHAR,
    anonymous_id       VARCHAR,
    group_id           VARCHAR,
    previous_id        VARCHAR,
    timestamp          TIMESTAMP NOT NULL,
    original_timestamp TIMESTAMP,
    sent_at            TIMESTAMP,
    received_at        TIMESTAMP NOT NULL,
    properties         JSON,
    traits             JSON,
    context            JSON,
    source             VARCHAR NOT NULL
);
INSERT INTO events_zstd SELECT * FROM events;
DROP TABLE events;
ALTER TABLE events_zstd RENAME TO events;
"#;

/// `type` and `source` as ENUMs of their closed sets (the names `crate::event_rows` writes by
/// number: `EVENT_TYPES`, `EVENT_SOURCES`). As text, DuckDB analyzed, hashed and dictionary-
/// compressed two strings an event at every commit: ~2.1 CPU-seconds of a 10M-event load
/// against ~0.9 as ENUMs written from their numbers (Python's DuckDB 2.0: the two columns
/// with `seq`, ~0.3 of each figure), and half the bytes. Queries compare them with text as before (`type = 'track'`); a
/// name outside the set is refused by the insert. DuckDB cannot add a member to an ENUM, so a
/// new call type or source needs a migration that retypes the column.
const V11: &str = r#"
CREATE TYPE event_type AS ENUM ('track', 'identify', 'group', 'page', 'screen', 'alias');
CREATE TYPE event_source AS ENUM ('segment', 'posthog', 'import');
ALTER TABLE events ALTER COLUMN type SET DATA TYPE event_type;
ALTER TABLE events ALTER COLUMN source SET DATA TYPE event_source;
"#;

//! DuckDB's own loads of the NDJSON file: the baselines of `ingest-http` and `import` (the
//! `load-json` subcommand, run in its own process so its peak memory is its own).
//!
//! - `auto`: `CREATE TABLE AS SELECT * FROM read_json(...)`, columns and nested types detected
//!   (no key, no constraint): DuckDB's raw bulk load, the baseline the targets are set against.
//! - `upmarket`: the same file into upmarket's own `events` table (its migrations: typed
//!   columns, JSON text, the primary key that deduplication needs), key and sequence computed
//!   in SQL. What DuckDB itself costs for upmarket's storage, with no validation at all.
//! - `upmarket` with `--commit-events N`: the rows (parsed first, untimed) appended to that
//!   table in durable transactions of N events each, as upmarket's single writer commits them:
//!   DuckDB's own floor for group commits of that size.

use std::path::Path;
use std::time::Instant;

/// Which table `load-json` loads into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Whatever `read_json` detects.
    Auto,
    /// upmarket's `events` table.
    Upmarket,
}

impl Shape {
    /// The name `--shape` takes.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Auto => "auto",
            Shape::Upmarket => "upmarket",
        }
    }
}

/// The events of the file as rows of upmarket's `events` table.
fn upmarket_rows(events: &Path) -> String {
    let path = events.display().to_string().replace('\'', "''");
    format!(
        "SELECT (md5_number(messageId) >> 1)::HUGEINT AS msg_key, row_number() OVER () AS seq, messageId, type, \
         event, name, userId, anonymousId, groupId, previousId, timestamp, timestamp, sentAt, \
         coalesce(receivedAt, timestamp), properties, traits, context, 'import' \
         FROM read_json('{path}', format = 'newline_delimited', maximum_object_size = 1048576, \
         columns = {{type: 'VARCHAR', event: 'VARCHAR', name: 'VARCHAR', messageId: 'VARCHAR', \
         userId: 'VARCHAR', anonymousId: 'VARCHAR', groupId: 'VARCHAR', previousId: 'VARCHAR', \
         timestamp: 'TIMESTAMP', sentAt: 'TIMESTAMP', receivedAt: 'TIMESTAMP', \
         properties: 'JSON', traits: 'JSON', context: 'JSON'}})"
    )
}

/// Loads `events` into a fresh database `db` and prints `{"events": n, "secs": s}`.
pub fn load_json(
    events: &Path,
    db: &Path,
    shape: Shape,
    commit_events: Option<usize>,
) -> anyhow::Result<()> {
    let conn = duckdb::Connection::open(db)?;
    let secs = match shape {
        Shape::Auto => {
            let path = events.display().to_string().replace('\'', "''");
            let started = Instant::now();
            conn.execute_batch(&format!(
                "CREATE TABLE events AS SELECT * FROM read_json('{path}', format = 'newline_delimited', maximum_object_size = 1048576); CHECKPOINT;"
            ))?;
            started.elapsed().as_secs_f64()
        }
        Shape::Upmarket => {
            for (_, _, sql) in upmarket_store::schema::MIGRATIONS {
                conn.execute_batch(sql)?;
            }
            // As upmarket's store sets it (a checkpoint per 1 GB of WAL).
            conn.execute_batch(&format!(
                "SET checkpoint_threshold = '{}'",
                upmarket_store::CHECKPOINT_THRESHOLD
            ))?;
            match commit_events {
                None => {
                    let started = Instant::now();
                    conn.execute_batch(&format!(
                        "INSERT INTO events {}; CHECKPOINT;",
                        upmarket_rows(events)
                    ))?;
                    started.elapsed().as_secs_f64()
                }
                Some(n) => durable_commits(&conn, events, n.max(1))?,
            }
        }
    };
    let n: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    println!("{}", serde_json::json!({"events": n, "secs": secs}));
    Ok(())
}

/// Parses the file into a temporary table (untimed), then appends its rows to `events` in
/// transactions of `n` rows; returns the seconds the transactions took.
fn durable_commits(conn: &duckdb::Connection, events: &Path, n: usize) -> anyhow::Result<f64> {
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE parsed AS {}",
        upmarket_rows(events)
    ))?;
    let rows: i64 = conn.query_row("SELECT count(*) FROM parsed", [], |r| r.get(0))?;
    let mut insert =
        conn.prepare("INSERT INTO events SELECT * FROM parsed WHERE seq BETWEEN ? AND ?")?;
    let started = Instant::now();
    let mut first = 1i64;
    while first <= rows {
        let last = first + n as i64 - 1;
        conn.execute_batch("BEGIN TRANSACTION")?;
        insert.execute([first, last])?;
        conn.execute_batch("COMMIT")?;
        first = last + 1;
    }
    Ok(started.elapsed().as_secs_f64())
}

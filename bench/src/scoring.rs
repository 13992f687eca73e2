//! The scoring benchmark: full scoring of every account by `upmarket score`, against the same
//! signals hand-written in DuckDB SQL over the raw events (bench/baselines/default_model.sql) and
//! in pandas (bench/baselines/default_model_pandas.py), on the same database in the same run;
//! then the incremental re-score of single accounts, as the server's re-scorer does it.
//!
//! Each side runs as its own process under `/usr/bin/time`, so wall time and peak memory are
//! measured the same way for all three.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{NaiveDate, NaiveDateTime};
use upmarket_core::model::{Model, SignalValue};
use upmarket_core::FreeMailDomains;
use upmarket_store::{DuckDbStore, StoreSession};

/// What `/usr/bin/time -f "%e %M"` reports: wall seconds and peak RSS.
pub struct Measured {
    pub secs: f64,
    pub peak_mib: u64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` under `/usr/bin/time`, capturing stdout.
pub fn timed(program: &Path, args: &[String]) -> anyhow::Result<Measured> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "TIME %e %M"])
        .arg(program)
        .args(args)
        .env("UPMARKET_LOG", "warn")
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {stderr}",
        program.display()
    );
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("TIME "))
        .ok_or_else(|| anyhow::anyhow!("no timing from /usr/bin/time"))?;
    let mut parts = line.split_whitespace().skip(1);
    let secs: f64 = parts.next().unwrap_or("0").parse()?;
    let kib: u64 = parts.next().unwrap_or("0").parse()?;
    Ok(Measured {
        secs,
        peak_mib: kib / 1024,
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    })
}

/// The daily rollup tables of a store (quoted) with their row counts.
fn rollup_tables(conn: &duckdb::Connection) -> anyhow::Result<Vec<(String, u64)>> {
    // A store from before the rollups (schema 4) has none.
    let registry: i64 = conn.query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'rollups'",
        [],
        |r| r.get(0),
    )?;
    if registry == 0 {
        return Ok(Vec::new());
    }
    let names: Vec<String> = conn
        .prepare("SELECT name FROM rollups")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    names
        .iter()
        .map(|t| {
            let quoted = upmarket_store::sql::quote_ident(t);
            let rows: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))?;
            Ok((quoted, rows as u64))
        })
        .collect()
}

/// Drops every daily rollup in `db` (so the next scoring creates its own); returns the rows
/// they held.
fn drop_rollups(db: &Path) -> anyhow::Result<u64> {
    let conn = duckdb::Connection::open(db)?;
    let tables = rollup_tables(&conn)?;
    for (quoted, _) in &tables {
        conn.execute_batch(&format!("DROP TABLE IF EXISTS {quoted}"))?;
    }
    if !tables.is_empty() {
        conn.execute_batch("DELETE FROM rollups")?;
    }
    Ok(tables.iter().map(|t| t.1).sum())
}

/// Drops every model's account rows in `db` (so the next re-scoring or import creates them).
fn drop_account_rows(db: &Path) -> anyhow::Result<()> {
    let conn = duckdb::Connection::open(db)?;
    let names: Vec<String> = conn
        .prepare("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'account_rows_%'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for t in &names {
        let quoted = upmarket_store::sql::quote_ident(t);
        conn.execute_batch(&format!("DROP TABLE {quoted}"))?;
    }
    if !names.is_empty() {
        conn.execute_batch("DELETE FROM account_row_tables")?;
    }
    Ok(())
}

/// Creates the account rows the re-scorer reads (as `upmarket import` does at its end), timed.
/// The daily rollup is normally current by then (the full run's scorings, or the import, made
/// it), so the time is the account rows'.
fn build_account_rows(db: &Path, data_dir: &Path, model: &Model) -> anyhow::Result<()> {
    drop_account_rows(db)?;
    let store = DuckDbStore::open(data_dir, &FreeMailDomains::default())?;
    let session = upmarket_store::Store::reader(&store)?;
    let started = Instant::now();
    session.prepare_derived(model)?;
    println!(
        "| account rows for re-scoring (creates them) | | {:.2} s | | |",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rewrites the events of the store in `data_dir` in time order with `seq` renumbered in that
/// order: the layout of a store that received its events live. Identity tables, scores and the
/// daily rollup stay valid (the rollup covers every grouped event either way); account rows
/// are dropped.
pub fn live_order(data_dir: &Path) -> anyhow::Result<()> {
    let db = data_dir.join(upmarket_store::DB_FILE);
    drop_account_rows(&db)?;
    let conn = duckdb::Connection::open(&db)?;
    let started = Instant::now();
    conn.execute_batch(
        "CREATE TABLE live_order AS
             SELECT * REPLACE (row_number() OVER (ORDER BY timestamp, seq) AS seq)
             FROM events ORDER BY timestamp, seq;
         DELETE FROM events;",
    )?;
    conn.execute_batch(
        "INSERT INTO events SELECT * FROM live_order ORDER BY seq;
         DROP TABLE live_order;
         CHECKPOINT;",
    )?;
    println!(
        "events rewritten in time order in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rows in the daily rollups of `db`.
fn rollup_size(db: &Path) -> anyhow::Result<u64> {
    let conn = duckdb::Connection::open(db)?;
    Ok(rollup_tables(&conn)?.iter().map(|t| t.1).sum())
}

/// The faster of two runs (both sides get the same warm-up).
fn best_of_two(program: &Path, args: &[String]) -> anyhow::Result<Measured> {
    let a = timed(program, args)?;
    let b = timed(program, args)?;
    Ok(if a.secs <= b.secs { a } else { b })
}

/// The SQL baseline with its as-of moment filled in.
pub fn baseline_sql(file: &Path, as_of: NaiveDateTime) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)?;
    Ok(text.replace(
        "AS_OF",
        &format!("TIMESTAMP '{}'", as_of.format("%Y-%m-%d %H:%M:%S")),
    ))
}

/// Runs the SQL baseline on `db` and prints its rows as CSV (the `sql` subcommand).
pub fn run_sql(db: &Path, file: &Path, as_of: NaiveDateTime) -> anyhow::Result<()> {
    let conn = duckdb::Connection::open_with_flags(
        db,
        duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
    )?;
    let sql = baseline_sql(file, as_of)?;
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut out = String::new();
    while let Some(r) = rows.next()? {
        let account: String = r.get(0)?;
        out.push_str(&account);
        for i in 1..14 {
            use duckdb::types::Value;
            out.push(',');
            match r.get::<_, Value>(i)? {
                Value::Null => {}
                Value::Text(s) => out.push_str(&s),
                Value::Double(x) => out.push_str(&x.to_string()),
                Value::BigInt(x) => out.push_str(&x.to_string()),
                Value::Int(x) => out.push_str(&x.to_string()),
                other => anyhow::bail!("unexpected value in column {i}: {other:?}"),
            }
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

/// Options of the scoring benchmark.
pub struct ScoringBench<'a> {
    pub upmarket: &'a Path,
    pub data_dir: &'a Path,
    pub model: &'a Path,
    pub sql: &'a Path,
    pub pandas: &'a Path,
    pub python: Option<&'a Path>,
    pub pandas_max_events: u64,
    /// Score as of the end of this day (default: the day of the newest event).
    pub as_of: Option<NaiveDate>,
    /// Only time re-scoring single accounts (no full runs, no baselines, no equality check).
    pub incremental_only: bool,
    pub scratch: &'a Path,
}

fn latest_day(db: &Path) -> anyhow::Result<(NaiveDate, u64)> {
    let conn = duckdb::Connection::open_with_flags(
        db,
        duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
    )?;
    let (t, n): (NaiveDateTime, i64) =
        conn.query_row("SELECT max(timestamp), count(*) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok((t.date(), n as u64))
}

/// Compares upmarket's measured signals with the SQL baseline's, account by account.
fn agreement(
    session: &dyn StoreSession,
    model: &Model,
    as_of: NaiveDateTime,
    sql_csv: &str,
) -> anyhow::Result<(usize, usize)> {
    let ours = session.measure(model, as_of, None)?;
    let theirs: HashMap<&str, Vec<&str>> = sql_csv
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            f.next().map(|a| (a, f.collect()))
        })
        .collect();
    let mut agree = 0;
    for a in &ours {
        let Some(row) = theirs.get(a.account_id.as_str()) else {
            continue;
        };
        // The baseline's columns follow the model's signal order.
        let same = a.values.iter().zip(row.iter()).all(|(v, t)| match v {
            SignalValue::Number(x) => t.parse::<f64>().is_ok_and(|y| (x - y).abs() < 1e-6),
            SignalValue::Text(s) => s.as_deref().unwrap_or("") == *t,
        });
        if same {
            agree += 1;
        }
    }
    Ok((agree, ours.len().max(theirs.len())))
}

/// Runs the benchmark and prints its rows.
pub fn run(b: &ScoringBench) -> anyhow::Result<()> {
    let db = b.data_dir.join(upmarket_store::DB_FILE);
    let (latest, events) = latest_day(&db)?;
    let day = b.as_of.unwrap_or(latest);
    let as_of = day
        .succ_opt()
        .unwrap_or(day)
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default();
    let model = Model::from_toml(
        &std::fs::read_to_string(b.model)?,
        &b.model.display().to_string(),
    )?;
    println!(
        "scoring as of {as_of} (end of {day}), {events} events, model {} v{}",
        model.name, model.version
    );

    if b.incremental_only {
        build_account_rows(&db, b.data_dir, &model)?;
        let store = DuckDbStore::open(b.data_dir, &FreeMailDomains::default())?;
        let session = upmarket_store::Store::reader(&store)?;
        let mut ids = session
            .current_scores(&model, None)?
            .into_iter()
            .map(|s| s.account_id)
            .collect::<Vec<_>>();
        ids.sort();
        anyhow::ensure!(
            !ids.is_empty(),
            "no current scores: run the full benchmark once first"
        );
        let sample: Vec<&String> = ids
            .iter()
            .step_by((ids.len() / 25).max(1))
            .take(25)
            .collect();
        time_incremental(session.as_ref(), &model, as_of, &sample, None)?;
        return Ok(());
    }

    // upmarket: the CLI a user runs (open, measure, score, save history, print every row).
    let score_args: Vec<String> = vec![
        "score".into(),
        "--data-dir".into(),
        b.data_dir.display().to_string(),
        "--model".into(),
        b.model.display().to_string(),
        "--as-of".into(),
        day.to_string(),
        "--format".into(),
        "csv".into(),
        "--limit".into(),
        "0".into(),
    ];
    // A scoring with no daily rollup yet creates it (`upmarket import` builds it at its end;
    // later runs extend it only when 100k events arrived): timed on its own, from no rollup.
    let rollup_rows = drop_rollups(&db)?;
    let first = timed(b.upmarket, &score_args)?;
    println!(
        "| scoring with no rollup yet (creates it) | {events} events | upmarket score {:.2} s, peak {} MiB | rollup {} rows (dropped {rollup_rows} before) |",
        first.secs,
        first.peak_mib,
        rollup_size(&db)?
    );
    let ours = best_of_two(b.upmarket, &score_args)?;
    let accounts = ours.stdout.lines().count().saturating_sub(1);

    // Hand-written SQL over the raw events, same engine, same file, read-only.
    let me = std::env::current_exe()?;
    let sql = best_of_two(
        &me,
        &[
            "--upmarket".into(),
            b.upmarket.display().to_string(),
            "--events".into(),
            "-".into(),
            "sql".into(),
            "--db".into(),
            db.display().to_string(),
            "--file".into(),
            b.sql.display().to_string(),
            "--as-of".into(),
            as_of.format("%Y-%m-%d %H:%M:%S").to_string(),
        ],
    )?;
    println!("| scoring (full) | {events} events, {accounts} accounts | upmarket score {:.2} s, peak {} MiB | DuckDB SQL {:.2} s, peak {} MiB | ratio {:.2} (SQL time / upmarket time) |", ours.secs, ours.peak_mib, sql.secs, sql.peak_mib, sql.secs / ours.secs);

    // Same answers? And the incremental path, in process.
    build_account_rows(&db, b.data_dir, &model)?;
    let store = DuckDbStore::open(b.data_dir, &FreeMailDomains::default())?;
    let session = upmarket_store::Store::reader(&store)?;
    let (agree, total) = agreement(session.as_ref(), &model, as_of, &sql.stdout)?;
    println!("signals agree with the SQL baseline for {agree} of {total} accounts");
    let full: HashMap<String, Vec<SignalValue>> = session
        .measure(&model, as_of, None)?
        .into_iter()
        .map(|a| (a.account_id, a.values))
        .collect();
    let mut ids: Vec<&String> = full.keys().collect();
    ids.sort();
    let step = (ids.len() / 25).max(1);
    let sample: Vec<&String> = ids.iter().step_by(step).take(25).copied().collect();
    let same = time_incremental(session.as_ref(), &model, as_of, &sample, Some(&full))?;
    println!(
        "incremental re-score agrees with full scoring for {same} of {} sampled accounts",
        sample.len()
    );
    drop(session);
    drop(store);

    // pandas, from Parquet files with the needed columns already extracted.
    let Some(python) = b.python else {
        println!("pandas baseline skipped (no --python)");
        return Ok(());
    };
    if events > b.pandas_max_events {
        // Measured: ~3.2 GB of peak memory per 10M events; beyond the limit pandas would swap
        // or be killed on this machine, which measures nothing.
        println!(
            "pandas baseline skipped: {events} events is over --pandas-max-events {} (pandas needs ~0.33 GB per million events here)",
            b.pandas_max_events
        );
        return Ok(());
    }
    let folder = export_parquet(&db, b.scratch)?;
    let pandas = timed(
        python,
        &[
            b.pandas.display().to_string(),
            folder.display().to_string(),
            as_of.format("%Y-%m-%d %H:%M:%S").to_string(),
        ],
    )?;
    let info: serde_json::Value = pandas
        .stderr
        .lines()
        .find(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or_default();
    let pandas_accounts = pandas.stdout.lines().count().saturating_sub(1);
    println!("| scoring vs pandas | {events} events | upmarket score {:.2} s, peak {} MiB | pandas {:.2} s ({:.2} s load + {:.2} s compute, {pandas_accounts} accounts), peak {} MiB | ratio {:.1} (pandas time / upmarket time) |", ours.secs, ours.peak_mib, pandas.secs, info["load_s"].as_f64().unwrap_or(0.0), info["compute_s"].as_f64().unwrap_or(0.0), pandas.peak_mib, pandas.secs / ours.secs);
    Ok(())
}

/// Re-scores each sampled account alone (measure, score, save: what the re-scorer does), twice
/// (cold, then warm), prints the timings and returns how many equal `full`'s values.
fn time_incremental(
    session: &dyn StoreSession,
    model: &Model,
    as_of: NaiveDateTime,
    sample: &[&String],
    full: Option<&HashMap<String, Vec<SignalValue>>>,
) -> anyhow::Result<usize> {
    let mut same = 0;
    for pass in ["first pass", "second pass"] {
        let mut times: Vec<f64> = Vec::new();
        for id in sample {
            let started = Instant::now();
            let one = session.measure(model, as_of, Some(std::slice::from_ref(*id)))?;
            let scores: Vec<_> = one
                .iter()
                .map(|a| {
                    (
                        a.account_id.clone(),
                        upmarket_core::model::score(model, &a.values),
                    )
                })
                .collect();
            session.save_current_scores(model, as_of, &scores)?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            if pass == "first pass"
                && one.len() == 1
                && full.is_some_and(|f| Some(&one[0].values) == f.get(*id))
            {
                same += 1;
            }
        }
        times.sort_by(f64::total_cmp);
        if let (Some(max), false) = (times.last(), times.is_empty()) {
            println!(
                "| incremental re-score, one account ({pass}) | {} accounts | median {:.1} ms, p95 {:.1} ms, max {max:.1} ms | target < 50 ms |",
                times.len(),
                times[times.len() / 2],
                times[(times.len() * 95 / 100).min(times.len() - 1)],
            );
        }
    }
    Ok(same)
}

/// Exports what the pandas script reads (once per data set).
fn export_parquet(db: &Path, scratch: &Path) -> anyhow::Result<PathBuf> {
    let folder = scratch.join("pandas-input");
    if folder.join("done").exists() {
        return Ok(folder);
    }
    std::fs::create_dir_all(&folder)?;
    let conn = duckdb::Connection::open_with_flags(
        db,
        duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
    )?;
    let f = |name: &str| folder.join(name).display().to_string().replace('\'', "''");
    conn.execute_batch(&format!(
        "COPY (SELECT timestamp AS ts, type, event,
                      coalesce(json_extract_string(properties, '$.path'), name) AS path,
                      user_id, anonymous_id, group_id,
                      CASE WHEN type IN ('identify', 'group')
                           THEN json_extract_string(traits, '$.\"company_size\"') END AS company_size
               FROM events) TO '{}' (FORMAT parquet);
         COPY (SELECT alias, user_id FROM aliases) TO '{}' (FORMAT parquet);
         COPY (SELECT user_id, workspace_id, since FROM memberships) TO '{}' (FORMAT parquet);",
        f("events.parquet"),
        f("aliases.parquet"),
        f("memberships.parquet")
    ))?;
    std::fs::write(folder.join("done"), "")?;
    Ok(folder)
}

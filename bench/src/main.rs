//! upmarket's benchmark harness. Every benchmark runs upmarket and a baseline on the same data
//! in the same run, and reports throughput, the ratio, peak memory and the machine.
//!
//! - `ingest-http`: sustained ingestion through `upmarket serve` over HTTP (batches of 100,
//!   several concurrent clients, every batch acknowledged only after commit) against DuckDB's own
//!   bulk load (`read_json`) of the same NDJSON into a table, and DuckDB's own durable commits
//!   of those events into upmarket's table (see [`duckdb_load`]).
//! - `import`: `upmarket import FILE` against DuckDB's `read_json` of the same file, into a
//!   table of its own choosing and into upmarket's table.
//! - `scoring`: `upmarket score` of every account against the same signals hand-written in
//!   DuckDB SQL and in pandas; then the incremental re-score of one account.
//!
//! Run: `bash bench/run` (all) or `bash bench/run ingest-http`. Data sets come from
//! `upmarket simulate` (see bench/run for the sizes).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod duckdb_load;
mod scoring;
mod writer;

#[derive(Parser)]
struct Cli {
    /// The upmarket binary to measure.
    #[arg(long, default_value = "upmarket")]
    upmarket: PathBuf,
    /// NDJSON events (from `upmarket simulate`).
    #[arg(long)]
    events: PathBuf,
    /// Scratch directory (emptied).
    #[arg(long, default_value = "bench/out/scratch")]
    scratch: PathBuf,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// HTTP ingestion vs DuckDB read_json.
    IngestHttp {
        /// Concurrent clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Events per request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
    /// `upmarket import` vs DuckDB read_json.
    Import {
        /// Rounds, each an import and a `read_json` load one after the other: on a shared
        /// machine one pair's ratio differed from the next by up to 0.18 (session 12), so the
        /// rows give every round's ratio and their median.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Full scoring vs hand-written DuckDB SQL and pandas; incremental re-score latency.
    Scoring {
        /// An upmarket data directory holding the events (from `upmarket import`).
        #[arg(long)]
        data_dir: PathBuf,
        /// The model to score with.
        #[arg(long, default_value = "models/default.toml")]
        model: PathBuf,
        /// The SQL baseline (the same signals, hand-written).
        #[arg(long, default_value = "bench/baselines/default_model.sql")]
        sql: PathBuf,
        /// The pandas baseline.
        #[arg(long, default_value = "bench/baselines/default_model_pandas.py")]
        pandas: PathBuf,
        /// Python with pandas and pyarrow (the pandas baseline is skipped without it).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Skip pandas above this many events (it holds everything in memory).
        #[arg(long, default_value_t = 30_000_000)]
        pandas_max_events: u64,
        /// Score as of the end of this day (default: the day of the newest event).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Only time re-scoring single accounts (needs current scores from a full run).
        #[arg(long)]
        incremental_only: bool,
    },
    /// Rewrites an upmarket store's events in time order, numbered in that order, as a store
    /// filled live holds them (`upmarket simulate` writes company by company).
    LiveOrder {
        /// The upmarket data directory to rewrite (a copy: this is for benchmarks).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// DuckDB's `read_json` load of `--events` into a fresh database (used by `ingest-http` and
    /// `import`, in its own process).
    LoadJson {
        #[arg(long)]
        db: PathBuf,
        /// Into a table `read_json` shapes, or into upmarket's `events` table.
        #[arg(long, value_enum, default_value = "auto")]
        shape: duckdb_load::Shape,
        /// With `--shape upmarket`: append in durable transactions of this many events.
        #[arg(long)]
        commit_events: Option<usize>,
    },
    /// The writer alone: `append_prepared` in commits of `--commit-events` on a fresh store
    /// (see `bench/src/writer.rs`; in its own process).
    Writer {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 3200)]
        commit_events: usize,
        /// How long identity facts may wait (the server's `ingest.identity_flush_ms`).
        #[arg(long, default_value_t = 250)]
        identity_delay_ms: u64,
    },
    /// Runs the SQL baseline once and prints its rows (used by `scoring`, in its own process).
    Sql {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        file: PathBuf,
        /// `YYYY-MM-DD HH:MM:SS`.
        #[arg(long)]
        as_of: String,
    },
}

const KEY: &str = "wk_bench_0123456789";

fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system, all threads) the process `pid` has used so far. Less sensitive
/// than a rate to other work on a shared machine: it says what the work cost, not how long it
/// waited for a core.
fn cpu_secs(pid: u32) -> f64 {
    // SAFETY: sysconf takes and returns plain integers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (in parentheses, which may hold spaces):
            // utime and stime are the 14th and 15th fields of the line.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(0.0)
}

fn fresh(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// The `read_json` baseline: events loaded, seconds, bytes on disk, peak memory (MiB).
struct Baseline {
    events: u64,
    secs: f64,
    disk: u64,
    peak_mib: u64,
}

impl Baseline {
    /// Events loaded per second.
    fn rate(&self) -> f64 {
        self.events as f64 / self.secs
    }
}

/// DuckDB's own load of the events (`load-json`, see [`duckdb_load`]) in its own process.
fn duckdb_load_baseline(
    cli: &Cli,
    shape: duckdb_load::Shape,
    commit_events: Option<usize>,
) -> anyhow::Result<Baseline> {
    let dir = cli.scratch.join("duckdb-baseline");
    fresh(&dir)?;
    let mut args = vec![
        "--upmarket".into(),
        cli.upmarket.display().to_string(),
        "--events".into(),
        cli.events.display().to_string(),
        "load-json".into(),
        "--db".into(),
        dir.join("baseline.duckdb").display().to_string(),
        "--shape".into(),
        shape.name().into(),
    ];
    if let Some(n) = commit_events {
        args.extend(["--commit-events".into(), n.to_string()]);
    }
    let run = scoring::timed(&std::env::current_exe()?, &args)?;
    let out: serde_json::Value = serde_json::from_str(run.stdout.trim())?;
    Ok(Baseline {
        events: out["events"].as_u64().unwrap_or(0),
        secs: out["secs"].as_f64().unwrap_or(f64::NAN),
        disk: dir_bytes(&dir),
        peak_mib: run.peak_mib,
    })
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Stops the server as an operator would (SIGTERM) and waits for it: seconds taken.
    fn stop(mut self) -> anyhow::Result<f64> {
        let started = Instant::now();
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        anyhow::ensure!(
            unsafe { libc::kill(pid, libc::SIGTERM) } == 0,
            "SIGTERM failed"
        );
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the server exited with {status}");
        Ok(started.elapsed().as_secs_f64())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(bin: &Path, data: &Path) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("UPMARKET_WRITE_KEYS", KEY)
        .env(
            "UPMARKET_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&format!("{url}/health")).call().is_err() {
        anyhow::ensure!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server { child, url })
}

fn ingest_http(cli: &Cli, clients: usize, batch: usize) -> anyhow::Result<()> {
    let file = std::io::BufReader::new(std::fs::File::open(&cli.events)?);
    let lines: Vec<String> = file.lines().collect::<Result<_, _>>()?;
    let bodies: Vec<String> = lines
        .chunks(batch)
        .map(|c| format!("{{\"writeKey\":\"{KEY}\",\"batch\":[{}]}}", c.join(",")))
        .collect();
    let n_events = lines.len() as u64;
    drop(lines);
    let data = cli.scratch.join("upmarket-http");
    fresh(&data)?;
    // Each client's requests, split before the clock starts.
    let per_client: Vec<Vec<String>> = (0..clients)
        .map(|c| bodies.iter().skip(c).step_by(clients).cloned().collect())
        .collect();
    drop(bodies);
    let server = start_server(&cli.upmarket, &data)?;
    let cpu_at_start = cpu_secs(server.child.id());
    let clients_cpu_at_start = cpu_secs(std::process::id());
    let started = Instant::now();
    let handles: Vec<_> = per_client
        .into_iter()
        .map(|mine| {
            let url = format!("{}/v1/batch", server.url);
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut retries = 0;
                for body in mine {
                    loop {
                        let mut r = agent
                            .post(&url)
                            .header("Content-Type", "application/json")
                            .send(body.as_bytes())?;
                        // Read to the end: only then does ureq put the connection back in its
                        // pool. Unread, every request opened a new connection, which SDKs
                        // (keep-alive sessions) do not do.
                        r.body_mut().read_to_vec()?;
                        match r.status().as_u16() {
                            200 => break,
                            429 => {
                                retries += 1;
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            s => anyhow::bail!("status {s}"),
                        }
                    }
                }
                Ok(retries)
            })
        })
        .collect();
    let mut retries = 0;
    for h in handles {
        retries += h.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    let secs = started.elapsed().as_secs_f64();
    // The load generator shares the two cores: its CPU per event is what the server could
    // not use (it only sends, so this is this process's CPU while the clients ran).
    let clients_cpu = cpu_secs(std::process::id()) - clients_cpu_at_start;
    let rss = peak_rss_kib(server.child.id());
    // A 200 means journaled; the events reach DuckDB a moment later: the server's /health
    // says how many still wait.
    loop {
        let text = ureq::get(&format!("{}/health", server.url))
            .call()?
            .body_mut()
            .read_to_string()?;
        let health: serde_json::Value = serde_json::from_str(&text)?;
        if health["waiting_events"].as_u64() == Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stored_secs = started.elapsed().as_secs_f64();
    let server_cpu = cpu_secs(server.child.id()) - cpu_at_start;
    let stop_secs = server.stop()?;
    let stats = Command::new(&cli.upmarket)
        .args(["stats", "--data-dir"])
        .arg(&data)
        .env("UPMARKET_LOG", "warn")
        .output()?;
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout)?;
    anyhow::ensure!(
        stats["events"].as_u64() == Some(n_events),
        "{n_events} events sent, the store holds {}",
        stats["events"]
    );
    let disk = dir_bytes(&data);
    let b = duckdb_load_baseline(cli, duckdb_load::Shape::Auto, None)?;
    // The largest group commit this many clients can make: DuckDB's own durable appends of
    // that many events at a time into upmarket's table, the writer's floor.
    let commit = clients * batch;
    let floor = duckdb_load_baseline(cli, duckdb_load::Shape::Upmarket, Some(commit))?;
    let ours = n_events as f64 / secs;
    let base = b.rate();
    let floor_rate = floor.events as f64 / floor.secs;
    println!("| ingest-http | {n_events} events, {clients} clients × {batch}/request | upmarket {ours:.0} ev/s ({secs:.1} s, {retries} × 429; all in DuckDB after {stored_secs:.1} s = {:.0} ev/s = {:.2} of read_json; stopped in {stop_secs:.1} s; server CPU {:.1} µs/event, clients' CPU {:.1} µs/event), server peak {} MiB | DuckDB read_json {base:.0} ev/s ({:.1} s), peak {} MiB | ratio {:.2} | DuckDB's own commits of {commit} events into upmarket's table {floor_rate:.0} ev/s ({:.2} of read_json; upmarket {:.2} of it) | disk {:.0} B/event (DuckDB table {:.0} B/event) |", n_events as f64 / stored_secs, n_events as f64 / stored_secs / base, server_cpu * 1e6 / n_events as f64, clients_cpu * 1e6 / n_events as f64, rss / 1024, b.secs, b.peak_mib, ours / base, floor_rate / base, ours / floor_rate, disk as f64 / n_events as f64, b.disk as f64 / b.events.max(1) as f64);
    Ok(())
}

/// One round of the import benchmark: the import's figures and its `read_json` pair's.
struct ImportRound {
    events: u64,
    secs: f64,
    /// The import's own split: events stored, then the scoring tables built from them.
    events_secs: f64,
    tables_secs: f64,
    peak_mib: u64,
    disk: u64,
    baseline: Baseline,
}

impl ImportRound {
    /// Events per second over the whole import (scoring tables included).
    fn rate(&self) -> f64 {
        self.events as f64 / self.secs
    }
    /// Events per second of the events part alone.
    fn events_rate(&self) -> f64 {
        self.events as f64 / self.events_secs
    }
    fn ratio(&self) -> f64 {
        self.rate() / self.baseline.rate()
    }
    fn events_ratio(&self) -> f64 {
        self.events_rate() / self.baseline.rate()
    }
}

fn import_round(cli: &Cli) -> anyhow::Result<ImportRound> {
    let data = cli.scratch.join("upmarket-import");
    fresh(&data)?;
    let run = scoring::timed(
        &cli.upmarket,
        &[
            "import".into(),
            "--json".into(),
            "--data-dir".into(),
            data.display().to_string(),
            cli.events.display().to_string(),
        ],
    )?;
    let summary: serde_json::Value = serde_json::from_str(&run.stdout)?;
    let baseline = duckdb_load_baseline(cli, duckdb_load::Shape::Auto, None)?;
    Ok(ImportRound {
        events: summary["stored"].as_u64().unwrap_or(0),
        secs: run.secs,
        events_secs: summary["events_secs"].as_f64().unwrap_or(run.secs),
        tables_secs: summary["scoring_tables_secs"].as_f64().unwrap_or(0.0),
        peak_mib: run.peak_mib,
        disk: dir_bytes(&data),
        baseline,
    })
}

/// The median of `values` (the lower middle one for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

fn import(cli: &Cli, rounds: usize) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for round in 1..=rounds.max(1) {
        let r = import_round(cli)?;
        let (n, b) = (r.events, &r.baseline);
        println!("| import, round {round} | {n} events | upmarket {:.0} ev/s ({:.1} s: events {:.1} s = {:.0} ev/s, scoring tables {:.1} s), peak {} MiB | DuckDB read_json {:.0} ev/s ({:.1} s), peak {} MiB | ratio {:.2} (events alone {:.2}) | disk {:.0} B/event (DuckDB table {:.0} B/event) |", r.rate(), r.secs, r.events_secs, r.events_rate(), r.tables_secs, r.peak_mib, b.rate(), b.secs, b.peak_mib, r.ratio(), r.events_ratio(), r.disk as f64 / n.max(1) as f64, b.disk as f64 / b.events.max(1) as f64);
        all.push(r);
    }
    let same = duckdb_load_baseline(cli, duckdb_load::Shape::Upmarket, None)?;
    // Measured once, after the last round: compared with that round's pair.
    let last = all.last().map_or(f64::NAN, |r| r.baseline.rate());
    let median_of = |f: fn(&ImportRound) -> f64| median(all.iter().map(f).collect());
    println!("| import, median of {} rounds | ratio {:.2} (events alone {:.2}; scoring tables {:.1} s) | DuckDB read_json into upmarket's table {:.0} ev/s ({:.2} of the last round's read_json; upmarket's median round {:.2} of it) |", all.len(), median_of(ImportRound::ratio), median_of(ImportRound::events_ratio), median_of(|r| r.tables_secs), same.rate(), same.rate() / last, median_of(ImportRound::rate) / same.rate());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // BENCH_LOG=upmarket_store=debug shows where in-process work (the re-scoring) spends time.
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    match &cli.bench {
        Bench::IngestHttp { clients, batch } => ingest_http(&cli, *clients, *batch),
        Bench::Import { rounds } => import(&cli, *rounds),
        Bench::Scoring {
            data_dir,
            model,
            sql,
            pandas,
            python,
            pandas_max_events,
            as_of,
            incremental_only,
        } => scoring::run(&scoring::ScoringBench {
            upmarket: &cli.upmarket,
            data_dir,
            model,
            sql,
            pandas,
            python: python.as_deref(),
            pandas_max_events: *pandas_max_events,
            as_of: *as_of,
            incremental_only: *incremental_only,
            scratch: &cli.scratch,
        }),
        Bench::LiveOrder { data_dir } => scoring::live_order(data_dir),
        Bench::LoadJson {
            db,
            shape,
            commit_events,
        } => duckdb_load::load_json(&cli.events, db, *shape, *commit_events),
        Bench::Writer {
            data_dir,
            commit_events,
            identity_delay_ms,
        } => writer::run(&cli.events, data_dir, *commit_events, *identity_delay_ms),
        Bench::Sql { db, file, as_of } => scoring::run_sql(
            db,
            file,
            chrono::NaiveDateTime::parse_from_str(as_of, "%Y-%m-%d %H:%M:%S")?,
        ),
    }
}

//! The `upmarket` command: glue between the CLI and the library crates.

/// mimalloc instead of glibc's allocator. An import allocates a few small strings per event
/// and frees them a batch (122,880 events) at a time, a pattern glibc's small per-thread
/// caches do not absorb: its `malloc`/`free` and consolidation were ~10% of a 10M-event
/// import's CPU. With mimalloc that import took 19.6–20.2 s against 21.6–21.7 s (34–35 s of
/// user CPU against 38), for ~320 MiB more peak memory; a 1M import and the HTTP server
/// (alternating runs) ran as fast (BENCHMARKS.md).
///
/// Built without transparent huge pages (the `no_thp` feature: mimalloc would otherwise ask
/// for them on its 1 GiB arenas). On a virtual machine that hands free memory back to its
/// host, the first touch of a 2 MiB page the host has taken back is slow (1.5 GB touched in
/// 4.7 s cold, 0.1–0.9 s warm; 4 KiB pages 0.8–1.0 s either way): the 10M-event import spent
/// 3.5–4.9 s of CPU clearing huge pages, and ~0.2 s without them. Four alternating pairs of
/// imports, each after 10 s idle: 17.4–19.3 s against 18.1–19.9 s (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod demo;
mod import;
mod lines;
mod scoring_cli;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use upmarket_server::{Config, Overrides, RawConfig};
use upmarket_store::{DuckDbStore, Store};

#[derive(Parser)]
#[command(
    name = "upmarket",
    version,
    about = "Turn self-serve product usage into sales pipeline"
)]
struct Cli {
    /// Config file (TOML). Default: ./upmarket.toml when it exists.
    #[arg(long, global = true, env = "UPMARKET_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides the config file and UPMARKET_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PQA model file (overrides `scoring.model`).
    #[arg(long, global = true)]
    model: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server: Segment / RudderStack / PostHog ingestion.
    Serve {
        /// Address to listen on (overrides config and UPMARKET_LISTEN).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Import events from NDJSON (Segment or PostHog export), CSV or Parquet files.
    Import(import::ImportArgs),
    /// Score every account (saved as the current scores when no --as-of is given).
    Score(scoring_cli::ScoreArgs),
    /// Explain one account's score, signal by signal.
    Explain(scoring_cli::ExplainArgs),
    /// List the stored current scores.
    Accounts(scoring_cli::AccountsArgs),
    /// Validate the configuration and the model file and print what they resolve to.
    CheckConfig,
    /// Print what the store holds.
    Stats,
    /// Write a simulated company's data (events, CRM outcomes, leads, ground truth).
    Simulate(demo::SimulateArgs),
    /// Simulate a company, ingest it, and show what upmarket makes of it.
    Demo(demo::DemoArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UPMARKET_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = run(Cli::parse()) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn load_config(cli: &Cli, listen: Option<String>) -> anyhow::Result<Config> {
    let path = cli.config.clone().or_else(|| {
        let default = PathBuf::from("upmarket.toml");
        default.exists().then_some(default)
    });
    let env: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("UPMARKET_"))
        .collect();
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        listen,
    };
    let mut raw = RawConfig::load(path.as_deref())?;
    if let Some(model) = &cli.model {
        raw.scoring.model = Some(model.clone());
    }
    Ok(raw.build(&env, &overrides)?)
}

/// Opens the store, explaining the usual reason it cannot be opened.
pub fn open_store(config: &Config) -> anyhow::Result<DuckDbStore> {
    DuckDbStore::open(&config.data_dir, &config.free_mail).map_err(|e| {
        let text = e.to_string();
        if text.contains("lock") {
            anyhow::anyhow!("the database in {} is in use by another upmarket process (is `upmarket serve` running?): {text}", config.data_dir.display())
        } else {
            anyhow::anyhow!("cannot open the store in {}: {text}", config.data_dir.display())
        }
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve { listen } => {
            let config = load_config(&cli, listen.clone())?;
            if config.write_keys.is_empty() {
                anyhow::bail!("no write key configured: set `ingest.write_keys` in the config file or UPMARKET_WRITE_KEYS");
            }
            let mut store = open_store(&config)?;
            store.defer_identity(config.identity_flush);
            store.set_threads(config.duckdb_threads)?;
            tracing::info!(data_dir = %config.data_dir.display(), "store open");
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(upmarket_server::serve(config, Box::new(store)))
        }
        Command::Import(args) => {
            let config = load_config(&cli, None)?;
            let mut store = import::open_store(&config)?;
            let summary = import::run(&mut store, &config, args)?;
            summary.print(args.format_json);
            Ok(())
        }
        Command::Score(args) => {
            let config = load_config(&cli, None)?;
            let started = std::time::Instant::now();
            let store = open_store(&config)?;
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "store open");
            scoring_cli::run_score(store.reader()?.as_ref(), &config.model, args)
        }
        Command::Explain(args) => {
            let config = load_config(&cli, None)?;
            let store = open_store(&config)?;
            scoring_cli::run_explain(store.reader()?.as_ref(), &config.model, args)
        }
        Command::Accounts(args) => {
            let config = load_config(&cli, None)?;
            let store = open_store(&config)?;
            scoring_cli::run_accounts(store.reader()?.as_ref(), &config.model, args)
        }
        Command::CheckConfig => {
            let config = load_config(&cli, None)?;
            println!("config ok");
            println!("  data_dir          {}", config.data_dir.display());
            println!("  listen            {}", config.listen);
            println!("  write keys        {}", config.write_keys.len());
            println!("  read tokens       {}", config.read_tokens.len());
            println!(
                "  limits            {} B/event, {} B/request, {} events/batch",
                config.limits.max_event_bytes,
                config.limits.max_request_bytes,
                config.limits.max_batch_events
            );
            println!("  free-mail domains {}", config.free_mail.sorted().len());
            let m = &config.model;
            println!(
                "  model             {} v{} ({}), level {:?}, scale {:?}",
                m.name, m.version, config.model_origin, m.level, m.scale
            );
            println!(
                "  signals           {}",
                m.signals
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "  tiers             {}",
                m.tiers
                    .iter()
                    .map(|t| format!("{} {}+", t.name, t.min))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("  PQA threshold     {}", m.pqa_threshold);
            Ok(())
        }
        Command::Simulate(args) => {
            demo::run_simulate(args)?;
            Ok(())
        }
        Command::Demo(args) => {
            let mut config = load_config(&cli, None)?;
            if config.write_keys.is_empty() {
                config.write_keys.push("wk_demo_0000000001".into());
            }
            demo::run_demo(args, &config)
        }
        Command::Stats => {
            let config = load_config(&cli, None)?;
            let store = open_store(&config)?;
            let stats = store.reader()?.stats()?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
            Ok(())
        }
    }
}

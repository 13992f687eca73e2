//! `upmarket simulate` and `upmarket demo`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use upmarket_server::Config;
use upmarket_sim::{simulate, SimConfig};
use upmarket_store::Store;

/// Arguments of `upmarket simulate`.
#[derive(clap::Args, Clone)]
pub struct SimulateArgs {
    /// Companies to simulate (a solo free-mail user counts as one).
    #[arg(long, default_value_t = 3000)]
    pub accounts: u64,
    /// Days of history.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First simulated day (YYYY-MM-DD).
    #[arg(long, default_value = "2025-11-01")]
    pub start: chrono::NaiveDate,
    /// Output directory.
    #[arg(long, default_value = "upmarket-sim")]
    pub out: PathBuf,
}

/// Runs the simulator with a progress bar.
pub fn run_simulate(args: &SimulateArgs) -> anyhow::Result<upmarket_sim::SimSummary> {
    let cfg = SimConfig {
        accounts: args.accounts,
        days: args.days,
        seed: args.seed,
        start: args.start,
    };
    let bar = ProgressBar::new(args.accounts);
    bar.set_style(
        ProgressStyle::with_template("simulating {bar:40} {pos}/{len} companies {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let summary = simulate(&cfg, &args.out, |n| {
        if n % 64 == 0 {
            bar.set_position(n)
        }
    })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "simulated {} events, {} workspaces, {} users, {} opportunities, {} leads in {:.1}s ({:.0} events/s) → {}",
        summary.events,
        summary.workspaces,
        summary.users,
        summary.opportunities,
        summary.leads,
        secs,
        summary.events as f64 / secs.max(1e-9),
        args.out.display()
    );
    Ok(summary)
}

/// Marker file that says a directory was made by `upmarket demo` and may be replaced.
const MARKER: &str = ".upmarket-demo";

/// Arguments of `upmarket demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo's data (replaced if an earlier demo made it).
    #[arg(long, default_value = "upmarket-demo")]
    pub dir: PathBuf,
    /// Companies to simulate.
    #[arg(long, default_value_t = 3000)]
    pub accounts: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            anyhow::bail!(
                "{} exists and was not made by `upmarket demo`; choose another --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the old demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "made by `upmarket demo`; safe to delete\n",
    )?;
    Ok(())
}

/// The whole demo: simulate, import, report.
pub fn run_demo(args: &DemoArgs, config: &Config) -> anyhow::Result<()> {
    fresh_dir(&args.dir)?;
    let sim_dir = args.dir.join("sim");
    let sim = SimulateArgs {
        accounts: args.accounts,
        days: 365,
        seed: args.seed,
        start: SimulateArgs::default_start(),
        out: sim_dir.clone(),
    };
    run_simulate(&sim)?;
    let mut config = config.clone();
    config.data_dir = args.dir.join("data");
    let mut store = crate::import::open_store(&config)?;
    let started = Instant::now();
    let summary = crate::import::import_files(
        &mut store,
        &config,
        &[sim_dir.join("events.ndjson")],
        crate::import::BATCH_EVENTS,
    )?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {} events in {:.1}s ({:.0} events/s)",
        summary.stored(),
        secs,
        summary.stored() as f64 / secs.max(1e-9)
    );
    let session = store.reader()?;
    let stats = session.stats()?;
    println!();
    println!("upmarket demo: a simulated product-led SaaS company, one year of usage");
    println!("  events      {:>10}", stats.events);
    println!("  people      {:>10}", stats.people);
    println!("  workspaces  {:>10}", stats.workspaces);
    println!("  companies   {:>10}", stats.companies);
    let model = config.model.clone();
    let as_of = session.scoring_clock()?;
    let started = Instant::now();
    let mut scores = session.score_accounts(&model, as_of, None)?;
    session.save_current_scores(&model, as_of, &scores)?;
    session.save_history(&model, as_of.date(), &scores)?;
    eprintln!(
        "scored {} accounts in {:.2}s",
        scores.len(),
        started.elapsed().as_secs_f64()
    );
    scores.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then_with(|| a.0.cmp(&b.0)));
    println!();
    for t in &model.tiers {
        let n = scores.iter().filter(|(_, d)| d.tier == t.name).count();
        println!("  {:<11} {:>6} accounts  ({})", t.name, n, t.label);
    }
    println!();
    crate::scoring_cli::print_scores(
        &scores,
        crate::scoring_cli::OutputFormat::Table,
        15,
        &model,
        as_of,
    )?;
    if let Some((top, _)) = scores.first() {
        println!();
        println!(
            "Explain one:     upmarket explain {top} --data-dir {}",
            config.data_dir.display()
        );
    }
    println!();
    println!("Where to look:");
    println!("  data           {}", config.data_dir.display());
    println!(
        "  simulated CRM  {}  (opportunities)",
        sim_dir.join("outcomes.csv").display()
    );
    println!("  leads (MQLs)   {}", sim_dir.join("leads.csv").display());
    println!(
        "  sales tier     upmarket accounts --tier sales --data-dir {}",
        config.data_dir.display()
    );
    println!(
        "  serve it       upmarket serve --data-dir {}   (GET /api/accounts with a read token)",
        config.data_dir.display()
    );
    Ok(())
}

impl SimulateArgs {
    fn default_start() -> chrono::NaiveDate {
        SimConfig::default().start
    }
}

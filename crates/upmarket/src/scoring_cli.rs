//! `upmarket score`, `upmarket explain` and `upmarket accounts`.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use indicatif::{ProgressBar, ProgressStyle};
use upmarket_core::model::{Model, ScoreDetails};
use upmarket_store::StoreSession;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// CSV for spreadsheets.
    Csv,
    /// JSON for programs.
    Json,
}

/// How a list of accounts is filtered and printed.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Only this tier.
    #[arg(long)]
    pub tier: Option<String>,
    /// Rows to print (0: all).
    #[arg(long, default_value_t = 25)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

/// Arguments of `upmarket score`.
#[derive(clap::Args)]
pub struct ScoreArgs {
    /// Score as of the end of this day (YYYY-MM-DD), from earlier events only. Default: now.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Filter, size and format of the list.
    #[command(flatten)]
    pub list: ListArgs,
    /// Also compute daily history for this many days before the as-of date.
    #[arg(long, default_value_t = 0)]
    pub history_days: u32,
}

/// The moment a `--as-of DAY` means: the end of that day.
pub fn end_of(day: NaiveDate) -> NaiveDateTime {
    day.succ_opt().unwrap_or(day).and_time(NaiveTime::MIN)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Prints ranked scores.
pub fn print_scores(
    rows: &[(String, ScoreDetails)],
    format: OutputFormat,
    limit: usize,
    model: &Model,
    as_of: NaiveDateTime,
) -> anyhow::Result<()> {
    let rows: Vec<&(String, ScoreDetails)> = if limit == 0 {
        rows.iter().collect()
    } else {
        rows.iter().take(limit).collect()
    };
    match format {
        OutputFormat::Json => {
            let out: Vec<serde_json::Value> = rows
                .iter()
                .map(|(id, d)| serde_json::json!({"account_id": id, "as_of": as_of, "score": d.score, "tier": d.tier, "pqa": d.pqa, "model": d.model, "model_version": d.model_version, "summary": d.summary, "components": d.components}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        OutputFormat::Csv => {
            use std::io::Write;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let at = as_of.format("%Y-%m-%dT%H:%M:%S").to_string();
            writeln!(
                out,
                "rank,account_id,score,tier,pqa,model,model_version,as_of,summary"
            )?;
            for (i, (id, d)) in rows.iter().enumerate() {
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{at},{}",
                    i + 1,
                    csv_field(id),
                    d.score,
                    d.tier,
                    d.pqa,
                    csv_field(&d.model),
                    d.model_version,
                    csv_field(&d.summary)
                )?;
            }
            out.flush()?;
        }
        OutputFormat::Table => {
            println!(
                "model {} v{} · level {:?} · as of {} · PQA at {}+",
                model.name,
                model.version,
                model.level,
                as_of.format("%Y-%m-%d %H:%M"),
                model.pqa_threshold
            );
            println!(
                "{:>4}  {:<28} {:>6}  {:<11} why",
                "rank", "account", "score", "tier"
            );
            for (i, (id, d)) in rows.iter().enumerate() {
                let why: String = d.summary.chars().take(110).collect();
                println!(
                    "{:>4}  {:<28} {:>6.1}  {:<11} {}",
                    i + 1,
                    id,
                    d.score,
                    d.tier,
                    why
                );
            }
        }
    }
    Ok(())
}

/// `upmarket score`.
pub fn run_score(
    session: &dyn StoreSession,
    model: &Model,
    args: &ScoreArgs,
) -> anyhow::Result<()> {
    let live = args.as_of.is_none();
    let as_of = match args.as_of {
        Some(d) => end_of(d),
        None => session.scoring_clock()?,
    };
    if args.history_days > 0 {
        let bar = ProgressBar::new(args.history_days as u64);
        bar.set_style(
            ProgressStyle::with_template("history {bar:40} {pos}/{len} days {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        for back in (1..=args.history_days).rev() {
            let day = as_of.date() - chrono::Days::new(back as u64);
            let scores = session.score_accounts(model, end_of(day), None)?;
            session.save_history(model, day, &scores)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    let started = std::time::Instant::now();
    let mut scores = session.score_accounts(model, as_of, None)?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        accounts = scores.len(),
        "scored"
    );
    let started = std::time::Instant::now();
    if live {
        let changes = session.save_current_scores(model, as_of, &scores)?;
        if !changes.is_empty() {
            tracing::info!(changes = changes.len(), "tier changes recorded");
        }
    }
    session.save_history(
        model,
        if live {
            as_of.date()
        } else {
            as_of.date() - chrono::Days::new(1)
        },
        &scores,
    )?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "saved");
    scores.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then_with(|| a.0.cmp(&b.0)));
    if let Some(t) = &args.list.tier {
        check_tier(model, t)?;
        scores.retain(|(_, d)| &d.tier == t);
    }
    let started = std::time::Instant::now();
    print_scores(&scores, args.list.format, args.list.limit, model, as_of)?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "printed");
    // The command ends here and the process with it: freeing every explanation one by one
    // (allocated on the scoring threads) took ~90 ms for 23k accounts; the OS reclaims it.
    std::mem::forget(scores);
    Ok(())
}

fn check_tier(model: &Model, tier: &str) -> anyhow::Result<()> {
    if model.tiers.iter().any(|t| t.name == tier) {
        Ok(())
    } else {
        anyhow::bail!(
            "unknown tier {tier:?}; this model's tiers: {}",
            model
                .tiers
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Arguments of `upmarket explain`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Workspace id or company domain (by the model's level).
    pub account: String,
    /// As of the end of this day. Default: now.
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `upmarket explain`.
pub fn run_explain(
    session: &dyn StoreSession,
    model: &Model,
    args: &ExplainArgs,
) -> anyhow::Result<()> {
    let as_of = match args.as_of {
        Some(d) => end_of(d),
        None => session.scoring_clock()?,
    };
    let scores = session.score_accounts(model, as_of, Some(std::slice::from_ref(&args.account)))?;
    let Some((id, d)) = scores.into_iter().next() else {
        anyhow::bail!(
            "no account {:?} with events before {} (accounts are {} ids)",
            args.account,
            as_of,
            if model.level == upmarket_core::model::Level::Workspace {
                "workspace"
            } else {
                "company-domain"
            }
        );
    };
    let history = session.history(model, &id)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"account_id": id, "as_of": as_of, "score": d, "history": history})
            )?
        );
        return Ok(());
    }
    println!(
        "{id}: {:.1} / 100 · {} ({}){}",
        d.score,
        d.tier,
        d.tier_label,
        if d.pqa { " · PQA" } else { "" }
    );
    println!(
        "model {} v{} · as of {}",
        d.model,
        d.model_version,
        as_of.format("%Y-%m-%d %H:%M")
    );
    println!();
    println!(
        "{:<22} {:>10} {:>8} {:>7} {:>13}  sentence",
        "signal", "value", "points", "weight", "contribution"
    );
    for c in &d.components {
        let value = match &c.value {
            upmarket_core::model::SignalValue::Number(n) => format!("{n:.1}"),
            upmarket_core::model::SignalValue::Text(t) => t.clone().unwrap_or_else(|| "-".into()),
        };
        println!(
            "{:<22} {:>10} {:>8.1} {:>7.2} {:>+13.1}  {}",
            c.signal, value, c.points, c.weight, c.contribution, c.sentence
        );
    }
    println!();
    println!("why: {}", d.summary);
    if !history.is_empty() {
        let tail: Vec<String> = history
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(|h| format!("{} {:.0} ({})", h.day.format("%m-%d"), h.score, h.tier))
            .collect();
        println!("history: {}", tail.join(" → "));
    }
    Ok(())
}

/// Arguments of `upmarket accounts`.
#[derive(clap::Args)]
pub struct AccountsArgs {
    /// Filter, size and format of the list.
    #[command(flatten)]
    pub list: ListArgs,
}

/// `upmarket accounts`: the stored current scores (as `serve` or the last `score` left them).
pub fn run_accounts(
    session: &dyn StoreSession,
    model: &Model,
    args: &AccountsArgs,
) -> anyhow::Result<()> {
    if let Some(t) = &args.list.tier {
        check_tier(model, t)?;
    }
    let rows = session.current_scores(model, args.list.tier.as_deref())?;
    if rows.is_empty() {
        eprintln!(
            "no stored scores for model {} v{}: run `upmarket score` (or `upmarket serve`) first",
            model.name, model.version
        );
    }
    let as_of = rows
        .first()
        .map_or_else(|| chrono::Utc::now().naive_utc(), |r| r.as_of);
    let pairs: Vec<(String, ScoreDetails)> = rows
        .into_iter()
        .map(|r| (r.account_id, r.details))
        .collect();
    print_scores(&pairs, args.list.format, args.list.limit, model, as_of)
}

//! # upmarket-sim
//!
//! A realistic product-led B2B SaaS company, simulated: product usage events in Segment's
//! spec, and the side files a company has (CRM opportunities, marketing leads), plus a
//! ground-truth file for tests and evaluation. The demo, the scoring and learning tests and the
//! benchmarks all run on it.
//!
//! Each company has a latent buying intent that drives its behaviour (team growth, velocity
//! bursts, feature breadth, pricing / terms / privacy / security views, admin changes, trials,
//! upgrades, hand-raises, deals), but no single signal gives it away: there are bots, churned
//! teams, power users with no intent, and buyers who never use the product.
//!
//! Deterministic: the same seed gives the same bytes (each company has its own generator seeded
//! from the run seed and its index). Streaming: one company is in memory at a time.
//!
//! What it refuses to do: read or write anything but the output directory it is given.
#![deny(missing_docs)]

pub mod behavior;
pub mod company;
pub mod event;
pub mod names;
pub mod rng;
pub mod sales;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::{NaiveDate, NaiveTime};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Companies (a solo free-mail user counts as one).
    pub accounts: u64,
    /// Days of history.
    pub days: i64,
    /// Random seed.
    pub seed: u64,
    /// First simulated day.
    pub start: NaiveDate,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            accounts: 3000,
            days: 365,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2025, 11, 1).unwrap_or_default(),
        }
    }
}

/// What a run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimSummary {
    /// Events written to events.ndjson.
    pub events: u64,
    /// Workspaces.
    pub workspaces: u64,
    /// Users.
    pub users: u64,
    /// Opportunities in outcomes.csv.
    pub opportunities: u64,
    /// Leads in leads.csv.
    pub leads: u64,
}

/// A simulator error (only I/O can fail).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct SimError {
    path: String,
    source: std::io::Error,
}

/// The files a run writes into its output directory.
pub const FILES: [&str; 4] = ["events.ndjson", "outcomes.csv", "leads.csv", "truth.csv"];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Runs the simulation into `out` (created if needed).
pub fn simulate(
    config: &SimConfig,
    out: &Path,
    mut progress: impl FnMut(u64),
) -> Result<SimSummary, SimError> {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> SimError + '_ {
        move |source| SimError {
            path: path.display().to_string(),
            source,
        }
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let open = |name: &str| -> Result<BufWriter<File>, SimError> {
        let path = out.join(name);
        Ok(BufWriter::with_capacity(
            1 << 20,
            File::create(&path).map_err(io(&path))?,
        ))
    };
    let (mut events, mut outcomes, mut leads, mut truth) = (
        open(FILES[0])?,
        open(FILES[1])?,
        open(FILES[2])?,
        open(FILES[3])?,
    );
    let start = config.start.and_time(NaiveTime::MIN).and_utc().timestamp();
    let day_str = |d: i64| {
        (config.start + chrono::Days::new(d.max(0) as u64))
            .format("%Y-%m-%d")
            .to_string()
    };
    let path_of = |name: &str| out.join(name);
    writeln!(
        outcomes,
        "opportunity_id,company_domain,company_name,opened_at,closed_at,stage,acv,source"
    )
    .map_err(io(&path_of(FILES[1])))?;
    writeln!(
        leads,
        "lead_id,email,first_name,last_name,title,company_name,created_at,source"
    )
    .map_err(io(&path_of(FILES[2])))?;
    writeln!(truth, "company_index,company_domain,workspace_id,employees,intent,users,bot,power_user_no_intent,churned,trial,paid,hand_raised,buyer_is_user,first_signup,opportunity_stage").map_err(io(&path_of(FILES[3])))?;
    let mut summary = SimSummary::default();
    // Companies are generated in blocks on two threads (each company is a pure function of the
    // seed and its index) and written in index order, so the bytes do not depend on threads.
    let mut produced = Vec::new().into_iter();
    for i in 0..config.accounts {
        if produced.len() == 0 {
            produced =
                produce_block(config, start, i, (i + BLOCK).min(config.accounts)).into_iter();
        }
        let Some((company, buf, count)) = produced.next() else {
            break;
        };
        summary.events += count;
        events.write_all(&buf).map_err(io(&path_of(FILES[0])))?;
        let (opps, company_leads) = sales::company_sales(&company, config.seed, config.days);
        for o in &opps {
            writeln!(
                outcomes,
                "{},{},{},{},{},{},{},{}",
                o.id,
                o.domain,
                csv_field(&o.company_name),
                day_str(o.opened_day),
                o.closed_day.map(day_str).unwrap_or_default(),
                o.stage,
                o.acv,
                o.source
            )
            .map_err(io(&path_of(FILES[1])))?;
        }
        for l in &company_leads {
            write_lead(&mut leads, l, &day_str).map_err(io(&path_of(FILES[2])))?;
        }
        summary.opportunities += opps.len() as u64;
        summary.leads += company_leads.len() as u64;
        let stage = opps.first().map_or("", |o| o.stage);
        for ws in &company.workspaces {
            summary.workspaces += 1;
            summary.users += ws.users.len() as u64;
            writeln!(
                truth,
                "{},{},{},{},{:.4},{},{},{},{},{},{},{},{},{},{}",
                i,
                company.domain.as_deref().unwrap_or_default(),
                ws.id,
                company.employees,
                company.intent,
                ws.users.iter().filter(|u| !u.bot).count(),
                ws.users.iter().any(|u| u.bot),
                company.power_user_no_intent,
                ws.churn_day.is_some_and(|d| d < config.days),
                ws.trial_day.is_some_and(|d| d < config.days),
                ws.paid_day
                    .is_some_and(|d| d < config.days && ws.churn_day.is_none_or(|c| d < c)),
                ws.hand_raise_day
                    .is_some_and(|d| d < config.days && ws.churn_day.is_none_or(|c| d < c)),
                company.buyer_is_user,
                day_str(ws.start_day),
                stage
            )
            .map_err(io(&path_of(FILES[3])))?;
        }
        progress(i + 1);
    }
    // Leads from companies that never used the product: the "MQL only" channel.
    for i in 0..config.accounts / 2 {
        write_lead(
            &mut leads,
            &sales::outside_lead(config.seed, i, config.days),
            &day_str,
        )
        .map_err(io(&path_of(FILES[2])))?;
        summary.leads += 1;
    }
    for (w, name) in [
        (&mut events, FILES[0]),
        (&mut outcomes, FILES[1]),
        (&mut leads, FILES[2]),
        (&mut truth, FILES[3]),
    ] {
        w.flush().map_err(io(&path_of(name)))?;
    }
    Ok(summary)
}

/// Companies generated per block (two threads share a block).
const BLOCK: u64 = 128;

/// One company and its events as NDJSON, with their count.
fn produce(config: &SimConfig, start: i64, i: u64) -> (company::Company, Vec<u8>, u64) {
    let company = company::generate(config.seed, i, config.days);
    let mut buf = Vec::with_capacity(1 << 16);
    let prefix = format!("sim-{}-{}-", config.seed, i);
    let mut n = 0u64;
    let mut id = String::with_capacity(prefix.len() + 8);
    behavior::emit(&company, config.seed, config.days, start, &mut |e| {
        use std::fmt::Write as _;
        n += 1;
        id.clear();
        let _ = write!(id, "{prefix}{n}");
        e.write_json(&mut buf, &id);
    });
    (company, buf, n)
}

/// Companies `first..last`, in order, generated on two threads.
fn produce_block(
    config: &SimConfig,
    start: i64,
    first: u64,
    last: u64,
) -> Vec<(company::Company, Vec<u8>, u64)> {
    let mid = first + (last - first) / 2;
    std::thread::scope(|scope| {
        let upper = scope.spawn(|| {
            (mid..last)
                .map(|i| produce(config, start, i))
                .collect::<Vec<_>>()
        });
        let mut lower: Vec<_> = (first..mid).map(|i| produce(config, start, i)).collect();
        lower.extend(
            upper
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        );
        lower
    })
}

fn write_lead(
    w: &mut impl Write,
    l: &sales::Lead,
    day_str: &impl Fn(i64) -> String,
) -> std::io::Result<()> {
    writeln!(
        w,
        "{},{},{},{},{},{},{},{}",
        l.id,
        l.email,
        l.first_name,
        l.last_name,
        csv_field(&l.title),
        csv_field(&l.company_name),
        day_str(l.created_day),
        l.source
    )
}

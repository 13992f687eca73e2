//! One simulated company: its workspaces, people, latent intent, and what happened to it.

use crate::names::*;
use crate::rng::Rng;

/// A person who uses the product.
#[derive(Debug, Clone)]
pub struct User {
    /// userId.
    pub id: String,
    /// Cookie id before sign-up.
    pub anonymous_id: String,
    /// E-mail (work or personal).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Index into [`SENIORITY`].
    pub seniority: usize,
    /// Department.
    pub department: &'static str,
    /// Job title.
    pub title: String,
    /// Simulation day of sign-up.
    pub join_day: i64,
    /// Probability of being active on a weekday.
    pub activity: f64,
    /// Who invited them (index into the workspace's users), if anyone.
    pub invited_by: Option<usize>,
    /// Onboarding screens answered (0–4): company size, department, seniority, use case.
    pub profile_screens: u8,
    /// A bot (integration user) that floods events.
    pub bot: bool,
}

/// A workspace (the product's team / organization object).
#[derive(Debug, Clone)]
pub struct Workspace {
    /// groupId.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Simulation day of creation.
    pub start_day: i64,
    /// Users, creator first.
    pub users: Vec<User>,
    /// The day activity stops, for churned workspaces.
    pub churn_day: Option<i64>,
    /// Trial start day, when it took a trial.
    pub trial_day: Option<i64>,
    /// Day it became paying (self-serve).
    pub paid_day: Option<i64>,
    /// Day someone submitted "contact sales".
    pub hand_raise_day: Option<i64>,
    /// Day of a burst of new users (velocity), if any.
    pub burst_day: Option<i64>,
}

/// A company and everything the simulator decided about it.
#[derive(Debug, Clone)]
pub struct Company {
    /// Index of the company in the run.
    pub index: u64,
    /// Work-email domain; `None` for a solo user on free mail.
    pub domain: Option<String>,
    /// Legal-ish name ("Brightforge Inc").
    pub name: String,
    /// Employees.
    pub employees: u64,
    /// Index into [`SIZE_BANDS`].
    pub size_band: usize,
    /// Latent buying intent in [0, 1]: drives behaviour, never emitted.
    pub intent: f64,
    /// Its workspaces.
    pub workspaces: Vec<Workspace>,
    /// Whether the economic buyer is among the users.
    pub buyer_is_user: bool,
    /// A power user with lots of usage and no buying intent.
    pub power_user_no_intent: bool,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// A unique company name and domain for index `i` (bijective, so domains never collide).
pub fn company_identity(i: u64, lead_only: bool) -> (String, String) {
    let combos = (COMPANY_PREFIX.len() * COMPANY_SUFFIX.len() * TLDS.len()) as u64;
    // Spread consecutive indices over the name space (7919 is prime, coprime with `combos`).
    let j = (i.wrapping_mul(7919) + if lead_only { 4099 } else { 0 }) % combos;
    let round = i / combos + if lead_only { 1000 } else { 0 };
    let p = COMPANY_PREFIX[(j % COMPANY_PREFIX.len() as u64) as usize];
    let rest = j / COMPANY_PREFIX.len() as u64;
    let s = COMPANY_SUFFIX[(rest % COMPANY_SUFFIX.len() as u64) as usize];
    let tld = TLDS[(rest / COMPANY_SUFFIX.len() as u64 % TLDS.len() as u64) as usize];
    let base = if round == 0 {
        format!("{p}{s}")
    } else {
        format!("{p}{s}{round}")
    };
    (capitalize(&base), format!("{base}.{tld}"))
}

/// Generates company `index` of a run of `days` days.
pub fn generate(seed: u64, index: u64, days: i64) -> Company {
    let mut rng = Rng::new(seed, index);
    let solo = rng.chance(0.30);
    let (size_band, employees) = if solo {
        (0, 1)
    } else {
        let band = rng.weighted(SIZE_WEIGHTS);
        let (lo, hi) = SIZE_RANGES[band];
        (band, rng.range(lo, hi))
    };
    let size_boost = [0.0, 0.1, 0.25, 0.45, 0.6, 0.7][size_band];
    let z = rng.normal() + size_boost - if solo { 1.0 } else { 0.0 };
    let intent = sigmoid(-1.7 + 1.4 * z);
    let (name, domain) = company_identity(index, false);
    let power_user_no_intent = !solo && rng.chance(0.05);
    let intent = if power_user_no_intent {
        intent.min(0.05)
    } else {
        intent
    };
    let mut company = Company {
        index,
        domain: (!solo).then(|| domain.clone()),
        name: if solo { String::new() } else { name.clone() },
        employees,
        size_band,
        intent,
        workspaces: Vec::new(),
        buyer_is_user: false,
        power_user_no_intent,
    };
    let n_ws = if !solo && employees > 200 && rng.chance(0.3) {
        2 + rng.range(0, 2)
    } else {
        1
    };
    let company_start = rng.range(0, (days as f64 * 0.85) as u64) as i64;
    for w in 0..n_ws {
        let start = company_start + if w == 0 { 0 } else { rng.range(10, 150) as i64 };
        if start >= days {
            continue;
        }
        let ws = workspace(&mut rng, &company, w, start, days, solo, &domain);
        company.workspaces.push(ws);
    }
    if power_user_no_intent {
        if let Some(u) = company
            .workspaces
            .first_mut()
            .and_then(|w| w.users.first_mut())
        {
            u.activity = 0.95;
        }
    }
    // The buyer is a senior user only sometimes: most usage has no buyer in it.
    let senior_users = company
        .workspaces
        .iter()
        .flat_map(|w| &w.users)
        .filter(|u| u.seniority >= 2 && !u.bot)
        .count();
    company.buyer_is_user = !solo && senior_users > 0 && rng.chance(0.20 + 0.25 * intent);
    company
}

fn workspace(
    rng: &mut Rng,
    c: &Company,
    w: u64,
    start: i64,
    days: i64,
    solo: bool,
    domain: &str,
) -> Workspace {
    let p = c.intent;
    let size_factor = [0.45, 0.8, 1.0, 1.2, 1.35, 1.5][c.size_band];
    let cap = c.employees.min(80) as f64;
    let team = if solo {
        1
    } else {
        (1.0 + rng.poisson(0.6 + 10.0 * p * size_factor) as f64).min(cap) as usize
    };
    let burst_day =
        (team >= 4 && rng.chance(0.3 + 0.5 * p)).then(|| start + rng.range(20, 200) as i64);
    let mut users: Vec<User> = Vec::with_capacity(team);
    for k in 0..team {
        let join_day = if k == 0 {
            start
        } else if let (Some(b), true) = (burst_day, k * 2 >= team) {
            b + rng.range(0, 7) as i64
        } else {
            start + (rng.f64().powf(1.5) * 240.0) as i64 + 1
        };
        if join_day >= days {
            continue;
        }
        let first = *rng.pick(FIRST);
        let last = *rng.pick(LAST);
        let seniority = if solo {
            rng.weighted(&[0.8, 0.15, 0.05, 0.0, 0.0])
        } else {
            rng.weighted(SENIORITY_WEIGHTS)
        };
        let department = *rng.pick(DEPARTMENTS);
        let uid = format!("u{}-{}-{}", c.index, w, k);
        let email = if solo || rng.chance(0.12) {
            format!("{first}.{last}{}@{}", c.index % 1000, rng.pick(FREE_MAIL))
        } else {
            format!("{first}.{last}{k}@{domain}")
        };
        let engagement = (0.3 + 0.5 * p + 0.2 * rng.normal()).clamp(0.02, 1.0);
        let screens = if rng.chance(0.5 + 0.45 * p) {
            4
        } else {
            rng.range(0, 4) as u8
        };
        let invited_by = (k > 0).then(|| rng.range(0, users.len().max(1) as u64) as usize);
        users.push(User {
            id: uid.clone(),
            anonymous_id: format!("anon-{uid}"),
            email,
            name: format!("{} {}", capitalize(first), capitalize(last)),
            seniority,
            department,
            title: title(seniority, department),
            join_day,
            activity: 0.05 + 0.45 * engagement,
            invited_by,
            profile_screens: screens,
            bot: false,
        });
    }
    if !solo && rng.chance(0.01) {
        let uid = format!("u{}-{}-bot", c.index, w);
        users.push(User {
            id: uid.clone(),
            anonymous_id: format!("anon-{uid}"),
            email: format!("integration-bot@{domain}"),
            name: "Integration Bot".into(),
            seniority: 0,
            department: "IT",
            title: "Service Account".into(),
            join_day: start + rng.range(5, 60) as i64,
            activity: 1.0,
            invited_by: Some(0),
            profile_screens: 0,
            bot: true,
        });
    }
    let churn_day = (p < 0.15 && rng.chance(0.35)).then(|| start + rng.range(20, 200) as i64);
    let trial_day = rng
        .chance(0.22 + 0.25 * p)
        .then(|| start + rng.range(3, 90) as i64);
    let paid_day = match trial_day {
        Some(t) => rng.chance(0.04 + 0.30 * p).then_some(t + 14),
        None => rng
            .chance(0.02 + 0.18 * p)
            .then(|| start + rng.range(20, 200) as i64),
    };
    let full_team_day = users.iter().map(|u| u.join_day).max().unwrap_or(start);
    let big = users.len() >= 7;
    let hand_raise_day = (!solo && rng.chance(0.005 + 0.30 * p * if big { 1.0 } else { 0.25 }))
        .then(|| full_team_day + rng.range(0, 60) as i64);
    Workspace {
        id: format!("ws{}-{}", c.index, w),
        name: if solo {
            "Personal".into()
        } else if w == 0 {
            c.name.clone()
        } else {
            format!(
                "{} {}",
                c.name,
                ["Marketing", "Data", "Ops"][(w as usize - 1) % 3]
            )
        },
        start_day: start,
        users,
        churn_day,
        trial_day,
        paid_day,
        hand_raise_day,
        burst_day,
    }
}

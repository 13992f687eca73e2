//! What sales and marketing saw: opportunities (CRM outcomes) and marketing leads (MQLs).

use crate::company::{company_identity, Company};
use crate::names::*;
use crate::rng::Rng;

/// One CRM opportunity.
#[derive(Debug, Clone)]
pub struct Opportunity {
    /// Opportunity id.
    pub id: String,
    /// Company domain.
    pub domain: String,
    /// Company name as the CRM spells it.
    pub company_name: String,
    /// Simulation day it opened.
    pub opened_day: i64,
    /// Simulation day it closed (`None`: still open at the end).
    pub closed_day: Option<i64>,
    /// "open", "won" or "lost".
    pub stage: &'static str,
    /// Annual contract value in USD.
    pub acv: u64,
    /// "hand_raise", "pqa_outbound" or "mql".
    pub source: &'static str,
}

/// One marketing lead.
#[derive(Debug, Clone)]
pub struct Lead {
    /// Lead id.
    pub id: String,
    /// E-mail.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Job title.
    pub title: String,
    /// Company name as typed into a form (spelling varies).
    pub company_name: String,
    /// Simulation day created.
    pub created_day: i64,
    /// Campaign source.
    pub source: &'static str,
    /// The company index it belongs to, for the ground truth (`None` for companies not in the product).
    pub company_index: Option<u64>,
}

/// How people type a company's name into a form.
pub fn spelling_variant(rng: &mut Rng, name: &str) -> String {
    match rng.range(0, 7) {
        0 | 1 => name.to_string(),
        2 => format!("{name}{}", rng.pick(&COMPANY_LABEL[1..])),
        3 => name.to_lowercase(),
        4 => name.to_uppercase(),
        5 => format!("The {name} Company"),
        _ => {
            // A typo: two neighbouring letters swapped.
            let mut chars: Vec<char> = name.chars().collect();
            if chars.len() > 3 {
                let i = 1 + rng.range(0, chars.len() as u64 - 2) as usize;
                chars.swap(i, i + 1);
            }
            chars.into_iter().collect()
        }
    }
}

/// Opportunities and leads for one company.
pub fn company_sales(c: &Company, seed: u64, days: i64) -> (Vec<Opportunity>, Vec<Lead>) {
    let mut rng = Rng::new(seed ^ 0x5A1E_5A1E, c.index);
    let mut opps = Vec::new();
    let mut leads = Vec::new();
    let Some(domain) = &c.domain else {
        return (opps, leads);
    };
    let p = c.intent;
    // Marketing finds the buyer outside the user base for some accounts.
    let lead_day = (rng.chance(0.10 + 0.35 * p)).then(|| {
        let first_ws = c.workspaces.first().map_or(0, |w| w.start_day);
        (first_ws + rng.range(30, 300) as i64).min(days - 1)
    });
    if let Some(day) = lead_day {
        let (first, last) = (*rng.pick(FIRST), *rng.pick(LAST));
        let email = if rng.chance(0.25) {
            format!("{first}{last}@{}", rng.pick(FREE_MAIL))
        } else {
            format!("{first}.{last}@{domain}")
        };
        let seniority = 2 + rng.range(0, 3) as usize;
        leads.push(Lead {
            id: format!("lead-{}-0", c.index),
            email,
            first_name: first.to_string(),
            last_name: last.to_string(),
            title: title(seniority, *rng.pick(DEPARTMENTS)),
            company_name: spelling_variant(&mut rng, &c.name),
            created_day: day,
            source: *rng.pick(LEAD_SOURCES),
            company_index: Some(c.index),
        });
    }
    let hand_raise = c.workspaces.iter().filter_map(|w| w.hand_raise_day).min();
    let opened = match (hand_raise, lead_day) {
        (Some(h), _) if rng.chance(0.85) => Some((h + rng.range(1, 10) as i64, "hand_raise")),
        (_, Some(l)) if rng.chance(0.35 + 0.3 * p) => Some((l + rng.range(5, 40) as i64, "mql")),
        _ if p > 0.45 && rng.chance(0.25) => Some((
            c.workspaces.first().map_or(0, |w| w.start_day) + rng.range(120, 330) as i64,
            "pqa_outbound",
        )),
        _ => None,
    };
    if let Some((day, source)) = opened.filter(|(d, _)| *d < days) {
        let cycle = rng.range(30, 200) as i64;
        let close = day + cycle;
        let won = rng.chance(0.12 + 0.55 * p);
        let size_mult = [0.5, 0.8, 1.0, 1.8, 3.0, 5.0][c.size_band];
        let acv =
            ((15_000.0 * size_mult * (0.7 * rng.normal()).exp()) / 500.0).round() as u64 * 500;
        opps.push(Opportunity {
            id: format!("opp-{}", c.index),
            domain: domain.clone(),
            company_name: spelling_variant(&mut rng, &c.name),
            opened_day: day,
            closed_day: (close < days).then_some(close),
            stage: if close >= days {
                "open"
            } else if won {
                "won"
            } else {
                "lost"
            },
            acv: acv.max(5_000),
            source,
        });
    }
    (opps, leads)
}

/// A lead from a company that never used the product (the "MQL only" channel).
pub fn outside_lead(seed: u64, i: u64, days: i64) -> Lead {
    let mut rng = Rng::new(seed ^ 0x0u64.wrapping_add(0x1EAD), i);
    let (name, domain) = company_identity(i, true);
    let (first, last) = (*rng.pick(FIRST), *rng.pick(LAST));
    Lead {
        id: format!("lead-x{i}"),
        email: format!("{first}.{last}@{domain}"),
        first_name: first.into(),
        last_name: last.into(),
        title: title(rng.weighted(SENIORITY_WEIGHTS), *rng.pick(DEPARTMENTS)),
        company_name: spelling_variant(&mut rng, &name),
        created_day: rng.range(0, days as u64) as i64,
        source: *rng.pick(LEAD_SOURCES),
        company_index: None,
    }
}

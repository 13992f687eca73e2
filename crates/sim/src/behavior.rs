//! Day-by-day behaviour of a company's users, as events.

use crate::company::{Company, User, Workspace};
use crate::event::{Call, Prop, SimEvent};
use crate::names::{SENIORITY, SIZE_BANDS, USE_CASES};
use crate::rng::Rng;

/// Core features: everyone uses them.
pub const CORE: &[&str] = &[
    "Report Created",
    "Dashboard Viewed",
    "Query Run",
    "Chart Shared",
];
/// Advanced features: teams that get value.
pub const ADVANCED: &[&str] = &[
    "Alert Configured",
    "Integration Connected",
    "API Key Created",
    "Custom Metric Defined",
];
/// Enterprise features: evaluation for a company-wide rollout.
pub const ENTERPRISE: &[&str] = &[
    "SSO Configured",
    "Audit Log Viewed",
    "SCIM Provisioning Enabled",
    "Data Retention Changed",
];
/// Pages and their paths.
pub const PAGES: &[(&str, &str)] = &[
    ("Home", "/home"),
    ("Docs", "/docs"),
    ("Pricing", "/pricing"),
    ("Terms of Service", "/legal/terms"),
    ("Privacy Policy", "/legal/privacy"),
    ("Security", "/security"),
    ("Contact Sales", "/contact-sales"),
];

/// Emits every event of `company` for days `0..days`, starting at Unix time `start`.
pub fn emit(company: &Company, seed: u64, days: i64, start: i64, sink: &mut dyn FnMut(&SimEvent)) {
    let mut rng = Rng::new(seed ^ 0xA5A5_5A5A, company.index);
    for ws in &company.workspaces {
        emit_workspace(company, ws, &mut rng, days, start, sink);
    }
}

fn at(rng: &mut Rng, start: i64, day: i64) -> (i64, u16) {
    // Business hours, UTC-ish, with jitter.
    let secs = 8 * 3600 + rng.range(0, 11 * 3600) as i64;
    (start + day * 86_400 + secs, rng.range(0, 1000) as u16)
}

fn ev(
    call: Call,
    name: &'static str,
    user: &User,
    ws: &Workspace,
    (at, ms): (i64, u16),
    props: Vec<(&'static str, Prop)>,
) -> SimEvent {
    SimEvent {
        call,
        name,
        user_id: Some(user.id.clone()),
        anonymous_id: None,
        group_id: Some(ws.id.clone()),
        at,
        ms,
        props,
    }
}

fn page(name: &'static str, user: &User, ws: &Workspace, t: (i64, u16)) -> SimEvent {
    let path = PAGES.iter().find(|p| p.0 == name).map_or("/", |p| p.1);
    ev(
        Call::Page,
        name,
        user,
        ws,
        t,
        vec![
            ("path", Prop::Str(path.into())),
            (
                "url",
                Prop::Str(format!("https://www.example-product.com{path}")),
            ),
        ],
    )
}

fn emit_workspace(
    c: &Company,
    ws: &Workspace,
    rng: &mut Rng,
    days: i64,
    start: i64,
    sink: &mut dyn FnMut(&SimEvent),
) {
    let p = c.intent;
    let end = ws.churn_day.unwrap_or(days).min(days);
    // Sign-up of each user: anonymous visits, identify with profile answers, group, invite.
    for (k, u) in ws.users.iter().enumerate() {
        // Someone who joins after the simulated period has not signed up yet.
        if u.join_day >= days {
            continue;
        }
        let t0 = at(rng, start, u.join_day);
        if !u.bot {
            let visits = 1 + rng.poisson(1.0);
            for v in 0..visits {
                let name = if rng.chance(0.3) { "Pricing" } else { "Home" };
                let mut e = page(name, u, ws, (t0.0 - 600 + v as i64 * 60, t0.1));
                e.user_id = None;
                e.group_id = None;
                e.anonymous_id = Some(u.anonymous_id.clone());
                sink(&e);
            }
        }
        let mut traits: Vec<(&'static str, Prop)> = vec![
            ("email", Prop::Str(u.email.clone())),
            ("name", Prop::Str(u.name.clone())),
        ];
        let answers: [(&'static str, Prop); 4] = [
            ("company_size", Prop::Str(SIZE_BANDS[c.size_band].into())),
            ("department", Prop::Str(u.department.into())),
            ("seniority", Prop::Str(SENIORITY[u.seniority].into())),
            (
                "use_case",
                Prop::Str(USE_CASES[((p * 4.0) as usize + rng.range(0, 2) as usize).min(4)].into()),
            ),
        ];
        traits.extend(answers.into_iter().take(u.profile_screens as usize));
        if u.profile_screens >= 3 {
            traits.push(("title", Prop::Str(u.title.clone())));
        }
        let mut identify = ev(Call::Identify, "", u, ws, t0, traits);
        identify.anonymous_id = Some(u.anonymous_id.clone());
        sink(&identify);
        sink(&ev(
            Call::Track,
            "Signed Up",
            u,
            ws,
            (t0.0 + 1, t0.1),
            vec![(
                "method",
                Prop::Str(if rng.chance(0.6) { "google" } else { "email" }.into()),
            )],
        ));
        let mut group_traits = vec![
            ("name", Prop::Str(ws.name.clone())),
            ("plan", Prop::Str("free".into())),
        ];
        if k == 0 && c.domain.is_some() && rng.chance(0.5) {
            group_traits.push((
                "website",
                Prop::Str(format!(
                    "https://{}",
                    c.domain.as_deref().unwrap_or_default()
                )),
            ));
        }
        sink(&ev(
            Call::Group,
            "",
            u,
            ws,
            (t0.0 + 2, t0.1),
            if k == 0 { group_traits } else { vec![] },
        ));
        if let Some(inviter) = u.invited_by.and_then(|i| ws.users.get(i)) {
            sink(&ev(
                Call::Track,
                "Teammate Invited",
                inviter,
                ws,
                (t0.0 - 3600, t0.1),
                vec![("invitee_email", Prop::Str(u.email.clone()))],
            ));
        }
    }
    let team_now = |d: i64| {
        ws.users
            .iter()
            .filter(|u| u.join_day <= d && !u.bot)
            .count()
    };
    for d in ws.start_day..end {
        let weekday = (d + 3).rem_euclid(7) < 5;
        let team = team_now(d);
        let in_trial = ws.trial_day.is_some_and(|t| d >= t && d < t + 14);
        for u in ws.users.iter().filter(|u| u.join_day <= d) {
            if u.bot {
                for _ in 0..rng.poisson(150.0) {
                    sink(&ev(
                        Call::Track,
                        "API Request",
                        u,
                        ws,
                        at(rng, start, d),
                        vec![],
                    ));
                }
                continue;
            }
            let active = u.activity * if weekday { 1.0 } else { 0.2 };
            if !rng.chance(active) {
                continue;
            }
            let n = 1 + rng.poisson(1.2 + 2.0 * p);
            for _ in 0..n {
                let r = rng.f64();
                let name = if r < 0.02 * p * (team >= 5) as u8 as f64 * 3.0 {
                    *rng.pick(ENTERPRISE)
                } else if r < 0.25 * (0.4 + p) {
                    *rng.pick(ADVANCED)
                } else {
                    *rng.pick(CORE)
                };
                let props = if name == "Query Run" {
                    vec![("rows", Prop::Int(rng.range(1, 5000) as i64))]
                } else {
                    vec![]
                };
                sink(&ev(Call::Track, name, u, ws, at(rng, start, d), props));
            }
            if rng.chance(0.01 + 0.05 * p + if in_trial { 0.08 } else { 0.0 }) {
                sink(&page("Pricing", u, ws, at(rng, start, d)));
            }
            let legal = 0.001 + 0.03 * p * if team >= 3 { 1.0 } else { 0.3 };
            if rng.chance(legal) {
                sink(&page(
                    if rng.chance(0.5) {
                        "Terms of Service"
                    } else {
                        "Privacy Policy"
                    },
                    u,
                    ws,
                    at(rng, start, d),
                ));
            }
            if rng.chance(0.0005 + 0.015 * p) {
                sink(&page("Security", u, ws, at(rng, start, d)));
            }
            if rng.chance(0.05) {
                sink(&page("Docs", u, ws, at(rng, start, d)));
            }
        }
        let Some(owner) = ws.users.first() else {
            continue;
        };
        if team >= 2 && rng.chance(0.0005 + 0.01 * p * (team >= 3) as u8 as f64) {
            let to = rng.pick(&ws.users);
            sink(&ev(
                Call::Track,
                "Admin Role Changed",
                owner,
                ws,
                at(rng, start, d),
                vec![("new_admin", Prop::Str(to.id.clone()))],
            ));
        }
        if ws.trial_day == Some(d) {
            sink(&ev(
                Call::Track,
                "Trial Started",
                owner,
                ws,
                at(rng, start, d),
                vec![("plan", Prop::Str("business".into()))],
            ));
        }
        if ws.trial_day.is_some_and(|t| t + 14 == d) && ws.paid_day != Some(d) {
            sink(&ev(
                Call::Track,
                "Trial Ended",
                owner,
                ws,
                at(rng, start, d),
                vec![],
            ));
        }
        if ws.paid_day == Some(d) {
            let plan = if ws.trial_day.is_some() {
                "business"
            } else {
                "team"
            };
            sink(&ev(
                Call::Track,
                "Plan Upgraded",
                owner,
                ws,
                at(rng, start, d),
                vec![
                    ("plan", Prop::Str(plan.into())),
                    ("seats", Prop::Int(team as i64)),
                ],
            ));
        }
        if ws.hand_raise_day == Some(d) {
            let who = ws
                .users
                .iter()
                .filter(|u| !u.bot)
                .max_by_key(|u| u.seniority)
                .unwrap_or(owner);
            let t = at(rng, start, d);
            sink(&page("Contact Sales", who, ws, t));
            sink(&ev(
                Call::Track,
                "Contact Sales Submitted",
                who,
                ws,
                (t.0 + 30, t.1),
                vec![("seats_wanted", Prop::Int((team as i64 * 3).max(10)))],
            ));
        }
    }
}

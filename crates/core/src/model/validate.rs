//! Raw model file → validated [`Model`], with errors that name the file, the field and what was
//! expected. Validation is all-or-nothing: a model with any error is not used at all.

use super::raw::{RawComponent, RawMatcher, RawModel, RawSignal};
use super::*;

/// A problem in a model file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ModelError {
    /// The file.
    pub file: String,
    /// The field at fault (`signal[2].window_days`).
    pub field: String,
    /// What is wrong and what was expected.
    pub message: String,
}

const KINDS: &[&str] = &[
    "active_users",
    "active_days",
    "event_count",
    "velocity",
    "feature_breadth",
    "feature_tier",
    "trait",
    "recency",
];

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ModelError {
        ModelError {
            file: self.file.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

pub(super) fn from_toml(text: &str, origin: &str) -> Result<Model, ModelError> {
    let ctx = Ctx { file: origin };
    let raw: RawModel = toml::from_str(text).map_err(|e| {
        let span = e
            .span()
            .map(|s| format!("byte {}", s.start))
            .unwrap_or_else(|| "file".into());
        ctx.err(span, e.message().to_string())
    })?;
    build(raw, &ctx)
}

fn build(raw: RawModel, ctx: &Ctx) -> Result<Model, ModelError> {
    if raw.model.name.trim().is_empty() {
        return Err(ctx.err("model.name", "must not be empty"));
    }
    if raw.model.version == 0 {
        return Err(ctx.err("model.version", "must be 1 or more"));
    }
    let level = match raw.model.level.as_deref().unwrap_or("workspace") {
        "workspace" => Level::Workspace,
        "company" => Level::Company,
        other => {
            return Err(ctx.err(
                "model.level",
                format!("expected \"workspace\" or \"company\", got {other:?}"),
            ))
        }
    };
    let scale = match raw.model.scale.as_deref().unwrap_or("normalized") {
        "normalized" => Scale::Normalized,
        "raw" => Scale::Raw,
        other => {
            return Err(ctx.err(
                "model.scale",
                format!("expected \"normalized\" or \"raw\", got {other:?}"),
            ))
        }
    };
    let mut roles = Vec::new();
    for (name, m) in raw.events {
        if !ROLES.contains(&name.as_str()) {
            return Err(ctx.err(
                format!("events.{name}"),
                format!("unknown event role; expected one of {}", ROLES.join(", ")),
            ));
        }
        let sel = match m {
            RawMatcher::Events(events) => EventSelector {
                events,
                pages: vec![],
            },
            RawMatcher::Detailed { events, pages } => EventSelector { events, pages },
        };
        if sel.is_empty() {
            return Err(ctx.err(format!("events.{name}"), "names no events and no pages"));
        }
        roles.push((name, sel));
    }
    let role_of = |field: String, name: &str| -> Result<EventSelector, ModelError> {
        if !ROLES.contains(&name) {
            return Err(ctx.err(
                field,
                format!(
                    "unknown event role {name:?}; expected one of {}",
                    ROLES.join(", ")
                ),
            ));
        }
        roles
            .iter()
            .find(|(r, _)| r == name)
            .map(|(_, s)| s.clone())
            .ok_or_else(|| ctx.err(field, format!("role {name:?} is not defined in [events]")))
    };
    let mut signals: Vec<Signal> = Vec::new();
    for (i, s) in raw.signals.iter().enumerate() {
        let at = |f: &str| format!("signal[{i}] ({}).{f}", s.id);
        if s.id.trim().is_empty() {
            return Err(ctx.err(format!("signal[{i}].id"), "must not be empty"));
        }
        if signals.iter().any(|o| o.id == s.id) {
            return Err(ctx.err(at("id"), "is used by two signals"));
        }
        let kind = signal_kind(s, &at, &role_of, ctx)?;
        signals.push(Signal {
            id: s.id.clone(),
            label: s.label.clone().unwrap_or_else(|| s.id.replace('_', " ")),
            kind,
        });
    }
    if raw.components.is_empty() {
        return Err(ctx.err(
            "component",
            "the model has no [[component]]: nothing to score",
        ));
    }
    let mut components = Vec::new();
    for (i, c) in raw.components.iter().enumerate() {
        components.push(component(i, c, &signals, scale, ctx)?);
    }
    let positive: f64 = components
        .iter()
        .filter(|c| c.weight > 0.0)
        .map(|c| c.weight)
        .sum();
    if positive <= 0.0 {
        return Err(ctx.err("component", "no component has a positive weight"));
    }
    let mut tiers: Vec<Tier> = raw
        .tiers
        .iter()
        .map(|t| Tier {
            name: t.name.clone(),
            min: t.min,
            label: t.label.clone().unwrap_or_else(|| t.name.replace('_', " ")),
        })
        .collect();
    if tiers.is_empty() {
        return Err(ctx.err(
            "tier",
            "at least one [[tier]] is required (e.g. sales 80+, success 60+, self_serve 0+)",
        ));
    }
    for (i, t) in tiers.iter().enumerate() {
        if !(0.0..=100.0).contains(&t.min) {
            return Err(ctx.err(
                format!("tier[{i}] ({}).min", t.name),
                format!("must be between 0 and 100, got {}", t.min),
            ));
        }
        if tiers.iter().filter(|o| o.name == t.name).count() > 1 {
            return Err(ctx.err(
                format!("tier[{i}].name"),
                format!("{:?} is used by two tiers", t.name),
            ));
        }
    }
    tiers.sort_by(|a, b| b.min.total_cmp(&a.min));
    if tiers.last().is_some_and(|t| t.min > 0.0) {
        return Err(ctx.err(
            "tier",
            "the lowest tier must start at min = 0 so every score has a tier",
        ));
    }
    let pqa_threshold = raw
        .model
        .pqa_threshold
        .or_else(|| {
            tiers
                .iter()
                .filter(|t| t.name == "sales" || t.name == "pqa")
                .map(|t| t.min)
                .reduce(f64::min)
        })
        .unwrap_or(tiers[0].min);
    if !(0.0..=100.0).contains(&pqa_threshold) {
        return Err(ctx.err("model.pqa_threshold", "must be between 0 and 100"));
    }
    let model = Model {
        name: raw.model.name,
        version: raw.model.version,
        level,
        scale,
        roles,
        signals,
        components,
        tiers,
        pqa_threshold,
    };
    let reach = model.max_reachable();
    if reach < 100.0 - 1e-9 {
        return Err(ctx.err("component", format!("weights cannot reach 100: the highest possible score is {reach:.1}; raise weights or points")));
    }
    Ok(model)
}

fn window(s: &RawSignal, at: &dyn Fn(&str) -> String, ctx: &Ctx) -> Result<u32, ModelError> {
    match s.window_days {
        None => Err(ctx.err(
            at("window_days"),
            "is required for this kind (days to look back, 1–3650)",
        )),
        Some(w) if (1..=3650).contains(&w) => Ok(w),
        Some(w) => Err(ctx.err(
            at("window_days"),
            format!("bad window {w}: expected 1–3650 days"),
        )),
    }
}

fn selector(
    s: &RawSignal,
    at: &dyn Fn(&str) -> String,
    role_of: &dyn Fn(String, &str) -> Result<EventSelector, ModelError>,
    ctx: &Ctx,
) -> Result<EventSelector, ModelError> {
    match (&s.role, s.events.is_empty()) {
        (Some(_), false) => Err(ctx.err(at("role"), "give either `role` or `events`, not both")),
        (Some(r), true) => role_of(at("role"), r),
        (None, false) => Ok(EventSelector {
            events: s.events.clone(),
            pages: vec![],
        }),
        (None, true) => Err(ctx.err(at("events"), "this kind needs `role` or `events`")),
    }
}

fn signal_kind(
    s: &RawSignal,
    at: &dyn Fn(&str) -> String,
    role_of: &dyn Fn(String, &str) -> Result<EventSelector, ModelError>,
    ctx: &Ctx,
) -> Result<SignalKind, ModelError> {
    Ok(match s.kind.as_str() {
        "active_users" => SignalKind::ActiveUsers {
            window_days: window(s, at, ctx)?,
        },
        "active_days" => SignalKind::ActiveDays {
            window_days: window(s, at, ctx)?,
        },
        "event_count" => {
            let window_days = window(s, at, ctx)?;
            let select = selector(s, at, role_of, ctx)?;
            match s.count.as_deref().unwrap_or("events") {
                "events" => SignalKind::EventCount {
                    window_days,
                    select,
                    filters: s.filters.clone().into_iter().collect(),
                },
                "users" if s.filters.is_empty() => SignalKind::DistinctUsers {
                    window_days,
                    select,
                },
                "users" => {
                    return Err(ctx.err(at("where"), "filters apply to count = \"events\" only"))
                }
                other => {
                    return Err(ctx.err(
                        at("count"),
                        format!("expected \"events\" or \"users\", got {other:?}"),
                    ))
                }
            }
        }
        "velocity" => {
            let metric = match s.metric.as_deref() {
                None | Some("events") => VelocityMetric::Events,
                Some("active_users") => VelocityMetric::ActiveUsers,
                Some(role) => VelocityMetric::Selected(role_of(at("metric"), role)?),
            };
            let days = |f: &str, v: Option<u32>, d: u32| match v.unwrap_or(d) {
                w @ 1..=3650 => Ok(w),
                w => Err(ctx.err(at(f), format!("bad window {w}: expected 1–3650 days"))),
            };
            SignalKind::Velocity {
                metric,
                recent_days: days("recent_days", s.recent_days, 7)?,
                baseline_days: days("baseline_days", s.baseline_days, 28)?,
            }
        }
        "feature_breadth" => {
            let window_days = window(s, at, ctx)?;
            let sel = selector(s, at, role_of, ctx)?;
            if sel.events.is_empty() {
                return Err(ctx.err(
                    at("events"),
                    "feature breadth counts track events; the selection has none",
                ));
            }
            SignalKind::FeatureBreadth {
                window_days,
                features: sel.events,
            }
        }
        "feature_tier" => {
            let window_days = window(s, at, ctx)?;
            let core = role_of(at("kind"), "core_feature")?.events;
            let opt = |r: &str| {
                role_of(String::new(), r)
                    .map(|s| s.events)
                    .unwrap_or_default()
            };
            SignalKind::FeatureTier {
                window_days,
                core,
                advanced: opt("advanced_feature"),
                enterprise: opt("enterprise_feature"),
            }
        }
        "trait" => match &s.trait_name {
            Some(t) if !t.trim().is_empty() => SignalKind::Trait { name: t.clone() },
            _ => {
                return Err(ctx.err(
                    at("trait"),
                    "a trait signal names the trait (e.g. trait = \"company_size\")",
                ))
            }
        },
        "recency" => SignalKind::Recency,
        other => {
            return Err(ctx.err(
                at("kind"),
                format!(
                    "unknown signal kind {other:?}; expected one of {}",
                    KINDS.join(", ")
                ),
            ))
        }
    })
}

fn component(
    i: usize,
    c: &RawComponent,
    signals: &[Signal],
    scale: Scale,
    ctx: &Ctx,
) -> Result<Component, ModelError> {
    let at = |f: &str| format!("component[{i}] ({}).{f}", c.signal);
    let signal = signals
        .iter()
        .position(|s| s.id == c.signal)
        .ok_or_else(|| {
            ctx.err(
                at("signal"),
                format!(
                    "unknown signal {:?}; defined: {}",
                    c.signal,
                    signals
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    if !c.weight.is_finite() || c.weight == 0.0 {
        return Err(ctx.err(at("weight"), "must be a non-zero number"));
    }
    let is_trait = matches!(signals[signal].kind, SignalKind::Trait { .. });
    let given = [
        !c.bands.is_empty(),
        c.points_per_unit.is_some(),
        !c.values.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        return Err(ctx.err(
            at("bands"),
            "give exactly one of `bands`, `points_per_unit` or `values`",
        ));
    }
    let points = if !c.values.is_empty() {
        if !is_trait {
            return Err(ctx.err(
                at("values"),
                "`values` is for trait signals; use `bands` for numbers",
            ));
        }
        Points::Values(c.values.iter().map(|(k, v)| (k.clone(), *v)).collect())
    } else if is_trait {
        return Err(ctx.err(
            at("values"),
            "a trait signal needs `values` (text value → points)",
        ));
    } else if let Some(per_unit) = c.points_per_unit {
        if c.max_points.is_some_and(|m| m <= 0.0) {
            return Err(ctx.err(at("max_points"), "must be greater than 0"));
        }
        Points::Linear {
            per_unit,
            max: c.max_points,
        }
    } else {
        let mut bands = Vec::new();
        for (b, band) in c.bands.iter().enumerate() {
            let (min, max) = (
                band.min.unwrap_or(f64::NEG_INFINITY),
                band.max.unwrap_or(f64::INFINITY),
            );
            if min > max || !band.points.is_finite() {
                return Err(ctx.err(
                    format!("component[{i}] ({}).bands[{b}]", c.signal),
                    "needs min <= max and finite points",
                ));
            }
            bands.push(Band {
                min,
                max,
                points: band.points,
            });
        }
        Points::Bands(bands)
    };
    let max = score::max_points(&points);
    if scale == Scale::Normalized && !(max.is_finite() && max > 0.0) {
        return Err(ctx.err(at("max_points"), "a normalized model needs every component to have a finite maximum above 0 (set max_points)"));
    }
    Ok(Component {
        signal,
        weight: c.weight,
        points,
    })
}

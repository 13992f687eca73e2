//! Signal values → points → a 0–100 score, a tier, and sentences a sales rep can read.

use serde::{Deserialize, Serialize};

use super::{Model, Points, Scale, Signal, SignalKind, VelocityMetric};

/// A measured signal value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SignalValue {
    /// A number (counts, days, percent).
    Number(f64),
    /// A text trait, when known.
    Text(Option<String>),
}

impl SignalValue {
    fn number(&self) -> f64 {
        match self {
            SignalValue::Number(n) if n.is_finite() => *n,
            _ => 0.0,
        }
    }
}

/// One component of an explained score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentDetail {
    /// Signal id.
    pub signal: String,
    /// The measured value.
    pub value: SignalValue,
    /// Points earned.
    pub points: f64,
    /// Weight.
    pub weight: f64,
    /// Contribution to the 0–100 score.
    pub contribution: f64,
    /// The sentence for people ("9 active users in the last 28 days").
    pub sentence: String,
}

/// A score with everything needed to understand and trace it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreDetails {
    /// 0–100, rounded to one decimal.
    pub score: f64,
    /// Tier name.
    pub tier: String,
    /// Tier words.
    pub tier_label: String,
    /// At or above the PQA threshold.
    pub pqa: bool,
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: u32,
    /// Components, largest contribution first.
    pub components: Vec<ComponentDetail>,
    /// The whole explanation in one line.
    pub summary: String,
}

/// The most points a rule can give (infinite for an uncapped linear rule).
pub fn max_points(points: &Points) -> f64 {
    match points {
        Points::Bands(b) => b.iter().map(|b| b.points).fold(0.0, f64::max),
        Points::Linear { per_unit, max } => match max {
            Some(m) => *m,
            None if *per_unit > 0.0 => f64::INFINITY,
            None => 0.0,
        },
        Points::Values(v) => v.iter().map(|(_, p)| *p).fold(0.0, f64::max),
    }
}

fn points_for(points: &Points, value: &SignalValue) -> f64 {
    match points {
        Points::Bands(bands) => {
            let v = value.number();
            if let Some(b) = bands.iter().find(|b| v >= b.min && v <= b.max) {
                return b.points;
            }
            // Between two bands (19.5 between 1–19 and 20–99: averages and rates are not whole
            // numbers) a value counts in the lower one, so that more never earns less. Above
            // the last band's max it earns nothing: that max was written on purpose.
            let below = bands
                .iter()
                .filter(|b| b.max < v)
                .max_by(|a, b| a.max.total_cmp(&b.max));
            match below {
                Some(b) if bands.iter().any(|above| above.min > v) => b.points,
                _ => 0.0,
            }
        }
        Points::Linear { per_unit, max } => {
            let p = (value.number() * per_unit).max(0.0);
            max.map_or(p, |m| p.min(m))
        }
        Points::Values(map) => match value {
            SignalValue::Text(Some(t)) => map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(t))
                .map_or(0.0, |(_, p)| *p),
            _ => 0.0,
        },
    }
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn plural(n: f64, one: &str, many: &str) -> String {
    if (n - 1.0).abs() < 1e-9 {
        format!("1 {one}")
    } else {
        format!("{} {many}", fmt_num(n))
    }
}

/// The sentence for one signal value.
pub fn sentence(signal: &Signal, value: &SignalValue) -> String {
    let v = value.number();
    let label = &signal.label;
    match &signal.kind {
        SignalKind::ActiveUsers { window_days } => format!(
            "{} in the last {window_days} days",
            plural(v, "active user", "active users")
        ),
        SignalKind::ActiveDays { window_days } => {
            format!("active on {} of the last {window_days} days", fmt_num(v))
        }
        SignalKind::EventCount { window_days, .. } => {
            format!("{} {label} in the last {window_days} days", fmt_num(v))
        }
        SignalKind::DistinctUsers { window_days, .. } => format!(
            "{label} by {} in the last {window_days} days",
            plural(v, "user", "users")
        ),
        SignalKind::Velocity {
            metric,
            recent_days,
            baseline_days,
        } => {
            let what = match metric {
                VelocityMetric::Events => "usage".to_string(),
                VelocityMetric::ActiveUsers => "active users".to_string(),
                VelocityMetric::Selected(_) => label.clone(),
            };
            let dir = if v >= 0.0 { "up" } else { "down" };
            format!(
                "{what} {dir} {}% (last {recent_days} days against the {baseline_days} before)",
                fmt_num(v.abs().round())
            )
        }
        SignalKind::FeatureBreadth {
            window_days,
            features,
        } => format!(
            "{} of {} {label} used in the last {window_days} days",
            fmt_num(v),
            features.len()
        ),
        SignalKind::FeatureTier { .. } => match v as i64 {
            0 => "no tracked features used".into(),
            1 => "uses core features".into(),
            2 => "uses advanced features".into(),
            _ => "uses enterprise features".into(),
        },
        SignalKind::Trait { .. } => match value {
            SignalValue::Text(Some(t)) => format!("{label}: {t}"),
            _ => format!("{label}: unknown"),
        },
        SignalKind::Recency => format!("last active {} ago", plural(v, "day", "days")),
    }
}

/// Scores one account from its signal values (indexed like `model.signals`).
pub fn score(model: &Model, values: &[SignalValue]) -> ScoreDetails {
    let positive: f64 = model
        .components
        .iter()
        .filter(|c| c.weight > 0.0)
        .map(|c| c.weight)
        .sum();
    let mut components: Vec<ComponentDetail> = model
        .components
        .iter()
        .map(|c| {
            let signal = &model.signals[c.signal];
            let value = values
                .get(c.signal)
                .cloned()
                .unwrap_or(SignalValue::Number(0.0));
            let points = points_for(&c.points, &value);
            let contribution = match model.scale {
                Scale::Raw => c.weight * points,
                Scale::Normalized => 100.0 * c.weight * points / max_points(&c.points) / positive,
            };
            ComponentDetail {
                signal: signal.id.clone(),
                sentence: sentence(signal, &value),
                value,
                points,
                weight: c.weight,
                contribution,
            }
        })
        .collect();
    let total: f64 = components.iter().map(|c| c.contribution).sum();
    let score = (total.clamp(0.0, 100.0) * 10.0).round() / 10.0;
    let tier = model
        .tiers
        .iter()
        .find(|t| score >= t.min)
        .or(model.tiers.last());
    components.sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
    let summary = components
        .iter()
        .filter(|c| c.points != 0.0)
        .map(|c| {
            format!(
                "{} ({}{})",
                c.sentence,
                if c.contribution >= 0.0 { "+" } else { "" },
                fmt_num((c.contribution * 10.0).round() / 10.0)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    ScoreDetails {
        score,
        tier: tier.map(|t| t.name.clone()).unwrap_or_default(),
        tier_label: tier.map(|t| t.label.clone()).unwrap_or_default(),
        pqa: score >= model.pqa_threshold,
        model: model.name.clone(),
        model_version: model.version,
        components,
        summary: if summary.is_empty() {
            "no scoring signal yet".into()
        } else {
            summary
        },
    }
}

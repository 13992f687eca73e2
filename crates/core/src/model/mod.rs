//! The PQA model: a declarative file of event roles, signals, point bands, weights and tiers,
//! validated into a [`Model`]; and the pure scoring of signal values into an explained
//! [`ScoreDetails`].
//!
//! Measuring signals over events is the store's job (it generates SQL from [`SignalKind`]);
//! turning values into points, a 0–100 score, a tier and sentences is done here, so the same
//! arithmetic serves live scores, history and backtests.

mod raw;
mod score;
mod validate;

pub use raw::RawModel;
pub use score::{score, ComponentDetail, ScoreDetails, SignalValue};
pub use validate::ModelError;

/// Which object is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A workspace (the product's team object).
    Workspace,
    /// A company: all workspaces and users of one work-email domain.
    Company,
}

/// How points combine into 0–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Each component's points are divided by its maximum; the weighted mean × 100.
    Normalized,
    /// `Σ weight × points`, clamped to 0–100 (the formula of the seeds' worked example).
    Raw,
}

/// The event roles a model can name.
pub const ROLES: &[&str] = &[
    "signup",
    "invite",
    "hand_raise",
    "trial_start",
    "paid",
    "admin_change",
    "pricing_view",
    "terms_view",
    "privacy_view",
    "security_view",
    "core_feature",
    "advanced_feature",
    "enterprise_feature",
];

/// Which events count: track event names, and page paths (prefix match).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventSelector {
    /// Track event names.
    pub events: Vec<String>,
    /// Page path prefixes.
    pub pages: Vec<String>,
}

impl EventSelector {
    /// Whether the selector matches nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.pages.is_empty()
    }
}

/// What growth a velocity signal measures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VelocityMetric {
    /// All events.
    Events,
    /// Distinct active people.
    ActiveUsers,
    /// Events matching a selector.
    Selected(EventSelector),
}

/// What a signal measures, over the account's events before the as-of time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SignalKind {
    /// Distinct people with any event in the window.
    ActiveUsers {
        /// Window.
        window_days: u32,
    },
    /// Distinct days with any event in the window.
    ActiveDays {
        /// Window.
        window_days: u32,
    },
    /// Matching events in the window (volume), optionally filtered on properties.
    EventCount {
        /// Window.
        window_days: u32,
        /// Which events.
        select: EventSelector,
        /// `properties.x = value` filters (text comparison).
        filters: Vec<(String, String)>,
    },
    /// Distinct people who did a matching event in the window.
    DistinctUsers {
        /// Window.
        window_days: u32,
        /// Which events.
        select: EventSelector,
    },
    /// Growth in percent of a metric: the recent window against the baseline window before it,
    /// both as daily rates.
    Velocity {
        /// What grows.
        metric: VelocityMetric,
        /// Recent window.
        recent_days: u32,
        /// Baseline window (just before the recent one).
        baseline_days: u32,
    },
    /// Distinct feature events used from a list (breadth).
    FeatureBreadth {
        /// Window.
        window_days: u32,
        /// The features.
        features: Vec<String>,
    },
    /// The highest feature tier used: 0 none, 1 core, 2 advanced, 3 enterprise.
    FeatureTier {
        /// Window.
        window_days: u32,
        /// Core features.
        core: Vec<String>,
        /// Advanced features.
        advanced: Vec<String>,
        /// Enterprise features.
        enterprise: Vec<String>,
    },
    /// A profile trait (identify or group traits), most common value in the account.
    Trait {
        /// Trait name.
        name: String,
    },
    /// Days since the account's last event.
    Recency,
}

/// One signal of a model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Signal {
    /// Identifier.
    pub id: String,
    /// Words for explanations.
    pub label: String,
    /// What it measures.
    pub kind: SignalKind,
}

/// How a signal's value becomes points.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Points {
    /// First band with `min <= value <= max`.
    Bands(Vec<Band>),
    /// `value × per_unit`, at least 0, at most `max` when set.
    Linear {
        /// Points per unit.
        per_unit: f64,
        /// Cap.
        max: Option<f64>,
    },
    /// Text value → points.
    Values(Vec<(String, f64)>),
}

/// A value band.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Band {
    /// Lower bound, inclusive.
    pub min: f64,
    /// Upper bound, inclusive.
    pub max: f64,
    /// Points.
    pub points: f64,
}

/// A weighted component of the score.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Component {
    /// Index into [`Model::signals`].
    pub signal: usize,
    /// Weight.
    pub weight: f64,
    /// Points rule.
    pub points: Points,
}

/// A tier of the score.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Tier {
    /// Name ("sales", "success", "self_serve").
    pub name: String,
    /// Lowest score in the tier.
    pub min: f64,
    /// Words for people.
    pub label: String,
}

/// A validated model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Model {
    /// Name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// Scored object.
    pub level: Level,
    /// How points combine.
    pub scale: Scale,
    /// Role → events and pages.
    pub roles: Vec<(String, EventSelector)>,
    /// Signals.
    pub signals: Vec<Signal>,
    /// Components.
    pub components: Vec<Component>,
    /// Tiers, highest first.
    pub tiers: Vec<Tier>,
    /// PQA threshold.
    pub pqa_threshold: f64,
}

impl Model {
    /// Parses and validates a model file. `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Model, ModelError> {
        validate::from_toml(text, origin)
    }

    /// The selector of a role, if the model defines it.
    pub fn role(&self, name: &str) -> Option<&EventSelector> {
        self.roles.iter().find(|(r, _)| r == name).map(|(_, s)| s)
    }

    /// The highest score the components can produce (infinite when a linear component is
    /// uncapped).
    pub fn max_reachable(&self) -> f64 {
        match self.scale {
            Scale::Normalized => 100.0,
            Scale::Raw => self
                .components
                .iter()
                .filter(|c| c.weight > 0.0)
                .map(|c| c.weight * score::max_points(&c.points))
                .sum(),
        }
    }
}

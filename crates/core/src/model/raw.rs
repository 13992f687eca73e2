//! The model file as written (TOML). Unknown keys are errors; [`super::Model::from_toml`]
//! validates it into a [`super::Model`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// `[model]`: name, version, level, scale.
    pub model: RawHeader,
    /// `[events]`: role → matcher.
    #[serde(default)]
    pub events: BTreeMap<String, RawMatcher>,
    /// `[[signal]]`.
    #[serde(default, rename = "signal")]
    pub signals: Vec<RawSignal>,
    /// `[[component]]`: how signals become points.
    #[serde(default, rename = "component")]
    pub components: Vec<RawComponent>,
    /// `[[tier]]`.
    #[serde(default, rename = "tier")]
    pub tiers: Vec<RawTier>,
}

/// `[model]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    /// Model name.
    pub name: String,
    /// Version number; every score records it.
    pub version: u32,
    /// "workspace" or "company".
    #[serde(default)]
    pub level: Option<String>,
    /// "normalized" or "raw".
    #[serde(default)]
    pub scale: Option<String>,
    /// Score at or above which an account is a PQA (default: the lowest tier named "sales").
    #[serde(default)]
    pub pqa_threshold: Option<f64>,
}

/// Which events or pages play a role.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawMatcher {
    /// A list of track event names.
    Events(Vec<String>),
    /// Event names and/or page paths.
    Detailed {
        /// Track event names.
        #[serde(default)]
        events: Vec<String>,
        /// Page paths (prefix match on the page's `path` property).
        #[serde(default)]
        pages: Vec<String>,
    },
}

/// `[[signal]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignal {
    /// Identifier used by components.
    pub id: String,
    /// Kind of measurement.
    pub kind: String,
    /// Words for explanations ("active users").
    #[serde(default)]
    pub label: Option<String>,
    /// Look-back window in days.
    #[serde(default)]
    pub window_days: Option<u32>,
    /// Event role(s) measured.
    #[serde(default)]
    pub role: Option<String>,
    /// Explicit event names measured.
    #[serde(default)]
    pub events: Vec<String>,
    /// Property filters: `"properties.plan" = "pro"`.
    #[serde(default, rename = "where")]
    pub filters: BTreeMap<String, String>,
    /// Velocity: what grows ("events", "active_users" or a role).
    #[serde(default)]
    pub metric: Option<String>,
    /// Velocity: recent window.
    #[serde(default)]
    pub recent_days: Option<u32>,
    /// Velocity: baseline window before it.
    #[serde(default)]
    pub baseline_days: Option<u32>,
    /// Count "events" or distinct "users" (behavioral counts).
    #[serde(default)]
    pub count: Option<String>,
    /// Trait name (profile signals).
    #[serde(default, rename = "trait")]
    pub trait_name: Option<String>,
}

/// `[[component]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    /// Signal id.
    pub signal: String,
    /// Weight in the score.
    pub weight: f64,
    /// Points by value band.
    #[serde(default)]
    pub bands: Vec<RawBand>,
    /// Points per unit of value (linear).
    #[serde(default)]
    pub points_per_unit: Option<f64>,
    /// Cap on linear points.
    #[serde(default)]
    pub max_points: Option<f64>,
    /// Points by exact text value (traits).
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
}

/// One band: `min <= value <= max` earns `points`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBand {
    /// Lower bound, inclusive.
    #[serde(default)]
    pub min: Option<f64>,
    /// Upper bound, inclusive.
    #[serde(default)]
    pub max: Option<f64>,
    /// Points earned.
    pub points: f64,
}

/// `[[tier]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    /// "sales", "success", "self_serve" or any name.
    pub name: String,
    /// Lowest score in the tier.
    pub min: f64,
    /// Words for people.
    #[serde(default)]
    pub label: Option<String>,
}

//! Scoring arithmetic: the seeds' worked example, tiers, explanations, and invariants.

use proptest::prelude::*;
use upmarket_core::model::{score, Model, SignalValue};

use crate::models_dir;

fn model(name: &str) -> Model {
    Model::from_toml(
        &std::fs::read_to_string(models_dir().join(name)).unwrap(),
        name,
    )
    .unwrap()
}

#[test]
fn the_004_worked_formula_by_hand() {
    let m = model("004-worked-example.toml");
    // Active 6 of the last 7 days (daily: 20 pts), 7 active users (6–10: 25 pts), advanced
    // features used (30 pts), events up 50% week over week (50 pts).
    let values = [
        SignalValue::Number(6.0),
        SignalValue::Number(7.0),
        SignalValue::Number(2.0),
        SignalValue::Number(50.0),
    ];
    let s = score(&m, &values);
    let by_hand = 20.0 * 0.4 + 25.0 * 0.3 + 30.0 * 0.2 + 50.0 * 0.1;
    assert_eq!(s.score, by_hand);
    assert_eq!(s.score, 26.5);
    assert_eq!((s.tier.as_str(), s.pqa), ("self_serve", false));

    // A team of 12 in daily use of advanced features, usage up 300%: 8 + 10.5 + 6 + 30 = 54.5.
    let s = score(
        &m,
        &[
            SignalValue::Number(7.0),
            SignalValue::Number(12.0),
            SignalValue::Number(2.0),
            SignalValue::Number(300.0),
        ],
    );
    assert_eq!((s.score, s.tier.as_str()), (54.5, "success"));
    // Usage up 600%: 84.5 → PQA, sales tier.
    let s = score(
        &m,
        &[
            SignalValue::Number(7.0),
            SignalValue::Number(12.0),
            SignalValue::Number(2.0),
            SignalValue::Number(600.0),
        ],
    );
    assert_eq!((s.score, s.tier.as_str(), s.pqa), (84.5, "sales", true));
    assert_eq!(s.model_version, 1);
}

#[test]
fn explanations_read_like_sentences() {
    let m = model("004-worked-example.toml");
    let s = score(
        &m,
        &[
            SignalValue::Number(6.0),
            SignalValue::Number(9.0),
            SignalValue::Number(1.0),
            SignalValue::Number(-20.0),
        ],
    );
    insta::assert_snapshot!(s.summary, @"active on 6 of the last 7 days (+8); 9 active users in the last 28 days (+7.5); uses core features (+3)");
}

fn default_values(users: f64, legal: f64) -> Vec<SignalValue> {
    let m = model("default.toml");
    m.signals
        .iter()
        .map(|s| match s.id.as_str() {
            "active_users" => SignalValue::Number(users),
            "legal_viewers" => SignalValue::Number(legal),
            "company_size" => SignalValue::Text(Some("201-1000".into())),
            _ => SignalValue::Number(0.0),
        })
        .collect()
}

/// Regression (found by the property test below): 99.3 core actions fell between the bands
/// 20–99 and 100+ and earned nothing, so growing from 64.9 to 99.3 lowered the score.
#[test]
fn a_value_between_two_bands_counts_in_the_lower_one() {
    let m = model("default.toml");
    let core = m
        .signals
        .iter()
        .position(|s| s.id == "core_volume")
        .unwrap();
    let with_core = |v: f64| {
        let mut vals = default_values(3.0, 0.0);
        vals[core] = SignalValue::Number(v);
        score(&m, &vals).score
    };
    assert_eq!(with_core(99.3), with_core(99.0));
    assert!(with_core(99.3) < with_core(100.0));
    assert!(with_core(19.5) > with_core(0.0));
}

#[test]
fn the_magic_number_moves_the_score() {
    let m = model("default.toml");
    let six = score(&m, &default_values(6.0, 0.0)).score;
    let seven = score(&m, &default_values(7.0, 0.0)).score;
    assert!(seven > six, "{seven} vs {six}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scores_stay_in_0_100(values in proptest::collection::vec(-1e6f64..1e6, 13)) {
        let m = model("default.toml");
        let mut vals: Vec<SignalValue> = values.into_iter().map(SignalValue::Number).collect();
        vals[11] = SignalValue::Text(Some("5001+".into()));
        let s = score(&m, &vals);
        prop_assert!((0.0..=100.0).contains(&s.score));
        let w = model("004-worked-example.toml");
        let s = score(&w, &vals[..4]);
        prop_assert!((0.0..=100.0).contains(&s.score));
    }

    #[test]
    fn a_growing_positive_signal_never_lowers_the_score(
        base in proptest::collection::vec(0f64..200.0, 13),
        which in 0usize..11,
        extra in 0f64..500.0,
    ) {
        // Every positively weighted numeric component of the default model has non-decreasing bands.
        let m = model("default.toml");
        let mut vals: Vec<SignalValue> = base.iter().copied().map(SignalValue::Number).collect();
        vals[11] = SignalValue::Text(Some("11-50".into()));
        let before = score(&m, &vals).score;
        let grown = base[which] + extra;
        vals[which] = SignalValue::Number(grown);
        let after = score(&m, &vals).score;
        prop_assert!(after >= before, "signal {which}: {before} -> {after}");
    }
}

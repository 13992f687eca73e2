//! Model files: the shipped ones load, bad ones fail with the file, field and expectation.

use upmarket_core::model::Model;

use crate::models_dir;

fn load(name: &str) -> Model {
    let path = models_dir().join(name);
    Model::from_toml(&std::fs::read_to_string(&path).unwrap(), name)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn shipped_models_load() {
    let m = load("default.toml");
    assert_eq!(
        (m.name.as_str(), m.version, m.pqa_threshold),
        ("default", 1, 80.0)
    );
    assert_eq!(
        m.tiers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["sales", "success", "self_serve"]
    );
    let w = load("004-worked-example.toml");
    assert_eq!(w.pqa_threshold, 70.0);
    assert!(
        w.max_reachable().is_infinite(),
        "velocity points are uncapped"
    );
}

const BASE: &str = r#"
[model]
name = "t"
version = 1
[events]
core_feature = ["A"]
[[signal]]
id = "users"
kind = "active_users"
window_days = 28
[[component]]
signal = "users"
weight = 1.0
bands = [{ min = 7, points = 100 }]
[[tier]]
name = "sales"
min = 80
[[tier]]
name = "self_serve"
min = 0
"#;

fn err(text: &str) -> String {
    Model::from_toml(text, "bad.toml").unwrap_err().to_string()
}

#[test]
fn bad_model_files_name_file_field_and_expectation() {
    assert!(Model::from_toml(BASE, "ok.toml").is_ok());
    let cases = [
        (
            BASE.replace("signal = \"users\"", "signal = \"userz\""),
            "bad.toml: component[0] (userz).signal: unknown signal \"userz\"; defined: users",
        ),
        (
            BASE.replace("window_days = 28", "window_days = 0"),
            "bad.toml: signal[0] (users).window_days: bad window 0: expected 1–3650 days",
        ),
        (
            BASE.replace("kind = \"active_users\"", "kind = \"vibes\""),
            "unknown signal kind \"vibes\"",
        ),
        (
            BASE.replace("core_feature = [\"A\"]", "buying_feature = [\"A\"]"),
            "bad.toml: events.buying_feature: unknown event role",
        ),
        (
            BASE.replace("[model]", "[model]\nscale = \"raw\""),
            "unused",
        ),
        (
            BASE.replace("min = 0\n", "min = 10\n"),
            "the lowest tier must start at min = 0",
        ),
        (
            BASE.replace("version = 1", "version = 1\ncolour = \"red\""),
            "unknown field `colour`",
        ),
        (
            BASE.replace(
                "id = \"users\"\nkind = \"active_users\"\nwindow_days = 28",
                "id = \"users\"\nkind = \"event_count\"\nrole = \"hand_raise\"\nwindow_days = 28",
            ),
            "role \"hand_raise\" is not defined in [events]",
        ),
    ];
    for (text, want) in &cases[..4] {
        let got = err(text);
        assert!(got.contains(want), "got {got:?}, want {want:?}");
    }
    // Raw scale with one component worth 1.0 × 100 reaches exactly 100: fine. At 0.5 it cannot.
    let half = BASE
        .replace("[model]", "[model]\nscale = \"raw\"")
        .replace("weight = 1.0", "weight = 0.5");
    assert!(
        err(&half).contains("weights cannot reach 100: the highest possible score is 50.0"),
        "{}",
        err(&half)
    );
    for (text, want) in &cases[5..] {
        let got = err(text);
        assert!(got.contains(want), "got {got:?}, want {want:?}");
    }
}

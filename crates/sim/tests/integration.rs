//! The simulator behaves like the seeds say a product-led B2B company behaves, and is
//! deterministic. One integration-test binary for the crate.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use upmarket_sim::{simulate, SimConfig};

struct Truth {
    rows: Vec<HashMap<String, String>>,
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

fn rate(rows: &[&HashMap<String, String>], pred: impl Fn(&HashMap<String, String>) -> bool) -> f64 {
    rows.iter().filter(|r| pred(r)).count() as f64 / rows.len().max(1) as f64
}

fn t(r: &HashMap<String, String>, k: &str) -> bool {
    r[k] == "true"
}

fn run(accounts: u64, seed: u64) -> (tempfile::TempDir, Truth) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        accounts,
        seed,
        ..SimConfig::default()
    };
    simulate(&cfg, dir.path(), |_| {}).unwrap();
    let rows = read_csv(&dir.path().join("truth.csv"));
    (dir, Truth { rows })
}

#[test]
fn distributions_match_the_seeds() {
    let (dir, truth) = run(4000, 7);
    let all: Vec<_> = truth.rows.iter().collect();
    let no_trial: Vec<_> = all.iter().copied().filter(|r| !t(r, "trial")).collect();
    let trial: Vec<_> = all.iter().copied().filter(|r| t(r, "trial")).collect();
    let freemium = rate(&no_trial, |r| t(r, "paid"));
    let trial_rate = rate(&trial, |r| t(r, "paid"));
    let users = |r: &HashMap<String, String>| r["users"].parse::<u32>().unwrap();
    let big: Vec<_> = all.iter().copied().filter(|r| users(r) >= 7).collect();
    let small: Vec<_> = all.iter().copied().filter(|r| users(r) < 7).collect();
    let (hr_big, hr_small) = (
        rate(&big, |r| t(r, "hand_raised")),
        rate(&small, |r| t(r, "hand_raised")),
    );

    // Who viewed terms / privacy pages, from the events themselves.
    let events = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
    let mut legal_viewers = HashSet::new();
    for line in events.lines().filter(|l| l.contains("/legal/")) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(g) = v["context"]["groupId"].as_str() {
            legal_viewers.insert(g.to_string());
        }
    }
    let converted = |r: &HashMap<String, String>| t(r, "paid") || r["opportunity_stage"] == "won";
    let viewers: Vec<_> = all
        .iter()
        .copied()
        .filter(|r| legal_viewers.contains(&r["workspace_id"]))
        .collect();
    let others: Vec<_> = all
        .iter()
        .copied()
        .filter(|r| !legal_viewers.contains(&r["workspace_id"]))
        .collect();
    let (conv_viewers, conv_others) = (rate(&viewers, converted), rate(&others, converted));
    let active_companies: Vec<_> = all
        .iter()
        .copied()
        .filter(|r| !r["company_domain"].is_empty() && !t(r, "churned"))
        .collect();
    let buyer_users = rate(&active_companies, |r| t(r, "buyer_is_user"));

    eprintln!(
        "workspaces {} | freemium→paid {:.1}% | trial→paid {:.1}% (n={})",
        all.len(),
        freemium * 100.0,
        trial_rate * 100.0,
        trial.len()
    );
    eprintln!(
        "hand-raise: 7+ users {:.1}% (n={}) vs <7 {:.1}% (n={})",
        hr_big * 100.0,
        big.len(),
        hr_small * 100.0,
        small.len()
    );
    eprintln!(
        "conversion: terms/privacy viewers {:.1}% (n={}) vs others {:.1}% (n={})",
        conv_viewers * 100.0,
        viewers.len(),
        conv_others * 100.0,
        others.len()
    );
    eprintln!(
        "active company accounts with the buyer among users: {:.1}%",
        buyer_users * 100.0
    );

    assert!(
        (0.03..=0.07).contains(&freemium),
        "freemium→paid {freemium}"
    );
    assert!(
        (0.08..=0.17).contains(&trial_rate),
        "trial→paid {trial_rate}"
    );
    assert!(
        hr_big > 2.0 * hr_small,
        "7+ users hand-raise {hr_big} vs {hr_small}"
    );
    assert!(
        conv_viewers > 1.5 * conv_others,
        "terms/privacy viewers convert {conv_viewers} vs {conv_others}"
    );
    assert!(
        buyer_users < 0.5,
        "most active accounts have no buyer among their users ({buyer_users})"
    );
}

#[test]
fn same_seed_same_bytes_different_seed_different_data() {
    let read_all = |d: &Path| {
        upmarket_sim::FILES
            .iter()
            .map(|f| std::fs::read(d.join(f)).unwrap())
            .collect::<Vec<_>>()
    };
    let (a, _) = run(150, 11);
    let (b, _) = run(150, 11);
    let (c, _) = run(150, 12);
    assert_eq!(read_all(a.path()), read_all(b.path()));
    assert_ne!(read_all(a.path())[0], read_all(c.path())[0]);
}

#[test]
fn every_line_is_a_valid_segment_event() {
    let (dir, _) = run(60, 3);
    let events = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
    let mut ids = HashSet::new();
    for line in events.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["userId"].is_string() || v["anonymousId"].is_string(),
            "{line}"
        );
        assert!(
            ids.insert(v["messageId"].as_str().unwrap().to_string()),
            "duplicate messageId in {line}"
        );
    }
    assert!(ids.len() > 1000);
}

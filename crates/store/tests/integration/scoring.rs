//! Scoring over stored events: the seeds' worked example end to end, as-of correctness, and
//! the default model on simulated data.

use chrono::NaiveDateTime;
use serde_json::json;
use upmarket_core::model::{Model, SignalValue};
use upmarket_store::Store;

use crate::{ev, memory_store};

fn model(name: &str) -> Model {
    let path = std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../models")
    .join(name);
    Model::from_toml(&std::fs::read_to_string(path).unwrap(), name).unwrap()
}

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

fn track(n: &mut u32, user: &str, event: &str, ts: &str) -> upmarket_core::Event {
    *n += 1;
    ev(
        json!({"type":"track","event":event,"userId":user,"messageId":format!("w{n}"),"timestamp":ts,"context":{"groupId":"ws-1"}}),
    )
}

/// The account of the worked example, as of 2026-03-01 00:00.
fn worked_example_events() -> Vec<upmarket_core::Event> {
    let mut n = 0;
    let mut events = Vec::new();
    // The week before last (Feb 15–21): 10 events.
    for _ in 0..10 {
        events.push(track(
            &mut n,
            "u1",
            "Report Created",
            "2026-02-16T10:00:00Z",
        ));
    }
    // Last week (Feb 22–28): 15 events on 6 different days by u1..u6, one of them an advanced feature.
    let days = [
        ("22", 3),
        ("23", 3),
        ("24", 3),
        ("25", 2),
        ("26", 2),
        ("27", 2),
    ];
    for (i, (day, count)) in days.iter().enumerate() {
        for k in 0..*count {
            let name = if i == 0 && k == 0 {
                "Alert Configured"
            } else {
                "Dashboard Viewed"
            };
            events.push(track(
                &mut n,
                &format!("u{}", i + 1),
                name,
                &format!("2026-02-{day}T1{k}:00:00Z"),
            ));
        }
    }
    // A seventh teammate, active earlier in the 28 days.
    events.push(track(
        &mut n,
        "u7",
        "Report Created",
        "2026-02-05T09:00:00Z",
    ));
    events
}

#[test]
fn the_004_worked_example_from_events() {
    let mut store = memory_store();
    store.append(&worked_example_events()).unwrap();
    let m = model("004-worked-example.toml");
    let session = store.reader().unwrap();
    let measured = session
        .measure(&m, at("2026-03-01 00:00:00"), None)
        .unwrap();
    assert_eq!(measured.len(), 1);
    assert_eq!(measured[0].account_id, "ws-1");
    // usage: active 6 of the last 7 days; team: 7 users; features: advanced (2); velocity: 15 vs 10 → +50%.
    assert_eq!(
        measured[0].values,
        vec![
            SignalValue::Number(6.0),
            SignalValue::Number(7.0),
            SignalValue::Number(2.0),
            SignalValue::Number(50.0)
        ]
    );
    let scores = session
        .score_accounts(&m, at("2026-03-01 00:00:00"), None)
        .unwrap();
    let by_hand = 20.0 * 0.4 + 25.0 * 0.3 + 30.0 * 0.2 + 50.0 * 0.1;
    assert_eq!(scores[0].1.score, by_hand);
    assert_eq!(scores[0].1.tier, "self_serve");
    insta::assert_json_snapshot!("worked_example_explanation", scores[0].1);
}

#[test]
fn events_after_the_as_of_date_change_nothing() {
    let mut store = memory_store();
    store.append(&worked_example_events()).unwrap();
    let m = model("default.toml");
    let session = store.reader().unwrap();
    let as_of = at("2026-03-01 00:00:00");
    let before = session.score_accounts(&m, as_of, None).unwrap();
    // A flood of later activity: new users, enterprise features, legal pages, a hand-raise.
    let mut later = Vec::new();
    for i in 0..50 {
        later.push(ev(json!({"type":"track","event":"SSO Configured","userId":format!("late{i}"),"messageId":format!("late{i}"),"timestamp":"2026-03-01T00:00:00Z","context":{"groupId":"ws-1"}})));
        later.push(ev(json!({"type":"page","name":"Terms","userId":format!("late{i}"),"messageId":format!("latep{i}"),"timestamp":"2026-03-02T00:00:00Z","properties":{"path":"/legal/terms"},"context":{"groupId":"ws-1"}})));
    }
    later.push(ev(json!({"type":"identify","userId":"u1","messageId":"late-id","timestamp":"2026-03-03T00:00:00Z","traits":{"company_size":"5001+"}})));
    store.append(&later).unwrap();
    let after = session.score_accounts(&m, as_of, None).unwrap();
    assert_eq!(before, after);
    // …and they do count once the as-of date passes them.
    let later_score = session
        .score_accounts(&m, at("2026-03-04 00:00:00"), None)
        .unwrap();
    assert!(later_score[0].1.score > before[0].1.score);
}

#[test]
fn scores_history_and_tier_changes_are_kept() {
    let mut store = memory_store();
    store.append(&worked_example_events()).unwrap();
    let m = model("004-worked-example.toml");
    let s = store.reader().unwrap();
    let t1 = at("2026-02-20 00:00:00");
    let first = s.score_accounts(&m, t1, None).unwrap();
    assert_eq!(
        s.save_current_scores(&m, t1, &first).unwrap().len(),
        1,
        "a first score is a tier entry"
    );
    s.save_history(&m, t1.date(), &first).unwrap();
    let t2 = at("2026-03-01 00:00:00");
    let second = s.score_accounts(&m, t2, None).unwrap();
    s.save_current_scores(&m, t2, &second).unwrap();
    s.save_history(&m, t2.date(), &second).unwrap();
    let history = s.history(&m, "ws-1").unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(s.current_scores(&m, None).unwrap()[0].details, second[0].1);
    let (touched, newest) = s.touched_accounts(m.level, 0).unwrap();
    assert_eq!((touched, newest > 0), (vec!["ws-1".to_string()], true));
    assert!(s.touched_accounts(m.level, newest).unwrap().0.is_empty());
}

/// Regression: re-scoring one account restricts identity to the account's people; a PostHog
/// `$groupidentify` makes its sender no member, so its ids are outside that set and the
/// re-scorer must widen the set (else `anon-c`, carol's device, would count as a second person).
#[test]
fn rescoring_one_account_resolves_people_who_are_not_members() {
    let mut store = memory_store();
    let group_identify = |msg: &str, who: serde_json::Value| {
        let mut body = json!({"type":"group","groupId":"ws-9","messageId":msg,
            "timestamp":"2026-02-20T10:00:00Z","traits":{"company_size":"51-200"}});
        if let (Some(b), Some(w)) = (body.as_object_mut(), who.as_object()) {
            b.extend(w.clone());
        }
        let mut e = ev(body);
        e.event = Some(upmarket_core::posthog::GROUP_IDENTIFY.to_string());
        e
    };
    let events = vec![
        ev(
            json!({"type":"group","userId":"bob","groupId":"ws-9","messageId":"g1","timestamp":"2026-02-01T10:00:00Z"}),
        ),
        ev(
            json!({"type":"track","event":"Report Created","userId":"bob","messageId":"t1","timestamp":"2026-02-10T10:00:00Z","context":{"groupId":"ws-9"}}),
        ),
        // carol's device is aliased to carol ...
        ev(
            json!({"type":"identify","userId":"carol","anonymousId":"anon-c","messageId":"i1","timestamp":"2026-02-02T10:00:00Z"}),
        ),
        // ... and both describe the workspace without joining it.
        group_identify("gi1", json!({"anonymousId":"anon-c"})),
        group_identify("gi2", json!({"userId":"carol"})),
    ];
    store.append(&events).unwrap();
    let m = model("default.toml");
    let s = store.reader().unwrap();
    let as_of = at("2026-03-01 00:00:00");
    let all = s.measure(&m, as_of, None).unwrap();
    let full = all.iter().find(|a| a.account_id == "ws-9").unwrap();
    let one = s.measure(&m, as_of, Some(&["ws-9".to_string()])).unwrap();
    assert_eq!(one, vec![full.clone()]);
    let active = m
        .signals
        .iter()
        .position(|x| x.id == "active_users")
        .unwrap();
    assert_eq!(
        full.values[active],
        SignalValue::Number(2.0),
        "bob and carol"
    );
}

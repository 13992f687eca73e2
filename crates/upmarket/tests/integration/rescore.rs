//! The live loop end to end: events sent to a running `upmarket serve` are scored by its
//! re-scorer within seconds, the read API shows the score, and a tier change is recorded.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{open_store, Server, WRITE_KEY};

const READ_TOKEN: &str = "rt_test_0123456789";

fn send(server: &Server, batch: Vec<Value>) {
    let resp = ureq::post(&format!("{}/v1/batch", server.url))
        .header("Content-Type", "application/json")
        .send(
            json!({ "writeKey": WRITE_KEY, "batch": batch })
                .to_string()
                .as_bytes(),
        )
        .expect("batch accepted");
    assert_eq!(resp.status().as_u16(), 200);
}

/// Polls `GET /api/accounts/{id}` until `done` holds (or 60 s pass).
fn wait_for(server: &Server, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut resp = agent
            .get(&format!("{}/api/accounts/{id}", server.url))
            .header("Authorization", &format!("Bearer {READ_TOKEN}"))
            .call()
            .expect("request sent");
        let body: Value =
            serde_json::from_str(&resp.body_mut().read_to_string().unwrap_or_default())
                .unwrap_or(Value::Null);
        if resp.status().as_u16() == 200 && done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "account {id} never got there: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn new_events_are_rescored_live_and_a_tier_change_is_recorded() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("upmarket.toml"),
        format!("[api]\nread_tokens = ['{READ_TOKEN}']\n[scoring]\nrescore_interval_secs = 1\n"),
    )
    .unwrap();
    let server = Server::start(work.path());
    let now = chrono::Utc::now();
    let at = |minutes_ago: i64| (now - chrono::Duration::minutes(minutes_ago)).to_rfc3339();
    let mut n = 0;
    let mut id = || {
        n += 1;
        format!("e2e-{n}")
    };

    // One user, one action: a self-serve account.
    send(
        &server,
        vec![
            json!({"type":"group","userId":"ann","groupId":"ws-live","messageId":id(),"timestamp":at(90)}),
            json!({"type":"track","event":"Report Created","userId":"ann","messageId":id(),"timestamp":at(80),"context":{"groupId":"ws-live"}}),
        ],
    );
    let first = wait_for(&server, "ws-live", |b| b["score"]["tier"].is_string());
    assert_eq!(first["score"]["tier"], "self_serve", "{first}");
    let first_score = first["score"]["score"].as_f64().unwrap();

    // The team arrives: nine people, heavy core use, advanced and enterprise features,
    // legal / pricing / security pages, an admin change, invites, a company size.
    let mut batch = Vec::new();
    for u in 0..9 {
        let user = format!("user{u}");
        let ctx = json!({"groupId":"ws-live"});
        batch.push(json!({"type":"group","userId":user,"groupId":"ws-live","messageId":id(),"timestamp":at(70)}));
        batch.push(json!({"type":"identify","userId":user,"messageId":id(),"timestamp":at(69),"traits":{"company_size":"201-1000"}}));
        for k in 0..12 {
            batch.push(json!({"type":"track","event":"Report Created","userId":user,"messageId":id(),"timestamp":at(60 - k),"context":ctx}));
        }
        let feature = [
            "Alert Configured",
            "Integration Connected",
            "API Key Created",
            "Custom Metric Defined",
        ][u % 4];
        batch.push(json!({"type":"track","event":feature,"userId":user,"messageId":id(),"timestamp":at(40),"context":ctx}));
        let page = [
            "/legal/terms",
            "/legal/terms",
            "/legal/privacy",
            "/pricing",
            "/pricing",
            "/pricing",
            "/security",
            "/pricing",
            "/pricing",
        ][u];
        batch.push(json!({"type":"page","userId":user,"messageId":id(),"timestamp":at(30),"properties":{"path":page},"context":ctx}));
    }
    for event in [
        "SSO Configured",
        "Admin Role Changed",
        "Teammate Invited",
        "Teammate Invited",
        "Teammate Invited",
    ] {
        batch.push(json!({"type":"track","event":event,"userId":"ann","messageId":id(),"timestamp":at(20),"context":{"groupId":"ws-live"}}));
    }
    send(&server, batch);
    let later = wait_for(&server, "ws-live", |b| b["score"]["tier"] == "sales");
    let later_score = later["score"]["score"].as_f64().unwrap();
    assert!(later_score > first_score, "{first_score} → {later_score}");
    assert!(
        later["history"].as_array().is_some_and(|h| !h.is_empty()),
        "today's score is in the history: {later}"
    );

    // The change is recorded as an event for alerts.
    let data_dir = server.stop();
    let store = open_store(&data_dir);
    let conn = store.sql_connection().unwrap();
    let (from, to): (Option<String>, String) = conn
        .query_row(
            "SELECT from_tier, to_tier FROM tier_changes WHERE account_id = 'ws-live' ORDER BY changed_at DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (from.as_deref(), to.as_str()),
        (Some("self_serve"), "sales")
    );
}

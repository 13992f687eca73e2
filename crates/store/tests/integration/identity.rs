//! Identity: people, workspaces and companies.

use serde_json::json;
use upmarket_store::Store;

use crate::{ev, memory_store};

fn track(msg: &str, user: &str, at: &str) -> serde_json::Value {
    json!({"type":"track","event":"Report Created","userId":user,"messageId":msg,"timestamp":at})
}

fn identify(msg: &str, user: &str, email: &str, at: &str) -> serde_json::Value {
    json!({"type":"identify","userId":user,"messageId":msg,"timestamp":at,"traits":{"email":email}})
}

fn group(
    msg: &str,
    user: &str,
    ws: &str,
    at: &str,
    traits: serde_json::Value,
) -> serde_json::Value {
    json!({"type":"group","userId":user,"groupId":ws,"messageId":msg,"timestamp":at,"traits":traits})
}

#[test]
fn free_mail_users_stay_out_of_companies() {
    let mut store = memory_store();
    store
        .append(&[
            ev(identify(
                "i1",
                "ann",
                "ann@gmail.com",
                "2026-01-01T00:00:00Z",
            )),
            ev(identify(
                "i2",
                "bob",
                "bob@gmail.com",
                "2026-01-01T00:00:00Z",
            )),
            ev(identify(
                "i3",
                "cat",
                "cat@acme.com",
                "2026-01-01T00:00:00Z",
            )),
            ev(track("t1", "ann", "2026-01-02T00:00:00Z")),
            ev(track("t2", "bob", "2026-01-02T00:00:00Z")),
            ev(track("t3", "cat", "2026-01-02T00:00:00Z")),
        ])
        .unwrap();
    let r = store.reader().unwrap();
    assert_eq!(
        r.attribution("t1").unwrap().unwrap().company_id,
        None,
        "gmail.com is not a company"
    );
    assert_eq!(r.attribution("t2").unwrap().unwrap().company_id, None);
    assert_eq!(
        r.attribution("t3").unwrap().unwrap().company_id.as_deref(),
        Some("acme.com")
    );
    assert_eq!(
        r.stats().unwrap().companies,
        1,
        "two gmail users do not make an account"
    );
}

#[test]
fn group_membership_applies_to_later_events() {
    let mut store = memory_store();
    store
        .append(&[ev(group(
            "g1",
            "dan",
            "ws-1",
            "2026-01-01T00:00:00Z",
            json!({"name":"Acme Design"}),
        ))])
        .unwrap();
    // A later batch: events that carry no group at all.
    store
        .append(&[ev(track("t1", "dan", "2026-01-05T00:00:00Z"))])
        .unwrap();
    let r = store.reader().unwrap();
    assert_eq!(
        r.attribution("t1")
            .unwrap()
            .unwrap()
            .workspace_id
            .as_deref(),
        Some("ws-1")
    );

    // Moving to another workspace: events after the second group call count there.
    store
        .append(&[ev(group(
            "g2",
            "dan",
            "ws-2",
            "2026-02-01T00:00:00Z",
            json!({}),
        ))])
        .unwrap();
    store
        .append(&[
            ev(track("t2", "dan", "2026-02-03T00:00:00Z")),
            ev(track("t3", "dan", "2026-01-20T00:00:00Z")),
        ])
        .unwrap();
    assert_eq!(
        r.attribution("t2")
            .unwrap()
            .unwrap()
            .workspace_id
            .as_deref(),
        Some("ws-2")
    );
    assert_eq!(
        r.attribution("t3")
            .unwrap()
            .unwrap()
            .workspace_id
            .as_deref(),
        Some("ws-1"),
        "before the move it was ws-1"
    );
}

#[test]
fn context_group_id_declares_membership() {
    let mut store = memory_store();
    store
        .append(&[ev(json!({"type":"track","event":"x","userId":"eve","messageId":"t1","timestamp":"2026-01-01T00:00:00Z","context":{"groupId":"ws-9"}}))])
        .unwrap();
    store
        .append(&[ev(track("t2", "eve", "2026-01-02T00:00:00Z"))])
        .unwrap();
    let r = store.reader().unwrap();
    assert_eq!(
        r.attribution("t2")
            .unwrap()
            .unwrap()
            .workspace_id
            .as_deref(),
        Some("ws-9")
    );
}

#[test]
fn two_workspaces_of_one_domain_roll_up_to_one_company() {
    let mut store = memory_store();
    store
        .append(&[
            ev(identify(
                "i1",
                "u1",
                "u1@globex.com",
                "2026-01-01T00:00:00Z",
            )),
            ev(identify(
                "i2",
                "u2",
                "u2@globex.com",
                "2026-01-01T00:00:00Z",
            )),
            ev(identify("i3", "u3", "u3@gmail.com", "2026-01-01T00:00:00Z")),
            ev(group(
                "g1",
                "u1",
                "ws-marketing",
                "2026-01-01T00:00:00Z",
                json!({}),
            )),
            ev(group(
                "g2",
                "u2",
                "ws-eng",
                "2026-01-01T00:00:00Z",
                json!({}),
            )),
            // A gmail user inside Globex's workspace still counts for Globex.
            ev(group(
                "g3",
                "u3",
                "ws-eng",
                "2026-01-01T00:00:00Z",
                json!({}),
            )),
            // A workspace whose group call declares its website.
            ev(group(
                "g4",
                "u3",
                "ws-declared",
                "2026-01-01T00:00:00Z",
                json!({"website":"https://www.globex.com/"}),
            )),
            ev(track("t1", "u1", "2026-01-02T00:00:00Z")),
            ev(track("t2", "u2", "2026-01-02T00:00:00Z")),
            ev(track("t3", "u3", "2026-01-02T00:00:00Z")),
        ])
        .unwrap();
    let r = store.reader().unwrap();
    for ws in ["ws-marketing", "ws-eng", "ws-declared"] {
        assert_eq!(
            r.workspace_company(ws).unwrap().as_deref(),
            Some("globex.com"),
            "{ws}"
        );
    }
    for msg in ["t1", "t2", "t3"] {
        assert_eq!(
            r.attribution(msg).unwrap().unwrap().company_id.as_deref(),
            Some("globex.com"),
            "{msg}"
        );
    }
    assert_eq!(r.stats().unwrap().companies, 1);
}

#[test]
fn anonymous_history_joins_the_known_user() {
    let mut store = memory_store();
    // Browsing before sign-up, under a cookie id only.
    store
        .append(&[
            ev(json!({"type":"page","name":"Pricing","anonymousId":"anon-7","messageId":"p1","timestamp":"2026-01-01T00:00:00Z","properties":{"path":"/pricing"}})),
            ev(json!({"type":"page","name":"Terms","anonymousId":"anon-7","messageId":"p2","timestamp":"2026-01-01T00:01:00Z"})),
        ])
        .unwrap();
    let r = store.reader().unwrap();
    assert_eq!(r.attribution("p1").unwrap().unwrap().person, "anon-7");
    // Sign-up: identify carries both ids.
    store
        .append(&[ev(json!({"type":"identify","userId":"fay","anonymousId":"anon-7","messageId":"i1","timestamp":"2026-01-01T00:05:00Z","traits":{"email":"fay@initech.com"}}))])
        .unwrap();
    for msg in ["p1", "p2", "i1"] {
        let a = r.attribution(msg).unwrap().unwrap();
        assert_eq!(a.person, "fay", "{msg}");
        assert_eq!(a.company_id.as_deref(), Some("initech.com"), "{msg}");
    }
    // An alias call merges another id the same way.
    store
        .append(&[
            ev(json!({"type":"track","event":"x","anonymousId":"mobile-1","messageId":"m1","timestamp":"2026-01-03T00:00:00Z"})),
            ev(json!({"type":"alias","userId":"fay","previousId":"mobile-1","messageId":"a1","timestamp":"2026-01-04T00:00:00Z"})),
        ])
        .unwrap();
    assert_eq!(r.person_of("mobile-1").unwrap(), "fay");
    assert_eq!(r.attribution("m1").unwrap().unwrap().person, "fay");
}

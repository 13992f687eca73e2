//! The HTTP API mounted in-process on a real socket: status codes, error bodies (snapshots),
//! gzip, limits, PostHog routes. One integration-test binary for the crate.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use serde_json::{json, Value};
use upmarket_core::FreeMailDomains;
use upmarket_server::{create_app, spawn_writer, AppState, Overrides, RawConfig};
use upmarket_store::{DuckDbStore, Store, StoreSession};

const KEY: &str = "wk_test_0123456789";

struct TestServer {
    url: String,
    reader: Box<dyn StoreSession>,
    _runtime: tokio::runtime::Runtime,
}

fn server_with(config_toml: &str) -> TestServer {
    let store = DuckDbStore::open_in_memory(&FreeMailDomains::default()).unwrap();
    server_on(config_toml, Box::new(store))
}

fn server_on(config_toml: &str, store: Box<dyn Store>) -> TestServer {
    let config = RawConfig::parse(config_toml, "test")
        .unwrap()
        .build(&HashMap::new(), &Overrides::default())
        .unwrap();
    let reader = store.reader().unwrap();
    let sessions = upmarket_server::sessions::SessionPool::new(store.reader().unwrap());
    let (writer, _thread) = spawn_writer(store, config.writer_limits()).unwrap();
    let state = AppState {
        config: Arc::new(config),
        writer,
        sessions,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, create_app(state)).await });
    TestServer {
        url,
        reader,
        _runtime: runtime,
    }
}

const READ: &str = "rt_test_0123456789";

fn server() -> TestServer {
    server_with(&format!(
        "[ingest]\nwrite_keys = ['{KEY}']\nmax_batch_events = 10\nmax_request_bytes = 100000\nmax_event_bytes = 2000\n[api]\nread_tokens = ['{READ}']\n"
    ))
}

fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call().expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"))
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs `body` with the given headers; returns status and parsed JSON body.
fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body).expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn post_json(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    post(
        &format!("{}{path}", s.url),
        &[
            ("Authorization", &basic()),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

#[test]
fn track_then_retry_is_stored_once() {
    let s = server();
    let ev = json!({"userId":"u1","event":"Report Created","messageId":"m-1"});
    let (status, body) = post_json(&s, "/v1/track", ev.clone());
    assert_eq!(status, 200, "{body}");
    insta::assert_json_snapshot!("track_ok", body);
    let (_, body) = post_json(&s, "/v1/track", ev);
    assert_eq!(
        (body["stored"].as_u64(), body["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(s.reader.message_counts(&["m-1".into()]).unwrap()["m-1"], 1);
    let (_, health) = get(&format!("{}/health", s.url), None);
    assert_eq!(
        health["waiting_events"], 0,
        "a stored event and a duplicate leave no room taken"
    );
}

#[test]
fn a_batch_stores_good_events_and_reports_bad_ones() {
    let s = server();
    let (status, body) = post_json(
        &s,
        "/v1/batch",
        json!({"batch":[
            {"type":"track","userId":"u1","event":"A","messageId":"b-1"},
            {"type":"track","userId":"u1","messageId":"b-2"},
            {"type":"identify","traits":{"email":"x@y.com"},"messageId":"b-3"},
            {"type":"page","anonymousId":"a1","name":"Pricing","messageId":"b-4"}
        ]}),
    );
    assert_eq!(status, 200);
    insta::assert_json_snapshot!("batch_partial", body);
    let counts = s
        .reader
        .message_counts(&["b-1".into(), "b-2".into(), "b-4".into()])
        .unwrap();
    assert_eq!((counts["b-1"], counts["b-2"], counts["b-4"]), (1, 0, 1));
}

#[test]
fn client_mistakes_get_named_4xx_errors() {
    let s = server();
    let url = |p: &str| format!("{}{p}", s.url);
    let auth = basic();
    let json_ct = ("Content-Type", "application/json");
    let cases: Vec<(&str, u16, (u16, Value))> = vec![
        (
            "invalid_json",
            400,
            post(
                &url("/v1/track"),
                &[("Authorization", &auth), json_ct],
                b"{not json",
            ),
        ),
        (
            "missing_key",
            401,
            post(
                &url("/v1/track"),
                &[json_ct],
                br#"{"userId":"u","event":"x"}"#,
            ),
        ),
        (
            "invalid_key",
            401,
            post(
                &url("/v1/track"),
                &[json_ct],
                br#"{"userId":"u","event":"x","writeKey":"wrong-key-123"}"#,
            ),
        ),
        (
            "missing_identity",
            400,
            post(
                &url("/v1/track"),
                &[("Authorization", &auth), json_ct],
                br#"{"event":"x"}"#,
            ),
        ),
        (
            "wrong_type",
            400,
            post(
                &url("/v1/identify"),
                &[("Authorization", &auth), json_ct],
                br#"{"userId":"u","traits":"ceo"}"#,
            ),
        ),
        (
            "all_rejected",
            400,
            post(
                &url("/v1/batch"),
                &[("Authorization", &auth), json_ct],
                br#"{"batch":[{"type":"nope","userId":"u"}]}"#,
            ),
        ),
        (
            "batch_not_array",
            400,
            post(
                &url("/v1/batch"),
                &[("Authorization", &auth), json_ct],
                br#"{"batch":{"type":"track"}}"#,
            ),
        ),
        (
            "too_many_events",
            413,
            post(
                &url("/v1/batch"),
                &[("Authorization", &auth), json_ct],
                json!({"batch": vec![json!({"type":"track","userId":"u","event":"x"}); 11]})
                    .to_string()
                    .as_bytes(),
            ),
        ),
        (
            "event_too_large",
            400,
            post(
                &url("/v1/track"),
                &[("Authorization", &auth), json_ct],
                json!({"userId":"u","event":"x","properties":{"p":"a".repeat(3000)}})
                    .to_string()
                    .as_bytes(),
            ),
        ),
        // 200 KB that gzip to a few hundred bytes: the limit applies after decompression. (A raw
        // oversized body is refused before it is read, which races with the client still
        // sending it, so the raw path is not asserted here.)
        (
            "request_too_large",
            413,
            post(
                &url("/v1/batch"),
                &[
                    ("Authorization", &auth),
                    json_ct,
                    ("Content-Encoding", "gzip"),
                ],
                &gzip("x".repeat(200_000).as_bytes()),
            ),
        ),
        (
            "unsupported_encoding",
            415,
            post(
                &url("/v1/track"),
                &[("Authorization", &auth), ("Content-Encoding", "br")],
                b"...",
            ),
        ),
        ("not_found", 404, post(&url("/v2/nothing"), &[], b"")),
    ];
    for (name, want, (status, body)) in cases {
        assert_eq!(status, want, "{name}: {body}");
        for field in ["message", "code", "type", "link"] {
            assert!(
                body.get(field).is_some(),
                "{name}: error body lacks {field}: {body}"
            );
        }
        insta::assert_json_snapshot!(format!("error_{name}"), body);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn gzip_is_read_whatever_the_content_type_says() {
    let s = server();
    let body =
        json!({"batch":[{"type":"track","userId":"u","event":"x","messageId":"gz-1"}]}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    // RudderStack's Node SDK: gzip labelled as a form.
    let (status, resp) = post(
        &format!("{}/v1/batch", s.url),
        &[
            ("Authorization", &basic()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &gz,
    );
    assert_eq!((status, resp["stored"].as_u64()), (200, Some(1)), "{resp}");
}

#[test]
fn posthog_capture_routes_accept_batches_and_single_events() {
    let s = server();
    let (status, body) = post(
        &format!("{}/batch/", s.url),
        &[("Content-Type", "application/json")],
        json!({"api_key": KEY, "batch": [
            {"event":"Report Created","distinct_id":"u1","uuid":"ph-1","properties":{"$groups":{"company":"c1"}}},
            {"event":"$identify","distinct_id":"u1","uuid":"ph-2","properties":{"$set":{"email":"u1@acme.com"}}}
        ]})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    insta::assert_json_snapshot!("posthog_batch", body);
    for path in ["/capture/", "/e/", "/i/v0/e/", "/e"] {
        let (status, body) = post(
            &format!("{}{path}", s.url),
            &[],
            json!({"api_key": KEY, "event":"x","distinct_id":"u2"})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(status, 200, "{path}: {body}");
    }
    let a = s.reader.attribution("ph-1").unwrap().unwrap();
    assert_eq!(
        (a.workspace_id.as_deref(), a.company_id.as_deref()),
        (Some("c1"), Some("acme.com"))
    );
    let (status, _) = post(
        &format!("{}/batch/", s.url),
        &[],
        json!({"api_key": "nope-nope-nope", "batch": []})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 401);
}

#[test]
fn the_read_api_needs_a_read_token_and_write_keys_cannot_read() {
    let s = server();
    let url = format!("{}/api/accounts", s.url);
    assert_eq!(get(&url, None).0, 401);
    assert_eq!(get(&url, Some("not-a-token-at-all")).0, 401);
    let (status, body) = get(&url, Some(KEY));
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, body) = get(&url, Some(READ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["model"].as_str(), body["total"].as_u64()),
        (Some("default"), Some(0))
    );
    let (status, body) = get(&format!("{url}?tier=vip"), Some(READ));
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown tier \"vip\""),
        "{body}"
    );
    let (status, body) = get(&format!("{url}/ws-nope"), Some(READ));
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("account_not_found"))
    );
    // Regression: query-string mistakes came back as axum's plain text, not the error shape.
    for (query, named) in [("limit=abc", "limit"), ("colour=red", "colour")] {
        let (status, body) = get(&format!("{url}?{query}"), Some(READ));
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_request")),
            "{query}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap_or_default().contains(named),
            "{query}: {body}"
        );
    }
}

/// The real store behind a gate: appending waits until the test opens it, so the applier can
/// be held busy deterministically.
struct GatedStore {
    inner: DuckDbStore,
    open: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    entered: std::sync::mpsc::Sender<()>,
}

impl Store for GatedStore {
    fn append_prepared(
        &mut self,
        events: &[&upmarket_store::PreparedEvent],
    ) -> Result<Vec<upmarket_store::AppendStatus>, upmarket_store::StoreError> {
        self.inner.append_prepared(events)
    }

    fn take_stored_keys(
        &mut self,
    ) -> Result<upmarket_store::StoredKeys, upmarket_store::StoreError> {
        self.inner.take_stored_keys()
    }

    fn append_unique(
        &mut self,
        events: &[&upmarket_store::PreparedEvent],
    ) -> Result<(), upmarket_store::StoreError> {
        let _ = self.entered.send(());
        let (lock, cvar) = &*self.open;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cvar.wait(open).unwrap();
        }
        drop(open);
        self.inner.append_unique(events)
    }

    fn reader(&self) -> Result<Box<dyn StoreSession>, upmarket_store::StoreError> {
        self.inner.reader()
    }
}

/// When the store is busy and the events waiting for it reach `max_unapplied_events`, a
/// request gets 429 with Retry-After and stores nothing; the waiting ones are stored once the
/// store catches up.
#[test]
fn a_saturated_writer_answers_429_with_retry_after() {
    let open = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let (entered, writer_busy) = std::sync::mpsc::channel();
    let store = GatedStore {
        inner: DuckDbStore::open_in_memory(&FreeMailDomains::default()).unwrap(),
        open: open.clone(),
        entered,
    };
    let s = server_on(
        &format!("[ingest]\nwrite_keys = ['{KEY}']\nqueue_depth = 1\nmax_unapplied_events = 2\n"),
        Box::new(store),
    );
    let send = |msg: &'static str| {
        let url = format!("{}/v1/track", s.url);
        std::thread::spawn(move || {
            let body = json!({"event":"x","userId":"u","messageId":msg});
            let mut resp = agent()
                .post(&url)
                .header("Authorization", &basic())
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes())
                .expect("request sent");
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            (resp.status().as_u16(), retry, text)
        })
    };
    // The first request holds the applier inside its append ...
    let first = send("m1");
    writer_busy
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    // ... one of the next two takes the second place of the backlog, the other is refused.
    let (second, third) = (send("m2"), send("m3"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !(second.is_finished() || third.is_finished()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no request was refused"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let health =
        |s: &TestServer| get(&format!("{}/health", s.url), None).1["waiting_events"].clone();
    assert_eq!(
        health(&s),
        2,
        "the held event and the queued one wait for the store"
    );
    {
        let (lock, cvar) = &*open;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }
    let mut answers = [second.join().unwrap(), third.join().unwrap()];
    answers.sort();
    let (ok, refused) = (&answers[0], &answers[1]);
    assert_eq!(first.join().unwrap().0, 200);
    assert_eq!(ok.0, 200);
    assert_eq!(refused.0, 429, "{refused:?}");
    assert!(
        refused
            .1
            .as_deref()
            .is_some_and(|v| v.parse::<u64>().is_ok()),
        "Retry-After in seconds: {refused:?}"
    );
    let body: Value = serde_json::from_str(&refused.2).unwrap();
    assert_eq!(body["code"], "writer_saturated");
    let counts = s
        .reader
        .message_counts(&["m1".into(), "m2".into(), "m3".into()])
        .unwrap();
    assert_eq!(counts.values().sum::<u64>(), 2, "{counts:?}");
    assert_eq!(health(&s), 0, "nothing waits once both are stored");
}

//! The default model on the simulator's data: accounts it puts in the sales tier go on to
//! raise their hand far more often than self-serve ones. Scores use only events before the
//! as-of date; hand-raises are counted after it.

use std::collections::HashMap;
use std::io::BufRead;

use upmarket_core::model::Model;
use upmarket_core::segment::{parse_event, BatchDefaults, ParseContext};
use upmarket_core::IngestSource;
use upmarket_sim::{simulate, SimConfig};
use upmarket_store::Store;

use crate::memory_store;

/// A store holding the simulator's events for `accounts` companies.
fn simulated_store(accounts: u64, seed: u64) -> (upmarket_store::DuckDbStore, SimConfig) {
    let (events, cfg) = simulated_events(accounts, seed);
    let mut store = memory_store();
    for batch in events.chunks(20_000) {
        store.append(batch).unwrap();
    }
    (store, cfg)
}

/// The first `limit` (user, group) pairs that grouped events name.
fn members(conn: &duckdb::Connection, limit: usize) -> Vec<(String, String)> {
    conn.prepare(&format!(
        "SELECT DISTINCT user_id, group_id FROM events
         WHERE user_id IS NOT NULL AND group_id IS NOT NULL ORDER BY 1, 2 LIMIT {limit}"
    ))
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The RFC 3339 time `days` days before `as_of`.
fn days_before(as_of: chrono::NaiveDateTime, days: u64) -> String {
    (as_of - chrono::Days::new(days)).and_utc().to_rfc3339()
}

/// The simulator's events for `accounts` companies, parsed.
fn simulated_events(accounts: u64, seed: u64) -> (Vec<upmarket_core::Event>, SimConfig) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        accounts,
        seed,
        ..SimConfig::default()
    };
    simulate(&cfg, dir.path(), |_| {}).unwrap();
    let ctx = ParseContext {
        received_at: chrono::Utc::now(),
        source: IngestSource::Import,
        max_event_bytes: 32 * 1024,
        trust_received_at: true,
    };
    let file =
        std::io::BufReader::new(std::fs::File::open(dir.path().join("events.ndjson")).unwrap());
    let events = file
        .lines()
        .map(|line| parse_event(&line.unwrap(), None, &BatchDefaults::default(), &ctx).unwrap())
        .collect();
    (events, cfg)
}

fn models_dir() -> std::path::PathBuf {
    std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../models")
}

fn default_model_text() -> String {
    std::fs::read_to_string(models_dir().join("default.toml")).unwrap()
}

/// Signal kinds neither shipped model uses.
const KINDS_MODEL: &str = r#"
[model]
name = "kinds"
version = 1
level = "workspace"
scale = "raw"

[events]
core_feature = ["Report Created", "Dashboard Viewed", "Query Run", "Chart Shared"]
pricing_view = { pages = ["/pricing"] }

[[signal]]
id = "core_velocity"
kind = "velocity"
metric = "core_feature"
recent_days = 7
baseline_days = 28

[[signal]]
id = "pricing_on_site"
kind = "event_count"
role = "pricing_view"
window_days = 30
where = { "properties.path" = "/pricing" }

[[component]]
signal = "core_velocity"
weight = 0.5
points_per_unit = 1.0

[[component]]
signal = "pricing_on_site"
weight = 0.5
points_per_unit = 10.0

[[tier]]
name = "sales"
min = 50

[[tier]]
name = "self_serve"
min = 0
"#;

/// The default model, the seeds' worked example (active days, feature tiers, event velocity)
/// and one with the remaining kinds (selected velocity, property filters), each at workspace
/// and company level.
fn every_model_at_both_levels() -> Vec<(Model, &'static str)> {
    let models = [
        default_model_text(),
        std::fs::read_to_string(models_dir().join("004-worked-example.toml")).unwrap(),
        KINDS_MODEL.to_string(),
    ];
    models
        .iter()
        .flat_map(|m| ["workspace", "company"].map(|l| (m, l)))
        .map(|(text, level)| {
            let text = text.replace("level = \"workspace\"", &format!("level = \"{level}\""));
            (Model::from_toml(&text, "test model").unwrap(), level)
        })
        .collect()
}

/// Scoring every account as of a midnight from the daily rollup gives exactly what the raw
/// events give, for every signal kind at both levels, also after late events arrived that the
/// rollup does not cover (old days, with and without a group: read raw and merged).
#[test]
fn scoring_from_the_rollup_equals_scoring_raw_events() {
    use upmarket_store::scoring::measure_with;
    let (mut store, cfg) = simulated_store(300, 23);
    let conn = store.sql_connection().unwrap();
    let as_of = (cfg.start + chrono::Days::new(300))
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let compare = |conn: &duckdb::Connection, stage: &str| {
        for (model, level) in every_model_at_both_levels() {
            let rolled = measure_with(conn, &model, as_of, None, true).unwrap();
            let raw = measure_with(conn, &model, as_of, None, false).unwrap();
            assert!(raw.len() > 100, "{level}: {} accounts", raw.len());
            assert_eq!(rolled, raw, "{} at {level} level, {stage}", model.name);
        }
    };
    compare(&conn, "rollup just built");
    let rollups: i64 = conn
        .query_row("SELECT count(*) FROM rollups", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rollups, 3,
        "one rollup per model definition (levels share one)"
    );

    // Late events for days the rollup covers: product use with and without the group,
    // legal and pricing pages, from people already in accounts.
    let people = members(&conn, 40);
    let mut late = Vec::new();
    for (n, (user, group)) in people.iter().enumerate() {
        let when = days_before(as_of, 1 + (n as u64 % 40));
        let context = if n % 3 == 0 {
            serde_json::json!({})
        } else {
            serde_json::json!({ "groupId": group })
        };
        late.push(crate::ev(serde_json::json!({
            "type": "track", "event": "Report Created", "userId": user,
            "messageId": format!("late-track-{n}"), "timestamp": when, "context": context,
        })));
        late.push(crate::ev(serde_json::json!({
            "type": "page", "name": "Pricing", "userId": user,
            "properties": { "path": if n % 2 == 0 { "/pricing" } else { "/legal/terms" } },
            "messageId": format!("late-page-{n}"), "timestamp": when, "context": context,
        })));
    }
    store.append(&late).unwrap();
    store.flush().unwrap();
    let uncovered: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE seq > (SELECT min(through_seq) FROM rollups)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        uncovered,
        late.len() as i64,
        "the late events are outside the rollup"
    );
    compare(&conn, "after late events");
}

/// Re-scoring a few accounts (the re-scorer's path: candidate events, counted in Rust) gives
/// exactly what scoring every account gives, at workspace and at company level: as of the
/// scoring clock and later, from account rows whose old events are folded (dormant accounts'
/// recency from the folded rows), and as of an earlier time, which those rows cannot serve.
#[test]
fn rescoring_a_few_accounts_matches_scoring_all() {
    let (store, cfg) = simulated_store(300, 11);
    let session = store.reader().unwrap();
    let earlier = (cfg.start + chrono::Days::new(300))
        .and_hms_opt(12, 30, 0)
        .unwrap();
    let clock = session.scoring_clock().unwrap();
    for as_of in [clock, clock + chrono::Duration::days(20), earlier] {
        rescoring_a_few_accounts_matches_scoring_all_as_of(session.as_ref(), as_of);
    }
    let conn = store.sql_connection().unwrap();
    let (kept_from, base): (Option<chrono::NaiveDateTime>, String) = conn
        .query_row("SELECT kept_from, name FROM account_row_tables", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        kept_from,
        Some(clock - chrono::Duration::days(60)),
        "the default model looks back 60 days"
    );
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let rows = count(&format!("SELECT count(*) FROM {base}"));
    let events = count("SELECT count(*) FROM events");
    assert!(rows * 2 < events, "{rows} rows for {events} events");
}

fn rescoring_a_few_accounts_matches_scoring_all_as_of(
    session: &dyn upmarket_store::StoreSession,
    as_of: chrono::NaiveDateTime,
) {
    for (model, level) in every_model_at_both_levels() {
        let all = session.measure(&model, as_of, None).unwrap();
        let recency = model
            .signals
            .iter()
            .position(|s| s.kind == upmarket_core::model::SignalKind::Recency);
        let dormant = |a: &upmarket_store::AccountSignals| {
            recency.is_some_and(
                |i| matches!(a.values[i], upmarket_core::model::SignalValue::Number(d) if d > 60.0),
            )
        };
        assert!(
            recency.is_none() || all.iter().step_by(7).any(dormant),
            "{level} as of {as_of}: accounts idle for longer than the look-back are checked"
        );
        assert!(all.len() > 100, "{level}: {} accounts", all.len());
        let mut checked = 0;
        for a in all.iter().step_by(7) {
            let one = session
                .measure(&model, as_of, Some(std::slice::from_ref(&a.account_id)))
                .unwrap();
            assert_eq!(one, vec![a.clone()], "{level} account {}", a.account_id);
            checked += 1;
        }
        let some: Vec<String> = all
            .iter()
            .skip(3)
            .step_by(11)
            .take(6)
            .map(|a| a.account_id.clone())
            .collect();
        let several = session.measure(&model, as_of, Some(&some)).unwrap();
        let expected: Vec<_> = all
            .iter()
            .filter(|a| some.contains(&a.account_id))
            .cloned()
            .collect();
        assert_eq!(several, expected, "{level}: several accounts at once");
        // Regression: an account nobody belongs to (no workspace, no person: a company known
        // by no one) made an empty candidate query, a SQL error instead of no account.
        let unknown = session
            .measure(
                &model,
                as_of,
                Some(&["no-such-account.example".to_string()]),
            )
            .unwrap();
        assert_eq!(
            unknown,
            vec![],
            "{level}: an unknown account measures to nothing"
        );
        eprintln!(
            "{} at {level} level as of {as_of}: {checked} accounts re-scored alone, 6 together, all equal",
            model.name
        );
    }
}

/// The re-scorer reads one account's events from its account rows (sorted by key) plus the
/// events that arrived after them: through creation, appended runs, the delta rewritten as one
/// run, the delta merged into the base, and a raw tail, re-scoring equals scoring everything.
#[test]
fn rescoring_from_account_rows_matches_scoring_all_as_they_grow() {
    let (events, cfg) = simulated_events(200, 31);
    let mut store = memory_store();
    let conn = store.sql_connection().unwrap();
    let model = Model::from_toml(&default_model_text(), "default.toml").unwrap();
    let as_of = (cfg.start + chrono::Days::new(400))
        .and_hms_opt(9, 15, 0)
        .unwrap();
    let state = |conn: &duckdb::Connection| -> (i64, i64, i64) {
        conn.query_row(
            "SELECT base_through_seq, through_seq, delta_runs FROM account_row_tables",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    // Every ninth account, and the accounts of `people` (the group-less events' people).
    let check = |store: &upmarket_store::DuckDbStore, stage: &str, people: &[(String, String)]| {
        let session = store.reader().unwrap();
        let all = session.measure(&model, as_of, None).unwrap();
        let chosen = all
            .iter()
            .enumerate()
            .filter(|(i, a)| i % 9 == 0 || people.iter().any(|(_, g)| *g == a.account_id))
            .map(|(_, a)| a);
        for a in chosen {
            let one = session
                .measure(&model, as_of, Some(std::slice::from_ref(&a.account_id)))
                .unwrap();
            assert_eq!(one, vec![a.clone()], "{stage}: account {}", a.account_id);
        }
    };
    // Every chunk is an extension; the ninth finds eight runs and merges.
    upmarket_store::set_account_rows_extend_after(1);
    let mut seen = Vec::new();
    for (n, chunk) in events.chunks(events.len() / 12 + 1).enumerate() {
        store.append(chunk).unwrap();
        store.flush().unwrap();
        // Group-less events that count (core feature use by known members) in every run, so
        // the base's indexed copy of its group-less rows must follow each merge.
        let people = members(&conn, 12);
        let groupless: Vec<_> = people
            .iter()
            .enumerate()
            .map(|(i, (user, _))| {
                let when = days_before(as_of, 1 + i as u64);
                crate::ev(serde_json::json!({
                    "type": "track", "event": "Report Created", "userId": user,
                    "messageId": format!("grow-{n}-{i}"), "timestamp": when,
                }))
            })
            .collect();
        store.append(&groupless).unwrap();
        store.flush().unwrap();
        check(&store, &format!("after chunk {n}"), &people);
        seen.push(state(&conn));
    }
    assert!(
        seen.iter().any(|s| s.2 >= 2),
        "runs were appended: {seen:?}"
    );
    assert!(
        seen.windows(2).any(|w| w[1].0 > w[0].0 && w[1].2 == 0),
        "the delta was merged into the base: {seen:?}"
    );
    // Then events the rows do not cover, read raw.
    upmarket_store::set_account_rows_extend_after(1_000_000);
    let people = members(&conn, 30);
    let late: Vec<_> = people
        .iter()
        .enumerate()
        .map(|(n, (user, group))| {
            let when = days_before(as_of, 1 + n as u64);
            let context = if n % 2 == 0 {
                serde_json::json!({})
            } else {
                serde_json::json!({ "groupId": group })
            };
            crate::ev(serde_json::json!({
                "type": "page", "name": "Pricing", "userId": user,
                "properties": { "path": "/pricing" },
                "messageId": format!("tail-{n}"), "timestamp": when, "context": context,
            }))
        })
        .collect();
    let before = state(&conn);
    store.append(&late).unwrap();
    store.flush().unwrap();
    check(&store, "with a raw tail", &people);
    assert_eq!(
        state(&conn),
        before,
        "the tail stays raw below the threshold"
    );
    upmarket_store::set_account_rows_extend_after(100_000);
}

#[test]
fn sales_tier_accounts_hand_raise_far_more_than_self_serve() {
    let (store, cfg) = simulated_store(1500, 5);
    let model = Model::from_toml(&default_model_text(), "default.toml").unwrap();
    let session = store.reader().unwrap();
    let as_of = (cfg.start + chrono::Days::new(240))
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let scores = session.score_accounts(&model, as_of, None).unwrap();

    // Workspaces that submitted "contact sales" after the as-of date.
    let conn = store.sql_connection().unwrap();
    let mut stmt = conn
        .prepare("SELECT DISTINCT workspace_id FROM event_attribution WHERE event = 'Contact Sales Submitted' AND timestamp >= ?")
        .unwrap();
    let raised: std::collections::HashSet<String> = stmt
        .query_map([as_of], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();

    let mut by_tier: HashMap<String, (usize, usize)> = HashMap::new();
    for (ws, d) in &scores {
        let e = by_tier.entry(d.tier.clone()).or_default();
        e.0 += 1;
        e.1 += raised.contains(ws) as usize;
    }
    let rate = |t: &str| {
        by_tier
            .get(t)
            .map_or(0.0, |(n, h)| *h as f64 / (*n).max(1) as f64)
    };
    for t in ["sales", "success", "self_serve"] {
        let (n, h) = by_tier.get(t).copied().unwrap_or_default();
        eprintln!(
            "{t:<11} {n:>5} accounts, {h:>4} hand-raised later: {:.1}%",
            rate(t) * 100.0
        );
    }
    assert!(
        by_tier.get("sales").is_some_and(|(n, _)| *n >= 5),
        "the sales tier is not empty: {by_tier:?}"
    );
    assert!(
        rate("sales") > 5.0 * rate("self_serve"),
        "sales {} vs self-serve {}",
        rate("sales"),
        rate("self_serve")
    );
}

/// A changed model gets a new rollup; creating it drops rollups not extended for a month (the
/// old definition's), and leaves the rest.
#[test]
fn a_new_rollup_drops_the_ones_left_unused_for_a_month() {
    use upmarket_store::scoring::measure_with;
    let mut store = memory_store();
    store
        .append(&[crate::ev(serde_json::json!({
            "type": "track", "event": "Report Created", "userId": "u1", "messageId": "m1",
            "timestamp": "2026-03-01T10:00:00Z", "context": { "groupId": "ws-1" },
        }))])
        .unwrap();
    store.flush().unwrap();
    let conn = store.sql_connection().unwrap();
    let at = chrono::NaiveDate::from_ymd_opt(2026, 3, 5)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let text = default_model_text();
    let old = Model::from_toml(&text, "old").unwrap();
    let changed = Model::from_toml(
        &text.replace("\"Chart Shared\"]", "\"Chart Shared\", \"Chart Exported\"]"),
        "changed",
    )
    .unwrap();
    let rollups = |conn: &duckdb::Connection| -> Vec<String> {
        crate::column(conn, "SELECT name FROM rollups ORDER BY name")
    };
    let tables = |conn: &duckdb::Connection| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'rollup\\_%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let before = measure_with(&conn, &old, at, None, true).unwrap();
    let first = rollups(&conn);
    assert_eq!(first.len(), 1);
    let long_ago = chrono::Utc::now().naive_utc() - chrono::Duration::days(40);
    conn.execute_batch(&format!(
        "UPDATE rollups SET extended_at = {}",
        upmarket_store::scoring::timestamp_literal(long_ago)
    ))
    .unwrap();
    measure_with(&conn, &changed, at, None, true).unwrap();
    let second = rollups(&conn);
    assert_eq!(
        second.len(),
        1,
        "the month-old rollup is dropped: {second:?}"
    );
    assert_ne!(first, second);
    assert_eq!(tables(&conn), 1);
    // The old model still scores the same (its rollup is rebuilt), and a recent rollup stays.
    assert_eq!(measure_with(&conn, &old, at, None, true).unwrap(), before);
    assert_eq!(rollups(&conn).len(), 2);
    assert_eq!(tables(&conn), 2);
}

/// Every row of rollup `table`, as text, sorted; and its column types.
fn rollup_rows(conn: &duckdb::Connection, table: &str) -> (Vec<String>, Vec<String>) {
    let rows = crate::column(
        conn,
        &format!("SELECT CAST(r AS VARCHAR) FROM (SELECT * FROM {table}) r ORDER BY ALL"),
    );
    let types = crate::column(
        conn,
        &format!(
            "SELECT column_name || ' ' || data_type FROM duckdb_columns()
             WHERE table_name = '{table}' ORDER BY column_index"
        ),
    );
    (rows, types)
}

/// Events that exercise the rollup's edge cases: page views whose path comes from the name
/// (no `properties.path`, or a null one) or is NULL (no name either), screens, a path that matches no prefix, track
/// events named in several feature lists, identify, group and alias calls with a group,
/// anonymous-only people, two events of one key on one day, an event at midnight.
fn edge_events() -> Vec<upmarket_core::Event> {
    let mut out = Vec::new();
    let mut n = 0;
    let mut push = |mut json: serde_json::Value| {
        n += 1;
        json["messageId"] = format!("edge-{n}").into();
        out.push(crate::ev(json));
    };
    let ws = serde_json::json!({ "groupId": "edge-ws" });
    for day in [
        "2026-05-01T00:00:00Z",
        "2026-05-01T23:59:59Z",
        "2026-05-20T12:00:00Z",
    ] {
        push(
            serde_json::json!({"type": "page", "name": "/pricing", "userId": "eu1",
            "timestamp": day, "context": ws}),
        );
        push(
            serde_json::json!({"type": "page", "name": "Pricing", "userId": "eu1",
            "properties": {"path": null}, "timestamp": day, "context": ws}),
        );
        // The only event of its key that day: every page condition is NULL.
        push(serde_json::json!({"type": "page", "userId": "eu6",
            "properties": {"url": "x"}, "timestamp": day, "context": ws}));
        push(
            serde_json::json!({"type": "screen", "name": "/legal/terms", "anonymousId": "ea1",
            "timestamp": day, "context": ws}),
        );
        push(
            serde_json::json!({"type": "page", "name": "Security", "userId": "eu2",
            "properties": {"path": "/security/overview", "title": "Sé\"c"}, "timestamp": day,
            "context": ws}),
        );
        push(
            serde_json::json!({"type": "track", "event": "SSO Configured", "userId": "eu1",
            "anonymousId": "ea1", "timestamp": day, "context": ws}),
        );
        push(
            serde_json::json!({"type": "track", "event": "Query Run", "userId": "eu1",
            "anonymousId": "ea1", "timestamp": day, "context": ws}),
        );
        push(
            serde_json::json!({"type": "track", "event": "Something Else", "userId": "eu3",
            "timestamp": day, "context": ws}),
        );
        push(
            serde_json::json!({"type": "identify", "userId": "eu3", "traits": {"company_size": "51-200"},
            "timestamp": day, "context": ws}),
        );
        push(
            serde_json::json!({"type": "group", "userId": "eu3", "groupId": "edge-ws-2",
            "timestamp": day}),
        );
        push(
            serde_json::json!({"type": "alias", "userId": "eu4", "previousId": "ea9",
            "timestamp": day, "context": ws}),
        );
        push(
            serde_json::json!({"type": "track", "event": "Query Run", "userId": "eu5",
            "timestamp": day}),
        );
    }
    out
}

/// The daily rollup an import computes as it appends (`rollup_collect`) is, row for row and
/// type for type, the one SQL builds from the stored events, for the shipped models and every
/// signal kind; a model with a partial only SQL computes (property filters) and an event the
/// collector does not reproduce (a numeric page path) leave the rollup to SQL.
#[test]
fn a_collected_rollup_equals_the_sql_one() {
    let (mut events, _) = simulated_events(60, 31);
    events.extend(edge_events());
    let build = |model: &Model, collect: bool, events: &[upmarket_core::Event]| {
        let mut store = memory_store();
        if collect {
            store.collect_derived(model).unwrap();
        }
        for batch in events.chunks(7_000) {
            store.append(batch).unwrap();
        }
        store.flush().unwrap();
        let done = store.prepare_derived(model).unwrap();
        (store, done.rollup_collected)
    };
    for (model, level) in every_model_at_both_levels() {
        if level == "company" {
            continue; // levels share the rollup
        }
        let filtered = model.name == "kinds";
        let (collected, used) = build(&model, true, &events);
        let (built, _) = build(&model, false, &events);
        assert_eq!(used, !filtered, "{}: collected", model.name);
        let c = collected.sql_connection().unwrap();
        let table: String = crate::column::<String>(&c, "SELECT name FROM rollups")[0].clone();
        let (rows, types) = rollup_rows(&c, &table);
        let expected = rollup_rows(&built.sql_connection().unwrap(), &table);
        assert!(rows.len() > 1_000, "{}: {} rows", model.name, rows.len());
        assert_eq!(types, expected.1, "{}", model.name);
        assert_eq!(rows, expected.0, "{}", model.name);
    }
    // A page path that is a number: DuckDB's text of it is not reproduced, SQL builds it.
    let default = &every_model_at_both_levels()[0].0;
    let mut odd = events.clone();
    odd.push(crate::ev(
        serde_json::json!({"type": "page", "name": "x", "userId": "eu1",
        "messageId": "odd", "properties": {"path": 7}, "context": {"groupId": "edge-ws"},
        "timestamp": "2026-05-02T00:00:00Z"}),
    ));
    let (store, used) = build(default, true, &odd);
    assert!(!used, "the odd path leaves the rollup to SQL");
    let c = store.sql_connection().unwrap();
    let table: String = crate::column::<String>(&c, "SELECT name FROM rollups")[0].clone();
    let (built, _) = build(default, false, &odd);
    assert_eq!(
        rollup_rows(&c, &table),
        rollup_rows(&built.sql_connection().unwrap(), &table)
    );
}

/// An import into a store whose rollup covers every stored event adds the collected rows to
/// it; into a store with events the rollup does not cover, SQL extends it. Scoring from the
/// rollup equals scoring raw events either way.
#[test]
fn a_collected_rollup_extends_the_rollup_it_follows() {
    use upmarket_store::scoring::measure_with;
    let (events, cfg) = simulated_events(80, 37);
    let model = every_model_at_both_levels().remove(0).0;
    let (first, second) = events.split_at(events.len() / 2);
    let mut store = memory_store();
    store.collect_derived(&model).unwrap();
    store.append(first).unwrap();
    assert!(store.prepare_derived(&model).unwrap().rollup_collected);
    store.collect_derived(&model).unwrap();
    store.append(second).unwrap();
    assert!(
        store.prepare_derived(&model).unwrap().rollup_collected,
        "extends the rollup it follows"
    );
    let conn = store.sql_connection().unwrap();
    let as_of = (cfg.start + chrono::Days::new(200))
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let rolled = measure_with(&conn, &model, as_of, None, true).unwrap();
    assert_eq!(
        rolled,
        measure_with(&conn, &model, as_of, None, false).unwrap()
    );
    assert!(rolled.len() > 20);

    // Events the rollup does not cover (no collection), then an import: SQL's part.
    let mut store = memory_store();
    store.append(first).unwrap();
    store.prepare_derived(&model).unwrap();
    store.append(&second[..10]).unwrap();
    store.collect_derived(&model).unwrap();
    store.append(&second[10..]).unwrap();
    assert!(!store.prepare_derived(&model).unwrap().rollup_collected);
    let conn = store.sql_connection().unwrap();
    assert_eq!(
        measure_with(&conn, &model, as_of, None, true).unwrap(),
        measure_with(&conn, &model, as_of, None, false).unwrap()
    );
}

/// The account rows an import builds from rows collected as it appends are, row for row and
/// with the same registry entry, the ones SQL builds from the stored events; re-scoring reads
/// them as before.
#[test]
fn collected_account_rows_equal_the_sql_ones() {
    let (mut events, _) = simulated_events(60, 41);
    events.extend(edge_events());
    let model = every_model_at_both_levels().remove(0).0;
    let build = |collect: bool| {
        let mut store = memory_store();
        if collect {
            store.collect_derived(&model).unwrap();
        }
        for batch in events.chunks(7_000) {
            store.append(batch).unwrap();
        }
        store.flush().unwrap();
        let done = store.prepare_derived(&model).unwrap();
        (store, done.account_rows_collected)
    };
    let (collected, used) = build(true);
    let (built, not_used) = build(false);
    assert!(used && !not_used);
    let dump = |store: &upmarket_store::DuckDbStore| {
        let c = store.sql_connection().unwrap();
        let base: String =
            crate::column::<String>(&c, "SELECT name FROM account_row_tables")[0].clone();
        let mut out = Vec::new();
        for table in [base.clone(), format!("{base}_ids"), format!("{base}_delta")] {
            out.push(crate::column::<String>(
                &c,
                &format!("SELECT CAST(r AS VARCHAR) FROM (SELECT * FROM {table}) r ORDER BY ALL"),
            ));
        }
        out.push(crate::column::<String>(
            &c,
            "SELECT concat_ws(' ', name, base_through_seq, through_seq, delta_runs, kept_from)
             FROM account_row_tables",
        ));
        out
    };
    let (a, b) = (dump(&collected), dump(&built));
    assert!(a[0].len() > 5_000, "{} rows", a[0].len());
    assert!(!a[1].is_empty(), "group-less rows");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.len(), y.len());
        for (r, s) in x.iter().zip(y) {
            assert_eq!(r, s);
        }
    }
}

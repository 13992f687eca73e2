//! `kill -9` during sustained load: every event that got a 200 is there exactly once after a
//! restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use upmarket_store::Store;

use crate::{open_store, Server, WRITE_KEY};

fn batch_body(client: usize, n: usize, size: usize) -> (String, Vec<String>) {
    let ids: Vec<String> = (0..size)
        .map(|i| format!("crash-{client}-{n}-{i}"))
        .collect();
    let events: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"type":"track","event":"Report Created","userId":format!("u{client}"),"messageId":id,"properties":{"n":n}}))
        .collect();
    (
        serde_json::json!({ "batch": events, "writeKey": WRITE_KEY }).to_string(),
        ids,
    )
}

#[test]
fn acknowledged_events_survive_kill_9_exactly_once() {
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(work.path());
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (url, acked, stop) = (server.url.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                // Bounded: at most 2,000 requests per client, and it stops when the server dies.
                for n in 0..2000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (body, ids) = batch_body(client, n, 50);
                    match agent
                        .post(&format!("{url}/v1/batch"))
                        .header("Content-Type", "application/json")
                        .send(body.as_bytes())
                    {
                        Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    // Let the load run, then pull the plug.
    std::thread::sleep(Duration::from_millis(2500));
    let data_dir = server.kill9();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 500,
        "the load produced only {} acknowledged events",
        acked.len()
    );
    // The acknowledged events not yet in DuckDB at the kill are in the ingest journal; the
    // store replays it when it opens (the events DuckDB has already are not stored twice).
    let journal = data_dir.join(upmarket_store::journal::JOURNAL_DIR);
    assert!(
        !upmarket_store::journal::segments(&journal)
            .unwrap()
            .is_empty(),
        "a killed server leaves its journal"
    );
    let store = open_store(&data_dir);
    assert!(
        upmarket_store::journal::segments(&journal)
            .unwrap()
            .is_empty(),
        "the journal is replayed and removed at open"
    );
    let counts = store.reader().unwrap().message_counts(&acked).unwrap();
    let missing: Vec<_> = acked.iter().filter(|id| counts[*id] == 0).take(5).collect();
    let doubled: Vec<_> = acked.iter().filter(|id| counts[*id] > 1).take(5).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(doubled.is_empty(), "stored twice: {doubled:?}");
    eprintln!(
        "{} acknowledged events all present exactly once after kill -9",
        acked.len()
    );
}

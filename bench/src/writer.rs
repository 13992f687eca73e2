//! The writer alone: `Store::append_prepared` in commits of N events on a fresh store, the
//! events parsed and prepared beforehand (untimed), identity deferred as the server does
//! (`ingest.identity_flush_ms`, 250 ms by default). Set
//! beside DuckDB's own commits of the same size (`load-json --shape upmarket --commit-events N`)
//! it shows what upmarket's write path adds to DuckDB's.

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use upmarket_core::segment::{parse_event, BatchDefaults, ParseContext};
use upmarket_core::{FreeMailDomains, IngestSource};
use upmarket_store::{DuckDbStore, PreparedEvent, Store};

/// Appends the events of `events` to a fresh store in `dir` (emptied); prints a table row.
pub fn run(
    events: &Path,
    dir: &Path,
    commit_events: usize,
    identity_delay_ms: u64,
) -> anyhow::Result<()> {
    let ctx = ParseContext {
        received_at: chrono::Utc::now(),
        source: IngestSource::Segment,
        max_event_bytes: 32 * 1024,
        trust_received_at: false,
    };
    let file = std::io::BufReader::new(std::fs::File::open(events)?);
    let parsing = Instant::now();
    let mut prepared = Vec::new();
    for line in file.lines() {
        let e = parse_event(&line?, None, &BatchDefaults::default(), &ctx)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        prepared.push(PreparedEvent::new(e));
    }
    let parse_secs = parsing.elapsed().as_secs_f64();
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let mut store = DuckDbStore::open(dir, &FreeMailDomains::default())?;
    store.defer_identity(Duration::from_millis(identity_delay_ms));
    let started = Instant::now();
    for chunk in prepared.chunks(commit_events.max(1)) {
        store.append_prepared(&chunk.iter().collect::<Vec<_>>())?;
    }
    let appended = started.elapsed().as_secs_f64();
    store.flush()?;
    let secs = started.elapsed().as_secs_f64();
    let n = prepared.len();
    println!(
        "| writer alone | {n} events, commits of {commit_events}, identity every {identity_delay_ms} ms | {:.0} ev/s ({secs:.1} s; appending {appended:.1} s, last identity write {:.1} s) | parsing and preparing beforehand (one thread, untimed above): {parse_secs:.1} s |",
        n as f64 / secs,
        secs - appended
    );
    Ok(())
}

//! Incremental re-scoring: a background thread that, every few seconds, finds the accounts that
//! new events touched, re-scores them as of now, saves their current score and today's history,
//! and records tier changes. At start it scores every account once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use upmarket_core::model::Model;
use upmarket_store::{StoreError, StoreSession};

use crate::Backlog;

/// Scores every account as of `as_of` and saves current scores and that day's history.
pub fn score_all(
    session: &dyn StoreSession,
    model: &Model,
    as_of: chrono::NaiveDateTime,
) -> Result<usize, StoreError> {
    let scores = session.score_accounts(model, as_of, None)?;
    session.save_current_scores(model, as_of, &scores)?;
    session.save_history(model, as_of.date(), &scores)?;
    Ok(scores.len())
}

/// Re-scores the accounts touched since `after_seq`; returns the new watermark. `clock` is the
/// time the previous pass scored at: a pass never scores at an earlier time (scores, history
/// and tier changes move forward only), and it is moved to this pass's time.
pub fn rescore_touched(
    session: &dyn StoreSession,
    model: &Model,
    after_seq: i64,
    clock: &mut chrono::NaiveDateTime,
) -> Result<(usize, i64), StoreError> {
    let (touched, newest) = session.touched_accounts(model.level, after_seq)?;
    if touched.is_empty() {
        return Ok((0, newest));
    }
    let now = session.scoring_clock()?.max(*clock);
    *clock = now;
    let scores = session.score_accounts(model, now, Some(&touched))?;
    let changes = session.save_current_scores(model, now, &scores)?;
    session.save_history(model, now.date(), &scores)?;
    for c in &changes {
        tracing::info!(account = %c.account_id, from = ?c.from_tier, to = %c.to_tier, score = c.score, "tier change");
    }
    Ok((scores.len(), newest))
}

/// Runs until `stop` is set.
pub fn run(
    session: Box<dyn StoreSession>,
    model: Arc<Model>,
    interval: Duration,
    ingest: &Backlog,
    stop: Arc<AtomicBool>,
) {
    lower_priority();
    let started = Instant::now();
    let mut clock = match session.scoring_clock() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "rescorer cannot read the store");
            return;
        }
    };
    let mut watermark = match session.touched_accounts(model.level, i64::MAX) {
        Ok((_, newest)) => newest,
        Err(e) => {
            tracing::error!(error = %e, "rescorer cannot read the store");
            return;
        }
    };
    match score_all(session.as_ref(), &model, clock) {
        Ok(n) => tracing::info!(
            accounts = n,
            ms = started.elapsed().as_millis() as u64,
            "scored all accounts"
        ),
        Err(e) if stop.load(Ordering::Relaxed) => ended_by_shutdown(&e),
        Err(e) => tracing::error!(error = %e, "initial scoring failed"),
    }
    let mut next = Instant::now() + interval;
    let mut saturated = Saturation::default();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // While ingestion keeps the store far behind, passes wait (up to MAX_DEFER): the
        // machine's CPU goes to storing what was acknowledged.
        let deferred = saturated.observe(ingest.is_saturated(), now) && now < next + MAX_DEFER;
        if now < next || deferred {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        next = now + interval;
        let pass = Instant::now();
        match rescore_touched(session.as_ref(), &model, watermark, &mut clock) {
            Ok((n, newest)) => {
                if n > 0 {
                    let ms = pass.elapsed().as_millis() as u64;
                    tracing::debug!(accounts = n, ms, "re-scored");
                }
                watermark = newest;
            }
            Err(e) if stop.load(Ordering::Relaxed) => ended_by_shutdown(&e),
            Err(e) => tracing::error!(error = %e, "re-scoring failed"),
        }
        // Under a heavy stream (a backfill over HTTP) every pass finds many touched accounts
        // and takes longer: waiting at least three times a pass's length keeps the re-scorer
        // to a quarter of a core, so it cannot starve the writer (on 2 cores it had taken a
        // third of the machine during a bulk load). Scores then lag by a few passes' length.
        next = next.max(Instant::now() + pass.elapsed() * DUTY_WAIT);
    }
}

/// A pass that a stopping server interrupted (see `serve`): expected, not an error.
fn ended_by_shutdown(e: &StoreError) {
    tracing::info!(error = %e, "re-scoring pass ended by the shutdown");
}

/// Longest a due pass waits while the store lags behind ingestion (a saturating load, such as
/// a backfill over HTTP): scores then lag by up to this much. Measured on 2 cores, 32 HTTP
/// clients, 1M events: passes during the load took 4.4 s for 411 accounts and, with DuckDB's
/// worker threads (which run its queries at normal priority, whatever the re-scorer's nice
/// value), about a quarter of the machine; events reached DuckDB at 155–166k events/s with
/// them and 179–194k without.
pub const MAX_DEFER: Duration = Duration::from_secs(60);

/// How long after the store was last seen lagging far behind ingestion a due pass still waits.
/// Under a saturating load the backlog rises above half the room and falls below it again
/// with every transaction of the applier (a row group at a time), so a pass that waited only
/// while it was above started in the first dip: in `perf` over 35 s of a 10M-event HTTP load
/// the re-scorer's thread still had 12% of the machine's samples (and DuckDB's worker threads,
/// which run its queries, 18%); with this memory, ~0%. A load that the store keeps up with
/// never reaches half the room, and its passes run on time.
pub const SATURATION_MEMORY: Duration = Duration::from_secs(2);

/// Whether ingestion saturated the store within the last [`SATURATION_MEMORY`].
#[derive(Debug, Default)]
struct Saturation {
    last_seen: Option<Instant>,
}

impl Saturation {
    /// Records whether the store lags far behind ingestion at `now`; true when it did within
    /// the last [`SATURATION_MEMORY`].
    fn observe(&mut self, saturated: bool, now: Instant) -> bool {
        if saturated {
            self.last_seen = Some(now);
        }
        self.last_seen
            .is_some_and(|t| now.saturating_duration_since(t) < SATURATION_MEMORY)
    }
}

/// After a pass, the re-scorer waits at least this many times the pass's length.
pub const DUTY_WAIT: u32 = 3;

/// The re-scorer's nice value: background work, below the writer and the request handlers
/// (the lowest priority: 32 HTTP clients on 2 cores, 1M events: 89–102k events/s at 10,
/// 96–104k at 19).
pub const NICE: i32 = 19;

/// Gives the calling thread (the re-scorer) a lower scheduling priority, so that on a busy
/// machine ingestion gets the CPU first and re-scoring takes what is left; on an idle one
/// nothing changes. Measured on 2 cores, 32 HTTP clients: during a bulk load the re-scorer
/// had taken 22% of the machine's CPU (one pass of 327 accounts lasted 3 s, planning its
/// queries' IN lists above all) against the writer's 38%. Linux only (there a nice value is
/// per thread); elsewhere, and if the call fails, the thread keeps the default priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take and return plain integers; no memory is shared.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE)
        };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "could not lower the re-scorer's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_is_remembered_for_a_while_then_forgotten() {
        let start = Instant::now();
        let mut s = Saturation::default();
        assert!(!s.observe(false, start), "never saturated");
        assert!(s.observe(true, start));
        // The backlog dips below half between the applier's transactions: still saturated.
        let dip = start + SATURATION_MEMORY / 2;
        assert!(s.observe(false, dip));
        assert!(
            !s.observe(false, start + SATURATION_MEMORY),
            "quiet long enough"
        );
        assert!(s.observe(true, start + SATURATION_MEMORY * 3));
    }
}

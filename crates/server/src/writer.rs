//! The single writer, in two threads.
//!
//! The **writer** thread takes request batches from a bounded queue, drains whatever is queued
//! into one group (group commit), decides each event's fate against the key of every stored
//! or accepted event (a retried messageId is a duplicate), writes the group's new events to
//! the ingest journal as one record with one `fdatasync`
//! ([`upmarket_store::journal`]), and answers each request: a 200 means on disk. It then hands
//! the events to the applier.
//!
//! The **applier** thread owns the store: it appends whatever has been journaled since its
//! last transaction, up to one DuckDB row group, in one transaction, and deletes journal
//! segments DuckDB holds completely. So a commit's size follows the backlog, not the number
//! of requests in flight: with 32 closed-loop SDK clients of 100 events each, at most 3,200
//! events wait at any moment, and DuckDB's fixed cost per commit made that the bottleneck
//! (BENCHMARKS.md). Events reach readers a moment after their 200 (one apply: milliseconds when
//! idle, up to a row group's append under load). After a crash the store replays the journal
//! when it opens; deduplication makes the replay exactly-once.
//!
//! A store without a journal (in memory) gets the same two threads, but the applier answers
//! the requests after its commit, and a failed commit gives the keys back and fails them.
//!
//! Backpressure: at most `max_unapplied_events` accepted events may wait for the applier
//! (they are in memory). A request waits up to a second for room, then gets 429; so does one
//! that finds the queue full. A failed apply of journaled events is retried (they were
//! acknowledged) until the server stops; what is left stays in the journal for the next start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, Semaphore};
use upmarket_core::Event;
use upmarket_store::journal::{self, Journal};
use upmarket_store::{
    AppendStatus, PreparedEvent, Store, StoreError, StoredKeys, ROW_GROUP_EVENTS,
};

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The queue is full or too many events wait for the store: the client should retry
    /// later (HTTP 429).
    #[error("writer queue is full")]
    Saturated,
    /// The writer has stopped (shutdown).
    #[error("writer has stopped")]
    Stopped,
    /// The journal or the store failed; nothing of the request was stored.
    #[error("store failed: {0}")]
    Store(String),
}

/// How much the writer takes on.
#[derive(Debug, Clone, Copy)]
pub struct WriterLimits {
    /// Requests that may wait in the queue.
    pub queue_depth: usize,
    /// Most events in one group commit (one journal record).
    pub max_commit_events: usize,
    /// Most accepted events waiting for the store.
    pub max_unapplied_events: usize,
}

type Reply = Result<Vec<AppendStatus>, WriteError>;

struct Request {
    events: Vec<PreparedEvent>,
    /// Permits of [`WriterHandle::room`] the request holds.
    permits: usize,
    reply: oneshot::Sender<Reply>,
}

/// New events on their way to the store.
struct Accepted {
    events: Vec<PreparedEvent>,
    /// Permits of [`WriterHandle::room`] given back once they are stored.
    permits: usize,
    /// The journal segment holding them (journaled), or the requests to answer after the
    /// commit, with their statuses (not journaled).
    after: After,
}

enum After {
    Journaled(u64),
    Answer(Vec<(oneshot::Sender<Reply>, Vec<AppendStatus>)>),
}

/// The handlers' side of the writer. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    queue: SyncSender<Request>,
    /// One permit per event that may wait for the store (`max_unapplied_events`).
    room: Arc<Semaphore>,
    max_unapplied: usize,
}

/// A view of the events waiting for the store, for background work that should yield to
/// ingestion. Unlike a [`WriterHandle`], it does not keep the writer running.
#[derive(Clone)]
pub struct Backlog {
    room: Arc<Semaphore>,
    max_unapplied: usize,
}

impl Backlog {
    /// Accepted events not yet in the store (with those of requests between acceptance and
    /// the journal).
    pub fn waiting_events(&self) -> usize {
        self.max_unapplied
            .saturating_sub(self.room.available_permits())
    }

    /// Whether the store lags far behind ingestion: at least half of `max_unapplied_events`
    /// wait for it. Background work (re-scoring) waits while it does.
    pub fn is_saturated(&self) -> bool {
        self.waiting_events() >= self.max_unapplied.div_ceil(2)
    }
}

/// How long a request waits for room among the events waiting for the store before it gets
/// 429. Waiting instead of refusing at once keeps closed-loop clients (SDKs flushing their
/// queue) from sending, and the server from parsing, the same events again and again.
const ROOM_WAIT: Duration = Duration::from_secs(1);

/// Starts the writer and applier threads on `store`. Reads the keys of the stored events
/// first (deduplication; ~1 s per 10M events) and opens a new journal segment when the store
/// keeps a journal. The handle joins both threads once every [`WriterHandle`] is gone.
pub fn spawn_writer(
    mut store: Box<dyn Store>,
    limits: WriterLimits,
) -> Result<(WriterHandle, JoinHandle<()>), StoreError> {
    let keys = Arc::new(Mutex::new(store.take_stored_keys()?));
    let journal = store
        .journal_dir()
        .map(|d| Journal::create(&d))
        .transpose()?;
    let room = Arc::new(Semaphore::new(limits.max_unapplied_events));
    let (tx, rx) = sync_channel(limits.queue_depth);
    let (to_applier, from_writer) = channel();
    let writer_done = Arc::new(AtomicBool::new(false));
    let applier = {
        let (keys, room, done) = (keys.clone(), room.clone(), writer_done.clone());
        let dir = journal.as_ref().map(|j| j.dir().to_path_buf());
        spawn("upmarket-applier", move || {
            Applier {
                store,
                keys,
                room,
                journal_dir: dir,
                writer_done: done,
            }
            .run(from_writer)
        })?
    };
    let writer = Writer {
        keys,
        journal,
        room: room.clone(),
        to_applier,
        max_commit_events: limits.max_commit_events,
    };
    let thread = spawn("upmarket-writer", move || {
        writer.run(rx);
        writer_done.store(true, Ordering::Release);
        if applier.join().is_err() {
            tracing::error!("the applier thread panicked");
        }
        tracing::info!("writer stopped");
    })?;
    let handle = WriterHandle {
        queue: tx,
        room,
        max_unapplied: limits.max_unapplied_events,
    };
    Ok((handle, thread))
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|source| StoreError::Thread {
            name: name.into(),
            source,
        })
}

impl WriterHandle {
    /// How far the store lags behind ingestion.
    pub fn backlog(&self) -> Backlog {
        Backlog {
            room: self.room.clone(),
            max_unapplied: self.max_unapplied,
        }
    }

    /// Queues `events` and waits until they are durable. Returns one status per event.
    pub async fn write(&self, events: Vec<Event>) -> Result<Vec<AppendStatus>, WriteError> {
        // A request larger than the whole room waits for all of it.
        let permits = events.len().min(self.max_unapplied);
        let wanted = u32::try_from(permits).map_err(|_| WriteError::Saturated)?;
        match tokio::time::timeout(ROOM_WAIT, self.room.acquire_many(wanted)).await {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => return Err(WriteError::Stopped),
            Err(_) => return Err(WriteError::Saturated),
        }
        let events = PreparedEvent::all(events);
        let (reply, answer) = oneshot::channel();
        let request = Request {
            events,
            permits,
            reply,
        };
        let refused = match self.queue.try_send(request) {
            Ok(()) => None,
            Err(TrySendError::Full(_)) => Some(WriteError::Saturated),
            Err(TrySendError::Disconnected(_)) => Some(WriteError::Stopped),
        };
        if let Some(err) = refused {
            self.room.add_permits(permits);
            return Err(err);
        }
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

struct Writer {
    keys: Arc<Mutex<StoredKeys>>,
    journal: Option<Journal>,
    room: Arc<Semaphore>,
    to_applier: Sender<Accepted>,
    max_commit_events: usize,
}

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            let mut total = group[0].events.len();
            while total < self.max_commit_events {
                match rx.try_recv() {
                    Ok(next) => {
                        total += next.events.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
    }

    /// Claims the group's keys, journals its new events and answers (or leaves the answer to
    /// the applier), then hands the new events on.
    fn commit(&mut self, group: Vec<Request>) {
        let mut fresh = Vec::new();
        let mut answers = Vec::with_capacity(group.len());
        // Permits held for the new events; those of duplicates are given back now.
        let (mut held, mut spare) = (0, 0);
        {
            let mut keys = lock(&self.keys);
            for r in group {
                let statuses: Vec<AppendStatus> = r
                    .events
                    .iter()
                    .map(|p| {
                        if keys.claim(p.key()) {
                            AppendStatus::Stored
                        } else {
                            AppendStatus::Duplicate
                        }
                    })
                    .collect();
                let before = fresh.len();
                for (p, s) in r.events.into_iter().zip(&statuses) {
                    if *s == AppendStatus::Stored {
                        fresh.push(p);
                    }
                }
                let keep = r.permits.min(fresh.len() - before);
                held += keep;
                spare += r.permits - keep;
                answers.push((r.reply, statuses));
            }
        }
        self.room.add_permits(spare);
        let Some(journal) = &mut self.journal else {
            self.hand_on(fresh, held, After::Answer(answers));
            return;
        };
        let started = std::time::Instant::now();
        let written = if fresh.is_empty() {
            Ok(None)
        } else {
            journal.append(&fresh.iter().collect::<Vec<_>>()).map(Some)
        };
        match written {
            Ok(segment) => {
                tracing::debug!(
                    events = fresh.len(),
                    requests = answers.len(),
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "journaled"
                );
                for (reply, statuses) in answers {
                    let _ = reply.send(Ok(statuses));
                }
                if let Some(segment) = segment {
                    self.hand_on(fresh, held, After::Journaled(segment));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, events = fresh.len(), "journal write failed");
                release(&self.keys, &fresh);
                self.room.add_permits(held);
                for (reply, _) in answers {
                    let _ = reply.send(Err(WriteError::Store(err.to_string())));
                }
            }
        }
    }

    fn hand_on(&self, events: Vec<PreparedEvent>, permits: usize, after: After) {
        let accepted = Accepted {
            events,
            permits,
            after,
        };
        if let Err(lost) = self.to_applier.send(accepted) {
            // The applier is gone (it panicked): journaled events wait for the next start.
            tracing::error!("the applier has stopped; events not applied");
            if let After::Answer(answers) = lost.0.after {
                for (reply, _) in answers {
                    let _ = reply.send(Err(WriteError::Stopped));
                }
            }
        }
    }
}

fn lock(keys: &Mutex<StoredKeys>) -> std::sync::MutexGuard<'_, StoredKeys> {
    // A panic while holding the lock cannot leave the set half-changed (one insert or remove
    // at a time), so a poisoned lock is still usable.
    keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn release(keys: &Mutex<StoredKeys>, events: &[PreparedEvent]) {
    let mut keys = lock(keys);
    for p in events {
        keys.release(p.key());
    }
}

/// How long the applier waits for work before it writes deferred data (identity facts).
const IDLE_FLUSH: Duration = Duration::from_millis(20);
/// How long ingestion must pause before the applier checkpoints DuckDB (moves its write-ahead
/// log into the database file), and how often it asks again while DuckDB declines (a
/// re-scoring pass running). Transactions smaller than a row group go through the log, which
/// DuckDB itself checkpoints only at 1 GB (`CHECKPOINT_THRESHOLD`): after a 10M-event load the
/// log held ~140 MB, which a stopping server then spent 4–7 s writing into the file, and which
/// a restart after a crash would replay.
const IDLE_CHECKPOINT_AFTER: Duration = Duration::from_secs(5);
/// The smallest log worth a checkpoint when idle (DuckDB's own default threshold).
const IDLE_CHECKPOINT_MIN_BYTES: u64 = 16 * 1024 * 1024;
/// The first wait before a failed apply of journaled events is retried; doubled up to 30 s.
const RETRY_FIRST: Duration = Duration::from_millis(250);

struct Applier {
    store: Box<dyn Store>,
    keys: Arc<Mutex<StoredKeys>>,
    room: Arc<Semaphore>,
    journal_dir: Option<std::path::PathBuf>,
    writer_done: Arc<AtomicBool>,
}

impl Applier {
    fn run(mut self, rx: Receiver<Accepted>) {
        let mut all_applied = true;
        let mut removed_before = 0;
        // When ingestion last did something, or the log was last looked at.
        let mut last_busy = std::time::Instant::now();
        loop {
            let first = match rx.recv_timeout(IDLE_FLUSH) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    self.flush();
                    if last_busy.elapsed() >= IDLE_CHECKPOINT_AFTER {
                        // A small log costs a file size lookup; a declined checkpoint is
                        // asked again this much later.
                        self.checkpoint();
                        last_busy = std::time::Instant::now();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            last_busy = std::time::Instant::now();
            let mut batch = vec![first];
            let mut total = batch[0].events.len();
            while total < ROW_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(next) => {
                        total += next.events.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            let journaled_through = batch.iter().rev().find_map(|a| match a.after {
                After::Journaled(segment) => Some(segment),
                After::Answer(_) => None,
            });
            all_applied &= self.apply(batch);
            if all_applied {
                // Every segment before this batch's last one is in the store.
                if let (Some(dir), Some(last)) = (&self.journal_dir, journaled_through) {
                    if last > removed_before {
                        match journal::remove_before(dir, last) {
                            Ok(()) => removed_before = last,
                            Err(err) => {
                                tracing::warn!(error = %err, "removing applied journal segments failed")
                            }
                        }
                    }
                }
            }
        }
        self.flush();
        // What the log holds would otherwise be moved when DuckDB closes, on as few threads as
        // `server.duckdb_threads` says (a checkpoint asked for here uses every core).
        self.checkpoint();
        if let (Some(dir), true) = (&self.journal_dir, all_applied) {
            // The writer has stopped: every journaled event is in the store.
            if let Err(err) = journal::remove_before(dir, u64::MAX) {
                tracing::warn!(error = %err, "removing the applied journal failed");
            }
        }
    }

    /// One transaction for `batch`; answers the requests waiting for it. Journaled events are
    /// retried until they are stored or the writer has stopped. Whether they were stored (once
    /// journaled events were not, no journal segment is removed before the next start).
    fn apply(&mut self, batch: Vec<Accepted>) -> bool {
        let events: Vec<&PreparedEvent> = batch.iter().flat_map(|a| a.events.iter()).collect();
        let journaled = matches!(batch[0].after, After::Journaled(_));
        let mut wait = RETRY_FIRST;
        let started = std::time::Instant::now();
        let result = loop {
            match self.store.append_unique(&events) {
                Ok(()) => break Ok(()),
                Err(err) if journaled && !self.writer_done.load(Ordering::Acquire) => {
                    tracing::error!(error = %err, events = events.len(), retry_ms = wait.as_millis() as u64, "storing journaled events failed; retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(err) => break Err(err),
            }
        };
        tracing::debug!(
            events = events.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "applied"
        );
        let n = events.len();
        drop(events);
        let permits = batch.iter().map(|a| a.permits).sum();
        match result {
            Ok(()) => {
                self.room.add_permits(permits);
                for a in batch {
                    if let After::Answer(answers) = a.after {
                        for (reply, statuses) in answers {
                            let _ = reply.send(Ok(statuses));
                        }
                    }
                }
                true
            }
            Err(err) if journaled => {
                tracing::error!(error = %err, events = n, "journaled events not stored; they are stored at the next start");
                false
            }
            Err(err) => {
                tracing::error!(error = %err, events = n, "commit failed");
                self.room.add_permits(permits);
                for a in batch {
                    release(&self.keys, &a.events);
                    if let After::Answer(answers) = a.after {
                        for (reply, _) in answers {
                            let _ = reply.send(Err(WriteError::Store(err.to_string())));
                        }
                    }
                }
                false
            }
        }
    }

    fn flush(&mut self) {
        if let Err(err) = self.store.flush() {
            tracing::error!(error = %err, "writing deferred data failed");
        }
    }

    /// Checkpoints the store if its log is large enough.
    fn checkpoint(&mut self) {
        if let Err(err) = self.store.checkpoint(IDLE_CHECKPOINT_MIN_BYTES) {
            tracing::warn!(error = %err, "checkpoint failed");
        }
    }
}

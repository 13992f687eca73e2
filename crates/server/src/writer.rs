//! The single writer. One thread owns the store's writing handle; request handlers hand it
//! batches through a bounded queue and wait for the commit. It drains whatever is queued into
//! one transaction (group commit), so many small requests cost one fsync, and it answers each
//! request only after that transaction committed: a 200 means durable. When no request has come
//! for a moment, and before it stops, it lets the store write what it deferred.
//!
//! The writer thread is the ingestion bottleneck, so it does nothing a handler can do: events
//! arrive prepared (keys computed: [`PreparedEvent`]) and go back with the answer, to be freed
//! on the handler's thread.
//!
//! It does not wait for more requests before committing: with 32 closed-loop clients the
//! commits alternate between two halves of them (1,600 events each, while the other half's
//! requests are being sent and parsed). Waiting up to 2–4 ms for more made the commits twice as
//! large but throughput fell (168k → 120–129k events/s): the two cores then parse and commit
//! in turn instead of at once.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;
use upmarket_core::Event;
use upmarket_store::{AppendStatus, PreparedEvent, Store};

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The queue is full: the client should retry later (HTTP 429).
    #[error("writer queue is full")]
    Saturated,
    /// The writer has stopped (shutdown).
    #[error("writer has stopped")]
    Stopped,
    /// The store failed; nothing of the transaction was committed.
    #[error("store failed: {0}")]
    Store(String),
}

/// What the writer answers: one status per event, and the events themselves (freed by the
/// receiver, not by the writer).
type Reply = Result<(Vec<AppendStatus>, Vec<PreparedEvent>), WriteError>;

struct Request {
    events: Vec<PreparedEvent>,
    reply: oneshot::Sender<Reply>,
}

/// The handlers' side of the writer. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    queue: SyncSender<Request>,
}

/// Starts the writer thread. `queue_depth` requests may wait; beyond that, submissions get
/// [`WriteError::Saturated`]. One commit holds at most `max_commit_events` events (a single
/// larger request is still committed whole).
pub fn spawn_writer(
    store: Box<dyn Store>,
    queue_depth: usize,
    max_commit_events: usize,
) -> (WriterHandle, JoinHandle<()>) {
    let (tx, rx) = sync_channel(queue_depth);
    let thread = std::thread::Builder::new()
        .name("upmarket-writer".into())
        .spawn(move || run(store, rx, max_commit_events))
        .expect("spawning the writer thread");
    (WriterHandle { queue: tx }, thread)
}

impl WriterHandle {
    /// Queues `events` and waits until they are committed. Returns one status per event.
    pub async fn write(&self, events: Vec<Event>) -> Result<Vec<AppendStatus>, WriteError> {
        let events = PreparedEvent::all(events);
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Request { events, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(WriteError::Saturated),
            Err(TrySendError::Disconnected(_)) => return Err(WriteError::Stopped),
        }
        let (statuses, events) = answer.await.map_err(|_| WriteError::Stopped)??;
        drop(events);
        Ok(statuses)
    }
}

/// How long the writer waits for work before it writes deferred data (identity facts).
const IDLE_FLUSH: Duration = Duration::from_millis(20);

fn flush(store: &mut dyn Store) {
    if let Err(err) = store.flush() {
        tracing::error!(error = %err, "writing deferred data failed");
    }
}

fn run(mut store: Box<dyn Store>, rx: Receiver<Request>, max_commit_events: usize) {
    loop {
        let first = match rx.recv_timeout(IDLE_FLUSH) {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) => {
                flush(store.as_mut());
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group = vec![first];
        let mut total = group[0].events.len();
        while total < max_commit_events {
            match rx.try_recv() {
                Ok(next) => {
                    total += next.events.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        // One commit for the whole group; the events stay in their requests (borrowed, not
        // moved: they are a few hundred bytes each) and go back with the replies.
        let started = std::time::Instant::now();
        let all: Vec<&PreparedEvent> = group.iter().flat_map(|r| r.events.iter()).collect();
        let (appended, n) = (store.append_prepared(&all), all.len());
        drop(all);
        match appended {
            Ok(mut statuses) => {
                tracing::debug!(
                    events = n,
                    requests = group.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "committed"
                );
                // The statuses follow the requests' events in order: hand each request its
                // own, last request first.
                for r in group.into_iter().rev() {
                    let mine = statuses.split_off(statuses.len().saturating_sub(r.events.len()));
                    let _ = r.reply.send(Ok((mine, r.events)));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, events = n, "commit failed");
                for r in group {
                    let _ = r.reply.send(Err(WriteError::Store(err.to_string())));
                }
            }
        }
    }
    flush(store.as_mut());
    tracing::info!("writer stopped");
}

//! # upmarket-server
//!
//! The HTTP face of upmarket: the Segment / RudderStack Tracking API and PostHog capture
//! routes, the single writer that makes every acknowledged event durable, and configuration.
//!
//! What it refuses to do: validate events itself (it calls `upmarket-core`), or touch the
//! database directly (it goes through the `Store` trait of `upmarket-store`). The only place
//! where a `Result` becomes an HTTP response is [`error`].
#![deny(missing_docs)]

pub mod api;
pub mod config;
pub mod error;
pub mod ingest;
pub mod rescorer;
pub mod sessions;
pub mod writer;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use upmarket_core::EventKind;

pub use config::{Config, ConfigError, Overrides, RawConfig};
use error::ApiError;
pub use writer::{spawn_writer, Backlog, WriteError, WriterHandle, WriterLimits};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The single writer.
    pub writer: WriterHandle,
    /// Sessions for reads.
    pub sessions: sessions::SessionPool,
}

/// The whole HTTP application, ready to serve. Tests mount it in-process.
pub fn create_app(state: AppState) -> Router {
    let single = |kind: EventKind| {
        post(
            move |State(s): State<AppState>,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Body| {
                ingest::segment::single(kind, s, headers, body)
            },
        )
    };
    let capture = post(ingest::posthog::capture);
    Router::new()
        .route("/health", get(health))
        .route("/api/accounts", get(api::accounts))
        .route("/api/accounts/{id}", get(api::account))
        .route("/v1/track", single(EventKind::Track))
        .route("/v1/identify", single(EventKind::Identify))
        .route("/v1/group", single(EventKind::Group))
        .route("/v1/page", single(EventKind::Page))
        .route("/v1/screen", single(EventKind::Screen))
        .route("/v1/alias", single(EventKind::Alias))
        .route("/v1/batch", post(ingest::segment::batch))
        .route("/batch", capture.clone())
        .route("/batch/", capture.clone())
        .route("/capture", capture.clone())
        .route("/capture/", capture.clone())
        .route("/e", capture.clone())
        .route("/e/", capture.clone())
        .route("/i/v0/e", capture.clone())
        .route("/i/v0/e/", capture)
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// Liveness, and how many acknowledged events wait to reach the store (0 when it has all).
async fn health(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "waiting_events": s.writer.backlog().waiting_events(),
    }))
}

/// How long a stopping server waits for a re-scoring pass in progress, interrupting its
/// queries every [`SCORER_INTERRUPT_EVERY`] meanwhile.
const SCORER_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const SCORER_INTERRUPT_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs the server until Ctrl-C or SIGTERM, then lets the writer commit what it has and stops.
pub async fn serve(config: Config, store: Box<dyn upmarket_store::Store>) -> anyhow::Result<()> {
    let root = store.reader()?;
    let scorer_session = root.fork()?;
    let interrupt_scorer = scorer_session.interrupter();
    let (writer, writer_thread) = spawn_writer(store, config.writer_limits())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    tracing::info!(addr = %listener.local_addr()?, model = %config.model.name, version = config.model.version, "listening");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (scorer_done, scorer_stopped) = std::sync::mpsc::channel();
    {
        let (model, stop, ingest) = (config.model.clone(), stop.clone(), writer.backlog());
        let interval = std::time::Duration::from_secs(config.rescore_interval_secs);
        std::thread::Builder::new()
            .name("upmarket-rescorer".into())
            .spawn(move || {
                rescorer::run(scorer_session, model, interval, &ingest, stop);
                let _ = scorer_done.send(());
            })?;
    }
    let state = AppState {
        config: Arc::new(config),
        writer,
        sessions: sessions::SessionPool::new(root),
    };
    // On Ctrl-C or SIGTERM, the re-scorer is ended before the router (and with it every
    // writer handle) goes: a pass in progress only computes derived data, so its queries are
    // interrupted (what it had not saved is computed again at the next start), and its open
    // transaction no longer makes DuckDB decline the writer's last checkpoint (the server had
    // stopped after 2 s leaving 200 MB of write-ahead log to replay at the next start).
    let stopping = async move {
        shutdown_signal().await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Not a join on the runtime's blocking pool: dropping the runtime would wait for it.
        let waited = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + SCORER_STOP_WAIT;
            loop {
                interrupt_scorer();
                match scorer_stopped.recv_timeout(SCORER_INTERRUPT_EVERY) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                        if std::time::Instant::now() < deadline => {}
                    done => return done,
                }
            }
        })
        .await;
        if !matches!(waited, Ok(Ok(()))) {
            tracing::info!("stopping without waiting for the re-scoring pass in progress");
        }
    };
    axum::serve(listener, create_app(state))
        .with_graceful_shutdown(stopping)
        .await?;
    // The router (and with it every writer handle) is gone: the writer stores what waits and
    // stops.
    tokio::task::spawn_blocking(move || writer_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}

//! Store errors.

/// A failure of the storage layer. These are never the client's fault: the server maps them to
/// 5xx (or 429 when the writer is saturated) and logs the detail.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] duckdb::Error),
    /// The data directory could not be created or opened.
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading or writing the ingest journal failed.
    #[error("ingest journal {path}: {source}")]
    Journal {
        /// The journal's file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A thread of the writer could not be started.
    #[error("cannot start thread {name}: {source}")]
    Thread {
        /// The thread's name.
        name: String,
        /// The error.
        source: std::io::Error,
    },
    /// The database was written by a newer upmarket.
    #[error("database schema version {found} is newer than this upmarket understands ({supported}); upgrade upmarket")]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A schema migration that rewrites a table needs more free disk than there is.
    #[error("upgrading the store at {path} rewrites its events table once and needs about {needed_mb} MB free on its disk; {free_mb} MB are free. Free some space (or copy the data directory to a larger disk) and start again; nothing was changed")]
    NotEnoughDisk {
        /// The database file.
        path: String,
        /// Megabytes the migration needs.
        needed_mb: u64,
        /// Megabytes free.
        free_mb: u64,
    },
    /// The writer (a thread holding the store) stopped before taking this work; its own error
    /// says why.
    #[error("the store stopped accepting writes")]
    Stopped,
    /// A batch of `Store::append_prepared_many` not attempted: what the call needed first
    /// (reading the stored events' keys) failed, as the first batch's error says.
    #[error("not stored: an earlier batch of the same commit failed")]
    EarlierBatchFailed,
    /// A query returned a column of another type than its reader expects (a bug in upmarket).
    #[error("result column {column} has unexpected type {ty}")]
    UnexpectedColumn {
        /// The column's name.
        column: String,
        /// Its type as Arrow names it.
        ty: String,
    },
    /// A query returned NULL where its reader needs a value (a bug in upmarket).
    #[error("unexpected NULL: {0}")]
    UnexpectedNull(&'static str),
    /// Building a columnar batch of events failed (a bug in upmarket).
    #[error("cannot build an event batch: {0}")]
    Batch(#[from] duckdb::arrow::error::ArrowError),
    /// Serializing an event's JSON failed (cannot happen for values that came from JSON).
    #[error("cannot serialize event JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl StoreError {
    /// Whether a query was interrupted on purpose (`StoreSession::interrupter`), as opposed to
    /// failing.
    pub fn is_interrupt(&self) -> bool {
        matches!(self, StoreError::Database(e) if e.to_string().starts_with("INTERRUPT Error"))
    }
}

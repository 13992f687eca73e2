//! # upmarket-store
//!
//! Where upmarket keeps events and identity: the [`Store`] trait and its embedded backend on
//! DuckDB ([`DuckDbStore`]).
//!
//! The key design decision: identity is resolved when data is *read*, not when it is written.
//! The writer stores every event as it came, plus small identity tables (aliases, memberships,
//! users, workspaces); the views in [`schema`] join them at query time. So a membership
//! declared today applies to events that arrive later without rewriting any history, an
//! anonymous history joins its user as soon as an identify or alias arrives, and a change to the
//! free-mail list takes effect on the next read.
//!
//! What it refuses to do: parse or validate client JSON (that is `upmarket-core`'s job, done
//! before anything reaches a store), or speak HTTP. A store only accepts validated [`Event`]s.
#![deny(missing_docs)]

mod duckdb_store;
pub mod error;
mod identity_batch;
pub mod schema;
pub mod sql;
pub mod tabular;

use std::collections::HashMap;

pub use duckdb_store::DuckDbStore;
pub use error::StoreError;
use upmarket_core::Event;

/// What happened to one event handed to [`Store::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendStatus {
    /// Newly stored.
    Stored,
    /// Its messageId was already stored (a retry); nothing changed.
    Duplicate,
}

/// Counts of what a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Stored events.
    pub events: u64,
    /// Distinct people (after alias resolution) who sent events.
    pub people: u64,
    /// Workspaces (groups) seen.
    pub workspaces: u64,
    /// Companies (work-email domains) formed.
    pub companies: u64,
}

/// Who an event belongs to, after identity resolution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attribution {
    /// The canonical person (a userId, or an anonymousId never tied to one).
    pub person: String,
    /// The workspace the event counts for, if any.
    pub workspace_id: Option<String>,
    /// The company (domain) the event counts for, if any.
    pub company_id: Option<String>,
}

/// Storage for events and identity. The embedded default is [`DuckDbStore`]; a ClickHouse
/// backend will implement the same trait.
///
/// Writes go through one writer: `append` takes `&mut self`, and the server runs exactly one
/// task that owns the writing handle. Reads go through handles from [`Store::reader`].
pub trait Store: Send {
    /// Durably stores a batch in one transaction: when this returns `Ok`, every event is
    /// committed (or was already there). Returns one status per input event, in order.
    fn append(&mut self, events: &[Event]) -> Result<Vec<AppendStatus>, StoreError>;

    /// A handle for reading, usable from another thread.
    fn reader(&self) -> Result<Box<dyn StoreReader>, StoreError>;
}

/// Read access to a store.
pub trait StoreReader: Send {
    /// What the store holds.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Who the event with this messageId belongs to.
    fn attribution(&self, message_id: &str) -> Result<Option<Attribution>, StoreError>;

    /// How many stored rows carry each of these messageIds (0 when absent). Used to prove that
    /// an acknowledged event is stored exactly once.
    fn message_counts(&self, message_ids: &[String]) -> Result<HashMap<String, u64>, StoreError>;

    /// The canonical person behind any id (userId, anonymousId or alias).
    fn person_of(&self, id: &str) -> Result<String, StoreError>;

    /// The company of a workspace, if it has one.
    fn workspace_company(&self, workspace_id: &str) -> Result<Option<String>, StoreError>;
}

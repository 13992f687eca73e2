//! # upmarket-core
//!
//! The engine of upmarket, free of I/O: it turns the JSON that analytics SDKs send (Segment,
//! RudderStack, PostHog) into validated [`Event`]s, and holds the identity rules that say which
//! person, workspace and company an event belongs to.
//!
//! What it refuses to do: open files or sockets, spawn threads, know about HTTP or SQL. Storage
//! lives in `upmarket-store`, HTTP in `upmarket-server`; both call into this crate. Keeping it
//! pure is what lets the same validation run for the HTTP API, `upmarket import` and tests, and
//! what keeps scoring reproducible.
#![deny(missing_docs)]

pub mod error;
pub mod event;
pub mod identity;
mod json_object;
pub mod limits;
pub mod model;
pub mod posthog;
pub mod segment;
mod time;
mod wire;
mod wire_scan;

pub use error::EventError;
pub use event::{email_of, Event, EventKind, IngestSource, JsonObject};
pub use identity::FreeMailDomains;
pub use limits::IngestLimits;

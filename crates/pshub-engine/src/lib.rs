//! The durable runtime of pshub and its flows.
//!
//! An [`Engine`] owns the [`Hub`]: the in-memory view of reference data and the index of
//! entries, rebuilt from the store at start. Every inbound batch is parsed, deduplicated,
//! applied and committed in one store transaction before it is acknowledged; what goes to
//! other systems (invoice lines, which carry their own delivery, and outbox calls) is
//! delivered by [`Engine::deliver_due`].
//!
//! Invariants: this crate does no IO of its own (the store and the systems it posts to are
//! traits, implemented by other crates), has no async code, and never imports a database,
//! HTTP or broker crate.

pub mod config;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod engine;
pub mod error;
pub mod fingerprint;
pub mod hub;
pub mod index;
pub mod metrics;
pub mod ports;
pub mod retry;
pub mod rules;
pub mod store;
pub mod summary;
pub mod world;

pub use config::Config;
pub use engine::Engine;
pub use error::{ActionError, EngineError};
pub use hub::Hub;
pub use ports::{ErpError, ErpPort, LinePosting, ProjectPosting};
pub use store::Store;

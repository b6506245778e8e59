//! The durable runtime of pshub and its flows.
//!
//! An [`Engine`] owns the [`Hub`] (reference data as a cache of the store, and the flows that
//! act on accepted events), a writer thread that commits batches together, and one delivery
//! worker per target system that runs the flows' steps. A [`Store`] owns identity and
//! uniqueness: it allocates ids, refuses a commit that lost a race with another writer, and
//! leases due steps, so that any number of processes can share one store.
//!
//! Invariants: this crate does no IO of its own (the store and the systems it calls are
//! traits, implemented by other crates), has no async code, and never imports a database,
//! HTTP or broker crate.

pub mod amqp;
pub mod breaker;
pub mod catalog;
pub mod config;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod costing;
pub mod csv_drop;
pub mod customers;
pub mod delivery;
pub mod engine;
pub mod error;
pub mod fingerprint;
pub mod flows;
pub mod forecast;
pub mod hooks;
pub mod hub;
pub mod ids;
pub mod index;
pub mod leakage;
pub mod lease;
pub mod mapping_replay;
pub mod metrics;
pub mod nats_source;
pub mod outbound_relay;
pub mod payroll;
pub mod pg_table;
pub mod ports;
pub mod resources;
pub mod rest_poll;
pub mod retry;
pub mod routing;
pub mod store;
pub mod summary;
pub mod world;

pub use config::Config;
pub use engine::Engine;
pub use error::{ActionError, EngineError};
pub use flows::{Actor, Resolution};
pub use hub::{Acting, Hub, Incoming, IngestResult, IngestStatus};
pub use ports::{Outcome, Port, Systems};
pub use store::{Store, StoreReader};

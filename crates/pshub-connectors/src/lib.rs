//! System adapters: one module per kind of external system, each translating between its
//! system's records and the canonical model and implementing the engine's ports.
//!
//! For now: the sandbox systems of the embedded default (a PSA, an ERP and a CRM that run
//! in the hub's process or as a network peer) and the simulated firm whose systems send
//! events. Invariant: a connector depends on the model and the engine's ports, never the
//! other way round.

pub mod sandbox;
pub mod tryton;

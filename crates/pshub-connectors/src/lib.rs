//! System adapters: one module per kind of external system, each translating between its
//! system's records and the canonical model and implementing the engine's ports.
//!
//! For now: the built-in sandbox systems of the embedded default. Invariant: a connector
//! depends on the model and the engine's ports, never the other way round.

pub mod sandbox;

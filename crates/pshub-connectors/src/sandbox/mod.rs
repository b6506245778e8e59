//! In-process stand-ins for a firm's systems, so that the whole quote-to-cash loop runs
//! with no other software: an ERP that assigns its own ids and can misbehave on demand,
//! and a simulated firm whose CRM, HRIS and PSA emit events.

pub mod erp;
pub mod firm;
mod rng;

pub use erp::{ErpFaults, SandboxErp};
pub use firm::{FirmSpec, SimulatedFirm};

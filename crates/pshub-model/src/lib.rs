//! Canonical records of pshub (PRODUCT.md section 4): money, typed ids, the records
//! every flow speaks, their states, and the event envelope.
//!
//! Invariant: this crate does no IO and has no async code. Everything here is a value
//! that parses from untrusted JSON with an error naming the field, or is built from
//! values that already did.

pub mod currency;
pub mod decimal;
pub mod domain;
pub mod event;
pub mod fields;
pub mod ids;
pub mod json;
pub mod money;
pub mod records;

pub use currency::Currency;
pub use domain::Domain;
pub use event::{Event, EventData, EventError, EventType};
pub use fields::FieldError;
pub use ids::*;
pub use money::{Money, round_to_minor_unit};

pub mod events;
pub mod exceptions;
pub mod lines;
pub mod ops;

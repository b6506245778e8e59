pub mod customers;
pub mod events;
pub mod exceptions;
pub mod lines;
pub mod ops;
pub mod projects;
pub mod sandbox;
pub mod workers;

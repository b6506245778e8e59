//! Black-box tests of the HTTP API: each test spawns the real router on port 0 over a fresh
//! SQLite store and an in-process sandbox ERP.

mod bad_input;
mod exceptions;
mod helpers;
mod lines;
mod operations;
mod time_to_bill;

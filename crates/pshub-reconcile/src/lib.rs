//! Reconciliation: what one system holds against what another holds, from their exports.
//!
//! Invariant: this crate is pure. It reads bytes that the caller loaded and writes the
//! differences into buffers; it does no IO of its own, has no async code and takes no
//! database or HTTP crate. Numbers are compared and added exactly (`decimal`), never as
//! floating point.
//!
//! - `rfc4180`: CSV records from a buffer held whole, with their physical line numbers.
//! - `decimal`: numbers as exports write them, compared without allocating, added exactly.
//! - `table`: row numbers by the hash of their key, the keys left in the buffer.
//! - `time`: approved time in a PSA against the time an ERP holds.

pub mod decimal;
pub mod rfc4180;
pub mod table;
pub mod time;

/// What stops a reconciliation: a file it cannot use, or a total it cannot hold exactly.
/// Rows it cannot read do not stop it; they are listed with the file they came from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{file}: there is no header row on line 1; it must name the columns {}",
        time::COLUMNS.join(",")
    )]
    NoHeader { file: String },
    #[error("{file}:1: the header row is not valid CSV ({reason})")]
    MalformedHeader { file: String, reason: String },
    #[error(
        "{file}: the header has no column '{column}'; it must name the columns {} (in any order; \
         other columns are ignored)",
        time::COLUMNS.join(",")
    )]
    MissingColumn { file: String, column: &'static str },
    #[error("{file}: the header names the column '{column}' twice")]
    DuplicateColumn { file: String, column: &'static str },
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(
        "{file}: more than 4 GiB in the columns read, or more than 4,294,967,294 rows; split the file"
    )]
    TooLarge { file: String },
    #[error("the {kind} amounts in '{currency}' add up to more than can be held exactly")]
    Overflow { kind: time::Kind, currency: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

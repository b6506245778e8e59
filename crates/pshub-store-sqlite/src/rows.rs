//! Column lists and row decoders. Money and quantities are stored as decimal text and read
//! back exactly; a value that does not parse is reported as a conversion error.

use chrono::NaiveDate;
use pshub_engine::store::*;
use pshub_model::Currency;
use pshub_model::records::{ExceptionState, LineKind, OwnerTeam};
use rusqlite::Row;
use rusqlite::types::Type;
use rust_decimal::Decimal;
use std::str::FromStr;

fn bad(index: usize, what: &str, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, format!("{what} '{text}'").into())
}

pub fn parse_col<T>(row: &Row, index: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| bad(index, "unexpected value", &text))
}

pub fn decimal_col(row: &Row, index: usize) -> rusqlite::Result<Decimal> {
    let text: String = row.get(index)?;
    Decimal::from_str(&text).map_err(|_| bad(index, "not a decimal:", &text))
}

fn opt_decimal_col(row: &Row, index: usize) -> rusqlite::Result<Option<Decimal>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| Decimal::from_str(&t).map_err(|_| bad(index, "not a decimal:", &t)))
        .transpose()
}

pub fn currency_col(row: &Row, index: usize) -> rusqlite::Result<Currency> {
    let text: String = row.get(index)?;
    Currency::parse(&text).map_err(|_| bad(index, "not a currency:", &text))
}

fn opt_currency_col(row: &Row, index: usize) -> rusqlite::Result<Option<Currency>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| Currency::parse(&t).map_err(|_| bad(index, "not a currency:", &t)))
        .transpose()
}

fn date_col(row: &Row, index: usize) -> rusqlite::Result<NaiveDate> {
    let text: String = row.get(index)?;
    NaiveDate::from_str(&text).map_err(|_| bad(index, "not a date:", &text))
}

pub const INBOX_SELECT: &str = "SELECT seq, source, event_id, event_type, business_key, correlation_id, occurred_at, received_at, data, reference FROM inbox";

pub fn inbox_row(r: &Row) -> rusqlite::Result<InboxRow> {
    Ok(InboxRow {
        seq: r.get(0)?,
        source: r.get(1)?,
        event_id: r.get(2)?,
        event_type: r.get(3)?,
        business_key: r.get(4)?,
        correlation_id: r.get(5)?,
        occurred_at: r.get(6)?,
        received_at: r.get(7)?,
        data: r.get(8)?,
        reference: r.get(9)?,
    })
}

pub const QUARANTINE_SELECT: &str = "SELECT id, source, event_id, raw, field, reason, received_at, state, replayed_seq FROM quarantine";

pub fn quarantine_row(r: &Row) -> rusqlite::Result<QuarantineRow> {
    Ok(QuarantineRow {
        id: r.get(0)?,
        source: r.get(1)?,
        event_id: r.get(2)?,
        raw: r.get(3)?,
        field: r.get(4)?,
        reason: r.get(5)?,
        received_at: r.get(6)?,
        state: r.get(7)?,
        replayed_seq: r.get(8)?,
    })
}

pub const CONFLICT_SELECT: &str =
    "SELECT id, source, event_id, original_seq, event_type, data, received_at FROM conflicts";

pub fn conflict_row(r: &Row) -> rusqlite::Result<ConflictRow> {
    Ok(ConflictRow {
        id: r.get(0)?,
        source: r.get(1)?,
        event_id: r.get(2)?,
        original_seq: r.get(3)?,
        event_type: r.get(4)?,
        data: r.get(5)?,
        received_at: r.get(6)?,
    })
}

pub const ENTRY_SELECT: &str = "SELECT row_id, kind, entry_id, phase, event_seq, fingerprint, line_id, case_id, value, currency, manual FROM entries";

pub fn entry_row(r: &Row) -> rusqlite::Result<EntryRow> {
    Ok(EntryRow {
        row_id: r.get(0)?,
        kind: parse_col(r, 1, EntryKind::parse)?,
        entry_id: r.get(2)?,
        phase: parse_col(r, 3, EntryPhase::parse)?,
        event_seq: r.get(4)?,
        fingerprint: r.get::<_, i64>(5)? as u64,
        line_id: r.get(6)?,
        case_id: r.get(7)?,
        value: opt_decimal_col(r, 8)?,
        currency: opt_currency_col(r, 9)?,
        manual: r.get(10)?,
    })
}

pub const LINE_SELECT: &str = "SELECT id, kind, status, erp_id, entry_row, source_id, event_seq, project_code, worker_id, date,
    quantity, rate, rate_currency, fx_rate, amount, currency, tax_code, billing_class, reverses, correlation_id, created_at, posted_at,
    attempts, next_attempt_at, last_error FROM lines";

pub fn line_row(r: &Row) -> rusqlite::Result<LineRow> {
    line_row_at(r, 0)
}

/// A line whose columns start at `at` (in [`LINE_SELECT`]'s order).
fn line_row_at(r: &Row, at: usize) -> rusqlite::Result<LineRow> {
    Ok(LineRow {
        id: r.get(at)?,
        kind: parse_col(r, at + 1, LineKind::parse)?,
        status: parse_col(r, at + 2, LineStatus::parse)?,
        erp_id: r.get(at + 3)?,
        entry_row: r.get(at + 4)?,
        source_id: r.get(at + 5)?,
        event_seq: r.get(at + 6)?,
        project_code: r.get(at + 7)?,
        worker_id: r.get(at + 8)?,
        date: date_col(r, at + 9)?,
        quantity: decimal_col(r, at + 10)?,
        rate: decimal_col(r, at + 11)?,
        rate_currency: currency_col(r, at + 12)?,
        fx_rate: opt_decimal_col(r, at + 13)?,
        amount: decimal_col(r, at + 14)?,
        currency: currency_col(r, at + 15)?,
        tax_code: r.get(at + 16)?,
        billing_class: r.get(at + 17)?,
        reverses: r.get(at + 18)?,
        correlation_id: r.get(at + 19)?,
        created_at: r.get(at + 20)?,
        posted_at: r.get(at + 21)?,
        attempts: r.get(at + 22)?,
        next_attempt_at: r.get(at + 23)?,
        last_error: r.get(at + 24)?,
    })
}

pub const OUTBOX_SELECT: &str = "SELECT id, target, operation, subject, idempotency_key, state, attempts, next_attempt_at, last_error, correlation_id FROM outbox";

pub fn outbox_row(r: &Row) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        target: r.get(1)?,
        operation: parse_col(r, 2, Operation::parse)?,
        subject: r.get(3)?,
        idempotency_key: r.get(4)?,
        state: parse_col(r, 5, OutboxState::parse)?,
        attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        last_error: r.get(8)?,
        correlation_id: r.get(9)?,
    })
}

pub const CASE_SELECT: &str =
    "SELECT id, kind, owner, business_key, state, reason, suggested_fix, correlation_id, event_seq,
    entry_row, line_id, outbox_id, value, currency, created_at, updated_at, resolution FROM cases";

pub fn case_row(r: &Row) -> rusqlite::Result<CaseRow> {
    Ok(CaseRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        owner: parse_col(r, 2, OwnerTeam::parse)?,
        business_key: r.get(3)?,
        state: parse_col(r, 4, ExceptionState::parse)?,
        reason: r.get(5)?,
        suggested_fix: r.get(6)?,
        correlation_id: r.get(7)?,
        event_seq: r.get(8)?,
        entry_row: r.get(9)?,
        line_id: r.get(10)?,
        outbox_id: r.get(11)?,
        value: opt_decimal_col(r, 12)?,
        currency: opt_currency_col(r, 13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        resolution: r.get(16)?,
    })
}

/// Lines due for posting, each with the ERP id of the line it reverses (once posted).
pub const DUE_LINES_SELECT: &str = "SELECT l.id, l.kind, l.status, l.erp_id, l.entry_row, l.source_id, l.event_seq, l.project_code,
    l.worker_id, l.date, l.quantity, l.rate, l.rate_currency, l.fx_rate, l.amount, l.currency, l.tax_code, l.billing_class,
    l.reverses, l.correlation_id, l.created_at, l.posted_at, l.attempts, l.next_attempt_at, l.last_error, original.erp_id
    FROM lines l LEFT JOIN lines original ON original.id = l.reverses
    WHERE l.status = 'pending' AND l.next_attempt_at <= ? ORDER BY l.id LIMIT ?";

pub fn due_line(r: &Row) -> rusqlite::Result<Due> {
    Ok(Due::Line {
        line: Box::new(line_row_at(r, 0)?),
        reverses_erp_id: r.get(25)?,
    })
}

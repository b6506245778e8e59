//! Row decoders, one per row type, reading columns in the order the queries of
//! `sql/queries.sql` list them. Money and quantities are stored as decimal text and read back
//! exactly; a value that does not parse is reported as a conversion error.

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

pub fn opt_decimal_col(row: &Row, index: usize) -> rusqlite::Result<Option<Decimal>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| Decimal::from_str(&t).map_err(|_| bad(index, "not a decimal:", &t)))
        .transpose()
}

pub fn currency_col(row: &Row, index: usize) -> rusqlite::Result<Currency> {
    let text: String = row.get(index)?;
    Currency::parse(&text).map_err(|_| bad(index, "not a currency:", &text))
}

pub fn opt_currency_col(row: &Row, index: usize) -> rusqlite::Result<Option<Currency>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| Currency::parse(&t).map_err(|_| bad(index, "not a currency:", &t)))
        .transpose()
}

pub fn date_col(row: &Row, index: usize) -> rusqlite::Result<NaiveDate> {
    let text: String = row.get(index)?;
    NaiveDate::from_str(&text).map_err(|_| bad(index, "not a date:", &text))
}

pub fn inbox_row(r: &Row) -> rusqlite::Result<InboxRow> {
    Ok(InboxRow {
        seq: r.get(0)?,
        source: r.get(1)?,
        event_id: r.get(2)?,
        event_type: r.get(3)?,
        correlation_id: r.get(4)?,
        occurred_at: r.get(5)?,
        received_at: r.get(6)?,
        raw: r.get(7)?,
        data: r.get(8)?,
        ref_version: r.get(9)?,
    })
}

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
        version: r.get(9)?,
        kind: r.get(10)?,
        file: r.get(11)?,
        line: r.get::<_, Option<i64>>(12)?.map(|l| l as u64),
    })
}

pub fn conflict_row(r: &Row) -> rusqlite::Result<ConflictRow> {
    Ok(ConflictRow {
        id: r.get(0)?,
        source: r.get(1)?,
        event_id: r.get(2)?,
        original_seq: r.get(3)?,
        event_type: r.get(4)?,
        data: r.get(5)?,
        raw: r.get(6)?,
        received_at: r.get(7)?,
        case_id: r.get(8)?,
    })
}

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
        postings: r.get(11)?,
        version: r.get(12)?,
        work: worked_hours_at(r, 13)?,
    })
}

/// An entry's hours in the five columns from `at` (worker, project, date, hours, overtime),
/// where it has them.
fn worked_hours_at(r: &Row, at: usize) -> rusqlite::Result<Option<WorkedHours>> {
    let worker_id: Option<String> = r.get(at)?;
    let Some(worker_id) = worker_id else {
        return Ok(None);
    };
    Ok(Some(WorkedHours {
        worker_id,
        project_code: r.get(at + 1)?,
        date: date_col(r, at + 2)?,
        hours: decimal_col(r, at + 3)?,
        overtime_hours: opt_decimal_col(r, at + 4)?.unwrap_or_default(),
    }))
}

pub fn worked_entry(r: &Row) -> rusqlite::Result<WorkedEntry> {
    Ok(WorkedEntry {
        entry_id: r.get(0)?,
        work: worked_hours_at(r, 1)?.ok_or_else(|| bad(1, "no worker:", ""))?,
    })
}

pub fn payroll_actual_row(r: &Row) -> rusqlite::Result<PayrollActualRow> {
    Ok(PayrollActualRow {
        worker_id: r.get(0)?,
        period: r.get(1)?,
        gross_cost: rust_decimal::Decimal::new(r.get(2)?, 6).normalize(),
        currency: currency_col(r, 3)?,
        load_id: r.get(4)?,
        line: r.get::<_, i64>(5)? as u64,
    })
}

pub fn payroll_load_row(r: &Row) -> rusqlite::Result<PayrollLoadRow> {
    Ok(PayrollLoadRow {
        id: r.get(0)?,
        file: r.get(1)?,
        rows: r.get::<_, i64>(2)? as u64,
        loaded: r.get::<_, i64>(3)? as u64,
        duplicates: r.get::<_, i64>(4)? as u64,
        rejected: r.get::<_, i64>(5)? as u64,
        loaded_at: r.get(6)?,
        checked: r.get(7)?,
    })
}

/// A line as `lines_by_ids` selects it: its 21 columns, then its overtime and role.
pub fn line_row(r: &Row) -> rusqlite::Result<LineRow> {
    let mut line = line_row_at(r, 0)?;
    line.overtime_hours = opt_decimal_col(r, 21)?;
    line.role = r.get(22)?;
    Ok(line)
}

/// A line whose 21 columns start at `at`.
pub fn line_row_at(r: &Row, at: usize) -> rusqlite::Result<LineRow> {
    Ok(LineRow {
        id: r.get(at)?,
        kind: parse_col(r, at + 1, LineKind::parse)?,
        entry_row: r.get(at + 2)?,
        posting: r.get(at + 3)?,
        source_id: r.get(at + 4)?,
        event_seq: r.get(at + 5)?,
        project_code: r.get(at + 6)?,
        worker_id: r.get(at + 7)?,
        date: date_col(r, at + 8)?,
        quantity: decimal_col(r, at + 9)?,
        rate: decimal_col(r, at + 10)?,
        rate_currency: currency_col(r, at + 11)?,
        fx_rate: opt_decimal_col(r, at + 12)?,
        amount: decimal_col(r, at + 13)?,
        currency: currency_col(r, at + 14)?,
        tax_code: r.get(at + 15)?,
        billing_class: r.get(at + 16)?,
        reverses: r.get(at + 17)?,
        correlation_id: r.get(at + 18)?,
        created_at: r.get(at + 19)?,
        step_id: r.get(at + 20)?,
        overtime_hours: None,
        role: None,
    })
}

/// A line and its step, as `line_by_id` and `lines_list` select them (the line's
/// overtime last).
pub fn delivered_line(r: &Row) -> rusqlite::Result<DeliveredLine> {
    let mut line = line_row_at(r, 0)?;
    line.overtime_hours = opt_decimal_col(r, 41)?;
    line.role = r.get(42)?;
    Ok(DeliveredLine {
        line,
        step: step_row_at(r, 21)?,
    })
}

pub fn step_row(r: &Row) -> rusqlite::Result<StepRow> {
    step_row_at(r, 0)
}

/// A step whose 20 columns start at `at`.
pub fn step_row_at(r: &Row, at: usize) -> rusqlite::Result<StepRow> {
    Ok(StepRow {
        id: r.get(at)?,
        flow: r.get(at + 1)?,
        step: r.get(at + 2)?,
        system: r.get(at + 3)?,
        subject: r.get(at + 4)?,
        business_key: r.get(at + 5)?,
        state: parse_col(r, at + 6, StepState::parse)?,
        waits_on: r.get(at + 7)?,
        attempts: r.get(at + 8)?,
        next_attempt_at: r.get(at + 9)?,
        lease_owner: r.get(at + 10)?,
        lease_until: r.get(at + 11)?,
        result: r.get(at + 12)?,
        last_error: r.get(at + 13)?,
        outcome_unknown: r.get(at + 14)?,
        correlation_id: r.get(at + 15)?,
        event_seq: r.get(at + 16)?,
        created_at: r.get(at + 17)?,
        done_at: r.get(at + 18)?,
        version: r.get(at + 19)?,
    })
}

pub fn timeline_row(r: &Row) -> rusqlite::Result<TimelineRow> {
    Ok(TimelineRow {
        correlation_id: r.get(0)?,
        at: r.get(1)?,
        what: r.get(2)?,
        detail: r.get(3)?,
        step_id: r.get(4)?,
        actor: r.get(5)?,
    })
}

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
        flow: r.get(9)?,
        entry_row: r.get(10)?,
        step_id: r.get(11)?,
        value: opt_decimal_col(r, 12)?,
        currency: opt_currency_col(r, 13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        resolution: r.get(16)?,
        evidence: r.get(17)?,
        version: r.get(18)?,
    })
}

pub fn project_row(r: &Row) -> rusqlite::Result<ProjectRow> {
    Ok(ProjectRow {
        id: r.get(0)?,
        project_code: r.get(1)?,
        opportunity_id: r.get(2)?,
        event_seq: r.get(3)?,
        correlation_id: r.get(4)?,
        created_at: r.get(5)?,
    })
}

pub fn outbound_row(r: &Row) -> rusqlite::Result<OutboundRow> {
    Ok(OutboundRow {
        id: r.get(0)?,
        event_type: r.get(1)?,
        key: r.get(2)?,
        data: r.get(3)?,
        correlation_id: r.get(4)?,
        published_at: r.get(5)?,
    })
}

pub fn worker_day_row(r: &Row) -> rusqlite::Result<WorkerDayRow> {
    Ok(WorkerDayRow {
        id: r.get(0)?,
        worker_id: r.get(1)?,
        day: date_col(r, 2)?,
        hours: decimal_col(r, 3)?,
        version: r.get(4)?,
    })
}

pub fn token_row(r: &Row) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        hash: r.get(1)?,
        role: r.get(2)?,
        name: r.get(3)?,
        created_at: r.get(4)?,
    })
}

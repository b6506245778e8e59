//! Row decoders, one per row type, reading columns in the order the queries of
//! `sql/queries.sql` list them.

use pshub_engine::store::*;
use pshub_model::Currency;
use pshub_model::records::{ExceptionState, LineKind, OwnerTeam};
use sqlx::Row;
use sqlx::postgres::PgRow;

type Decoded<T> = Result<T, sqlx::Error>;

fn bad(index: usize, what: &str, text: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: format!("{what} '{text}'").into(),
    }
}

fn parsed<T>(row: &PgRow, index: usize, parse: fn(&str) -> Option<T>) -> Decoded<T> {
    let text: String = row.try_get(index)?;
    parse(&text).ok_or_else(|| bad(index, "unexpected value", &text))
}

fn currency(row: &PgRow, index: usize) -> Decoded<Currency> {
    let text: String = row.try_get(index)?;
    Currency::parse(&text).map_err(|_| bad(index, "not a currency:", &text))
}

fn opt_currency(row: &PgRow, index: usize) -> Decoded<Option<Currency>> {
    let text: Option<String> = row.try_get(index)?;
    text.map(|t| Currency::parse(&t).map_err(|_| bad(index, "not a currency:", &t)))
        .transpose()
}

fn small(row: &PgRow, index: usize) -> Decoded<u32> {
    let n: i32 = row.try_get(index)?;
    u32::try_from(n).map_err(|_| bad(index, "not a count:", &n.to_string()))
}

pub fn inbox_row(r: &PgRow) -> Decoded<InboxRow> {
    Ok(InboxRow {
        seq: r.try_get(0)?,
        source: r.try_get(1)?,
        event_id: r.try_get(2)?,
        event_type: r.try_get(3)?,
        correlation_id: r.try_get(4)?,
        occurred_at: r.try_get(5)?,
        received_at: r.try_get(6)?,
        raw: r.try_get(7)?,
        data: r.try_get(8)?,
        ref_version: r.try_get(9)?,
    })
}

pub fn quarantine_row(r: &PgRow) -> Decoded<QuarantineRow> {
    Ok(QuarantineRow {
        id: r.try_get(0)?,
        source: r.try_get(1)?,
        event_id: r.try_get(2)?,
        raw: r.try_get(3)?,
        field: r.try_get(4)?,
        reason: r.try_get(5)?,
        received_at: r.try_get(6)?,
        state: r.try_get(7)?,
        replayed_seq: r.try_get(8)?,
        version: r.try_get(9)?,
        kind: r.try_get(10)?,
        file: r.try_get(11)?,
        line: r.try_get::<Option<i64>, _>(12)?.map(|l| l as u64),
    })
}

pub fn conflict_row(r: &PgRow) -> Decoded<ConflictRow> {
    Ok(ConflictRow {
        id: r.try_get(0)?,
        source: r.try_get(1)?,
        event_id: r.try_get(2)?,
        original_seq: r.try_get(3)?,
        event_type: r.try_get(4)?,
        data: r.try_get(5)?,
        raw: r.try_get(6)?,
        received_at: r.try_get(7)?,
        case_id: r.try_get(8)?,
    })
}

pub fn entry_row(r: &PgRow) -> Decoded<EntryRow> {
    Ok(EntryRow {
        row_id: r.try_get(0)?,
        kind: parsed(r, 1, EntryKind::parse)?,
        entry_id: r.try_get(2)?,
        phase: parsed(r, 3, EntryPhase::parse)?,
        event_seq: r.try_get(4)?,
        fingerprint: r.try_get::<i64, _>(5)? as u64,
        line_id: r.try_get(6)?,
        case_id: r.try_get(7)?,
        value: r.try_get(8)?,
        currency: opt_currency(r, 9)?,
        manual: r.try_get(10)?,
        postings: small(r, 11)?,
        version: r.try_get(12)?,
        work: worked_hours_at(r, 13)?,
    })
}

/// An entry's hours in the five columns from `at`, where it has them.
fn worked_hours_at(r: &PgRow, at: usize) -> Decoded<Option<WorkedHours>> {
    let worker_id: Option<String> = r.try_get(at)?;
    let Some(worker_id) = worker_id else {
        return Ok(None);
    };
    Ok(Some(WorkedHours {
        worker_id,
        project_code: r.try_get(at + 1)?,
        date: r.try_get(at + 2)?,
        hours: r.try_get(at + 3)?,
        overtime_hours: r
            .try_get::<Option<rust_decimal::Decimal>, _>(at + 4)?
            .unwrap_or_default(),
    }))
}

pub fn worked_entry(r: &PgRow) -> Decoded<WorkedEntry> {
    Ok(WorkedEntry {
        entry_id: r.try_get(0)?,
        work: worked_hours_at(r, 1)?
            .ok_or_else(|| sqlx::Error::ColumnNotFound("worker_id".into()))?,
    })
}

pub fn payroll_actual_row(r: &PgRow) -> Decoded<PayrollActualRow> {
    Ok(PayrollActualRow {
        worker_id: r.try_get(0)?,
        period: r.try_get(1)?,
        gross_cost: r.try_get(2)?,
        currency: currency(r, 3)?,
        load_id: r.try_get(4)?,
        line: r.try_get::<i64, _>(5)? as u64,
    })
}

pub fn payroll_load_row(r: &PgRow) -> Decoded<PayrollLoadRow> {
    Ok(PayrollLoadRow {
        id: r.try_get(0)?,
        file: r.try_get(1)?,
        rows: r.try_get::<i64, _>(2)? as u64,
        loaded: r.try_get::<i64, _>(3)? as u64,
        duplicates: r.try_get::<i64, _>(4)? as u64,
        rejected: r.try_get::<i64, _>(5)? as u64,
        loaded_at: r.try_get(6)?,
        checked: r.try_get(7)?,
    })
}

/// A line as `lines_by_ids` selects it: its 21 columns, then its overtime and role.
pub fn line_row(r: &PgRow) -> Decoded<LineRow> {
    let mut line = line_row_at(r, 0)?;
    line.overtime_hours = r.try_get(21)?;
    line.role = r.try_get(22)?;
    Ok(line)
}

/// A line whose 21 columns start at `at`.
pub fn line_row_at(r: &PgRow, at: usize) -> Decoded<LineRow> {
    Ok(LineRow {
        id: r.try_get(at)?,
        kind: parsed(r, at + 1, LineKind::parse)?,
        entry_row: r.try_get(at + 2)?,
        posting: small(r, at + 3)?,
        source_id: r.try_get(at + 4)?,
        event_seq: r.try_get(at + 5)?,
        project_code: r.try_get(at + 6)?,
        worker_id: r.try_get(at + 7)?,
        date: r.try_get(at + 8)?,
        quantity: r.try_get(at + 9)?,
        rate: r.try_get(at + 10)?,
        rate_currency: currency(r, at + 11)?,
        fx_rate: r.try_get(at + 12)?,
        amount: r.try_get(at + 13)?,
        currency: currency(r, at + 14)?,
        tax_code: r.try_get(at + 15)?,
        billing_class: r.try_get(at + 16)?,
        reverses: r.try_get(at + 17)?,
        correlation_id: r.try_get(at + 18)?,
        created_at: r.try_get(at + 19)?,
        step_id: r.try_get(at + 20)?,
        overtime_hours: None,
        role: None,
    })
}

pub fn delivered_line(r: &PgRow) -> Decoded<DeliveredLine> {
    let mut line = line_row_at(r, 0)?;
    line.overtime_hours = r.try_get(41)?;
    line.role = r.try_get(42)?;
    Ok(DeliveredLine {
        line,
        step: step_row_at(r, 21)?,
    })
}

pub fn step_row(r: &PgRow) -> Decoded<StepRow> {
    step_row_at(r, 0)
}

/// A step whose 20 columns start at `at`.
pub fn step_row_at(r: &PgRow, at: usize) -> Decoded<StepRow> {
    Ok(StepRow {
        id: r.try_get(at)?,
        flow: r.try_get(at + 1)?,
        step: r.try_get(at + 2)?,
        system: r.try_get(at + 3)?,
        subject: r.try_get(at + 4)?,
        business_key: r.try_get(at + 5)?,
        state: parsed(r, at + 6, StepState::parse)?,
        waits_on: r.try_get(at + 7)?,
        attempts: small(r, at + 8)?,
        next_attempt_at: r.try_get(at + 9)?,
        lease_owner: r.try_get(at + 10)?,
        lease_until: r.try_get(at + 11)?,
        result: r.try_get(at + 12)?,
        last_error: r.try_get(at + 13)?,
        outcome_unknown: r.try_get(at + 14)?,
        correlation_id: r.try_get(at + 15)?,
        event_seq: r.try_get(at + 16)?,
        created_at: r.try_get(at + 17)?,
        done_at: r.try_get(at + 18)?,
        version: r.try_get(at + 19)?,
    })
}

pub fn timeline_row(r: &PgRow) -> Decoded<TimelineRow> {
    Ok(TimelineRow {
        correlation_id: r.try_get(0)?,
        at: r.try_get(1)?,
        what: r.try_get(2)?,
        detail: r.try_get(3)?,
        step_id: r.try_get(4)?,
        actor: r.try_get(5)?,
    })
}

pub fn case_row(r: &PgRow) -> Decoded<CaseRow> {
    Ok(CaseRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        owner: parsed(r, 2, OwnerTeam::parse)?,
        business_key: r.try_get(3)?,
        state: parsed(r, 4, ExceptionState::parse)?,
        reason: r.try_get(5)?,
        suggested_fix: r.try_get(6)?,
        correlation_id: r.try_get(7)?,
        event_seq: r.try_get(8)?,
        flow: r.try_get(9)?,
        entry_row: r.try_get(10)?,
        step_id: r.try_get(11)?,
        value: r.try_get(12)?,
        currency: opt_currency(r, 13)?,
        created_at: r.try_get(14)?,
        updated_at: r.try_get(15)?,
        resolution: r.try_get(16)?,
        evidence: r.try_get(17)?,
        version: r.try_get(18)?,
    })
}

pub fn project_row(r: &PgRow) -> Decoded<ProjectRow> {
    Ok(ProjectRow {
        id: r.try_get(0)?,
        project_code: r.try_get(1)?,
        opportunity_id: r.try_get(2)?,
        event_seq: r.try_get(3)?,
        correlation_id: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

pub fn outbound_row(r: &PgRow) -> Decoded<OutboundRow> {
    Ok(OutboundRow {
        id: r.try_get(0)?,
        event_type: r.try_get(1)?,
        key: r.try_get(2)?,
        data: r.try_get(3)?,
        correlation_id: r.try_get(4)?,
        published_at: r.try_get(5)?,
    })
}

pub fn worker_day_row(r: &PgRow) -> Decoded<WorkerDayRow> {
    Ok(WorkerDayRow {
        id: r.try_get(0)?,
        worker_id: r.try_get(1)?,
        day: r.try_get(2)?,
        hours: r.try_get(3)?,
        version: r.try_get(4)?,
    })
}

pub fn token_row(r: &PgRow) -> Decoded<TokenRow> {
    Ok(TokenRow {
        id: r.try_get(0)?,
        hash: r.try_get(1)?,
        role: r.try_get(2)?,
        name: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

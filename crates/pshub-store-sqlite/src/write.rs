//! Writing one [`Commit`]: inserts, conditional updates (a row changed since it was read
//! fails the commit as a conflict), the release of steps waiting on steps done, counters.

use crate::{Stop, q};
use pshub_engine::error::EngineError;
use pshub_engine::store::*;
use rusqlite::{Connection, params};

/// Rows inserted by one statement, at most: fewer statements to step through for the same
/// rows. Smaller groups go in power-of-two statements, so that few statement texts are
/// ever prepared (and all stay in the connection's cache).
const ROWS_PER_INSERT: usize = 32;

/// A value to bind: borrowed from the row where it is stored as is, owned where it is written.
type Bound<'a> = rusqlite::types::ToSqlOutput<'a>;

fn text(value: &str) -> Bound<'_> {
    Bound::Borrowed(rusqlite::types::ValueRef::Text(value.as_bytes()))
}

fn owned(value: String) -> Bound<'static> {
    Bound::Owned(rusqlite::types::Value::Text(value))
}

fn int(value: i64) -> Bound<'static> {
    Bound::Owned(rusqlite::types::Value::Integer(value))
}

fn opt_int(value: Option<i64>) -> Bound<'static> {
    value.map_or(Bound::Owned(rusqlite::types::Value::Null), int)
}

fn opt_text(value: Option<&str>) -> Bound<'_> {
    value.map_or(Bound::Owned(rusqlite::types::Value::Null), text)
}

fn opt_owned(value: Option<String>) -> Bound<'static> {
    value.map_or(Bound::Owned(rusqlite::types::Value::Null), owned)
}

/// Inserts `rows` with the single-row `INSERT ... VALUES (?, ...) [tail]` of `query`, many
/// rows per statement (an `ON CONFLICT` tail applies to each); answers the rows changed.
/// `bind` gives a row's values (an array: no allocation per row).
fn insert_many<'a, R, B>(
    tx: &Connection,
    query: &str,
    rows: impl ExactSizeIterator<Item = &'a R>,
    bind: impl Fn(&'a R) -> B,
) -> std::result::Result<usize, Stop>
where
    R: 'a,
    B: IntoIterator<Item = Bound<'a>>,
{
    insert_many_by(tx, query, rows, ROWS_PER_INSERT, bind)
}

/// As [`insert_many`], at most `per_statement` rows (a power of two) per statement.
fn insert_many_by<'a, R, B>(
    tx: &Connection,
    query: &str,
    rows: impl ExactSizeIterator<Item = &'a R>,
    per_statement: usize,
    bind: impl Fn(&'a R) -> B,
) -> std::result::Result<usize, Stop>
where
    R: 'a,
    B: IntoIterator<Item = Bound<'a>>,
{
    let single = q(query)?;
    let malformed = || {
        Stop::Db(EngineError::Store(format!(
            "{query} is not an INSERT ... VALUES (...)"
        )))
    };
    let at = single.find("VALUES").ok_or_else(malformed)? + "VALUES".len();
    let close = single[at..].find(')').ok_or_else(malformed)? + at + 1;
    let (head, group, tail) = (
        &single[..at],
        single[at..close].trim(),
        single[close..].trim(),
    );
    let statement = |size: usize| format!("{head} {} {tail}", vec![group; size].join(", "));
    // Most statements are full: their text is made once per call.
    let full = (rows.len() >= per_statement).then(|| statement(per_statement));
    let rows: Vec<&'a R> = rows.collect();
    let mut rest = rows.as_slice();
    let mut values: Vec<Bound<'a>> = Vec::new();
    let mut changed = 0;
    while !rest.is_empty() {
        let size = per_statement.min(1 << rest.len().ilog2());
        let (now, later) = rest.split_at(size);
        values.clear();
        for row in now {
            values.extend(bind(row));
        }
        let sql = match &full {
            Some(full) if size == per_statement => std::borrow::Cow::Borrowed(full.as_str()),
            _ => std::borrow::Cow::Owned(statement(size)),
        };
        changed += tx
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(values.iter()))?;
        rest = later;
    }
    Ok(changed)
}

/// Fails the commit when a conditional update changed no row.
fn changed(rows: usize, what: &str, id: i64) -> std::result::Result<(), Stop> {
    if rows == 1 {
        Ok(())
    } else {
        Err(Stop::Conflict(format!(
            "{what} {id} changed since it was read"
        )))
    }
}

/// Writes one commit on `tx`, inside the transaction (and savepoint) its group runs in.
pub(crate) fn write(tx: &Connection, commit: &Commit) -> std::result::Result<(), Stop> {
    if let Some(check) = commit.reference {
        let current: i64 = tx.query_row(q("reference_version")?, [], |r| r.get(0))?;
        if current != check.seen {
            return Err(Stop::Conflict(format!(
                "reference data moved to version {current} since version {}",
                check.seen
            )));
        }
        if check.to != check.seen {
            tx.execute(q("set_reference_version")?, [check.to])?;
        }
    }
    insert_many(tx, "insert_inbox", commit.inbox.iter(), |r| {
        [
            int(r.seq),
            text(&r.source),
            text(&r.event_id),
            text(&r.event_type),
            text(&r.correlation_id),
            text(&r.occurred_at),
            text(&r.received_at),
            text(&r.raw),
            text(&r.data),
            opt_int(r.ref_version),
        ]
    })?;
    for seq in &commit.inbox_removed {
        tx.execute(q("delete_inbox")?, [seq])?;
    }
    for (seq, version) in &commit.inbox_applied {
        let n = tx.execute(q("apply_inbox")?, [version, seq])?;
        changed(n, "unapplied event", *seq)?;
    }
    for r in commit.quarantine.iter() {
        if r.version == 0 {
            insert_quarantine(tx, r)?;
        } else {
            let n = tx
                .prepare_cached(q("update_quarantine")?)?
                .execute(params![r.state, r.replayed_seq, r.id, r.version])?;
            changed(n, "quarantined event", r.id)?;
        }
    }
    for r in &commit.conflicts {
        tx.prepare_cached(q("insert_conflict")?)?.execute(params![
            r.id,
            r.source,
            r.event_id,
            r.original_seq,
            r.event_type,
            r.data,
            r.raw,
            r.received_at,
            r.case_id
        ])?;
    }
    let new_entries: Vec<&EntryRow> = commit.entries.iter().filter(|r| r.version == 0).collect();
    insert_many(tx, "insert_entry", new_entries.into_iter(), |r| {
        [
            int(r.row_id),
            text(r.kind.as_str()),
            text(&r.entry_id),
            text(r.phase.as_str()),
            int(r.event_seq),
            int(r.fingerprint as i64),
            opt_int(r.line_id),
            opt_int(r.case_id),
            r.value
                .map_or(Bound::Owned(rusqlite::types::Value::Null), |v| {
                    owned(v.to_string())
                }),
            opt_text(r.currency.as_ref().map(|c| c.code())),
            int(i64::from(r.manual)),
            int(i64::from(r.postings)),
            opt_text(r.work.as_ref().map(|w| w.worker_id.as_str())),
            opt_text(r.work.as_ref().map(|w| w.project_code.as_str())),
            opt_owned(r.work.as_ref().map(|w| w.date.to_string())),
            opt_owned(r.work.as_ref().map(|w| w.hours.to_string())),
            opt_owned(r.work.as_ref().map(|w| w.overtime_hours.to_string())),
        ]
    })?;
    let mut update = tx.prepare_cached(q("update_entry")?)?;
    for r in commit.entries.iter().filter(|r| r.version != 0) {
        let n = update.execute(params![
            r.phase.as_str(),
            r.event_seq,
            r.fingerprint as i64,
            r.line_id,
            r.case_id,
            r.value.map(|v| v.to_string()),
            r.currency.map(|c| c.code().to_string()),
            r.manual,
            r.postings,
            r.work.as_ref().map(|w| w.worker_id.as_str()),
            r.work.as_ref().map(|w| w.project_code.as_str()),
            r.work.as_ref().map(|w| w.date.to_string()),
            r.work.as_ref().map(|w| w.hours.to_string()),
            r.work.as_ref().map(|w| w.overtime_hours.to_string()),
            r.row_id,
            r.version
        ])?;
        changed(n, "entry", r.row_id)?;
    }
    drop(update);
    insert_many(tx, "insert_line", commit.lines.iter(), |r| {
        [
            int(r.id),
            text(r.kind.as_str()),
            int(r.entry_row),
            int(i64::from(r.posting)),
            text(&r.source_id),
            int(r.event_seq),
            text(&r.project_code),
            text(&r.worker_id),
            owned(r.date.to_string()),
            owned(r.quantity.to_string()),
            owned(r.rate.to_string()),
            text(r.rate_currency.code()),
            r.fx_rate
                .map_or(Bound::Owned(rusqlite::types::Value::Null), |v| {
                    owned(v.to_string())
                }),
            owned(r.amount.to_string()),
            text(r.currency.code()),
            text(&r.tax_code),
            text(&r.billing_class),
            opt_int(r.reverses),
            text(&r.correlation_id),
            text(&r.created_at),
            int(r.step_id),
            opt_owned(r.overtime_hours.map(|h| h.to_string())),
            opt_text(r.role.as_deref()),
        ]
    })?;
    if !commit.lines.is_empty() {
        insert_many(tx, "insert_unindexed_line", commit.lines.iter(), |r| {
            [int(r.id)]
        })?;
        crate::postings::index_if_due(tx)?;
    }
    insert_many(
        tx,
        "insert_step",
        commit
            .steps
            .iter()
            .filter(|r| r.version == 0)
            .collect::<Vec<_>>()
            .into_iter(),
        |r| {
            [
                int(r.id),
                text(&r.flow),
                text(&r.step),
                text(&r.system),
                int(r.subject),
                text(&r.business_key),
                text(r.state.as_str()),
                opt_int(r.waits_on),
                int(i64::from(r.attempts)),
                int(r.next_attempt_at),
                opt_int(r.lease_owner),
                int(r.lease_until),
                opt_text(r.result.as_deref()),
                opt_text(r.last_error.as_deref()),
                int(i64::from(r.outcome_unknown)),
                text(&r.correlation_id),
                int(r.event_seq),
                text(&r.created_at),
                opt_text(r.done_at.as_deref()),
            ]
        },
    )?;
    let mut update = tx.prepare_cached(q("update_step")?)?;
    let mut release = tx.prepare_cached(q("release_waiters")?)?;
    let mut release_new = tx.prepare_cached(q("release_if_done")?)?;
    let mut done = Vec::new();
    for r in commit.steps.iter() {
        if r.version == 0 {
            if r.state == StepState::Waiting {
                release_new.execute([r.id])?;
            }
        } else {
            let n = update.execute(params![
                r.state.as_str(),
                r.waits_on,
                r.attempts,
                r.next_attempt_at,
                r.lease_owner,
                r.lease_until,
                r.result,
                r.last_error,
                r.outcome_unknown,
                r.done_at,
                r.id,
                r.version
            ])?;
            changed(n, "step", r.id)?;
        }
        if r.state == StepState::Done {
            done.push(r.id);
        }
    }
    // The steps that waited on steps now done are due, in one statement.
    if !done.is_empty() {
        release.execute([serde_json::to_string(&done).unwrap_or_default()])?;
    }
    drop((update, release, release_new));
    let mut insert = tx.prepare_cached(q("insert_case")?)?;
    let mut update = tx.prepare_cached(q("update_case")?)?;
    for r in commit.cases.iter() {
        let value = r.value.map(|v| v.to_string());
        let currency = r.currency.map(|c| c.code().to_string());
        if r.version == 0 {
            insert.execute(params![
                r.id,
                r.kind,
                r.owner.as_str(),
                r.business_key,
                r.state.as_str(),
                r.reason,
                r.suggested_fix,
                r.correlation_id,
                r.event_seq,
                r.flow,
                r.entry_row,
                r.step_id,
                value,
                currency,
                r.created_at,
                r.updated_at,
                r.resolution,
                r.evidence
            ])?;
        } else {
            let n = update.execute(params![
                r.state.as_str(),
                r.reason,
                r.event_seq,
                value,
                currency,
                r.updated_at,
                r.resolution,
                r.evidence,
                r.id,
                r.version
            ])?;
            changed(n, "case", r.id)?;
        }
    }
    drop((insert, update));
    for r in &commit.projects {
        tx.prepare_cached(q("insert_project")?)?.execute(params![
            r.id,
            r.project_code,
            r.opportunity_id,
            r.event_seq,
            r.correlation_id,
            r.created_at
        ])?;
    }
    for r in &commit.xrefs {
        tx.prepare_cached(q("insert_xref")?)?.execute(params![
            r.kind,
            r.canonical_id,
            r.system,
            r.system_id,
            r.correlation_id,
            r.created_at
        ])?;
    }
    for r in &commit.outbound {
        tx.prepare_cached(q("insert_outbound")?)?.execute(params![
            r.id,
            r.event_type,
            r.key,
            r.data,
            r.correlation_id,
            r.published_at
        ])?;
    }
    let mut stmt = tx.prepare_cached(q("insert_timeline")?)?;
    for r in &commit.timeline {
        stmt.execute(params![
            r.correlation_id,
            r.at,
            r.what,
            r.detail,
            r.step_id,
            r.actor
        ])?;
    }
    drop(stmt);
    for r in commit.worker_days.iter() {
        if r.version == 0 {
            tx.prepare_cached(q("insert_worker_day")?)?
                .execute(params![
                    r.id,
                    r.worker_id,
                    r.day.to_string(),
                    r.hours.to_string()
                ])?;
        } else {
            let n = tx
                .prepare_cached(q("update_worker_day")?)?
                .execute(params![r.hours.to_string(), r.id, r.version])?;
            changed(n, "worker day", r.id)?;
        }
    }
    upsert_payroll(tx, &commit.payroll)?;
    for r in &commit.payroll_loads {
        insert_payroll_load(tx, r)?;
    }
    for id in &commit.payroll_checked {
        tx.prepare_cached(q("check_payroll_load")?)?.execute([id])?;
    }
    let c = &commit.counters;
    if !c.is_zero() {
        tx.prepare_cached(q("add_counters")?)?.execute(params![
            commit.node,
            c.received as i64,
            c.duplicates as i64,
            c.conflicts as i64,
            c.quarantined as i64
        ])?;
    }
    Ok(())
}

/// Writes payroll actuals, each replacing the stored one of its (period, worker) where it
/// differs; answers how many changed something.
pub(crate) fn upsert_payroll(
    tx: &Connection,
    actuals: &[PayrollActualRow],
) -> std::result::Result<u64, Stop> {
    // A load is long runs of rows: bigger statements, fewer of them.
    let changed = insert_many_by(tx, "upsert_payroll_actual", actuals.iter(), 128, |r| {
        [
            text(&r.period),
            text(&r.worker_id),
            // An amount that does not fit is bound as NULL, which the column refuses.
            opt_int(micros(r.gross_cost)),
            text(r.currency.code()),
            int(r.load_id),
            int(r.line as i64),
        ]
    })?;
    Ok(changed as u64)
}

pub(crate) fn insert_payroll_load(
    tx: &Connection,
    r: &PayrollLoadRow,
) -> std::result::Result<(), Stop> {
    tx.prepare_cached(q("insert_payroll_load")?)?
        .execute(params![
            r.id,
            r.file,
            r.rows as i64,
            r.loaded as i64,
            r.duplicates as i64,
            r.rejected as i64,
            r.loaded_at,
            r.checked
        ])?;
    Ok(())
}

/// Writes a payroll load in the current transaction, part by part as the file is read:
/// its actuals, its refused rows, its row with the counts.
pub(crate) fn load_payroll(
    tx: &Connection,
    load: &PayrollLoad,
) -> std::result::Result<PayrollLoadRow, Stop> {
    let parts = load
        .parts
        .lock()
        .map_err(|_| Stop::Db(EngineError::Store("a payroll load was poisoned".into())))?;
    let mut changed = 0;
    loop {
        let part = parts.recv().map_err(|_| {
            Stop::Db(EngineError::Store(
                "the payroll file stopped before its end; nothing of it was stored".into(),
            ))
        })?;
        match part {
            PayrollPart::Actuals(actuals) => changed += upsert_payroll(tx, &actuals)?,
            PayrollPart::End {
                rows,
                rejected,
                repeats,
            } => {
                let first = if rejected.is_empty() {
                    0
                } else {
                    tx.query_row(
                        q("reserve_ids")?,
                        params![IdKind::Quarantine.as_str(), rejected.len() as i64],
                        |r| r.get::<_, i64>(0),
                    )?
                };
                for (i, r) in rejected.iter().enumerate() {
                    let mut r = r.clone();
                    r.id = first + i as i64;
                    insert_quarantine(tx, &r)?;
                }
                if repeats {
                    // A key that came twice may have changed twice: count actuals, not rows.
                    changed = tx.query_row(q("payroll_changed_by_load")?, [load.load.id], |r| {
                        r.get::<_, i64>(0)
                    })? as u64;
                }
                let mut row = load.load.clone();
                row.rows = rows;
                row.rejected = rejected.len() as u64;
                row.loaded = changed;
                row.duplicates = rows.saturating_sub(changed).saturating_sub(row.rejected);
                // A load that changed nothing implies no case.
                row.checked = changed == 0;
                insert_payroll_load(tx, &row)?;
                return Ok(row);
            }
        }
    }
}

fn insert_quarantine(tx: &Connection, r: &QuarantineRow) -> std::result::Result<(), Stop> {
    tx.prepare_cached(q("insert_quarantine")?)?
        .execute(params![
            r.id,
            r.source,
            r.event_id,
            r.raw,
            r.field,
            r.reason,
            r.received_at,
            r.state,
            r.replayed_seq,
            r.kind,
            r.file,
            r.line.map(|l| l as i64)
        ])?;
    Ok(())
}

/// An amount in millionths, as `payroll_actuals` keeps it: exact for every amount the door
/// lets in (below 10^12, at most 6 places); `None` for one that would not be.
pub(crate) fn micros(amount: rust_decimal::Decimal) -> Option<i64> {
    // Trailing zeros past the sixth place say nothing.
    let amount = if amount.scale() > 6 {
        amount.normalize()
    } else {
        amount
    };
    let places = 6u32.checked_sub(amount.scale())?;
    let scaled = amount.mantissa().checked_mul(10i128.checked_pow(places)?)?;
    i64::try_from(scaled).ok()
}

#[cfg(test)]
mod tests {
    use super::micros;

    #[test]
    fn amounts_in_millionths_are_exact_or_refused() {
        let d = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
        assert_eq!(micros(d("5000.5")), Some(5_000_500_000));
        assert_eq!(micros(d("0.000001")), Some(1));
        assert_eq!(micros(d("-2.5")), Some(-2_500_000));
        assert_eq!(
            micros(d("999999999999.999999")),
            Some(999_999_999_999_999_999)
        );
        assert_eq!(micros(d("0.0000001")), None);
        assert_eq!(micros(d("1.50000000")), Some(1_500_000));
        assert_eq!(micros(d("99999999999999")), None);
    }
}

//! Writing one [`Commit`] in one transaction: each table's new rows by one statement (arrays
//! unnested), updates conditional on each row's version (fewer rows changed than sent fails
//! the commit as a conflict), steps waiting on steps now done released, counters per process.

use crate::q;
use pshub_engine::error::EngineError;
use pshub_engine::store::*;
use sqlx::{Postgres, Transaction};

/// Why a commit wrote nothing.
pub enum Stop {
    Conflict(String),
    Db(EngineError),
}

impl From<sqlx::Error> for Stop {
    fn from(error: sqlx::Error) -> Self {
        match crate::conflict_of(&error) {
            Some(why) => Stop::Conflict(why),
            None => Stop::Db(crate::pg(error)),
        }
    }
}

impl From<EngineError> for Stop {
    fn from(error: EngineError) -> Self {
        Stop::Db(error)
    }
}

/// One column of `rows`, as the array a statement unnests.
fn column<'a, R, T>(rows: &'a [R], value: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

type Statement<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// The columns of an entry that an update changes, in the order both of its statements
/// (`insert_entries`, `update_entries`) take them after the row's identity.
fn entry_state<'q>(query: Statement<'q>, rows: &'q [&EntryRow]) -> Statement<'q> {
    query
        .bind(column(rows, |r| r.phase.as_str()))
        .bind(column(rows, |r| r.event_seq))
        .bind(column(rows, |r| r.fingerprint as i64))
        .bind(column(rows, |r| r.line_id))
        .bind(column(rows, |r| r.case_id))
        .bind(column(rows, |r| r.value))
        .bind(column(rows, |r| r.currency.map(|c| c.code().to_string())))
        .bind(column(rows, |r| r.manual))
        .bind(column(rows, |r| r.postings as i32))
        .bind(column(rows, |r| {
            r.work.as_ref().map(|w| w.worker_id.clone())
        }))
        .bind(column(rows, |r| {
            r.work.as_ref().map(|w| w.project_code.clone())
        }))
        .bind(column(rows, |r| r.work.as_ref().map(|w| w.date)))
        .bind(column(rows, |r| r.work.as_ref().map(|w| w.hours)))
        .bind(column(rows, |r| r.work.as_ref().map(|w| w.overtime_hours)))
}

/// The columns of a step that an update changes, in the order both of its statements
/// (`insert_steps`, `update_steps`) take them after the row's identity.
fn step_state<'q>(query: Statement<'q>, rows: &'q [&StepRow]) -> Statement<'q> {
    query
        .bind(column(rows, |r| r.state.as_str()))
        .bind(column(rows, |r| r.waits_on))
        .bind(column(rows, |r| r.attempts as i32))
        .bind(column(rows, |r| r.next_attempt_at))
        .bind(column(rows, |r| r.lease_owner))
        .bind(column(rows, |r| r.lease_until))
        .bind(column(rows, |r| r.result.as_deref()))
        .bind(column(rows, |r| r.last_error.as_deref()))
        .bind(column(rows, |r| r.outcome_unknown))
}

fn changed(rows: u64, expected: usize, what: &str) -> Result<(), Stop> {
    if rows == expected as u64 {
        Ok(())
    } else {
        Err(Stop::Conflict(format!(
            "{} of {expected} {what} changed since they were read",
            expected as u64 - rows.min(expected as u64)
        )))
    }
}

pub async fn write(tx: &mut Transaction<'_, Postgres>, commit: &Commit) -> Result<(), Stop> {
    if let Some(check) = commit.reference {
        // Share: entries priced on this version may commit together. Update: a change of
        // reference data waits for them, and they for it.
        let query = if check.to != check.seen {
            "reference_version_update"
        } else {
            "reference_version_share"
        };
        let current: i64 = sqlx::query_scalar(q(query)?).fetch_one(&mut **tx).await?;
        if current != check.seen {
            return Err(Stop::Conflict(format!(
                "reference data moved to version {current} since version {}",
                check.seen
            )));
        }
        if check.to != check.seen {
            sqlx::query(q("set_reference_version")?)
                .bind(check.to)
                .execute(&mut **tx)
                .await?;
        }
    }
    if !commit.inbox.is_empty() {
        let rows = &commit.inbox;
        sqlx::query(q("insert_inbox")?)
            .bind(column(rows, |r| r.seq))
            .bind(column(rows, |r| r.source.as_str()))
            .bind(column(rows, |r| r.event_id.as_str()))
            .bind(column(rows, |r| r.event_type.as_str()))
            .bind(column(rows, |r| r.correlation_id.as_str()))
            .bind(column(rows, |r| r.occurred_at.as_str()))
            .bind(column(rows, |r| r.received_at.as_str()))
            .bind(column(rows, |r| r.raw.as_str()))
            .bind(column(rows, |r| r.data.as_str()))
            .bind(column(rows, |r| r.ref_version))
            .execute(&mut **tx)
            .await?;
    }
    if !commit.inbox_removed.is_empty() {
        sqlx::query(q("delete_inbox")?)
            .bind(&commit.inbox_removed)
            .execute(&mut **tx)
            .await?;
    }
    for (seq, version) in &commit.inbox_applied {
        let done = sqlx::query(q("apply_inbox")?)
            .bind(version)
            .bind(seq)
            .execute(&mut **tx)
            .await?;
        changed(done.rows_affected(), 1, "unapplied event")?;
    }
    for r in commit.quarantine.iter() {
        if r.version == 0 {
            insert_quarantine(tx, r).await?;
        } else {
            let done = sqlx::query(q("update_quarantine")?)
                .bind(&r.state)
                .bind(r.replayed_seq)
                .bind(r.id)
                .bind(r.version)
                .execute(&mut **tx)
                .await?;
            changed(done.rows_affected(), 1, "quarantined events")?;
        }
    }
    if !commit.conflicts.is_empty() {
        let rows = &commit.conflicts;
        sqlx::query(q("insert_conflicts")?)
            .bind(column(rows, |r| r.id))
            .bind(column(rows, |r| r.source.as_str()))
            .bind(column(rows, |r| r.event_id.as_str()))
            .bind(column(rows, |r| r.original_seq))
            .bind(column(rows, |r| r.event_type.as_str()))
            .bind(column(rows, |r| r.data.as_str()))
            .bind(column(rows, |r| r.raw.as_str()))
            .bind(column(rows, |r| r.received_at.as_str()))
            .bind(column(rows, |r| r.case_id))
            .execute(&mut **tx)
            .await?;
    }
    let (new, mut old): (Vec<&EntryRow>, Vec<&EntryRow>) =
        commit.entries.iter().partition(|e| e.version == 0);
    if !new.is_empty() {
        let query = sqlx::query(q("insert_entries")?)
            .bind(column(&new, |r| r.row_id))
            .bind(column(&new, |r| r.kind.as_str()))
            .bind(column(&new, |r| r.entry_id.as_str()));
        entry_state(query, &new).execute(&mut **tx).await?;
    }
    if !old.is_empty() {
        // In id order, so that two writers lock the same rows in the same order.
        old.sort_by_key(|e| e.row_id);
        let query = sqlx::query(q("update_entries")?)
            .bind(column(&old, |r| r.row_id))
            .bind(column(&old, |r| r.version));
        let done = entry_state(query, &old).execute(&mut **tx).await?;
        changed(done.rows_affected(), old.len(), "entries")?;
    }
    if !commit.lines.is_empty() {
        let rows = &commit.lines;
        sqlx::query(q("insert_lines")?)
            .bind(column(rows, |r| r.id))
            .bind(column(rows, |r| r.kind.as_str()))
            .bind(column(rows, |r| r.entry_row))
            .bind(column(rows, |r| r.posting as i32))
            .bind(column(rows, |r| r.source_id.as_str()))
            .bind(column(rows, |r| r.event_seq))
            .bind(column(rows, |r| r.project_code.as_str()))
            .bind(column(rows, |r| r.worker_id.as_str()))
            .bind(column(rows, |r| r.date))
            .bind(column(rows, |r| r.quantity))
            .bind(column(rows, |r| r.rate))
            .bind(column(rows, |r| r.rate_currency.code()))
            .bind(column(rows, |r| r.fx_rate))
            .bind(column(rows, |r| r.amount))
            .bind(column(rows, |r| r.currency.code()))
            .bind(column(rows, |r| r.tax_code.as_str()))
            .bind(column(rows, |r| r.billing_class.as_str()))
            .bind(column(rows, |r| r.reverses))
            .bind(column(rows, |r| r.correlation_id.as_str()))
            .bind(column(rows, |r| r.created_at.as_str()))
            .bind(column(rows, |r| r.step_id))
            .bind(column(rows, |r| r.overtime_hours))
            .bind(column(rows, |r| r.role.as_deref()))
            .execute(&mut **tx)
            .await?;
    }
    let (new, mut old): (Vec<&StepRow>, Vec<&StepRow>) =
        commit.steps.iter().partition(|s| s.version == 0);
    if !new.is_empty() {
        let query = sqlx::query(q("insert_steps")?)
            .bind(column(&new, |r| r.id))
            .bind(column(&new, |r| r.flow.as_str()))
            .bind(column(&new, |r| r.step.as_str()))
            .bind(column(&new, |r| r.system.as_str()))
            .bind(column(&new, |r| r.subject))
            .bind(column(&new, |r| r.business_key.as_str()));
        step_state(query, &new)
            .bind(column(&new, |r| r.correlation_id.as_str()))
            .bind(column(&new, |r| r.event_seq))
            .bind(column(&new, |r| r.created_at.as_str()))
            .bind(column(&new, |r| r.done_at.as_deref()))
            .execute(&mut **tx)
            .await?;
        // A step inserted waiting on one that is already done is due at once. Its
        // prerequisites are locked first: a commit marking one done waits for this one, so
        // that it sees (and releases) the step inserted here.
        let waiting: Vec<&StepRow> = new
            .iter()
            .copied()
            .filter(|s| s.state == StepState::Waiting)
            .collect();
        if !waiting.is_empty() {
            let mut prerequisites: Vec<i64> = waiting.iter().filter_map(|s| s.waits_on).collect();
            prerequisites.sort_unstable();
            prerequisites.dedup();
            sqlx::query(q("lock_prerequisites")?)
                .bind(&prerequisites)
                .fetch_all(&mut **tx)
                .await?;
            sqlx::query(q("release_if_done")?)
                .bind(waiting.iter().map(|s| s.id).collect::<Vec<_>>())
                .bind(&prerequisites)
                .execute(&mut **tx)
                .await?;
        }
    }
    if !old.is_empty() {
        old.sort_by_key(|s| s.id);
        let query = sqlx::query(q("update_steps")?)
            .bind(column(&old, |r| r.id))
            .bind(column(&old, |r| r.version));
        let done = step_state(query, &old)
            .bind(column(&old, |r| r.done_at.as_deref()))
            .execute(&mut **tx)
            .await?;
        changed(done.rows_affected(), old.len(), "steps")?;
    }
    let done: Vec<i64> = commit
        .steps
        .iter()
        .filter(|s| s.state == StepState::Done)
        .map(|s| s.id)
        .collect();
    if !done.is_empty() {
        sqlx::query(q("release_waiters")?)
            .bind(&done)
            .execute(&mut **tx)
            .await?;
    }
    for r in commit.cases.iter() {
        let value = r.value;
        let currency = r.currency.map(|c| c.code().to_string());
        if r.version == 0 {
            sqlx::query(q("insert_case")?)
                .bind(r.id)
                .bind(&r.kind)
                .bind(r.owner.as_str())
                .bind(&r.business_key)
                .bind(r.state.as_str())
                .bind(&r.reason)
                .bind(&r.suggested_fix)
                .bind(&r.correlation_id)
                .bind(r.event_seq)
                .bind(&r.flow)
                .bind(r.entry_row)
                .bind(r.step_id)
                .bind(value)
                .bind(currency)
                .bind(&r.created_at)
                .bind(&r.updated_at)
                .bind(&r.resolution)
                .bind(&r.evidence)
                .execute(&mut **tx)
                .await?;
        } else {
            let done = sqlx::query(q("update_case")?)
                .bind(r.state.as_str())
                .bind(&r.reason)
                .bind(r.event_seq)
                .bind(value)
                .bind(currency)
                .bind(&r.updated_at)
                .bind(&r.resolution)
                .bind(&r.evidence)
                .bind(r.id)
                .bind(r.version)
                .execute(&mut **tx)
                .await?;
            changed(done.rows_affected(), 1, "cases")?;
        }
    }
    for r in &commit.projects {
        sqlx::query(q("insert_project")?)
            .bind(r.id)
            .bind(&r.project_code)
            .bind(&r.opportunity_id)
            .bind(r.event_seq)
            .bind(&r.correlation_id)
            .bind(&r.created_at)
            .execute(&mut **tx)
            .await?;
    }
    for r in &commit.xrefs {
        sqlx::query(q("insert_xref")?)
            .bind(&r.kind)
            .bind(&r.canonical_id)
            .bind(&r.system)
            .bind(&r.system_id)
            .bind(&r.correlation_id)
            .bind(&r.created_at)
            .execute(&mut **tx)
            .await?;
    }
    for r in &commit.outbound {
        sqlx::query(q("insert_outbound")?)
            .bind(r.id)
            .bind(&r.event_type)
            .bind(&r.key)
            .bind(&r.data)
            .bind(&r.correlation_id)
            .bind(&r.published_at)
            .execute(&mut **tx)
            .await?;
    }
    if !commit.timeline.is_empty() {
        let rows = &commit.timeline;
        sqlx::query(q("insert_timeline")?)
            .bind(column(rows, |r| r.correlation_id.as_str()))
            .bind(column(rows, |r| r.at.as_str()))
            .bind(column(rows, |r| r.what.as_str()))
            .bind(column(rows, |r| r.detail.as_str()))
            .bind(column(rows, |r| r.step_id))
            .bind(column(rows, |r| r.actor.as_deref()))
            .execute(&mut **tx)
            .await?;
    }
    for r in commit.worker_days.iter() {
        if r.version == 0 {
            sqlx::query(q("insert_worker_day")?)
                .bind(r.id)
                .bind(&r.worker_id)
                .bind(r.day)
                .bind(r.hours)
                .execute(&mut **tx)
                .await?;
        } else {
            let done = sqlx::query(q("update_worker_day")?)
                .bind(r.hours)
                .bind(r.id)
                .bind(r.version)
                .execute(&mut **tx)
                .await?;
            changed(done.rows_affected(), 1, "worker days")?;
        }
    }
    upsert_payroll(tx, &commit.payroll).await?;
    for r in &commit.payroll_loads {
        insert_payroll_load(tx, r).await?;
    }
    for id in &commit.payroll_checked {
        sqlx::query(q("check_payroll_load")?)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    let c = &commit.counters;
    if !c.is_zero() {
        sqlx::query(q("add_counters")?)
            .bind(commit.node)
            .bind(c.received as i64)
            .bind(c.duplicates as i64)
            .bind(c.conflicts as i64)
            .bind(c.quarantined as i64)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn insert_quarantine(
    tx: &mut Transaction<'_, Postgres>,
    r: &QuarantineRow,
) -> Result<(), Stop> {
    sqlx::query(q("insert_quarantine")?)
        .bind(r.id)
        .bind(&r.source)
        .bind(&r.event_id)
        .bind(&r.raw)
        .bind(&r.field)
        .bind(&r.reason)
        .bind(&r.received_at)
        .bind(&r.state)
        .bind(r.replayed_seq)
        .bind(&r.kind)
        .bind(&r.file)
        .bind(r.line.map(|l| l as i64))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Payroll actuals per statement: arrays of this many rows stay well inside a message.
const PAYROLL_CHUNK: usize = 10_000;

/// Writes payroll actuals, each replacing the stored one of its (period, worker) where it
/// differs; answers how many changed something.
async fn upsert_payroll(
    tx: &mut Transaction<'_, Postgres>,
    actuals: &[PayrollActualRow],
) -> Result<u64, Stop> {
    let mut changed = 0;
    for chunk in actuals.chunks(PAYROLL_CHUNK) {
        // One statement may not change a row twice: of a key's rows, the last is sent.
        let mut last: std::collections::HashMap<(&str, &str), usize> =
            std::collections::HashMap::with_capacity(chunk.len());
        for (i, r) in chunk.iter().enumerate() {
            last.insert((r.period.as_str(), r.worker_id.as_str()), i);
        }
        let rows: Vec<&PayrollActualRow> = chunk
            .iter()
            .enumerate()
            .filter(|(i, r)| last[&(r.period.as_str(), r.worker_id.as_str())] == *i)
            .map(|(_, r)| r)
            .collect();
        let rows = rows.as_slice();
        let done = sqlx::query(q("upsert_payroll_actuals")?)
            .bind(column(rows, |r| r.period.as_str()))
            .bind(column(rows, |r| r.worker_id.as_str()))
            .bind(column(rows, |r| r.gross_cost))
            .bind(column(rows, |r| r.currency.code()))
            .bind(column(rows, |r| r.load_id))
            .bind(column(rows, |r| r.line as i64))
            .execute(&mut **tx)
            .await?;
        changed += done.rows_affected();
    }
    Ok(changed)
}

async fn insert_payroll_load(
    tx: &mut Transaction<'_, Postgres>,
    r: &PayrollLoadRow,
) -> Result<(), Stop> {
    sqlx::query(q("insert_payroll_load")?)
        .bind(r.id)
        .bind(&r.file)
        .bind(r.rows as i64)
        .bind(r.loaded as i64)
        .bind(r.duplicates as i64)
        .bind(r.rejected as i64)
        .bind(&r.loaded_at)
        .bind(r.checked)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes a payroll load in one transaction, part by part as the file is read: its
/// actuals, its refused rows, its row with the counts.
pub async fn load_payroll(
    tx: &mut Transaction<'_, Postgres>,
    load: &PayrollLoad,
) -> Result<PayrollLoadRow, Stop> {
    let mut changed = 0;
    loop {
        // The reader thread fills the channel meanwhile; a part is a few milliseconds away.
        let part = {
            let parts = load
                .parts
                .lock()
                .map_err(|_| Stop::Db(EngineError::Store("a payroll load was poisoned".into())))?;
            parts.recv()
        };
        let part = part.map_err(|_| {
            Stop::Db(EngineError::Store(
                "the payroll file stopped before its end; nothing of it was stored".into(),
            ))
        })?;
        match part {
            PayrollPart::Actuals(actuals) => changed += upsert_payroll(tx, &actuals).await?,
            PayrollPart::End {
                rows,
                rejected,
                repeats,
            } => {
                let first: i64 = if rejected.is_empty() {
                    0
                } else {
                    sqlx::query_scalar(q("reserve_ids")?)
                        .bind(IdKind::Quarantine.as_str())
                        .bind(rejected.len() as i64)
                        .fetch_one(&mut **tx)
                        .await?
                };
                for (i, r) in rejected.iter().enumerate() {
                    let mut r = r.clone();
                    r.id = first + i as i64;
                    insert_quarantine(tx, &r).await?;
                }
                if repeats {
                    let count: i64 = sqlx::query_scalar(q("payroll_changed_by_load")?)
                        .bind(load.load.id)
                        .fetch_one(&mut **tx)
                        .await?;
                    changed = count as u64;
                }
                let mut row = load.load.clone();
                row.rows = rows;
                row.rejected = rejected.len() as u64;
                row.loaded = changed;
                row.duplicates = rows.saturating_sub(changed).saturating_sub(row.rejected);
                row.checked = changed == 0;
                insert_payroll_load(tx, &row).await?;
                return Ok(row);
            }
        }
    }
}

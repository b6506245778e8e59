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
            .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.event_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.correlation_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.occurred_at.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.received_at.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.raw.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.data.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.ref_version).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    if !commit.inbox_removed.is_empty() {
        sqlx::query(q("delete_inbox")?)
            .bind(&commit.inbox_removed)
            .execute(&mut **tx)
            .await?;
    }
    for r in commit.quarantine.iter() {
        if r.version == 0 {
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
                .execute(&mut **tx)
                .await?;
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
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.original_seq).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.event_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.data.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.raw.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.received_at.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.case_id).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    let (new, mut old): (Vec<&EntryRow>, Vec<&EntryRow>) =
        commit.entries.iter().partition(|e| e.version == 0);
    if !new.is_empty() {
        sqlx::query(q("insert_entries")?)
            .bind(new.iter().map(|r| r.row_id).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.entry_id.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.event_seq).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.fingerprint as i64).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.line_id).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.case_id).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.value).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|r| r.currency.map(|c| c.code().to_string()))
                    .collect::<Vec<_>>(),
            )
            .bind(new.iter().map(|r| r.manual).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.postings as i32).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    if !old.is_empty() {
        // In id order, so that two writers lock the same rows in the same order.
        old.sort_by_key(|e| e.row_id);
        let done = sqlx::query(q("update_entries")?)
            .bind(old.iter().map(|r| r.row_id).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.version).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.phase.as_str()).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.event_seq).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.fingerprint as i64).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.line_id).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.case_id).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.value).collect::<Vec<_>>())
            .bind(
                old.iter()
                    .map(|r| r.currency.map(|c| c.code().to_string()))
                    .collect::<Vec<_>>(),
            )
            .bind(old.iter().map(|r| r.manual).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.postings as i32).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
        changed(done.rows_affected(), old.len(), "entries")?;
    }
    if !commit.lines.is_empty() {
        let rows = &commit.lines;
        sqlx::query(q("insert_lines")?)
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.entry_row).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.posting as i32).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.source_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.event_seq).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.project_code.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.worker_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.date).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.quantity).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.rate).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.rate_currency.code())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.fx_rate).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.amount).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.currency.code()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.tax_code.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.billing_class.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.reverses).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.correlation_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.created_at.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.step_id).collect::<Vec<_>>())
            .execute(&mut **tx)
            .await?;
    }
    let (new, mut old): (Vec<&StepRow>, Vec<&StepRow>) =
        commit.steps.iter().partition(|s| s.version == 0);
    if !new.is_empty() {
        sqlx::query(q("insert_steps")?)
            .bind(new.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.flow.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.step.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.system.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.subject).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|r| r.business_key.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(new.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.waits_on).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.attempts as i32).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.lease_owner).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.lease_until).collect::<Vec<_>>())
            .bind(new.iter().map(|r| r.result.as_deref()).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|r| r.last_error.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(new.iter().map(|r| r.outcome_unknown).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|r| r.correlation_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(new.iter().map(|r| r.event_seq).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|r| r.created_at.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(new.iter().map(|r| r.done_at.as_deref()).collect::<Vec<_>>())
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
        let done = sqlx::query(q("update_steps")?)
            .bind(old.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.version).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.waits_on).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.attempts as i32).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.lease_owner).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.lease_until).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.result.as_deref()).collect::<Vec<_>>())
            .bind(
                old.iter()
                    .map(|r| r.last_error.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(old.iter().map(|r| r.outcome_unknown).collect::<Vec<_>>())
            .bind(old.iter().map(|r| r.done_at.as_deref()).collect::<Vec<_>>())
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
            .bind(
                rows.iter()
                    .map(|r| r.correlation_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.at.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.what.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.detail.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.step_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.actor.as_deref()).collect::<Vec<_>>())
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

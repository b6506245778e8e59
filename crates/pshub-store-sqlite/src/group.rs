//! The group commit of every write. A writer hands its job to the group and waits; one of
//! the waiting writers (the leader) takes every job queued so far, runs each in a savepoint
//! of one transaction, commits it with one fsync, and hands each writer its result. Jobs
//! that arrive meanwhile form the next group. A job that conflicts is rolled back to its
//! savepoint; the others of its group are written all the same.

use crate::write::write;
use crate::{Stop, db, q};
use pshub_engine::error::{EngineError, Result};
use pshub_engine::store::*;
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

pub enum Job {
    Commit(Arc<Commit>),
    /// Finds the due steps of a system in the group's transaction (so that it sees what
    /// earlier jobs of the group released) and leases them.
    Claim(ClaimRequest),
    /// Leases these steps (found due on a reader) where they are still claimable.
    Lease {
        due: Vec<StepRow>,
        owner: i64,
        until: i64,
        now: i64,
    },
    Renew {
        ids: Vec<i64>,
        owner: i64,
        until_ms: i64,
    },
    Reserve {
        kind: IdKind,
        count: u32,
    },
    Token(TokenRow),
    /// A connector's cursor: name, cursor, when saved.
    Cursor([String; 3]),
    Payroll(Box<PayrollLoad>),
}

pub enum JobResult {
    Committed(std::result::Result<(), CommitError>),
    Claimed(Result<Vec<Claimed>>),
    Renewed(Result<usize>),
    Reserved(Result<i64>),
    Done(Result<()>),
    Loaded(Result<PayrollLoadRow>),
}

impl JobResult {
    /// The error for a result of another kind than the job's (never expected).
    pub fn unexpected(&self) -> EngineError {
        EngineError::Store("the store answered a job with another kind of result".into())
    }
}

#[derive(Default)]
struct Queue {
    jobs: Vec<(u64, Job)>,
    results: HashMap<u64, JobResult>,
    next: u64,
    leading: bool,
}

pub struct Group {
    conn: Mutex<Connection>,
    queue: Mutex<Queue>,
    done: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Group {
    pub fn new(conn: Connection) -> Self {
        Group {
            conn: Mutex::new(conn),
            queue: Mutex::new(Queue::default()),
            done: Condvar::new(),
        }
    }

    /// Runs `job` in the next group to commit, and answers its result once durable.
    pub fn run(&self, job: Job) -> JobResult {
        self.run_all(vec![job])
            .pop()
            .unwrap_or(JobResult::Done(Err(EngineError::Store("no result".into()))))
    }

    /// Runs `jobs` in order in one group, and answers their results once durable.
    pub fn run_all(&self, jobs: Vec<Job>) -> Vec<JobResult> {
        let mut queue = lock(&self.queue);
        let first = queue.next;
        let count = jobs.len() as u64;
        for job in jobs {
            let ticket = queue.next;
            queue.next += 1;
            queue.jobs.push((ticket, job));
        }
        loop {
            if (first..first + count).all(|t| queue.results.contains_key(&t)) {
                return (first..first + count)
                    .filter_map(|t| queue.results.remove(&t))
                    .collect();
            }
            if !queue.leading {
                queue.leading = true;
                let jobs = std::mem::take(&mut queue.jobs);
                drop(queue);
                let results = self.lead(jobs);
                queue = lock(&self.queue);
                queue.results.extend(results);
                queue.leading = false;
                self.done.notify_all();
                continue;
            }
            queue = self.done.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Runs a group: one transaction, a savepoint per job, one commit.
    fn lead(&self, jobs: Vec<(u64, Job)>) -> Vec<(u64, JobResult)> {
        let mut conn = lock(&self.conn);
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_group(&mut conn, &jobs)));
        let count = jobs.len();
        match outcome {
            Ok(Ok(results)) => jobs.into_iter().map(|(t, _)| t).zip(results).collect(),
            Ok(Err(error)) => jobs
                .into_iter()
                .map(|(ticket, job)| (ticket, failed(&job, error.clone())))
                .collect(),
            Err(_) => {
                // A panic mid-group leaves nothing committed; each writer hears of it.
                let _ = conn.execute_batch("ROLLBACK");
                let error = EngineError::Store(format!(
                    "the store stopped on an internal error in a group of {count} writes; nothing of it was written"
                ));
                jobs.into_iter()
                    .map(|(ticket, job)| (ticket, failed(&job, error.clone())))
                    .collect()
            }
        }
    }
}

fn failed(job: &Job, error: EngineError) -> JobResult {
    match job {
        Job::Commit(_) => JobResult::Committed(Err(CommitError::Store(error))),
        Job::Lease { .. } | Job::Claim(_) => JobResult::Claimed(Err(error)),
        Job::Renew { .. } => JobResult::Renewed(Err(error)),
        Job::Reserve { .. } => JobResult::Reserved(Err(error)),
        Job::Token(_) | Job::Cursor(_) => JobResult::Done(Err(error)),
        Job::Payroll(_) => JobResult::Loaded(Err(error)),
    }
}

fn kept(outcome: &JobResult) -> bool {
    matches!(
        outcome,
        JobResult::Committed(Ok(()))
            | JobResult::Claimed(Ok(_))
            | JobResult::Renewed(Ok(_))
            | JobResult::Reserved(Ok(_))
            | JobResult::Done(Ok(()))
            | JobResult::Loaded(Ok(_))
    )
}

/// One transaction for all of `jobs`. The first job of a transaction runs bare: when it
/// fails, the transaction holds nothing else and is rolled back whole, and the rest start
/// a new one. Each later job runs in a savepoint, so that its failure undoes only itself.
/// (A savepoint copies every page it changes; the first job, usually the largest, is spared.)
fn run_group(conn: &mut Connection, jobs: &[(u64, Job)]) -> Result<Vec<JobResult>> {
    let mut results = Vec::with_capacity(jobs.len());
    let mut rest = jobs;
    while let Some(((_, first), later)) = rest.split_first() {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db)?;
        let outcome = run_job(&tx, first);
        if !kept(&outcome) {
            tx.rollback().map_err(db)?;
            results.push(outcome);
            rest = later;
            continue;
        }
        results.push(outcome);
        for (_, job) in later {
            tx.execute_batch("SAVEPOINT job").map_err(db)?;
            let outcome = run_job(&tx, job);
            if kept(&outcome) {
                tx.execute_batch("RELEASE job").map_err(db)?;
            } else {
                tx.execute_batch("ROLLBACK TO job; RELEASE job")
                    .map_err(db)?;
            }
            results.push(outcome);
        }
        tx.commit().map_err(db)?;
        break;
    }
    Ok(results)
}

fn run_job(conn: &Connection, job: &Job) -> JobResult {
    match job {
        Job::Commit(commit) => JobResult::Committed(match write(conn, commit) {
            Ok(()) => Ok(()),
            Err(Stop::Conflict(why)) => Err(CommitError::Conflict(why)),
            Err(Stop::Db(error)) => Err(CommitError::Store(error)),
        }),
        Job::Lease {
            due,
            owner,
            until,
            now,
        } => JobResult::Claimed(lease(conn, due, *owner, *until, *now)),
        Job::Claim(claim) => JobResult::Claimed(
            crate::due_steps(conn, claim)
                .and_then(|due| lease(conn, &due, claim.owner, claim.until_ms(), claim.now_ms)),
        ),
        Job::Renew {
            ids,
            owner,
            until_ms,
        } => JobResult::Renewed((|| {
            let mut stmt = conn.prepare_cached(q("renew_lease")?).map_err(db)?;
            let mut held = 0;
            for id in ids {
                held += stmt.execute(params![until_ms, id, owner]).map_err(db)?;
            }
            Ok(held)
        })()),
        Job::Reserve { kind, count } => JobResult::Reserved(q("reserve_ids").and_then(|sql| {
            conn.query_row(sql, params![kind.as_str(), count], |r| r.get(0))
                .map_err(db)
        })),
        Job::Payroll(load) => {
            let loaded = crate::write::load_payroll(conn, load).map_err(|e| match e {
                Stop::Conflict(why) => EngineError::Store(format!("payroll load refused: {why}")),
                Stop::Db(error) => error,
            });
            JobResult::Loaded(loaded)
        }
        Job::Cursor(cursor) => JobResult::Done(q("save_cursor").and_then(|sql| {
            conn.execute(sql, params![cursor[0], cursor[1], cursor[2]])
                .map(|_| ())
                .map_err(db)
        })),
        Job::Token(token) => JobResult::Done(q("insert_token").and_then(|sql| {
            conn.execute(
                sql,
                params![
                    token.hash,
                    token.id,
                    token.role,
                    token.name,
                    token.created_at
                ],
            )
            .map(|_| ())
            .map_err(db)
        })),
    }
}

/// Leases steps found due on a reader, in one statement: those still claimable now (another
/// claimer may have leased some since they were read). A step that changed otherwise since
/// it was read is left out too; its lease lapses and it is claimed again.
fn lease(
    conn: &Connection,
    due: &[StepRow],
    owner: i64,
    until: i64,
    now: i64,
) -> Result<Vec<Claimed>> {
    let ids: Vec<i64> = due.iter().map(|s| s.id).collect();
    let leased: HashMap<i64, i64> = {
        let mut stmt = conn.prepare_cached(q("lease_steps")?).map_err(db)?;
        let rows = stmt
            .query_map(
                params![
                    owner,
                    until,
                    serde_json::to_string(&ids).unwrap_or_default(),
                    now
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)?
    };
    Ok(due
        .iter()
        .filter(|step| leased.get(&step.id) == Some(&(step.version + 1)))
        .map(|step| {
            let mut step = step.clone();
            let taken_over = step.state == StepState::Running;
            step.state = StepState::Running;
            step.lease_owner = Some(owner);
            step.lease_until = until;
            step.version += 1;
            Claimed { step, taken_over }
        })
        .collect())
}

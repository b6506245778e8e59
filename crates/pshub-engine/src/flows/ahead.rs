//! The batch decided just before the one being decided, whose commit is still being
//! written: what its rows will be once it is durable. The writer decides batch N+1 while
//! batch N commits; the reads of N+1 see N's rows through this, before they are in the
//! store. Nothing of N+1 is answered before N+1 is durable, which is after N is (one
//! writer commits them in order), and when N fails, N+1 is undone and decided again.
//!
//! A row of N can also be in the store already (N committed while N+1 read): every read
//! that merges the two takes each row once, N's version first.

use crate::store::{CaseRow, EntryRow, WorkerDayRow};
use crate::store::{Commit, EntryKind, InboxRow, LineRow, StepRow, Versioned};
use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::Arc;

pub struct Ahead {
    commit: Arc<Commit>,
    events: HashMap<(String, String), usize>,
    entries: HashMap<(EntryKind, String), i64>,
    lines: HashMap<i64, usize>,
    worker_days: HashMap<(String, NaiveDate), i64>,
}

impl Ahead {
    pub fn new(commit: Arc<Commit>) -> Self {
        let events = commit
            .inbox
            .iter()
            .enumerate()
            .map(|(at, row)| ((row.source.clone(), row.event_id.clone()), at))
            .collect();
        let entries = commit
            .entries
            .iter()
            .map(|row| ((row.kind, row.entry_id.clone()), row.row_id))
            .collect();
        let lines = commit
            .lines
            .iter()
            .enumerate()
            .map(|(at, line)| (line.id, at))
            .collect();
        let worker_days = commit
            .worker_days
            .iter()
            .map(|row| ((row.worker_id.clone(), row.day), row.id))
            .collect();
        Ahead {
            commit,
            events,
            entries,
            lines,
            worker_days,
        }
    }

    /// The event of this key that the batch before accepted.
    pub fn event(&self, source: &str, event_id: &str) -> Option<&InboxRow> {
        let at = self
            .events
            .get(&(source.to_string(), event_id.to_string()))?;
        self.commit.inbox.get(*at)
    }

    pub fn entry(&self, kind: EntryKind, entry_id: &str) -> Option<EntryRow> {
        let row_id = self.entries.get(&(kind, entry_id.to_string()))?;
        self.commit
            .entries
            .get(*row_id)
            .map(Versioned::as_committed)
    }

    pub fn line(&self, id: i64) -> Option<&LineRow> {
        self.lines.get(&id).map(|&at| &self.commit.lines[at])
    }

    /// The lines of a worker on a project that the batch before writes.
    pub fn lines_of<'a>(
        &'a self,
        worker_id: &'a str,
        project_code: &'a str,
    ) -> impl Iterator<Item = &'a LineRow> + 'a {
        self.commit
            .lines
            .iter()
            .filter(move |l| l.worker_id == worker_id && l.project_code == project_code)
    }

    pub fn step(&self, id: i64) -> Option<StepRow> {
        self.commit.steps.get(id).map(Versioned::as_committed)
    }

    pub fn steps_of_subject(&self, flow: &str, subject: i64) -> impl Iterator<Item = StepRow> {
        self.commit
            .steps
            .iter()
            .filter(move |s| s.subject == subject && s.flow == flow)
            .map(Versioned::as_committed)
    }

    pub fn case(&self, id: i64) -> Option<CaseRow> {
        self.commit.cases.get(id).map(Versioned::as_committed)
    }

    /// The case of this kind and business key that the batch before writes, open or not.
    pub fn case_of(&self, kind: &str, business_key: &str) -> Option<CaseRow> {
        self.commit
            .cases
            .iter()
            .find(|c| c.kind == kind && c.business_key == business_key)
            .map(Versioned::as_committed)
    }

    pub fn worker_day(&self, worker_id: &str, day: NaiveDate) -> Option<WorkerDayRow> {
        let id = self.worker_days.get(&(worker_id.to_string(), day))?;
        self.commit
            .worker_days
            .get(*id)
            .map(Versioned::as_committed)
    }
}

//! Everything one durable transaction writes, with the conditions under which it may.

use super::rows::*;
use std::collections::HashMap;

/// Rows of one kind written by a commit, at most once each: a row changed twice while a
/// commit is built is written once, in its last form, checked against the version it had
/// when it was first read.
#[derive(Debug, Clone)]
pub struct Rows<T> {
    rows: Vec<T>,
    at: HashMap<i64, usize>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Rows {
            rows: Vec::new(),
            at: HashMap::new(),
        }
    }
}

impl<T: Versioned> Rows<T> {
    /// Writes `row`, replacing an earlier write of the same row in this commit.
    pub fn put(&mut self, row: T) {
        match self.at.get(&row.id()) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.at.insert(row.id(), self.rows.len());
                self.rows.push(row);
            }
        }
    }

    /// The row as this commit will write it, if it writes it.
    pub fn get(&self, id: i64) -> Option<&T> {
        self.at.get(&id).map(|&i| &self.rows[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.rows.iter()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The reference version a commit moves from and to. Reference changes are applied by every
/// process in the order of these versions; a commit whose `seen` is no longer the store's
/// current version was built on stale reference data and is refused as a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferenceCheck {
    /// The version the commit's decisions were made against.
    pub seen: i64,
    /// The version after the commit (`seen` plus the reference events it adds).
    pub to: i64,
}

/// Everything one durable transaction writes. Inserts of rows with a unique key (an event's
/// `(source, id)`, an entry's `(kind, id)`, a line's `(entry, posting)`, a step's
/// `(flow, step, subject)`) and updates of versioned rows are checked by the store: if
/// another writer got there first, the whole commit is refused with
/// [`CommitError::Conflict`] and nothing of it is written.
#[derive(Debug, Default)]
pub struct Commit {
    pub inbox: Vec<InboxRow>,
    /// Inbox rows removed (a stored event that no longer reads, moved to quarantine).
    pub inbox_removed: Vec<i64>,
    /// Stored events kept unapplied, now applied as reference data: (seq, reference
    /// version). Each must still be unapplied, else the commit is a conflict.
    pub inbox_applied: Vec<(i64, i64)>,
    pub quarantine: Rows<QuarantineRow>,
    pub conflicts: Vec<ConflictRow>,
    pub entries: Rows<EntryRow>,
    pub lines: Vec<LineRow>,
    pub steps: Rows<StepRow>,
    pub cases: Rows<CaseRow>,
    pub projects: Vec<ProjectRow>,
    /// Ids registered (a repeat of a known one is kept once).
    pub xrefs: Vec<XrefRow>,
    pub outbound: Vec<OutboundRow>,
    pub timeline: Vec<TimelineRow>,
    pub worker_days: Rows<WorkerDayRow>,
    /// Payroll actuals written (a `payroll.actuals` event): each replaces the actual of its
    /// (worker, period).
    pub payroll: Vec<PayrollActualRow>,
    pub payroll_loads: Vec<PayrollLoadRow>,
    /// Loads whose cases the hub has now opened.
    pub payroll_checked: Vec<i64>,
    /// Added to this process's counters.
    pub counters: Counters,
    /// The process the counters are kept for.
    pub node: i64,
    /// When set, the commit was decided against reference data at `seen`.
    pub reference: Option<ReferenceCheck>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.inbox.is_empty()
            && self.inbox_removed.is_empty()
            && self.quarantine.is_empty()
            && self.conflicts.is_empty()
            && self.entries.is_empty()
            && self.lines.is_empty()
            && self.steps.is_empty()
            && self.xrefs.is_empty()
            && self.cases.is_empty()
            && self.projects.is_empty()
            && self.outbound.is_empty()
            && self.timeline.is_empty()
            && self.worker_days.is_empty()
            && self.payroll.is_empty()
            && self.payroll_loads.is_empty()
            && self.payroll_checked.is_empty()
            && self.counters.is_zero()
            && self.reference.is_none_or(|r| r.seen == r.to)
    }
}

/// Why a commit wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Another writer changed what this commit was built on: a key it inserts exists, a
    /// row it updates has a newer version, or the reference data moved. Rebuild and retry.
    #[error("conflict with another writer: {0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] crate::EngineError),
}

//! The storage boundary. The engine decides every row; a store allocates ids, writes a
//! [`Commit`] atomically and durably (or nothing of it, when another writer got there
//! first), claims due steps with expiring leases, and answers reads. One conformance suite
//! runs against every implementation.

mod commit;
mod rows;
pub mod sql;

pub use commit::*;
pub use rows::*;

use crate::error::Result;
use pshub_model::Currency;
use pshub_model::records::{ExceptionState, LineKind, OwnerTeam};
use rust_decimal::Decimal;
use std::sync::Arc;

/// Filters of the line list; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct LineFilter {
    pub project_code: Option<String>,
    pub worker_id: Option<String>,
    pub source_id: Option<String>,
    pub entry_row: Option<i64>,
    pub status: Option<LineStatus>,
    pub event_seq: Option<i64>,
}

#[derive(Debug, Default, Clone)]
pub struct CaseFilter {
    pub owner: Option<OwnerTeam>,
    pub state: Option<ExceptionState>,
    pub kind: Option<String>,
    pub event_seq: Option<i64>,
    pub correlation_id: Option<String>,
    pub step_id: Option<i64>,
}

/// Which approved hours to read; `None` means any. Dates are inclusive.
#[derive(Debug, Clone)]
pub struct HoursFilter {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub worker_id: Option<String>,
    pub project_code: Option<String>,
}

/// A payroll load as the store takes it: its row (the store fills in the counts) and its
/// parts, which arrive while the file is still being read, so that reading and writing
/// overlap. The store writes every part in one transaction, which commits when `End`
/// arrives (and rolls back if the sender goes away first).
pub struct PayrollLoad {
    pub load: PayrollLoadRow,
    pub parts: std::sync::Mutex<std::sync::mpsc::Receiver<PayrollPart>>,
}

impl std::fmt::Debug for PayrollLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayrollLoad")
            .field("load", &self.load)
            .finish()
    }
}

#[derive(Debug)]
pub enum PayrollPart {
    /// Actuals in file order: each replaces the stored one of its (worker, period) where it
    /// differs (a later row of the same key replaces an earlier one).
    Actuals(Vec<PayrollActualRow>),
    End {
        /// Data rows of the file.
        rows: u64,
        /// Refused rows, for the quarantine (the store gives them their ids).
        rejected: Vec<QuarantineRow>,
        /// Whether some (worker, period) came more than once: the store then counts the
        /// actuals the load changed instead of the rows that changed one.
        repeats: bool,
    },
}

/// A page of a list: rows with an id greater than `after`, at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after: i64,
    pub limit: u32,
}

impl Page {
    pub const ALL: Page = Page {
        after: 0,
        limit: u32::MAX,
    };

    pub fn first(limit: u32) -> Page {
        Page { after: 0, limit }
    }
}

/// The rows that mention a correlation id, for its timeline.
#[derive(Debug, Default)]
pub struct Trail {
    pub events: Vec<InboxRow>,
    pub lines: Vec<DeliveredLine>,
    pub steps: Vec<StepRow>,
    pub cases: Vec<CaseRow>,
    pub timeline: Vec<TimelineRow>,
}

/// One entry as the summary counts it.
#[derive(Debug, Clone, Copy)]
pub struct EntryFigure {
    pub phase: EntryPhase,
    pub manual: bool,
    pub value: Option<(Decimal, Currency)>,
    /// The state of the step that delivers its current line, if it has one.
    pub line_state: Option<StepState>,
}

/// One line as the summary counts it.
#[derive(Debug, Clone, Copy)]
pub struct LineFigure {
    pub kind: LineKind,
    pub state: StepState,
    /// It waits on a step that failed or is held: nothing moves until a case is resolved.
    pub blocked: bool,
    pub amount: Decimal,
    pub currency: Currency,
}

/// What a delivery worker claims: up to `limit` steps of `system` that are due at `now_ms`
/// (pending and due, or running under a lease that lapsed), leased to `owner` for `lease_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub system: String,
    pub now_ms: i64,
    pub limit: u32,
    pub owner: i64,
    pub lease_ms: i64,
}

impl ClaimRequest {
    /// When the leases it takes lapse.
    pub fn until_ms(&self) -> i64 {
        self.now_ms.saturating_add(self.lease_ms)
    }
}

/// Everything the hub and its API read. Readers see what is committed and never wait for
/// a writer. A store hands out as many as asked ([`Store::reader`]).
pub trait StoreReader: Send {
    fn event(&mut self, seq: i64) -> Result<Option<InboxRow>>;
    /// The stored event with this source and id (read through the store's unique index).
    fn event_by_key(&mut self, source: &str, event_id: &str) -> Result<Option<InboxRow>>;
    fn quarantined(&mut self, id: i64) -> Result<Option<QuarantineRow>>;
    fn quarantine_list(&mut self, open_only: bool, page: Page) -> Result<Vec<QuarantineRow>>;
    fn quarantine_of_event(&mut self, source: &str, event_id: &str) -> Result<Vec<QuarantineRow>>;
    fn conflicts(&mut self, page: Page) -> Result<Vec<ConflictRow>>;
    /// Bodies received again under the id of the event with this seq, but different.
    fn conflicts_of(&mut self, original_seq: i64) -> Result<Vec<ConflictRow>>;
    fn conflict(&mut self, id: i64) -> Result<Option<ConflictRow>>;

    fn entry(&mut self, row_id: i64) -> Result<Option<EntryRow>>;
    fn entry_by_key(&mut self, kind: EntryKind, entry_id: &str) -> Result<Option<EntryRow>>;
    fn line(&mut self, id: i64) -> Result<Option<DeliveredLine>>;
    fn lines(&mut self, filter: &LineFilter, page: Page) -> Result<Vec<DeliveredLine>>;
    /// Lines by id, in any order; ids not found are left out.
    fn lines_by_ids(&mut self, ids: &[i64]) -> Result<Vec<LineRow>>;

    fn step(&mut self, id: i64) -> Result<Option<StepRow>>;
    /// Steps by id, in any order; ids not found are left out.
    fn steps_by_ids(&mut self, ids: &[i64]) -> Result<Vec<StepRow>>;
    /// The steps a flow keeps for one subject, in id order.
    fn steps_of_subject(&mut self, flow: &str, subject: i64) -> Result<Vec<StepRow>>;
    /// The steps an event created, in id order.
    fn steps_of_event(&mut self, seq: i64) -> Result<Vec<StepRow>>;
    /// Steps in a state, oldest first (dead letters are the `failed` ones).
    fn steps_in_state(&mut self, state: StepState, page: Page) -> Result<Vec<StepRow>>;
    /// The timeline rows of one step, oldest first: its attempt history.
    fn timeline_of_step(&mut self, step_id: i64) -> Result<Vec<TimelineRow>>;

    fn case(&mut self, id: i64) -> Result<Option<CaseRow>>;
    fn cases(&mut self, filter: &CaseFilter, page: Page) -> Result<Vec<CaseRow>>;

    fn project(&mut self, project_code: &str) -> Result<Option<ProjectRow>>;
    fn outbound(&mut self, event_type: Option<&str>, page: Page) -> Result<Vec<OutboundRow>>;
    /// The outbound events published at or after `published_from` (a stamp), by id.
    fn outbound_since(&mut self, published_from: &str, page: Page) -> Result<Vec<OutboundRow>>;
    fn worker_day(
        &mut self,
        worker_id: &str,
        day: chrono::NaiveDate,
    ) -> Result<Option<WorkerDayRow>>;

    /// The approved hours of time entries dated in the filter's range, by date.
    fn worked_hours(&mut self, filter: &HoursFilter) -> Result<Vec<WorkedEntry>>;
    fn payroll_actual(&mut self, worker_id: &str, period: &str)
    -> Result<Option<PayrollActualRow>>;
    /// The actuals of one month.
    fn payroll_of_period(&mut self, period: &str) -> Result<Vec<PayrollActualRow>>;
    /// The actuals a load last changed.
    fn payroll_of_load(&mut self, load_id: i64) -> Result<Vec<PayrollActualRow>>;
    /// Loads, oldest first; only those whose cases are still to open, if asked.
    fn payroll_loads(&mut self, unchecked_only: bool, page: Page) -> Result<Vec<PayrollLoadRow>>;

    /// The events of one source in the order they were received, those received at or
    /// after `since` (an RFC 3339 stamp) if given: what a mapping replay reads.
    fn events_of_source(
        &mut self,
        source: &str,
        since: Option<&str>,
        page: Page,
    ) -> Result<Vec<InboxRow>>;
    /// The events of one correlation id, in the order they were received.
    fn events_of_correlation(&mut self, correlation_id: &str) -> Result<Vec<InboxRow>>;
    /// The timeline rows of one correlation id, oldest first.
    fn timeline_of_correlation(&mut self, correlation_id: &str) -> Result<Vec<TimelineRow>>;

    /// Everything one correlation id touched: its events, their steps and lines, its cases
    /// and its timeline.
    fn trail(&mut self, correlation_id: &str) -> Result<Trail> {
        let events = self.events_of_correlation(correlation_id)?;
        let mut steps = Vec::new();
        let mut lines = Vec::new();
        for event in &events {
            steps.extend(self.steps_of_event(event.seq)?);
            lines.extend(self.lines(
                &LineFilter {
                    event_seq: Some(event.seq),
                    ..LineFilter::default()
                },
                Page::ALL,
            )?);
        }
        let cases = self.cases(
            &CaseFilter {
                correlation_id: Some(correlation_id.to_string()),
                ..CaseFilter::default()
            },
            Page::ALL,
        )?;
        let timeline = self.timeline_of_correlation(correlation_id)?;
        Ok(Trail {
            events,
            lines,
            steps,
            cases,
            timeline,
        })
    }
    /// The counters of every process, summed.
    fn counters(&mut self) -> Result<Counters>;
    /// Visits every entry, for the summary.
    fn each_entry_figure(&mut self, visit: &mut dyn FnMut(EntryFigure)) -> Result<()>;
    /// Visits every line, for the summary.
    fn each_line_figure(&mut self, visit: &mut dyn FnMut(LineFigure)) -> Result<()>;
    /// Visits every exception case, for the summary.
    fn each_case(&mut self, visit: &mut dyn FnMut(&CaseRow)) -> Result<()>;
    /// How many steps wait on a step that failed or is held.
    fn blocked_steps(&mut self) -> Result<u64>;
    fn token(&mut self, token_hash: &str) -> Result<Option<TokenRow>>;
    /// Every system's id of the `kind` thing that `id` names, the hub's own id or any
    /// system's (the id registry); empty when none does.
    fn xrefs(&mut self, kind: &str, id: &str) -> Result<Vec<XrefRow>>;
    /// Where the polling connector `name` has read to, as it saved it.
    fn cursor(&mut self, name: &str) -> Result<Option<String>>;
    /// A trivial read: the store answers.
    fn ping(&mut self) -> Result<()>;
    /// Runs `read` on one snapshot of the store: every read it makes sees the same commits,
    /// whatever is committed meanwhile (the summary's figures agree with each other).
    fn consistent(
        &mut self,
        read: &mut dyn FnMut(&mut dyn StoreReader) -> Result<()>,
    ) -> Result<()>;
}

/// A store shared by every thread of a process (and by the processes sharing its database).
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;
    /// Writes all of `commit` durably, or nothing of it. (Shared so that a store may write
    /// commits of several writers in one transaction.)
    fn commit(&self, commit: &Arc<Commit>) -> std::result::Result<(), CommitError>;
    /// A new reader on its own connection.
    fn reader(&self) -> Result<Box<dyn StoreReader>>;
    /// Reserves `count` consecutive ids of a kind; answers the first.
    fn reserve_ids(&self, kind: IdKind, count: u32) -> Result<i64>;
    /// The events with these keys, where stored (one answer per key, in order). A store may
    /// answer from an index it keeps in memory, as long as a key it misses fails the commit
    /// that inserts it again.
    fn find_events(&self, keys: &[(&str, &str)]) -> Result<Vec<Option<InboxRow>>>;
    /// The entries with these keys, where stored; as [`Store::find_events`].
    fn find_entries(&self, keys: &[(EntryKind, &str)]) -> Result<Vec<Option<EntryRow>>>;
    /// The store's current reference version.
    fn reference_version(&self) -> Result<i64>;
    /// Visits the reference events with a version above `after`, in version order, up to
    /// the version the store had when the read began; answers that version.
    fn reference_since(
        &self,
        after: i64,
        visit: &mut dyn FnMut(InboxRow) -> Result<()>,
    ) -> Result<i64>;
    /// Claims the steps `claim` asks for. Two claimers never get the same step while its
    /// lease runs.
    fn claim_steps(&self, claim: &ClaimRequest) -> Result<Vec<Claimed>>;
    /// Writes `commit`, then claims as [`Store::claim_steps`] does, in one durable write where
    /// the store can: a delivery round records its outcomes and claims the next round's steps
    /// together. The claim sees what the commit changed (steps it released).
    fn commit_and_claim(
        &self,
        commit: &Arc<Commit>,
        claim: &ClaimRequest,
    ) -> (std::result::Result<(), CommitError>, Result<Vec<Claimed>>) {
        let committed = self.commit(commit);
        let claimed = self.claim_steps(claim);
        (committed, claimed)
    }
    /// Extends the leases `owner` still holds on these steps; answers how many it holds.
    fn renew_leases(&self, ids: &[i64], owner: i64, until_ms: i64) -> Result<usize>;
    /// Stores a batch of payroll rows in one durable transaction: each actual replaces the
    /// stored one of its (worker, period) where it differs, and counts as a duplicate where
    /// it does not. Answers the load's row as stored.
    fn load_payroll(&self, load: PayrollLoad) -> Result<PayrollLoadRow>;
    /// Stores an API token by its hash.
    fn add_token(&self, token: &TokenRow) -> Result<()>;
    /// Saves where the polling connector `name` has read to, replacing what it saved before.
    /// A connector saves it after the events it read were committed, so that a crash
    /// between the two reads them again (and the hub drops them as duplicates by id).
    fn save_cursor(&self, name: &str, cursor: &str, saved_at: &str) -> Result<()>;
}

//! The rows the engine writes and reads. Every id is allocated by the store (in blocks, see
//! [`crate::ids`]); every row that changes after it is written carries a `version` that the
//! store checks on update, so that two writers never overwrite each other unseen.

use chrono::NaiveDate;
use pshub_model::Currency;
use pshub_model::records::{ExceptionState, LineKind, OwnerTeam};
use rust_decimal::Decimal;

/// A row that changes after it is written: updated only if nobody else changed it since it
/// was read. A `version` of 0 means the row is new (inserted, version 1).
pub trait Versioned: Clone {
    fn id(&self) -> i64;
    fn version(&self) -> i64;
    /// The row as the store holds it once the commit that writes it is durable.
    fn as_committed(&self) -> Self;
}

macro_rules! versioned {
    ($($row:ty => $id:ident;)*) => {$(
        impl Versioned for $row {
            fn id(&self) -> i64 {
                self.$id
            }
            fn version(&self) -> i64 {
                self.version
            }
            fn as_committed(&self) -> Self {
                let mut row = self.clone();
                row.version += 1;
                row
            }
        }
    )*};
}

versioned! {
    QuarantineRow => id;
    EntryRow => row_id;
    StepRow => id;
    CaseRow => id;
    WorkerDayRow => id;
}

/// A received, valid event, as committed to the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    pub seq: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub correlation_id: String,
    pub occurred_at: String,
    pub received_at: String,
    /// The event exactly as it arrived (every field, known or not).
    pub raw: String,
    /// The canonical `data` (see `EventData::canonical_json`).
    pub data: String,
    /// For a reference event (workers, rates, projects, assignments), its place in the one
    /// order in which every process applies reference changes.
    pub ref_version: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRow {
    pub id: i64,
    pub source: Option<String>,
    pub event_id: Option<String>,
    pub raw: String,
    pub field: String,
    pub reason: String,
    pub received_at: String,
    /// `open`, or `replayed` once a corrected event was accepted in its place.
    pub state: String,
    pub replayed_seq: Option<i64>,
    pub version: i64,
    /// `event`, or `payroll_row` (a row of a payroll file, at `file`:`line`).
    pub kind: String,
    pub file: Option<String>,
    pub line: Option<u64>,
}

/// What a quarantined item is.
pub const QUARANTINE_EVENT: &str = "event";
pub const QUARANTINE_PAYROLL_ROW: &str = "payroll_row";
/// A source's record that its mapping could not make canonical (kept as its payload).
pub const QUARANTINE_MAPPED_RECORD: &str = "mapped_record";
/// A webhook request whose signature did not verify: kept for inspection, never applied.
pub const QUARANTINE_UNVERIFIED: &str = "unverified_payload";

/// A body received under an event's id that differs from the first: kept, never applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRow {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub original_seq: i64,
    pub event_type: String,
    pub data: String,
    pub raw: String,
    pub received_at: String,
    pub case_id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Time,
    Expense,
    /// A contract's milestone, reached: `entry_id` is `{contract_id}:{milestone_id}`.
    Milestone,
}

impl EntryKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryKind::Time => "time",
            EntryKind::Expense => "expense",
            EntryKind::Milestone => "milestone",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "time" => Some(EntryKind::Time),
            "expense" => Some(EntryKind::Expense),
            "milestone" => Some(EntryKind::Milestone),
            _ => None,
        }
    }
}

/// Where a time entry or expense stands in the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPhase {
    /// A line was created for it (delivered by its step).
    Billed,
    /// An open exception case holds it.
    Held,
    /// Rejected at the source; any line it had was reversed.
    Rejected,
    /// Approved but not billable.
    NotBillable,
    /// Its case was dismissed: the firm decided not to bill it.
    WrittenOff,
}

impl EntryPhase {
    pub const ALL: [EntryPhase; 5] = [
        EntryPhase::Billed,
        EntryPhase::Held,
        EntryPhase::Rejected,
        EntryPhase::NotBillable,
        EntryPhase::WrittenOff,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            EntryPhase::Billed => "billed",
            EntryPhase::Held => "held",
            EntryPhase::Rejected => "rejected",
            EntryPhase::NotBillable => "not_billable",
            EntryPhase::WrittenOff => "written_off",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

/// The hub's record of one time entry or expense: its latest event and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRow {
    pub row_id: i64,
    pub kind: EntryKind,
    pub entry_id: String,
    pub phase: EntryPhase,
    pub event_seq: i64,
    /// Fingerprint of the canonical data that was billed or held.
    pub fingerprint: u64,
    pub line_id: Option<i64>,
    pub case_id: Option<i64>,
    /// Its billable value in the billing currency, where computable.
    pub value: Option<Decimal>,
    pub currency: Option<Currency>,
    /// Billed only after a person resolved a case.
    pub manual: bool,
    /// Lines created for it so far; the next line is posting `postings + 1`.
    pub postings: u32,
    /// The hours it stands for, while it is an approved time entry (what costing spreads
    /// payroll over); `None` for expenses, milestones and rejected entries.
    pub work: Option<WorkedHours>,
    pub version: i64,
}

/// The approved hours of one time entry, as costing reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkedHours {
    pub worker_id: String,
    pub project_code: String,
    pub date: NaiveDate,
    pub hours: Decimal,
    /// Of `hours`, those past the region's daily or weekly limit when it was approved.
    pub overtime_hours: Decimal,
}

/// An approved time entry's hours, with its entry's id, as [`super::StoreReader::worked_hours`]
/// answers them.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkedEntry {
    pub entry_id: String,
    pub work: WorkedHours,
}

/// One worker's payroll cost of one month. There is one per (worker, period): a later row
/// replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct PayrollActualRow {
    pub worker_id: String,
    /// `YYYY-MM`.
    pub period: String,
    pub gross_cost: Decimal,
    pub currency: Currency,
    /// The load that last changed it.
    pub load_id: i64,
    /// Its line in that load's file (0 for an event).
    pub line: u64,
}

/// One load of payroll rows: a file, a request body, or one `payroll.actuals` event.
#[derive(Debug, Clone, PartialEq)]
pub struct PayrollLoadRow {
    pub id: i64,
    /// The file's name, `request`, or `event:{source}:{id}`.
    pub file: String,
    pub rows: u64,
    /// Actuals it added or changed.
    pub loaded: u64,
    /// Rows that changed nothing: the same actual stored already, or replaced by a later
    /// row of the same load.
    pub duplicates: u64,
    pub rejected: u64,
    pub loaded_at: String,
    /// Whether the hub has opened the cases its actuals imply.
    pub checked: bool,
}

/// An invoice line the hub created. Its delivery to the ERP is its step (`step_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct LineRow {
    pub id: i64,
    pub kind: LineKind,
    pub entry_row: i64,
    /// The n-th line of its entry (1 for the first approval, 2 for its reversal, ...).
    pub posting: u32,
    pub source_id: String,
    pub event_seq: i64,
    pub project_code: String,
    pub worker_id: String,
    pub date: NaiveDate,
    pub quantity: Decimal,
    pub rate: Decimal,
    pub rate_currency: Currency,
    pub fx_rate: Option<Decimal>,
    pub amount: Decimal,
    pub currency: Currency,
    pub tax_code: String,
    pub billing_class: String,
    pub reverses: Option<i64>,
    pub correlation_id: String,
    pub created_at: String,
    pub step_id: i64,
    /// Of `quantity`, the overtime hours billed at the region's `bill_multiplier` (only on
    /// a contract that bills overtime).
    pub overtime_hours: Option<Decimal>,
    /// The role a time line was priced for.
    pub role: Option<String>,
}

/// A line with its delivery, as lists and the API read it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveredLine {
    pub line: LineRow,
    pub step: StepRow,
}

/// How a line stands in the ERP, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStatus {
    /// On its way (pending, running or waiting for another step).
    Pending,
    /// The ERP holds it.
    Posted,
    /// The ERP refused it; an exception case holds it.
    Refused,
    /// Delivery gave up after its retries; a dead letter holds it.
    Failed,
}

impl LineStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            LineStatus::Pending => "pending",
            LineStatus::Posted => "posted",
            LineStatus::Refused => "refused",
            LineStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Posted, Self::Refused, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    pub fn of(state: StepState) -> Self {
        match state {
            StepState::Done => LineStatus::Posted,
            StepState::Held => LineStatus::Refused,
            StepState::Failed => LineStatus::Failed,
            StepState::Pending | StepState::Running | StepState::Waiting => LineStatus::Pending,
        }
    }

    /// The step states a line of this status is in.
    pub fn states(&self) -> &'static [StepState] {
        match self {
            LineStatus::Pending => &[StepState::Pending, StepState::Running, StepState::Waiting],
            LineStatus::Posted => &[StepState::Done],
            LineStatus::Refused => &[StepState::Held],
            LineStatus::Failed => &[StepState::Failed],
        }
    }
}

/// Where a flow's step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepState {
    /// Due at `next_attempt_at`.
    Pending,
    /// Claimed by a process whose lease runs until `lease_until`.
    Running,
    Done,
    /// Gave up after its retries (a dead letter); a case holds it.
    Failed,
    /// Waits for the step `waits_on` to be done.
    Waiting,
    /// The target refused it on business grounds; a case holds it.
    Held,
}

impl StepState {
    pub const ALL: [StepState; 6] = [
        StepState::Pending,
        StepState::Running,
        StepState::Done,
        StepState::Failed,
        StepState::Waiting,
        StepState::Held,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Waiting => "waiting",
            StepState::Held => "held",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// One durable, idempotent step of a flow: a call to a target system, or to the hub's own
/// outbound stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub id: i64,
    /// The flow that made it and knows how to run it (`time_to_bill`).
    pub flow: String,
    /// The step's name within its flow (`post_line`, `psa`, `erp`).
    pub step: String,
    /// The configured system it calls (`erp`, `psa`, `crm`, `hub`).
    pub system: String,
    /// The row it acts for: a line's id, a project's id.
    pub subject: i64,
    /// The business key its idempotency key derives from (`time:T-1:1`, `P-1`).
    pub business_key: String,
    pub state: StepState,
    pub waits_on: Option<i64>,
    pub attempts: u32,
    /// Unix milliseconds.
    pub next_attempt_at: i64,
    pub lease_owner: Option<i64>,
    pub lease_until: i64,
    /// What the target answered: the id it assigned.
    pub result: Option<String>,
    pub last_error: Option<String>,
    /// The last attempt may have done its write without an answer: ask before creating.
    pub outcome_unknown: bool,
    pub correlation_id: String,
    pub event_seq: i64,
    pub created_at: String,
    pub done_at: Option<String>,
    pub version: i64,
}

impl StepRow {
    /// The key that makes the step's call harmless to repeat; derived from its flow, name
    /// and business key, which the store keeps unique (see ARCHITECTURE.md).
    /// A step repeated for a second system (`post_line@legacy`, a shadow ERP's copy) carries
    /// the key of the step it repeats: keys are per target, and to that target it is the
    /// same call.
    pub fn idempotency_key(&self) -> String {
        format!(
            "pshub:{}:{}:{}",
            self.flow,
            self.base_step(),
            self.business_key
        )
    }

    /// Whether the step repeats another for a second system (a shadow ERP's copy): its
    /// success is not the work's, and it is neither counted nor published.
    pub fn is_copy(&self) -> bool {
        self.step.contains('@')
    }

    /// The step's name without the system it was repeated for.
    pub fn base_step(&self) -> &str {
        self.step
            .split_once('@')
            .map_or(&self.step, |(base, _)| base)
    }

    /// Its name where operators see it: `time_to_bill.post_line`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.flow, self.step)
    }
}

/// A step as the claim handed it out: with its state before the claim, so that a step whose
/// earlier holder died mid-call is treated as possibly done.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub step: StepRow,
    /// It was running under a lease that lapsed: its earlier call may have gone through.
    pub taken_over: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaseRow {
    pub id: i64,
    pub kind: String,
    pub owner: OwnerTeam,
    pub business_key: String,
    pub state: ExceptionState,
    pub reason: String,
    pub suggested_fix: String,
    pub correlation_id: String,
    pub event_seq: i64,
    /// The flow that resolves it.
    pub flow: String,
    /// The entry it holds.
    pub entry_row: Option<i64>,
    /// The step it holds (refused, or dead-lettered).
    pub step_id: Option<i64>,
    pub value: Option<Decimal>,
    pub currency: Option<Currency>,
    pub created_at: String,
    pub updated_at: String,
    pub resolution: Option<String>,
    /// What supports it, as JSON: the attempt history of a dead letter, a conflicting body.
    pub evidence: Option<String>,
    pub version: i64,
}

/// A project the opportunity-to-project flow provisions; its steps act for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRow {
    pub id: i64,
    pub project_code: String,
    pub opportunity_id: String,
    /// The closed-won event that created it.
    pub event_seq: i64,
    pub correlation_id: String,
    pub created_at: String,
}

/// One system's id of one thing the hub knows (the id registry): the CRM's opportunity,
/// the PSA's engagement and the ERP's project of the hub's project `P-1`. Unique by
/// (kind, system, system id): each system's id names one thing.
#[derive(Debug, Clone, PartialEq)]
pub struct XrefRow {
    /// What the thing is: `project`, `customer`, `invoice`.
    pub kind: String,
    /// The hub's own id of it (the project code, the customer id, the invoice id).
    pub canonical_id: String,
    pub system: String,
    pub system_id: String,
    pub correlation_id: String,
    pub created_at: String,
}

/// A business event on the hub's outbound stream (`project.provisioned`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundRow {
    pub id: i64,
    pub event_type: String,
    /// Unique: publishing the same event twice keeps one.
    pub key: String,
    pub data: String,
    pub correlation_id: String,
    pub published_at: String,
}

/// A notable moment on a transaction's timeline that no other row records (a failed
/// attempt, a resolution, a replay), with who did it when a person did.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineRow {
    pub correlation_id: String,
    pub at: String,
    pub what: String,
    pub detail: String,
    pub step_id: Option<i64>,
    /// `{"token_id", "name", "role"}` of the person who acted, as JSON.
    pub actor: Option<String>,
}

/// Approved hours of one worker on one day, for the daily limit.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerDayRow {
    pub id: i64,
    pub worker_id: String,
    pub day: NaiveDate,
    pub hours: Decimal,
    pub version: i64,
}

/// An API token: its hash, role and who it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    pub id: i64,
    pub hash: String,
    pub role: String,
    pub name: String,
    pub created_at: String,
}

/// Counters that must survive restarts, kept per process and summed when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    pub duplicates: u64,
    pub conflicts: u64,
    pub quarantined: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.conflicts += other.conflicts;
        self.quarantined += other.quarantined;
    }

    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

/// Kinds of ids the store hands out, each in its own sequence. Lines take the id of the step
/// that posts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKind {
    Event,
    Quarantine,
    Conflict,
    Entry,
    Step,
    Case,
    Project,
    Outbound,
    WorkerDay,
    Token,
    Node,
    PayrollLoad,
}

impl IdKind {
    pub const ALL: [IdKind; 12] = [
        IdKind::Event,
        IdKind::Quarantine,
        IdKind::Conflict,
        IdKind::Entry,
        IdKind::Step,
        IdKind::Case,
        IdKind::Project,
        IdKind::Outbound,
        IdKind::WorkerDay,
        IdKind::Token,
        IdKind::Node,
        IdKind::PayrollLoad,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            IdKind::Event => "event",
            IdKind::Quarantine => "quarantine",
            IdKind::Conflict => "conflict",
            IdKind::Entry => "entry",
            IdKind::Step => "step",
            IdKind::Case => "case",
            IdKind::Project => "project",
            IdKind::Outbound => "outbound",
            IdKind::WorkerDay => "worker_day",
            IdKind::Token => "token",
            IdKind::Node => "node",
            IdKind::PayrollLoad => "payroll_load",
        }
    }
}

/// A dead letter as operators name it: `line-12` (the step that posts invoice line 12) or
/// `call-3` (step 3, any other call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    Line(i64),
    Call(i64),
}

impl std::fmt::Display for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outbound::Line(id) => write!(f, "line-{id}"),
            Outbound::Call(id) => write!(f, "call-{id}"),
        }
    }
}

impl Outbound {
    pub fn parse(raw: &str) -> Option<Self> {
        let (kind, id) = raw.split_once('-')?;
        let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
        match kind {
            "line" => Some(Outbound::Line(id)),
            "call" => Some(Outbound::Call(id)),
            _ => None,
        }
    }
}

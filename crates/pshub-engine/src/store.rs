//! The storage boundary. The engine decides every id and every row; a store writes a
//! [`Commit`] atomically and durably, and answers reads. One conformance suite runs against
//! every implementation.

use crate::error::Result;
use chrono::NaiveDate;
use pshub_model::Currency;
use pshub_model::records::{ExceptionState, LineKind, OwnerTeam};
use rust_decimal::Decimal;

/// A received, valid event, as committed to the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxRow {
    pub seq: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub business_key: String,
    pub correlation_id: String,
    pub occurred_at: String,
    pub received_at: String,
    /// The canonical `data` (see `EventData::canonical_json`).
    pub data: String,
    /// Reference data (workers, rates, projects) rather than work to bill.
    pub reference: bool,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRow {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub original_seq: i64,
    pub event_type: String,
    pub data: String,
    pub received_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Time,
    Expense,
}

impl EntryKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryKind::Time => "time",
            EntryKind::Expense => "expense",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "time" => Some(EntryKind::Time),
            "expense" => Some(EntryKind::Expense),
            _ => None,
        }
    }
}

/// Where a time entry or expense stands in the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryPhase {
    /// A line was created for it (pending or posted in the ERP).
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
        [
            Self::Billed,
            Self::Held,
            Self::Rejected,
            Self::NotBillable,
            Self::WrittenOff,
        ]
        .into_iter()
        .find(|p| p.as_str() == raw)
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineStatus {
    /// Created; the outbox is delivering it.
    Pending,
    /// The ERP holds it under `erp_id`.
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
}

/// An invoice line the hub created. A line is its own outbox record: it carries its
/// delivery to the ERP (status, attempts, schedule, last error), and its idempotency key
/// is [`line_idempotency_key`].
#[derive(Debug, Clone, PartialEq)]
pub struct LineRow {
    pub id: i64,
    pub kind: LineKind,
    pub status: LineStatus,
    pub erp_id: Option<String>,
    pub entry_row: i64,
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
    pub posted_at: Option<String>,
    pub attempts: u32,
    /// Unix milliseconds.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// The key that makes posting a line to the ERP idempotent.
pub fn line_idempotency_key(line_id: i64) -> String {
    format!("pshub-line-{line_id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Delivered,
    /// Retries exhausted: listed as a dead letter, replayable.
    Dead,
    /// Refused by the target on business grounds: an exception case holds it.
    Refused,
}

impl OutboxState {
    pub fn as_str(&self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Delivered => "delivered",
            OutboxState::Dead => "dead",
            OutboxState::Refused => "refused",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Dead, Self::Refused]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// Something the hub sends to another system: a line, or an outbox call. Written
/// `line-12` or `call-3` where operators name it (dead letters).
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

/// What an outbox item asks of its target. Invoice lines are not outbox items: each line
/// carries its own delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ProvisionProject,
}

impl Operation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::ProvisionProject => "provision_project",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::ProvisionProject]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One call to another system (other than posting a line), durable until delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub target: String,
    pub operation: Operation,
    /// What the call is about: for a project, the inbox seq of its closed-won event.
    pub subject: i64,
    pub idempotency_key: String,
    pub state: OutboxState,
    pub attempts: u32,
    /// Unix milliseconds.
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub correlation_id: String,
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
    /// The entry it holds, or the line or outbox item whose delivery was refused.
    pub entry_row: Option<i64>,
    pub line_id: Option<i64>,
    pub outbox_id: Option<i64>,
    pub value: Option<Decimal>,
    pub currency: Option<Currency>,
    pub created_at: String,
    pub updated_at: String,
    pub resolution: Option<String>,
}

/// Something due for delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// A line to post; for a reversal, with the ERP id of the line it cancels once that
    /// line is posted.
    Line {
        line: Box<LineRow>,
        reverses_erp_id: Option<String>,
    },
    /// Another call.
    Call(OutboxRow),
}

/// A notable step on a transaction's timeline that no other row records (a failed
/// attempt, a resolution, a replay).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub correlation_id: String,
    pub at: String,
    pub step: String,
    pub detail: String,
}

/// Counters that must survive restarts.
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
}

/// A line's delivery moved on: the only fields of a line that change after it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct LineUpdate {
    pub id: i64,
    pub status: LineStatus,
    pub erp_id: Option<String>,
    pub posted_at: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

impl LineRow {
    pub fn update(&self) -> LineUpdate {
        LineUpdate {
            id: self.id,
            status: self.status,
            erp_id: self.erp_id.clone(),
            posted_at: self.posted_at.clone(),
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
        }
    }
}

/// An outbox item's delivery moved on: the only fields of an item that change.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxUpdate {
    pub id: i64,
    pub state: OutboxState,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

impl OutboxRow {
    pub fn update(&self) -> OutboxUpdate {
        OutboxUpdate {
            id: self.id,
            state: self.state,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
        }
    }
}

/// Everything one durable transaction writes. New lines and outbox items are inserted and
/// later change only through their updates; entries, cases and quarantine rows are written
/// whole, replacing the row with the same id.
#[derive(Debug, Default)]
pub struct Commit {
    pub inbox: Vec<InboxRow>,
    pub quarantine: Vec<QuarantineRow>,
    pub conflicts: Vec<ConflictRow>,
    pub entries: Vec<EntryRow>,
    pub lines: Vec<LineRow>,
    pub line_updates: Vec<LineUpdate>,
    pub outbox: Vec<OutboxRow>,
    pub outbox_updates: Vec<OutboxUpdate>,
    pub cases: Vec<CaseRow>,
    pub steps: Vec<StepRow>,
    pub counters: Counters,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.inbox.is_empty()
            && self.quarantine.is_empty()
            && self.conflicts.is_empty()
            && self.entries.is_empty()
            && self.lines.is_empty()
            && self.line_updates.is_empty()
            && self.outbox.is_empty()
            && self.outbox_updates.is_empty()
            && self.cases.is_empty()
            && self.steps.is_empty()
            && self.counters == Counters::default()
    }
}

/// What the hub needs at start to rebuild its memory.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Reference events in commit order.
    pub reference: Vec<InboxRow>,
    pub max_ids: MaxIds,
}

/// The highest id of each kind of row, so new ids continue after them.
#[derive(Debug, Default, Clone, Copy)]
pub struct MaxIds {
    pub seq: i64,
    pub quarantine: i64,
    pub conflict: i64,
    pub entry: i64,
    pub line: i64,
    pub outbox: i64,
    pub case: i64,
}

/// Filters of the line list; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct LineFilter {
    pub project_code: Option<String>,
    pub worker_id: Option<String>,
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
}

/// The rows that mention a correlation id, for its timeline.
#[derive(Debug, Default)]
pub struct Trail {
    pub events: Vec<InboxRow>,
    pub lines: Vec<LineRow>,
    pub outbox: Vec<OutboxRow>,
    pub cases: Vec<CaseRow>,
    pub steps: Vec<StepRow>,
}

/// Everything the hub and its API read. A store gives one on its own connection for the
/// writer ([`Store::reads`]) and fresh ones ([`Store::reader`]) that see what is committed
/// without waiting for the writer: the delivery worker's, and the API's.
pub trait StoreReader: Send {
    fn event(&mut self, seq: i64) -> Result<Option<InboxRow>>;
    fn quarantined(&mut self, id: i64) -> Result<Option<QuarantineRow>>;
    fn quarantine_list(&mut self, open_only: bool, page: Page) -> Result<Vec<QuarantineRow>>;
    fn quarantine_of_event(&mut self, source: &str, event_id: &str) -> Result<Vec<QuarantineRow>>;
    /// Bodies received again under the id of the event with this seq, but different.
    fn conflicts_of(&mut self, original_seq: i64) -> Result<Vec<ConflictRow>>;

    fn entry(&mut self, row_id: i64) -> Result<Option<EntryRow>>;
    fn line(&mut self, id: i64) -> Result<Option<LineRow>>;
    fn lines(&mut self, filter: &LineFilter, page: Page) -> Result<Vec<LineRow>>;
    fn case(&mut self, id: i64) -> Result<Option<CaseRow>>;
    fn cases(&mut self, filter: &CaseFilter, page: Page) -> Result<Vec<CaseRow>>;
    fn outbox_item(&mut self, id: i64) -> Result<Option<OutboxRow>>;
    fn outbox_list(&mut self, state: OutboxState, page: Page) -> Result<Vec<OutboxRow>>;
    /// Pending calls and lines due at `now_ms`, oldest first, at most `limit` of each.
    fn due_deliveries(&mut self, now_ms: i64, limit: u32) -> Result<Vec<Due>>;
    /// Calls of this operation not delivered yet (pending, dead or refused).
    fn undelivered(&mut self, operation: Operation) -> Result<Vec<OutboxRow>>;
    fn trail(&mut self, correlation_id: &str) -> Result<Trail>;
    fn counters(&mut self) -> Result<Counters>;
    /// Visits every entry row, for the summary.
    fn each_entry(&mut self, visit: &mut dyn FnMut(&EntryRow)) -> Result<()>;
    /// Visits every exception case, for the summary.
    fn each_case(&mut self, visit: &mut dyn FnMut(&CaseRow)) -> Result<()>;
    /// Visits the kind, status, currency and amount of every line, for the summary.
    fn each_line_amount(
        &mut self,
        visit: &mut dyn FnMut(LineKind, LineStatus, Currency, Decimal),
    ) -> Result<()>;
    /// The role of the token with this hash, if any.
    fn token_role(&mut self, token_hash: &str) -> Result<Option<String>>;
}

/// Durable state of the hub: the writer's handle. Implementations: `pshub-store-sqlite`
/// (embedded) and, in a later release, PostgreSQL.
pub trait Store: Send {
    /// Reads what the hub rebuilds its memory from.
    fn load(&mut self) -> Result<Loaded>;
    /// Writes all of `commit` in one durable transaction, or nothing.
    fn commit(&mut self, commit: &Commit) -> Result<()>;
    /// The stored event with this source and id. Only the writer answers this: its index
    /// of keys covers what it committed.
    fn find_event(&mut self, source: &str, event_id: &str) -> Result<Option<InboxRow>>;
    /// Reads on the writer's own connection, which see its latest commit.
    fn reads(&mut self) -> &mut dyn StoreReader;
    /// A new reader on its own connection.
    fn reader(&self) -> Result<Box<dyn StoreReader>>;
    /// Stores an API token by its hash.
    fn add_token(&mut self, token_hash: &str, role: &str, label: &str) -> Result<()>;
}

//! The hub: applies events to the world and the entries, and turns every decision into
//! rows of one [`Commit`]. Single-threaded by design; [`crate::Engine`] serialises access.
//!
//! Order per business key follows from applying each batch in arrival order under one
//! lock; the checks of entries are pure (`rules::evaluate`), so the work done under the
//! lock is small and the store commit dominates.

use crate::config::Config;
use crate::error::{ActionError, EngineError, Result};
use crate::fingerprint::fingerprint;
use crate::index::HashedIndex;
use crate::metrics::Metrics;
use crate::ports::{LinePosting, ProjectPosting};
use crate::rules::{self, Failure, Pricing, Verdict, Work};
use crate::store::*;
use crate::world::{Applied, World};
use chrono::{DateTime, Utc};
use pshub_model::fields::Obj;
use pshub_model::records::{ClosedWon, ExceptionState, LineKind, OwnerTeam};
use pshub_model::{Event, EventData, EventError, EventType, Money};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How an inbound event was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestStatus {
    Accepted,
    Duplicate,
    Conflict,
    Quarantined,
}

impl IngestStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            IngestStatus::Accepted => "accepted",
            IngestStatus::Duplicate => "duplicate",
            IngestStatus::Conflict => "conflict",
            IngestStatus::Quarantined => "quarantined",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestResult {
    pub id: Option<String>,
    pub status: IngestStatus,
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
}

/// An inbound event, parsed before it reaches the writer: parsing needs nothing but the
/// configured sources, so it runs on the sender's thread, outside the hub's lock.
#[derive(Debug, Clone)]
pub enum Incoming {
    Valid {
        event: Event,
        data: String,
    },
    Invalid {
        error: EventError,
        raw: String,
        correlation_id: Option<String>,
    },
}

impl Incoming {
    pub fn parse(value: &Value, config: &Config) -> Self {
        match Event::parse(value, |s| config.knows_source(s)) {
            Ok(event) => {
                let data = event.data.canonical_json();
                Incoming::Valid { event, data }
            }
            Err(error) => Incoming::Invalid {
                error,
                raw: value.to_string(),
                correlation_id: value
                    .get("correlation_id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
        }
    }
}

/// An entry's state as the flow reads it, taken from its row.
fn entry_key(kind: EntryKind, source_id: &str) -> String {
    let prefix = match kind {
        EntryKind::Time => "t:",
        EntryKind::Expense => "e:",
    };
    format!("{prefix}{source_id}")
}

#[derive(Debug, Clone, Copy)]
struct EntryState {
    row_id: i64,
    event_seq: i64,
    fingerprint: u64,
    /// The line when billed, the case when held, else 0.
    link: i64,
    phase: EntryPhase,
    manual: bool,
}

impl EntryState {
    fn of(row: &EntryRow) -> Self {
        EntryState {
            row_id: row.row_id,
            event_seq: row.event_seq,
            fingerprint: row.fingerprint,
            link: match row.phase {
                EntryPhase::Billed => row.line_id.unwrap_or(0),
                EntryPhase::Held => row.case_id.unwrap_or(0),
                _ => 0,
            },
            phase: row.phase,
            manual: row.manual,
        }
    }
}

/// One item the delivery worker is to send, built under the lock and sent outside it.
#[derive(Debug, Clone)]
pub enum Delivery {
    Line {
        item: OutboxRow,
        line: Box<LineRow>,
        posting: LinePosting,
    },
    Project {
        item: OutboxRow,
        posting: ProjectPosting,
    },
}

/// How one delivery went.
pub type DeliveryOutcome = std::result::Result<String, crate::ports::ErpError>;

/// What resolving a case led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The held work went through: the line created, if any.
    Posted { line_id: Option<i64> },
    /// The work now fails another check: the new case that holds it.
    HandedOver { case_id: i64, reason: String },
}

pub struct Hub {
    store: Box<dyn Store>,
    config: Config,
    world: World,
    /// Entry row ids by `t:` or `e:` and the entry's id; the rows themselves are in the store.
    entries: HashedIndex<i64>,
    next: MaxIds,
    metrics: Arc<Metrics>,
}

fn stamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_stored(row: &InboxRow) -> std::result::Result<EventData, String> {
    let value: Value = serde_json::from_str(&row.data).map_err(|e| e.to_string())?;
    let event_type = EventType::parse(&row.event_type)
        .ok_or_else(|| format!("unknown type {}", row.event_type))?;
    let data = Obj::new("data", &value).map_err(|e| e.to_string())?;
    EventData::parse(event_type, &data).map_err(|e| e.to_string())
}

impl Hub {
    /// Opens the hub over a store, rebuilding its memory from what the store holds.
    pub fn open(store: Box<dyn Store>, config: Config, metrics: Arc<Metrics>) -> Result<Self> {
        let mut hub = Hub {
            store,
            config,
            world: World::default(),
            entries: HashedIndex::default(),
            next: MaxIds::default(),
            metrics,
        };
        hub.rebuild()?;
        Ok(hub)
    }

    /// Rebuilds memory from the store: at start, and after a failed commit, so that
    /// nothing that was not written is believed.
    fn rebuild(&mut self) -> Result<()> {
        let loaded = self.store.load()?;
        let mut world = World::default();
        for row in &loaded.reference {
            let data = parse_stored(row).map_err(|error| {
                EngineError::Store(format!("stored event {} does not parse: {error}", row.seq))
            })?;
            world.apply(&data);
        }
        // Keys whose hash is taken by another key are checked against the store after the scan.
        let mut entries = HashedIndex::default();
        let mut deferred = Vec::new();
        self.store.each_entry(&mut |row| {
            let key = entry_key(row.kind, &row.entry_id);
            if entries.insert(&key, row.row_id, |_| Err(())).is_err() {
                deferred.push((key, row.row_id));
            }
        })?;
        for (key, row_id) in deferred {
            let store = &mut self.store;
            entries.insert(&key, row_id, |other| {
                Ok::<_, EngineError>(
                    store
                        .entry(*other)?
                        .is_some_and(|r| entry_key(r.kind, &r.entry_id) == key),
                )
            })?;
        }
        self.world = world;
        self.entries = entries;
        self.next = loaded.max_ids;
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&mut self) -> &mut dyn Store {
        self.store.as_mut()
    }

    /// Looks up the entry row id of a time entry or expense by its source id.
    pub fn entry_row(&mut self, kind: EntryKind, source_id: &str) -> Result<Option<i64>> {
        Ok(self
            .entry_state(&Commit::default(), kind, source_id)?
            .map(|s| s.row_id))
    }

    /// The state of an entry: as written earlier in `commit`, else as stored.
    fn entry_state(
        &mut self,
        commit: &Commit,
        kind: EntryKind,
        source_id: &str,
    ) -> Result<Option<EntryState>> {
        let key = entry_key(kind, source_id);
        let store = &mut self.store;
        let mut found = None;
        self.entries.get(&key, |row_id| {
            let row = match commit.entries.iter().rev().find(|e| e.row_id == *row_id) {
                Some(row) => Some(row.clone()),
                None => store.entry(*row_id)?,
            };
            found = row
                .filter(|r| r.kind == kind && r.entry_id == source_id)
                .map(|r| EntryState::of(&r));
            Ok::<_, EngineError>(found.is_some())
        })?;
        Ok(found)
    }

    fn write(&mut self, commit: &Commit) -> Result<()> {
        if commit.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.store.commit(commit) {
            tracing::error!(%error, "commit failed; rebuilding state from the store");
            self.rebuild()?;
            return Err(error);
        }
        Ok(())
    }

    /// Takes a batch of events: each is quarantined, found a duplicate or a conflict, or
    /// accepted and applied. Everything is committed in one transaction before returning.
    pub fn ingest(&mut self, batch: &[Incoming], now: DateTime<Utc>) -> Result<Vec<IngestResult>> {
        let mut commit = Commit::default();
        let mut accepted_here: HashMap<(String, String), usize> = HashMap::new();
        let mut results = Vec::with_capacity(batch.len());
        for incoming in batch {
            let result = self.ingest_one(incoming, now, &mut commit, &mut accepted_here)?;
            results.push(result);
        }
        self.write(&commit)?;
        self.metrics.record_ingest(&commit.counters);
        Ok(results)
    }

    /// Takes one event into `commit`. `accepted_here` maps the keys accepted earlier in the
    /// same commit to their place in `commit.inbox`, which the store cannot see yet.
    fn ingest_one(
        &mut self,
        incoming: &Incoming,
        now: DateTime<Utc>,
        commit: &mut Commit,
        accepted_here: &mut HashMap<(String, String), usize>,
    ) -> Result<IngestResult> {
        commit.counters.received += 1;
        let (event, data) = match incoming {
            Incoming::Valid { event, data } => (event, data),
            Incoming::Invalid {
                error,
                raw,
                correlation_id,
            } => {
                self.next.quarantine += 1;
                commit.counters.quarantined += 1;
                let reason = error.to_string();
                commit.quarantine.push(QuarantineRow {
                    id: self.next.quarantine,
                    source: error.source.clone(),
                    event_id: error.id.clone(),
                    raw: raw.clone(),
                    field: error.error.field.clone(),
                    reason: reason.clone(),
                    received_at: stamp(now),
                    state: "open".into(),
                    replayed_seq: None,
                });
                return Ok(IngestResult {
                    id: error.id.clone(),
                    status: IngestStatus::Quarantined,
                    reason: Some(reason),
                    correlation_id: correlation_id.clone(),
                });
            }
        };
        let key = (event.source.clone(), event.id.clone());
        let prior = match accepted_here.get(&key) {
            Some(at) => Some(commit.inbox[*at].clone()),
            None => self.store.find_event(&event.source, &event.id)?,
        };
        if let Some(prior) = prior {
            let result = |status, reason| IngestResult {
                id: Some(event.id.clone()),
                status,
                reason,
                correlation_id: Some(prior.correlation_id.clone()),
            };
            if prior.event_type == event.event_type.as_str() && prior.data == *data {
                commit.counters.duplicates += 1;
                return Ok(result(IngestStatus::Duplicate, None));
            }
            self.next.conflict += 1;
            commit.counters.conflicts += 1;
            commit.conflicts.push(ConflictRow {
                id: self.next.conflict,
                source: event.source.clone(),
                event_id: event.id.clone(),
                original_seq: prior.seq,
                event_type: event.event_type.as_str().to_string(),
                data: data.clone(),
                received_at: stamp(now),
            });
            let reason = format!(
                "{}/{} was first received with a different type or data (as {}); this body is kept as conflict {} and not applied",
                event.source, event.id, prior.event_type, self.next.conflict
            );
            return Ok(result(IngestStatus::Conflict, Some(reason)));
        }
        let correlation_id = self.accept(event, data.clone(), now, commit)?;
        accepted_here.insert(key, commit.inbox.len() - 1);
        Ok(IngestResult {
            id: Some(event.id.clone()),
            status: IngestStatus::Accepted,
            reason: None,
            correlation_id: Some(correlation_id),
        })
    }

    /// Records a new event in the inbox and applies it; answers its correlation id.
    fn accept(
        &mut self,
        event: &Event,
        data: String,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<String> {
        self.next.seq += 1;
        let seq = self.next.seq;
        let correlation_id = event
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("cor-{:011x}-{seq:09x}", now.timestamp_millis()));
        let fingerprint = fingerprint(&[&data]);
        let row = InboxRow {
            seq,
            source: event.source.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.as_str().to_string(),
            business_key: event.data.business_key(),
            correlation_id,
            occurred_at: stamp(event.occurred_at),
            received_at: stamp(now),
            data,
            reference: event.data.is_reference(),
        };
        let correlation_id = row.correlation_id.clone();
        commit.inbox.push(row);
        let ctx = Ctx {
            seq,
            correlation_id: &correlation_id,
            now,
            fingerprint,
        };
        match &event.data {
            EventData::TimeEntry { approved, entry } => {
                self.apply_work(Work::Time(entry), *approved, &ctx, commit)?
            }
            EventData::Expense { approved, expense } => {
                self.apply_work(Work::Expense(expense), *approved, &ctx, commit)?
            }
            EventData::ClosedWon(_) => {
                if let Applied::NewProject(code) = self.world.apply(&event.data) {
                    self.next.outbox += 1;
                    commit.outbox.push(OutboxRow {
                        id: self.next.outbox,
                        target: "erp".into(),
                        operation: Operation::ProvisionProject,
                        subject: seq,
                        idempotency_key: format!("project:{code}"),
                        state: OutboxState::Pending,
                        attempts: 0,
                        next_attempt_at: now.timestamp_millis(),
                        last_error: None,
                        correlation_id: correlation_id.clone(),
                    });
                }
            }
            other => {
                self.world.apply(other);
            }
        }
        Ok(correlation_id)
    }

    /// Flow 4 for one approved or rejected time entry or expense.
    fn apply_work(
        &mut self,
        work: Work<'_>,
        approved: bool,
        ctx: &Ctx<'_>,
        commit: &mut Commit,
    ) -> Result<()> {
        let kind = match work {
            Work::Time(_) => EntryKind::Time,
            Work::Expense(_) => EntryKind::Expense,
        };
        let prior = self.entry_state(commit, kind, work.source_id())?;
        let mut state = prior.unwrap_or_else(|| {
            self.next.entry += 1;
            EntryState {
                row_id: self.next.entry,
                event_seq: ctx.seq,
                fingerprint: ctx.fingerprint,
                link: 0,
                phase: EntryPhase::Rejected,
                manual: false,
            }
        });
        let billed_line = (state.phase == EntryPhase::Billed).then_some(state.link);
        let held_case = (state.phase == EntryPhase::Held).then_some(state.link);

        if approved
            && work.billable()
            && billed_line.is_some()
            && state.fingerprint == ctx.fingerprint
        {
            // The same approval again under another event id: already billed, once.
            self.metrics.reapprovals_suppressed.inc();
            return Ok(());
        }
        if let Some(line_id) = billed_line {
            self.reverse_line(line_id, ctx, commit)?;
        }
        state.event_seq = ctx.seq;
        state.fingerprint = ctx.fingerprint;
        state.manual = false;

        if !approved || !work.billable() {
            if let Some(case_id) = held_case {
                let why = if approved {
                    "the entry is no longer billable"
                } else {
                    "the entry was rejected at the source"
                };
                self.close_case(
                    case_id,
                    ExceptionState::Dismissed,
                    format!("withdrawn: {why}"),
                    ctx.now,
                    commit,
                )?;
            }
            state.phase = if approved {
                EntryPhase::NotBillable
            } else {
                EntryPhase::Rejected
            };
            state.link = 0;
            self.save_entry(kind, work.source_id(), state, None, commit)?;
            return Ok(());
        }

        let verdict = rules::evaluate(&self.world, &self.config, work);
        match verdict.outcome {
            Ok(pricing) => {
                if let Some(case_id) = held_case {
                    let note = format!("cleared by a later event (inbox seq {})", ctx.seq);
                    self.close_case(case_id, ExceptionState::Resolved, note, ctx.now, commit)?;
                }
                let line_id = self.create_line(work, &pricing, state.row_id, ctx, commit);
                state.phase = EntryPhase::Billed;
                state.link = line_id;
            }
            Err(failure) => {
                let case_id = self.hold(
                    work,
                    &failure,
                    verdict.value,
                    state.row_id,
                    held_case,
                    ctx,
                    commit,
                )?;
                state.phase = EntryPhase::Held;
                state.link = case_id;
            }
        }
        self.save_entry(kind, work.source_id(), state, verdict.value, commit)?;
        Ok(())
    }

    fn save_entry(
        &mut self,
        kind: EntryKind,
        source_id: &str,
        state: EntryState,
        value: Option<Money>,
        commit: &mut Commit,
    ) -> Result<()> {
        commit.entries.push(EntryRow {
            row_id: state.row_id,
            kind,
            entry_id: source_id.to_string(),
            phase: state.phase,
            event_seq: state.event_seq,
            fingerprint: state.fingerprint,
            line_id: (state.phase == EntryPhase::Billed).then_some(state.link),
            case_id: (state.phase == EntryPhase::Held).then_some(state.link),
            value: value.map(|m| m.amount()),
            currency: value.map(|m| m.currency()),
            manual: state.manual,
        });
        let key = entry_key(kind, source_id);
        let store = &mut self.store;
        let entries = &commit.entries;
        self.entries.insert(&key, state.row_id, |other| {
            let row = match entries.iter().rev().find(|e| e.row_id == *other) {
                Some(row) => Some(row.clone()),
                None => store.entry(*other)?,
            };
            Ok::<_, EngineError>(row.is_some_and(|r| r.kind == kind && r.entry_id == source_id))
        })?;
        Ok(())
    }

    /// Opens a case for the failure, or keeps the entry's open case when it already
    /// holds it for the same reason.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        work: Work<'_>,
        failure: &Failure,
        value: Option<Money>,
        entry_row: i64,
        held_case: Option<i64>,
        ctx: &Ctx<'_>,
        commit: &mut Commit,
    ) -> Result<i64> {
        if let Some(case_id) = held_case {
            let mut case = self.find_case(commit, case_id)?;
            if case.kind == failure.kind.as_str() {
                case.reason = failure.reason.clone();
                case.event_seq = ctx.seq;
                case.value = value.map(|m| m.amount());
                case.currency = value.map(|m| m.currency());
                case.updated_at = stamp(ctx.now);
                commit.cases.push(case);
                return Ok(case_id);
            }
            let note = format!("superseded: the entry now fails {}", failure.kind.as_str());
            self.close_case(case_id, ExceptionState::Resolved, note, ctx.now, commit)?;
        }
        self.next.case += 1;
        let case = CaseRow {
            id: self.next.case,
            kind: failure.kind.as_str().to_string(),
            owner: failure.kind.owner(),
            business_key: work.source_id().to_string(),
            state: ExceptionState::Open,
            reason: failure.reason.clone(),
            suggested_fix: failure.suggested_fix.clone(),
            correlation_id: ctx.correlation_id.to_string(),
            event_seq: ctx.seq,
            entry_row: Some(entry_row),
            outbox_id: None,
            value: value.map(|m| m.amount()),
            currency: value.map(|m| m.currency()),
            created_at: stamp(ctx.now),
            updated_at: stamp(ctx.now),
            resolution: None,
        };
        self.metrics.cases_opened.inc();
        commit.cases.push(case);
        Ok(self.next.case)
    }

    fn close_case(
        &mut self,
        case_id: i64,
        state: ExceptionState,
        note: String,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<()> {
        let mut case = self.find_case(commit, case_id)?;
        commit.steps.push(StepRow {
            correlation_id: case.correlation_id.clone(),
            at: stamp(now),
            step: format!("exception {}", state.as_str()),
            detail: format!("case {case_id} ({}): {note}", case.kind),
        });
        case.state = state;
        case.resolution = Some(note);
        case.updated_at = stamp(now);
        commit.cases.push(case);
        Ok(())
    }

    /// The latest version of a case: as written earlier in this commit, else as stored.
    fn find_case(&mut self, commit: &Commit, id: i64) -> Result<CaseRow> {
        if let Some(case) = commit.cases.iter().rev().find(|c| c.id == id) {
            return Ok(case.clone());
        }
        self.store
            .case(id)?
            .ok_or_else(|| EngineError::Store(format!("case {id} is referenced but missing")))
    }

    fn find_line(&mut self, commit: &Commit, id: i64) -> Result<LineRow> {
        if let Some(line) = commit.lines.iter().rev().find(|l| l.id == id) {
            return Ok(line.clone());
        }
        self.store
            .line(id)?
            .ok_or_else(|| EngineError::Store(format!("line {id} is referenced but missing")))
    }

    fn enqueue_line(&mut self, line: LineRow, now: DateTime<Utc>, commit: &mut Commit) {
        self.next.outbox += 1;
        commit.outbox.push(OutboxRow {
            id: self.next.outbox,
            target: "erp".into(),
            operation: Operation::PostLine,
            subject: line.id,
            idempotency_key: format!("pshub-line-{}", line.id),
            state: OutboxState::Pending,
            attempts: 0,
            next_attempt_at: now.timestamp_millis(),
            last_error: None,
            correlation_id: line.correlation_id.clone(),
        });
        commit.lines.push(line);
    }

    fn create_line(
        &mut self,
        work: Work<'_>,
        pricing: &Pricing,
        entry_row: i64,
        ctx: &Ctx<'_>,
        commit: &mut Commit,
    ) -> i64 {
        self.next.line += 1;
        let line = LineRow {
            id: self.next.line,
            kind: match work {
                Work::Time(_) => LineKind::Time,
                Work::Expense(_) => LineKind::Expense,
            },
            status: LineStatus::Pending,
            erp_id: None,
            entry_row,
            source_id: work.source_id().to_string(),
            event_seq: ctx.seq,
            project_code: work.project().to_string(),
            worker_id: work.worker().to_string(),
            date: work.date(),
            quantity: pricing.quantity,
            rate: pricing.rate,
            rate_currency: pricing.rate_currency,
            fx_rate: pricing.fx_rate,
            amount: pricing.amount.amount(),
            currency: pricing.amount.currency(),
            tax_code: pricing.tax_code.clone(),
            billing_class: pricing.billing_class.clone(),
            reverses: None,
            correlation_id: ctx.correlation_id.to_string(),
            created_at: stamp(ctx.now),
            posted_at: None,
        };
        let id = line.id;
        self.enqueue_line(line, ctx.now, commit);
        id
    }

    /// Posts the negative of a line: the entry's billing is withdrawn, once.
    fn reverse_line(&mut self, line_id: i64, ctx: &Ctx<'_>, commit: &mut Commit) -> Result<()> {
        let original = self.find_line(commit, line_id)?;
        self.next.line += 1;
        let reversal = LineRow {
            id: self.next.line,
            kind: LineKind::Reversal,
            status: LineStatus::Pending,
            erp_id: None,
            event_seq: ctx.seq,
            quantity: -original.quantity,
            amount: -original.amount,
            reverses: Some(original.id),
            correlation_id: ctx.correlation_id.to_string(),
            created_at: stamp(ctx.now),
            posted_at: None,
            ..original
        };
        self.enqueue_line(reversal, ctx.now, commit);
        Ok(())
    }

    fn load_work(&mut self, seq: i64) -> std::result::Result<EventData, ActionError> {
        let row = self
            .store
            .event(seq)?
            .ok_or_else(|| ActionError::NotFound(format!("event {seq}")))?;
        parse_stored(&row)
            .map_err(|e| ActionError::Engine(EngineError::Store(format!("event {seq}: {e}"))))
    }

    /// Resolves an open case: re-runs the work it holds against today's reference data.
    pub fn resolve(
        &mut self,
        case_id: i64,
        now: DateTime<Utc>,
    ) -> std::result::Result<Resolution, ActionError> {
        let case = self
            .store
            .case(case_id)?
            .ok_or_else(|| ActionError::NotFound(format!("exception {case_id}")))?;
        if !case.state.is_open() {
            return Err(ActionError::WrongState(format!(
                "exception {case_id} is {}; only open or acknowledged exceptions can be resolved",
                case.state.as_str()
            )));
        }
        let mut commit = Commit::default();
        if let Some(outbox_id) = case.outbox_id {
            self.requeue(outbox_id, "resolved: delivery retried", now, &mut commit)?;
            self.close_case(
                case_id,
                ExceptionState::Resolved,
                "delivery retried".into(),
                now,
                &mut commit,
            )?;
            self.write(&commit)?;
            return Ok(Resolution::Posted { line_id: None });
        }
        let data = self.load_work(case.event_seq)?;
        let (work, kind) = match &data {
            EventData::TimeEntry { entry, .. } => (Work::Time(entry), EntryKind::Time),
            EventData::Expense { expense, .. } => (Work::Expense(expense), EntryKind::Expense),
            _ => {
                return Err(ActionError::WrongState(format!(
                    "exception {case_id} holds no entry"
                )));
            }
        };
        let Some(mut state) = self.entry_state(&commit, kind, work.source_id())? else {
            return Err(ActionError::NotFound(format!("entry {}", work.source_id())));
        };
        let verdict: Verdict = rules::evaluate(&self.world, &self.config, work);
        let ctx = Ctx {
            seq: case.event_seq,
            correlation_id: &case.correlation_id,
            now,
            fingerprint: state.fingerprint,
        };
        let resolution = match verdict.outcome {
            Ok(pricing) => {
                let line_id = self.create_line(work, &pricing, state.row_id, &ctx, &mut commit);
                self.close_case(
                    case_id,
                    ExceptionState::Resolved,
                    format!("resolved: line {line_id} created"),
                    now,
                    &mut commit,
                )?;
                state.phase = EntryPhase::Billed;
                state.link = line_id;
                state.manual = true;
                Resolution::Posted {
                    line_id: Some(line_id),
                }
            }
            Err(failure) if failure.kind.as_str() == case.kind => {
                return Err(ActionError::StillFailing(format!(
                    "exception {case_id} still applies: {}. {}",
                    failure.reason, failure.suggested_fix
                )));
            }
            Err(failure) => {
                let new_case = self.hold(
                    work,
                    &failure,
                    verdict.value,
                    state.row_id,
                    Some(case_id),
                    &ctx,
                    &mut commit,
                )?;
                state.link = new_case;
                Resolution::HandedOver {
                    case_id: new_case,
                    reason: failure.reason,
                }
            }
        };
        self.save_entry(kind, work.source_id(), state, verdict.value, &mut commit)?;
        self.write(&commit)?;
        Ok(resolution)
    }

    /// Dismisses an open case: its work will not be billed (written off).
    pub fn dismiss(
        &mut self,
        case_id: i64,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), ActionError> {
        let case = self
            .store
            .case(case_id)?
            .ok_or_else(|| ActionError::NotFound(format!("exception {case_id}")))?;
        if !case.state.is_open() {
            return Err(ActionError::WrongState(format!(
                "exception {case_id} is {}; only open or acknowledged exceptions can be dismissed",
                case.state.as_str()
            )));
        }
        let mut commit = Commit::default();
        self.close_case(
            case_id,
            ExceptionState::Dismissed,
            "dismissed: not to be billed".into(),
            now,
            &mut commit,
        )?;
        if case.entry_row.is_some() {
            let data = self.load_work(case.event_seq)?;
            let (source_id, kind) = match &data {
                EventData::TimeEntry { entry, .. } => (entry.entry_id.as_str(), EntryKind::Time),
                EventData::Expense { expense, .. } => {
                    (expense.expense_id.as_str(), EntryKind::Expense)
                }
                _ => {
                    return Err(ActionError::WrongState(format!(
                        "exception {case_id} holds no entry"
                    )));
                }
            };
            if let Some(mut state) = self.entry_state(&commit, kind, source_id)? {
                state.phase = EntryPhase::WrittenOff;
                state.link = 0;
                let value = case
                    .value
                    .zip(case.currency)
                    .map(|(amount, currency)| Money::rounded(amount, currency));
                self.save_entry(kind, source_id, state, value, &mut commit)?;
            }
        }
        self.write(&commit)?;
        Ok(())
    }

    /// Marks an open case as seen by its owner; it still holds its work.
    pub fn acknowledge(
        &mut self,
        case_id: i64,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), ActionError> {
        let mut case = self
            .store
            .case(case_id)?
            .ok_or_else(|| ActionError::NotFound(format!("exception {case_id}")))?;
        if case.state != ExceptionState::Open {
            return Err(ActionError::WrongState(format!(
                "exception {case_id} is {}; only open exceptions can be acknowledged",
                case.state.as_str()
            )));
        }
        case.state = ExceptionState::Acknowledged;
        case.updated_at = stamp(now);
        let commit = Commit {
            cases: vec![case],
            ..Commit::default()
        };
        self.write(&commit)?;
        Ok(())
    }

    fn requeue(
        &mut self,
        outbox_id: i64,
        note: &str,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<()> {
        let Some(mut item) = self.store.outbox_item(outbox_id)? else {
            return Err(EngineError::Store(format!(
                "outbox item {outbox_id} is referenced but missing"
            )));
        };
        item.state = OutboxState::Pending;
        item.attempts = 0;
        item.next_attempt_at = now.timestamp_millis();
        if item.operation == Operation::PostLine {
            commit.line_updates.push(LineUpdate {
                id: item.subject,
                status: LineStatus::Pending,
                erp_id: None,
                posted_at: None,
            });
        }
        commit.steps.push(StepRow {
            correlation_id: item.correlation_id.clone(),
            at: stamp(now),
            step: "replayed".into(),
            detail: format!("outbox item {outbox_id} ({}): {note}", item.idempotency_key),
        });
        commit.outbox_updates.push(item.update());
        Ok(())
    }

    /// Sends a dead letter again, from its first attempt.
    pub fn replay_dead_letter(
        &mut self,
        outbox_id: i64,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), ActionError> {
        let item = self
            .store
            .outbox_item(outbox_id)?
            .ok_or_else(|| ActionError::NotFound(format!("dead letter {outbox_id}")))?;
        if item.state != OutboxState::Dead {
            return Err(ActionError::WrongState(format!(
                "outbox item {outbox_id} is {}, not a dead letter",
                item.state.as_str()
            )));
        }
        let mut commit = Commit::default();
        self.requeue(outbox_id, "dead letter replayed", now, &mut commit)?;
        self.write(&commit)?;
        Ok(())
    }

    /// Takes a quarantined event again: the corrected body if given, else the stored one
    /// (which passes once the configuration that refused it has changed).
    pub fn replay_quarantined(
        &mut self,
        id: i64,
        corrected: Option<&Value>,
        now: DateTime<Utc>,
    ) -> std::result::Result<IngestResult, ActionError> {
        let mut row = self
            .store
            .quarantined(id)?
            .ok_or_else(|| ActionError::NotFound(format!("quarantined event {id}")))?;
        if row.state != "open" {
            return Err(ActionError::WrongState(format!(
                "quarantined event {id} was already replayed"
            )));
        }
        let stored: Value;
        let value = match corrected {
            Some(value) => value,
            None => {
                stored = serde_json::from_str(&row.raw)
                    .map_err(|e| ActionError::Invalid(e.to_string()))?;
                &stored
            }
        };
        let incoming = Incoming::parse(value, &self.config);
        if let Incoming::Invalid { error, .. } = &incoming {
            return Err(ActionError::Invalid(format!(
                "the event is still invalid: {error}"
            )));
        }
        let mut commit = Commit::default();
        let mut accepted_here = HashMap::new();
        let result = self.ingest_one(&incoming, now, &mut commit, &mut accepted_here)?;
        commit.counters.received -= 1; // the event was counted when it first arrived
        row.state = "replayed".into();
        row.replayed_seq = commit.inbox.first().map(|r| r.seq);
        commit.quarantine.push(row);
        self.write(&commit)?;
        Ok(result)
    }

    /// Due outbox items, with what to send for each.
    pub fn claim_due(&mut self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Delivery>> {
        let due = self.store.due_deliveries(now.timestamp_millis(), limit)?;
        // A line waits for its project to exist in the ERP, and a reversal for its original.
        let unprovisioned: HashSet<String> = self
            .store
            .undelivered(Operation::ProvisionProject)?
            .into_iter()
            .filter_map(|o| {
                o.idempotency_key
                    .strip_prefix("project:")
                    .map(str::to_string)
            })
            .collect();
        let wait = self.config.prerequisite_poll;
        let wait = i64::try_from(wait.as_millis()).unwrap_or(1_000);
        let mut waiting = Commit::default();
        let mut deliveries = Vec::with_capacity(due.len());
        for DueDelivery {
            mut item,
            line,
            reverses_erp_id,
        } in due
        {
            match item.operation {
                Operation::PostLine => {
                    let Some(line) = line else {
                        return Err(EngineError::Store(format!(
                            "outbox item {} names missing line {}",
                            item.id, item.subject
                        )));
                    };
                    let why = if unprovisioned.contains(&line.project_code) {
                        Some(format!(
                            "waiting: project {} is not provisioned in the ERP yet",
                            line.project_code
                        ))
                    } else if let (Some(original), None) = (line.reverses, &reverses_erp_id) {
                        Some(format!(
                            "waiting: line {original} that it reverses is not posted yet"
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        // Waiting is not a failed attempt: the item keeps its retries.
                        item.last_error = Some(why);
                        item.next_attempt_at = now.timestamp_millis().saturating_add(wait);
                        waiting.outbox_updates.push(item.update());
                        continue;
                    }
                    let posting = LinePosting {
                        idempotency_key: item.idempotency_key.clone(),
                        kind: line.kind.as_str(),
                        project_code: line.project_code.clone(),
                        source_id: line.source_id.clone(),
                        worker_id: line.worker_id.clone(),
                        date: line.date,
                        quantity: line.quantity,
                        rate: line.rate,
                        rate_currency: line.rate_currency,
                        amount: line.amount,
                        currency: line.currency,
                        tax_code: line.tax_code.clone(),
                        billing_class: line.billing_class.clone(),
                        reverses_erp_id,
                    };
                    deliveries.push(Delivery::Line {
                        item,
                        line: Box::new(line),
                        posting,
                    });
                }
                Operation::ProvisionProject => {
                    let data = self
                        .store
                        .event(item.subject)?
                        .map(|row| parse_stored(&row));
                    let Some(Ok(EventData::ClosedWon(won))) = data else {
                        return Err(EngineError::Store(format!(
                            "outbox item {} names no closed-won event",
                            item.id
                        )));
                    };
                    let ClosedWon {
                        project, contract, ..
                    } = *won;
                    let posting = ProjectPosting {
                        idempotency_key: item.idempotency_key.clone(),
                        project_code: project.project_code.to_string(),
                        name: project.name,
                        legal_entity: project.legal_entity,
                        currency: contract.currency,
                    };
                    deliveries.push(Delivery::Project { item, posting });
                }
            }
        }
        self.write(&waiting)?;
        Ok(deliveries)
    }

    /// Records how deliveries went: posted, retried later, dead-lettered or refused.
    pub fn record_deliveries(
        &mut self,
        outcomes: Vec<(Delivery, DeliveryOutcome)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        use crate::ports::ErpError;
        let mut commit = Commit::default();
        for (delivery, outcome) in outcomes {
            let (mut item, line) = match delivery {
                Delivery::Line { item, line, .. } => (item, Some(*line)),
                Delivery::Project { item, .. } => (item, None),
            };
            item.attempts += 1;
            match outcome {
                Ok(erp_id) => {
                    item.state = OutboxState::Delivered;
                    item.last_error = None;
                    if let Some(line) = line {
                        self.metrics.record_posted(line.kind);
                        commit.line_updates.push(LineUpdate {
                            id: line.id,
                            status: LineStatus::Posted,
                            erp_id: Some(erp_id),
                            posted_at: Some(stamp(now)),
                        });
                    }
                }
                Err(ErpError::Technical {
                    message,
                    retry_after,
                }) => {
                    self.metrics.delivery_failures.inc();
                    commit.steps.push(StepRow {
                        correlation_id: item.correlation_id.clone(),
                        at: stamp(now),
                        step: "attempt failed".into(),
                        detail: format!(
                            "{} attempt {}: {message}",
                            item.idempotency_key, item.attempts
                        ),
                    });
                    item.last_error = Some(message);
                    match self.config.retry.next_delay(item.attempts, retry_after) {
                        Some(delay) => {
                            let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                            item.next_attempt_at = now.timestamp_millis().saturating_add(delay);
                        }
                        None => {
                            item.state = OutboxState::Dead;
                            self.metrics.dead_letters.inc();
                            commit.steps.push(StepRow {
                                correlation_id: item.correlation_id.clone(),
                                at: stamp(now),
                                step: "dead-lettered".into(),
                                detail: format!(
                                    "{} after {} attempts",
                                    item.idempotency_key, item.attempts
                                ),
                            });
                            if let Some(line) = line {
                                commit.line_updates.push(LineUpdate {
                                    id: line.id,
                                    status: LineStatus::Failed,
                                    erp_id: None,
                                    posted_at: None,
                                });
                            }
                        }
                    }
                }
                Err(ErpError::Rejected { reason }) => {
                    item.state = OutboxState::Refused;
                    item.last_error = Some(reason.clone());
                    self.next.case += 1;
                    let business_key = line
                        .as_ref()
                        .map_or(item.idempotency_key.clone(), |l| l.source_id.clone());
                    commit.cases.push(CaseRow {
                        id: self.next.case,
                        kind: "erp_rejected".into(),
                        owner: OwnerTeam::Integration,
                        business_key,
                        state: ExceptionState::Open,
                        reason: format!("the ERP refused {}: {reason}", item.idempotency_key),
                        suggested_fix: "Correct the record in the ERP (for example provision the project), then resolve this case to send it again.".into(),
                        correlation_id: item.correlation_id.clone(),
                        event_seq: line.as_ref().map_or(item.subject, |l| l.event_seq),
                        entry_row: None,
                        outbox_id: Some(item.id),
                        value: None,
                        currency: None,
                        created_at: stamp(now),
                        updated_at: stamp(now),
                        resolution: None,
                    });
                    self.metrics.cases_opened.inc();
                    if let Some(line) = line {
                        commit.line_updates.push(LineUpdate {
                            id: line.id,
                            status: LineStatus::Refused,
                            erp_id: None,
                            posted_at: None,
                        });
                    }
                }
            }
            commit.outbox_updates.push(item.update());
        }
        self.write(&commit)
    }
}

/// What every decision about one event shares.
struct Ctx<'a> {
    seq: i64,
    correlation_id: &'a str,
    now: DateTime<Utc>,
    fingerprint: u64,
}

//! Flows: the firm's processes (PRODUCT.md section 5). A flow reacts to accepted events by
//! writing rows into the commit that accepts them: its own records, exception cases, and
//! durable, idempotent **steps**, each a call to one target system. The delivery workers run
//! the steps; the flow builds each step's request from the store ([`Flow::requests`]).
//!
//! Each flow is one module of the same shape; adding a flow adds a module and a line in
//! [`ALL`], and touches no other flow. What every flow needs (reads that see the commit being
//! built, ids, cases, steps, the timeline) is in [`Cx`].

pub mod ahead;
pub mod amendments;
pub mod assignments;
pub mod invoice_status;
pub mod milestones;
pub mod opportunity_to_project;
pub mod payroll_costing;
pub mod resources;
pub mod time_to_bill;
pub mod worker_lifecycle;

use crate::config::Config;
use crate::error::{ActionError, EngineError, Result};
use crate::ids::Ids;
use crate::ports::Request;
use crate::store::*;
use crate::world::{Applied, World};
use chrono::{DateTime, Utc};
use pshub_model::records::{ExceptionState, OwnerTeam};
use pshub_model::{Currency, Event, EventType, Money};
use rust_decimal::Decimal;
use std::collections::HashMap;

/// A named process that reacts to events with steps.
pub trait Flow: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether this flow acts on events of this type.
    fn reacts_to(&self, event_type: EventType) -> bool;
    /// The kinds of system its steps call (for the catalog); none by default.
    fn calls(&self) -> &'static [Calls] {
        &[]
    }
    /// What a done step's result is the target's id of, for the id registry: the kind of
    /// the thing its business key names (`project`), or `None` when the result is no such id.
    fn registers(&self, _step: &StepRow) -> Option<&'static str> {
        None
    }
    /// Examines what a step answered before the steps that wait on it run: a finding
    /// holds the step, its result kept, in a case for the team it names; resolving the case
    /// asks the system again. By default every answer is taken as it is.
    fn examine(&self, _step: &StepRow, _request: &Request, _result: &str) -> Option<Finding> {
        None
    }
    /// Acts on an accepted event, after the world applied it when it is reference data.
    fn apply(&self, cx: &mut Cx<'_>, event: &Event, applied: &Applied) -> Result<()>;
    /// The request of each claimed step of this flow, in order; a step whose request cannot
    /// be built says why. A flow without steps of its own keeps the default.
    fn requests(
        &self,
        steps: &[&StepRow],
        _reads: &mut dyn StoreReader,
    ) -> Result<Vec<std::result::Result<Request, String>>> {
        Ok(steps
            .iter()
            .map(|s| Err(format!("the {} flow has no step {}", self.name(), s.step)))
            .collect())
    }
    /// Resolves a case of this flow that holds work (not a refused or dead step, which the
    /// engine replays itself): re-runs the work against today's reference data. By default
    /// the case holds nothing, and resolving closes it.
    fn resolve(
        &self,
        cx: &mut Cx<'_>,
        case: &CaseRow,
    ) -> std::result::Result<Resolution, ActionError> {
        cx.close_case(case.id, ExceptionState::Resolved, "resolved".into())?;
        Ok(Resolution::Closed)
    }
    /// Dismisses such a case: the work it holds will not be done (by default, nothing).
    fn dismiss(&self, _cx: &mut Cx<'_>, _case: &CaseRow) -> std::result::Result<(), ActionError> {
        Ok(())
    }
}

/// The outbound event of a case opened; its row holds only `case_id`.
pub const EXCEPTION_OPENED: &str = "exception.opened";

/// Kinds of case that report something and hold no work: an event they name is applied.
pub const NOTICES: &[&str] = &[
    "conflicting_event",
    worker_lifecycle::UNAVAILABLE,
    assignments::VERSION_CONFLICT,
    assignments::MARGIN_BELOW_FLOOR,
    invoice_status::UNKNOWN_INVOICE,
    invoice_status::FORBIDDEN_TRANSITION,
    invoice_status::DISPUTED,
    time_to_bill::HOURS_OVER_ASSIGNMENT,
    amendments::UNKNOWN_CONTRACT,
    crate::hub::POSSIBLE_DUPLICATE_CUSTOMER,
    payroll_costing::UNKNOWN_WORKER,
    payroll_costing::FOR_CONTRACTOR,
    payroll_costing::WITHOUT_HOURS,
    payroll_costing::COST_VARIANCE,
];

/// Every flow, in the order they are asked.
/// A kind of system a flow's steps call: which configured systems that is follows from the
/// configuration (`psa_system`, the ERPs of `[[routes]]`, `crm_system`, `tax_system`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    Psa,
    Erp,
    Crm,
    Tax,
}

pub static ALL: &[&dyn Flow] = &[
    &time_to_bill::TimeToBill,
    &opportunity_to_project::OpportunityToProject,
    &worker_lifecycle::WorkerLifecycle,
    &assignments::Assignments,
    &milestones::Milestones,
    &invoice_status::InvoiceStatusFlow,
    &amendments::Amendments,
    &payroll_costing::PayrollCosting,
    &resources::Resources,
];

/// The flow of this name.
pub fn named(name: &str) -> Option<&'static dyn Flow> {
    ALL.iter().copied().find(|f| f.name() == name)
}

/// The flow that acts on events of this type, if any (else the event is only recorded).
pub fn for_type(event_type: EventType) -> Option<&'static dyn Flow> {
    ALL.iter().copied().find(|f| f.reacts_to(event_type))
}

/// What resolving a case led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The held work went through: the line created, if any.
    Posted { line_id: Option<i64> },
    /// The held step was put back in the queue.
    Replayed { step_id: i64 },
    /// Closed; nothing was held.
    Closed,
    /// The work now fails another check: the new case that holds it.
    HandedOver { case_id: i64, reason: String },
}

/// Who acted on a case, a step or a quarantined event, as the timeline records it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Actor {
    pub token_id: Option<i64>,
    pub name: String,
    pub role: String,
}

impl Actor {
    /// The hub itself (the demo's finance team resolving its cases, a test).
    pub fn system(name: &str) -> Self {
        Actor {
            token_id: None,
            name: name.to_string(),
            role: "system".into(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::json!({ "token_id": self.token_id, "name": self.name, "role": self.role })
            .to_string()
    }
}

/// The event being applied, as every decision about it shares it.
#[derive(Debug, Clone)]
pub struct EventMeta {
    pub seq: i64,
    pub correlation_id: String,
    pub fingerprint: u64,
}

/// Rows found while a commit is built, so that a row read twice is read once. Cleared
/// whenever a commit fails: nothing here outlives what the store holds.
#[derive(Debug, Default)]
pub struct Caches {
    /// Entries by key, as prefetched for the batch (`None`: not stored).
    pub entries: HashMap<(EntryKind, String), Option<EntryRow>>,
    /// Lines written by this commit, by id (their place in `commit.lines`).
    pub lines: HashMap<i64, usize>,
    /// Worker-days written by this commit, by (worker, day).
    pub worker_days: HashMap<(String, chrono::NaiveDate), i64>,
    /// For each project code, its provisioning step in each ERP (system, step, done), kept
    /// across batches once done, since a done step stays done. Looked up for every line.
    pub provisioning: HashMap<String, Vec<(String, i64, bool)>>,
    /// Approvals of billed entries suppressed in this commit.
    pub reapprovals_suppressed: u64,
    /// Approved hours billed per assignment, seeded from the store on first use and kept
    /// across commits (dropped whenever a commit fails).
    pub assignment_hours: HashMap<String, Decimal>,
    /// Assignments whose case for hours past their booking is open (no need to look again).
    pub assignments_over: std::collections::HashSet<String>,
    /// Open cases of a kind, read once per commit (kinds with few cases, looked up by
    /// business key for every event, such as `margin_below_floor`).
    pub open_cases: HashMap<String, Vec<CaseRow>>,
}

impl Caches {
    /// The provisioning step of a project in `system`, and whether it is done.
    pub fn provisioned(&self, project_code: &str, system: &str) -> Option<(i64, bool)> {
        self.provisioning
            .get(project_code)?
            .iter()
            .find(|(erp, _, _)| erp == system)
            .map(|&(_, step, done)| (step, done))
    }

    pub fn note_provisioning(&mut self, project_code: &str, system: &str, step: i64, done: bool) {
        let erps = self
            .provisioning
            .entry(project_code.to_string())
            .or_default();
        erps.retain(|(erp, _, _)| erp != system);
        erps.push((system.to_string(), step, done));
    }

    /// Forgets what only this commit knew; keeps facts that stay true.
    pub fn end_of_commit(&mut self, kept: bool) {
        self.entries.clear();
        self.lines.clear();
        self.worker_days.clear();
        self.open_cases.clear();
        self.reapprovals_suppressed = 0;
        if !kept {
            self.provisioning.retain(|_, erps| {
                erps.retain(|(_, _, done)| *done);
                !erps.is_empty()
            });
            self.assignment_hours.clear();
            self.assignments_over.clear();
        }
    }
}

/// What a flow works with while a commit is built: reference data, the store's reads
/// (seeing this commit's rows first), ids, and the commit itself.
pub struct Cx<'a> {
    pub world: &'a World,
    pub config: &'a Config,
    pub store: &'a dyn Store,
    pub reads: &'a mut dyn StoreReader,
    pub ids: &'a Ids,
    pub caches: &'a mut Caches,
    pub commit: &'a mut Commit,
    /// The batch decided before this one, while its commit is still being written.
    pub ahead: Option<&'a ahead::Ahead>,
    pub now: DateTime<Utc>,
    pub event: EventMeta,
    /// The person acting (resolving, dismissing), with their note; `None` while ingesting.
    pub actor: Option<(Actor, Option<String>)>,
}

/// What a step's answer shows that stops the work after it, as [`Flow::examine`] finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: &'static str,
    pub owner: OwnerTeam,
    pub reason: String,
    pub suggested_fix: &'static str,
    pub evidence: Option<String>,
}

/// A case to open.
pub struct NewCase<'a> {
    pub kind: &'a str,
    pub owner: OwnerTeam,
    pub business_key: &'a str,
    pub reason: String,
    pub suggested_fix: &'a str,
    pub flow: &'a str,
    pub entry_row: Option<i64>,
    pub step_id: Option<i64>,
    pub value: Option<Money>,
    pub evidence: Option<String>,
}

/// The data of the stored event `seq` that a step acts on, when `pick` takes it (else why
/// not: not stored, not of its kind, no longer read), named `what` in the reason.
pub fn stored_data<T>(
    reads: &mut dyn StoreReader,
    seq: i64,
    what: &str,
    pick: impl FnOnce(pshub_model::EventData) -> Option<T>,
) -> Result<std::result::Result<T, String>> {
    Ok(match reads.event(seq)? {
        Some(row) => match crate::hub::parse_stored(&row) {
            Ok(data) => pick(data).ok_or_else(|| format!("event {seq} is not {what}")),
            Err(why) => Err(why),
        },
        None => Err(format!("event {seq}, {what}, is not stored")),
    })
}

/// A step to create.
pub struct NewStep<'a> {
    /// Its id, reserved by the caller (so that the row it acts for can name it).
    pub id: i64,
    pub flow: &'a str,
    pub step: &'a str,
    pub system: &'a str,
    pub subject: i64,
    pub business_key: String,
    /// The step it waits for; `None` when it is due now.
    pub waits_on: Option<i64>,
}

pub fn stamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl<'a> Cx<'a> {
    pub fn id(&self, kind: IdKind) -> Result<i64> {
        self.ids.next(kind)
    }

    pub fn stamp(&self) -> String {
        stamp(self.now)
    }

    /// An entry as this commit will write it, else as stored.
    pub fn entry(&mut self, kind: EntryKind, entry_id: &str) -> Result<Option<EntryRow>> {
        let key = (kind, entry_id.to_string());
        if let Some(found) = self.caches.entries.get(&key) {
            return Ok(found
                .as_ref()
                .map(|row| self.commit.entries.get(row.row_id).unwrap_or(row).clone()));
        }
        let found = match self.ahead.and_then(|a| a.entry(kind, entry_id)) {
            Some(row) => Some(row),
            None => self
                .store
                .find_entries(&[(kind, entry_id)])?
                .pop()
                .flatten(),
        };
        self.caches.entries.insert(key, found.clone());
        Ok(found)
    }

    pub fn put_entry(&mut self, row: EntryRow) {
        self.caches
            .entries
            .insert((row.kind, row.entry_id.clone()), Some(row.clone()));
        self.commit.entries.put(row);
    }

    /// A case as this commit will write it, else as stored.
    pub fn case(&mut self, id: i64) -> Result<CaseRow> {
        if let Some(case) = self.commit.cases.get(id) {
            return Ok(case.clone());
        }
        if let Some(case) = self.ahead.and_then(|a| a.case(id)) {
            return Ok(case);
        }
        self.reads
            .case(id)?
            .ok_or_else(|| EngineError::Store(format!("case {id} is referenced but missing")))
    }

    /// A line as this commit writes it, else as stored.
    pub fn line(&mut self, id: i64) -> Result<LineRow> {
        if let Some(&at) = self.caches.lines.get(&id) {
            return Ok(self.commit.lines[at].clone());
        }
        if let Some(line) = self.ahead.and_then(|a| a.line(id)) {
            return Ok(line.clone());
        }
        self.reads
            .line(id)?
            .map(|l| l.line)
            .ok_or_else(|| EngineError::Store(format!("line {id} is referenced but missing")))
    }

    pub fn add_line(&mut self, line: LineRow) {
        self.caches.lines.insert(line.id, self.commit.lines.len());
        self.commit.lines.push(line);
    }

    /// A step as this commit will write it, else as stored.
    pub fn step(&mut self, id: i64) -> Result<StepRow> {
        if let Some(step) = self.commit.steps.get(id) {
            return Ok(step.clone());
        }
        if let Some(step) = self.ahead.and_then(|a| a.step(id)) {
            return Ok(step);
        }
        self.reads
            .step(id)?
            .ok_or_else(|| EngineError::Store(format!("step {id} is referenced but missing")))
    }

    /// The ERPs that take a project's work, by its legal entity, region and service line
    /// (`[[routes]]`): the one that takes it for real, and a shadow.
    pub fn erps_of_project(&self, project_code: &str) -> crate::config::Routed<'a> {
        self.config.route_of_project(self.world, project_code)
    }

    /// The ERP of a worker's costing on `date`: by their legal entity and region then.
    pub fn erp_of_worker(
        &self,
        worker: &pshub_model::WorkerId,
        date: chrono::NaiveDate,
    ) -> &'a str {
        self.config.route_of_worker(self.world, worker, date).erp
    }

    /// The steps of `subject` in `flow`: those this commit writes, then those of the batch
    /// before, then the stored ones, each once.
    pub fn steps_of_subject(&mut self, flow: &str, subject: i64) -> Result<Vec<StepRow>> {
        let mut steps: Vec<StepRow> = self
            .commit
            .steps
            .iter()
            .filter(|s| s.subject == subject && s.flow == flow)
            .cloned()
            .collect();
        for before in self
            .ahead
            .into_iter()
            .flat_map(|a| a.steps_of_subject(flow, subject))
        {
            if !steps.iter().any(|s| s.id == before.id) {
                steps.push(before);
            }
        }
        for stored in self.reads.steps_of_subject(flow, subject)? {
            if !steps.iter().any(|s| s.id == stored.id) {
                steps.push(stored);
            }
        }
        Ok(steps)
    }

    /// Creates a step, due now or waiting for another.
    pub fn add_step(&mut self, new: NewStep<'_>) -> Result<()> {
        let id = new.id;
        let now_ms = self.now.timestamp_millis();
        self.commit.steps.put(StepRow {
            id,
            flow: new.flow.into(),
            step: new.step.into(),
            system: new.system.into(),
            subject: new.subject,
            business_key: new.business_key,
            state: if new.waits_on.is_some() {
                StepState::Waiting
            } else {
                StepState::Pending
            },
            waits_on: new.waits_on,
            attempts: 0,
            next_attempt_at: now_ms,
            lease_owner: None,
            lease_until: 0,
            result: None,
            last_error: None,
            outcome_unknown: false,
            correlation_id: self.event.correlation_id.clone(),
            event_seq: self.event.seq,
            created_at: self.stamp(),
            done_at: None,
            version: 0,
        });
        Ok(())
    }

    /// Publishes a business event on the hub's outbound stream, in this commit; `key` makes
    /// it once.
    pub fn publish(
        &mut self,
        event_type: &str,
        key: String,
        data: serde_json::Value,
    ) -> Result<()> {
        let id = self.id(IdKind::Outbound)?;
        self.commit.outbound.push(OutboundRow {
            id,
            event_type: event_type.to_string(),
            key,
            data: data.to_string(),
            correlation_id: self.event.correlation_id.clone(),
            published_at: self.stamp(),
        });
        Ok(())
    }

    /// Opens a case, and publishes `exception.opened`; answers its id.
    pub fn open_case(&mut self, new: NewCase<'_>) -> Result<i64> {
        let id = self.id(IdKind::Case)?;
        // The row names the case; readers show the case as it stands.
        self.publish(
            EXCEPTION_OPENED,
            format!("exception:{id}"),
            serde_json::json!({ "case_id": id }),
        )?;
        self.commit.cases.put(CaseRow {
            id,
            kind: new.kind.to_string(),
            owner: new.owner,
            business_key: new.business_key.to_string(),
            state: ExceptionState::Open,
            reason: new.reason,
            suggested_fix: new.suggested_fix.to_string(),
            correlation_id: self.event.correlation_id.clone(),
            event_seq: self.event.seq,
            flow: new.flow.to_string(),
            entry_row: new.entry_row,
            step_id: new.step_id,
            value: new.value.map(|m| m.amount()),
            currency: new.value.map(|m| m.currency()),
            created_at: self.stamp(),
            updated_at: self.stamp(),
            resolution: None,
            evidence: new.evidence,
            version: 0,
        });
        Ok(id)
    }

    /// The open case of this kind about `business_key`, as this commit will write it, else
    /// as stored.
    pub fn open_case_of(&mut self, kind: &str, business_key: &str) -> Result<Option<CaseRow>> {
        let here = self
            .commit
            .cases
            .iter()
            .find(|c| c.kind == kind && c.business_key == business_key)
            .cloned();
        if let Some(case) = here.or_else(|| self.ahead?.case_of(kind, business_key)) {
            return Ok(case.state.is_open().then_some(case));
        }
        if !self.caches.open_cases.contains_key(kind) {
            let filter = CaseFilter {
                kind: Some(kind.to_string()),
                ..CaseFilter::default()
            };
            let open: Vec<CaseRow> = self
                .reads
                .cases(&filter, Page::ALL)?
                .into_iter()
                .filter(|c| c.state.is_open())
                .collect();
            self.caches.open_cases.insert(kind.to_string(), open);
        }
        Ok(self.caches.open_cases[kind]
            .iter()
            .find(|c| c.business_key == business_key)
            .cloned())
    }

    /// Closes a case (resolved or dismissed) with a note on its timeline, naming the person
    /// acting and their note, if a person acts.
    pub fn close_case(&mut self, case_id: i64, state: ExceptionState, note: String) -> Result<()> {
        let mut case = self.case(case_id)?;
        let actor = self.actor_json();
        let note = self.noted(note);
        self.commit.timeline.push(TimelineRow {
            correlation_id: case.correlation_id.clone(),
            at: self.stamp(),
            what: format!("exception {}", state.as_str()),
            detail: format!("case {case_id} ({}): {note}", case.kind),
            step_id: case.step_id,
            actor,
        });
        case.state = state;
        case.resolution = Some(note);
        case.updated_at = self.stamp();
        self.commit.cases.put(case);
        Ok(())
    }

    /// The person acting, as the timeline records them.
    pub fn actor_json(&self) -> Option<String> {
        self.actor.as_ref().map(|(actor, _)| actor.to_json())
    }

    /// `detail` with the acting person's note, if they gave one.
    pub fn noted(&self, detail: String) -> String {
        match &self.actor {
            Some((_, Some(said))) => format!("{detail}; note: {said}"),
            _ => detail,
        }
    }

    /// A note on the event's timeline.
    pub fn note(&mut self, what: &str, detail: String, step_id: Option<i64>) {
        self.commit.timeline.push(TimelineRow {
            correlation_id: self.event.correlation_id.clone(),
            at: self.stamp(),
            what: what.to_string(),
            detail,
            step_id,
            actor: None,
        });
    }

    /// A worker's approved hours on a day, as this commit will write them, else as stored.
    pub fn worker_day(&mut self, worker_id: &str, day: chrono::NaiveDate) -> Result<WorkerDayRow> {
        let key = (worker_id.to_string(), day);
        if let Some(id) = self.caches.worker_days.get(&key)
            && let Some(row) = self.commit.worker_days.get(*id)
        {
            return Ok(row.clone());
        }
        let before = self.ahead.and_then(|a| a.worker_day(worker_id, day));
        let row =
            match before.map_or_else(|| self.reads.worker_day(worker_id, day), |b| Ok(Some(b)))? {
                Some(row) => row,
                None => WorkerDayRow {
                    id: self.id(IdKind::WorkerDay)?,
                    worker_id: worker_id.to_string(),
                    day,
                    hours: Decimal::ZERO,
                    version: 0,
                },
            };
        self.caches.worker_days.insert(key, row.id);
        Ok(row)
    }

    pub fn put_worker_day(&mut self, row: WorkerDayRow) {
        self.caches
            .worker_days
            .insert((row.worker_id.clone(), row.day), row.id);
        self.commit.worker_days.put(row);
    }
}

/// A value with its currency, if both are known.
pub fn money_of(value: Option<Decimal>, currency: Option<Currency>) -> Option<Money> {
    value
        .zip(currency)
        .map(|(amount, currency)| Money::rounded(amount, currency))
}

//! Reference data as the flows read it: workers with their effective-dated history,
//! projects and contracts, rate cards, FX rates and assignments. It is a cache of the
//! reference events in the store, applied in the store's reference order (see
//! ARCHITECTURE.md, "Reference data"), and kept small: names are interned once, an
//! assignment is a few dozen bytes, and personal fields are never held.
//!
//! Every change can be undone ([`World::undo`]), so a batch whose commit fails leaves the
//! world exactly as the store has it.

use crate::customers::{Customers, Linked};
use crate::fingerprint::fingerprint;
use chrono::NaiveDate;
use pshub_model::records::*;
use pshub_model::{Currency, EventData, ProjectCode, WorkerId};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An interned name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(u32);

impl Sym {
    /// Stands for an absent name in compact records.
    pub const NONE: Sym = Sym(u32::MAX);

    fn of(name: Option<Sym>) -> Sym {
        name.unwrap_or(Sym::NONE)
    }

    fn get(self) -> Option<Sym> {
        (self != Sym::NONE).then_some(self)
    }
}

/// Names kept once, in one arena, found by a 64-bit hash (colliding names are kept whole).
#[derive(Debug, Default)]
pub struct Names {
    arena: String,
    spans: Vec<(u32, u32)>,
    by_hash: HashMap<u64, u32>,
    collided: HashMap<Box<str>, u32>,
}

impl Names {
    pub fn find(&self, name: &str) -> Option<Sym> {
        let hash = fingerprint(&[name]);
        if let Some(&id) = self.by_hash.get(&hash)
            && self.name(Sym(id)) == name
        {
            return Some(Sym(id));
        }
        self.collided.get(name).map(|&id| Sym(id))
    }

    pub fn intern(&mut self, name: &str) -> Sym {
        if let Some(sym) = self.find(name) {
            return sym;
        }
        let id = self.spans.len() as u32;
        self.spans
            .push((self.arena.len() as u32, name.len() as u32));
        self.arena.push_str(name);
        match self.by_hash.entry(fingerprint(&[name])) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(name.into(), id);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(id);
            }
        }
        Sym(id)
    }

    pub fn name(&self, sym: Sym) -> &str {
        match self.spans.get(sym.0 as usize) {
            Some(&(start, len)) => &self.arena[start as usize..(start + len) as usize],
            None => "",
        }
    }

    fn opt(&mut self, name: Option<&str>) -> Sym {
        Sym::of(name.map(|n| self.intern(n)))
    }
}

/// One HRIS change, compact: names interned, personal fields left out.
#[derive(Debug, Clone, Copy)]
struct Change {
    kind: WorkerChangeKind,
    date: NaiveDate,
    /// The stored event of the change (its personal fields are read from there).
    seq: i64,
    /// Whether the event carried personal fields.
    personal: bool,
    legal_entity: Sym,
    region: Sym,
    cost_center: Sym,
    role: Sym,
    grade: Sym,
    manager: Sym,
    classification: Option<Classification>,
}

/// A period of availability the PSA planned for a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub hours_per_week: Decimal,
    /// The PSA's view of the worker's region and role, when it sent them.
    pub region: Option<String>,
    pub role: Option<String>,
}

/// A worker's changes, ordered by effective date (then arrival).
#[derive(Debug, Default, Clone)]
pub struct WorkerHistory {
    changes: Vec<Change>,
}

/// A worker as of one date.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOnDate<'a> {
    pub status: Option<WorkerStatus>,
    /// The effective date of the change that set `status`.
    pub status_since: Option<NaiveDate>,
    pub region: Option<&'a str>,
    pub role: Option<&'a str>,
    pub legal_entity: Option<&'a str>,
    pub cost_center: Option<&'a str>,
    pub grade: Option<&'a str>,
    pub manager: Option<&'a str>,
    /// An employee unless an HRIS event said otherwise.
    pub classification: Classification,
}

impl WorkerHistory {
    /// Inserts a change; answers where, for undoing it.
    fn record(&mut self, change: Change) -> usize {
        // Stable insertion keeps arrival order among changes with the same date.
        let at = self.changes.partition_point(|c| c.date <= change.date);
        self.changes.insert(at, change);
        at
    }

    /// The worker's status and attributes on `date`. Billable from the hire date through
    /// the termination date, both inclusive; a leave runs from its start through the day
    /// before the leave ends; a transfer changes attributes from its effective date.
    fn on<'a>(&self, names: &'a Names, date: NaiveDate) -> WorkerOnDate<'a> {
        self.fold(names, |change| match change.kind {
            WorkerChangeKind::Terminated => change.date < date,
            _ => change.date <= date,
        })
    }

    /// The worker as the first `count` changes (in effective-date order) left them.
    fn fold_first<'a>(&self, names: &'a Names, count: usize) -> WorkerOnDate<'a> {
        let mut taken = 0;
        self.fold(names, |_| {
            taken += 1;
            taken <= count
        })
    }

    /// Attributes as of the latest change, whatever the date: for entries dated before
    /// the hire, to value what is held.
    fn latest<'a>(&self, names: &'a Names) -> WorkerOnDate<'a> {
        let mut state = self.fold(names, |_| true);
        state.status = None;
        state
    }

    fn fold<'a>(
        &self,
        names: &'a Names,
        mut takes_effect: impl FnMut(&Change) -> bool,
    ) -> WorkerOnDate<'a> {
        let mut state = WorkerOnDate {
            status: None,
            status_since: None,
            region: None,
            role: None,
            legal_entity: None,
            cost_center: None,
            grade: None,
            manager: None,
            classification: Classification::Employee,
        };
        let name = |sym: Sym| sym.get().map(|s| names.name(s));
        for change in self.changes.iter().take_while(|c| takes_effect(c)) {
            if change.kind != WorkerChangeKind::Transferred || state.status.is_none() {
                state.status_since = Some(change.date);
            }
            state.status = Some(match change.kind {
                WorkerChangeKind::Hired | WorkerChangeKind::LeaveEnded => WorkerStatus::Active,
                WorkerChangeKind::LeaveStarted => WorkerStatus::OnLeave,
                WorkerChangeKind::Terminated => WorkerStatus::Terminated,
                WorkerChangeKind::Transferred => state.status.unwrap_or(WorkerStatus::Active),
            });
            state.region = name(change.region).or(state.region);
            state.role = name(change.role).or(state.role);
            state.legal_entity = name(change.legal_entity).or(state.legal_entity);
            state.cost_center = name(change.cost_center).or(state.cost_center);
            state.grade = name(change.grade).or(state.grade);
            state.manager = name(change.manager).or(state.manager);
            if let Some(classification) = change.classification {
                state.classification = classification;
            }
        }
        state
    }
}

/// A project as its closed-won deal made it: the first deal for a code wins; terms change
/// only by amendment.
#[derive(Debug, Clone)]
pub struct ProjectInfo {
    pub project: Project,
    pub contract: Contract,
    pub customer: Customer,
    /// The hub customer's place in [`World::customers`].
    pub hub_customer: usize,
    pub opportunity_id: String,
    /// The contract's amendments, by `effective_from` (then arrival).
    pub amendments: Vec<ContractAmendment>,
}

impl ProjectInfo {
    /// The contract's terms in force on `date`: the deal's, changed by every amendment
    /// effective on or before it, in order.
    pub fn contract_on(&self, date: NaiveDate) -> std::borrow::Cow<'_, Contract> {
        let mut in_force = self
            .amendments
            .iter()
            .take_while(|a| a.effective_from <= date)
            .peekable();
        if in_force.peek().is_none() {
            return std::borrow::Cow::Borrowed(&self.contract);
        }
        let mut contract = self.contract.clone();
        for amendment in in_force {
            if let Some(card) = &amendment.rate_card_id {
                contract.rate_card_id = card.clone();
            }
            if let Some(cap) = amendment.cap {
                contract.cap = Some(cap);
            }
            if let Some(end) = amendment.end {
                contract.end = Some(end);
            }
            if let Some(milestones) = &amendment.milestones {
                contract.milestones = milestones.clone();
            }
        }
        std::borrow::Cow::Owned(contract)
    }

    /// The version of the contract's invoice schedule: 1, and one more for each amendment
    /// that replaced its milestones or moved its end.
    pub fn schedule_version(&self) -> u32 {
        1 + self
            .amendments
            .iter()
            .filter(|a| a.milestones.is_some() || a.end.is_some())
            .count() as u32
    }

    /// Every milestone the contract has had, in any of its versions.
    pub fn all_milestones(&self) -> impl Iterator<Item = &MilestoneTerm> {
        self.contract.milestones.iter().chain(
            self.amendments
                .iter()
                .filter_map(|a| a.milestones.as_ref())
                .flatten(),
        )
    }
}

/// One line of a rate card: valid from, valid to (inclusive), rate.
type RateSpan = (NaiveDate, Option<NaiveDate>, Decimal);

/// A rate card indexed by (role, region): each list sorted by `valid_from`.
#[derive(Debug, Clone)]
struct RateIndex {
    currency: Currency,
    rates: HashMap<(Sym, Sym), Vec<RateSpan>>,
}

/// An assignment, compact.
#[derive(Debug, Clone, Copy)]
struct Booking {
    version: u32,
    hours: Decimal,
    worker: Sym,
    project: Sym,
    role: Sym,
    start: NaiveDate,
    end: NaiveDate,
    state: AssignmentState,
}

/// How to take back one change.
#[derive(Debug)]
enum Undo {
    Customer(crate::customers::Undo),
    /// An amendment inserted at this place of the project's list.
    Amendment(Sym, usize),
    Invoice(Sym, Option<InvoiceState>),
    Project(Sym, Option<Box<ProjectInfo>>),
    WorkerChange(Sym, usize),
    RateCard(Sym, Option<RateIndex>),
    CostRate,
    Fx((Currency, Currency), NaiveDate, Option<Decimal>),
    Booking(Sym, Option<Booking>),
    Availability(Sym, usize),
}

/// A mark in the undo log: [`World::undo`] takes back everything after it.
#[derive(Debug, Clone, Copy)]
pub struct Mark(usize);

#[derive(Debug)]
pub struct World {
    names: Names,
    workers: HashMap<Sym, WorkerHistory>,
    customers: Customers,
    /// The system of record of customers: its records are the masters.
    customer_owner: String,
    /// Legal forms dropped from customer names on top of the built-in ones.
    legal_forms: Vec<String>,
    projects: HashMap<Sym, ProjectInfo>,
    /// Contract id to its project's code.
    contracts: HashMap<Sym, Sym>,
    invoices: HashMap<Sym, InvoiceState>,
    rate_cards: HashMap<Sym, RateIndex>,
    pub cost_rates: Vec<CostRate>,
    fx: HashMap<(Currency, Currency), BTreeMap<NaiveDate, Decimal>>,
    /// Assignments by the symbol of their id: most interned names are assignment ids, so a
    /// vector indexed by symbol is both dense and smaller than a map.
    bookings: Vec<Option<Booking>>,
    booked: usize,
    /// (worker, project, assignment): the assignments of a pair are a range.
    by_pair: BTreeSet<(Sym, Sym, Sym)>,
    /// A project's assignments (4 bytes each: most projects have a few hundred).
    by_project: HashMap<Sym, Vec<Sym>>,
    /// Each worker's availability periods, by start.
    availability: HashMap<Sym, Vec<Availability>>,
    log: Vec<Undo>,
    /// The reference version of the last event applied.
    pub version: i64,
}

/// What applying a reference event changed, where the hub or a flow acts on it.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub project: ProjectChange,
    pub invoice: Option<InvoiceChange>,
    /// For an amendment: the project it changed, or `None` for an unknown contract.
    pub amended: Option<Option<String>>,
    pub assignment: Option<AssignmentChange>,
    /// The hub customer a customer record was linked to, and how it matched.
    pub customer: Option<(usize, Linked)>,
}

/// What an assignment's version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentChange {
    /// Applied; the state it had before, if it was known.
    Applied { before: Option<AssignmentState> },
    /// An older version than the one known: ignored.
    Stale { known: u32 },
    /// The known version again, saying the same: nothing to do.
    Same,
    /// The known version again, saying something else: a conflict, not applied.
    Conflict,
}

/// A worker's change as history shows it: the worker as the change left them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry<'a> {
    pub kind: WorkerChangeKind,
    pub effective_date: NaiveDate,
    pub seq: i64,
    pub state: WorkerOnDate<'a>,
}

/// A rate card as the world keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct RateCardView<'a> {
    pub rate_card_id: &'a str,
    pub currency: Currency,
    pub rows: Vec<RateRow<'a>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateRow<'a> {
    pub role: &'a str,
    pub region: &'a str,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
    pub rate: Decimal,
}

/// An assignment as the world keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentView<'a> {
    pub assignment_id: &'a str,
    pub version: u32,
    pub worker_id: &'a str,
    pub project_code: &'a str,
    pub role: &'a str,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub hours: Decimal,
    pub state: AssignmentState,
}

/// An invoice's status as the invoice-status owner reported it, and its history.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceState {
    pub status: InvoiceStatus,
    pub at: chrono::DateTime<chrono::Utc>,
    /// (status, at, stored event) of every applied change, oldest first.
    pub history: Vec<(InvoiceStatus, chrono::DateTime<chrono::Utc>, i64)>,
}

/// What an invoice status change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceChange {
    /// Applied; the status before (`posted` for an invoice seen for the first time).
    Applied { from: InvoiceStatus },
    /// Older than the status known: ignored.
    Stale,
    /// A transition the invoice may not make: not applied.
    Forbidden { from: InvoiceStatus },
}

/// What a closed-won did to the projects.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum ProjectChange {
    #[default]
    Nothing,
    /// A project seen for the first time.
    NewProject,
    /// A closed-won for a project code that another opportunity already has.
    ProjectTaken { by: String },
}

impl Default for World {
    fn default() -> Self {
        World::configured(&crate::Config::default())
    }
}

impl World {
    /// An empty world that reads customers as `config` says.
    pub fn configured(config: &crate::Config) -> Self {
        World {
            names: Names::default(),
            workers: HashMap::new(),
            customers: Customers::default(),
            customer_owner: config.owner_of(pshub_model::Domain::Customer).to_string(),
            legal_forms: config.legal_forms.clone(),
            projects: HashMap::new(),
            contracts: HashMap::new(),
            invoices: HashMap::new(),
            rate_cards: HashMap::new(),
            cost_rates: Vec::new(),
            fx: HashMap::new(),
            bookings: Vec::new(),
            booked: 0,
            by_pair: BTreeSet::new(),
            by_project: HashMap::new(),
            availability: HashMap::new(),
            log: Vec::new(),
            version: 0,
        }
    }

    /// Marks the undo log; changes after the mark can be taken back.
    pub fn mark(&self) -> Mark {
        Mark(self.log.len())
    }

    /// Takes back every change after `mark`, newest first.
    pub fn undo(&mut self, mark: Mark, version: i64) {
        while self.log.len() > mark.0 {
            let Some(undo) = self.log.pop() else { break };
            match undo {
                Undo::Customer(undo) => self.customers.undo(undo),
                Undo::Invoice(id, before) => restore(&mut self.invoices, id, before),
                Undo::Amendment(code, at) => {
                    if let Some(project) = self.projects.get_mut(&code) {
                        project.amendments.remove(at);
                    }
                }
                Undo::Project(code, before) => {
                    if let Some(removed) = self.projects.get(&code)
                        && let Some(contract) =
                            self.names.find(removed.contract.contract_id.as_str())
                    {
                        self.contracts.remove(&contract);
                    }
                    restore(&mut self.projects, code, before.map(|b| *b))
                }
                Undo::WorkerChange(id, at) => {
                    if let Some(history) = self.workers.get_mut(&id) {
                        history.changes.remove(at);
                        if history.changes.is_empty() {
                            self.workers.remove(&id);
                        }
                    }
                }
                Undo::RateCard(id, before) => restore(&mut self.rate_cards, id, before),
                Undo::CostRate => {
                    self.cost_rates.pop();
                }
                Undo::Fx(pair, day, before) => {
                    let rates = self.fx.entry(pair).or_default();
                    match before {
                        Some(rate) => rates.insert(day, rate),
                        None => rates.remove(&day),
                    };
                }
                Undo::Booking(id, before) => {
                    self.remove_booking(id);
                    if let Some(booking) = before {
                        self.insert_booking(id, booking);
                    }
                }
                Undo::Availability(id, at) => {
                    if let Some(periods) = self.availability.get_mut(&id) {
                        periods.remove(at);
                        if periods.is_empty() {
                            self.availability.remove(&id);
                        }
                    }
                }
            }
        }
        self.version = version;
    }

    /// Forgets the undo log up to now: the changes are committed.
    pub fn keep(&mut self) {
        self.log.clear();
    }

    /// Keeps every change before `mark` for good (a batch committed) and can still take
    /// back those after it (a batch decided on top of it): answers where the latter begin.
    pub fn keep_before(&mut self, mark: Mark) -> Mark {
        self.log.drain(..mark.0.min(self.log.len()));
        Mark(0)
    }

    /// Applies a reference event from the customer owner (for tests and tools).
    pub fn apply(&mut self, data: &EventData) -> Applied {
        let owner = self.customer_owner.clone();
        self.apply_from(&owner, 0, data)
    }

    /// Applies a reference event that `source` sent, stored as `seq`.
    pub fn apply_from(&mut self, source: &str, seq: i64, data: &EventData) -> Applied {
        match data {
            EventData::Customer(customer) => {
                let linked = self.link_customer(source, customer);
                return Applied {
                    customer: Some(linked),
                    ..Applied::default()
                };
            }
            EventData::ClosedWon(won) => {
                let code = self.names.intern(won.project.project_code.as_str());
                if let Some(known) = self.projects.get(&code) {
                    let project = if known.opportunity_id != won.opportunity_id.as_str() {
                        ProjectChange::ProjectTaken {
                            by: known.opportunity_id.clone(),
                        }
                    } else {
                        ProjectChange::Nothing
                    };
                    return Applied {
                        project,
                        ..Applied::default()
                    };
                }
                let linked = self.link_customer(source, &won.customer);
                self.projects.insert(
                    code,
                    ProjectInfo {
                        project: won.project.clone(),
                        contract: won.contract.clone(),
                        customer: won.customer.clone(),
                        hub_customer: linked.0,
                        opportunity_id: won.opportunity_id.to_string(),
                        amendments: Vec::new(),
                    },
                );
                self.contracts
                    .insert(self.names.intern(won.contract.contract_id.as_str()), code);
                self.log.push(Undo::Project(code, None));
                return Applied {
                    project: ProjectChange::NewProject,
                    customer: Some(linked),
                    ..Applied::default()
                };
            }
            EventData::Worker(change) => {
                let id = self.names.intern(change.worker_id.as_str());
                let compact = Change {
                    kind: change.kind,
                    date: change.effective_date,
                    seq,
                    personal: change.name.is_some() || change.email.is_some(),
                    legal_entity: self.names.opt(change.legal_entity.as_deref()),
                    region: self.names.opt(change.region.as_deref()),
                    cost_center: self.names.opt(change.cost_center.as_deref()),
                    role: self.names.opt(change.role.as_deref()),
                    grade: self.names.opt(change.grade.as_deref()),
                    manager: self
                        .names
                        .opt(change.manager_id.as_ref().map(|m| m.as_str())),
                    classification: change.classification,
                };
                let at = self.workers.entry(id).or_default().record(compact);
                self.log.push(Undo::WorkerChange(id, at));
            }
            EventData::RateCard(card) => {
                let id = self.names.intern(card.rate_card_id.as_str());
                let mut rates: HashMap<(Sym, Sym), Vec<_>> = HashMap::new();
                for line in &card.rates {
                    let key = (
                        self.names.intern(&line.role),
                        self.names.intern(&line.region),
                    );
                    rates
                        .entry(key)
                        .or_default()
                        .push((line.valid_from, line.valid_to, line.rate));
                }
                for lines in rates.values_mut() {
                    lines.sort_by_key(|(from, ..)| *from);
                }
                let index = RateIndex {
                    currency: card.currency,
                    rates,
                };
                let before = self.rate_cards.insert(id, index);
                self.log.push(Undo::RateCard(id, before));
            }
            EventData::CostRate(rate) => {
                self.cost_rates.push(rate.clone());
                self.log.push(Undo::CostRate);
            }
            EventData::FxRate(rate) => {
                let pair = (rate.from, rate.to);
                let before = self
                    .fx
                    .entry(pair)
                    .or_default()
                    .insert(rate.valid_on, rate.rate);
                self.log.push(Undo::Fx(pair, rate.valid_on, before));
            }
            EventData::Assignment(assignment) => {
                let change = self.apply_assignment(assignment);
                return Applied {
                    assignment: Some(change),
                    ..Applied::default()
                };
            }
            EventData::ContractAmended(amendment) => {
                let project = self.amend(amendment);
                return Applied {
                    amended: Some(project.map(|p| self.names.name(p).to_string())),
                    ..Applied::default()
                };
            }
            EventData::InvoiceStatus(change) => {
                let invoice = Some(self.apply_invoice(seq, change));
                return Applied {
                    invoice,
                    ..Applied::default()
                };
            }
            EventData::Availability(change) => {
                let id = self.names.intern(change.worker_id.as_str());
                let periods = self.availability.entry(id).or_default();
                let at = periods.partition_point(|p| p.from <= change.from);
                periods.insert(
                    at,
                    Availability {
                        from: change.from,
                        to: change.to,
                        hours_per_week: change.hours_per_week,
                        region: change.region.clone(),
                        role: change.role.clone(),
                    },
                );
                self.log.push(Undo::Availability(id, at));
            }
            EventData::TimeEntry { .. }
            | EventData::Expense { .. }
            | EventData::MilestoneReached(_)
            | EventData::PayrollActual(_) => {}
        }
        Applied::default()
    }

    /// Adds an amendment to its contract's project; answers the project, if the contract
    /// is known.
    fn amend(&mut self, amendment: &ContractAmendment) -> Option<Sym> {
        let code = *self
            .contracts
            .get(&self.names.find(amendment.contract_id.as_str())?)?;
        let project = self.projects.get_mut(&code)?;
        let at = project
            .amendments
            .partition_point(|a| a.effective_from <= amendment.effective_from);
        project.amendments.insert(at, amendment.clone());
        self.log.push(Undo::Amendment(code, at));
        Some(code)
    }

    /// Applies an invoice's status change in the order of `at`.
    fn apply_invoice(&mut self, seq: i64, change: &InvoiceStatusChange) -> InvoiceChange {
        // The hub finds an invoice named only by its sender's id before it accepts the
        // event (or quarantines it): one without the hub's id changes nothing here.
        let Some(invoice) = &change.invoice_id else {
            return InvoiceChange::Stale;
        };
        let id = self.names.intern(invoice.as_str());
        let before = self.invoices.get(&id).cloned();
        let from = before.as_ref().map_or(InvoiceStatus::Posted, |b| b.status);
        if before.as_ref().is_some_and(|b| change.at <= b.at) {
            return InvoiceChange::Stale;
        }
        if change.status != from && !from.may_become(change.status) {
            return InvoiceChange::Forbidden { from };
        }
        let mut state = before.clone().unwrap_or(InvoiceState {
            status: from,
            at: change.at,
            history: Vec::new(),
        });
        state.status = change.status;
        state.at = change.at;
        state.history.push((change.status, change.at, seq));
        self.invoices.insert(id, state);
        self.log.push(Undo::Invoice(id, before));
        InvoiceChange::Applied { from }
    }

    /// Every rate card: id, currency and its rows (role, region, valid from, valid to,
    /// rate), sorted.
    pub fn rate_cards(&self) -> Vec<RateCardView<'_>> {
        let mut cards: Vec<RateCardView<'_>> = self
            .rate_cards
            .iter()
            .map(|(id, index)| {
                let mut rows: Vec<RateRow<'_>> = index
                    .rates
                    .iter()
                    .flat_map(|((role, region), spans)| {
                        spans.iter().map(|&(from, to, rate)| RateRow {
                            role: self.names.name(*role),
                            region: self.names.name(*region),
                            valid_from: from,
                            valid_to: to,
                            rate,
                        })
                    })
                    .collect();
                rows.sort_by(|a, b| {
                    (a.role, a.region, a.valid_from).cmp(&(b.role, b.region, b.valid_from))
                });
                RateCardView {
                    rate_card_id: self.names.name(*id),
                    currency: index.currency,
                    rows,
                }
            })
            .collect();
        cards.sort_by(|a, b| a.rate_card_id.cmp(b.rate_card_id));
        cards
    }

    /// Every FX rate: (from, to, valid on, rate), sorted.
    pub fn fx_rates(&self) -> Vec<(Currency, Currency, NaiveDate, Decimal)> {
        let mut all: Vec<_> = self
            .fx
            .iter()
            .flat_map(|((from, to), days)| {
                days.iter()
                    .map(move |(day, rate)| (*from, *to, *day, *rate))
            })
            .collect();
        all.sort_by(|a, b| (a.0.code(), a.1.code(), a.2).cmp(&(b.0.code(), b.1.code(), b.2)));
        all
    }

    /// Every assignment, by id.
    pub fn all_assignments(&self) -> Vec<AssignmentView<'_>> {
        let mut all: Vec<AssignmentView<'_>> = self
            .by_project
            .values()
            .flatten()
            .filter_map(|&id| Some(self.assignment_view(id, self.booking(id)?)))
            .collect();
        all.sort_by(|a, b| a.assignment_id.cmp(b.assignment_id));
        all
    }

    /// Every invoice with a reported status, by id.
    pub fn invoices(&self) -> impl Iterator<Item = (&str, &InvoiceState)> {
        self.invoices
            .iter()
            .map(|(id, state)| (self.names.name(*id), state))
    }

    /// An invoice's status as reported, if any was.
    pub fn invoice(&self, invoice_id: &str) -> Option<&InvoiceState> {
        self.invoices.get(&self.names.find(invoice_id)?)
    }

    /// The project of a contract.
    pub fn project_of_contract(&self, contract_id: &str) -> Option<&ProjectInfo> {
        let code = self.contracts.get(&self.names.find(contract_id)?)?;
        self.projects.get(code)
    }

    fn link_customer(&mut self, source: &str, customer: &Customer) -> (usize, Linked) {
        let authoritative = source == self.customer_owner;
        let (at, linked, undo) =
            self.customers
                .link(source, authoritative, customer, &self.legal_forms);
        self.log.push(Undo::Customer(undo));
        (at, linked)
    }

    /// The hub's customers.
    pub fn customers(&self) -> &Customers {
        &self.customers
    }

    fn apply_assignment(&mut self, assignment: &Assignment) -> AssignmentChange {
        let id = self.names.intern(assignment.assignment_id.as_str());
        let before = self.booking(id);
        if let Some(known) = before {
            if known.version > assignment.version {
                return AssignmentChange::Stale {
                    known: known.version,
                };
            }
            if known.version == assignment.version {
                // An older or equal version arriving late changes nothing; an equal one
                // that says something else is a conflict.
                let same = known.hours == assignment.hours
                    && known.start == assignment.start
                    && known.end == assignment.end
                    && known.state == assignment.state
                    && self.names.name(known.worker) == assignment.worker_id.as_str()
                    && self.names.name(known.project) == assignment.project_code.as_str()
                    && self.names.name(known.role) == assignment.role;
                return if same {
                    AssignmentChange::Same
                } else {
                    AssignmentChange::Conflict
                };
            }
        }
        let booking = Booking {
            version: assignment.version,
            hours: assignment.hours,
            worker: self.names.intern(assignment.worker_id.as_str()),
            project: self.names.intern(assignment.project_code.as_str()),
            role: self.names.intern(&assignment.role),
            start: assignment.start,
            end: assignment.end,
            state: assignment.state,
        };
        self.remove_booking(id);
        self.insert_booking(id, booking);
        self.log.push(Undo::Booking(id, before));
        AssignmentChange::Applied {
            before: before.map(|b| b.state),
        }
    }

    fn booking(&self, id: Sym) -> Option<Booking> {
        self.bookings.get(id.0 as usize).copied().flatten()
    }

    fn remove_booking(&mut self, id: Sym) {
        if let Some(old) = self.bookings.get_mut(id.0 as usize).and_then(Option::take) {
            self.by_pair.remove(&(old.worker, old.project, id));
            if let Some(ids) = self.by_project.get_mut(&old.project)
                && let Some(at) = ids.iter().position(|a| *a == id)
            {
                ids.swap_remove(at);
            }
            self.booked -= 1;
        }
    }

    fn insert_booking(&mut self, id: Sym, booking: Booking) {
        let at = id.0 as usize;
        if self.bookings.len() <= at {
            self.bookings.resize(at + 1, None);
        }
        self.by_pair.insert((booking.worker, booking.project, id));
        self.by_project.entry(booking.project).or_default().push(id);
        if self.bookings[at].replace(booking).is_none() {
            self.booked += 1;
        }
    }

    pub fn project(&self, code: &ProjectCode) -> Option<&ProjectInfo> {
        self.project_by_code(code.as_str())
    }

    /// The project of a code as stored (a line's, a step's business key).
    pub fn project_by_code(&self, code: &str) -> Option<&ProjectInfo> {
        self.projects.get(&self.names.find(code)?)
    }

    pub fn projects(&self) -> impl Iterator<Item = &ProjectInfo> {
        self.projects.values()
    }

    pub fn knows_worker(&self, worker: &WorkerId) -> bool {
        self.names
            .find(worker.as_str())
            .is_some_and(|id| self.workers.contains_key(&id))
    }

    /// The worker on `date`; `None` for a worker the hub does not know.
    pub fn worker_on(&self, worker: &WorkerId, date: NaiveDate) -> Option<WorkerOnDate<'_>> {
        let history = self.workers.get(&self.names.find(worker.as_str())?)?;
        Some(history.on(&self.names, date))
    }

    /// The worker's attributes as of the latest change.
    pub fn worker_latest(&self, worker: &WorkerId) -> Option<WorkerOnDate<'_>> {
        let history = self.workers.get(&self.names.find(worker.as_str())?)?;
        Some(history.latest(&self.names))
    }

    /// The availability periods the PSA sent for a worker, by start (later sent wins
    /// among equal starts).
    pub fn availability_of(&self, worker: &str) -> &[Availability] {
        self.names
            .find(worker)
            .and_then(|id| self.availability.get(&id))
            .map_or(&[], Vec::as_slice)
    }

    /// Every worker the world knows, by id.
    pub fn worker_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.workers.keys().map(|s| self.names.name(*s)).collect();
        ids.sort_unstable();
        ids
    }

    /// A worker's changes in effective-date order, each with the worker as it left them.
    pub fn worker_history(&self, worker: &str) -> Option<Vec<HistoryEntry<'_>>> {
        let history = self.workers.get(&self.names.find(worker)?)?;
        Some(
            history
                .changes
                .iter()
                .enumerate()
                .map(|(i, change)| HistoryEntry {
                    kind: change.kind,
                    effective_date: change.date,
                    seq: change.seq,
                    state: history.fold_first(&self.names, i + 1),
                })
                .collect(),
        )
    }

    /// The stored event of the worker's latest change that carried personal fields.
    pub fn personal_seq(&self, worker: &str) -> Option<i64> {
        let history = self.workers.get(&self.names.find(worker)?)?;
        history
            .changes
            .iter()
            .filter(|c| c.personal)
            .max_by_key(|c| c.seq)
            .map(|c| c.seq)
    }

    fn assignment_view(&self, id: Sym, booking: Booking) -> AssignmentView<'_> {
        AssignmentView {
            assignment_id: self.names.name(id),
            version: booking.version,
            worker_id: self.names.name(booking.worker),
            project_code: self.names.name(booking.project),
            role: self.names.name(booking.role),
            start: booking.start,
            end: booking.end,
            hours: booking.hours,
            state: booking.state,
        }
    }

    /// The worker's assignments, on every project.
    pub fn assignments_of_worker(&self, worker: &str) -> Vec<AssignmentView<'_>> {
        let Some(w) = self.names.find(worker) else {
            return Vec::new();
        };
        self.by_pair
            .range((w, Sym(0), Sym(0))..=(w, Sym(u32::MAX), Sym(u32::MAX)))
            .filter_map(|&(_, _, id)| Some(self.assignment_view(id, self.booking(id)?)))
            .collect()
    }

    /// Every assignment of the project.
    pub fn assignments_of_project(&self, project: &str) -> Vec<AssignmentView<'_>> {
        let Some(p) = self.names.find(project) else {
            return Vec::new();
        };
        let mut found: Vec<AssignmentView<'_>> = self
            .by_project
            .get(&p)
            .into_iter()
            .flatten()
            .filter_map(|&id| Some(self.assignment_view(id, self.booking(id)?)))
            .collect();
        found.sort_by(|a, b| a.assignment_id.cmp(b.assignment_id));
        found
    }

    /// One assignment.
    pub fn assignment(&self, id: &str) -> Option<AssignmentView<'_>> {
        let sym = self.names.find(id)?;
        Some(self.assignment_view(sym, self.booking(sym)?))
    }

    /// The worker's approved assignment on the project covering `date`.
    pub fn approved_assignment_on(
        &self,
        worker: &str,
        project: &str,
        date: NaiveDate,
    ) -> Option<AssignmentView<'_>> {
        let pair = (self.names.find(worker)?, self.names.find(project)?);
        self.by_pair
            .range((pair.0, pair.1, Sym(0))..=(pair.0, pair.1, Sym(u32::MAX)))
            .filter_map(|&(_, _, id)| Some((id, self.booking(id)?)))
            .find(|(_, b)| b.state == AssignmentState::Approved && b.start <= date && date <= b.end)
            .map(|(id, b)| self.assignment_view(id, b))
    }

    /// The role of the worker's approved assignment on the project covering `date`.
    pub fn approved_assignment(
        &self,
        worker: &WorkerId,
        project: &ProjectCode,
        date: NaiveDate,
    ) -> Option<&str> {
        let pair = (
            self.names.find(worker.as_str())?,
            self.names.find(project.as_str())?,
        );
        self.by_pair
            .range((pair.0, pair.1, Sym(0))..=(pair.0, pair.1, Sym(u32::MAX)))
            .filter_map(|&(_, _, id)| self.booking(id))
            .find(|b| b.state == AssignmentState::Approved && b.start <= date && date <= b.end)
            .map(|b| self.names.name(b.role))
    }

    /// The rate card's currency and its bill rate for (role, region, date); where lines
    /// overlap, the latest `valid_from` wins. `None` for an unknown card.
    pub fn bill_rate(
        &self,
        card: &str,
        role: &str,
        region: &str,
        date: NaiveDate,
    ) -> Option<(Currency, Option<Decimal>)> {
        let index = self.rate_cards.get(&self.names.find(card)?)?;
        let key = match (self.names.find(role), self.names.find(region)) {
            (Some(role), Some(region)) => (role, region),
            _ => return Some((index.currency, None)),
        };
        let rate = index.rates.get(&key).and_then(|lines| {
            lines
                .iter()
                .rev()
                .find(|(from, to, _)| *from <= date && to.is_none_or(|to| date <= to))
                .map(|(.., rate)| *rate)
        });
        Some((index.currency, rate))
    }

    /// The FX rate with the latest `valid_on` on or before `date`.
    pub fn fx_rate(&self, from: Currency, to: Currency, date: NaiveDate) -> Option<Decimal> {
        self.fx
            .get(&(from, to))?
            .range(..=date)
            .next_back()
            .map(|(_, rate)| *rate)
    }

    /// How many assignments are held, for the memory benchmark.
    pub fn assignments(&self) -> usize {
        self.booked
    }
}

fn restore<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, before: Option<V>) {
    match before {
        Some(value) => map.insert(key, value),
        None => map.remove(&key),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: WorkerChangeKind, date: &str, region: Option<&str>) -> EventData {
        EventData::Worker(WorkerChange {
            kind,
            worker_id: WorkerId::parse("W-1").unwrap(),
            effective_date: date.parse().unwrap(),
            legal_entity: None,
            region: region.map(String::from),
            cost_center: None,
            role: Some("consultant".into()),
            grade: None,
            manager_id: None,
            classification: None,
            name: None,
            email: None,
        })
    }

    fn status_on(world: &World, date: &str) -> Option<WorkerStatus> {
        world
            .worker_on(&WorkerId::parse("W-1").unwrap(), date.parse().unwrap())
            .and_then(|w| w.status)
    }

    #[test]
    fn worker_dates_follow_the_contract() {
        let mut world = World::default();
        world.apply(&change(WorkerChangeKind::Hired, "2026-01-10", Some("emea")));
        world.apply(&change(WorkerChangeKind::LeaveStarted, "2026-02-01", None));
        world.apply(&change(WorkerChangeKind::LeaveEnded, "2026-02-10", None));
        world.apply(&change(
            WorkerChangeKind::Transferred,
            "2026-03-01",
            Some("amer"),
        ));
        world.apply(&change(WorkerChangeKind::Terminated, "2026-03-31", None));
        let region = |d: &str| {
            world
                .worker_on(&WorkerId::parse("W-1").unwrap(), d.parse().unwrap())
                .and_then(|w| w.region)
                .map(str::to_string)
        };
        assert_eq!(status_on(&world, "2026-01-09"), None);
        assert_eq!(status_on(&world, "2026-01-10"), Some(WorkerStatus::Active));
        assert_eq!(status_on(&world, "2026-02-01"), Some(WorkerStatus::OnLeave));
        assert_eq!(status_on(&world, "2026-02-09"), Some(WorkerStatus::OnLeave));
        assert_eq!(status_on(&world, "2026-02-10"), Some(WorkerStatus::Active));
        assert_eq!(region("2026-02-28").as_deref(), Some("emea"));
        assert_eq!(region("2026-03-01").as_deref(), Some("amer"));
        assert_eq!(status_on(&world, "2026-03-31"), Some(WorkerStatus::Active));
        assert_eq!(
            status_on(&world, "2026-04-01"),
            Some(WorkerStatus::Terminated)
        );
    }

    #[test]
    fn fx_uses_the_latest_rate_on_or_before_the_date() {
        let mut world = World::default();
        let (eur, usd) = (
            Currency::parse("EUR").unwrap(),
            Currency::parse("USD").unwrap(),
        );
        for (day, rate) in [("2026-03-01", "1.08"), ("2026-03-15", "1.10")] {
            world.apply(&EventData::FxRate(FxRate {
                from: eur,
                to: usd,
                rate: rate.parse().unwrap(),
                valid_on: day.parse().unwrap(),
                source: "ecb".into(),
            }));
        }
        let on = |d: &str| {
            world
                .fx_rate(eur, usd, d.parse().unwrap())
                .map(|r| r.to_string())
        };
        assert_eq!(on("2026-02-28"), None);
        assert_eq!(on("2026-03-14"), Some("1.08".into()));
        assert_eq!(on("2026-03-15"), Some("1.10".into()));
        assert_eq!(world.fx_rate(usd, eur, "2026-03-20".parse().unwrap()), None);
    }

    fn assignment(id: &str, version: u32, project: &str, state: AssignmentState) -> EventData {
        EventData::Assignment(Assignment {
            assignment_id: pshub_model::AssignmentId::parse(id).unwrap(),
            version,
            worker_id: WorkerId::parse("W-1").unwrap(),
            project_code: ProjectCode::parse(project).unwrap(),
            role: "consultant".into(),
            start: "2026-03-01".parse().unwrap(),
            end: "2026-03-31".parse().unwrap(),
            hours: Decimal::from(160),
            state,
        })
    }

    #[test]
    fn a_later_version_moves_an_assignment_and_an_older_one_changes_nothing() {
        let mut world = World::default();
        let (w, p1, p2) = (
            WorkerId::parse("W-1").unwrap(),
            ProjectCode::parse("P-1").unwrap(),
            ProjectCode::parse("P-2").unwrap(),
        );
        let day = "2026-03-04".parse().unwrap();
        world.apply(&assignment("A-1", 2, "P-1", AssignmentState::Approved));
        world.apply(&assignment("A-1", 1, "P-1", AssignmentState::Soft));
        assert_eq!(world.approved_assignment(&w, &p1, day), Some("consultant"));
        world.apply(&assignment("A-1", 3, "P-2", AssignmentState::Approved));
        assert_eq!(world.approved_assignment(&w, &p1, day), None);
        assert_eq!(world.approved_assignment(&w, &p2, day), Some("consultant"));
        assert_eq!(world.assignments(), 1);
    }

    #[test]
    fn undo_takes_back_everything_after_the_mark() {
        let mut world = World::default();
        let (w, p1) = (
            WorkerId::parse("W-1").unwrap(),
            ProjectCode::parse("P-1").unwrap(),
        );
        let day = "2026-03-04".parse().unwrap();
        world.apply(&assignment("A-1", 1, "P-1", AssignmentState::Approved));
        world.apply(&change(WorkerChangeKind::Hired, "2026-01-10", Some("emea")));
        world.keep();
        let mark = world.mark();
        world.apply(&assignment("A-1", 2, "P-1", AssignmentState::Cancelled));
        world.apply(&change(WorkerChangeKind::Terminated, "2026-02-01", None));
        world.apply(&assignment("A-2", 1, "P-1", AssignmentState::Soft));
        assert_eq!(world.approved_assignment(&w, &p1, day), None);
        assert_eq!(
            status_on(&world, "2026-03-01"),
            Some(WorkerStatus::Terminated)
        );
        world.undo(mark, 7);
        assert_eq!(world.approved_assignment(&w, &p1, day), Some("consultant"));
        assert_eq!(status_on(&world, "2026-03-01"), Some(WorkerStatus::Active));
        assert_eq!(world.assignments(), 1);
        assert_eq!(world.version, 7);
    }

    #[test]
    fn names_are_interned_once_and_found_again() {
        let mut names = Names::default();
        let a = names.intern("W-00001");
        let b = names.intern("P-0001");
        assert_eq!(names.intern("W-00001"), a);
        assert_eq!(names.name(b), "P-0001");
        assert_eq!(names.find("nobody"), None);
    }
}

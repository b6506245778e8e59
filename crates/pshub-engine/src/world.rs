//! Reference data as the rules read it: workers with their effective-dated history,
//! projects and contracts (with amendments), rate cards, FX rates and assignments.
//! Rebuilt at start by replaying the reference events of the inbox in order.

use chrono::NaiveDate;
use pshub_model::records::*;
use pshub_model::{
    AssignmentId, ContractId, Currency, CustomerId, EventData, ProjectCode, RateCardId, WorkerId,
};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};

/// A worker's changes, ordered by effective date (then arrival).
#[derive(Debug, Default, Clone)]
pub struct WorkerHistory {
    changes: Vec<WorkerChange>,
}

/// A worker as of one date.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOnDate<'a> {
    pub status: Option<WorkerStatus>,
    pub region: Option<&'a str>,
    pub role: Option<&'a str>,
    pub legal_entity: Option<&'a str>,
}

impl WorkerHistory {
    fn record(&mut self, change: WorkerChange) {
        // Stable insertion keeps arrival order among changes with the same date.
        let at = self
            .changes
            .partition_point(|c| c.effective_date <= change.effective_date);
        self.changes.insert(at, change);
    }

    /// The worker's status and attributes on `date`. Billable from the hire date through
    /// the termination date, both inclusive; a leave runs from its start through the day
    /// before the leave ends; a transfer changes attributes from its effective date.
    pub fn on(&self, date: NaiveDate) -> WorkerOnDate<'_> {
        let mut state = WorkerOnDate {
            status: None,
            region: None,
            role: None,
            legal_entity: None,
        };
        for change in &self.changes {
            let takes_effect = match change.kind {
                WorkerChangeKind::Terminated => change.effective_date < date,
                _ => change.effective_date <= date,
            };
            if !takes_effect {
                break;
            }
            state.status = Some(match change.kind {
                WorkerChangeKind::Hired | WorkerChangeKind::LeaveEnded => WorkerStatus::Active,
                WorkerChangeKind::LeaveStarted => WorkerStatus::OnLeave,
                WorkerChangeKind::Terminated => WorkerStatus::Terminated,
                WorkerChangeKind::Transferred => state.status.unwrap_or(WorkerStatus::Active),
            });
            state.region = change.region.as_deref().or(state.region);
            state.role = change.role.as_deref().or(state.role);
            state.legal_entity = change.legal_entity.as_deref().or(state.legal_entity);
        }
        state
    }

    /// Attributes as of the latest change, whatever the date: for entries dated before
    /// the hire, to value what is held.
    pub fn latest(&self) -> WorkerOnDate<'_> {
        let mut state = WorkerOnDate {
            status: None,
            region: None,
            role: None,
            legal_entity: None,
        };
        for change in &self.changes {
            state.region = change.region.as_deref().or(state.region);
            state.role = change.role.as_deref().or(state.role);
            state.legal_entity = change.legal_entity.as_deref().or(state.legal_entity);
        }
        state
    }
}

/// A contract with its amendments in effective order.
#[derive(Debug, Clone)]
pub struct ContractTerms {
    pub base: Contract,
    amendments: Vec<ContractAmendment>,
}

impl ContractTerms {
    /// The rate card and end date in force on `date`.
    pub fn on(&self, date: NaiveDate) -> (&RateCardId, Option<NaiveDate>) {
        let mut rate_card = &self.base.rate_card_id;
        let mut end = self.base.end;
        for amendment in self
            .amendments
            .iter()
            .take_while(|a| a.effective_from <= date)
        {
            rate_card = amendment.rate_card_id.as_ref().unwrap_or(rate_card);
            end = amendment.end.or(end);
        }
        (rate_card, end)
    }

    /// The contract's latest end date, amendments included, to say whether a date is past it.
    pub fn covers(&self, date: NaiveDate) -> bool {
        let (_, end) = self.on(date);
        date >= self.base.start && end.is_none_or(|end| date <= end)
    }
}

#[derive(Debug, Clone)]
pub struct ProjectInfo {
    pub project: Project,
    pub contract_id: ContractId,
    pub customer_id: CustomerId,
}

#[derive(Debug, Default)]
pub struct World {
    pub workers: HashMap<WorkerId, WorkerHistory>,
    pub customers: HashMap<CustomerId, Customer>,
    pub projects: HashMap<ProjectCode, ProjectInfo>,
    pub contracts: HashMap<ContractId, ContractTerms>,
    pub rate_cards: HashMap<RateCardId, RateCard>,
    pub cost_rates: Vec<CostRate>,
    fx: HashMap<(Currency, Currency), BTreeMap<NaiveDate, Decimal>>,
    assignments: HashMap<AssignmentId, Assignment>,
    assignments_by_pair: HashMap<(WorkerId, ProjectCode), Vec<AssignmentId>>,
}

/// What applying a reference event changed, where the engine must act on it.
#[derive(Debug, PartialEq)]
pub enum Applied {
    Nothing,
    /// A project seen for the first time: provision it in the ERP.
    NewProject(ProjectCode),
}

impl World {
    pub fn apply(&mut self, data: &EventData) -> Applied {
        match data {
            EventData::Customer(customer) => {
                self.customers
                    .insert(customer.customer_id.clone(), customer.clone());
            }
            EventData::ClosedWon(won) => {
                self.customers
                    .insert(won.customer.customer_id.clone(), won.customer.clone());
                let contract_id = won.contract.contract_id.clone();
                self.contracts
                    .entry(contract_id.clone())
                    .and_modify(|terms| terms.base = won.contract.clone())
                    .or_insert_with(|| ContractTerms {
                        base: won.contract.clone(),
                        amendments: Vec::new(),
                    });
                let code = won.project.project_code.clone();
                let is_new = !self.projects.contains_key(&code);
                self.projects.insert(
                    code.clone(),
                    ProjectInfo {
                        project: won.project.clone(),
                        contract_id,
                        customer_id: won.customer.customer_id.clone(),
                    },
                );
                if is_new {
                    return Applied::NewProject(code);
                }
            }
            EventData::ContractAmended(amendment) => {
                if let Some(terms) = self.contracts.get_mut(&amendment.contract_id) {
                    let at = terms
                        .amendments
                        .partition_point(|a| a.effective_from <= amendment.effective_from);
                    terms.amendments.insert(at, amendment.clone());
                }
            }
            EventData::Worker(change) => {
                self.workers
                    .entry(change.worker_id.clone())
                    .or_default()
                    .record(change.clone());
            }
            EventData::RateCard(card) => {
                self.rate_cards
                    .insert(card.rate_card_id.clone(), card.clone());
            }
            EventData::CostRate(rate) => self.cost_rates.push(rate.clone()),
            EventData::FxRate(rate) => {
                self.fx
                    .entry((rate.from, rate.to))
                    .or_default()
                    .insert(rate.valid_on, rate.rate);
            }
            EventData::Assignment(assignment) => self.apply_assignment(assignment),
            EventData::TimeEntry { .. }
            | EventData::Expense { .. }
            | EventData::MilestoneReached(_)
            | EventData::InvoiceStatus(_)
            | EventData::PayrollActual(_) => {}
        }
        Applied::Nothing
    }

    fn apply_assignment(&mut self, assignment: &Assignment) {
        if let Some(known) = self.assignments.get(&assignment.assignment_id) {
            if known.version >= assignment.version {
                return; // an older or equal version arriving late changes nothing
            }
            let old_pair = (known.worker_id.clone(), known.project_code.clone());
            if let Some(ids) = self.assignments_by_pair.get_mut(&old_pair) {
                ids.retain(|id| id != &assignment.assignment_id);
            }
        }
        self.assignments
            .insert(assignment.assignment_id.clone(), assignment.clone());
        self.assignments_by_pair
            .entry((
                assignment.worker_id.clone(),
                assignment.project_code.clone(),
            ))
            .or_default()
            .push(assignment.assignment_id.clone());
    }

    /// The approved assignment of the worker on the project covering `date`.
    pub fn approved_assignment(
        &self,
        worker: &WorkerId,
        project: &ProjectCode,
        date: NaiveDate,
    ) -> Option<&Assignment> {
        // Borrowed lookups with a tuple key need owned parts; these clones are of short ids.
        let ids = self
            .assignments_by_pair
            .get(&(worker.clone(), project.clone()))?;
        ids.iter()
            .filter_map(|id| self.assignments.get(id))
            .find(|a| a.state == AssignmentState::Approved && a.covers(date))
    }

    /// The FX rate with the latest `valid_on` on or before `date`.
    pub fn fx_rate(&self, from: Currency, to: Currency, date: NaiveDate) -> Option<Decimal> {
        self.fx
            .get(&(from, to))?
            .range(..=date)
            .next_back()
            .map(|(_, rate)| *rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: WorkerChangeKind, date: &str, region: Option<&str>) -> WorkerChange {
        WorkerChange {
            kind,
            worker_id: WorkerId::parse("W-1").unwrap(),
            effective_date: date.parse().unwrap(),
            legal_entity: None,
            region: region.map(String::from),
            cost_center: None,
            role: Some("consultant".into()),
            grade: None,
            manager_id: None,
            name: None,
            email: None,
        }
    }

    fn status_on(history: &WorkerHistory, date: &str) -> Option<WorkerStatus> {
        history.on(date.parse().unwrap()).status
    }

    #[test]
    fn worker_dates_follow_the_contract() {
        let mut history = WorkerHistory::default();
        history.record(change(WorkerChangeKind::Hired, "2026-01-10", Some("emea")));
        history.record(change(WorkerChangeKind::LeaveStarted, "2026-02-01", None));
        history.record(change(WorkerChangeKind::LeaveEnded, "2026-02-10", None));
        history.record(change(
            WorkerChangeKind::Transferred,
            "2026-03-01",
            Some("amer"),
        ));
        history.record(change(WorkerChangeKind::Terminated, "2026-03-31", None));
        assert_eq!(status_on(&history, "2026-01-09"), None);
        assert_eq!(
            status_on(&history, "2026-01-10"),
            Some(WorkerStatus::Active)
        );
        assert_eq!(
            status_on(&history, "2026-02-01"),
            Some(WorkerStatus::OnLeave)
        );
        assert_eq!(
            status_on(&history, "2026-02-09"),
            Some(WorkerStatus::OnLeave)
        );
        assert_eq!(
            status_on(&history, "2026-02-10"),
            Some(WorkerStatus::Active)
        );
        assert_eq!(
            history.on("2026-02-28".parse().unwrap()).region,
            Some("emea")
        );
        assert_eq!(
            history.on("2026-03-01".parse().unwrap()).region,
            Some("amer")
        );
        assert_eq!(
            status_on(&history, "2026-03-31"),
            Some(WorkerStatus::Active)
        );
        assert_eq!(
            status_on(&history, "2026-04-01"),
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
}

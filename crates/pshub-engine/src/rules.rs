//! Flow 4's checks and pricing (PRODUCT.md 5.4), as a pure function of the reference data
//! and one entry. The checks run in a fixed order and the first failure decides the case:
//! worker known, project known, worker active, approved assignment, date inside the
//! contract, bill rate, FX rate, tax code.

use crate::config::Config;
use crate::world::World;
use chrono::NaiveDate;
use pshub_model::records::{Expense, OwnerTeam, TimeEntry, WorkerStatus};
use pshub_model::{Currency, Money, ProjectCode, WorkerId};
use rust_decimal::Decimal;

/// The work to price: a time entry or an expense, seen through what the rules need.
#[derive(Debug, Clone, Copy)]
pub enum Work<'a> {
    Time(&'a TimeEntry),
    Expense(&'a Expense),
}

impl Work<'_> {
    pub fn worker(&self) -> &WorkerId {
        match self {
            Work::Time(t) => &t.worker_id,
            Work::Expense(e) => &e.worker_id,
        }
    }

    pub fn project(&self) -> &ProjectCode {
        match self {
            Work::Time(t) => &t.project_code,
            Work::Expense(e) => &e.project_code,
        }
    }

    pub fn date(&self) -> NaiveDate {
        match self {
            Work::Time(t) => t.work_date,
            Work::Expense(e) => e.spent_on,
        }
    }

    pub fn source_id(&self) -> &str {
        match self {
            Work::Time(t) => t.entry_id.as_str(),
            Work::Expense(e) => e.expense_id.as_str(),
        }
    }

    pub fn billable(&self) -> bool {
        match self {
            Work::Time(t) => t.billable,
            Work::Expense(e) => e.billable,
        }
    }
}

/// Why an entry cannot be billed now; each kind has one owning team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    UnknownWorker,
    UnknownProject,
    WorkerInactive,
    NoApprovedAssignment,
    ContractExpired,
    MissingRate,
    MissingFxRate,
    MissingTaxCode,
}

impl FailureKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::UnknownWorker => "unknown_worker",
            FailureKind::UnknownProject => "unknown_project",
            FailureKind::WorkerInactive => "worker_inactive",
            FailureKind::NoApprovedAssignment => "no_approved_assignment",
            FailureKind::ContractExpired => "contract_expired",
            FailureKind::MissingRate => "missing_rate",
            FailureKind::MissingFxRate => "missing_fx_rate",
            FailureKind::MissingTaxCode => "missing_tax_code",
        }
    }

    pub fn owner(&self) -> OwnerTeam {
        match self {
            FailureKind::UnknownWorker => OwnerTeam::Hr,
            FailureKind::UnknownProject => OwnerTeam::Integration,
            FailureKind::WorkerInactive | FailureKind::NoApprovedAssignment => OwnerTeam::Pmo,
            FailureKind::ContractExpired
            | FailureKind::MissingRate
            | FailureKind::MissingFxRate
            | FailureKind::MissingTaxCode => OwnerTeam::Finance,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    pub reason: String,
    pub suggested_fix: String,
}

/// A priced, enriched line ready to post.
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    pub quantity: Decimal,
    pub rate: Decimal,
    pub rate_currency: Currency,
    pub fx_rate: Option<Decimal>,
    /// The line amount in the billing currency.
    pub amount: Money,
    pub tax_code: String,
    pub billing_class: String,
}

/// The outcome of the checks, with the entry's value in the billing currency wherever a
/// rate and FX rate make it computable (also for held entries).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Result<Pricing, Failure>,
    pub value: Option<Money>,
}

fn fail(kind: FailureKind, reason: String, suggested_fix: &str) -> Failure {
    Failure {
        kind,
        reason,
        suggested_fix: suggested_fix.to_string(),
    }
}

/// Runs the checks in order and prices the entry.
pub fn evaluate(world: &World, config: &Config, work: Work<'_>) -> Verdict {
    let date = work.date();
    let Some(history) = world.workers.get(work.worker()) else {
        let reason = format!("worker {} is not known to the hub", work.worker());
        let fix = "Send the worker's worker.hired event from the HRIS, then resolve this case.";
        return Verdict {
            outcome: Err(fail(FailureKind::UnknownWorker, reason, fix)),
            value: None,
        };
    };
    let Some(project) = world.projects.get(work.project()) else {
        let reason = format!("project {} is not known to the hub", work.project());
        let fix = "Send the opportunity.closed_won that creates the project, or correct the entry's project code.";
        return Verdict {
            outcome: Err(fail(FailureKind::UnknownProject, reason, fix)),
            value: None,
        };
    };
    let Some(terms) = world.contracts.get(&project.contract_id) else {
        let reason = format!(
            "project {} has no contract {}",
            work.project(),
            project.contract_id
        );
        let fix = "Send the contract through opportunity.closed_won.";
        return Verdict {
            outcome: Err(fail(FailureKind::UnknownProject, reason, fix)),
            value: None,
        };
    };
    let on_date = history.on(date);
    // Attributes for valuing an entry held before the hire come from the latest record.
    let attributes = if on_date.status.is_some() {
        on_date.clone()
    } else {
        history.latest()
    };
    let assignment = world.approved_assignment(work.worker(), work.project(), date);
    let billing_currency = terms.base.currency;
    let (rate_card_id, _) = terms.on(date);

    // Pricing is computed first so that a held entry still carries its value.
    let price = || -> Result<(Decimal, Decimal, Currency, Option<Decimal>, Money), Failure> {
        let (quantity, rate, rate_currency) = match work {
            Work::Time(entry) => {
                let role = entry
                    .role
                    .as_deref()
                    .or(assignment.map(|a| a.role.as_str()))
                    .or(attributes.role);
                let region = attributes.region;
                let card = world.rate_cards.get(rate_card_id);
                let found = match (card, role, region) {
                    (Some(card), Some(role), Some(region)) => card
                        .rate_for(role, region, date)
                        .map(|r| (r, card.currency)),
                    _ => None,
                };
                let Some((rate, currency)) = found else {
                    let reason = format!(
                        "no bill rate on rate card {rate_card_id} for role {} in region {} on {date}",
                        role.unwrap_or("(none)"),
                        region.unwrap_or("(none)")
                    );
                    let fix = "Send a rate_card.upserted with this role, region and date, then resolve this case.";
                    return Err(fail(FailureKind::MissingRate, reason, fix));
                };
                (entry.hours, rate, currency)
            }
            Work::Expense(expense) => (Decimal::ONE, expense.amount, expense.currency),
        };
        let value = Money::rounded(quantity * rate, rate_currency);
        if rate_currency == billing_currency {
            return Ok((quantity, rate, rate_currency, None, value));
        }
        let Some(fx) = world.fx_rate(rate_currency, billing_currency, date) else {
            let reason = format!(
                "no FX rate from {rate_currency} to {billing_currency} on or before {date}"
            );
            let fix = "Send an fx_rate.upserted for this pair valid on or before the date, then resolve this case.";
            return Err(fail(FailureKind::MissingFxRate, reason, fix));
        };
        Ok((
            quantity,
            rate,
            rate_currency,
            Some(fx),
            value.convert(fx, billing_currency),
        ))
    };
    let priced = price();
    let value = priced.as_ref().ok().map(|(.., amount)| *amount);
    let verdict = |outcome| Verdict { outcome, value };

    if on_date.status != Some(WorkerStatus::Active) {
        let status = match on_date.status {
            None => "not yet hired",
            Some(WorkerStatus::OnLeave) => "on leave",
            Some(WorkerStatus::Terminated) => "terminated",
            Some(WorkerStatus::Active) => "active",
        };
        let reason = format!("worker {} was {status} on {date}", work.worker());
        let fix = "Confirm the work date with the worker's manager; correct the entry in the PSA, or correct the HRIS record and resolve this case.";
        return verdict(Err(fail(FailureKind::WorkerInactive, reason, fix)));
    }
    if assignment.is_none() {
        let reason = format!(
            "worker {} has no approved assignment on project {} covering {date}",
            work.worker(),
            work.project()
        );
        let fix = "Approve the assignment in the PSA (assignment.changed with state approved), then resolve this case.";
        return verdict(Err(fail(FailureKind::NoApprovedAssignment, reason, fix)));
    }
    if !terms.covers(date) {
        let reason = format!(
            "{date} is outside contract {} ({} to {})",
            project.contract_id,
            terms.base.start,
            terms
                .on(date)
                .1
                .map_or("open".to_string(), |d| d.to_string())
        );
        let fix = "Extend the contract with contract.amended, or move the entry to the right project, then resolve this case.";
        return verdict(Err(fail(FailureKind::ContractExpired, reason, fix)));
    }
    let (quantity, rate, rate_currency, fx_rate, amount) = match priced {
        Ok(priced) => priced,
        Err(failure) => return verdict(Err(failure)),
    };
    let legal_entity = &project.project.legal_entity;
    let Some(tax_code) = config.tax_code_for(legal_entity) else {
        let reason = format!("no tax code is configured for legal entity {legal_entity}");
        let fix = "Add the legal entity's tax code to the configuration, then resolve this case.";
        return verdict(Err(fail(FailureKind::MissingTaxCode, reason, fix)));
    };
    let billing_class = match work {
        Work::Time(_) => "professional_services",
        Work::Expense(_) => "reimbursable_expense",
    };
    verdict(Ok(Pricing {
        quantity,
        rate,
        rate_currency,
        fx_rate,
        amount,
        tax_code: tax_code.to_string(),
        billing_class: billing_class.to_string(),
    }))
}

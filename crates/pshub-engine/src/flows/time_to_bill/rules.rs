//! The checks and pricing of time to bill (PRODUCT.md 5.4), as a pure function of the
//! reference data and one entry. The checks run in a fixed order and the first failure
//! decides the case: worker known, project known, worker active, approved assignment, date
//! inside the contract, bill rate, FX rate, tax code. Pricing uses checked arithmetic: an
//! amount that does not fit is a case for the integration team, never a panic.

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
    /// The worker's approved hours that day would pass the configured limit.
    DailyHoursExceeded,
    /// A computed amount does not fit in an exact decimal.
    AmountOverflow,
    /// The line would take a capped contract past its cap.
    CapExceeded,
    /// The legal entity may not invoice the customer's country with its tax code.
    TaxCodeMismatch,
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
            FailureKind::DailyHoursExceeded => "daily_hours_exceeded",
            FailureKind::AmountOverflow => "amount_overflow",
            FailureKind::CapExceeded => "cap_exceeded",
            FailureKind::TaxCodeMismatch => "tax_code_mismatch",
        }
    }

    pub fn owner(&self) -> OwnerTeam {
        match self {
            FailureKind::UnknownWorker => OwnerTeam::Hr,
            FailureKind::UnknownProject | FailureKind::AmountOverflow => OwnerTeam::Integration,
            FailureKind::WorkerInactive
            | FailureKind::NoApprovedAssignment
            | FailureKind::DailyHoursExceeded => OwnerTeam::Pmo,
            FailureKind::ContractExpired
            | FailureKind::MissingRate
            | FailureKind::MissingFxRate
            | FailureKind::MissingTaxCode
            | FailureKind::CapExceeded
            | FailureKind::TaxCodeMismatch => OwnerTeam::Finance,
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
    /// Overtime hours billed at the region's multiplier (a contract that bills overtime).
    pub overtime_hours: Option<Decimal>,
    /// The role a time entry was priced for.
    pub role: Option<String>,
}

/// The outcome of the checks, with the entry's value in the billing currency wherever a
/// rate and FX rate make it computable (also for held entries).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub outcome: Result<Pricing, Failure>,
    pub value: Option<Money>,
}

pub fn fail(kind: FailureKind, reason: String, suggested_fix: &str) -> Failure {
    Failure {
        kind,
        reason,
        suggested_fix: suggested_fix.to_string(),
    }
}

/// Runs the checks in order and prices the entry.
/// `overtime` is how many of a time entry's hours are past its region's limits.
pub fn evaluate(world: &World, config: &Config, work: Work<'_>, overtime: Decimal) -> Verdict {
    let date = work.date();
    let Some(on_date) = world.worker_on(work.worker(), date) else {
        let reason = format!("worker {} is not known to the hub", work.worker());
        let fix = "Send the worker's worker.hired event from the HRIS, then resolve this case.";
        return Verdict {
            outcome: Err(fail(FailureKind::UnknownWorker, reason, fix)),
            value: None,
        };
    };
    let Some(project) = world.project(work.project()) else {
        let reason = format!("project {} is not known to the hub", work.project());
        let fix = "Send the opportunity.closed_won that creates the project, or correct the entry's project code.";
        return Verdict {
            outcome: Err(fail(FailureKind::UnknownProject, reason, fix)),
            value: None,
        };
    };
    // Terms in force on the work date: an amendment applies from its effective date on.
    let contract = project.contract_on(date);
    // Attributes for valuing an entry held before the hire come from the latest record.
    let attributes = match on_date.status {
        Some(_) => on_date.clone(),
        None => world
            .worker_latest(work.worker())
            .unwrap_or_else(|| on_date.clone()),
    };
    let assignment = world.approved_assignment(work.worker(), work.project(), date);
    let billing_currency = contract.currency;
    let rate_card_id = contract.rate_card_id.as_str();
    let overflow = |what: &str| {
        let reason = format!("{what} does not fit in an exact decimal");
        let fix = "Check the entry's quantity and the rate and FX rate it was priced with; correct the one that is wrong, then resolve this case.";
        fail(FailureKind::AmountOverflow, reason, fix)
    };

    let bill_multiplier = attributes
        .region
        .and_then(|region| config.regions.get(region))
        .and_then(|r| r.overtime.as_ref())
        .map(|o| o.bill_multiplier);
    let billed_overtime = (matches!(work, Work::Time(_))
        && contract.bill_overtime
        && overtime > Decimal::ZERO
        && bill_multiplier.is_some())
    .then_some(overtime);
    let role = match work {
        Work::Time(entry) => entry.role.as_deref().or(assignment).or(attributes.role),
        Work::Expense(_) => None,
    };
    // Pricing is computed first so that a held entry still carries its value.
    let price = || -> Result<(Decimal, Decimal, Currency, Option<Decimal>, Money), Failure> {
        let (quantity, rate, rate_currency) = match work {
            Work::Time(entry) => {
                let region = attributes.region;
                let found = match (role, region) {
                    (Some(role), Some(region)) => {
                        match world.bill_rate(rate_card_id, role, region, date) {
                            Some((currency, Some(rate))) => Some((rate, currency)),
                            _ => None,
                        }
                    }
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
        // Overtime bills at the multiplier: as if `hours + overtime x (multiplier - 1)`.
        let billed = match billed_overtime.zip(bill_multiplier) {
            Some((ot, m)) => m
                .checked_sub(Decimal::ONE)
                .and_then(|extra| ot.checked_mul(extra))
                .and_then(|extra| quantity.checked_add(extra))
                .ok_or_else(|| overflow(&format!("{quantity} hours with {ot} overtime")))?,
            None => quantity,
        };
        let value = Money::product(billed, rate, rate_currency)
            .ok_or_else(|| overflow(&format!("{quantity} x {rate} {rate_currency}")))?;
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
        let converted = value
            .convert(fx, billing_currency)
            .ok_or_else(|| overflow(&format!("{value} x FX {fx} into {billing_currency}")))?;
        Ok((quantity, rate, rate_currency, Some(fx), converted))
    };
    let priced = price();
    let value = priced.as_ref().ok().map(|(.., amount)| *amount);
    let verdict = |outcome| Verdict { outcome, value };

    if on_date.status != Some(WorkerStatus::Active) {
        let since = on_date
            .status_since
            .map(|d| d.to_string())
            .unwrap_or_default();
        let status = match on_date.status {
            None => "not yet hired".to_string(),
            Some(WorkerStatus::OnLeave) => format!("on leave since {since}"),
            Some(WorkerStatus::Terminated) => format!("terminated on {since}"),
            Some(WorkerStatus::Active) => "active".to_string(),
        };
        let reason = format!(
            "worker {} was {status}; the work is dated {date}",
            work.worker()
        );
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
    if !contract.covers(date) {
        let reason = format!(
            "{date} is outside contract {} ({} to {})",
            contract.contract_id,
            contract.start,
            contract.end.map_or("open".to_string(), |d| d.to_string())
        );
        let fix = "Extend the contract with contract.amended, or move the entry to the right project, then resolve this case.";
        return verdict(Err(fail(FailureKind::ContractExpired, reason, fix)));
    }
    let (quantity, rate, rate_currency, fx_rate, amount) = match priced {
        Ok(priced) => priced,
        Err(failure) => return verdict(Err(failure)),
    };
    let legal_entity = &project.project.legal_entity;
    let tax_code = match work {
        Work::Time(_) => config.tax_code_for_work(legal_entity, attributes.classification),
        Work::Expense(_) => config.tax_code_for(legal_entity),
    };
    let Some(tax_code) = tax_code else {
        let reason = format!("no tax code is configured for legal entity {legal_entity}");
        let fix = "Add the legal entity's tax code to the configuration, then resolve this case.";
        return verdict(Err(fail(FailureKind::MissingTaxCode, reason, fix)));
    };
    let country = &project.customer.country;
    if let Some(allowed) = config
        .legal_entities
        .get(legal_entity.as_str())
        .and_then(|e| e.allowed_tax_codes.get(country))
        && !allowed.iter().any(|code| code == tax_code)
    {
        let reason = format!(
            "legal entity {legal_entity} may not invoice a customer in {country} with tax code {tax_code} (allowed: {})",
            allowed.join(", ")
        );
        let fix = "Correct the entity's tax code or allowed_tax_codes in the configuration (or the customer's country in the CRM), then resolve this case.";
        return verdict(Err(fail(FailureKind::TaxCodeMismatch, reason, fix)));
    }
    let billing_class = match work {
        Work::Time(_) => super::TIME_CLASS,
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
        overtime_hours: billed_overtime,
        role: role.map(str::to_string),
    }))
}

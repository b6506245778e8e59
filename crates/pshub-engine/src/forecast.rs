//! A project's forecast (PRODUCT.md 5.3): revenue, cost and margin over the whole of every
//! approved assignment, computed from reference data as it stands, so that every change of
//! an assignment, a rate or an FX rate is in the next answer.
//!
//! - Revenue of an assignment = hours × the bill rate in force on its start date (role of the
//!   assignment, region of the worker on that date), in the contract currency at that date's
//!   FX, rounded per assignment. For a fixed-fee contract the project's revenue is the sum of
//!   its milestones; for capped T&M, the lower of T&M and the cap.
//! - Cost = hours × the worker's cost rate on the start date (else their grade's), likewise.
//! - An assignment missing a bill rate, a cost rate or an FX rate shows the value as `None`
//!   with the reason, and is left out of the totals.

use crate::world::{AssignmentView, World};
use chrono::NaiveDate;
use pshub_model::records::{AssignmentState, BillingModel, CostSubject};
use pshub_model::{Currency, Money, WorkerId};
use rust_decimal::Decimal;

#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentForecast {
    pub assignment_id: String,
    pub version: u32,
    pub worker_id: String,
    pub hours: Decimal,
    pub revenue: Option<Money>,
    pub cost: Option<Money>,
    /// Why a value is missing.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub project_code: String,
    pub currency: Currency,
    pub revenue: Money,
    pub cost: Money,
    pub margin: Money,
    /// (revenue − cost) / revenue × 100, to two places; `None` when revenue is 0.
    pub margin_pct: Option<Decimal>,
    pub assignments: Vec<AssignmentForecast>,
    /// Approved assignments left out of the totals for a missing value.
    pub left_out: usize,
}

/// `amount` (in `from`) in `to` at the FX of `date`.
fn in_currency(
    world: &World,
    amount: Money,
    to: Currency,
    date: NaiveDate,
) -> Result<Money, String> {
    if amount.currency() == to {
        return Ok(amount);
    }
    let from = amount.currency();
    let fx = world
        .fx_rate(from, to, date)
        .ok_or_else(|| format!("no FX rate from {from} to {to} on or before {date}"))?;
    amount
        .convert(fx, to)
        .ok_or_else(|| format!("{amount} x FX {fx} does not fit in an exact decimal"))
}

/// The cost rate of a worker on `date`: their own, else their grade's; the latest
/// `valid_from` wins.
pub fn cost_rate(
    world: &World,
    worker: &str,
    grade: Option<&str>,
    date: NaiveDate,
) -> Option<(Currency, Decimal)> {
    let valid =
        |from: NaiveDate, to: Option<NaiveDate>| from <= date && to.is_none_or(|t| date <= t);
    let find = |matches: &dyn Fn(&CostSubject) -> bool| {
        world
            .cost_rates
            .iter()
            .filter(|r| matches(&r.subject) && valid(r.valid_from, r.valid_to))
            .max_by_key(|r| r.valid_from)
            .map(|r| (r.currency, r.hourly_cost))
    };
    find(&|s| matches!(s, CostSubject::Worker(w) if w.as_str() == worker)).or_else(|| {
        let grade = grade?;
        find(&|s| matches!(s, CostSubject::Grade(g) if g.as_str() == grade))
    })
}

fn assignment_forecast(
    world: &World,
    card: &str,
    currency: Currency,
    a: &AssignmentView<'_>,
) -> AssignmentForecast {
    let mut missing = Vec::new();
    let worker = WorkerId::parse(a.worker_id).ok().and_then(|id| {
        world
            .worker_on(&id, a.start)
            .or_else(|| world.worker_latest(&id))
    });
    let region = worker.as_ref().and_then(|w| w.region);
    let grade = worker.as_ref().and_then(|w| w.grade);
    let revenue = match region.and_then(|region| world.bill_rate(card, a.role, region, a.start)) {
        Some((rate_currency, Some(rate))) => Money::product(a.hours, rate, rate_currency)
            .ok_or_else(|| format!("{} x {rate} does not fit in an exact decimal", a.hours))
            .and_then(|value| in_currency(world, value, currency, a.start)),
        _ => Err(format!(
            "no bill rate on rate card {card} for role {} in region {} on {}",
            a.role,
            region.unwrap_or("(none)"),
            a.start
        )),
    };
    let cost = match cost_rate(world, a.worker_id, grade, a.start) {
        Some((cost_currency, rate)) => Money::product(a.hours, rate, cost_currency)
            .ok_or_else(|| format!("{} x {rate} does not fit in an exact decimal", a.hours))
            .and_then(|value| in_currency(world, value, currency, a.start)),
        None => Err(format!(
            "no cost rate for worker {} or grade {} on {}",
            a.worker_id,
            grade.unwrap_or("(none)"),
            a.start
        )),
    };
    let mut keep = |value: Result<Money, String>| match value {
        Ok(money) => Some(money),
        Err(why) => {
            missing.push(why);
            None
        }
    };
    let (revenue, cost) = (keep(revenue), keep(cost));
    AssignmentForecast {
        assignment_id: a.assignment_id.to_string(),
        version: a.version,
        worker_id: a.worker_id.to_string(),
        hours: a.hours,
        revenue,
        cost,
        missing,
    }
}

/// The sum of amounts in `currency`; `None` on overflow.
fn sum(currency: Currency, mut values: impl Iterator<Item = Money>) -> Option<Money> {
    values.try_fold(Money::zero(currency), |total, m| total.checked_add(m))
}

/// The forecast of a project the world knows.
pub fn forecast(world: &World, project_code: &str) -> Option<Forecast> {
    let code = pshub_model::ProjectCode::parse(project_code).ok()?;
    let project = world.project(&code)?;
    let contract = &project.contract;
    let currency = contract.currency;
    let assignments: Vec<AssignmentForecast> = world
        .assignments_of_project(project_code)
        .iter()
        .filter(|a| a.state == AssignmentState::Approved)
        .map(|a| assignment_forecast(world, contract.rate_card_id.as_str(), currency, a))
        .collect();
    let fixed_fee = contract.billing_model == BillingModel::FixedFee;
    let counted = |a: &&AssignmentForecast| a.cost.is_some() && (fixed_fee || a.revenue.is_some());
    let left_out = assignments.iter().filter(|a| !counted(a)).count();
    let cost = sum(
        currency,
        assignments.iter().filter(counted).filter_map(|a| a.cost),
    )?;
    let time_and_materials = sum(
        currency,
        assignments.iter().filter(counted).filter_map(|a| a.revenue),
    )?;
    let revenue = match contract.billing_model {
        BillingModel::FixedFee => sum(
            currency,
            contract
                .milestones
                .iter()
                .map(|m| Money::rounded(m.amount, currency)),
        )?,
        BillingModel::CappedTm => match contract.cap {
            Some(cap) if cap < time_and_materials.amount() => Money::rounded(cap, currency),
            _ => time_and_materials,
        },
        BillingModel::TimeAndMaterials => time_and_materials,
    };
    let margin = Money::rounded(revenue.amount().checked_sub(cost.amount())?, currency);
    let margin_pct = if revenue.amount().is_zero() {
        None
    } else {
        margin
            .amount()
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|m| m.checked_div(revenue.amount()))
            .map(|pct| pct.round_dp(2))
    };
    Some(Forecast {
        project_code: project_code.to_string(),
        currency,
        revenue,
        cost,
        margin,
        margin_pct,
        assignments,
        left_out,
    })
}

//! Actual against standard labour cost (PRODUCT.md 5.8), computed from the approved hours
//! as they stand.
//!
//! - A worker's payroll actual for a month is spread over all their approved time entries
//!   of that month (billable or not, posted or held, any contract), pro rata to hours: each
//!   share is rounded down to the currency's minor unit, and the cents left over go one by
//!   one to the largest remainders (the earlier entry first on a tie).
//! - Standard cost is, per entry, hours × the cost rate valid on its date (the worker's own
//!   beats their grade's), overtime hours at the region's `cost_multiplier`, converted to
//!   the payroll currency at the FX rate of that date.
//! - A contractor's cost is their rate agreement (their own cost rate): payroll never
//!   applies to them, so their actual is their standard.
//! - Variance is actual − standard; its percentage is variance / standard × 100, to two
//!   places (none when standard is zero).

use crate::config::Config;
use crate::error::Result;
use crate::forecast::cost_rate;
use crate::store::*;
use crate::world::World;
use chrono::{Datelike, NaiveDate};
use pshub_model::records::Classification;
use pshub_model::{Currency, WorkerId};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The first and last day of a `YYYY-MM` month.
pub fn month_range(period: &str) -> Option<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").ok()?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
    };
    Some((first, next.pred_opt()?))
}

/// Spreads `total` over `weights` pro rata, in minor units of `currency`: shares rounded
/// down, the units left over to the largest remainders. `None` when the weights sum to
/// zero or the arithmetic would overflow.
pub fn spread(total: Decimal, currency: Currency, weights: &[Decimal]) -> Option<Vec<Decimal>> {
    let places = currency.minor_units();
    let unit = Decimal::new(1, places);
    let sum = weights
        .iter()
        .try_fold(Decimal::ZERO, |acc, w| acc.checked_add(*w))?;
    if sum <= Decimal::ZERO {
        return None;
    }
    let total = total.round_dp_with_strategy(places, rust_decimal::RoundingStrategy::ToZero);
    let units = total.checked_div(unit)?;
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given = Decimal::ZERO;
    for w in weights {
        let exact = units.checked_mul(*w)?.checked_div(sum)?;
        let floor = exact.floor();
        given = given.checked_add(floor)?;
        remainders.push(exact - floor);
        shares.push(floor);
    }
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| remainders[*b].cmp(&remainders[*a]).then(a.cmp(b)));
    let mut left = units.checked_sub(given)?;
    for i in order {
        if left <= Decimal::ZERO {
            break;
        }
        shares[i] += Decimal::ONE;
        left -= Decimal::ONE;
    }
    shares
        .into_iter()
        .map(|s| s.checked_mul(unit))
        .collect::<Option<Vec<_>>>()
}

/// The standard cost of one entry in `currency`, or why it cannot be computed.
pub fn standard_cost(
    world: &World,
    config: &Config,
    work: &WorkedHours,
    currency: Currency,
    contractor_only: bool,
) -> std::result::Result<Decimal, String> {
    let worker = WorkerId::parse(&work.worker_id).map_err(|e| format!("worker_id {e}"))?;
    let on_date = world.worker_on(&worker, work.date);
    let grade = if contractor_only {
        None
    } else {
        on_date.as_ref().and_then(|w| w.grade)
    };
    let (rate_currency, rate) =
        cost_rate(world, &work.worker_id, grade, work.date).ok_or_else(|| {
            if contractor_only {
                format!(
                    "no rate agreement (cost rate) for contractor {} on {}",
                    work.worker_id, work.date
                )
            } else {
                format!(
                    "no cost rate for worker {} or grade {} on {}",
                    work.worker_id,
                    grade.unwrap_or("(none)"),
                    work.date
                )
            }
        })?;
    let multiplier = on_date
        .and_then(|w| w.region)
        .and_then(|region| config.regions.get(region))
        .and_then(|r| r.overtime.as_ref())
        .map_or(Decimal::ONE, |o| o.cost_multiplier);
    let overflow = || format!("the cost of entry hours {} does not fit", work.hours);
    let regular = work
        .hours
        .checked_sub(work.overtime_hours)
        .ok_or_else(overflow)?;
    let weighted = work
        .overtime_hours
        .checked_mul(multiplier)
        .and_then(|ot| regular.checked_add(ot))
        .ok_or_else(overflow)?;
    let cost = weighted.checked_mul(rate).ok_or_else(overflow)?;
    if rate_currency == currency {
        return Ok(cost);
    }
    let fx = world
        .fx_rate(rate_currency, currency, work.date)
        .ok_or_else(|| {
            format!(
                "no FX rate from {rate_currency} to {currency} on or before {}",
                work.date
            )
        })?;
    cost.checked_mul(fx).ok_or_else(overflow)
}

/// One worker's cost on one project in one month.
#[derive(Debug, Clone, PartialEq)]
pub struct VarianceRow {
    pub project_code: String,
    pub worker_id: String,
    pub classification: Classification,
    pub hours: Decimal,
    pub currency: Currency,
    /// `None` until payroll for the month is loaded (employees).
    pub actual_cost: Option<Decimal>,
    /// `None` when a cost rate or FX rate is missing (`missing` says which).
    pub standard_cost: Option<Decimal>,
    pub variance: Option<Decimal>,
    pub variance_pct: Option<Decimal>,
    pub missing: Vec<String>,
}

/// A worker's month: their actual (if loaded) spread over their entries, per project.
pub fn worker_month(
    world: &World,
    config: &Config,
    worker_id: &str,
    entries: &[WorkedEntry],
    actual: Option<&PayrollActualRow>,
) -> Vec<VarianceRow> {
    let contractor = WorkerId::parse(worker_id)
        .ok()
        .and_then(|w| world.worker_latest(&w))
        .is_some_and(|w| w.classification == Classification::Contractor);
    let classification = if contractor {
        Classification::Contractor
    } else {
        Classification::Employee
    };
    // Costs are stated in the payroll currency; without payroll, in the cost rate's.
    let currency = actual.map(|a| a.currency).or_else(|| {
        entries.iter().find_map(|e| {
            let worker = WorkerId::parse(&e.work.worker_id).ok()?;
            let grade = world.worker_on(&worker, e.work.date)?.grade;
            cost_rate(world, worker_id, grade, e.work.date).map(|(c, _)| c)
        })
    });
    let Some(currency) = currency else {
        return Vec::new();
    };
    let standards: Vec<std::result::Result<Decimal, String>> = entries
        .iter()
        .map(|e| standard_cost(world, config, &e.work, currency, contractor))
        .collect();
    let shares: Option<Vec<Decimal>> = match (contractor, actual) {
        (false, Some(actual)) => {
            let hours: Vec<Decimal> = entries.iter().map(|e| e.work.hours).collect();
            spread(actual.gross_cost, currency, &hours)
        }
        _ => None,
    };
    let mut by_project: BTreeMap<&str, VarianceRow> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let row = by_project
            .entry(entry.work.project_code.as_str())
            .or_insert_with(|| VarianceRow {
                project_code: entry.work.project_code.clone(),
                worker_id: worker_id.to_string(),
                classification,
                hours: Decimal::ZERO,
                currency,
                actual_cost: Some(Decimal::ZERO),
                standard_cost: Some(Decimal::ZERO),
                variance: None,
                variance_pct: None,
                missing: Vec::new(),
            });
        row.hours = row.hours.saturating_add(entry.work.hours);
        match &standards[i] {
            Ok(cost) => {
                row.standard_cost = row.standard_cost.and_then(|s| s.checked_add(*cost));
            }
            Err(why) => {
                row.standard_cost = None;
                if !row.missing.contains(why) {
                    row.missing.push(why.clone());
                }
            }
        }
        row.actual_cost = match (&shares, contractor) {
            (Some(shares), _) => row.actual_cost.and_then(|a| a.checked_add(shares[i])),
            (None, true) => match &standards[i] {
                Ok(cost) => row.actual_cost.and_then(|a| a.checked_add(*cost)),
                Err(_) => None,
            },
            (None, false) => None,
        };
    }
    let places = currency.minor_units();
    by_project
        .into_values()
        .map(|mut row| {
            row.standard_cost = row.standard_cost.map(|s| s.round_dp(places));
            if let (Some(actual), Some(standard)) = (row.actual_cost, row.standard_cost) {
                let variance = actual - standard;
                row.variance = Some(variance);
                row.variance_pct = (!standard.is_zero())
                    .then(|| {
                        variance
                            .checked_mul(Decimal::ONE_HUNDRED)?
                            .checked_div(standard)
                    })
                    .flatten()
                    .map(|p| p.round_dp(2));
            }
            if actual.is_none() && !contractor {
                row.missing
                    .push(format!("no payroll actual for {worker_id} in the month"));
            }
            row
        })
        .collect()
}

/// Approved hours grouped by worker, each worker's in date order.
pub fn by_worker(entries: Vec<WorkedEntry>) -> BTreeMap<String, Vec<WorkedEntry>> {
    let mut grouped: BTreeMap<String, Vec<WorkedEntry>> = BTreeMap::new();
    for entry in entries {
        grouped
            .entry(entry.work.worker_id.clone())
            .or_default()
            .push(entry);
    }
    grouped
}

/// A project's cost variance for one month, from the approved hours as they stand.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectVariance {
    pub project_code: String,
    pub period: String,
    pub rows: Vec<VarianceRow>,
}

pub fn project_variance(
    world: &World,
    config: &Config,
    reads: &mut dyn StoreReader,
    project_code: &str,
    period: &str,
) -> Result<Option<ProjectVariance>> {
    let Some((from, to)) = month_range(period) else {
        return Ok(None);
    };
    // One read of the month: a worker's actual is spread over all their projects.
    let month = by_worker(reads.worked_hours(&HoursFilter {
        from,
        to,
        worker_id: None,
        project_code: None,
    })?);
    let mut rows = Vec::new();
    for (worker, entries) in &month {
        if !entries.iter().any(|e| e.work.project_code == project_code) {
            continue;
        }
        let actual = reads.payroll_actual(worker, period)?;
        rows.extend(
            worker_month(world, config, worker, entries, actual.as_ref())
                .into_iter()
                .filter(|r| r.project_code == project_code),
        );
    }
    Ok(Some(ProjectVariance {
        project_code: project_code.to_string(),
        period: period.to_string(),
        rows,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn eur() -> Currency {
        Currency::parse("EUR").unwrap()
    }

    #[test]
    fn a_spread_sums_to_the_cent_and_leftovers_go_to_the_largest_remainders() {
        let shares = spread(d("100.00"), eur(), &[d("1"), d("1"), d("1")]).unwrap();
        assert_eq!(shares, vec![d("33.34"), d("33.33"), d("33.33")]);
        let shares = spread(d("1000"), eur(), &[d("7.5"), d("0.5"), d("2")]).unwrap();
        assert_eq!(shares, vec![d("750"), d("50"), d("200")]);
        let shares = spread(d("10.00"), eur(), &[d("1"), d("2"), d("3")]).unwrap();
        assert_eq!(shares, vec![d("1.67"), d("3.33"), d("5.00")]);
        assert_eq!(shares.iter().sum::<Decimal>(), d("10.00"));
        let yen = Currency::parse("JPY").unwrap();
        let shares = spread(d("1000"), yen, &[d("1"), d("1"), d("1")]).unwrap();
        assert_eq!(shares, vec![d("334"), d("333"), d("333")]);
        assert_eq!(spread(d("10"), eur(), &[]), None);
    }

    #[test]
    fn months_have_their_last_day() {
        assert_eq!(
            month_range("2024-02"),
            Some((
                NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
                NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
            ))
        );
        assert_eq!(month_range("2026-12").unwrap().1.to_string(), "2026-12-31");
        assert_eq!(month_range("2026-13"), None);
    }
}

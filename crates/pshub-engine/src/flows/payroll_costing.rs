//! Payroll actuals to project cost (PRODUCT.md 5.8). A `payroll.actuals` event stores one
//! actual, as a payroll file's rows are stored (`crate::payroll`); after each load, the hub
//! checks its actuals against the approved hours ([`check_slice`], a slice per commit) and
//! opens the cases they imply. Every case here is a notice: nothing is held.
//!
//! - `payroll_unknown_worker` (hr): an actual for a worker the HRIS never sent;
//! - `payroll_for_contractor` (hr): a contractor's cost is their rate agreement, never payroll;
//! - `payroll_without_hours` (finance): an actual with no approved hours in its month;
//! - `cost_variance` (finance): per (project, worker, month), when |variance %| exceeds
//!   `[payroll] variance_threshold_pct`; it resolves by itself once a later load brings the
//!   variance back within it.

use super::{Cx, Flow, NewCase};
use crate::costing::{self, VarianceRow};
use crate::error::Result;
use crate::store::*;
use crate::world::Applied;
use pshub_model::records::{Classification, ExceptionState, OwnerTeam};
use pshub_model::{Event, EventData, EventType, Money, WorkerId};
use std::collections::BTreeMap;

pub const NAME: &str = "payroll_costing";
pub const UNKNOWN_WORKER: &str = "payroll_unknown_worker";
pub const FOR_CONTRACTOR: &str = "payroll_for_contractor";
pub const WITHOUT_HOURS: &str = "payroll_without_hours";
pub const COST_VARIANCE: &str = "cost_variance";

pub struct PayrollCosting;

impl Flow for PayrollCosting {
    fn name(&self) -> &'static str {
        NAME
    }

    fn reacts_to(&self, event_type: EventType) -> bool {
        event_type == EventType::PayrollActuals
    }

    fn apply(&self, cx: &mut Cx<'_>, event: &Event, _applied: &Applied) -> Result<()> {
        let EventData::PayrollActual(actual) = &event.data else {
            return Ok(());
        };
        let worker_id = actual.worker_id.to_string();
        let stored = cx.reads.payroll_actual(&worker_id, &actual.period)?;
        let same = stored
            .as_ref()
            .is_some_and(|s| s.gross_cost == actual.gross_cost && s.currency == actual.currency);
        let load_id = cx.id(IdKind::PayrollLoad)?;
        if !same {
            cx.commit.payroll.push(PayrollActualRow {
                worker_id,
                period: actual.period.clone(),
                gross_cost: actual.gross_cost,
                currency: actual.currency,
                load_id,
                line: 0,
            });
        }
        cx.commit.payroll_loads.push(PayrollLoadRow {
            id: load_id,
            file: format!("event:{}:{}", event.source, event.id),
            rows: 1,
            loaded: u64::from(!same),
            duplicates: u64::from(same),
            rejected: 0,
            loaded_at: cx.stamp(),
            checked: same,
        });
        Ok(())
    }
}

/// What checking a load found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub actuals: u64,
    pub cases_opened: u64,
    pub cases_resolved: u64,
}

/// Actuals checked per commit: a large load opens its cases in slices. A slice is
/// idempotent (a case open already is not opened again), so a load whose check stopped
/// part way is simply checked again.
pub const SLICE: usize = 5_000;

/// One month of a load: its actuals, and the month's approved hours by worker.
pub struct Month {
    pub period: String,
    pub hours: BTreeMap<String, Vec<WorkedEntry>>,
    pub actuals: Vec<PayrollActualRow>,
}

/// The actuals a load last changed, by month, each with the month's hours read once.
pub fn months_of(reads: &mut dyn StoreReader, load: &PayrollLoadRow) -> Result<Vec<Month>> {
    let mut by_period: BTreeMap<String, Vec<PayrollActualRow>> = BTreeMap::new();
    for actual in reads.payroll_of_load(load.id)? {
        by_period
            .entry(actual.period.clone())
            .or_default()
            .push(actual);
    }
    let mut months = Vec::with_capacity(by_period.len());
    for (period, actuals) in by_period {
        let Some((from, to)) = costing::month_range(&period) else {
            continue;
        };
        let hours = costing::by_worker(reads.worked_hours(&HoursFilter {
            from,
            to,
            worker_id: None,
            project_code: None,
        })?);
        months.push(Month {
            period,
            hours,
            actuals,
        });
    }
    Ok(months)
}

/// Opens (and resolves) the cases that some of a month's actuals imply.
pub fn check_slice(
    cx: &mut Cx<'_>,
    load: &PayrollLoadRow,
    month: &Month,
    actuals: &[PayrollActualRow],
) -> Result<Checked> {
    let mut checked = Checked {
        actuals: actuals.len() as u64,
        ..Checked::default()
    };
    for actual in actuals {
        let entries = month
            .hours
            .get(&actual.worker_id)
            .map_or(&[][..], Vec::as_slice);
        check_actual(cx, load, actual, entries, &mut checked)?;
    }
    Ok(checked)
}

fn check_actual(
    cx: &mut Cx<'_>,
    load: &PayrollLoadRow,
    actual: &PayrollActualRow,
    entries: &[WorkedEntry],
    checked: &mut Checked,
) -> Result<()> {
    let (worker, period) = (actual.worker_id.as_str(), actual.period.as_str());
    let key = format!("{worker}:{period}");
    let at = if actual.line > 0 {
        format!("{}:{}", load.file, actual.line)
    } else {
        load.file.clone()
    };
    let known = WorkerId::parse(worker)
        .ok()
        .and_then(|w| cx.world.worker_latest(&w).map(|w| w.classification));
    let value = Some(Money::rounded(actual.gross_cost, actual.currency));
    let evidence = serde_json::json!({
        "worker_id": worker, "period": period, "gross_cost": actual.gross_cost.to_string(),
        "currency": actual.currency.code(), "load": at,
    });
    let notice =
        |kind: &'static str, owner, reason: String, fix: &'static str| (kind, owner, reason, fix);
    let case = match known {
        None => Some(notice(
            UNKNOWN_WORKER,
            OwnerTeam::Hr,
            format!(
                "payroll has a cost of {} for {worker} in {period}, a worker the HRIS never sent ({at})",
                value.map_or(String::new(), |v| v.to_string())
            ),
            "Send the worker's worker.hired from the HRIS, or correct the worker id in payroll and load the row again.",
        )),
        Some(Classification::Contractor) => Some(notice(
            FOR_CONTRACTOR,
            OwnerTeam::Hr,
            format!(
                "payroll has a cost of {} for {worker} in {period}, but {worker} is a contractor: their cost comes from their rate agreement ({at})",
                value.map_or(String::new(), |v| v.to_string())
            ),
            "Remove the contractor from the payroll run, or correct their classification in the HRIS.",
        )),
        Some(Classification::Employee) if entries.is_empty() => Some(notice(
            WITHOUT_HOURS,
            OwnerTeam::Finance,
            format!(
                "payroll has a cost of {} for {worker} in {period}, and no approved hours that month ({at})",
                value.map_or(String::new(), |v| v.to_string())
            ),
            "Check the worker's timesheets for the month in the PSA; once approved, load the payroll again or resolve this case.",
        )),
        Some(Classification::Employee) => None,
    };
    if let Some((kind, owner, reason, fix)) = case {
        if cx.open_case_of(kind, &key)?.is_none() {
            cx.open_case(NewCase {
                kind,
                owner,
                business_key: &key,
                reason,
                suggested_fix: fix,
                flow: NAME,
                entry_row: None,
                step_id: None,
                value,
                evidence: Some(evidence.to_string()),
            })?;
            checked.cases_opened += 1;
        }
        return Ok(());
    }
    if let Some(open) = cx.open_case_of(WITHOUT_HOURS, &key)? {
        cx.close_case(
            open.id,
            ExceptionState::Resolved,
            format!(
                "the month now has approved hours (payroll load {})",
                load.id
            ),
        )?;
        checked.cases_resolved += 1;
    }
    let rows = costing::worker_month(cx.world, cx.config, worker, entries, Some(actual));
    for row in rows {
        check_variance(cx, load, period, &row, checked)?;
    }
    Ok(())
}

fn check_variance(
    cx: &mut Cx<'_>,
    load: &PayrollLoadRow,
    period: &str,
    row: &VarianceRow,
    checked: &mut Checked,
) -> Result<()> {
    let Some(pct) = row.variance_pct else {
        return Ok(());
    };
    let key = format!("{}:{}:{period}", row.project_code, row.worker_id);
    let threshold = cx.config.variance_threshold_pct;
    let open = cx.open_case_of(COST_VARIANCE, &key)?;
    if pct.abs() <= threshold {
        if let Some(open) = open {
            cx.close_case(
                open.id,
                ExceptionState::Resolved,
                format!(
                    "variance now {pct}%, within {threshold}% (payroll load {})",
                    load.id
                ),
            )?;
            checked.cases_resolved += 1;
        }
        return Ok(());
    }
    if open.is_some() {
        return Ok(());
    }
    let (actual, standard, variance) = (
        row.actual_cost.unwrap_or_default(),
        row.standard_cost.unwrap_or_default(),
        row.variance.unwrap_or_default(),
    );
    let reason = format!(
        "{} on project {}: actual cost {actual} {} against standard {standard} for {} hours, a variance of {variance} ({pct}%), past the threshold of {threshold}%",
        row.worker_id, row.project_code, row.currency, row.hours
    );
    let evidence = serde_json::json!({
        "project_code": row.project_code, "worker_id": row.worker_id, "hours": row.hours.to_string(),
        "actual_cost": actual.to_string(), "standard_cost": standard.to_string(),
        "variance": variance.to_string(), "variance_pct": pct.to_string(), "currency": row.currency.code(),
    });
    cx.open_case(NewCase {
        kind: COST_VARIANCE,
        owner: OwnerTeam::Finance,
        business_key: &key,
        reason,
        suggested_fix: "Check the worker's cost rate and payroll for the month (overtime, bonuses, a missing timesheet); correct the one that is wrong, or acknowledge the variance.",
        flow: NAME,
        entry_row: None,
        step_id: None,
        value: Some(Money::rounded(variance, row.currency)),
        evidence: Some(evidence.to_string()),
    })?;
    checked.cases_opened += 1;
    Ok(())
}

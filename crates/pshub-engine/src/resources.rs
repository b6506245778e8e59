//! The trusted resource view (seed, section 3): one view of each worker, reconciled from
//! the system that owns each part of it.
//!
//! - Identity and employment (status, legal entity, region, cost center, manager, role,
//!   grade, classification) come from the HRIS: the worker's changes.
//! - Availability comes from the PSA (`availability.changed`); without it, capacity is the
//!   region's `weekly_hours` (default 40) spread over its working days.
//! - Costing comes from the cost rates (the worker's own beats their grade's).
//! - Where the PSA's view of a field (region, role) differs from the HRIS's, the field is
//!   flagged with each source's value; the HRIS's stands.
//!
//! Capacity counts each working day of the month on which the worker is active (hired, not
//! on leave, not terminated): the day's share of the week's hours.

use crate::config::Config;
use crate::forecast::cost_rate;
use crate::world::World;
use chrono::{Datelike, NaiveDate};
use pshub_model::records::{AssignmentState, Classification, WorkerStatus};
use pshub_model::{Currency, Domain, WorkerId};
use rust_decimal::Decimal;

/// A field on which two systems disagree, with what each says.
#[derive(Debug, Clone, PartialEq)]
pub struct Disagreement {
    pub field: &'static str,
    /// (system, value), the system of record first.
    pub values: Vec<(String, String)>,
}

/// A worker's open assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAssignment {
    pub assignment_id: String,
    pub project_code: String,
    pub state: AssignmentState,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub hours: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceView {
    pub worker_id: String,
    pub status: Option<WorkerStatus>,
    pub legal_entity: Option<String>,
    pub region: Option<String>,
    pub cost_center: Option<String>,
    pub manager_id: Option<String>,
    pub role: Option<String>,
    pub grade: Option<String>,
    pub classification: Classification,
    /// Currency, hourly cost, and whose rate it is (`worker` or `grade`).
    pub cost_rate: Option<(Currency, Decimal, &'static str)>,
    /// The month the figures below are for.
    pub month: String,
    pub capacity_hours: Decimal,
    /// Where capacity came from: `psa` (availability) or `region` (the region's week).
    pub capacity_source: &'static str,
    pub disagreements: Vec<Disagreement>,
    pub open_assignments: Vec<OpenAssignment>,
    /// The systems each part comes from.
    pub identity_source: String,
    pub availability_source: String,
    pub costing_source: String,
}

/// The hours a worker can work on `date`: zero on a day off, on leave, before the hire or
/// after the termination; else the day's share of the week the PSA planned or the region's.
pub fn capacity_on(
    world: &World,
    config: &Config,
    worker: &WorkerId,
    date: NaiveDate,
) -> (Decimal, bool) {
    let Some(on_date) = world.worker_on(worker, date) else {
        return (Decimal::ZERO, false);
    };
    let region = config.region(on_date.region.unwrap_or_default());
    let working = region.working_days.contains(&date.weekday());
    let planned = world
        .availability_of(worker.as_str())
        .iter()
        .rev()
        .find(|a| a.from <= date && a.to.is_none_or(|to| date <= to));
    if on_date.status != Some(WorkerStatus::Active) || !working || region.working_days.is_empty() {
        return (Decimal::ZERO, planned.is_some());
    }
    let days = Decimal::from(region.working_days.len() as u64);
    let week = planned.map_or(region.weekly_hours, |a| a.hours_per_week);
    (week / days, planned.is_some())
}

/// The view of one worker, with capacity over `from..=to` (a month).
pub fn view(
    world: &World,
    config: &Config,
    worker_id: &str,
    month: &str,
    (from, to): (NaiveDate, NaiveDate),
    today: NaiveDate,
) -> Option<ResourceView> {
    let worker = WorkerId::parse(worker_id).ok()?;
    let latest = world.worker_latest(&worker)?;
    let now = world.worker_on(&worker, today);
    let mut capacity = Decimal::ZERO;
    let mut from_psa = false;
    let mut day = from;
    while day <= to {
        let (hours, planned) = capacity_on(world, config, &worker, day);
        capacity += hours;
        from_psa |= planned;
        day = day.succ_opt()?;
    }
    let psa = config.owner_of(Domain::Availability).to_string();
    let hris = config.owner_of(Domain::Worker).to_string();
    let mut disagreements = Vec::new();
    let psa_view = world.availability_of(worker_id).iter().rev();
    for (field, hris_value, psa_value) in [
        (
            "region",
            latest.region,
            psa_view.clone().find_map(|a| a.region.as_deref()),
        ),
        (
            "role",
            latest.role,
            psa_view.clone().find_map(|a| a.role.as_deref()),
        ),
    ] {
        if let (Some(ours), Some(theirs)) = (hris_value, psa_value)
            && ours != theirs
        {
            disagreements.push(Disagreement {
                field,
                values: vec![(hris.clone(), ours.into()), (psa.clone(), theirs.into())],
            });
        }
    }
    let own = cost_rate(world, worker_id, None, today);
    let rate = match own {
        Some((currency, rate)) => Some((currency, rate, "worker")),
        None => cost_rate(world, worker_id, latest.grade, today).map(|(c, r)| (c, r, "grade")),
    };
    let open_assignments = world
        .assignments_of_worker(worker_id)
        .iter()
        .filter(|a| a.state != AssignmentState::Cancelled && a.end >= from)
        .map(|a| OpenAssignment {
            assignment_id: a.assignment_id.to_string(),
            project_code: a.project_code.to_string(),
            state: a.state,
            start: a.start,
            end: a.end,
            hours: a.hours,
        })
        .collect();
    Some(ResourceView {
        worker_id: worker_id.to_string(),
        status: now.as_ref().and_then(|n| n.status),
        legal_entity: latest.legal_entity.map(str::to_string),
        region: latest.region.map(str::to_string),
        cost_center: latest.cost_center.map(str::to_string),
        manager_id: latest.manager.map(str::to_string),
        role: latest.role.map(str::to_string),
        grade: latest.grade.map(str::to_string),
        classification: latest.classification,
        cost_rate: rate,
        month: month.to_string(),
        capacity_hours: capacity.round_dp(2),
        capacity_source: if from_psa { "psa" } else { "region" },
        disagreements,
        open_assignments,
        identity_source: hris,
        availability_source: psa,
        costing_source: config.owner_of(Domain::CostRate).to_string(),
    })
}

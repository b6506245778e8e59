//! Flow 2, worker lifecycle (PRODUCT.md 5.2). The HRIS's hires, transfers, leaves and
//! terminations update the worker master (the world applied them), then flow downstream as
//! steps: the worker's resource status to the PSA, and their costing attributes (legal
//! entity, cost center, grade) to the ERP when the change carries any. A termination or a
//! leave that leaves open assignments behind opens one `pmo` case naming them.

use super::{Cx, Flow, NewCase, NewStep};
use crate::error::Result;
use crate::ports::{CostingRequest, Request, ResourceRequest};
use crate::store::*;
use crate::world::{Applied, AssignmentView};
use chrono::NaiveDate;
use pshub_model::records::{AssignmentState, OwnerTeam, WorkerChange, WorkerChangeKind};
use pshub_model::{Event, EventData, EventType};

pub const NAME: &str = "worker_lifecycle";
/// The worker's resource status in the PSA.
pub const RESOURCE: &str = "resource";
/// The worker's costing attributes in the ERP.
pub const COSTING: &str = "costing";

/// A worker who cannot work (terminated, on leave, or not yet hired) on dates an open
/// assignment covers.
pub const UNAVAILABLE: &str = "worker_unavailable_with_open_assignments";

pub struct WorkerLifecycle;

/// Whether an assignment still commits the worker: not cancelled.
pub fn is_open(state: AssignmentState) -> bool {
    state != AssignmentState::Cancelled
}

/// The open assignments a change leaves without the worker: for a termination, those that
/// end after its date; for a leave, those that end on or after its start.
fn stranded<'a>(
    change: &WorkerChange,
    assignments: Vec<AssignmentView<'a>>,
) -> Vec<AssignmentView<'a>> {
    let date = change.effective_date;
    assignments
        .into_iter()
        .filter(|a| is_open(a.state))
        .filter(|a| match change.kind {
            WorkerChangeKind::Terminated => a.end > date,
            WorkerChangeKind::LeaveStarted => a.end >= date,
            _ => false,
        })
        .collect()
}

/// Opens the `pmo` case for a worker unavailable while `assignments` are open.
pub fn open_unavailable_case(
    cx: &mut Cx<'_>,
    worker_id: &str,
    why: String,
    assignments: &[AssignmentView<'_>],
) -> Result<i64> {
    let ids: Vec<&str> = assignments.iter().map(|a| a.assignment_id).collect();
    cx.open_case(NewCase {
        kind: UNAVAILABLE,
        owner: OwnerTeam::Pmo,
        business_key: worker_id,
        reason: format!("{why}; open assignments: {}", ids.join(", ")),
        suggested_fix: "Restaff or end the assignments in the PSA (or correct the worker's dates in the HRIS), then resolve this case.",
        flow: NAME,
        entry_row: None,
        step_id: None,
        value: None,
        evidence: Some(
            serde_json::json!({
                "worker_id": worker_id,
                "assignment_ids": ids,
                "assignments": assignments.iter().map(|a| serde_json::json!({
                    "assignment_id": a.assignment_id, "project_code": a.project_code,
                    "start": a.start.to_string(), "end": a.end.to_string(), "state": a.state,
                })).collect::<Vec<_>>(),
            })
            .to_string(),
        ),
    })
}

/// The worker's status once `kind` takes effect.
fn status_after(kind: WorkerChangeKind) -> &'static str {
    match kind {
        WorkerChangeKind::Hired | WorkerChangeKind::LeaveEnded => "active",
        WorkerChangeKind::Transferred => "active",
        WorkerChangeKind::LeaveStarted => "on_leave",
        WorkerChangeKind::Terminated => "terminated",
    }
}

impl Flow for WorkerLifecycle {
    fn name(&self) -> &'static str {
        NAME
    }

    fn calls(&self) -> &'static [crate::flows::Calls] {
        use crate::flows::Calls;
        &[Calls::Psa, Calls::Erp]
    }

    fn reacts_to(&self, event_type: EventType) -> bool {
        matches!(
            event_type,
            EventType::WorkerHired
                | EventType::WorkerTransferred
                | EventType::WorkerLeaveStarted
                | EventType::WorkerLeaveEnded
                | EventType::WorkerTerminated
        )
    }

    fn apply(&self, cx: &mut Cx<'_>, event: &Event, _: &Applied) -> Result<()> {
        let EventData::Worker(change) = &event.data else {
            return Ok(());
        };
        let worker = change.worker_id.as_str();
        // The world outlives this commit's decisions: its views need no copy.
        let world = cx.world;
        let stranded = stranded(change, world.assignments_of_worker(worker));
        if !stranded.is_empty() {
            let why = match change.kind {
                WorkerChangeKind::Terminated => {
                    format!("worker {worker} is terminated on {}", change.effective_date)
                }
                _ => format!("worker {worker} is on leave from {}", change.effective_date),
            };
            open_unavailable_case(cx, worker, why, &stranded)?;
        }
        let world = cx.world;
        let state = world.worker_on(&change.worker_id, change.effective_date);
        // A worker's costing goes to the ERP of their legal entity and region.
        let costing_erp = cx.erp_of_worker(&change.worker_id, change.effective_date);
        cx.publish(
            "worker.changed",
            format!("worker:{}", cx.event.seq),
            serde_json::json!({
                "worker_id": worker, "event_type": event.event_type.as_str(),
                "effective_date": change.effective_date.to_string(), "status": status_after(change.kind),
                "legal_entity": state.as_ref().and_then(|s| s.legal_entity),
                "region": state.as_ref().and_then(|s| s.region), "role": state.as_ref().and_then(|s| s.role),
                "grade": state.as_ref().and_then(|s| s.grade), "cost_center": state.as_ref().and_then(|s| s.cost_center),
                "name": change.name, "email": change.email,
            }),
        )?;
        super::resources::publish(
            cx,
            worker,
            Some((change.name.as_deref(), change.email.as_deref())),
        )?;
        let business_key = format!("{worker}:{}", cx.event.seq);
        let resource = cx.id(IdKind::Step)?;
        let psa = cx.config.psa_system.clone();
        cx.add_step(NewStep {
            id: resource,
            flow: NAME,
            step: RESOURCE,
            system: &psa,
            subject: cx.event.seq,
            business_key: business_key.clone(),
            waits_on: None,
        })?;
        let carries_costing =
            change.legal_entity.is_some() || change.cost_center.is_some() || change.grade.is_some();
        if carries_costing {
            let costing = cx.id(IdKind::Step)?;
            cx.add_step(NewStep {
                id: costing,
                flow: NAME,
                step: COSTING,
                system: costing_erp,
                subject: cx.event.seq,
                business_key,
                waits_on: None,
            })?;
        }
        Ok(())
    }

    fn requests(
        &self,
        steps: &[&StepRow],
        reads: &mut dyn StoreReader,
    ) -> Result<Vec<std::result::Result<Request, String>>> {
        let mut answers = Vec::with_capacity(steps.len());
        for step in steps {
            let change =
                super::stored_data(
                    reads,
                    step.event_seq,
                    "a worker change",
                    |data| match data {
                        EventData::Worker(change) => Some(change),
                        _ => None,
                    },
                )?;
            answers.push(change.map(|change| request(step, &change)));
        }
        Ok(answers)
    }
}

fn request(step: &StepRow, change: &WorkerChange) -> Request {
    let key = step.idempotency_key();
    match step.step.as_str() {
        COSTING => Request::UpdateCosting(CostingRequest {
            idempotency_key: key,
            worker_id: change.worker_id.to_string(),
            status: status_after(change.kind).to_string(),
            effective_date: change.effective_date,
            legal_entity: change.legal_entity.clone(),
            cost_center: change.cost_center.clone(),
            grade: change.grade.clone(),
        }),
        _ => Request::UpdateResource(ResourceRequest {
            idempotency_key: key,
            worker_id: change.worker_id.to_string(),
            status: status_after(change.kind).to_string(),
            effective_date: change.effective_date,
            role: change.role.clone(),
            region: change.region.clone(),
        }),
    }
}

/// Whether the worker is unavailable on some date from `start` through `end`: not yet
/// hired, terminated before `end`, or on leave within it. Answers the first such date.
pub fn unavailable_within(
    cx: &Cx<'_>,
    worker: &pshub_model::WorkerId,
    start: NaiveDate,
    end: NaiveDate,
) -> Option<NaiveDate> {
    use pshub_model::records::WorkerStatus;
    let active = |date: NaiveDate| {
        cx.world
            .worker_on(worker, date)
            .is_some_and(|w| w.status == Some(WorkerStatus::Active))
    };
    // A worker the HRIS has not sent is another problem (time of theirs is held as such).
    let history = cx.world.worker_history(worker.as_str())?;
    if !active(start) {
        return Some(start);
    }
    history
        .iter()
        .filter(|h| h.effective_date >= start && h.effective_date <= end)
        .map(|h| match h.kind {
            // The termination date is the last working day.
            WorkerChangeKind::Terminated => h.effective_date.succ_opt().unwrap_or(h.effective_date),
            _ => h.effective_date,
        })
        .find(|&date| date <= end && !active(date))
}

//! Flow 3, assignments (PRODUCT.md 5.3): the booking state machine `tentative → soft →
//! hard → approved`, or `cancelled`, with versions. The world keeps the latest version; a
//! lower one arriving late changes nothing, and the same version saying something else is a
//! conflict for the integration team. An assignment approved for dates when its worker
//! cannot work opens the `pmo` case of the worker lifecycle.

use super::worker_lifecycle::{open_unavailable_case, unavailable_within};
use super::{Cx, Flow, NewCase};
use crate::error::Result;
use crate::world::{Applied, AssignmentChange};
use pshub_model::records::{AssignmentState, ExceptionState, OwnerTeam};
use pshub_model::{Event, EventData, EventType};

pub const NAME: &str = "assignments";

/// The same version of an assignment received with another body.
pub const VERSION_CONFLICT: &str = "assignment_version_conflict";

/// A project whose forecast margin is under the configured floor.
pub const MARGIN_BELOW_FLOOR: &str = "margin_below_floor";

pub struct Assignments;

impl Flow for Assignments {
    fn name(&self) -> &'static str {
        NAME
    }

    fn reacts_to(&self, event_type: EventType) -> bool {
        event_type == EventType::AssignmentChanged
    }

    fn apply(&self, cx: &mut Cx<'_>, event: &Event, applied: &Applied) -> Result<()> {
        let EventData::Assignment(assignment) = &event.data else {
            return Ok(());
        };
        let id = assignment.assignment_id.as_str();
        match applied.assignment {
            Some(AssignmentChange::Conflict) => {
                let world = cx.world;
                let known = world.assignment(id);
                cx.open_case(NewCase {
                    kind: VERSION_CONFLICT,
                    owner: OwnerTeam::Integration,
                    business_key: id,
                    reason: format!(
                        "assignment {id} version {} was received before with other terms; this one is not applied",
                        assignment.version
                    ),
                    suggested_fix: "Send the change under a new version from the PSA, then resolve this case.",
                    flow: NAME,
                    entry_row: None,
                    step_id: None,
                    value: None,
                    evidence: known.map(|k| {
                        serde_json::json!({
                            "known": { "version": k.version, "worker_id": k.worker_id, "project_code": k.project_code,
                                "role": k.role, "start": k.start.to_string(), "end": k.end.to_string(),
                                "hours": k.hours.to_string(), "state": k.state },
                        })
                        .to_string()
                    }),
                })?;
            }
            Some(AssignmentChange::Applied { .. })
                if assignment.state == AssignmentState::Approved =>
            {
                if let Some(date) =
                    unavailable_within(cx, &assignment.worker_id, assignment.start, assignment.end)
                {
                    let world = cx.world;
                    let views: Vec<_> = world.assignment(id).into_iter().collect();
                    let why = format!(
                        "assignment {id} was approved for worker {}, who cannot work on {date}",
                        assignment.worker_id
                    );
                    open_unavailable_case(cx, assignment.worker_id.as_str(), why, &views)?;
                }
            }
            _ => {}
        }
        if let Some(AssignmentChange::Applied { .. }) = applied.assignment {
            cx.publish(
                "assignment.changed",
                format!("assignment:{id}:v{}", assignment.version),
                serde_json::json!({
                    "assignment_id": id, "version": assignment.version, "worker_id": assignment.worker_id,
                    "project_code": assignment.project_code, "role": assignment.role,
                    "start": assignment.start.to_string(), "end": assignment.end.to_string(),
                    "hours": assignment.hours.to_string(), "state": assignment.state,
                }),
            )?;
        }
        // Only approved assignments move the forecast; without cost rates there is no
        // margin to speak of (every assignment is left out of it).
        if let Some(AssignmentChange::Applied { before }) = applied.assignment
            && (assignment.state == AssignmentState::Approved
                || before == Some(AssignmentState::Approved))
            && !cx.world.cost_rates.is_empty()
        {
            check_margin(cx, assignment.project_code.as_str())?;
        }
        Ok(())
    }
}

/// Opens, updates or closes the project's `margin_below_floor` case after its forecast moved:
/// one case per project, kept up to date while the margin stays under the floor, resolved by
/// itself once it recovers.
fn check_margin(cx: &mut Cx<'_>, project_code: &str) -> Result<()> {
    let world = cx.world;
    let Some(forecast) = crate::forecast::forecast(world, project_code) else {
        return Ok(());
    };
    let floor = cx.config.margin_floor_pct;
    let pct = forecast.margin_pct;
    cx.publish(
        "forecast.changed",
        format!("forecast:{project_code}:{}", cx.event.seq),
        serde_json::json!({
            "project_code": project_code, "currency": forecast.currency.code(),
            "revenue": forecast.revenue.amount().to_string(), "cost": forecast.cost.amount().to_string(),
            "margin": forecast.margin.amount().to_string(), "margin_pct": pct.map(|p| p.to_string()),
            "left_out": forecast.left_out,
        }),
    )?;
    let below = pct.is_some_and(|p| p < floor);
    let reason = || {
        format!(
            "project {project_code} forecasts a margin of {}% ({} on revenue of {}), under the floor of {floor}%",
            pct.unwrap_or_default(),
            forecast.margin,
            forecast.revenue
        )
    };
    match (below, cx.open_case_of(MARGIN_BELOW_FLOOR, project_code)?) {
        (true, None) => {
            cx.open_case(NewCase {
                kind: MARGIN_BELOW_FLOOR,
                owner: OwnerTeam::Pmo,
                business_key: project_code,
                reason: reason(),
                suggested_fix: "Review the project's staffing and rates (GET /v1/projects/{code}/forecast) and approve the plan or change it; the case resolves itself once the margin is back above the floor.",
                flow: NAME,
                entry_row: None,
                step_id: None,
                value: None,
                evidence: None,
            })?;
        }
        (true, Some(mut case)) => {
            case.reason = reason();
            case.updated_at = cx.stamp();
            cx.commit.cases.put(case);
        }
        (false, Some(case)) => {
            let note = match pct {
                Some(pct) => format!("the forecast margin recovered to {pct}%"),
                None => "the project forecasts no revenue any more".to_string(),
            };
            cx.close_case(case.id, ExceptionState::Resolved, note)?;
        }
        (false, None) => {}
    }
    Ok(())
}

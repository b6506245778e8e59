//! Flow 3, assignments (PRODUCT.md 5.3): the booking state machine `tentative → soft →
//! hard → approved`, or `cancelled`, with versions. The world keeps the latest version; a
//! lower one arriving late changes nothing, and the same version saying something else is a
//! conflict for the integration team. An assignment approved for dates when its worker
//! cannot work opens the `pmo` case of the worker lifecycle.

use super::worker_lifecycle::{open_unavailable_case, unavailable_within};
use super::{Cx, Flow, NewCase, Resolution};
use crate::error::{ActionError, Result};
use crate::ports::Request;
use crate::store::*;
use crate::world::{Applied, AssignmentChange};
use pshub_model::records::{AssignmentState, ExceptionState, OwnerTeam};
use pshub_model::{Event, EventData, EventType};

pub const NAME: &str = "assignments";

/// The same version of an assignment received with another body.
pub const VERSION_CONFLICT: &str = "assignment_version_conflict";

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
        Ok(())
    }

    fn requests(
        &self,
        steps: &[&StepRow],
        _: &mut dyn StoreReader,
    ) -> Result<Vec<std::result::Result<Request, String>>> {
        Ok(steps
            .iter()
            .map(|s| Err(format!("the assignments flow has no step {}", s.step)))
            .collect())
    }

    fn resolve(
        &self,
        cx: &mut Cx<'_>,
        case: &CaseRow,
    ) -> std::result::Result<Resolution, ActionError> {
        cx.close_case(case.id, ExceptionState::Resolved, "resolved".into())?;
        Ok(Resolution::Closed)
    }

    fn dismiss(&self, _: &mut Cx<'_>, _: &CaseRow) -> std::result::Result<(), ActionError> {
        Ok(())
    }
}

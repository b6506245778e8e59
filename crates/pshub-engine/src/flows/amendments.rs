//! Flow 7, contract amendments (PRODUCT.md 5.7). An amendment is reference data: the world
//! applies it from its `effective_from` (`ProjectInfo::contract_on`), and this flow issues
//! the changed invoice schedule to the ERP as a step whenever the amendment changes it
//! (milestones replaced, end moved), so finance never invoices from stale terms. An
//! amendment of a contract the hub does not know is reported to integration.

use super::{Cx, Flow, NewCase, NewStep};
use crate::error::Result;
use crate::ports::{Request, ScheduleRequest};
use crate::store::*;
use crate::world::Applied;
use pshub_model::records::{BillingModel, OwnerTeam};
use pshub_model::{Event, EventData, EventType};

pub const NAME: &str = "amendments";
/// The contract's invoice schedule, issued to the ERP.
pub const SCHEDULE: &str = "schedule";
pub const UNKNOWN_CONTRACT: &str = "amendment_of_unknown_contract";

pub struct Amendments;

impl Flow for Amendments {
    fn name(&self) -> &'static str {
        NAME
    }

    fn calls(&self) -> &'static [crate::flows::Calls] {
        use crate::flows::Calls;
        &[Calls::Erp]
    }

    fn reacts_to(&self, event_type: EventType) -> bool {
        event_type == EventType::ContractAmended
    }

    fn apply(&self, cx: &mut Cx<'_>, event: &Event, applied: &Applied) -> Result<()> {
        let EventData::ContractAmended(amendment) = &event.data else {
            return Ok(());
        };
        let contract = amendment.contract_id.as_str();
        match &applied.amended {
            Some(None) => {
                cx.open_case(NewCase {
                    kind: UNKNOWN_CONTRACT,
                    owner: OwnerTeam::Integration,
                    business_key: contract,
                    reason: format!("contract {contract} is amended from {}, but the hub knows no such contract; nothing changed", amendment.effective_from),
                    suggested_fix: "Send the contract's opportunity.closed_won, then the amendment again under a new event id; then resolve this case.",
                    flow: NAME,
                    entry_row: None,
                    step_id: None,
                    value: None,
                    evidence: None,
                })?;
            }
            Some(Some(project)) if amendment.milestones.is_some() || amendment.end.is_some() => {
                let world = cx.world;
                let version = pshub_model::ProjectCode::parse(project)
                    .ok()
                    .and_then(|code| world.project(&code))
                    .map_or(1, |p| p.schedule_version());
                let id = cx.id(IdKind::Step)?;
                let erp = cx.erps_of_project(project).erp;
                // The schedule goes to the project the ERP holds: after its provisioning.
                let waits_on = super::opportunity_to_project::provisioning_step(cx, project, erp)?;
                cx.add_step(NewStep {
                    id,
                    flow: NAME,
                    step: SCHEDULE,
                    system: erp,
                    subject: cx.event.seq,
                    business_key: format!("{project}:v{version}"),
                    waits_on,
                })?;
            }
            _ => {}
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
            let (project, version) = match step.business_key.rsplit_once(":v") {
                Some((project, version)) => {
                    (project.to_string(), version.parse::<u32>().unwrap_or(1))
                }
                None => (step.business_key.clone(), 1),
            };
            let amendment =
                super::stored_data(reads, step.event_seq, "an amendment", |data| match data {
                    EventData::ContractAmended(amendment) => Some(amendment),
                    _ => None,
                })?;
            let billing_period = match reads.project(&project)? {
                Some(row) => match reads
                    .event(row.event_seq)?
                    .map(|e| crate::hub::parse_stored(&e))
                {
                    Some(Ok(EventData::ClosedWon(won)))
                        if won.contract.billing_model == BillingModel::FixedFee =>
                    {
                        "milestones"
                    }
                    _ => "monthly",
                },
                None => "monthly",
            };
            answers.push(amendment.map(|a| {
                Request::IssueSchedule(ScheduleRequest {
                    idempotency_key: step.idempotency_key(),
                    project_code: project.clone(),
                    contract_id: a.contract_id.to_string(),
                    version,
                    effective_from: a.effective_from,
                    billing_period: billing_period.to_string(),
                    milestones: a.milestones.as_ref().map(|list| {
                        list.iter()
                            .map(|m| (m.milestone_id.to_string(), m.name.clone(), m.amount))
                            .collect()
                    }),
                    end: a.end,
                })
            }));
        }
        Ok(answers)
    }
}

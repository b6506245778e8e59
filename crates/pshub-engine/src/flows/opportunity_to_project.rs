//! Flow 1, opportunity to project (PRODUCT.md 5.1). A won deal for a new project code becomes
//! one project with five steps, each waiting for the one before: create the engagement in
//! the PSA, provision the project in the ERP with the PSA's id, attach the contract's
//! billing rules, publish `project.provisioned` on the outbound stream, and write the PSA
//! and ERP ids back to the CRM opportunity. The contract was validated when the event was
//! parsed (a deal that fails is quarantined). The same deal re-sent, under any event id,
//! changes nothing: terms change only by amendment. A project code that another opportunity
//! already has opens a case for the integration team.

use super::{Cx, Flow, NewCase, NewStep, Resolution};
use crate::config::RouteKey;
use crate::error::{ActionError, Result};
use crate::ports::{
    BillingRulesRequest, EngagementRequest, HUB, ProjectRequest, PublishRequest, Request,
    WriteBackRequest,
};
use crate::store::*;
use crate::world::{Applied, ProjectChange};
use pshub_model::records::{ClosedWon, OwnerTeam};
use pshub_model::{Event, EventData, EventType};
use serde_json::json;
use std::collections::HashMap;

pub const NAME: &str = "opportunity_to_project";
pub const PSA: &str = "psa";
pub const ERP: &str = "erp";
pub const BILLING_RULES: &str = "billing_rules";
pub const PUBLISH: &str = "publish";
pub const CRM: &str = "crm";

/// The steps in the order they run.
pub const STEPS: [&str; 5] = [PSA, ERP, BILLING_RULES, PUBLISH, CRM];

pub const PROJECT_TAKEN: &str = "project_code_taken";
/// What the id registry calls a project.
pub const XREF_KIND: &str = "project";

pub struct OpportunityToProject;

impl Flow for OpportunityToProject {
    fn name(&self) -> &'static str {
        NAME
    }

    fn calls(&self) -> &'static [crate::flows::Calls] {
        use crate::flows::Calls;
        &[Calls::Psa, Calls::Erp, Calls::Crm]
    }

    fn reacts_to(&self, event_type: EventType) -> bool {
        event_type == EventType::OpportunityClosedWon
    }

    fn registers(&self, step: &StepRow) -> Option<&'static str> {
        // The PSA's engagement and each ERP's project (`erp`, `erp@<system>`) are the
        // project as that system names it.
        let provisions = step.step == PSA || step.step == ERP || step.step.starts_with("erp@");
        provisions.then_some(XREF_KIND)
    }

    fn apply(&self, cx: &mut Cx<'_>, event: &Event, applied: &Applied) -> Result<()> {
        let EventData::ClosedWon(won) = &event.data else {
            return Ok(());
        };
        match &applied.project {
            ProjectChange::NewProject => provision(cx, won, &event.source),
            ProjectChange::ProjectTaken { by } => {
                let code = won.project.project_code.as_str();
                cx.open_case(NewCase {
                    kind: PROJECT_TAKEN,
                    owner: OwnerTeam::Integration,
                    business_key: code,
                    reason: format!(
                        "project code {code} already belongs to opportunity {by}; opportunity {} was not provisioned",
                        won.opportunity_id
                    ),
                    suggested_fix: "Give the deal its own project code in the CRM and send it again, then dismiss this case.",
                    flow: NAME,
                    entry_row: None,
                    step_id: None,
                    value: None,
                    evidence: None,
                })?;
                Ok(())
            }
            ProjectChange::Nothing => Ok(()),
        }
    }

    fn requests(
        &self,
        steps: &[&StepRow],
        reads: &mut dyn StoreReader,
    ) -> Result<Vec<std::result::Result<Request, String>>> {
        let mut deals: HashMap<i64, std::result::Result<Deal, String>> = HashMap::new();
        let mut answers = Vec::with_capacity(steps.len());
        for step in steps {
            if let std::collections::hash_map::Entry::Vacant(slot) = deals.entry(step.subject) {
                slot.insert(Deal::read(reads, step)?);
            }
            let answer = match &deals[&step.subject] {
                Ok(deal) => deal.request(step),
                Err(why) => Err(why.clone()),
            };
            answers.push(answer);
        }
        Ok(answers)
    }

    fn resolve(
        &self,
        cx: &mut Cx<'_>,
        case: &CaseRow,
    ) -> std::result::Result<Resolution, ActionError> {
        let code = pshub_model::ProjectCode::parse(&case.business_key)
            .map_err(|e| ActionError::Invalid(format!("exception {}: {e}", case.id)))?;
        match cx.world.project(&code) {
            Some(known) => Err(ActionError::StillFailing(format!(
                "exception {} still applies: project code {code} belongs to opportunity {}. {}",
                case.id, known.opportunity_id, case.suggested_fix
            ))),
            None => Err(ActionError::WrongState(format!(
                "exception {} names project {code}, which the hub does not know",
                case.id
            ))),
        }
    }

    fn dismiss(&self, _: &mut Cx<'_>, _: &CaseRow) -> std::result::Result<(), ActionError> {
        // The deal that was not provisioned stays recorded; nothing else holds on to it.
        Ok(())
    }
}

/// Creates the project and its five steps; the ERP ones go to the ERP its route names. A
/// route in shadow mode provisions the project in the shadow ERP too (`erp@<shadow>`).
fn provision(cx: &mut Cx<'_>, won: &ClosedWon, source: &str) -> Result<()> {
    let code = won.project.project_code.as_str();
    let project_id = cx.id(IdKind::Project)?;
    cx.commit.projects.push(ProjectRow {
        id: project_id,
        project_code: code.to_string(),
        opportunity_id: won.opportunity_id.to_string(),
        event_seq: cx.event.seq,
        correlation_id: cx.event.correlation_id.clone(),
        created_at: cx.stamp(),
    });
    // The opportunity is the project as the system that won it (the CRM) names it.
    cx.commit.xrefs.push(XrefRow {
        kind: XREF_KIND.into(),
        canonical_id: code.to_string(),
        system: source.to_string(),
        system_id: won.opportunity_id.to_string(),
        correlation_id: cx.event.correlation_id.clone(),
        created_at: cx.stamp(),
    });
    let routed = cx.config.route(&RouteKey::project(&won.project));
    let (erp, shadow) = (routed.erp.to_string(), routed.shadow.map(str::to_string));
    let systems = [
        cx.config.psa_system.clone(),
        erp.clone(),
        erp.clone(),
        HUB.to_string(),
        cx.config.crm_system.clone(),
    ];
    let mut before: Option<i64> = None;
    let mut psa_step = None;
    for (name, system) in STEPS.iter().zip(&systems) {
        let id = cx.id(IdKind::Step)?;
        cx.add_step(NewStep {
            id,
            flow: NAME,
            step: name,
            system,
            subject: project_id,
            business_key: code.to_string(),
            waits_on: before,
        })?;
        match *name {
            PSA => psa_step = Some(id),
            ERP => cx.caches.note_provisioning(code, &erp, id, false),
            _ => {}
        }
        before = Some(id);
    }
    if let Some(shadow) = shadow {
        provision_in(cx, project_id, code, &shadow, psa_step)?;
    }
    Ok(())
}

/// Provisions a project in one more ERP (`erp@<system>`), after the PSA's engagement,
/// whose id it carries: the shadow of its route, or the ERP a later route sends its work to.
fn provision_in(
    cx: &mut Cx<'_>,
    project_id: i64,
    code: &str,
    system: &str,
    psa_step: Option<i64>,
) -> Result<i64> {
    let id = cx.id(IdKind::Step)?;
    cx.add_step(NewStep {
        id,
        flow: NAME,
        step: &format!("{ERP}@{system}"),
        system,
        subject: project_id,
        business_key: code.to_string(),
        waits_on: psa_step,
    })?;
    cx.caches.note_provisioning(code, system, id, false);
    Ok(id)
}

/// The step a line for `project_code` waits for in `system` (the project's provisioning
/// there), or `None` when that is done or the hub provisions no such project. A project the
/// hub provisioned elsewhere is provisioned in `system` now: its work was routed there
/// after it was won.
pub fn provisioning_step(cx: &mut Cx<'_>, project_code: &str, system: &str) -> Result<Option<i64>> {
    if let Some((id, done)) = cx.caches.provisioned(project_code, system) {
        return Ok((!done).then_some(id));
    }
    let Some(project) = cx.reads.project(project_code)? else {
        return Ok(None);
    };
    let steps = cx.steps_of_subject(NAME, project.id)?;
    if !steps.iter().any(|s| s.base_step() == ERP) {
        return Ok(None);
    }
    let (id, done) = match steps
        .iter()
        .find(|s| s.base_step() == ERP && s.system == system)
    {
        Some(erp) => (erp.id, erp.state == StepState::Done),
        None => {
            let psa = steps
                .iter()
                .find(|s| s.step == PSA)
                .filter(|s| s.state != StepState::Done)
                .map(|s| s.id);
            (
                provision_in(cx, project.id, project_code, system, psa)?,
                false,
            )
        }
    };
    cx.caches.note_provisioning(project_code, system, id, done);
    Ok((!done).then_some(id))
}

/// A won deal as its steps need it: the deal, and what earlier steps answered.
struct Deal {
    won: ClosedWon,
    results: HashMap<String, Option<String>>,
}

impl Deal {
    fn read(
        reads: &mut dyn StoreReader,
        step: &StepRow,
    ) -> Result<std::result::Result<Deal, String>> {
        let Some(project) = reads.project(&step.business_key)? else {
            return Ok(Err(format!("project {} is not stored", step.business_key)));
        };
        let Some(event) = reads.event(project.event_seq)? else {
            return Ok(Err(format!(
                "the closed-won event {} of project {} is not stored",
                project.event_seq, project.project_code
            )));
        };
        let won = match EventData::parse_canonical(EventType::OpportunityClosedWon, &event.data) {
            Ok(EventData::ClosedWon(won)) => *won,
            Ok(_) => return Ok(Err("the stored deal is not a closed-won".into())),
            Err(error) => return Ok(Err(format!("the stored deal does not read: {error}"))),
        };
        let results = reads
            .steps_of_subject(NAME, project.id)?
            .into_iter()
            .map(|s| (s.step, s.result))
            .collect();
        Ok(Ok(Deal { won, results }))
    }

    /// What an earlier step answered; a step runs only after the one before it is done.
    fn result(&self, step: &str) -> std::result::Result<String, String> {
        self.results
            .get(step)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("the {step} step of this project has no result yet"))
    }

    fn request(&self, step: &StepRow) -> std::result::Result<Request, String> {
        let won = &self.won;
        let key = step.idempotency_key();
        let code = won.project.project_code.to_string();
        Ok(match step.base_step() {
            PSA => Request::CreateEngagement(EngagementRequest {
                idempotency_key: key,
                project_code: code,
                name: won.project.name.clone(),
                opportunity_id: won.opportunity_id.to_string(),
                customer_id: won.customer.customer_id.to_string(),
                customer_name: won.customer.legal_name.clone(),
                start: won.contract.start,
                end: won.contract.end,
            }),
            ERP => Request::ProvisionProject(ProjectRequest {
                idempotency_key: key,
                project_code: code,
                name: won.project.name.clone(),
                legal_entity: won.project.legal_entity.clone(),
                currency: won.contract.currency,
                psa_id: self.result(PSA)?,
                customer_id: won.customer.customer_id.to_string(),
                customer_name: won.customer.legal_name.clone(),
            }),
            BILLING_RULES => Request::AttachBillingRules(BillingRulesRequest {
                idempotency_key: key,
                project_code: code,
                erp_id: self.result(ERP)?,
                contract: won.contract.clone(),
            }),
            PUBLISH => Request::Publish(PublishRequest {
                idempotency_key: key,
                event_type: "project.provisioned".into(),
                data: json!({
                    "project_code": code,
                    "name": won.project.name,
                    "legal_entity": won.project.legal_entity,
                    "opportunity_id": won.opportunity_id,
                    "customer_id": won.customer.customer_id,
                    "ids": { "crm": won.opportunity_id, "psa": self.result(PSA)?, "erp": self.result(ERP)? },
                    "billing_model": won.contract.billing_model,
                    "currency": won.contract.currency,
                }),
            }),
            CRM => Request::WriteBackIds(WriteBackRequest {
                idempotency_key: key,
                opportunity_id: won.opportunity_id.to_string(),
                project_code: code,
                psa_id: self.result(PSA)?,
                erp_id: self.result(ERP)?,
            }),
            other => return Err(format!("{NAME} has no step {other}")),
        })
    }
}

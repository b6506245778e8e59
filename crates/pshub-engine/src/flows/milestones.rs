//! Flow 5, milestones (PRODUCT.md 5.5). A reached milestone is matched in its contract's
//! milestones in force on `reached_on` and becomes one invoice line (kind `milestone`,
//! quantity 1, rate = amount, in the contract currency), posted by the same `post_line`
//! step as time, once per (contract, milestone) however often it is re-sent. A milestone of
//! an unknown contract holds in `integration`; an unknown milestone holds in `finance`.

use super::time_to_bill::{add_post_steps, new_line};
use super::{Cx, Flow, NewCase, Resolution};
use crate::Config;
use crate::error::{ActionError, Result};
use crate::store::*;
use crate::world::{Applied, World};
use pshub_model::records::{ExceptionState, LineKind, MilestoneReached, OwnerTeam};
use pshub_model::{Event, EventData, EventType, Money};

pub const NAME: &str = "milestones";
pub const UNKNOWN_CONTRACT: &str = "unknown_contract";
pub const UNKNOWN_MILESTONE: &str = "unknown_milestone";
const MISSING_TAX_CODE: &str = "missing_tax_code";

pub struct Milestones;

/// The entry of a milestone: one per (contract, milestone).
fn entry_id(reached: &MilestoneReached) -> String {
    format!("{}:{}", reached.contract_id, reached.milestone_id)
}

/// What a reached milestone bills.
struct Billing {
    project_code: String,
    amount: Money,
    tax_code: String,
}

/// Why it cannot bill yet: the case's kind, owner, reason, fix and the value it holds.
struct Hold {
    kind: &'static str,
    owner: OwnerTeam,
    reason: String,
    fix: &'static str,
    value: Option<Money>,
}

fn evaluate(
    world: &World,
    config: &Config,
    reached: &MilestoneReached,
) -> std::result::Result<Billing, Hold> {
    let (contract_id, milestone_id) = (&reached.contract_id, &reached.milestone_id);
    let Some(project) = world.project_of_contract(contract_id.as_str()) else {
        return Err(Hold {
            kind: UNKNOWN_CONTRACT,
            owner: OwnerTeam::Integration,
            reason: format!(
                "milestone {milestone_id} is of contract {contract_id}, which the hub does not know"
            ),
            fix: "Send the opportunity.closed_won of the contract (or correct the contract id in the PSA), then resolve this case.",
            value: None,
        });
    };
    let contract = project.contract_on(reached.reached_on);
    let Some(term) = contract
        .milestones
        .iter()
        .find(|m| m.milestone_id == *milestone_id)
    else {
        return Err(Hold {
            kind: UNKNOWN_MILESTONE,
            owner: OwnerTeam::Finance,
            reason: format!(
                "contract {contract_id} has no milestone {milestone_id} in force on {}",
                reached.reached_on
            ),
            fix: "Add the milestone to the contract with contract.amended, or correct the milestone id in the PSA, then resolve this case.",
            value: None,
        });
    };
    let amount = Money::rounded(term.amount, contract.currency);
    let legal_entity = &project.project.legal_entity;
    let Some(tax_code) = config.tax_code_for(legal_entity) else {
        return Err(Hold {
            kind: MISSING_TAX_CODE,
            owner: OwnerTeam::Finance,
            reason: format!("no tax code is configured for legal entity {legal_entity}"),
            fix: "Add the legal entity's tax code to the configuration, then resolve this case.",
            value: Some(amount),
        });
    };
    Ok(Billing {
        project_code: project.project.project_code.to_string(),
        amount,
        tax_code: tax_code.to_string(),
    })
}

/// The line of a milestone, with its `post_line` step.
fn create_line(
    cx: &mut Cx<'_>,
    reached: &MilestoneReached,
    billing: &Billing,
    entry: &mut EntryRow,
) -> Result<i64> {
    let (id, posting, step_id) = new_line(cx, entry)?;
    let line = LineRow {
        id,
        kind: LineKind::Milestone,
        entry_row: entry.row_id,
        posting,
        source_id: reached.milestone_id.to_string(),
        event_seq: cx.event.seq,
        project_code: billing.project_code.clone(),
        worker_id: String::new(),
        date: reached.reached_on,
        quantity: rust_decimal::Decimal::ONE,
        rate: billing.amount.amount(),
        rate_currency: billing.amount.currency(),
        fx_rate: None,
        amount: billing.amount.amount(),
        currency: billing.amount.currency(),
        tax_code: billing.tax_code.clone(),
        billing_class: "milestone".into(),
        reverses: None,
        overtime_hours: None,
        role: None,
        correlation_id: cx.event.correlation_id.clone(),
        created_at: cx.stamp(),
        step_id,
    };
    add_post_steps(cx, &line, entry)?;
    cx.add_line(line);
    Ok(id)
}

fn open_hold(
    cx: &mut Cx<'_>,
    hold: &Hold,
    reached: &MilestoneReached,
    entry: &EntryRow,
) -> Result<i64> {
    cx.open_case(NewCase {
        kind: hold.kind,
        owner: hold.owner,
        business_key: reached.contract_id.as_str(),
        reason: hold.reason.clone(),
        suggested_fix: hold.fix,
        flow: NAME,
        entry_row: Some(entry.row_id),
        step_id: None,
        value: hold.value,
        evidence: Some(serde_json::json!({ "milestone_id": reached.milestone_id, "contract_id": reached.contract_id,
            "reached_on": reached.reached_on.to_string() }).to_string()),
    })
}

impl Flow for Milestones {
    fn name(&self) -> &'static str {
        NAME
    }

    fn calls(&self) -> &'static [crate::flows::Calls] {
        use crate::flows::Calls;
        &[Calls::Erp]
    }

    fn reacts_to(&self, event_type: EventType) -> bool {
        event_type == EventType::MilestoneReached
    }

    fn apply(&self, cx: &mut Cx<'_>, event: &Event, _: &Applied) -> Result<()> {
        let EventData::MilestoneReached(reached) = &event.data else {
            return Ok(());
        };
        let id = entry_id(reached);
        let mut entry = match cx.entry(EntryKind::Milestone, &id)? {
            // One line per (contract, milestone), ever; a written-off one stays so.
            Some(entry) if matches!(entry.phase, EntryPhase::Billed | EntryPhase::WrittenOff) => {
                cx.caches.reapprovals_suppressed += 1;
                return Ok(());
            }
            Some(entry) => entry,
            None => EntryRow {
                row_id: cx.id(IdKind::Entry)?,
                kind: EntryKind::Milestone,
                entry_id: id,
                phase: EntryPhase::Held,
                event_seq: cx.event.seq,
                fingerprint: cx.event.fingerprint,
                line_id: None,
                case_id: None,
                value: None,
                currency: None,
                manual: false,
                postings: 0,
                work: None,
                version: 0,
            },
        };
        let held_case = entry.case_id.filter(|_| entry.phase == EntryPhase::Held);
        entry.event_seq = cx.event.seq;
        entry.fingerprint = cx.event.fingerprint;
        let world = cx.world;
        match evaluate(world, cx.config, reached) {
            Ok(billing) => {
                if let Some(case_id) = held_case {
                    let note = format!("cleared by a later event (inbox seq {})", cx.event.seq);
                    cx.close_case(case_id, ExceptionState::Resolved, note)?;
                }
                let line_id = create_line(cx, reached, &billing, &mut entry)?;
                entry.phase = EntryPhase::Billed;
                entry.line_id = Some(line_id);
                entry.case_id = None;
                entry.value = Some(billing.amount.amount());
                entry.currency = Some(billing.amount.currency());
            }
            Err(hold) => {
                if held_case.is_none() {
                    entry.case_id = Some(open_hold(cx, &hold, reached, &entry)?);
                }
                entry.phase = EntryPhase::Held;
                entry.value = hold.value.map(|m| m.amount());
                entry.currency = hold.value.map(|m| m.currency());
            }
        }
        cx.put_entry(entry);
        Ok(())
    }
    fn resolve(
        &self,
        cx: &mut Cx<'_>,
        case: &CaseRow,
    ) -> std::result::Result<Resolution, ActionError> {
        let (reached, mut entry) = held(cx, case)?;
        let world = cx.world;
        match evaluate(world, cx.config, &reached) {
            Ok(billing) => {
                let line_id = create_line(cx, &reached, &billing, &mut entry)?;
                cx.close_case(
                    case.id,
                    ExceptionState::Resolved,
                    format!("resolved: line {line_id} created"),
                )?;
                entry.phase = EntryPhase::Billed;
                entry.line_id = Some(line_id);
                entry.case_id = None;
                entry.manual = true;
                entry.value = Some(billing.amount.amount());
                entry.currency = Some(billing.amount.currency());
                cx.put_entry(entry);
                Ok(Resolution::Posted {
                    line_id: Some(line_id),
                })
            }
            Err(hold) if hold.kind == case.kind => Err(ActionError::StillFailing(format!(
                "exception {} still applies: {}. {}",
                case.id, hold.reason, hold.fix
            ))),
            Err(hold) => {
                cx.close_case(
                    case.id,
                    ExceptionState::Resolved,
                    format!("superseded: the milestone now fails {}", hold.kind),
                )?;
                let new_case = open_hold(cx, &hold, &reached, &entry)?;
                entry.case_id = Some(new_case);
                entry.value = hold.value.map(|m| m.amount());
                entry.currency = hold.value.map(|m| m.currency());
                cx.put_entry(entry);
                Ok(Resolution::HandedOver {
                    case_id: new_case,
                    reason: hold.reason,
                })
            }
        }
    }

    fn dismiss(&self, cx: &mut Cx<'_>, case: &CaseRow) -> std::result::Result<(), ActionError> {
        let (_, mut entry) = held(cx, case)?;
        entry.phase = EntryPhase::WrittenOff;
        entry.case_id = None;
        entry.value = case.value;
        entry.currency = case.currency;
        cx.put_entry(entry);
        Ok(())
    }
}

/// The milestone and entry a case holds.
fn held(
    cx: &mut Cx<'_>,
    case: &CaseRow,
) -> std::result::Result<(MilestoneReached, EntryRow), ActionError> {
    let row = cx
        .reads
        .event(case.event_seq)?
        .ok_or_else(|| ActionError::NotFound(format!("event {}", case.event_seq)))?;
    let Ok(EventData::MilestoneReached(reached)) = crate::hub::parse_stored(&row) else {
        return Err(ActionError::WrongState(format!(
            "exception {} holds no milestone",
            case.id
        )));
    };
    let entry = cx
        .entry(EntryKind::Milestone, &entry_id(&reached))?
        .ok_or_else(|| ActionError::NotFound(format!("milestone {}", entry_id(&reached))))?;
    Ok((reached, entry))
}

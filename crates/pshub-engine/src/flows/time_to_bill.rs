//! Flow 4, approved time and expense to bill (PRODUCT.md 5.4). An approved billable entry is
//! checked and priced ([`rules`]); it becomes one invoice line, delivered by a `post_line`
//! step that waits for its project's provisioning, or it is held by a case for the team that
//! owns the failed check. A rejection after billing posts a reversal (a step that waits for
//! the line it cancels); a re-approval posts again, once.
//!
//! With a tax engine in the deployment (`tax_system`), a new line's tax is determined
//! first by a `tax_line` step, which its `post_line` waits for: the line goes to the ERP
//! with the tax code the engine applied, and a code other than the one configured for the
//! line's legal entity holds the line in a `tax_code_mismatch` case for finance.

mod overtime;
pub mod rules;

use super::{Cx, Finding, Flow, NewCase, NewStep, Resolution, opportunity_to_project};
use crate::error::{ActionError, Result};
use crate::ports::{LinePosting, Request, TaxRequest};
use crate::store::*;
use crate::world::Applied;
use pshub_model::records::{ExceptionState, LineKind, OwnerTeam};
use pshub_model::{Event, EventData, EventType, Money};
use rules::{Failure, FailureKind, Pricing, Work};
use std::collections::HashMap;

pub const NAME: &str = "time_to_bill";
/// Posting a line to the ERP.
pub const POST_LINE: &str = "post_line";
/// Determining a new line's tax in the tax engine, before it is posted.
pub const TAX_LINE: &str = "tax_line";

/// Approved hours beyond an assignment's hours: they still bill; the case holds nothing.
pub const HOURS_OVER_ASSIGNMENT: &str = "hours_over_assignment";

/// The billing class of time (its reversals keep it).
pub(crate) const TIME_CLASS: &str = "professional_services";

pub struct TimeToBill;

pub(crate) fn kind_of(work: Work<'_>) -> EntryKind {
    match work {
        Work::Time(_) => EntryKind::Time,
        Work::Expense(_) => EntryKind::Expense,
    }
}

/// The work an event carries, and whether it was approved.
fn work_of(data: &EventData) -> Option<(Work<'_>, bool)> {
    match data {
        EventData::TimeEntry { approved, entry } => Some((Work::Time(entry), *approved)),
        EventData::Expense { approved, expense } => Some((Work::Expense(expense), *approved)),
        _ => None,
    }
}

impl Flow for TimeToBill {
    fn name(&self) -> &'static str {
        NAME
    }

    fn calls(&self) -> &'static [crate::flows::Calls] {
        use crate::flows::Calls;
        &[Calls::Erp, Calls::Tax]
    }

    fn examine(&self, step: &StepRow, request: &Request, applied: &str) -> Option<Finding> {
        let Request::DetermineTax(tax) = request else {
            return None;
        };
        if step.step != TAX_LINE || applied == tax.tax_code {
            return None;
        }
        Some(Finding {
            kind: FailureKind::TaxCodeMismatch.as_str(),
            owner: OwnerTeam::Finance,
            reason: format!(
                "{} applied tax code {applied} to line {} ({} on project {}); the configuration gives {}",
                step.system, tax.source_id, tax.item_code, tax.project_code, tax.tax_code
            ),
            suggested_fix: "Correct the item's tax classification in the tax engine, then resolve this case to ask it again; if the tax engine is right, correct the legal entity's tax code in the configuration for new lines and dismiss this case (this line keeps the code it was priced with, and is not posted).",
            evidence: Some(
                serde_json::json!({
                    "idempotency_key": tax.idempotency_key,
                    "expected_tax_code": tax.tax_code,
                    "applied_tax_code": applied,
                    "item_code": tax.item_code,
                    "amount": tax.amount.to_string(),
                    "currency": tax.currency.to_string(),
                })
                .to_string(),
            ),
        })
    }

    fn reacts_to(&self, event_type: EventType) -> bool {
        matches!(
            event_type,
            EventType::TimeEntryApproved
                | EventType::TimeEntryRejected
                | EventType::ExpenseApproved
                | EventType::ExpenseRejected
        )
    }

    fn apply(&self, cx: &mut Cx<'_>, event: &Event, _: &Applied) -> Result<()> {
        let Some((work, approved)) = work_of(&event.data) else {
            return Ok(());
        };
        apply_work(cx, work, approved)
    }

    fn requests(
        &self,
        steps: &[&StepRow],
        reads: &mut dyn StoreReader,
    ) -> Result<Vec<std::result::Result<Request, String>>> {
        let ids: Vec<i64> = steps.iter().map(|s| s.subject).collect();
        let lines: HashMap<i64, LineRow> = reads
            .lines_by_ids(&ids)?
            .into_iter()
            .map(|l| (l.id, l))
            .collect();
        // A reversal carries the ERP id of the line it cancels: the result of that line's step.
        let originals: Vec<i64> = lines.values().filter_map(|l| l.reverses).collect();
        let original_steps: HashMap<i64, i64> = reads
            .lines_by_ids(&originals)?
            .into_iter()
            .map(|l| (l.id, l.step_id))
            .collect();
        // A line whose tax was determined goes with the code the tax engine applied: the
        // result of the `tax_line` step its posting waited for.
        let step_ids: Vec<i64> = original_steps
            .values()
            .copied()
            .chain(steps.iter().filter_map(|s| s.waits_on))
            .collect();
        let earlier = reads.steps_by_ids(&step_ids)?;
        let applied_tax: HashMap<i64, String> = earlier
            .iter()
            .filter(|s| s.flow == NAME && s.step == TAX_LINE && s.state == StepState::Done)
            .filter_map(|s| Some((s.id, s.result.clone()?)))
            .collect();
        let results: HashMap<i64, Option<String>> =
            earlier.into_iter().map(|s| (s.id, s.result)).collect();
        let mut copies: HashMap<(i64, String), Option<String>> = HashMap::new();
        for step in steps.iter().filter(|s| s.is_copy()) {
            if let Some(original) = lines.get(&step.subject).and_then(|l| l.reverses) {
                for copy in reads.steps_of_subject(NAME, original)? {
                    copies.insert((original, copy.system), copy.result);
                }
            }
        }
        Ok(steps
            .iter()
            .map(|step| {
                let line = lines.get(&step.subject).ok_or_else(|| {
                    format!("line {} of step {} is missing", step.subject, step.id)
                })?;
                if step.step == TAX_LINE {
                    return Ok(Request::DetermineTax(tax_request(step, line)));
                }
                let tax_code = step
                    .waits_on
                    .and_then(|id| applied_tax.get(&id))
                    .unwrap_or(&line.tax_code);
                let reverses_erp_id = match line.reverses {
                    None => None,
                    Some(original) => Some(
                        if step.step == POST_LINE {
                            original_steps
                                .get(&original)
                                .and_then(|s| results.get(s).cloned().flatten())
                        } else {
                            // A shadow's copy cancels the shadow's copy of the line.
                            copies
                                .get(&(original, step.system.clone()))
                                .cloned()
                                .flatten()
                        }
                        .ok_or_else(|| {
                            format!(
                                "line {original} that line {} reverses is not posted",
                                line.id
                            )
                        })?,
                    ),
                };
                Ok(Request::PostLine(LinePosting {
                    idempotency_key: step.idempotency_key(),
                    kind: line.kind.as_str(),
                    project_code: line.project_code.clone(),
                    source_id: line.source_id.clone(),
                    posting: line.posting,
                    worker_id: line.worker_id.clone(),
                    date: line.date,
                    quantity: line.quantity,
                    rate: line.rate,
                    rate_currency: line.rate_currency,
                    amount: line.amount,
                    currency: line.currency,
                    tax_code: tax_code.clone(),
                    billing_class: line.billing_class.clone(),
                    reverses_erp_id,
                    role: line.role.clone(),
                }))
            })
            .collect())
    }

    fn resolve(
        &self,
        cx: &mut Cx<'_>,
        case: &CaseRow,
    ) -> std::result::Result<Resolution, ActionError> {
        let (data, mut entry) = held_work(cx, case)?;
        let Some((work, _)) = work_of(&data) else {
            return Err(ActionError::WrongState(format!(
                "exception {} holds no entry",
                case.id
            )));
        };
        let overtime = entry.work.as_ref().map(|w| w.overtime_hours);
        let verdict = evaluate(cx, work, overtime.unwrap_or_default())?;
        let resolution = match verdict.outcome {
            Ok(pricing) => {
                let line_id = create_line(cx, work, &pricing, &mut entry)?;
                cx.close_case(
                    case.id,
                    ExceptionState::Resolved,
                    format!("resolved: line {line_id} created"),
                )?;
                entry.phase = EntryPhase::Billed;
                entry.line_id = Some(line_id);
                entry.case_id = None;
                entry.manual = true;
                Resolution::Posted {
                    line_id: Some(line_id),
                }
            }
            Err(failure) if failure.kind.as_str() == case.kind => {
                return Err(ActionError::StillFailing(format!(
                    "exception {} still applies: {}. {}",
                    case.id, failure.reason, failure.suggested_fix
                )));
            }
            Err(failure) => {
                let new_case = hold(cx, work, &failure, verdict.value, &entry, Some(case.id))?;
                entry.case_id = Some(new_case);
                Resolution::HandedOver {
                    case_id: new_case,
                    reason: failure.reason,
                }
            }
        };
        entry.value = verdict.value.map(|m| m.amount());
        entry.currency = verdict.value.map(|m| m.currency());
        cx.put_entry(entry);
        Ok(resolution)
    }

    fn dismiss(&self, cx: &mut Cx<'_>, case: &CaseRow) -> std::result::Result<(), ActionError> {
        let (_, mut entry) = held_work(cx, case)?;
        entry.phase = EntryPhase::WrittenOff;
        entry.case_id = None;
        entry.line_id = None;
        // The value written off is the one the case held.
        entry.value = case.value;
        entry.currency = case.currency;
        cx.put_entry(entry);
        Ok(())
    }
}

/// The event and entry a case holds.
fn held_work(
    cx: &mut Cx<'_>,
    case: &CaseRow,
) -> std::result::Result<(EventData, EntryRow), ActionError> {
    let row = cx
        .reads
        .event(case.event_seq)?
        .ok_or_else(|| ActionError::NotFound(format!("event {}", case.event_seq)))?;
    let data = parse_stored(&row)?;
    let Some((work, _)) = work_of(&data) else {
        return Err(ActionError::WrongState(format!(
            "exception {} holds no entry",
            case.id
        )));
    };
    let kind = kind_of(work);
    let source_id = work.source_id().to_string();
    let entry = cx
        .entry(kind, &source_id)?
        .ok_or_else(|| ActionError::NotFound(format!("entry {source_id}")))?;
    Ok((data, entry))
}

fn parse_stored(row: &InboxRow) -> std::result::Result<EventData, ActionError> {
    let event_type = EventType::parse(&row.event_type).ok_or_else(|| {
        ActionError::Invalid(format!(
            "event {} has unknown type {}",
            row.seq, row.event_type
        ))
    })?;
    EventData::parse_canonical(event_type, &row.data)
        .map_err(|e| ActionError::Invalid(format!("event {}: {e}", row.seq)))
}

/// The flow for one approved or rejected time entry or expense.
fn apply_work(cx: &mut Cx<'_>, work: Work<'_>, approved: bool) -> Result<()> {
    let kind = kind_of(work);
    let source_id = work.source_id();
    let mut entry = match cx.entry(kind, source_id)? {
        Some(entry) => entry,
        None => EntryRow {
            row_id: cx.id(IdKind::Entry)?,
            kind,
            entry_id: source_id.to_string(),
            phase: EntryPhase::Rejected,
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
    let billed_line = entry.line_id.filter(|_| entry.phase == EntryPhase::Billed);
    let held_case = entry.case_id.filter(|_| entry.phase == EntryPhase::Held);

    if approved
        && work.billable()
        && billed_line.is_some()
        && entry.fingerprint == cx.event.fingerprint
    {
        // The same approval again under another event id: already billed, once.
        cx.caches.reapprovals_suppressed += 1;
        return Ok(());
    }
    if let Some(line_id) = billed_line {
        reverse_line(cx, line_id, &mut entry)?;
    }
    entry.event_seq = cx.event.seq;
    entry.fingerprint = cx.event.fingerprint;
    entry.manual = false;
    entry.line_id = None;
    if let Some(previous) = entry.work.take() {
        overtime::withdraw(cx, &previous)?;
    }
    entry.work = match work {
        Work::Time(t) if approved => Some(WorkedHours {
            worker_id: t.worker_id.to_string(),
            project_code: t.project_code.to_string(),
            date: t.work_date,
            hours: t.hours,
            overtime_hours: overtime::count(cx, t)?,
        }),
        _ => None,
    };
    let overtime_hours = entry
        .work
        .as_ref()
        .map_or(rust_decimal::Decimal::ZERO, |w| w.overtime_hours);

    // Fixed-fee contracts bill their milestones: time counts as hours for cost only.
    let fixed_fee = matches!(work, Work::Time(_))
        && cx.world.project(work.project()).is_some_and(|p| {
            p.contract.billing_model == pshub_model::records::BillingModel::FixedFee
        });
    if !approved || !work.billable() || fixed_fee {
        if let Some(case_id) = held_case {
            let why = if !approved {
                "the entry was rejected at the source"
            } else if fixed_fee {
                "the contract is fixed fee: time bills through its milestones"
            } else {
                "the entry is no longer billable"
            };
            cx.close_case(
                case_id,
                ExceptionState::Dismissed,
                format!("withdrawn: {why}"),
            )?;
        }
        entry.phase = if approved {
            EntryPhase::NotBillable
        } else {
            EntryPhase::Rejected
        };
        entry.case_id = None;
        cx.put_entry(entry);
        return Ok(());
    }

    let verdict = evaluate(cx, work, overtime_hours)?;
    match verdict.outcome {
        Ok(pricing) => {
            if let Some(case_id) = held_case {
                let note = format!("cleared by a later event (inbox seq {})", cx.event.seq);
                cx.close_case(case_id, ExceptionState::Resolved, note)?;
            }
            let line_id = create_line(cx, work, &pricing, &mut entry)?;
            entry.phase = EntryPhase::Billed;
            entry.line_id = Some(line_id);
            entry.case_id = None;
        }
        Err(failure) => {
            let case_id = hold(cx, work, &failure, verdict.value, &entry, held_case)?;
            entry.phase = EntryPhase::Held;
            entry.case_id = Some(case_id);
        }
    }
    entry.value = verdict.value.map(|m| m.amount());
    entry.currency = verdict.value.map(|m| m.currency());
    cx.put_entry(entry);
    Ok(())
}

/// What a capped contract has consumed: the amount of its time and expense lines, net of
/// reversals (milestones excluded). It is kept as a versioned running total in the store's
/// worker-day tallies under `cap:{contract_id}`, so that two writers adding lines to one
/// contract are serialised by the row's version.
fn cap_consumption(
    cx: &mut Cx<'_>,
    contract: &pshub_model::records::Contract,
) -> Result<WorkerDayRow> {
    cx.worker_day(&format!("cap:{}", contract.contract_id), contract.start)
}

/// The capped contract of a line's project, if it is one.
fn capped_contract(cx: &Cx<'_>, project_code: &str) -> Option<pshub_model::records::Contract> {
    let code = pshub_model::ProjectCode::parse(project_code).ok()?;
    let project = cx.world.project(&code)?;
    (project.contract.billing_model == pshub_model::records::BillingModel::CappedTm)
        .then(|| project.contract.clone())
}

/// Adds a time or expense line (negative for a reversal) to its capped contract's
/// consumption.
fn count_cap(cx: &mut Cx<'_>, line: &LineRow) -> Result<()> {
    if line.kind == LineKind::Milestone {
        return Ok(());
    }
    let Some(contract) = capped_contract(cx, &line.project_code) else {
        return Ok(());
    };
    let mut consumed = cap_consumption(cx, &contract)?;
    consumed.hours = consumed
        .hours
        .checked_add(line.amount)
        .unwrap_or(consumed.hours);
    cx.put_worker_day(consumed);
    Ok(())
}

/// The rules, then the contract's cap and the daily limit of hours when one is configured.
fn evaluate(
    cx: &mut Cx<'_>,
    work: Work<'_>,
    overtime: rust_decimal::Decimal,
) -> Result<rules::Verdict> {
    let mut verdict = rules::evaluate(cx.world, cx.config, work, overtime);
    if let Ok(pricing) = &verdict.outcome
        && let Some(contract) = capped_contract(cx, work.project().as_str())
    {
        let code = work.project();
        let terms = cx
            .world
            .project(code)
            .map(|p| p.contract_on(work.date()).cap)
            .unwrap_or(contract.cap);
        if let Some(cap) = terms {
            let consumed = cap_consumption(cx, &contract)?.hours;
            let total = consumed.checked_add(pricing.amount.amount());
            if total.is_none_or(|total| total > cap) {
                let reason = format!(
                    "the line of {} would bring contract {} to {} {}, past its cap of {cap} (consumed so far: {consumed})",
                    pricing.amount,
                    contract.contract_id,
                    total.map_or("too much".to_string(), |t| t.to_string()),
                    contract.currency
                );
                let fix = "Raise the cap with contract.amended, or agree a change order with the client; then resolve this case (resolving checks the cap again).";
                verdict.outcome = Err(rules::fail(FailureKind::CapExceeded, reason, fix));
            }
        }
    }
    if let (Ok(_), Work::Time(entry), Some(limit)) =
        (&verdict.outcome, work, cx.config.max_daily_hours)
    {
        let day = cx.worker_day(entry.worker_id.as_str(), entry.work_date)?;
        let total = day.hours.checked_add(entry.hours);
        if total.is_none_or(|total| total > limit) {
            let reason = format!(
                "worker {} would have {} approved hours on {}, more than the limit of {limit}",
                entry.worker_id,
                total.map_or("too many".to_string(), |t| t.to_string()),
                entry.work_date
            );
            let fix = "Check the worker's time for that day in the PSA; correct or reject the entries that are wrong, then resolve this case.";
            verdict.outcome = Err(rules::fail(FailureKind::DailyHoursExceeded, reason, fix));
        }
    }
    Ok(verdict)
}

/// Adds a line of `hours` (negative for a reversal) to the worker's day.
fn count_hours(cx: &mut Cx<'_>, line: &LineRow) -> Result<()> {
    if cx.config.max_daily_hours.is_none()
        || !matches!(line.kind, LineKind::Time | LineKind::Reversal)
    {
        return Ok(());
    }
    let mut day = cx.worker_day(&line.worker_id, line.date)?;
    day.hours = day.hours.checked_add(line.quantity).unwrap_or(day.hours);
    cx.put_worker_day(day);
    Ok(())
}

/// Adds a time line (negative for a reversal of one) to its approved assignment's billed
/// hours; past the assignment's hours, opens one `pmo` case for it, which holds nothing.
/// The hours are counted in memory from the hub's start (reading the store for every
/// assignment would cost the writer half its throughput); only when that count passes the
/// assignment's hours is the store read for the exact figure, which decides.
fn count_assignment(cx: &mut Cx<'_>, line: &LineRow) -> Result<()> {
    if line.billing_class != TIME_CLASS || line.worker_id.is_empty() {
        return Ok(());
    }
    let world = cx.world;
    let Some(assignment) =
        world.approved_assignment_on(&line.worker_id, &line.project_code, line.date)
    else {
        return Ok(());
    };
    let id = assignment.assignment_id.to_string();
    if cx.caches.assignments_over.contains(&id) {
        return Ok(());
    }
    let seen = cx
        .caches
        .assignment_hours
        .get(&id)
        .copied()
        .unwrap_or_default();
    let seen = seen.checked_add(line.quantity).unwrap_or(seen);
    cx.caches.assignment_hours.insert(id.clone(), seen);
    if seen <= assignment.hours {
        return Ok(());
    }
    // Past the hours by this process's count: the store (and this commit) say how far.
    let filter = LineFilter {
        worker_id: Some(line.worker_id.clone()),
        project_code: Some(line.project_code.clone()),
        ..LineFilter::default()
    };
    let in_dates = |l: &LineRow| {
        l.billing_class == TIME_CLASS && assignment.start <= l.date && l.date <= assignment.end
    };
    let stored = cx.reads.lines(&filter, Page::ALL)?;
    let before: Vec<&LineRow> = cx
        .ahead
        .into_iter()
        .flat_map(|a| a.lines_of(&line.worker_id, &line.project_code))
        .collect();
    let here = cx
        .commit
        .lines
        .iter()
        .filter(|l| l.worker_id == line.worker_id && l.project_code == line.project_code);
    // A line of the batch before may be stored already: each line counts once.
    let billed = stored
        .iter()
        .map(|l| &l.line)
        .filter(|l| !before.iter().any(|b| b.id == l.id))
        .chain(before.iter().copied())
        .chain(here)
        .chain(std::iter::once(line))
        .filter(|l| in_dates(l))
        .fold(rust_decimal::Decimal::ZERO, |sum, l| {
            sum.checked_add(l.quantity).unwrap_or(sum)
        });
    cx.caches.assignment_hours.insert(id.clone(), billed);
    if billed <= assignment.hours {
        return Ok(());
    }
    cx.caches.assignments_over.insert(id.clone());
    if cx.open_case_of(HOURS_OVER_ASSIGNMENT, &id)?.is_none() {
        let reason = format!(
            "worker {} has {billed} approved hours on assignment {id} (project {}), which books {}; they bill all the same",
            line.worker_id, line.project_code, assignment.hours
        );
        cx.open_case(NewCase {
            kind: HOURS_OVER_ASSIGNMENT,
            owner: pshub_model::records::OwnerTeam::Pmo,
            business_key: &id,
            reason,
            suggested_fix: "Extend the assignment's hours in the PSA if the work was agreed, or review the time with the worker's manager; then resolve this case.",
            flow: NAME,
            entry_row: None,
            step_id: None,
            value: None,
            evidence: None,
        })?;
    }
    Ok(())
}

/// Opens a case for the failure, or keeps the entry's open case when it already holds it
/// for the same reason.
fn hold(
    cx: &mut Cx<'_>,
    work: Work<'_>,
    failure: &Failure,
    value: Option<Money>,
    entry: &EntryRow,
    held_case: Option<i64>,
) -> Result<i64> {
    if let Some(case_id) = held_case {
        let mut case = cx.case(case_id)?;
        if case.kind == failure.kind.as_str() {
            case.reason = failure.reason.clone();
            case.event_seq = cx.event.seq;
            case.value = value.map(|m| m.amount());
            case.currency = value.map(|m| m.currency());
            case.updated_at = cx.stamp();
            cx.commit.cases.put(case);
            return Ok(case_id);
        }
        let note = format!("superseded: the entry now fails {}", failure.kind.as_str());
        cx.close_case(case_id, ExceptionState::Resolved, note)?;
    }
    cx.open_case(NewCase {
        kind: failure.kind.as_str(),
        owner: failure.kind.owner(),
        business_key: work.source_id(),
        reason: failure.reason.clone(),
        suggested_fix: &failure.suggested_fix,
        flow: NAME,
        entry_row: Some(entry.row_id),
        step_id: None,
        value,
        evidence: None,
    })
}

/// The next line of an entry, with the step that posts it. A line takes its step's id (so a
/// store may keep the two in one row); its posting number counts the entry's lines.
pub(crate) fn new_line(cx: &mut Cx<'_>, entry: &mut EntryRow) -> Result<(i64, u32, i64)> {
    entry.postings += 1;
    let id = cx.id(IdKind::Step)?;
    Ok((id, entry.postings, id))
}

fn create_line(
    cx: &mut Cx<'_>,
    work: Work<'_>,
    pricing: &Pricing,
    entry: &mut EntryRow,
) -> Result<i64> {
    let (id, posting, step_id) = new_line(cx, entry)?;
    let line = LineRow {
        id,
        kind: match work {
            Work::Time(_) => LineKind::Time,
            Work::Expense(_) => LineKind::Expense,
        },
        entry_row: entry.row_id,
        posting,
        source_id: work.source_id().to_string(),
        event_seq: cx.event.seq,
        project_code: work.project().to_string(),
        worker_id: work.worker().to_string(),
        date: work.date(),
        quantity: pricing.quantity,
        rate: pricing.rate,
        rate_currency: pricing.rate_currency,
        fx_rate: pricing.fx_rate,
        amount: pricing.amount.amount(),
        currency: pricing.amount.currency(),
        tax_code: pricing.tax_code.clone(),
        billing_class: pricing.billing_class.clone(),
        reverses: None,
        correlation_id: cx.event.correlation_id.clone(),
        created_at: cx.stamp(),
        step_id,
        overtime_hours: pricing.overtime_hours,
        role: pricing.role.clone(),
    };
    add_post_steps(cx, &line, entry)?;
    count_hours(cx, &line)?;
    count_cap(cx, &line)?;
    count_assignment(cx, &line)?;
    cx.add_line(line);
    Ok(id)
}

/// The tax document of a line: its code is the step's idempotency key, so asking again
/// replaces the same document.
fn tax_request(step: &StepRow, line: &LineRow) -> TaxRequest {
    TaxRequest {
        idempotency_key: step.idempotency_key(),
        project_code: line.project_code.clone(),
        source_id: line.source_id.clone(),
        worker_id: line.worker_id.clone(),
        date: line.date,
        quantity: line.quantity,
        amount: line.amount,
        currency: line.currency,
        tax_code: line.tax_code.clone(),
        item_code: line.billing_class.clone(),
        description: format!(
            "{} {} by {} on {}",
            line.kind.as_str(),
            line.source_id,
            line.worker_id,
            line.project_code
        ),
    }
}

/// The steps that post `line`, a line of `entry`: one in the ERP its project's route names,
/// after the project's provisioning there, and in shadow mode one more in the shadow ERP
/// (`post_line@<shadow>`). With a tax engine, a new line's posting waits for its `tax_line`
/// step, which waits for the provisioning. The business key, and so the idempotency key,
/// names the entry and the line's posting: `time:T-1:1`, `expense:X-1:2`,
/// `milestone:K-1:M-1:1`.
pub(crate) fn add_post_steps(cx: &mut Cx<'_>, line: &LineRow, entry: &EntryRow) -> Result<()> {
    let routed = cx.erps_of_project(&line.project_code);
    let mut waits_on =
        opportunity_to_project::provisioning_step(cx, &line.project_code, routed.erp)?;
    if let (Some(tax), None) = (cx.config.tax_system.clone(), line.reverses) {
        let id = cx.id(IdKind::Step)?;
        add_post_step(cx, line, entry, id, TAX_LINE, &tax, waits_on)?;
        waits_on = Some(id);
    }
    add_post_step(
        cx,
        line,
        entry,
        line.step_id,
        POST_LINE,
        routed.erp,
        waits_on,
    )?;
    if let Some(shadow) = routed.shadow {
        let waits_on = opportunity_to_project::provisioning_step(cx, &line.project_code, shadow)?;
        let id = cx.id(IdKind::Step)?;
        let step = format!("{POST_LINE}@{shadow}");
        add_post_step(cx, line, entry, id, &step, shadow, waits_on)?;
    }
    Ok(())
}

fn add_post_step(
    cx: &mut Cx<'_>,
    line: &LineRow,
    entry: &EntryRow,
    id: i64,
    step: &str,
    system: &str,
    waits_on: Option<i64>,
) -> Result<()> {
    cx.add_step(NewStep {
        id,
        flow: NAME,
        step,
        system,
        subject: line.id,
        business_key: format!(
            "{}:{}:{}",
            entry.kind.as_str(),
            entry.entry_id,
            line.posting
        ),
        waits_on,
    })
}

/// The copies of a line's step for other systems (a shadow ERP's): from this commit when
/// the line is new in it, else from the batch before and the store.
fn copies_of_line(cx: &mut Cx<'_>, line_id: i64) -> Result<Vec<StepRow>> {
    let is_copy = |s: &StepRow| s.subject == line_id && s.flow == NAME && s.is_copy();
    if cx.caches.lines.contains_key(&line_id) {
        return Ok(cx
            .commit
            .steps
            .iter()
            .filter(|s| is_copy(s))
            .cloned()
            .collect());
    }
    Ok(cx
        .steps_of_subject(NAME, line_id)?
        .into_iter()
        .filter(is_copy)
        .collect())
}

/// Posts the negative of a line: the entry's billing is withdrawn, once. The reversal waits
/// for the line it cancels to be posted.
fn reverse_line(cx: &mut Cx<'_>, line_id: i64, entry: &mut EntryRow) -> Result<()> {
    let original = cx.line(line_id)?;
    let original_step = cx.step(original.step_id)?;
    let (id, posting, step_id) = new_line(cx, entry)?;
    let reversal = LineRow {
        id,
        kind: LineKind::Reversal,
        posting,
        event_seq: cx.event.seq,
        quantity: -original.quantity,
        amount: -original.amount,
        reverses: Some(original.id),
        correlation_id: cx.event.correlation_id.clone(),
        created_at: cx.stamp(),
        step_id,
        ..original.clone()
    };
    // A reversal goes where the line it cancels went, after it: the ERP it was routed to
    // then, and the shadow that has a copy.
    let waits_on = (original_step.state != StepState::Done).then_some(original_step.id);
    add_post_step(
        cx,
        &reversal,
        entry,
        step_id,
        POST_LINE,
        &original_step.system,
        waits_on,
    )?;
    // Whatever the routes say now: a copy made under an earlier one is cancelled too.
    for copy in copies_of_line(cx, original.id)? {
        let waits_on = (copy.state != StepState::Done).then_some(copy.id);
        let id = cx.id(IdKind::Step)?;
        add_post_step(cx, &reversal, entry, id, &copy.step, &copy.system, waits_on)?;
    }
    count_hours(cx, &reversal)?;
    count_cap(cx, &reversal)?;
    count_assignment(cx, &reversal)?;
    cx.add_line(reversal);
    Ok(())
}

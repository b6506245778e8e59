//! Flow 6, invoice status feedback (PRODUCT.md 5.6). The ERP groups a project's posted lines
//! per calendar month into one invoice (`INV-{project}-{YYYY-MM}`, see [`invoice_id`]),
//! posted once it holds a posted line. The invoice-status owner's `invoice.status_changed`
//! is applied in the order of `at` (the world keeps it; an older one is ignored), and every
//! status is written back to the CRM as a step. A forbidden transition and an unknown
//! invoice open `integration` cases; `disputed` opens one `finance` case per invoice, which
//! a later `paid` or `void` resolves. A sender that names the invoice by its own id as well
//! (Stripe's `in_...`) has it registered; one that names it only by its own id has it found
//! through the registry before the event is accepted (`Hub::find_invoices`).

use super::{Cx, Flow, NewCase, NewStep};
use crate::error::Result;
use crate::fingerprint::fingerprint;
use crate::ports::{InvoiceStatusRequest, Request};
use crate::store::*;
use crate::world::{Applied, InvoiceChange};
use chrono::{Datelike, NaiveDate};
use pshub_model::records::{ExceptionState, InvoiceStatus, InvoiceStatusChange, OwnerTeam};
use pshub_model::{Event, EventData, EventType};

pub const NAME: &str = "invoice_status";
/// The status written back to the CRM account.
pub const CRM: &str = "crm";
pub const UNKNOWN_INVOICE: &str = "unknown_invoice";
pub const FORBIDDEN_TRANSITION: &str = "forbidden_invoice_transition";
pub const DISPUTED: &str = "invoice_disputed";
/// What the id registry calls an invoice.
pub const XREF_KIND: &str = "invoice";

pub struct InvoiceStatusFlow;

/// The invoice that holds a project's lines dated in `date`'s month.
pub fn invoice_id(project_code: &str, date: NaiveDate) -> String {
    format!("INV-{project_code}-{:04}-{:02}", date.year(), date.month())
}

/// The project and month an invoice id names, when it follows [`invoice_id`].
pub fn invoice_period(invoice_id: &str) -> Option<(String, NaiveDate)> {
    let rest = invoice_id.strip_prefix("INV-")?;
    let at = rest
        .len()
        .checked_sub(7)
        .filter(|at| rest.is_char_boundary(*at))?;
    let (project, month) = rest.split_at(at);
    let project = project.strip_suffix('-')?;
    let (year, month) = month.split_once('-')?;
    let first = NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)?;
    (!project.is_empty()).then(|| (project.to_string(), first))
}

/// The lines of an invoice: the project's lines dated in its month.
pub fn invoice_lines(reads: &mut dyn StoreReader, invoice_id: &str) -> Result<Vec<DeliveredLine>> {
    let Some((project, first)) = invoice_period(invoice_id) else {
        return Ok(Vec::new());
    };
    let filter = LineFilter {
        project_code: Some(project),
        ..LineFilter::default()
    };
    Ok(reads
        .lines(&filter, Page::ALL)?
        .into_iter()
        .filter(|l| l.line.date.year() == first.year() && l.line.date.month() == first.month())
        .collect())
}

/// The subject of an invoice's steps: a stable number from its id, so that its steps are
/// found together.
pub fn subject(invoice_id: &str) -> i64 {
    (fingerprint(&["invoice", invoice_id]) >> 1) as i64
}

fn notice(
    cx: &mut Cx<'_>,
    kind: &str,
    owner: OwnerTeam,
    invoice: &str,
    reason: String,
    fix: &str,
) -> Result<i64> {
    cx.open_case(NewCase {
        kind,
        owner,
        business_key: invoice,
        reason,
        suggested_fix: fix,
        flow: NAME,
        entry_row: None,
        step_id: None,
        value: None,
        evidence: None,
    })
}

impl Flow for InvoiceStatusFlow {
    fn name(&self) -> &'static str {
        NAME
    }

    fn calls(&self) -> &'static [crate::flows::Calls] {
        use crate::flows::Calls;
        &[Calls::Crm]
    }

    fn reacts_to(&self, event_type: EventType) -> bool {
        event_type == EventType::InvoiceStatusChanged
    }

    fn apply(&self, cx: &mut Cx<'_>, event: &Event, applied: &Applied) -> Result<()> {
        let EventData::InvoiceStatus(change) = &event.data else {
            return Ok(());
        };
        let invoice = change.invoice_key();
        let status = change.status.as_str();
        // The sender's own id of the invoice, given with the hub's, goes in the registry:
        // a later event that names only it (a Stripe refund) finds the hub's invoice.
        if let (Some(hub), Some(own)) = (&change.invoice_id, &change.system_invoice_id) {
            cx.commit.xrefs.push(XrefRow {
                kind: XREF_KIND.into(),
                canonical_id: hub.to_string(),
                system: event.source.to_string(),
                system_id: own.clone(),
                correlation_id: cx.event.correlation_id.clone(),
                created_at: cx.stamp(),
            });
        }
        match applied.invoice {
            Some(InvoiceChange::Stale) | None => {}
            Some(InvoiceChange::Forbidden { from }) => {
                notice(
                    cx,
                    FORBIDDEN_TRANSITION,
                    OwnerTeam::Integration,
                    invoice,
                    format!(
                        "invoice {invoice} cannot move from {} to {status}; the change is not applied",
                        from.as_str()
                    ),
                    "Check the invoice in the ERP; send the status it really has, then resolve this case.",
                )?;
            }
            Some(InvoiceChange::Applied { .. }) => {
                let posted = invoice_lines(cx.reads, invoice)?
                    .iter()
                    .any(|l| l.step.state == StepState::Done);
                if !posted {
                    notice(
                        cx,
                        UNKNOWN_INVOICE,
                        OwnerTeam::Integration,
                        invoice,
                        format!(
                            "invoice {invoice} holds no line the hub posted; its status {status} is kept but not written to the CRM"
                        ),
                        "Check the invoice id in the ERP's message, then resolve this case.",
                    )?;
                    return Ok(());
                }
                cx.publish(
                    "invoice.status_changed",
                    format!("invoice:{invoice}:{}", cx.event.seq),
                    serde_json::json!({ "invoice_id": invoice, "status": status, "at": change.at.to_rfc3339(),
                        "project_code": invoice_period(invoice).map(|(p, _)| p) }),
                )?;
                let id = cx.id(IdKind::Step)?;
                let crm = cx.config.crm_system.clone();
                cx.add_step(NewStep {
                    id,
                    flow: NAME,
                    step: CRM,
                    system: &crm,
                    subject: subject(invoice),
                    business_key: format!("{invoice}:{}", cx.event.seq),
                    waits_on: None,
                })?;
                let open_dispute = cx.open_case_of(DISPUTED, invoice)?;
                match (change.status, open_dispute) {
                    (InvoiceStatus::Disputed, None) => {
                        notice(
                            cx,
                            DISPUTED,
                            OwnerTeam::Finance,
                            invoice,
                            format!("the client disputes invoice {invoice}"),
                            "Settle the dispute with the account team; the case resolves when the invoice is paid or voided.",
                        )?;
                    }
                    (InvoiceStatus::Paid | InvoiceStatus::Void, Some(case)) => {
                        cx.close_case(
                            case.id,
                            ExceptionState::Resolved,
                            format!("the invoice is now {status}"),
                        )?;
                    }
                    _ => {}
                }
            }
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
            let change = stored_change(reads, step.event_seq)?;
            answers.push(change.map(|change| {
                Request::UpdateInvoiceStatus(InvoiceStatusRequest {
                    idempotency_key: step.idempotency_key(),
                    project_code: invoice_period(change.invoice_key()).map(|(p, _)| p),
                    invoice_id: change.invoice_key().to_string(),
                    status: change.status.as_str().to_string(),
                    at: change.at.to_rfc3339(),
                })
            }));
        }
        Ok(answers)
    }
}

/// The status change a stored event carries.
pub fn stored_change(
    reads: &mut dyn StoreReader,
    seq: i64,
) -> Result<std::result::Result<InvoiceStatusChange, String>> {
    super::stored_data(reads, seq, "an invoice status change", |data| match data {
        EventData::InvoiceStatus(change) => Some(change),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_id_names_its_project_and_month() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 17).unwrap();
        let id = invoice_id("PRJ-0001", date);
        assert_eq!(id, "INV-PRJ-0001-2026-03");
        assert_eq!(
            invoice_period(&id),
            Some((
                "PRJ-0001".into(),
                NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
            ))
        );
        assert_eq!(invoice_period("INV-2026-03"), None);
        assert_eq!(invoice_period("X-1"), None);
        assert_eq!(invoice_period("INV-ÉÉÉÉÉÉÉÉ"), None);
    }
}

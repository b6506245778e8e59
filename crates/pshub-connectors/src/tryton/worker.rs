//! The connector's own worker beside the hub: an invoicing pass each second (when
//! `[connectors.<name>.invoicing] enabled`), and every `poll_interval` the states of the
//! hub's invoices read back from Tryton and sent into the hub as
//! `invoice.status_changed` events from the source that owns invoice status (`erp` by
//! default), keyed `tryton-<id>-<state>`, so that `paid` reaches the CRM. Tryton has no
//! "sent": its states are posted, paid and cancelled (the hub's void).

use super::Tryton;
use super::invoicing::Invoice;
use chrono::Utc;
use pshub_engine::Engine;
use pshub_engine::flows::invoice_status::invoice_id;
use pshub_engine::hooks::{Received, Via, map_payload};
use pshub_engine::store::{LineFilter, LineStatus, Page};
use pshub_model::Domain;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

impl Tryton {
    /// Starts the worker; it stops when `stop` is set.
    pub fn spawn_worker(
        self: &Arc<Self>,
        engine: Arc<Engine>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        let tryton = self.clone();
        std::thread::Builder::new()
            .name("pshub-tryton".into())
            .spawn(move || tryton.work(&engine, &stop))
    }

    fn work(&self, engine: &Engine, stop: &AtomicBool) {
        let invoicing = self.config.invoicing.enabled;
        let mut recovered = !invoicing;
        let mut reported: HashSet<(i64, &'static str)> = HashSet::new();
        let mut polled: Option<Instant> = None;
        // Won deals read up to this `write_date` (in Tryton's clock).
        let mut deals_read: Option<chrono::NaiveDateTime> = None;
        // The records the last read of them sent, which the next read takes again.
        let mut deals_sent: HashSet<String> = HashSet::new();
        while !stop.load(Ordering::Relaxed) {
            let today = Utc::now().date_naive();
            if !recovered {
                match self.recover_activity(today) {
                    Ok(periods) => {
                        recovered = true;
                        tracing::info!(
                            periods,
                            "Tryton periods not yet invoiced, found after the start"
                        );
                    }
                    Err(error) => {
                        tracing::warn!(error = error.message(), "cannot read Tryton's open lines")
                    }
                }
            }
            if invoicing && recovered {
                self.invoice_due(today, &|project, up_to| holds_lines(engine, project, up_to));
            }
            if polled.is_none_or(|at| at.elapsed() >= self.config.poll_interval) {
                polled = Some(Instant::now());
                self.report_states(engine, &mut reported);
                self.send_won_deals(engine, &mut deals_read, &mut deals_sent);
            }
            sleep_unless_stopped(stop, Duration::from_secs(1));
        }
    }

    /// Sends the hub the won deals Tryton's opportunities hold since the last read, each
    /// through the configured mapping, with the record read kept as its origin. A read
    /// takes the last instant again (a deal written in it later is not missed), so what the
    /// last read sent comes back: `sent` holds those records, which are not sent twice (an
    /// accepted one would be a duplicate; a refused one would be quarantined again).
    fn send_won_deals(
        &self,
        engine: &Engine,
        read_up_to: &mut Option<chrono::NaiveDateTime>,
        sent: &mut HashSet<String>,
    ) {
        let Some(settings) = &self.config.opportunities else {
            return;
        };
        let config = engine.config();
        let source = config.owner_of(Domain::Opportunity).to_string();
        let via = Via::connector("tryton").with("model", json!("sale.opportunity"));
        let mappings = [settings.mapping.clone()];
        let (records, newest) = match self.won_deals(*read_up_to) {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(
                    error = error.message(),
                    "cannot read Tryton's opportunities"
                );
                return;
            }
        };
        let bodies: HashSet<String> = records.iter().map(Value::to_string).collect();
        let mut incoming = Vec::new();
        for body in bodies.iter().filter(|body| !sent.contains(*body)) {
            match map_payload(&source, &mappings, &via, body, None, config) {
                Received::Event(event) => incoming.push(event),
                // The read takes converted and won deals only: a mapping that does not take
                // one is a deployment's mapping at odds with the connector.
                Received::NotTaken(why) => {
                    tracing::warn!(why, "a won Tryton opportunity is not taken by its mapping")
                }
            }
        }
        if !incoming.is_empty() {
            match engine.submit_incoming(incoming) {
                Ok(results) => {
                    for refused in results
                        .iter()
                        .filter(|r| r.status.as_str() == "quarantined")
                    {
                        tracing::warn!(reason = ?refused.reason, "a Tryton opportunity did not make a deal");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot send Tryton's won deals to the hub");
                    return;
                }
            }
        }
        *read_up_to = newest;
        *sent = bodies;
    }

    /// Sends the hub each invoice state it has not yet been sent from this process (the
    /// hub drops repeats by event id, so a restart sending them again changes nothing).
    fn report_states(&self, engine: &Engine, reported: &mut HashSet<(i64, &'static str)>) {
        let invoices = match self.hub_invoices() {
            Ok(invoices) => invoices,
            Err(error) => {
                tracing::warn!(
                    error = error.message(),
                    "cannot read invoice states from Tryton"
                );
                return;
            }
        };
        let source = engine.config().owner_of(Domain::InvoiceStatus).to_string();
        let mut events = Vec::new();
        let mut sent = Vec::new();
        for invoice in &invoices {
            // A shadow's invoices are for comparison: their states are not the invoice's.
            if let Some((project, _)) = invoice.period()
                && crate::shadow_only(engine, project, &self.config.system)
            {
                continue;
            }
            for status in statuses(invoice) {
                if reported.contains(&(invoice.id, status)) {
                    continue;
                }
                if let Some(event) = status_event(&source, invoice, status) {
                    events.push(event);
                    sent.push((invoice.id, status));
                }
            }
        }
        if events.is_empty() {
            return;
        }
        match engine.submit(events) {
            Ok(_) => reported.extend(sent),
            Err(error) => tracing::warn!(%error, "cannot send Tryton's invoice states to the hub"),
        }
    }
}

/// The hub statuses an invoice has passed through: a paid invoice was posted first.
fn statuses(invoice: &Invoice) -> Vec<&'static str> {
    match invoice.state.as_str() {
        "posted" => vec!["posted"],
        "paid" => vec!["posted", "paid"],
        "cancelled" => vec!["void"],
        _ => Vec::new(),
    }
}

fn status_event(source: &str, invoice: &Invoice, status: &str) -> Option<Value> {
    let (project, period) = invoice.period()?;
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Some(json!({
        "id": format!("tryton-{}-{status}", invoice.id),
        "source": source,
        "type": "invoice.status_changed",
        "schema_version": 1,
        "occurred_at": now,
        "data": {
            "invoice_id": invoice_id(project, period.first_day()?),
            "status": status,
            "at": now,
        },
    }))
}

/// Whether the hub holds a line of `project` dated up to `up_to` that is still on its way
/// to the ERP (pending, running or waiting); when it cannot tell, it says so.
fn holds_lines(engine: &Engine, project: &str, up_to: chrono::NaiveDate) -> bool {
    let filter = LineFilter {
        project_code: Some(project.to_string()),
        status: Some(LineStatus::Pending),
        ..LineFilter::default()
    };
    match engine.read(|r| r.lines(&filter, Page::first(1_000))) {
        Ok(lines) => lines.iter().any(|l| l.line.date <= up_to),
        Err(error) => {
            tracing::warn!(%error, project, "cannot read the project's lines on their way");
            true
        }
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn a_paid_invoice_reports_posted_then_paid_under_the_hub_invoice_id() {
        let invoice = Invoice {
            id: 7,
            reference: "pshub:P-1:2026-10".into(),
            state: "paid".into(),
            number: Some("INV/2026/1".into()),
            untaxed_amount: Decimal::ZERO,
        };
        assert_eq!(statuses(&invoice), ["posted", "paid"]);
        let event = status_event("erp", &invoice, "paid").unwrap();
        assert_eq!(event["id"], "tryton-7-paid");
        assert_eq!(event["data"]["invoice_id"], "INV-P-1-2026-10");
        assert_eq!(event["data"]["status"], "paid");
        let draft = Invoice {
            state: "draft".into(),
            ..invoice
        };
        assert!(statuses(&draft).is_empty());
    }
}

//! Events that name a thing only by the sender's own id, made whole through the id
//! registry before they are decided: an invoice status change that carries Stripe's
//! `in_...` but not the hub's invoice id gets the hub's id the registry holds for it. One the
//! registry does not know is quarantined, kept as it came: replayed once the registry has
//! learnt the id (from an event that carries both), it is found then.

use super::*;
use crate::flows::invoice_status::XREF_KIND;
use crate::hooks::Origin;
use pshub_model::FieldError;
use pshub_model::ids::InvoiceId;
use std::borrow::Cow;
use std::collections::HashMap;

impl Hub {
    /// `batch` with each invoice named only by its sender's id found, or quarantined.
    pub(super) fn find_invoices<'b>(
        &mut self,
        batch: &'b [Incoming],
    ) -> Result<Cow<'b, [Incoming]>> {
        let unfound = |incoming: &Incoming| match incoming {
            Incoming::Valid { event, .. } => matches!(
                &event.data,
                EventData::InvoiceStatus(change) if change.invoice_id.is_none()
            ),
            Incoming::Invalid { .. } => false,
        };
        if !batch.iter().any(unfound) {
            return Ok(Cow::Borrowed(batch));
        }
        // What earlier events of the batch register, before it is committed.
        let mut learnt: HashMap<(&str, &str), &InvoiceId> = HashMap::new();
        let mut made = Vec::with_capacity(batch.len());
        for incoming in batch {
            let (event, raw) = match incoming {
                Incoming::Valid { event, raw, .. } => (event, raw),
                Incoming::Invalid { .. } => {
                    made.push(incoming.clone());
                    continue;
                }
            };
            let EventData::InvoiceStatus(change) = &event.data else {
                made.push(incoming.clone());
                continue;
            };
            let source = event.source.as_str();
            match (&change.invoice_id, &change.system_invoice_id) {
                (Some(hub), Some(own)) => {
                    learnt.insert((source, own.as_str()), hub);
                    made.push(incoming.clone());
                }
                (None, Some(own)) => {
                    let found = match learnt.get(&(source, own.as_str())) {
                        Some(hub) => Some((*hub).clone()),
                        None => self
                            .reads
                            .xrefs(XREF_KIND, own)?
                            .into_iter()
                            .find(|x| x.system == source && x.system_id == *own)
                            .and_then(|x| InvoiceId::parse(&x.canonical_id).ok()),
                    };
                    made.push(match found {
                        Some(hub) => {
                            let mut event = (**event).clone();
                            if let EventData::InvoiceStatus(change) = &mut event.data {
                                change.invoice_id = Some(hub);
                            }
                            Incoming::valid(event, raw.clone())
                        }
                        None => unknown_invoice(event, raw, own),
                    });
                }
                _ => made.push(incoming.clone()),
            }
        }
        Ok(Cow::Owned(made))
    }
}

/// An invoice status change whose invoice the registry does not know, for the quarantine:
/// a mapped record as its payload came (replayed, it is mapped and looked up again), a
/// canonical event as it was sent.
fn unknown_invoice(event: &Event, raw: &str, own: &str) -> Incoming {
    let error = EventError {
        id: Some(event.id.to_string()),
        source: Some(event.source.to_string()),
        error: FieldError {
            field: "data.system_invoice_id".into(),
            problem: format!(
                "'{own}': the id registry knows no invoice of {} by this id, and the event gives no invoice_id; replay it once an event that names both has registered it",
                event.source
            ),
        },
    };
    let (raw, kind) = match Origin::record_of_stored(raw) {
        Some(record) => (record.to_string(), QUARANTINE_MAPPED_RECORD),
        None => (raw.to_string(), QUARANTINE_EVENT),
    };
    Incoming::Invalid {
        error,
        raw,
        correlation_id: None,
        kind,
        at: None,
    }
}

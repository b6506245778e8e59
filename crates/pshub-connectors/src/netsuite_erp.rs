//! NetSuite as an ERP, through its REST record service (an outbound REST target with
//! `api = "netsuite"`, `role = "erp"`), every record keyed by `externalId`, NetSuite's
//! idempotency handle: `PUT /services/rest/record/v1/<type>/eid:<externalId>` creates the
//! record or replaces the one of that external id, so a call repeated after a lost answer
//! creates nothing twice.
//!
//! - A won deal's project: its customer (`customer`, external id the hub's customer id,
//!   `companyName`), then the project (`job`, external id the project code, `entityId`,
//!   `companyName`, `parent` the customer by external id, the PSA's id in
//!   `custentity_pshub_psa_id`). The project's internal id, read back with
//!   `GET .../job/eid:<code>`, is the step's result.
//! - Lines: one invoice per project and month (`invoice`, external id
//!   `INV-<project>-<YYYY-MM>`, `entity` the project), each line an item of it (`item` the
//!   line's billing class by external id, `quantity`, `rate`, `amount`, `description`, the
//!   tax code by external id, and the hub's idempotency key in the custom column
//!   `custcol_pshub_key`). Posting reads the invoice first (its sublists expanded) and adds
//!   only the lines whose key it does not hold (a new invoice is upserted whole; one NetSuite
//!   holds gets its item list with `PATCH ...?replace=item`, its header left as it is), so a
//!   line is never on it twice; a line is answered done once a read after the write shows
//!   it, so a line lost to another process's write of the same invoice is posted again. A
//!   line NetSuite refuses is tried alone, so that it holds no other. A reversal is an item
//!   of the opposite amount. A line's id is `<invoice>/<key>`.
//! - Billing rules, costing, cost prices and invoice schedules are kept by the hub and
//!   answered done without a call.
//!
//! NetSuite's error bodies (`{"title", "status", "o:errorDetails": [{"detail",
//! "o:errorCode"}]}`) become the refusal's reason.

use crate::rest_target::{Reply, RestClient};
use pshub_engine::flows::invoice_status::invoice_id;
use pshub_engine::ports::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

/// Where the record service is.
pub const RECORDS: &str = "/services/rest/record/v1";
/// The custom transaction column that holds the hub's idempotency key of each item.
pub const KEY_COLUMN: &str = "custcol_pshub_key";

pub struct NetSuiteErp {
    client: RestClient,
}

/// NetSuite's `{"title", "o:errorDetails": [{"detail", "o:errorCode"}]}`, as one text.
fn netsuite_error(text: &str) -> String {
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let details: Vec<String> = body["o:errorDetails"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            format!(
                "{}: {}",
                d["o:errorCode"].as_str().unwrap_or("ERROR"),
                d["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    match (body["title"].as_str(), details.is_empty()) {
        (_, false) => details.join("; "),
        (Some(title), true) => title.to_string(),
        (None, true) => text.to_string(),
    }
}

/// A record's path by its external id.
fn by_external_id(record: &str, external_id: &str) -> String {
    format!(
        "{RECORDS}/{record}/eid:{}",
        crate::percent_encode(external_id)
    )
}

impl NetSuiteErp {
    pub fn new(client: RestClient) -> NetSuiteErp {
        NetSuiteErp { client }
    }

    pub fn client(&self) -> &RestClient {
        &self.client
    }

    /// A reply as an outcome: `done` reads a 2xx.
    fn outcome(&self, what: &str, reply: Reply, done: impl FnOnce(Value) -> Outcome) -> Outcome {
        reply.outcome(done, |status, text| {
            format!(
                "NetSuite refused {what} ({status}): {}",
                netsuite_error(text)
            )
        })
    }

    /// Creates or replaces the record of `external_id`.
    fn upsert(&self, record: &str, external_id: &str, body: &Value) -> Outcome {
        let path = by_external_id(record, external_id);
        let reply = self.client.call(reqwest::Method::PUT, &path, Some(body));
        self.outcome(&format!("{record} {external_id}"), reply, |_| {
            Outcome::Done(external_id.to_string())
        })
    }

    /// The record of `external_id`; `Ok(None)` when NetSuite holds none.
    fn read(&self, record: &str, external_id: &str) -> Result<Option<Value>, Outcome> {
        let path = by_external_id(record, external_id);
        match self.client.call(reqwest::Method::GET, &path, None) {
            Reply::Done(_, body) => Ok(Some(body)),
            Reply::Refused(404, _) => Ok(None),
            other => Err(
                self.outcome(&format!("reading {record} {external_id}"), other, |_| {
                    Outcome::technical("unreachable".to_string())
                }),
            ),
        }
    }

    /// The keys of the items an invoice holds, with its items; `None` when NetSuite holds no
    /// such invoice. Read with its sublists expanded (NetSuite lists only links otherwise).
    fn invoice_items(&self, invoice: &str) -> Result<Option<Vec<Value>>, Outcome> {
        let path = format!(
            "{}?expandSubResources=true",
            by_external_id("invoice", invoice)
        );
        let body = match self.client.call(reqwest::Method::GET, &path, None) {
            Reply::Done(_, body) => body,
            Reply::Refused(404, _) => return Ok(None),
            other => {
                return Err(
                    self.outcome(&format!("reading invoice {invoice}"), other, |_| {
                        Outcome::technical("unreachable".to_string())
                    }),
                );
            }
        };
        match body["item"]["items"].as_array() {
            Some(items) => Ok(Some(items.clone())),
            // Without its items the invoice's keys cannot be known: write nothing.
            None => Err(Outcome::Unknown(format!(
                "NetSuite answered invoice {invoice} without its items"
            ))),
        }
    }

    /// Posts the lines of one invoice: those it does not hold yet are added, and answered
    /// done once a read after the write shows them.
    fn post_invoice(&self, invoice: &str, lines: &[&LinePosting]) -> Vec<Outcome> {
        let all = |outcome: Outcome| lines.iter().map(|_| outcome.clone()).collect();
        let existing = match self.invoice_items(invoice) {
            Ok(existing) => existing,
            Err(outcome) => return all(outcome),
        };
        let held = |items: &[Value]| -> HashSet<String> {
            items
                .iter()
                .filter_map(|i| i[KEY_COLUMN].as_str().map(str::to_string))
                .collect()
        };
        let before = held(existing.as_deref().unwrap_or_default());
        let new: Vec<&LinePosting> = lines
            .iter()
            .copied()
            .filter(|l| !before.contains(&l.idempotency_key))
            .collect();
        let done =
            |line: &LinePosting| Outcome::Done(format!("{invoice}/{}", line.idempotency_key));
        if new.is_empty() {
            return lines.iter().map(|l| done(l)).collect();
        }
        let mut items = existing.clone().unwrap_or_default();
        items.extend(new.iter().map(|line| item(line)));
        let written = match &existing {
            // A new invoice: its header from its first line.
            None => {
                let first = new[0];
                let body = json!({
                    "externalId": invoice,
                    "entity": { "externalId": first.project_code },
                    "currency": { "refName": first.currency.to_string() },
                    "tranDate": first.date.to_string(),
                    "memo": format!("pshub {invoice}"),
                    "item": { "items": items },
                });
                self.upsert("invoice", invoice, &body)
            }
            // An invoice NetSuite holds: its items only, the header as it is.
            Some(_) => {
                let path = format!("{}?replace=item", by_external_id("invoice", invoice));
                let body = json!({ "item": { "items": items } });
                let reply = self.client.call(reqwest::Method::PATCH, &path, Some(&body));
                self.outcome(&format!("invoice {invoice}"), reply, |_| {
                    Outcome::Done(invoice.to_string())
                })
            }
        };
        match written {
            Outcome::Done(_) => {}
            // One line NetSuite refuses must not hold the others: each is tried alone.
            Outcome::Rejected(_) if new.len() > 1 => {
                return lines
                    .iter()
                    .map(|l| match before.contains(&l.idempotency_key) {
                        true => done(l),
                        false => self.post_invoice(invoice, &[l]).remove(0),
                    })
                    .collect();
            }
            other => {
                return lines
                    .iter()
                    .map(|l| match before.contains(&l.idempotency_key) {
                        true => done(l),
                        false => other.clone(),
                    })
                    .collect();
            }
        }
        // Another process may have written the invoice between the read and the write: a
        // line the invoice does not show now is posted again on its next attempt.
        let after = match self.invoice_items(invoice) {
            Ok(items) => held(items.as_deref().unwrap_or_default()),
            Err(outcome) => return all(outcome),
        };
        lines
            .iter()
            .map(|l| match after.contains(&l.idempotency_key) {
                true => done(l),
                false => Outcome::technical(format!(
                    "invoice {invoice} does not show line {} after it was written (a concurrent write); posting it again",
                    l.idempotency_key
                )),
            })
            .collect()
    }
}

/// A line as an invoice item, its key in the custom column.
fn item(line: &LinePosting) -> Value {
    json!({
        "item": { "externalId": line.billing_class },
        "quantity": line.quantity.to_string(),
        "rate": line.rate.to_string(),
        "amount": line.amount.to_string(),
        "description": format!("{} {} by {} on {}", line.kind, line.source_id, line.worker_id, line.date),
        "taxCode": { "externalId": line.tax_code },
        KEY_COLUMN: line.idempotency_key,
    })
}

impl Erp for NetSuiteErp {
    fn provision_project(&self, request: &ProjectRequest) -> Outcome {
        let customer = json!({
            "externalId": request.customer_id,
            "companyName": request.customer_name,
            "currency": { "refName": request.currency.to_string() },
        });
        match self.upsert("customer", &request.customer_id, &customer) {
            Outcome::Done(_) => {}
            other => return other,
        }
        let job = json!({
            "externalId": request.project_code,
            "entityId": request.project_code,
            "companyName": request.name,
            "parent": { "externalId": request.customer_id },
            "currency": { "refName": request.currency.to_string() },
            "custentity_pshub_psa_id": request.psa_id,
        });
        match self.upsert("job", &request.project_code, &job) {
            Outcome::Done(_) => {}
            other => return other,
        }
        match self.read("job", &request.project_code) {
            Ok(Some(job)) => match job["id"].as_str() {
                Some(id) if !id.is_empty() => Outcome::Done(id.to_string()),
                _ => Outcome::Unknown(format!(
                    "NetSuite holds job {} without an internal id",
                    request.project_code
                )),
            },
            // Written and then not found: the write may not be visible yet; ask again.
            Ok(None) => Outcome::Unknown(format!(
                "NetSuite does not show job {} after writing it",
                request.project_code
            )),
            Err(outcome) => outcome,
        }
    }

    fn attach_billing_rules(&self, request: &BillingRulesRequest) -> Outcome {
        // The hub prices every line; NetSuite keeps no billing rules of its.
        Outcome::Done(request.erp_id.clone())
    }

    fn update_costing(&self, request: &CostingRequest) -> Outcome {
        crate::kept_by_the_hub::costing(request)
    }

    fn update_cost_price(&self, request: &CostPriceRequest) -> Outcome {
        crate::kept_by_the_hub::cost_price(request)
    }

    fn issue_schedule(&self, request: &ScheduleRequest) -> Outcome {
        crate::kept_by_the_hub::schedule(request)
    }

    fn post_lines(&self, lines: &[LinePosting]) -> Vec<Outcome> {
        // By invoice, each answered in the lines' order.
        let mut by_invoice: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (at, line) in lines.iter().enumerate() {
            by_invoice
                .entry(invoice_id(&line.project_code, line.date))
                .or_default()
                .push(at);
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; lines.len()];
        for (invoice, ats) in by_invoice {
            let of_invoice: Vec<&LinePosting> = ats.iter().map(|&at| &lines[at]).collect();
            for (at, outcome) in ats
                .into_iter()
                .zip(self.post_invoice(&invoice, &of_invoice))
            {
                outcomes[at] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::technical("no answer for the line".to_string())))
            .collect()
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        // Every write is an upsert by external id, and a line is added only when its
        // invoice does not hold its key: writing again creates nothing.
        keys.iter().map(|_| Lookup::NotApplied).collect()
    }

    fn describe(&self) -> Value {
        self.client.describe("netsuite")
    }
}

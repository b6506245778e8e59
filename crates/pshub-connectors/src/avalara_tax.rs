//! Avalara AvaTax as the tax engine, through its REST API v2 (an outbound REST target with
//! `api = "avalara"`, `role = "tax"`, HTTP Basic with the account id and license key).
//!
//! Each new invoice line is one `POST /api/v2/transactions/create` in AvaTax's published
//! `CreateTransactionModel` shape: a `SalesInvoice` of the target's `company_code`, not
//! committed, whose `code` is the step's idempotency key (hashed when longer than AvaTax's 50
//! characters; the key itself in `referenceCode`), with one line carrying the amount,
//! the hub's tax code for it (`taxCode`) and what is sold (`itemCode`, the line's billing
//! class), taxed at the company location `location_code`. The tax code of the answer's
//! line (`lines[0].taxCode`) is what AvaTax applied: the step's result, which the ERP line
//! carries and which the flow compares with the configured one.
//!
//! An uncommitted document created again under the same code replaces the first, so a call
//! whose answer was lost is safely made again: the lookup after an unknown outcome answers
//! "not applied". AvaTax's error bodies (`{"error": {"code", "message", "details"}}`) become
//! the refusal's reason.

use crate::rest_target::RestClient;
use pshub_engine::ports::{Lookup, Outcome, Tax, TaxRequest};
use serde_json::{Value, json};

/// Where transactions are created.
pub const CREATE_TRANSACTION: &str = "/api/v2/transactions/create";
/// The longest document code AvaTax takes.
const MAX_CODE: usize = 50;

/// The document code of an idempotency key: the key itself when AvaTax can hold it, else a
/// fixed prefix and a hash of it, the same for the same key (the full key goes in
/// `referenceCode`).
pub fn document_code(idempotency_key: &str) -> String {
    if idempotency_key.len() <= MAX_CODE {
        idempotency_key.to_string()
    } else {
        format!(
            "pshub-{:016x}",
            pshub_engine::fingerprint::fingerprint(&[idempotency_key])
        )
    }
}

pub struct AvalaraTax {
    client: RestClient,
    company_code: String,
    location_code: Option<String>,
}

impl AvalaraTax {
    pub fn new(client: RestClient, company_code: String, location_code: Option<String>) -> Self {
        AvalaraTax {
            client,
            company_code,
            location_code,
        }
    }

    pub fn client(&self) -> &RestClient {
        &self.client
    }

    /// The `CreateTransactionModel` of one line.
    pub fn transaction(&self, request: &TaxRequest) -> Value {
        let mut body = json!({
            "type": "SalesInvoice",
            "companyCode": self.company_code,
            "code": document_code(&request.idempotency_key),
            "referenceCode": request.idempotency_key,
            "date": request.date.to_string(),
            "customerCode": request.project_code,
            "purchaseOrderNo": request.project_code,
            "currencyCode": request.currency.to_string(),
            "commit": false,
            "description": request.description,
            "lines": [{
                "number": "1",
                "quantity": request.quantity.to_string(),
                "amount": request.amount.to_string(),
                "taxCode": request.tax_code,
                "itemCode": request.item_code,
                "description": request.description,
                "ref1": request.source_id,
                "ref2": request.worker_id,
            }],
        });
        if let Some(location) = &self.location_code {
            body["addresses"] = json!({ "singleLocation": { "locationCode": location } });
        }
        body
    }
}

/// AvaTax's `{"error": {"code", "message", "details": [{"description"}]}}`, as one text.
fn avatax_error(text: &str) -> String {
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let error = &body["error"];
    let Some(code) = error["code"].as_str() else {
        return text.to_string();
    };
    let mut said = format!("{code}: {}", error["message"].as_str().unwrap_or(""));
    for detail in error["details"].as_array().into_iter().flatten() {
        if let Some(description) = detail["description"].as_str()
            && !description.is_empty()
        {
            said.push_str(&format!(" ({description})"));
        }
    }
    said
}

impl Tax for AvalaraTax {
    fn determine_tax(&self, request: &TaxRequest) -> Outcome {
        let body = self.transaction(request);
        let key = &request.idempotency_key;
        self.client
            .call(reqwest::Method::POST, CREATE_TRANSACTION, Some(&body))
            .outcome(
                |answer| match answer["lines"][0]["taxCode"].as_str() {
                    Some(code) if !code.is_empty() => Outcome::Done(code.to_string()),
                    // A 2xx without the line's tax code: the document may be there; ask again.
                    _ => {
                        Outcome::Unknown(format!("AvaTax answered {key} without lines[0].taxCode"))
                    }
                },
                |status, text| {
                    format!(
                        "AvaTax refused transaction {key} ({status}): {}",
                        avatax_error(text)
                    )
                },
            )
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        // An uncommitted document made again under its code replaces itself.
        keys.iter().map(|_| Lookup::NotApplied).collect()
    }

    fn describe(&self) -> Value {
        let mut described = self.client.describe("avalara");
        described["company_code"] = json!(self.company_code);
        described["location_code"] = json!(self.location_code);
        described
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_longer_than_avatax_takes_is_hashed_to_one_code() {
        let short = "pshub:time_to_bill:tax_line:time:T-1:1";
        assert_eq!(document_code(short), short);
        let long = "pshub:time_to_bill:tax_line:time:0b5f6c3e-2a41-4d7e-9d1c-7f3a9e2b4c11:1";
        let code = document_code(long);
        assert!(
            code.len() <= MAX_CODE && code.starts_with("pshub-"),
            "{code}"
        );
        assert_eq!(code, document_code(long));
        assert_ne!(code, document_code(&long.replace(":1", ":2")));
    }

    #[test]
    fn avatax_errors_read_as_their_code_message_and_details() {
        let body = r#"{"error":{"code":"InvalidTaxCode","message":"Tax code is not valid.","details":[{"code":"InvalidTaxCode","description":"The tax code 'X1' does not exist.","severity":"Error"}]}}"#;
        assert_eq!(
            avatax_error(body),
            "InvalidTaxCode: Tax code is not valid. (The tax code 'X1' does not exist.)"
        );
        assert_eq!(avatax_error("plain"), "plain");
    }
}

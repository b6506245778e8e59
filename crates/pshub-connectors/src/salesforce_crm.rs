//! Salesforce as the CRM, through its REST API (an outbound REST target with
//! `api = "salesforce"`): the hub's write-backs in Salesforce's published sObject shape.
//!
//! - The PSA engagement and ERP project of a won opportunity are written to custom fields
//!   of the Opportunity: `PATCH /services/data/v60.0/sobjects/Opportunity/{Id}` with
//!   `PSA_Engagement_Id__c`, `ERP_Project_Id__c` and `Pshub_Project_Code__c` (204).
//! - An invoice's status is upserted by external id into the custom object the firm keeps
//!   invoices in: `PATCH /services/data/v60.0/sobjects/Pshub_Invoice__c/Pshub_Invoice_Id__c/{id}`
//!   with `Status__c`, `Status_At__c` and `Project_Code__c` (201 created, 204 updated).
//!
//! Both are upserts that set the same fields to the same values when repeated, so a call
//! whose answer was lost is safely made again: the lookup after an unknown outcome answers
//! "not applied", and the repeat changes nothing. Salesforce's error bodies
//! (`[{"message", "errorCode"}]`) become the refusal's reason.

use crate::rest_target::RestClient;
use pshub_engine::ports::{Crm, InvoiceStatusRequest, Lookup, Outcome, WriteBackRequest};
use serde_json::{Value, json};

/// The API version the adapter speaks.
pub const API: &str = "/services/data/v60.0";

pub struct SalesforceCrm {
    client: RestClient,
}

impl SalesforceCrm {
    pub fn new(client: RestClient) -> SalesforceCrm {
        SalesforceCrm { client }
    }

    pub fn client(&self) -> &RestClient {
        &self.client
    }

    fn patch(&self, path: &str, body: Value, id: String) -> Outcome {
        self.client
            .call(reqwest::Method::PATCH, path, Some(&body))
            .outcome(
                |answer| Outcome::Done(answer["id"].as_str().map_or(id, str::to_string)),
                |status, text| {
                    format!(
                        "Salesforce refused {path} ({status}): {}",
                        salesforce_error(text)
                    )
                },
            )
    }
}

/// Salesforce's `[{"message": ..., "errorCode": ...}]`, as one text.
fn salesforce_error(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(errors)) if !errors.is_empty() => errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["errorCode"].as_str().unwrap_or("ERROR"),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => text.to_string(),
    }
}

impl Crm for SalesforceCrm {
    fn write_back_ids(&self, request: &WriteBackRequest) -> Outcome {
        self.patch(
            &format!(
                "{API}/sobjects/Opportunity/{}",
                crate::percent_encode(&request.opportunity_id)
            ),
            json!({
                "PSA_Engagement_Id__c": request.psa_id,
                "ERP_Project_Id__c": request.erp_id,
                "Pshub_Project_Code__c": request.project_code,
            }),
            request.opportunity_id.clone(),
        )
    }

    fn update_invoice_status(&self, request: &InvoiceStatusRequest) -> Outcome {
        self.patch(
            &format!(
                "{API}/sobjects/Pshub_Invoice__c/Pshub_Invoice_Id__c/{}",
                crate::percent_encode(&request.invoice_id)
            ),
            json!({
                "Status__c": request.status,
                "Status_At__c": request.at,
                "Project_Code__c": request.project_code,
            }),
            request.invoice_id.clone(),
        )
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        // Every call is an upsert of the same fields: making it again creates nothing.
        keys.iter().map(|_| Lookup::NotApplied).collect()
    }

    fn describe(&self) -> Value {
        self.client.describe("salesforce")
    }
}

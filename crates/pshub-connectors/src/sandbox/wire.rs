//! The sandbox's HTTP/JSON bodies, shared by its server and its client, and the mapping
//! from the engine's typed requests to them. Decimals and dates travel as strings.

use pshub_engine::ports::{
    BillingRulesRequest, CostPriceRequest, CostingRequest, EngagementRequest, InvoiceStatusRequest,
    LinePosting, ProjectRequest, ResourceRequest, ScheduleRequest, WriteBackRequest,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngagementBody {
    pub project_code: String,
    pub name: String,
    pub opportunity_id: String,
    pub customer_id: String,
    pub customer_name: String,
    pub start: String,
    pub end: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectBody {
    pub project_code: String,
    pub name: String,
    pub legal_entity: String,
    pub currency: String,
    pub psa_id: String,
    pub customer_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BillingRulesBody {
    pub project_code: String,
    pub erp_id: String,
    pub contract: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineBody {
    pub idempotency_key: String,
    pub kind: String,
    pub project_code: String,
    pub source_id: String,
    pub posting: u32,
    pub worker_id: String,
    pub date: String,
    pub quantity: Decimal,
    pub rate: Decimal,
    pub rate_currency: String,
    pub amount: Decimal,
    pub currency: String,
    pub tax_code: String,
    pub billing_class: String,
    pub reverses_erp_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteBackBody {
    pub opportunity_id: String,
    pub project_code: String,
    pub psa_id: String,
    pub erp_id: String,
}

/// What a create answers: the id, or why it was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl From<&super::Answer> for AnswerBody {
    fn from(answer: &super::Answer) -> Self {
        match answer {
            super::Answer::Created(id) => AnswerBody {
                id: Some(id.clone()),
                refused: None,
            },
            super::Answer::Refused(why) => AnswerBody {
                id: None,
                refused: Some(why.clone()),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupBody {
    pub keys: Vec<String>,
}

/// One answer per key: the id it was first answered with, or null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupAnswer {
    pub found: Vec<Option<String>>,
}

impl From<&EngagementRequest> for EngagementBody {
    fn from(r: &EngagementRequest) -> Self {
        EngagementBody {
            project_code: r.project_code.clone(),
            name: r.name.clone(),
            opportunity_id: r.opportunity_id.clone(),
            customer_id: r.customer_id.clone(),
            customer_name: r.customer_name.clone(),
            start: r.start.to_string(),
            end: r.end.map(|d| d.to_string()),
        }
    }
}

impl From<&ProjectRequest> for ProjectBody {
    fn from(r: &ProjectRequest) -> Self {
        ProjectBody {
            project_code: r.project_code.clone(),
            name: r.name.clone(),
            legal_entity: r.legal_entity.clone(),
            currency: r.currency.code().to_string(),
            psa_id: r.psa_id.clone(),
            customer_id: r.customer_id.clone(),
        }
    }
}

impl From<&BillingRulesRequest> for BillingRulesBody {
    fn from(r: &BillingRulesRequest) -> Self {
        BillingRulesBody {
            project_code: r.project_code.clone(),
            erp_id: r.erp_id.clone(),
            contract: serde_json::to_value(&r.contract).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl From<&LinePosting> for LineBody {
    fn from(l: &LinePosting) -> Self {
        LineBody {
            idempotency_key: l.idempotency_key.clone(),
            kind: l.kind.to_string(),
            project_code: l.project_code.clone(),
            source_id: l.source_id.clone(),
            posting: l.posting,
            worker_id: l.worker_id.clone(),
            date: l.date.to_string(),
            quantity: l.quantity,
            rate: l.rate,
            rate_currency: l.rate_currency.code().to_string(),
            amount: l.amount,
            currency: l.currency.code().to_string(),
            tax_code: l.tax_code.clone(),
            billing_class: l.billing_class.clone(),
            reverses_erp_id: l.reverses_erp_id.clone(),
        }
    }
}

impl From<&WriteBackRequest> for WriteBackBody {
    fn from(r: &WriteBackRequest) -> Self {
        WriteBackBody {
            opportunity_id: r.opportunity_id.clone(),
            project_code: r.project_code.clone(),
            psa_id: r.psa_id.clone(),
            erp_id: r.erp_id.clone(),
        }
    }
}

/// A worker's resource status, as the PSA keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceBody {
    pub worker_id: String,
    pub status: String,
    pub effective_date: String,
    pub role: Option<String>,
    pub region: Option<String>,
}

/// A worker's costing attributes, as the ERP keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostingBody {
    pub worker_id: String,
    pub effective_date: String,
    pub legal_entity: Option<String>,
    pub cost_center: Option<String>,
    pub grade: Option<String>,
}

impl From<&ResourceRequest> for ResourceBody {
    fn from(r: &ResourceRequest) -> Self {
        ResourceBody {
            worker_id: r.worker_id.clone(),
            status: r.status.clone(),
            effective_date: r.effective_date.to_string(),
            role: r.role.clone(),
            region: r.region.clone(),
        }
    }
}

/// A worker's hourly cost from a date, as the ERP keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostPriceBody {
    pub worker_id: String,
    pub valid_from: String,
    pub hourly_cost: Decimal,
    pub currency: String,
}

impl From<&CostPriceRequest> for CostPriceBody {
    fn from(r: &CostPriceRequest) -> Self {
        CostPriceBody {
            worker_id: r.worker_id.clone(),
            valid_from: r.valid_from.to_string(),
            hourly_cost: r.hourly_cost,
            currency: r.currency.to_string(),
        }
    }
}

impl From<&CostingRequest> for CostingBody {
    fn from(r: &CostingRequest) -> Self {
        CostingBody {
            worker_id: r.worker_id.clone(),
            effective_date: r.effective_date.to_string(),
            legal_entity: r.legal_entity.clone(),
            cost_center: r.cost_center.clone(),
            grade: r.grade.clone(),
        }
    }
}

/// An invoice's status, as the CRM keeps it on the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceStatusBody {
    pub invoice_id: String,
    pub project_code: Option<String>,
    pub status: String,
    pub at: String,
}

impl From<&InvoiceStatusRequest> for InvoiceStatusBody {
    fn from(r: &InvoiceStatusRequest) -> Self {
        InvoiceStatusBody {
            invoice_id: r.invoice_id.clone(),
            project_code: r.project_code.clone(),
            status: r.status.clone(),
            at: r.at.clone(),
        }
    }
}

/// A contract's invoice schedule, as the ERP keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleBody {
    pub project_code: String,
    pub contract_id: String,
    pub version: u32,
    pub effective_from: String,
    pub billing_period: String,
    pub end: Option<String>,
    pub milestones: Option<Vec<serde_json::Value>>,
}

impl From<&ScheduleRequest> for ScheduleBody {
    fn from(r: &ScheduleRequest) -> Self {
        ScheduleBody {
            project_code: r.project_code.clone(),
            contract_id: r.contract_id.clone(),
            version: r.version,
            effective_from: r.effective_from.to_string(),
            billing_period: r.billing_period.clone(),
            end: r.end.map(|d| d.to_string()),
            milestones: r.milestones.as_ref().map(|list| {
                list.iter()
                    .map(|(id, name, amount)| serde_json::json!({ "milestone_id": id, "name": name, "amount": amount.to_string() }))
                    .collect()
            }),
        }
    }
}

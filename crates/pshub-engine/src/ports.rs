//! What the engine needs from the systems it calls: one port per kind of system, each with
//! typed, idempotent operations. Connectors implement them; the engine never sees a vendor
//! format. A deployment names its systems in configuration and may have several of a kind
//! (two ERPs during a cut-over); flows address a system by that name.

use chrono::NaiveDate;
use pshub_model::Currency;
use pshub_model::records::Contract;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// An id a target assigned to what it created.
pub type ExternalId = String;

/// What a target answered to one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T = ExternalId> {
    /// Done; the target's id for the record.
    Done(T),
    /// Refused on business grounds (an unknown project): a case for the owning team.
    Rejected(String),
    /// Timeout before sending, 5xx, refused connection: nothing was written; retry later.
    Technical {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request may have been applied and the answer was lost (a reply that never came):
    /// the next attempt asks the target before it creates anything.
    Unknown(String),
}

impl<T> Outcome<T> {
    pub fn technical(message: impl Into<String>) -> Self {
        Outcome::Technical {
            message: message.into(),
            retry_after: None,
        }
    }

    /// What went wrong, or the empty text for a success.
    pub fn message(self) -> String {
        match self {
            Outcome::Done(_) => String::new(),
            Outcome::Rejected(m) | Outcome::Unknown(m) => m,
            Outcome::Technical { message, .. } => message,
        }
    }

    /// Whether the target failed to answer properly (not a business refusal).
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Technical { .. } | Outcome::Unknown(_))
    }
}

/// What a target says of an idempotency key it was asked about.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// It applied the key before; this is what it answered then.
    Applied(ExternalId),
    /// It has never applied the key: creating is safe.
    NotApplied,
    /// It could not say (down, timed out): ask again later.
    Failed(String),
}

/// An invoice line as the ERP receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePosting {
    pub idempotency_key: String,
    pub kind: &'static str,
    pub project_code: String,
    pub source_id: String,
    /// The n-th line of its entry.
    pub posting: u32,
    pub worker_id: String,
    pub date: NaiveDate,
    pub quantity: Decimal,
    pub rate: Decimal,
    pub rate_currency: Currency,
    pub amount: Decimal,
    pub currency: Currency,
    pub tax_code: String,
    pub billing_class: String,
    /// For a reversal: the ERP id of the line it cancels.
    pub reverses_erp_id: Option<String>,
    /// The worker's role the line was priced for (time lines).
    pub role: Option<String>,
}

/// An engagement to create in the PSA for a won deal.
#[derive(Debug, Clone, PartialEq)]
pub struct EngagementRequest {
    pub idempotency_key: String,
    pub project_code: String,
    pub name: String,
    pub opportunity_id: String,
    pub customer_id: String,
    pub customer_name: String,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
}

/// A project to provision in the ERP, carrying the PSA's engagement id.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRequest {
    pub idempotency_key: String,
    pub project_code: String,
    pub name: String,
    pub legal_entity: String,
    pub currency: Currency,
    pub psa_id: String,
    pub customer_id: String,
    pub customer_name: String,
}

/// The contract's billing rules, attached to the ERP project.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingRulesRequest {
    pub idempotency_key: String,
    pub project_code: String,
    pub erp_id: String,
    pub contract: Contract,
}

/// The ids the PSA and ERP gave a won deal, written back to the CRM opportunity.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBackRequest {
    pub idempotency_key: String,
    pub opportunity_id: String,
    pub project_code: String,
    pub psa_id: String,
    pub erp_id: String,
}

/// A worker's resource record in the PSA: whether they can be staffed, from which date.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRequest {
    pub idempotency_key: String,
    pub worker_id: String,
    /// `active`, `on_leave` or `terminated`.
    pub status: String,
    pub effective_date: NaiveDate,
    pub role: Option<String>,
    pub region: Option<String>,
}

/// A worker's costing attributes in the ERP, from a date.
#[derive(Debug, Clone, PartialEq)]
pub struct CostingRequest {
    pub idempotency_key: String,
    pub worker_id: String,
    /// `active`, `on_leave` or `terminated` from `effective_date`.
    pub status: String,
    pub effective_date: NaiveDate,
    pub legal_entity: Option<String>,
    pub cost_center: Option<String>,
    pub grade: Option<String>,
}

/// A worker's hourly cost from a date, for the ERP's costing of their time.
#[derive(Debug, Clone, PartialEq)]
pub struct CostPriceRequest {
    pub idempotency_key: String,
    pub worker_id: String,
    pub valid_from: NaiveDate,
    pub hourly_cost: Decimal,
    pub currency: Currency,
}

/// An invoice's status, written back to the CRM account.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceStatusRequest {
    pub idempotency_key: String,
    pub invoice_id: String,
    pub project_code: Option<String>,
    pub status: String,
    pub at: String,
}

/// A new version of a contract's invoice schedule, issued to the ERP when an amendment
/// changes it: from `effective_from`, the milestones (when replaced) and the end (when
/// moved); time and materials bills per `billing_period`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRequest {
    pub idempotency_key: String,
    pub project_code: String,
    pub contract_id: String,
    pub version: u32,
    pub effective_from: NaiveDate,
    pub billing_period: String,
    /// (milestone id, name, amount) in the contract currency, when the amendment replaced
    /// the list.
    pub milestones: Option<Vec<(String, String, Decimal)>>,
    pub end: Option<NaiveDate>,
}

/// An invoice line for the tax engine to determine its tax: the tax code the hub expects
/// (its legal entity's), which the tax engine confirms or replaces with the one it applies.
#[derive(Debug, Clone, PartialEq)]
pub struct TaxRequest {
    /// Also the tax document's code: asking again replaces the same document.
    pub idempotency_key: String,
    pub project_code: String,
    pub source_id: String,
    pub worker_id: String,
    pub date: NaiveDate,
    pub quantity: Decimal,
    pub amount: Decimal,
    pub currency: Currency,
    /// The tax code the hub's configuration gives the line.
    pub tax_code: String,
    /// What is sold, as the tax engine's item catalog knows it: the line's billing class.
    pub item_code: String,
    pub description: String,
}

/// A business event for the hub's outbound stream.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishRequest {
    pub idempotency_key: String,
    pub event_type: String,
    pub data: serde_json::Value,
}

/// One operation a step asks of its system.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    PostLine(LinePosting),
    CreateEngagement(EngagementRequest),
    ProvisionProject(ProjectRequest),
    AttachBillingRules(BillingRulesRequest),
    WriteBackIds(WriteBackRequest),
    Publish(PublishRequest),
    UpdateResource(ResourceRequest),
    UpdateCosting(CostingRequest),
    UpdateCostPrice(CostPriceRequest),
    UpdateInvoiceStatus(InvoiceStatusRequest),
    IssueSchedule(ScheduleRequest),
    DetermineTax(TaxRequest),
}

impl Request {
    pub fn idempotency_key(&self) -> &str {
        match self {
            Request::PostLine(r) => &r.idempotency_key,
            Request::CreateEngagement(r) => &r.idempotency_key,
            Request::ProvisionProject(r) => &r.idempotency_key,
            Request::AttachBillingRules(r) => &r.idempotency_key,
            Request::WriteBackIds(r) => &r.idempotency_key,
            Request::Publish(r) => &r.idempotency_key,
            Request::UpdateResource(r) => &r.idempotency_key,
            Request::UpdateCosting(r) => &r.idempotency_key,
            Request::UpdateCostPrice(r) => &r.idempotency_key,
            Request::UpdateInvoiceStatus(r) => &r.idempotency_key,
            Request::IssueSchedule(r) => &r.idempotency_key,
            Request::DetermineTax(r) => &r.idempotency_key,
        }
    }

    pub fn operation(&self) -> &'static str {
        match self {
            Request::PostLine(_) => "post_line",
            Request::CreateEngagement(_) => "create_engagement",
            Request::ProvisionProject(_) => "provision_project",
            Request::AttachBillingRules(_) => "attach_billing_rules",
            Request::WriteBackIds(_) => "write_back_ids",
            Request::Publish(_) => "publish",
            Request::UpdateResource(_) => "update_resource",
            Request::UpdateCosting(_) => "update_costing",
            Request::UpdateCostPrice(_) => "update_cost_price",
            Request::UpdateInvoiceStatus(_) => "update_invoice_status",
            Request::IssueSchedule(_) => "issue_schedule",
            Request::DetermineTax(_) => "determine_tax",
        }
    }
}

/// The ERP as the engine sees it. Calls block and are made from the system's own delivery
/// worker, never while the hub is locked.
pub trait Erp: Send + Sync {
    /// Creates the project, or answers the id it gave the same key before.
    fn provision_project(&self, request: &ProjectRequest) -> Outcome;
    fn attach_billing_rules(&self, request: &BillingRulesRequest) -> Outcome;
    /// Records a worker's costing attributes from a date.
    fn update_costing(&self, request: &CostingRequest) -> Outcome;
    /// Records a worker's hourly cost from a date (dated cost prices).
    fn update_cost_price(&self, request: &CostPriceRequest) -> Outcome;
    /// Records a contract's invoice schedule as of a version.
    fn issue_schedule(&self, request: &ScheduleRequest) -> Outcome;
    /// Posts lines, one answer per line in order.
    fn post_lines(&self, lines: &[LinePosting]) -> Vec<Outcome>;
    /// Whether each key was applied, one answer per key in order.
    fn lookup(&self, keys: &[&str]) -> Vec<Lookup>;
    /// What the target says of itself, for operators (counts, kind); never credentials.
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// What the ERP holds, for reconciliation: up to `limit` records of `collection`
    /// (`lines`, `billing-rules`) after position `after`, each one JSON object with its
    /// idempotency key, and the position to read on from (`None` at the end).
    fn read_back(&self, collection: &str, after: u64, limit: u32) -> ReadBack {
        let _ = (after, limit);
        Err(format!("this ERP cannot be read back ({collection})"))
    }
}

/// A page of what a system holds, or why it cannot be read.
pub type ReadBack = Result<(Vec<serde_json::Value>, Option<u64>), String>;

/// The PSA: engagements for won deals.
pub trait Psa: Send + Sync {
    fn create_engagement(&self, request: &EngagementRequest) -> Outcome;
    /// Records a worker's resource status from a date.
    fn update_resource(&self, request: &ResourceRequest) -> Outcome;
    fn lookup(&self, keys: &[&str]) -> Vec<Lookup>;
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// The CRM: what the other systems did with its deals.
pub trait Crm: Send + Sync {
    fn write_back_ids(&self, request: &WriteBackRequest) -> Outcome;
    /// Records an invoice's status on the account.
    fn update_invoice_status(&self, request: &InvoiceStatusRequest) -> Outcome;
    fn lookup(&self, keys: &[&str]) -> Vec<Lookup>;
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// The tax engine: the tax of each invoice line, before the ERP is sent it.
pub trait Tax: Send + Sync {
    /// Records the line's tax document; done answers the tax code the engine applied.
    fn determine_tax(&self, request: &TaxRequest) -> Outcome;
    fn lookup(&self, keys: &[&str]) -> Vec<Lookup>;
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// A configured system the hub calls, by its kind.
#[derive(Clone)]
pub enum Port {
    Erp(Arc<dyn Erp>),
    Psa(Arc<dyn Psa>),
    Crm(Arc<dyn Crm>),
    Tax(Arc<dyn Tax>),
    /// The hub's own outbound stream: publishing is written by the step's own commit.
    Outbound,
}

impl Port {
    pub fn kind(&self) -> &'static str {
        match self {
            Port::Erp(_) => "erp",
            Port::Psa(_) => "psa",
            Port::Crm(_) => "crm",
            Port::Tax(_) => "tax",
            Port::Outbound => "outbound",
        }
    }

    /// Sends `requests`, one answer per request in order: lines in one batch, the rest one
    /// by one. A request this kind of system does not take is refused, naming both.
    pub fn call(&self, system: &str, requests: &[Request]) -> Vec<Outcome> {
        let mut answers: Vec<Option<Outcome>> = vec![None; requests.len()];
        let mut lines = Vec::new();
        let mut line_at = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let answer = match (self, request) {
                (Port::Erp(_), Request::PostLine(line)) => {
                    lines.push(line.clone());
                    line_at.push(i);
                    continue;
                }
                (Port::Erp(erp), Request::ProvisionProject(r)) => erp.provision_project(r),
                (Port::Erp(erp), Request::AttachBillingRules(r)) => erp.attach_billing_rules(r),
                (Port::Erp(erp), Request::UpdateCosting(r)) => erp.update_costing(r),
                (Port::Erp(erp), Request::UpdateCostPrice(r)) => erp.update_cost_price(r),
                (Port::Erp(erp), Request::IssueSchedule(r)) => erp.issue_schedule(r),
                (Port::Psa(psa), Request::CreateEngagement(r)) => psa.create_engagement(r),
                (Port::Psa(psa), Request::UpdateResource(r)) => psa.update_resource(r),
                (Port::Crm(crm), Request::WriteBackIds(r)) => crm.write_back_ids(r),
                (Port::Crm(crm), Request::UpdateInvoiceStatus(r)) => crm.update_invoice_status(r),
                (Port::Tax(tax), Request::DetermineTax(r)) => tax.determine_tax(r),
                (Port::Outbound, Request::Publish(r)) => Outcome::Done(r.idempotency_key.clone()),
                (port, request) => Outcome::Rejected(format!(
                    "system {system} is configured as a {} and cannot {}",
                    port.kind(),
                    request.operation()
                )),
            };
            answers[i] = Some(answer);
        }
        if let (Port::Erp(erp), false) = (self, lines.is_empty()) {
            let mut posted = erp.post_lines(&lines).into_iter();
            for i in line_at {
                answers[i] = Some(posted.next().unwrap_or_else(|| {
                    Outcome::technical("the ERP gave fewer answers than lines")
                }));
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Outcome::technical("no answer")))
            .collect()
    }

    /// Asks whether each key was applied.
    pub fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        match self {
            Port::Erp(erp) => erp.lookup(keys),
            Port::Psa(psa) => psa.lookup(keys),
            Port::Crm(crm) => crm.lookup(keys),
            Port::Tax(tax) => tax.lookup(keys),
            // The outbound stream is written in the step's own commit: never half done.
            Port::Outbound => keys.iter().map(|_| Lookup::NotApplied).collect(),
        }
    }

    pub fn describe(&self) -> serde_json::Value {
        match self {
            Port::Erp(erp) => erp.describe(),
            Port::Psa(psa) => psa.describe(),
            Port::Crm(crm) => crm.describe(),
            Port::Tax(tax) => tax.describe(),
            Port::Outbound => serde_json::json!({ "kind": "outbound stream" }),
        }
    }
}

/// The systems of a deployment by name. `hub` (the outbound stream) is always there.
#[derive(Clone)]
pub struct Systems {
    ports: BTreeMap<String, Port>,
}

/// The name of the hub's own outbound stream among the systems.
pub const HUB: &str = "hub";

impl Default for Systems {
    fn default() -> Self {
        let mut ports = BTreeMap::new();
        ports.insert(HUB.to_string(), Port::Outbound);
        Systems { ports }
    }
}

impl Systems {
    pub fn with(mut self, name: &str, port: Port) -> Self {
        self.ports.insert(name.to_string(), port);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Port> {
        self.ports.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Port)> {
        self.ports.iter()
    }
}

//! What the engine needs from the systems it posts to. Connectors implement these traits;
//! the engine never sees a vendor format.

use chrono::NaiveDate;
use pshub_model::Currency;
use rust_decimal::Decimal;
use std::time::Duration;

/// An invoice line as the ERP receives it, with the idempotency key that makes a
/// re-send harmless.
#[derive(Debug, Clone)]
pub struct LinePosting {
    pub idempotency_key: String,
    pub kind: &'static str,
    pub project_code: String,
    pub source_id: String,
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
}

#[derive(Debug, Clone)]
pub struct ProjectPosting {
    pub idempotency_key: String,
    pub project_code: String,
    pub name: String,
    pub legal_entity: String,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ErpError {
    /// Timeout, 5xx, malformed answer: retried on the schedule, then dead-lettered.
    Technical {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The ERP refused the record on business grounds (unknown project): an exception case.
    Rejected { reason: String },
}

/// The ERP as the engine sees it. Calls are blocking and made from the delivery worker,
/// never while the engine holds its state lock.
pub trait ErpPort: Send + Sync {
    /// Creates or finds the project; answers the ERP's own id.
    fn ensure_project(&self, project: &ProjectPosting) -> Result<String, ErpError>;
    /// Posts lines, one answer per line in order: the ERP's id for it, or why not.
    fn post_lines(&self, lines: &[LinePosting]) -> Vec<Result<String, ErpError>>;
    /// What the target says of itself, for operators (counts, kind); never credentials.
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

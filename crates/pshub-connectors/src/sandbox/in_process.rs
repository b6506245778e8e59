//! The sandbox systems as the engine's ports, called in the hub's own process. Faults behave
//! as they would over a network: a failure writes nothing (technical), a timeout writes
//! nothing but leaves the caller unsure (unknown), a lost reply writes and leaves the
//! caller unsure (unknown).

use super::wire::*;
use super::{Answer, Fault, Sandbox, System};
use pshub_engine::ports::*;
use std::sync::Arc;

/// One sandbox system of the hub's process, as a port.
#[derive(Clone)]
pub struct InProcess {
    pub sandbox: Arc<Sandbox>,
    pub system: System,
}

impl InProcess {
    /// The ports of a sandbox: its PSA, ERP and CRM, under their usual names.
    pub fn systems(sandbox: &Arc<Sandbox>, systems: Systems) -> Systems {
        let port = |system| InProcess {
            sandbox: sandbox.clone(),
            system,
        };
        systems
            .with("psa", Port::Psa(Arc::new(port(System::Psa))))
            .with("erp", Port::Erp(Arc::new(port(System::Erp))))
            .with("crm", Port::Crm(Arc::new(port(System::Crm))))
    }

    /// Runs `write` under the dice: one answer per request.
    fn call(
        &self,
        count: usize,
        write: impl FnOnce() -> std::io::Result<Vec<Answer>>,
    ) -> Vec<Outcome> {
        let fault = self.sandbox.fault(self.system);
        let all = |outcome: Outcome| vec![outcome; count];
        match fault {
            Some(Fault::Fail { retry_after }) => all(Outcome::Technical {
                message: "503 service unavailable".into(),
                retry_after,
            }),
            Some(Fault::Timeout { .. }) => all(Outcome::Unknown(format!(
                "timed out waiting for the {}",
                self.system.as_str()
            ))),
            Some(Fault::LostReply) => match write() {
                Ok(_) => all(Outcome::Unknown(format!(
                    "the {} did not answer",
                    self.system.as_str()
                ))),
                Err(error) => all(Outcome::technical(error.to_string())),
            },
            None => match write() {
                Ok(answers) => answers.into_iter().map(outcome_of).collect(),
                Err(error) => all(Outcome::technical(format!(
                    "the {} failed to write: {error}",
                    self.system.as_str()
                ))),
            },
        }
    }

    fn one(&self, write: impl FnOnce() -> std::io::Result<Answer>) -> Outcome {
        self.call(1, || write().map(|a| vec![a]))
            .pop()
            .unwrap_or_else(|| Outcome::technical("no answer"))
    }

    fn find(&self, keys: &[&str]) -> Vec<Lookup> {
        if let Some(Fault::Fail { .. } | Fault::Timeout { .. }) = self.sandbox.fault(self.system) {
            return keys
                .iter()
                .map(|_| Lookup::Failed(format!("the {} did not answer", self.system.as_str())))
                .collect();
        }
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        match self.sandbox.lookup(self.system, &keys) {
            Ok(found) => found
                .into_iter()
                .map(|id| id.map_or(Lookup::NotApplied, Lookup::Applied))
                .collect(),
            Err(error) => keys
                .iter()
                .map(|_| Lookup::Failed(error.to_string()))
                .collect(),
        }
    }
}

pub fn outcome_of(answer: Answer) -> Outcome {
    match answer {
        Answer::Created(id) => Outcome::Done(id),
        Answer::Refused(why) => Outcome::Rejected(why),
    }
}

impl InProcess {
    /// Keeps an update in one of this system's kept collections.
    fn keep<B: serde::Serialize>(&self, collection: &str, key: &str, body: &B) -> Outcome {
        let body = serde_json::to_value(body).unwrap_or(serde_json::Value::Null);
        self.one(|| self.sandbox.keep(self.system, collection, key, body))
    }
}

impl Erp for InProcess {
    fn issue_schedule(&self, request: &ScheduleRequest) -> Outcome {
        self.keep(
            "schedules",
            &request.idempotency_key,
            &ScheduleBody::from(request),
        )
    }

    fn update_costing(&self, request: &CostingRequest) -> Outcome {
        self.keep(
            "employees",
            &request.idempotency_key,
            &CostingBody::from(request),
        )
    }

    fn update_cost_price(&self, request: &CostPriceRequest) -> Outcome {
        self.keep(
            "cost-prices",
            &request.idempotency_key,
            &CostPriceBody::from(request),
        )
    }

    fn provision_project(&self, request: &ProjectRequest) -> Outcome {
        self.one(|| {
            self.sandbox
                .provision_project(&request.idempotency_key, &ProjectBody::from(request))
        })
    }

    fn attach_billing_rules(&self, request: &BillingRulesRequest) -> Outcome {
        self.one(|| {
            self.sandbox
                .attach_billing_rules(&request.idempotency_key, &BillingRulesBody::from(request))
        })
    }

    fn post_lines(&self, lines: &[LinePosting]) -> Vec<Outcome> {
        let bodies: Vec<LineBody> = lines.iter().map(LineBody::from).collect();
        self.call(lines.len(), || self.sandbox.post_lines(&bodies))
    }

    fn read_back(&self, collection: &str, after: u64, limit: u32) -> ReadBack {
        let page = self
            .sandbox
            .list(System::Erp, collection, after, limit)
            .map_err(|e| format!("the erp cannot be read: {e}"))?
            .ok_or_else(|| format!("the erp has no collection {collection}"))?;
        super::client::read_back_page(&page)
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        self.find(keys)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "sandbox", "runs": "in process", "stats": self.sandbox.stats()["erp"] })
    }
}

impl Psa for InProcess {
    fn update_resource(&self, request: &ResourceRequest) -> Outcome {
        self.keep(
            "resources",
            &request.idempotency_key,
            &ResourceBody::from(request),
        )
    }

    fn create_engagement(&self, request: &EngagementRequest) -> Outcome {
        self.one(|| {
            self.sandbox
                .create_engagement(&request.idempotency_key, &EngagementBody::from(request))
        })
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        self.find(keys)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "sandbox", "runs": "in process", "stats": self.sandbox.stats()["psa"] })
    }
}

impl Crm for InProcess {
    fn update_invoice_status(&self, request: &InvoiceStatusRequest) -> Outcome {
        self.keep(
            "invoices",
            &request.idempotency_key,
            &InvoiceStatusBody::from(request),
        )
    }

    fn write_back_ids(&self, request: &WriteBackRequest) -> Outcome {
        self.one(|| {
            self.sandbox
                .write_back_ids(&request.idempotency_key, &WriteBackBody::from(request))
        })
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        self.find(keys)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "sandbox", "runs": "in process", "stats": self.sandbox.stats()["crm"] })
    }
}

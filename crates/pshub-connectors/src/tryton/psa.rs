//! Tryton as the PSA, for deployments that run their projects and staffing in it
//! (`[psa] connector = "<name>"`): a won deal's engagement is the Tryton project itself,
//! found by its comment, so the ERP step that follows finds the same project and makes
//! nothing twice; a worker's resource status is their employee's dates (active: the start
//! date, terminated: the end date; Tryton keeps no leave, so on leave changes nothing).

use super::{Tryton, outcome};
use pshub_engine::ports::*;
use serde_json::{Value, json};

impl Psa for Tryton {
    fn create_engagement(&self, request: &EngagementRequest) -> Outcome {
        let made = self.project_work(
            &request.project_code,
            &request.name,
            &request.customer_id,
            &request.customer_name,
        );
        outcome(made, |id| id.to_string())
    }

    fn update_resource(&self, request: &ResourceRequest) -> Outcome {
        let costing = CostingRequest {
            idempotency_key: request.idempotency_key.clone(),
            worker_id: request.worker_id.clone(),
            status: request.status.clone(),
            effective_date: request.effective_date,
            legal_entity: None,
            cost_center: None,
            grade: None,
        };
        // The employee's dates are what Tryton keeps of a worker's availability.
        outcome(self.costing(&costing), |id| id.to_string())
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        Erp::lookup(self, keys)
    }

    fn describe(&self) -> Value {
        let mut described = Erp::describe(self);
        described["role"] = json!("psa");
        described
    }
}

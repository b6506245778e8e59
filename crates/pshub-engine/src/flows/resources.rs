//! The trusted resource view on the outbound stream: each change of a worker (an HRIS
//! change, the PSA's availability, the worker's own cost rate) publishes `resource.changed`
//! with the view as it now stands (`crate::resources`). Names and emails ride along only
//! when the change carried them, and a downstream target sees them only where its
//! `[masking]` policy allows them. A worker's own cost rate also goes to the ERP of their
//! legal entity as a dated cost price (step `cost_price`); a grade's rate stays in the hub,
//! which applies it to each worker of the grade when it costs their time.

use super::{Cx, Flow, NewStep};
use crate::error::Result;
use crate::ports::{CostPriceRequest, Request};
use crate::store::{IdKind, StepRow, StoreReader};
use crate::world::Applied;
use pshub_model::records::CostSubject;
use pshub_model::{Event, EventData, EventType};
use serde_json::{Value, json};

pub const NAME: &str = "resources";
/// The step that sends a worker's cost rate to the ERP.
pub const COST_PRICE: &str = "cost_price";
/// The outbound event of a changed resource.
pub const RESOURCE_CHANGED: &str = "resource.changed";

pub struct Resources;

impl Flow for Resources {
    fn name(&self) -> &'static str {
        NAME
    }

    fn calls(&self) -> &'static [crate::flows::Calls] {
        use crate::flows::Calls;
        &[Calls::Erp]
    }

    fn reacts_to(&self, event_type: EventType) -> bool {
        matches!(
            event_type,
            EventType::AvailabilityChanged | EventType::CostRateUpserted
        )
    }

    fn apply(&self, cx: &mut Cx<'_>, event: &Event, _: &Applied) -> Result<()> {
        let worker = match &event.data {
            EventData::Availability(a) => a.worker_id.as_str(),
            EventData::CostRate(rate) => match &rate.subject {
                CostSubject::Worker(w) => {
                    send_cost_price(cx, w, rate.valid_from)?;
                    w.as_str()
                }
                CostSubject::Grade(_) => return Ok(()),
            },
            _ => return Ok(()),
        };
        publish(cx, worker, None)
    }

    fn requests(
        &self,
        steps: &[&StepRow],
        reads: &mut dyn StoreReader,
    ) -> Result<Vec<std::result::Result<Request, String>>> {
        let mut answers = Vec::with_capacity(steps.len());
        for step in steps {
            let rate =
                super::stored_data(reads, step.event_seq, "a cost rate", |data| match data {
                    EventData::CostRate(rate) => Some(rate),
                    _ => None,
                })?;
            answers.push(rate.and_then(|rate| match &rate.subject {
                CostSubject::Worker(worker) => Ok(Request::UpdateCostPrice(CostPriceRequest {
                    idempotency_key: step.idempotency_key(),
                    worker_id: worker.to_string(),
                    valid_from: rate.valid_from,
                    hourly_cost: rate.hourly_cost,
                    currency: rate.currency,
                })),
                CostSubject::Grade(grade) => {
                    Err(format!("the cost rate of grade {grade} is not a worker's"))
                }
            }));
        }
        Ok(answers)
    }
}

/// The step that sends a worker's rate to the ERP of their legal entity and region.
fn send_cost_price(
    cx: &mut Cx<'_>,
    worker: &pshub_model::WorkerId,
    valid_from: chrono::NaiveDate,
) -> Result<()> {
    let erp = cx.erp_of_worker(worker, valid_from);
    let id = cx.id(IdKind::Step)?;
    cx.add_step(NewStep {
        id,
        flow: NAME,
        step: COST_PRICE,
        system: erp,
        subject: cx.event.seq,
        business_key: format!("{worker}:{valid_from}:{}", cx.event.seq),
        waits_on: None,
    })
}

/// Publishes the worker's view; `personal` is (name, email) when the change carried them.
pub fn publish(
    cx: &mut Cx<'_>,
    worker_id: &str,
    personal: Option<(Option<&str>, Option<&str>)>,
) -> Result<()> {
    let today = cx.now.date_naive();
    let month = today.format("%Y-%m").to_string();
    let Some(range) = crate::costing::month_range(&month) else {
        return Ok(());
    };
    let Some(view) = crate::resources::view(cx.world, cx.config, worker_id, &month, range, today)
    else {
        return Ok(());
    };
    let mut data = view_json(&view);
    if let Some((name, email)) = personal {
        data["name"] = json!(name);
        data["email"] = json!(email);
    }
    cx.publish(
        RESOURCE_CHANGED,
        format!("resource:{worker_id}:{}", cx.event.seq),
        data,
    )
}

/// The view as the API and the outbound stream show it.
pub fn view_json(view: &crate::resources::ResourceView) -> Value {
    json!({
        "worker_id": view.worker_id,
        "status": view.status,
        "legal_entity": view.legal_entity,
        "region": view.region,
        "cost_center": view.cost_center,
        "manager_id": view.manager_id,
        "role": view.role,
        "grade": view.grade,
        "classification": view.classification.as_str(),
        "cost_rate": view.cost_rate.map(|(currency, rate, of)| json!({
            "currency": currency.code(), "hourly_cost": rate.to_string(), "of": of,
        })),
        "month": view.month,
        "capacity_hours": view.capacity_hours.normalize().to_string(),
        "capacity_source": view.capacity_source,
        "disagreements": view.disagreements.iter().map(|d| json!({
            "field": d.field,
            "values": d.values.iter().map(|(source, value)| json!({ "source": source, "value": value })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "open_assignments": view.open_assignments.iter().map(|a| json!({
            "assignment_id": a.assignment_id, "project_code": a.project_code, "state": a.state,
            "start": a.start.to_string(), "end": a.end.to_string(), "hours": a.hours.to_string(),
        })).collect::<Vec<_>>(),
        "sources": {
            "identity": view.identity_source,
            "availability": view.availability_source,
            "costing": view.costing_source,
        },
    })
}

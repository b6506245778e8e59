//! `GET /v1/projects/{project_code}`: a project as its deal made it, with the ids each
//! system gave it and where each provisioning step stands.

use crate::error::ApiError;
use crate::{AppState, blocking, wire};
use axum::Json;
use axum::extract::{Path, State};
use pshub_engine::flows::opportunity_to_project::{self as flow, NAME};
use pshub_engine::hub::parse_stored;
use pshub_model::EventData;
use pshub_model::records::BillingModel;
use rust_decimal::Decimal;
use serde_json::{Value, json};

pub async fn get_one(
    State(state): State<AppState>,
    Path(project_code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let answer = blocking(move || {
        let terms = engine.with_hub(|hub| {
            let world = hub.world();
            let project = world.project(&pshub_model::ProjectCode::parse(&project_code).ok()?)?;
            let hub_customer = world.customers().get(project.hub_customer).map(|c| c.hub_id.clone());
            let amendments: Vec<Value> = project
                .amendments
                .iter()
                .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
                .collect();
            // The contract's value as its latest terms say: the milestones of a fixed fee,
            // the cap of capped T&M, the forecast revenue of plain T&M.
            let latest = project.contract_on(chrono::NaiveDate::MAX);
            let value = match latest.billing_model {
                BillingModel::FixedFee => latest
                    .milestones
                    .iter()
                    .try_fold(Decimal::ZERO, |sum, m| sum.checked_add(m.amount)),
                BillingModel::CappedTm => latest.cap,
                BillingModel::TimeAndMaterials => {
                    pshub_engine::forecast::forecast(world, &project_code).map(|f| f.revenue.amount())
                }
            };
            Some((hub_customer, amendments, project.schedule_version(), value, latest.currency))
        });
        let (hub_customer_id, amendments, schedule_version, value, currency) = match terms {
            Some((customer, amendments, version, value, currency)) => {
                (customer, amendments, Some(version), value, Some(currency))
            }
            None => (None, Vec::new(), None, None, None),
        };
        engine.read(|r| -> Result<Value, ApiError> {
            let Some(project) = r.project(&project_code)? else {
                return Err(ApiError::not_found(format!(
                    "no project {project_code} is known to the hub"
                )));
            };
            let event = r.event(project.event_seq)?.ok_or_else(|| {
                ApiError::internal(format!("the deal of project {project_code} is not stored"))
            })?;
            let Ok(EventData::ClosedWon(won)) = parse_stored(&event) else {
                return Err(ApiError::internal(format!(
                    "the deal of project {project_code} does not read"
                )));
            };
            let steps = r.steps_of_subject(NAME, project.id)?;
            let result = |name: &str| {
                steps
                    .iter()
                    .find(|s| s.step == name)
                    .and_then(|s| s.result.clone())
            };
            let contract = &won.contract;
            let lines = r.lines(
                &pshub_engine::store::LineFilter {
                    project_code: Some(project_code.clone()),
                    ..Default::default()
                },
                pshub_engine::store::Page::ALL,
            )?;
            let billed = lines
                .iter()
                .filter(|l| l.step.state == pshub_engine::store::StepState::Done)
                .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.line.amount))
                .ok_or_else(|| ApiError::internal("the project's billed amount does not fit".to_string()))?;
            let money = |d: Decimal| {
                currency.map_or_else(|| d.to_string(), |c| pshub_model::round_to_minor_unit(d, c).to_string())
            };
            let backlog = json!({
                "currency": currency.map(|c| c.code().to_string()),
                "contract_value": value.map(money),
                "billed": money(billed),
                "not_yet_billed": value.and_then(|v| v.checked_sub(billed)).map(money),
            });
            Ok(json!({
                "project_code": won.project.project_code,
                "name": won.project.name,
                "legal_entity": won.project.legal_entity,
                "region": won.project.region,
                "service_line": won.project.service_line,
                "opportunity_id": won.opportunity_id,
                "ids": { "crm": won.opportunity_id, "psa": result(flow::PSA), "erp": result(flow::ERP) },
                "customer": {
                    "hub_customer_id": hub_customer_id,
                    "customer_id": won.customer.customer_id,
                    "legal_name": won.customer.legal_name,
                    "tax_id": won.customer.tax_id,
                },
                "billing_rules": {
                    "contract_id": contract.contract_id,
                    "billing_model": contract.billing_model,
                    "currency": contract.currency,
                    "rate_card_id": contract.rate_card_id,
                    "cap": contract.cap.map(|c| c.to_string()),
                    "start": contract.start.to_string(),
                    "end": contract.end.map(|d| d.to_string()),
                    "milestones": contract.milestones.iter().map(|m| json!({
                        "milestone_id": m.milestone_id, "name": m.name, "amount": m.amount.to_string(),
                    })).collect::<Vec<_>>(),
                    "amendments": amendments,
                },
                "schedule_version": schedule_version,
                "backlog": backlog,
                "correlation_id": project.correlation_id,
                "created_at": project.created_at,
                "steps": steps.iter().map(wire::step).collect::<Vec<_>>(),
            }))
        })
    })
    .await??;
    Ok(Json(answer))
}

fn money(value: Option<pshub_model::Money>) -> Value {
    value.map_or(Value::Null, |m| json!(m.amount().to_string()))
}

/// `GET /v1/projects/{project_code}/forecast`: revenue, cost and margin over the approved
/// assignments, as reference data stands now.
pub async fn forecast(
    State(state): State<AppState>,
    Path(project_code): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let answer = blocking(move || {
        engine.with_hub(|hub| {
            let found = pshub_engine::forecast::forecast(hub.world(), &project_code);
            let f = found.ok_or_else(|| {
                ApiError::not_found(format!("no project {project_code} is known to the hub"))
            })?;
            Ok::<_, ApiError>(json!({
                "project_code": f.project_code,
                "currency": f.currency.code(),
                "revenue": f.revenue.amount().to_string(),
                "cost": f.cost.amount().to_string(),
                "margin": f.margin.amount().to_string(),
                "margin_pct": f.margin_pct.map(|p| p.to_string()),
                "left_out": f.left_out,
                "assignments": f.assignments.iter().map(|a| json!({
                    "assignment_id": a.assignment_id, "version": a.version, "worker_id": a.worker_id,
                    "hours": a.hours.to_string(), "revenue": money(a.revenue), "cost": money(a.cost),
                    "missing": a.missing,
                })).collect::<Vec<_>>(),
            }))
        })
    })
    .await??;
    Ok(Json(answer))
}

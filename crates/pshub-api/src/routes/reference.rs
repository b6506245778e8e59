//! Lists of what the hub knows, read from its reference data: `GET /v1/projects`,
//! `/v1/rate-cards` (with their rows and effective dates), `/v1/fx-rates` and
//! `/v1/assignments?project_code=&worker_id=`, paged (`limit`, `cursor`) and filtered.

use crate::error::ApiError;
use crate::wire::{self, PageQuery, page_of, parse_param};
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

/// A page of `items`, the cursor being the position after the page.
fn paged(items: Vec<Value>, query: &PageQuery) -> Result<Value, ApiError> {
    let page = query.page()?;
    let rows = wire::positions(items.into_iter(), page);
    Ok(page_of(&rows, page, |r| r.0, |r| r.1.clone()))
}

#[derive(Debug, Deserialize)]
pub struct ProjectQuery {
    #[serde(flatten)]
    page: PageQuery,
    customer_id: Option<String>,
    legal_entity: Option<String>,
}

pub async fn projects(
    State(state): State<AppState>,
    Query(query): Query<ProjectQuery>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let items = blocking(move || {
        engine.with_hub(|hub| {
            let world = hub.world();
            let mut items: Vec<(String, Value)> = world
                .projects()
                .filter(|p| {
                    query
                        .customer_id
                        .as_ref()
                        .is_none_or(|c| p.customer.customer_id.as_str() == c)
                        && query
                            .legal_entity
                            .as_ref()
                            .is_none_or(|e| &p.project.legal_entity == e)
                })
                .map(|p| {
                    let code = p.project.project_code.to_string();
                    let hub_customer = world.customers().get(p.hub_customer).map(|c| c.hub_id.clone());
                    let value = json!({
                        "project_code": code, "name": p.project.name, "legal_entity": p.project.legal_entity,
                        "region": p.project.region, "opportunity_id": p.opportunity_id,
                        "customer_id": p.customer.customer_id, "hub_customer_id": hub_customer,
                        "contract_id": p.contract.contract_id, "billing_model": p.contract.billing_model,
                        "currency": p.contract.currency.code(), "amendments": p.amendments.len(),
                    });
                    (code, value)
                })
                .collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            items.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
        })
    })
    .await?;
    Ok(Json(paged(items, &query.page)?))
}

pub async fn rate_cards(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let items = blocking(move || {
        engine.with_hub(|hub| {
            hub.world()
                .rate_cards()
                .iter()
                .map(|card| {
                    json!({
                        "rate_card_id": card.rate_card_id, "currency": card.currency.code(),
                        "rates": card.rows.iter().map(|r| json!({
                            "role": r.role, "region": r.region, "rate": r.rate.to_string(),
                            "valid_from": r.valid_from.to_string(), "valid_to": r.valid_to.map(|d| d.to_string()),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>()
        })
    })
    .await?;
    Ok(Json(paged(items, &query)?))
}

#[derive(Debug, Deserialize)]
pub struct FxQuery {
    #[serde(flatten)]
    page: PageQuery,
    from: Option<String>,
    to: Option<String>,
}

pub async fn fx_rates(
    State(state): State<AppState>,
    Query(query): Query<FxQuery>,
) -> Result<Json<Value>, ApiError> {
    let parse = |raw: &str| pshub_model::Currency::parse(raw).ok();
    let from = parse_param(
        "from",
        &query.from,
        parse,
        "the ISO 4217 codes, such as EUR",
    )?;
    let to = parse_param("to", &query.to, parse, "the ISO 4217 codes, such as EUR")?;
    let engine = state.engine.clone();
    let items = blocking(move || {
        engine.with_hub(|hub| {
            hub.world()
                .fx_rates()
                .into_iter()
                .filter(|(f, t, ..)| from.is_none_or(|c| c == *f) && to.is_none_or(|c| c == *t))
                .map(|(f, t, day, rate)| {
                    json!({ "from": f.code(), "to": t.code(), "valid_on": day.to_string(), "rate": rate.to_string() })
                })
                .collect::<Vec<_>>()
        })
    })
    .await?;
    Ok(Json(paged(items, &query.page)?))
}

#[derive(Debug, Deserialize)]
pub struct AssignmentQuery {
    #[serde(flatten)]
    page: PageQuery,
    project_code: Option<String>,
    worker_id: Option<String>,
}

pub async fn assignments(
    State(state): State<AppState>,
    Query(query): Query<AssignmentQuery>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let (project, worker) = (query.project_code.clone(), query.worker_id.clone());
    let items = blocking(move || {
        engine.with_hub(|hub| {
            let world = hub.world();
            let found = match (&project, &worker) {
                (Some(p), _) => world.assignments_of_project(p),
                (None, Some(w)) => world.assignments_of_worker(w),
                (None, None) => world.all_assignments(),
            };
            found
                .iter()
                .filter(|a| worker.as_ref().is_none_or(|w| a.worker_id == w))
                .map(|a| {
                    json!({
                        "assignment_id": a.assignment_id, "version": a.version, "worker_id": a.worker_id,
                        "project_code": a.project_code, "role": a.role, "start": a.start.to_string(),
                        "end": a.end.to_string(), "hours": a.hours.to_string(), "state": a.state,
                    })
                })
                .collect::<Vec<_>>()
        })
    })
    .await?;
    Ok(Json(paged(items, &query.page)?))
}

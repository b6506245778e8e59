//! `GET /v1/customers` and `GET /v1/customers/{customer_id}`: customers as the hub knows them,
//! one per company, with each system's record of it as an alias.

use crate::error::ApiError;
use crate::wire::{PageQuery, page_of, positions};
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Path, Query, State};
use pshub_engine::customers::HubCustomer;
use serde_json::{Value, json};

/// A customer: its master record (the owner's latest), its aliases and its projects.
fn customer(found: &HubCustomer, projects: Vec<String>) -> Value {
    let master = &found.master;
    json!({
        "hub_customer_id": found.hub_id,
        "legal_name": master.legal_name,
        "tax_id": master.tax_id,
        "country": master.country,
        "currency": master.currency.code(),
        "master_from_owner": found.master_from_owner,
        "aliases": found.aliases.iter().map(|a| json!({
            "source": a.source, "customer_id": a.customer_id, "legal_name": a.legal_name, "tax_id": a.tax_id,
        })).collect::<Vec<_>>(),
        "projects": projects,
    })
}

/// The project codes of the hub customer at `at`, sorted.
fn projects_of(world: &pshub_engine::world::World, hub_id: &str) -> Vec<String> {
    let mut codes: Vec<String> = world
        .projects()
        .filter(|p| {
            world
                .customers()
                .get(p.hub_customer)
                .is_some_and(|c| c.hub_id == hub_id)
        })
        .map(|p| p.project.project_code.to_string())
        .collect();
    codes.sort();
    codes
}

pub async fn get_one(
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let answer = blocking(move || {
        engine.with_hub(|hub| {
            let world = hub.world();
            let found = world.customers().find(&customer_id).ok_or_else(|| {
                ApiError::not_found(format!("no customer {customer_id} is known to the hub"))
            })?;
            Ok::<_, ApiError>(customer(found, projects_of(world, &found.hub_id)))
        })
    })
    .await??;
    Ok(Json(answer))
}

pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page()?;
    let engine = state.engine.clone();
    let answer = blocking(move || {
        engine.with_hub(|hub| {
            let world = hub.world();
            let rows: Vec<(i64, Value)> = positions(world.customers().iter(), page)
                .into_iter()
                .map(|(n, c)| (n, customer(c, projects_of(world, &c.hub_id))))
                .collect();
            page_of(&rows, page, |r| r.0, |r| r.1.clone())
        })
    })
    .await?;
    Ok(Json(answer))
}

//! `GET /v1/xref/{kind}/{id}`: the id registry. Every system's id of one thing, whichever
//! system's id is asked (or the hub's own): a project's CRM opportunity, PSA engagement and
//! ERP projects, registered as the flow's steps got them; a customer's record in each
//! system that sent one, from the customer registry; an invoice's id in each system that
//! named it beside the hub's (Stripe's `in_...`).

use crate::error::ApiError;
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

/// The kinds of thing the registry knows.
pub const KINDS: &[&str] = &["project", "customer", "invoice"];

pub async fn get_one(
    State(state): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if !KINDS.contains(&kind.as_str()) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!(
                "kind: '{kind}' is not a kind of the registry; one of {}",
                KINDS.join(", ")
            ),
        ));
    }
    let engine = state.engine.clone();
    let answer = blocking(move || match kind.as_str() {
        "customer" => engine.with_hub(|hub| {
            let found = hub
                .world()
                .customers()
                .find(&id)
                .ok_or_else(|| unknown(&kind, &id))?;
            let entries: Vec<Value> = found
                .aliases
                .iter()
                .map(|a| json!({ "system": a.source, "id": a.customer_id }))
                .collect();
            Ok::<_, ApiError>(answer(&kind, &found.hub_id, entries))
        }),
        _ => engine.read(|r| {
            let rows = r.xrefs(&kind, &id)?;
            let Some(first) = rows.first() else {
                return Err(unknown(&kind, &id));
            };
            let canonical = first.canonical_id.clone();
            let entries: Vec<Value> = rows
                .iter()
                .filter(|x| x.canonical_id == canonical)
                .map(|x| {
                    json!({ "system": x.system, "id": x.system_id, "since": x.created_at,
                            "correlation_id": x.correlation_id })
                })
                .collect();
            Ok(answer(&kind, &canonical, entries))
        }),
    })
    .await??;
    Ok(Json(answer))
}

fn unknown(kind: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("no {kind} is known by the id {id} in any system"))
}

/// `{kind, id, ids: {hub, <system>: id}, entries}`: `ids` by system (a system with two ids
/// of one thing, an ERP and its shadow, lists both in `entries`).
fn answer(kind: &str, canonical: &str, entries: Vec<Value>) -> Value {
    let mut ids = Map::new();
    ids.insert("hub".into(), json!(canonical));
    for entry in &entries {
        if let Some(system) = entry["system"].as_str() {
            ids.entry(system.to_string()).or_insert(entry["id"].clone());
        }
    }
    json!({ "kind": kind, "id": canonical, "ids": ids, "entries": entries })
}

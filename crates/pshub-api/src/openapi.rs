//! The OpenAPI 3.1 document served at `/openapi.json`, written alongside the routes.
//! A test checks that every route of the router is described here and the other way round.

use axum::Json;
use serde_json::{Value, json};

fn error_responses(codes: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    for code in codes {
        responses.insert((*code).into(), json!({ "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }));
    }
    Value::Object(responses)
}

fn op(summary: &str, ok: Value, errors: &[&str]) -> Value {
    let mut responses = error_responses(errors);
    responses["200"] =
        json!({ "description": "OK", "content": { "application/json": { "schema": ok } } });
    json!({ "summary": summary, "responses": responses })
}

fn with_params(mut operation: Value, params: Value) -> Value {
    operation["parameters"] = params;
    operation
}

fn path_param(name: &str, kind: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": kind } })
}

fn query_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } })
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn page_of(item: &str) -> Value {
    json!({ "type": "object", "required": ["items", "next"], "properties": {
        "items": { "type": "array", "items": schema(item) },
        "next": { "type": ["string", "null"], "description": "pass back as cursor for the next page" } } })
}

fn paging() -> Vec<Value> {
    vec![
        query_param("limit", "page size, 1 to 1000 (default 100)"),
        query_param("cursor", "the next of the previous page"),
    ]
}

/// The paths this document describes, as `(method, path)`.
#[cfg(test)]
pub fn described_routes() -> Vec<(String, String)> {
    let doc = build();
    let mut routes = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in item.as_object().into_iter().flat_map(|m| m.keys()) {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

pub fn build() -> Value {
    let decimal = json!({ "type": "string", "description": "exact decimal, e.g. \"7.5\"" });
    let mut line_params = vec![
        query_param("project_code", "only lines of this project"),
        query_param("worker_id", "only lines of this worker"),
        query_param("source_id", "only lines of this time entry or expense"),
        query_param("status", "pending, posted, refused or failed"),
    ];
    line_params.extend(paging());
    let mut case_params = vec![
        query_param("owner", "integration, finance, pmo or hr"),
        query_param("state", "open, acknowledged, resolved or dismissed"),
        query_param("kind", "e.g. missing_rate"),
    ];
    case_params.extend(paging());
    let case_action = |summary: &str| {
        with_params(
            op(
                summary,
                json!({ "type": "object" }),
                &["400", "401", "403", "404", "409", "422"],
            ),
            json!([path_param("id", "integer")]),
        )
    };
    json!({
        "openapi": "3.1.0",
        "info": { "title": "pshub", "version": env!("CARGO_PKG_VERSION"),
                  "description": "The integration hub for professional-services firms. Every route but /healthz needs 'Authorization: Bearer <token>'." },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
                "Event": { "type": "object", "required": ["id", "source", "type", "schema_version", "occurred_at", "data"], "properties": {
                    "id": { "type": "string", "description": "idempotency key, unique per source" },
                    "source": { "type": "string", "description": "a configured system: crm, psa, hris, erp, payroll" },
                    "type": { "type": "string", "description": "<record>.<what happened>, e.g. time_entry.approved" },
                    "schema_version": { "type": "integer", "const": 1 },
                    "occurred_at": { "type": "string", "format": "date-time" },
                    "correlation_id": { "type": "string" },
                    "data": { "type": "object" } } },
                "IngestResult": { "type": "object", "required": ["id", "status", "correlation_id"], "properties": {
                    "id": { "type": ["string", "null"] },
                    "status": { "enum": ["accepted", "duplicate", "conflict", "quarantined"] },
                    "reason": { "type": "string" },
                    "correlation_id": { "type": ["string", "null"] } } },
                "InvoiceLine": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "erp_id": { "type": ["string", "null"] },
                    "kind": { "enum": ["time", "expense", "milestone", "reversal"] },
                    "status": { "enum": ["pending", "posted", "refused", "failed"] },
                    "source_id": { "type": "string" }, "project_code": { "type": "string" }, "worker_id": { "type": ["string", "null"], "description": "null for a milestone" },
                    "invoice_id": { "type": "string", "description": "the invoice of the project and month: INV-{project}-{YYYY-MM}" },
                    "date": { "type": "string", "format": "date" }, "quantity": decimal, "rate": decimal, "rate_currency": { "type": "string" },
                    "fx_rate": { "type": ["string", "null"] }, "amount": decimal, "currency": { "type": "string" },
                    "tax_code": { "type": "string" }, "billing_class": { "type": "string" },
                    "reverses": { "type": ["integer", "null"] }, "correlation_id": { "type": "string" } } },
                "Exception": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "kind": { "type": "string" },
                    "owner": { "enum": ["integration", "finance", "pmo", "hr"] }, "business_key": { "type": "string" },
                    "state": { "enum": ["open", "acknowledged", "resolved", "dismissed"] }, "reason": { "type": "string" },
                    "suggested_fix": { "type": "string" }, "correlation_id": { "type": "string" },
                    "value": { "type": ["object", "null"] }, "sla_due_at": { "type": "string" } } },
                "Conflict": { "type": "object", "properties": { "id": { "type": "integer" }, "source": { "type": "string" }, "event_id": { "type": "string" },
                    "original_seq": { "type": "integer" }, "type": { "type": "string" }, "data": {}, "raw": {}, "case_id": { "type": "integer" } } },
                "OutboundEvent": { "type": "object", "properties": { "id": { "type": "integer" }, "type": { "type": "string" }, "key": { "type": "string" }, "data": {},
                    "correlation_id": { "type": "string" }, "published_at": { "type": "string" } } },
                "DeadLetter": { "type": "object", "properties": { "id": { "type": "string", "description": "line-N (the step posting invoice line N) or call-N (step N)" }, "idempotency_key": { "type": "string" },
                    "attempts": { "type": "integer" }, "last_error": { "type": ["string", "null"] } } },
                "Quarantined": { "type": "object", "properties": { "id": { "type": "integer" }, "field": { "type": "string" },
                    "reason": { "type": "string" }, "state": { "enum": ["open", "replayed"] }, "event": {} } },
            }
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/healthz": { "get": { "summary": "Health: the store answers and the writer and delivery workers run; needs no token", "security": [],
                "responses": { "200": { "description": "OK" }, "503": { "description": "unhealthy, with the reason" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text/plain" } } } },
            "/openapi.json": { "get": op("This document", json!({ "type": "object" }), &["401"]) },
            "/v1/events": { "post": {
                "summary": "Send one event or an array of up to 10,000; answered once durably recorded",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "oneOf": [schema("Event"), { "type": "array", "items": schema("Event"), "maxItems": 10000 }] } } } },
                "responses": {
                    "200": { "description": "one result per event, in order", "content": { "application/json": { "schema": { "type": "object", "properties": { "results": { "type": "array", "items": schema("IngestResult") } } } } } },
                    "400": { "description": "not JSON, or not an event or array of events" }, "401": { "description": "no valid token" },
                    "403": { "description": "role may not send events" }, "413": { "description": "body or array too large" },
                    "503": { "description": "the store could not commit; nothing was recorded" } } } },
            "/v1/events/{source}/{id}": { "get": with_params(op("Where an event stands: pending, applied, recorded (kept, no flow acts on it yet), held, blocked or quarantined", json!({ "type": "object" }), &["401", "404"]),
                json!([path_param("source", "string"), path_param("id", "string")])) },
            "/v1/projects/{project_code}": { "get": with_params(op("A project: its ids in each system, customer, billing rules and provisioning steps", json!({ "type": "object" }), &["401", "404"]), json!([path_param("project_code", "string")])) },
            "/v1/customers": { "get": with_params(op("Customers as the hub knows them: one per company, with each system's record as an alias", json!({ "type": "object" }), &["400", "401"]), Value::Array(paging())) },
            "/v1/customers/{customer_id}": { "get": with_params(op("One customer, by hub id or by any system's customer id: master record, aliases and projects", json!({ "type": "object" }), &["401", "404"]), json!([path_param("customer_id", "string")])) },
            "/v1/workers": { "get": with_params(op("Workers as the HRIS's changes made them; name and email for admin, hr and auditor only", json!({ "type": "object" }), &["400", "401"]), Value::Array(paging())) },
            "/v1/workers/{worker_id}": { "get": with_params(op("One worker: status, attributes, history of changes with their dates, assignments; name and email for admin, hr and auditor only", json!({ "type": "object" }), &["401", "404"]), json!([path_param("worker_id", "string")])) },
            "/v1/projects/{project_code}/forecast": { "get": with_params(op("Forecast revenue, cost and margin over the approved assignments; an assignment with a missing rate shows it null with the reason and is left out of the totals", json!({ "type": "object" }), &["401", "404"]), json!([path_param("project_code", "string")])) },
            "/v1/invoices/{invoice_id}": { "get": with_params(op("An invoice (one per project and month): its posted lines, amount, status as the ERP reported it, history, and the status last written to the CRM", json!({ "type": "object" }), &["401", "404"]), json!([path_param("invoice_id", "string")])) },
            "/v1/projects": { "get": with_params(op("Projects the hub provisioned, by code", json!({ "type": "object" }), &["400", "401"]), { let mut p = vec![query_param("customer_id", "only this customer's"), query_param("legal_entity", "only this entity's")]; p.extend(paging()); Value::Array(p) }) },
            "/v1/rate-cards": { "get": with_params(op("Rate cards with their rows and effective dates", json!({ "type": "object" }), &["400", "401"]), Value::Array(paging())) },
            "/v1/fx-rates": { "get": with_params(op("FX rates by pair and date", json!({ "type": "object" }), &["400", "401"]), { let mut p = vec![query_param("from", "ISO 4217 code"), query_param("to", "ISO 4217 code")]; p.extend(paging()); Value::Array(p) }) },
            "/v1/assignments": { "get": with_params(op("Assignments, latest version of each", json!({ "type": "object" }), &["400", "401"]), { let mut p = vec![query_param("project_code", "only this project's"), query_param("worker_id", "only this worker's")]; p.extend(paging()); Value::Array(p) }) },
            "/v1/conflicts": { "get": with_params(op("Bodies received under an event's id that differ from the first (kept, not applied)", page_of("Conflict"), &["400", "401"]), Value::Array(paging())) },
            "/v1/outbound": { "get": with_params(op("The hub's outbound stream of business events, in order", page_of("OutboundEvent"), &["400", "401"]), { let mut p = vec![query_param("type", "only events of this type: project.provisioned, worker.changed, assignment.changed, forecast.changed, invoice_line.posted, invoice.status_changed, exception.opened"), query_param("target", "the downstream system reading: its [masking] policy applies")]; p.extend(paging()); Value::Array(p) }) },
            "/v1/sandbox/stats": { "get": op("Per sandbox system: creates received and repeats answered from their idempotency keys (admin, auditor)", json!({ "type": "object" }), &["401", "403", "404"]) },
            "/v1/sandbox/{system}/{collection}": { "get": with_params(op("What a sandbox system holds (psa engagements; erp projects, lines; crm opportunities), paged (admin, auditor)", json!({ "type": "object" }), &["400", "401", "403", "404"]),
                { let mut p = vec![path_param("system", "string"), path_param("collection", "string")]; p.extend(paging()); Value::Array(p) }) },
            "/v1/invoice-lines": { "get": with_params(op("Invoice lines the hub created", page_of("InvoiceLine"), &["400", "401"]), Value::Array(line_params)) },
            "/v1/exceptions": { "get": with_params(op("Exception cases", page_of("Exception"), &["400", "401"]), Value::Array(case_params)) },
            "/v1/exceptions/{id}": { "get": with_params(op("One exception case", schema("Exception"), &["400", "401", "404"]), json!([path_param("id", "integer")])) },
            "/v1/exceptions/{id}/resolve": { "post": case_action("Resolve: re-run the held work now; 409 if not open, 422 if it still fails") },
            "/v1/exceptions/{id}/dismiss": { "post": case_action("Dismiss: the held work will not be billed") },
            "/v1/exceptions/{id}/acknowledge": { "post": case_action("Acknowledge: the owner has seen it") },
            "/v1/transactions/{correlation_id}": { "get": with_params(op("Timeline of a transaction", json!({ "type": "object" }), &["401", "404"]), json!([path_param("correlation_id", "string")])) },
            "/v1/dead-letters": { "get": with_params(op("Steps that gave up after their retries", page_of("DeadLetter"), &["400", "401"]), Value::Array(paging())) },
            "/v1/dead-letters/{id}/replay": { "post": with_params(op("Send a dead letter again", json!({ "type": "object" }), &["400", "401", "403", "404", "409"]), json!([path_param("id", "string")])) },
            "/v1/quarantine": { "get": with_params(op("Quarantined (malformed) events", page_of("Quarantined"), &["400", "401"]), Value::Array(paging())) },
            "/v1/quarantine/{id}/replay": { "post": with_params(op("Replay a quarantined event: the corrected event in the body, or the stored one", json!({ "type": "object" }), &["400", "401", "403", "404", "409", "422"]), json!([path_param("id", "integer")])) },
            "/v1/summary": { "get": op("Figures of the current store: events, lines, exceptions, money by currency", json!({ "type": "object" }), &["401"]) },
            "/v1/systems": { "get": op("What each connected system says of itself", json!({ "type": "object" }), &["401"]) },
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn describes_every_route_of_the_router() {
        // Routes as written in the router, however rustfmt wraps them.
        let source: String = include_str!("lib.rs")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut in_router: Vec<(String, String)> = source
            .split(".route(")
            .skip(1)
            .filter_map(|rest| {
                let (path, handler) = rest.trim_start().strip_prefix('"')?.split_once("\",")?;
                let method = handler.trim_start().split('(').next()?.to_uppercase();
                Some((method, path.to_string()))
            })
            .collect();
        assert!(in_router.len() > 10, "the router's routes were found");
        let mut described = super::described_routes();
        in_router.sort();
        described.sort();
        assert_eq!(in_router, described);
    }
}

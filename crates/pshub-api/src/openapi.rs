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

pub fn schema(name: &str) -> Value {
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

/// An object schema: `required` fields, then optional ones, each `(name, schema)`.
fn object(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut properties = serde_json::Map::new();
    for (name, schema) in required.iter().chain(optional) {
        properties.insert((*name).into(), schema.clone());
    }
    json!({ "type": "object", "required": required.iter().map(|(n, _)| *n).collect::<Vec<_>>(), "properties": properties })
}

/// The `data` of each event type of v1 (PRODUCT.md section 4), one schema per type, named
/// by the type.
fn event_data_schemas() -> Vec<(&'static str, Value)> {
    let text = || json!({ "type": "string" });
    let maybe_text = || json!({ "type": ["string", "null"] });
    let date = || json!({ "type": "string", "format": "date" });
    let maybe_date = || json!({ "type": ["string", "null"], "format": "date" });
    let number = || json!({ "type": ["string", "number"], "description": "exact decimal, as a string or a JSON number" });
    let maybe_number = || json!({ "type": ["string", "number", "null"] });
    let currency = || json!({ "type": "string", "description": "ISO 4217 code" });
    let milestone = object(
        &[
            ("milestone_id", text()),
            ("name", text()),
            ("amount", number()),
        ],
        &[],
    );
    let customer = object(
        &[
            ("customer_id", text()),
            ("legal_name", text()),
            ("country", text()),
            ("currency", currency()),
        ],
        &[("tax_id", maybe_text())],
    );
    let worker = object(
        &[("worker_id", text()), ("effective_date", date())],
        &[
            ("legal_entity", maybe_text()),
            ("region", maybe_text()),
            ("cost_center", maybe_text()),
            ("role", maybe_text()),
            ("grade", maybe_text()),
            ("manager_id", maybe_text()),
            (
                "classification",
                json!({ "enum": ["employee", "contractor", null], "description": "an employee unless said otherwise" }),
            ),
            ("name", maybe_text()),
            ("email", maybe_text()),
        ],
    );
    let time = object(
        &[
            ("entry_id", text()),
            ("worker_id", text()),
            ("project_code", text()),
            ("work_date", date()),
            ("hours", number()),
            ("billable", json!({ "type": "boolean" })),
        ],
        &[("role", maybe_text()), ("task", maybe_text())],
    );
    let expense = object(
        &[
            ("expense_id", text()),
            ("worker_id", text()),
            ("project_code", text()),
            ("spent_on", date()),
            ("amount", number()),
            ("currency", currency()),
            ("category", text()),
            ("billable", json!({ "type": "boolean" })),
        ],
        &[],
    );
    vec![
        ("customer.upserted", customer.clone()),
        (
            "opportunity.closed_won",
            object(
                &[
                    ("opportunity_id", text()),
                    ("customer", customer),
                    (
                        "contract",
                        object(
                            &[
                                ("contract_id", text()),
                                (
                                    "billing_model",
                                    json!({ "enum": ["time_and_materials", "fixed_fee", "capped_tm"] }),
                                ),
                                ("currency", currency()),
                                ("rate_card_id", text()),
                                ("start", date()),
                            ],
                            &[
                                ("cap", maybe_number()),
                                (
                                    "milestones",
                                    json!({ "type": ["array", "null"], "items": milestone.clone() }),
                                ),
                                ("end", maybe_date()),
                                (
                                    "bill_overtime",
                                    json!({ "type": ["boolean", "null"], "description": "overtime hours bill at the region's bill_multiplier" }),
                                ),
                            ],
                        ),
                    ),
                    (
                        "project",
                        object(
                            &[
                                ("project_code", text()),
                                ("name", text()),
                                ("legal_entity", text()),
                                ("region", text()),
                                ("service_line", text()),
                            ],
                            &[],
                        ),
                    ),
                ],
                &[],
            ),
        ),
        (
            "contract.amended",
            object(
                &[
                    ("contract_id", text()),
                    ("effective_from", date()),
                    (
                        "changes",
                        object(
                            &[],
                            &[
                                ("rate_card_id", maybe_text()),
                                ("cap", maybe_number()),
                                ("end", maybe_date()),
                                (
                                    "milestones",
                                    json!({ "type": ["array", "null"], "items": milestone }),
                                ),
                            ],
                        ),
                    ),
                ],
                &[],
            ),
        ),
        ("worker.hired", worker.clone()),
        ("worker.transferred", worker.clone()),
        ("worker.leave_started", worker.clone()),
        ("worker.leave_ended", worker.clone()),
        ("worker.terminated", worker),
        (
            "rate_card.upserted",
            object(
                &[
                    ("rate_card_id", text()),
                    ("currency", currency()),
                    (
                        "rates",
                        json!({ "type": "array", "items": object(&[("role", text()), ("region", text()), ("rate", number()), ("valid_from", date())], &[("valid_to", maybe_date())]) }),
                    ),
                ],
                &[],
            ),
        ),
        (
            "cost_rate.upserted",
            object(
                &[
                    ("currency", currency()),
                    ("hourly_cost", number()),
                    ("valid_from", date()),
                ],
                &[
                    ("worker_id", text()),
                    ("grade", text()),
                    ("valid_to", maybe_date()),
                ],
            ),
        ),
        (
            "fx_rate.upserted",
            object(
                &[
                    ("from", currency()),
                    ("to", currency()),
                    ("rate", number()),
                    ("valid_on", date()),
                    ("source", text()),
                ],
                &[],
            ),
        ),
        (
            "assignment.changed",
            object(
                &[
                    ("assignment_id", text()),
                    ("version", json!({ "type": "integer" })),
                    ("worker_id", text()),
                    ("project_code", text()),
                    ("role", text()),
                    ("start", date()),
                    ("end", date()),
                    ("hours", number()),
                    (
                        "state",
                        json!({ "enum": ["tentative", "soft", "hard", "approved", "cancelled"] }),
                    ),
                ],
                &[],
            ),
        ),
        ("time_entry.approved", time.clone()),
        ("time_entry.rejected", time),
        ("expense.approved", expense.clone()),
        ("expense.rejected", expense),
        (
            "milestone.reached",
            object(
                &[
                    ("milestone_id", text()),
                    ("contract_id", text()),
                    ("reached_on", date()),
                ],
                &[],
            ),
        ),
        (
            "invoice.status_changed",
            object(
                &[
                    (
                        "status",
                        json!({ "enum": ["draft", "posted", "sent", "paid", "disputed", "void"] }),
                    ),
                    ("at", json!({ "type": "string", "format": "date-time" })),
                ],
                // One of the two names the invoice: the hub's id, or the sender's own id,
                // found through the id registry (registered when both are given).
                &[("invoice_id", text()), ("system_invoice_id", text())],
            ),
        ),
        (
            "payroll.actuals",
            object(
                &[
                    ("worker_id", text()),
                    (
                        "period",
                        json!({ "type": "string", "description": "YYYY-MM" }),
                    ),
                    ("gross_cost", number()),
                    ("currency", currency()),
                ],
                &[],
            ),
        ),
        (
            "availability.changed",
            object(
                &[
                    ("worker_id", text()),
                    ("from", date()),
                    ("hours_per_week", number()),
                ],
                &[
                    ("to", maybe_date()),
                    ("region", maybe_text()),
                    ("role", maybe_text()),
                ],
            ),
        ),
    ]
}

/// The answers' schemas, by name.
fn answer_schemas() -> Vec<(&'static str, Value)> {
    let mut schemas = more_answer_schemas();
    schemas.extend(core_answer_schemas());
    schemas
}

/// The answers of costing and reconciliation.
fn more_answer_schemas() -> Vec<(&'static str, Value)> {
    let text = || json!({ "type": "string" });
    let int = || json!({ "type": "integer" });
    let decimal = || json!({ "type": "string", "description": "exact decimal" });
    let maybe_decimal = || json!({ "type": ["string", "null"] });
    let list = |item: Value| json!({ "type": "array", "items": item });
    let maybe_text = || json!({ "type": ["string", "null"] });
    let sourced = object(&[("source", text()), ("value", text())], &[]);
    let count_by_kind = json!({ "type": "object", "additionalProperties": { "type": "integer" } });
    let amounts_by_kind = json!({ "type": "object", "additionalProperties": { "type": "object", "additionalProperties": { "type": "string" } } });
    vec![
        (
            "Leakage",
            object(
                &[
                    ("counts", count_by_kind),
                    ("amounts", amounts_by_kind),
                    ("period", maybe_text()),
                    ("erp_lines", int()),
                    ("hub_lines", int()),
                    (
                        "items",
                        list(object(
                            &[
                                (
                                    "kind",
                                    json!({ "enum": ["approved_unbilled", "billed_unapproved", "rate_mismatch", "duplicate", "terms_mismatch"] }),
                                ),
                                ("entry_id", text()),
                                ("project_code", text()),
                                ("currency", text()),
                                ("detail", text()),
                            ],
                            &[
                                ("worker_id", maybe_text()),
                                ("date", maybe_text()),
                                ("hub_amount", maybe_decimal()),
                                ("erp_amount", maybe_decimal()),
                                ("amount", maybe_decimal()),
                            ],
                        )),
                    ),
                ],
                &[],
            ),
        ),
        (
            "Resource",
            object(
                &[
                    ("worker_id", text()),
                    (
                        "status",
                        json!({ "enum": ["active", "on_leave", "terminated", null] }),
                    ),
                    ("legal_entity", maybe_text()),
                    ("region", maybe_text()),
                    ("cost_center", maybe_text()),
                    ("manager_id", maybe_text()),
                    ("role", maybe_text()),
                    ("grade", maybe_text()),
                    (
                        "classification",
                        json!({ "enum": ["employee", "contractor"] }),
                    ),
                    (
                        "cost_rate",
                        json!({ "type": ["object", "null"], "properties": {
                            "currency": text(), "hourly_cost": decimal(), "of": { "enum": ["worker", "grade"] } } }),
                    ),
                    ("month", text()),
                    ("approved_hours", decimal()),
                    ("capacity_hours", decimal()),
                    ("capacity_source", json!({ "enum": ["psa", "region"] })),
                    ("utilization_pct", maybe_decimal()),
                    (
                        "disagreements",
                        list(object(&[("field", text()), ("values", list(sourced))], &[])),
                    ),
                    (
                        "open_assignments",
                        list(object(
                            &[
                                ("assignment_id", text()),
                                ("project_code", text()),
                                ("state", text()),
                                ("start", text()),
                                ("end", text()),
                                ("hours", decimal()),
                            ],
                            &[],
                        )),
                    ),
                    (
                        "sources",
                        object(
                            &[
                                ("identity", text()),
                                ("availability", text()),
                                ("costing", text()),
                            ],
                            &[],
                        ),
                    ),
                ],
                &[("name", maybe_text()), ("email", maybe_text())],
            ),
        ),
        (
            "PayrollLoaded",
            object(
                &[
                    ("load_id", int()),
                    ("rows", int()),
                    ("loaded", int()),
                    ("duplicates", int()),
                    (
                        "rejected",
                        list(object(
                            &[("line", int()), ("reason", text())],
                            &[("raw", text())],
                        )),
                    ),
                ],
                &[],
            ),
        ),
        (
            "CostVariance",
            object(
                &[
                    ("project_code", text()),
                    ("period", text()),
                    ("currency", text()),
                    (
                        "rows",
                        list(object(
                            &[
                                ("worker_id", text()),
                                ("hours", decimal()),
                                ("actual_cost", maybe_decimal()),
                                ("standard_cost", maybe_decimal()),
                                ("variance", maybe_decimal()),
                                ("variance_pct", maybe_decimal()),
                            ],
                            &[
                                (
                                    "classification",
                                    json!({ "enum": ["employee", "contractor"] }),
                                ),
                                ("currency", text()),
                                ("missing", list(text())),
                            ],
                        )),
                    ),
                    (
                        "totals",
                        object(
                            &[
                                ("hours", decimal()),
                                ("actual_cost", maybe_decimal()),
                                ("standard_cost", maybe_decimal()),
                                ("variance", maybe_decimal()),
                                ("variance_pct", maybe_decimal()),
                            ],
                            &[("left_out", list(text()))],
                        ),
                    ),
                ],
                &[],
            ),
        ),
    ]
}

fn core_answer_schemas() -> Vec<(&'static str, Value)> {
    let text = || json!({ "type": "string" });
    let maybe_text = || json!({ "type": ["string", "null"] });
    let int = || json!({ "type": "integer" });
    let decimal = || json!({ "type": "string", "description": "exact decimal" });
    let maybe_decimal = || json!({ "type": ["string", "null"] });
    let list = |item: Value| json!({ "type": "array", "items": item });
    let any = || json!({});
    let assignment = object(
        &[
            ("assignment_id", text()),
            ("version", int()),
            ("worker_id", text()),
            ("project_code", text()),
            ("start", text()),
            ("end", text()),
            ("hours", decimal()),
            (
                "state",
                json!({ "enum": ["tentative", "soft", "hard", "approved", "cancelled"] }),
            ),
        ],
        &[("role", text())],
    );
    let attributes = [
        ("legal_entity", maybe_text()),
        ("region", maybe_text()),
        ("role", maybe_text()),
        ("grade", maybe_text()),
        ("cost_center", maybe_text()),
    ];
    let mut worker_fields = vec![
        ("worker_id", text()),
        ("status", maybe_text()),
        (
            "history",
            list(object(
                &[
                    ("event_type", text()),
                    ("state", maybe_text()),
                    ("effective_date", text()),
                ],
                &attributes,
            )),
        ),
    ];
    worker_fields.extend(attributes.iter().cloned());
    vec![
        (
            "EventStatus",
            object(
                &[
                    ("source", text()),
                    ("id", text()),
                    (
                        "status",
                        json!({ "enum": ["pending", "applied", "recorded", "held", "dropped", "blocked", "quarantined"] }),
                    ),
                    ("lines", list(schema("InvoiceLine"))),
                    ("exceptions", list(schema("Exception"))),
                ],
                &[
                    ("type", text()),
                    ("seq", int()),
                    ("correlation_id", maybe_text()),
                    ("data", any()),
                    ("raw", any()),
                    ("steps", list(any())),
                    ("conflicts", list(any())),
                ],
            ),
        ),
        (
            "Project",
            object(
                &[
                    ("project_code", text()),
                    ("name", text()),
                    ("opportunity_id", text()),
                    (
                        "ids",
                        object(
                            &[("crm", text())],
                            &[("psa", maybe_text()), ("erp", maybe_text())],
                        ),
                    ),
                    (
                        "customer",
                        object(
                            &[("customer_id", text()), ("legal_name", text())],
                            &[("hub_customer_id", maybe_text()), ("tax_id", maybe_text())],
                        ),
                    ),
                    (
                        "billing_rules",
                        object(
                            &[
                                ("contract_id", text()),
                                ("billing_model", text()),
                                ("currency", text()),
                                ("rate_card_id", text()),
                                ("milestones", list(any())),
                                ("amendments", list(any())),
                            ],
                            &[
                                ("cap", maybe_decimal()),
                                ("start", text()),
                                ("end", maybe_text()),
                            ],
                        ),
                    ),
                    ("schedule_version", json!({ "type": ["integer", "null"] })),
                    (
                        "backlog",
                        object(
                            &[("billed", decimal())],
                            &[
                                ("currency", maybe_text()),
                                ("contract_value", maybe_decimal()),
                                ("not_yet_billed", maybe_decimal()),
                            ],
                        ),
                    ),
                    ("steps", list(any())),
                ],
                &[
                    ("legal_entity", text()),
                    ("region", text()),
                    ("service_line", text()),
                    ("correlation_id", text()),
                    ("created_at", text()),
                ],
            ),
        ),
        (
            "ProjectSummary",
            object(
                &[
                    ("project_code", text()),
                    ("customer_id", text()),
                    ("contract_id", text()),
                    ("billing_model", text()),
                    ("currency", text()),
                ],
                &[
                    ("name", text()),
                    ("legal_entity", text()),
                    ("region", text()),
                    ("opportunity_id", text()),
                    ("hub_customer_id", maybe_text()),
                    ("amendments", int()),
                ],
            ),
        ),
        (
            "Customer",
            object(
                &[
                    ("hub_customer_id", text()),
                    ("legal_name", text()),
                    (
                        "aliases",
                        list(object(
                            &[
                                ("source", text()),
                                ("customer_id", text()),
                                ("legal_name", text()),
                            ],
                            &[("tax_id", maybe_text())],
                        )),
                    ),
                    ("projects", list(text())),
                ],
                &[
                    ("tax_id", maybe_text()),
                    ("country", text()),
                    ("currency", text()),
                    ("master_from_owner", json!({ "type": "boolean" })),
                ],
            ),
        ),
        (
            "Worker",
            object(
                &worker_fields,
                &[
                    ("status_since", maybe_text()),
                    ("name", maybe_text()),
                    ("email", maybe_text()),
                    ("assignments", list(any())),
                ],
            ),
        ),
        (
            "Forecast",
            object(
                &[
                    ("project_code", text()),
                    ("currency", text()),
                    ("revenue", decimal()),
                    ("cost", decimal()),
                    ("margin", decimal()),
                    ("margin_pct", maybe_decimal()),
                    ("left_out", int()),
                    (
                        "assignments",
                        list(object(
                            &[
                                ("assignment_id", text()),
                                ("version", int()),
                                ("worker_id", text()),
                                ("hours", decimal()),
                                ("revenue", maybe_decimal()),
                                ("cost", maybe_decimal()),
                            ],
                            &[("missing", list(text()))],
                        )),
                    ),
                ],
                &[],
            ),
        ),
        (
            "Invoice",
            object(
                &[
                    ("invoice_id", text()),
                    (
                        "status",
                        json!({ "enum": ["draft", "posted", "sent", "paid", "disputed", "void"] }),
                    ),
                    ("lines", list(int())),
                    ("amount", decimal()),
                    (
                        "history",
                        list(object(&[("status", text()), ("at", text())], &[])),
                    ),
                ],
                &[
                    ("project_code", maybe_text()),
                    ("currency", maybe_text()),
                    ("crm_status", maybe_text()),
                    ("crm_updated_at", maybe_text()),
                ],
            ),
        ),
        (
            "RateCard",
            object(
                &[
                    ("rate_card_id", text()),
                    ("currency", text()),
                    (
                        "rates",
                        list(object(
                            &[
                                ("role", text()),
                                ("region", text()),
                                ("rate", decimal()),
                                ("valid_from", text()),
                            ],
                            &[("valid_to", maybe_text())],
                        )),
                    ),
                ],
                &[],
            ),
        ),
        (
            "FxRate",
            object(
                &[
                    ("from", text()),
                    ("to", text()),
                    ("valid_on", text()),
                    ("rate", decimal()),
                ],
                &[],
            ),
        ),
        ("Assignment", assignment),
        (
            "Summary",
            object(
                &[
                    ("events", int()),
                    ("lines_posted", int()),
                    ("approved_value", any()),
                    ("posted_value", any()),
                    ("held_value", any()),
                    ("conservation_holds", json!({ "type": "boolean" })),
                ],
                &[
                    ("exceptions_by_owner", any()),
                    ("duplicates_suppressed", int()),
                    (
                        "straight_through_rate",
                        json!({ "type": ["number", "null"] }),
                    ),
                    (
                        "entity_onboarding_seconds",
                        json!({ "type": "object", "description": "per legal entity a configuration reload added: seconds from the reload to its first posted line (null until then)",
                                "additionalProperties": { "type": ["number", "null"] } }),
                    ),
                ],
            ),
        ),
        (
            "Systems",
            json!({ "type": "object", "additionalProperties": schema("System") }),
        ),
        (
            "CaseAction",
            object(&[("exception", schema("Exception"))], &[("outcome", any())]),
        ),
        (
            "Transaction",
            object(
                &[
                    ("correlation_id", text()),
                    ("outcome", text()),
                    (
                        "steps",
                        list(object(
                            &[("at", text()), ("step", text())],
                            &[("system", maybe_text()), ("detail", maybe_text())],
                        )),
                    ),
                    ("flow_steps", list(any())),
                    ("lines", list(schema("InvoiceLine"))),
                    ("exceptions", list(schema("Exception"))),
                ],
                &[("deliveries", list(any()))],
            ),
        ),
        (
            "Replayed",
            object(&[("id", text()), ("state", text())], &[]),
        ),
        (
            "QuarantineReplayed",
            object(
                &[("quarantine_id", int()), ("result", schema("IngestResult"))],
                &[],
            ),
        ),
        (
            "System",
            object(
                &[
                    ("roles", list(json!({ "enum": ["source", "target"] }))),
                    ("owns", list(text())),
                ],
                &[
                    ("last_seen", maybe_text()),
                    ("kind", text()),
                    ("breaker", any()),
                    ("target", any()),
                ],
            ),
        ),
    ]
}

/// The paths this document describes, as `(method, path)`.
/// The catalog's answer: systems by name (built apart: the document's one `json!` is deep).
fn catalog_answer() -> Value {
    json!({ "type": "object", "properties": { "systems": { "type": "object",
        "additionalProperties": { "type": "object", "properties": {
            "owns": { "type": "array", "items": { "type": "string" } },
            "owner_team": { "type": "string" },
            "inbound": { "type": "array", "items": { "type": "object" } },
            "outbound": { "type": ["object", "null"] },
            "flows": { "type": "array", "items": { "type": "string" } },
            "health": { "type": "object" } } } } } })
}

/// `POST /v1/mappings/replay`: its body and answer (built apart, as the catalog's).
fn replay_operation() -> Value {
    let mut operation = op(
        "Map a source's kept payloads again under another version of their mappings: per stored event mapped by version `from`, the record before and after (`changes` by field) and, on a dry run, what the flows would write (`downstream`: lines, steps, cases, entries); without dry_run each changed record is taken in once as `<event id>~v<to>` under the original's correlation id. An event a later one superseded is left alone",
        json!({ "type": "object", "required": ["source", "from", "to", "dry_run", "examined", "counts", "events"], "properties": {
            "source": { "type": "string" }, "from": { "type": "integer" }, "to": { "type": "integer" }, "dry_run": { "type": "boolean" },
            "examined": { "type": "integer" }, "counts": { "type": "object", "additionalProperties": { "type": "integer" } },
            "events": { "type": "array", "items": { "type": "object", "required": ["seq", "event_id", "from_mapping", "to_mapping", "status", "changes"], "properties": {
                "seq": { "type": "integer" }, "event_id": { "type": "string" }, "correlation_id": { "type": "string" },
                "from_mapping": { "type": "string" }, "to_mapping": { "type": "string" }, "replayed_as": { "type": "string" },
                "status": { "type": "string", "enum": ["unchanged", "changed", "applied", "already_replayed", "superseded", "error"] },
                "before": { "type": "object" }, "after": { "type": "object" },
                "changes": { "type": "array", "items": { "type": "object", "properties": { "field": { "type": "string" }, "before": {}, "after": {} } } },
                "error": { "type": "string" }, "downstream": { "type": "object" }, "result": { "type": "object" } } } } } }),
        &["400", "401", "403", "404", "422"],
    );
    operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["source", "from", "to"], "additionalProperties": false, "properties": {
        "source": { "type": "string" }, "from": { "type": "integer", "minimum": 1 }, "to": { "type": "integer", "minimum": 1 },
        "since": { "type": "string", "description": "YYYY-MM-DD (UTC) or RFC 3339: only payloads received since" },
        "dry_run": { "type": "boolean", "default": false } } } } } });
    operation
}

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

/// The whole document: paths and components, with a schema per event type's `data`.
pub fn build() -> Value {
    let mut doc = paths_and_components();
    for (name, data) in event_data_schemas() {
        doc["components"]["schemas"][format!("data.{name}")] = data;
    }
    for (name, answer) in answer_schemas() {
        doc["components"]["schemas"][name] = answer;
    }
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), costing_paths()) {
        paths.extend(more);
    }
    doc
}

/// The routes of costing and the resource view.
fn costing_paths() -> Value {
    json!({
            "/v1/payroll": { "post": payroll_operation() },
            "/v1/reports/leakage": { "get": with_params(op("Revenue leakage: approved but unbilled, billed but not approved, rate mismatches, duplicates and contract terms the ERP holds otherwise, from the hub's records against what the ERP holds, with counts and amounts per currency", schema("Leakage"), &["400", "401", "503"]),
                json!([query_param("period", "YYYY-MM (default: all time)")])) },
            "/v1/resources": { "get": with_params(op("The trusted resource view of each worker: HRIS identity and employment, PSA availability, cost rates; the month's approved hours, capacity and utilization; fields the systems disagree on; name and email for admin, hr and auditor only", page_of("Resource"), &["400", "401"]),
                { let mut p = vec![query_param("legal_entity", "only this entity's"), query_param("region", "only this region's"), query_param("month", "YYYY-MM (default: this month)")]; p.extend(paging()); Value::Array(p) }) },
            "/v1/resources/{worker_id}": { "get": with_params(op("One worker's resource view", schema("Resource"), &["400", "401", "404"]),
                json!([path_param("worker_id", "string"), query_param("month", "YYYY-MM (default: this month)")])) },
            "/v1/projects/{project_code}/cost-variance": { "get": with_params(op("Actual (payroll spread pro rata to hours) against standard cost per worker for one month, computed from the approved hours as they stand", schema("CostVariance"), &["400", "401", "404"]),
                json!([path_param("project_code", "string"), query_param("period", "the month, YYYY-MM (required)")])) },
            "/v1/quarantine/{id}/replay": { "post": with_params(op("Replay a quarantined event: the corrected event in the body, or the stored one", schema("QuarantineReplayed"), &["400", "401", "403", "404", "409", "422"]), json!([path_param("id", "integer")])) },
            "/v1/reports/shadow": { "get": with_params(op("A route in shadow mode: what its primary and shadow ERPs hold of the work it matches, compared per entry line (present in both, quantity, amount, currency) and per invoice (each project's month); ready when there is no difference", json!({ "type": "object", "required": ["route", "primary", "shadow", "ready", "differences"], "properties": {
                "route": { "type": "string" }, "primary": { "type": "string" }, "shadow": { "type": "string" }, "period": { "type": ["string", "null"] },
                "primary_lines": { "type": "integer" }, "shadow_lines": { "type": "integer" }, "invoices": { "type": "integer" }, "ready": { "type": "boolean" },
                "differences": { "type": "array", "items": { "type": "object", "required": ["kind", "key", "project_code", "detail"], "properties": {
                    "kind": { "type": "string", "enum": ["missing_in_primary", "missing_in_shadow", "quantity", "amount", "currency", "invoice_total"] },
                    "key": { "type": "string" }, "entry_id": { "type": "string" }, "project_code": { "type": "string" }, "period": { "type": "string" },
                    "primary": { "type": ["string", "null"] }, "shadow": { "type": ["string", "null"] }, "detail": { "type": "string" } } } } } }), &["400", "401", "404", "409", "422", "503"]),
                json!([query_param("route", "the [[routes]] name (required)"), query_param("period", "YYYY-MM (default: all time)")])) },
            "/v1/reports/onboarding": { "get": op("Each legal entity added by a configuration reload: when, its first posted line, and entity_onboarding_seconds between them", json!({ "type": "object", "required": ["items"], "properties": { "items": { "type": "array", "items": { "type": "object", "properties": {
                "legal_entity": { "type": "string" }, "configured_at": { "type": "string" }, "first_posted_at": { "type": ["string", "null"] }, "entity_onboarding_seconds": { "type": ["number", "null"] } } } } } }), &["401", "503"]) },
            "/v1/config/reload": { "post": op("Reload the configuration file serve was started with: its routes, default ERP and legal entities take effect for the next events; work already routed keeps its ERP (also on SIGHUP)", json!({ "type": "object", "properties": {
                "reloaded_at": { "type": "string" }, "routes": { "type": "array", "items": { "type": "string" } }, "default_erp": { "type": "string" },
                "legal_entities_added": { "type": "array", "items": { "type": "string" } }, "legal_entities_removed": { "type": "array", "items": { "type": "string" } } } }), &["401", "403", "409", "422"]) }
    })
}

fn paths_and_components() -> Value {
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
                schema("CaseAction"),
                &["400", "401", "403", "404", "409", "422"],
            ),
            json!([path_param("id", "integer")]),
        )
    };
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "pshub", "version": env!("CARGO_PKG_VERSION"),
                  "description": "The integration hub for professional-services firms. Every route but /healthz needs 'Authorization: Bearer <token>'." },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
                "EventOfType": { "oneOf": event_data_schemas().iter().map(|(name, _)| json!({ "type": "object",
                    "properties": { "type": { "const": name }, "data": schema(&format!("data.{name}")) } })).collect::<Vec<_>>() },
                "Event": { "type": "object", "required": ["id", "source", "type", "schema_version", "occurred_at", "data"],
                    "allOf": [schema("EventOfType")], "properties": {
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
                    "overtime_hours": { "type": ["string", "null"], "description": "of quantity, the overtime hours billed at the region's bill_multiplier" },
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
                "Quarantined": { "type": "object", "properties": { "id": { "type": "integer" },
                    "kind": { "enum": ["event", "payroll_row"] }, "field": { "type": "string" },
                    "file": { "type": ["string", "null"], "description": "payroll_row: the file" }, "line": { "type": ["integer", "null"], "description": "payroll_row: its physical line (the header is 1)" },
                    "raw": { "type": "string", "description": "payroll_row: the row as it was" },
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
            "/v1/hooks/{source}": { "post": {
                "summary": "A source's webhook ([sources.<name>] connector = \"webhook\"): signed with X-Signature: sha256=<hex HMAC-SHA256(secret, raw body)> or Stripe-Signature: t=...,v1=...; no bearer token. The body is mapped to a canonical event by the source's mapping and kept as it arrived",
                "security": [],
                "parameters": [path_param("source", "string")],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "description": "the vendor's record, in its published format" } } } },
                "responses": {
                    "200": { "description": "one result: applied, duplicate, quarantined (the mapping failed: mapping, version, path and value named), or ignored (a record the mapping does not take)", "content": { "application/json": { "schema": { "type": "object", "properties": { "results": { "type": "array", "items": schema("IngestResult") } } } } } },
                    "401": { "description": "the signature is missing, does not match, or is outside the tolerance window; the request is kept in the quarantine as unverified_payload and never applied" },
                    "404": { "description": "no webhook source of this name is configured" },
                    "413": { "description": "the body is larger than 1 MiB" },
                    "503": { "description": "the store could not commit; nothing was recorded" } } } },
            "/v1/events/{source}/{id}": { "get": with_params(op("Where an event stands: pending, applied, recorded (kept, no flow acts on it yet), held, blocked or quarantined", schema("EventStatus"), &["401", "404"]),
                json!([path_param("source", "string"), path_param("id", "string")])) },
            "/v1/projects/{project_code}": { "get": with_params(op("A project: its ids in each system, customer, billing rules and provisioning steps", schema("Project"), &["401", "404"]), json!([path_param("project_code", "string")])) },
            "/v1/customers": { "get": with_params(op("Customers as the hub knows them: one per company, with each system's record as an alias", page_of("Customer"), &["400", "401"]), Value::Array(paging())) },
            "/v1/customers/{customer_id}": { "get": with_params(op("One customer, by hub id or by any system's customer id: master record, aliases and projects", schema("Customer"), &["401", "404"]), json!([path_param("customer_id", "string")])) },
            "/v1/workers": { "get": with_params(op("Workers as the HRIS's changes made them; name and email for admin, hr and auditor only", page_of("Worker"), &["400", "401"]), Value::Array(paging())) },
            "/v1/workers/{worker_id}": { "get": with_params(op("One worker: status, attributes, history of changes with their dates, assignments; name and email for admin, hr and auditor only", schema("Worker"), &["401", "404"]), json!([path_param("worker_id", "string")])) },
            "/v1/projects/{project_code}/forecast": { "get": with_params(op("Forecast revenue, cost and margin over the approved assignments; an assignment with a missing rate shows it null with the reason and is left out of the totals", schema("Forecast"), &["401", "404"]), json!([path_param("project_code", "string")])) },
            "/v1/invoices/{invoice_id}": { "get": with_params(op("An invoice (one per project and month): its posted lines, amount, status as the ERP reported it, history, and the status last written to the CRM", schema("Invoice"), &["401", "404"]), json!([path_param("invoice_id", "string")])) },
            "/v1/projects": { "get": with_params(op("Projects the hub provisioned, by code", page_of("ProjectSummary"), &["400", "401"]), { let mut p = vec![query_param("customer_id", "only this customer's"), query_param("legal_entity", "only this entity's")]; p.extend(paging()); Value::Array(p) }) },
            "/v1/rate-cards": { "get": with_params(op("Rate cards with their rows and effective dates", page_of("RateCard"), &["400", "401"]), Value::Array(paging())) },
            "/v1/fx-rates": { "get": with_params(op("FX rates by pair and date", page_of("FxRate"), &["400", "401"]), { let mut p = vec![query_param("from", "ISO 4217 code"), query_param("to", "ISO 4217 code")]; p.extend(paging()); Value::Array(p) }) },
            "/v1/assignments": { "get": with_params(op("Assignments, latest version of each", page_of("Assignment"), &["400", "401"]), { let mut p = vec![query_param("project_code", "only this project's"), query_param("worker_id", "only this worker's")]; p.extend(paging()); Value::Array(p) }) },
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
            "/v1/transactions/{correlation_id}": { "get": with_params(op("Timeline of a transaction", schema("Transaction"), &["401", "404"]), json!([path_param("correlation_id", "string")])) },
            "/v1/dead-letters": { "get": with_params(op("Steps that gave up after their retries", page_of("DeadLetter"), &["400", "401"]), Value::Array(paging())) },
            "/v1/dead-letters/{id}/replay": { "post": with_params(op("Send a dead letter again", schema("Replayed"), &["400", "401", "403", "404", "409"]), json!([path_param("id", "string")])) },
            "/v1/quarantine": { "get": with_params(op("Quarantined (malformed) events and refused payroll rows", page_of("Quarantined"), &["400", "401"]), Value::Array(paging())) },
            "/v1/summary": { "get": op("Figures of the current store: events, lines, exceptions, money by currency", schema("Summary"), &["401"]) },
            "/v1/systems": { "get": op("What each connected system says of itself", schema("Systems"), &["401"]) },
            "/v1/mappings/replay": { "post": replay_operation() },
            "/v1/catalog": { "get": op("The integration catalog: per configured system, the domains it owns and its owner team, its inbound connectors (transport, mappings with their versions) and outbound connector, the flows that use it, and its health (last seen, last success, calls, error rate, breaker)", catalog_answer(), &["401"]) },
        }
    });
    // Beside the literal, which is at the macro's recursion limit.
    doc["paths"]["/v1/xref/{kind}/{id}"] = json!({ "get": with_params(op("The id registry: every system's id of one project or customer, asked by the hub's id or any system's", xref_answer(), &["400", "401", "404"]), json!([path_param("kind", "string"), path_param("id", "string")])) });
    doc
}

/// `POST /v1/payroll`: a `text/csv` body.
fn payroll_operation() -> Value {
    with_params(
        json!({
                "summary": "Load a payroll file (admin, finance): one transaction; bad rows are refused with their line and kept in quarantine, good rows load all the same; the cases they imply open afterwards",
                "requestBody": { "required": true, "content": { "text/csv": { "schema": { "type": "string", "description": "a header row, then worker_id,period,gross_cost,currency in any order; RFC 4180, LF or CRLF, optional BOM" } } } },
                "responses": {
                    "200": { "description": "what was stored", "content": { "application/json": { "schema": schema("PayrollLoaded") } } },
                    "401": { "description": "no valid token" }, "403": { "description": "role may not load payroll" }, "413": { "description": "body too large" },
                    "415": { "description": "not text/csv" }, "422": { "description": "the file has no header or lacks a column" } } }),
        json!([query_param(
            "file",
            "the file's name, for the quarantine and the cases (default request)"
        )]),
    )
}

pub async fn document() -> Json<Value> {
    Json(build())
}

/// Whether `value` fits `schema` (the subset of JSON Schema this document uses: `$ref`,
/// `type`, `required`, `properties`, `additionalProperties`, `items`, `enum`, `const`,
/// `oneOf`, `allOf`); answers
/// the first misfit with its path. The tests check real answers and events with it.
pub fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let found = &doc["components"]["schemas"][name];
        if found.is_null() {
            return Err(format!("{at}: the document has no schema {name}"));
        }
        return check(doc, found, value, at);
    }
    let kind_of = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let kinds: Vec<&str> = match &schema["type"] {
        Value::String(k) => vec![k.as_str()],
        Value::Array(ks) => ks.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = kind_of(value);
    if !kinds.is_empty()
        && !kinds
            .iter()
            .any(|k| *k == kind || (*k == "number" && kind == "integer"))
    {
        return Err(format!("{at}: a {kind}, where the document says {kinds:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is none of {allowed:?}"));
    }
    if !schema["const"].is_null() && &schema["const"] != value {
        return Err(format!("{at}: {value} is not {}", schema["const"]));
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            check(doc, part, value, at)?;
        }
    }
    if let Some(any) = schema["oneOf"].as_array() {
        let fits = any
            .iter()
            .filter(|s| check(doc, s, value, at).is_ok())
            .count();
        if fits != 1 {
            let why: Vec<String> = any
                .iter()
                .filter_map(|s| check(doc, s, value, at).err())
                .take(3)
                .collect();
            return Err(format!(
                "{at}: fits {fits} of the document's alternatives ({why:?})"
            ));
        }
    }
    if let Value::Object(map) = value {
        for field in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(field) {
                return Err(format!("{at}: {field} is missing"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, sub) in properties {
                if let Some(found) = map.get(name) {
                    check(doc, sub, found, &format!("{at}.{name}"))?;
                }
            }
        }
        if schema["additionalProperties"].is_object() {
            for (name, found) in map {
                check(
                    doc,
                    &schema["additionalProperties"],
                    found,
                    &format!("{at}.{name}"),
                )?;
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, found) in items.iter().enumerate() {
            check(doc, item, found, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// `GET /v1/xref/{kind}/{id}`'s answer.
fn xref_answer() -> Value {
    json!({ "type": "object", "properties": {
        "kind": { "type": "string" }, "id": { "type": "string", "description": "the hub's own id" },
        "ids": { "type": "object", "description": "by system (hub, crm, psa, erp, ...)" },
        "entries": { "type": "array", "items": { "type": "object" } }
    } })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_checker_refuses_what_does_not_fit() {
        let doc = super::build();
        let event = serde_json::json!({ "id": "x", "source": "psa", "type": "milestone.reached", "schema_version": 1,
            "occurred_at": "2026-03-04T17:02:11Z", "data": { "milestone_id": "M-1", "contract_id": "K-1", "reached_on": "2026-03-10" } });
        let schema = super::schema("Event");
        assert_eq!(super::check(&doc, &schema, &event, "event"), Ok(()));
        let mut missing = event.clone();
        missing["data"]
            .as_object_mut()
            .unwrap()
            .remove("reached_on");
        assert!(super::check(&doc, &schema, &missing, "event").is_err());
        let mut other = event.clone();
        other["type"] = serde_json::json!("time_entry.approved");
        assert!(super::check(&doc, &schema, &other, "event").is_err());
    }

    #[test]
    fn every_reference_in_the_document_names_a_schema_it_has() {
        fn refs(value: &serde_json::Value, found: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(r) = map.get("$ref").and_then(|r| r.as_str()) {
                        found.push(r.trim_start_matches("#/components/schemas/").to_string());
                    }
                    map.values().for_each(|v| refs(v, found));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let doc = super::build();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 40);
        for name in found {
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "no schema {name}"
            );
        }
    }

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

//! Wire shapes: rows as the API answers them. Decimals are strings; ids are numbers.

use crate::error::ApiError;
use pshub_engine::hub::IngestResult;
use pshub_engine::store::{
    CaseRow, LineRow, Outbound, OutboxRow, Page, QuarantineRow, line_idempotency_key,
};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn ingest_result(r: &IngestResult) -> Value {
    let mut value =
        json!({ "id": r.id, "status": r.status.as_str(), "correlation_id": r.correlation_id });
    if let Some(reason) = &r.reason {
        value["reason"] = json!(reason);
    }
    value
}

pub fn line(l: &LineRow) -> Value {
    json!({
        "id": l.id,
        "erp_id": l.erp_id,
        "kind": l.kind.as_str(),
        "status": l.status.as_str(),
        "source_id": l.source_id,
        "project_code": l.project_code,
        "worker_id": l.worker_id,
        "date": l.date.to_string(),
        "quantity": l.quantity.to_string(),
        "rate": l.rate.to_string(),
        "rate_currency": l.rate_currency.code(),
        "fx_rate": l.fx_rate.map(|r| r.to_string()),
        "amount": l.amount.to_string(),
        "currency": l.currency.code(),
        "tax_code": l.tax_code,
        "billing_class": l.billing_class,
        "reverses": l.reverses,
        "correlation_id": l.correlation_id,
        "created_at": l.created_at,
        "posted_at": l.posted_at,
        "attempts": l.attempts,
        "last_error": l.last_error,
    })
}

/// A line whose delivery gave up, as a dead letter.
pub fn dead_line(l: &LineRow) -> Value {
    json!({
        "id": Outbound::Line(l.id).to_string(),
        "target": "erp",
        "operation": "post_line",
        "idempotency_key": line_idempotency_key(l.id),
        "state": "dead",
        "attempts": l.attempts,
        "last_error": l.last_error,
        "correlation_id": l.correlation_id,
        "source_id": l.source_id,
        "amount": l.amount.to_string(),
        "currency": l.currency.code(),
    })
}

pub fn case(c: &CaseRow) -> Value {
    let value = c.value.zip(c.currency).map(
        |(amount, currency)| json!({ "amount": amount.to_string(), "currency": currency.code() }),
    );
    let sla_due_at = chrono::DateTime::parse_from_rfc3339(&c.created_at)
        .ok()
        .map(|t| {
            (t + chrono::Duration::hours(48)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
    json!({
        "id": c.id,
        "kind": c.kind,
        "owner": c.owner.as_str(),
        "business_key": c.business_key,
        "state": c.state.as_str(),
        "reason": c.reason,
        "suggested_fix": c.suggested_fix,
        "correlation_id": c.correlation_id,
        "value": value,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "sla_due_at": sla_due_at,
        "resolution": c.resolution,
    })
}

pub fn quarantined(q: &QuarantineRow) -> Value {
    let raw: Value = serde_json::from_str(&q.raw).unwrap_or(Value::String(q.raw.clone()));
    json!({
        "id": q.id,
        "source": q.source,
        "event_id": q.event_id,
        "field": q.field,
        "reason": q.reason,
        "received_at": q.received_at,
        "state": q.state,
        "replayed_seq": q.replayed_seq,
        "event": raw,
    })
}

pub fn outbox(o: &OutboxRow) -> Value {
    json!({
        "id": Outbound::Call(o.id).to_string(),
        "target": o.target,
        "operation": o.operation.as_str(),
        "idempotency_key": o.idempotency_key,
        "state": o.state.as_str(),
        "attempts": o.attempts,
        "last_error": o.last_error,
        "correlation_id": o.correlation_id,
    })
}

/// `limit` and `cursor` of list endpoints.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1_000;

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = match &self.limit {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_parameter",
                        format!("limit: '{raw}' is not a whole number from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        let after = match &self.cursor {
            None => 0,
            Some(raw) => raw.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("cursor: '{raw}' is not a cursor this API gave out"),
                )
            })?,
        };
        Ok(Page { after, limit })
    }
}

/// `{"items": [...], "next": cursor-or-null}`: `next` is set when the page is full.
pub fn page_of<T>(rows: &[T], page: Page, id: fn(&T) -> i64, render: fn(&T) -> Value) -> Value {
    let next = (rows.len() as u32 >= page.limit)
        .then(|| rows.last().map(|r| id(r).to_string()))
        .flatten();
    json!({ "items": rows.iter().map(render).collect::<Vec<_>>(), "next": next })
}

/// Reads an optional closed-set query parameter, naming it when the value is unknown.
pub fn parse_param<T>(
    name: &str,
    raw: &Option<String>,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, ApiError> {
    match raw {
        None => Ok(None),
        Some(text) => parse(text).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("{name}: '{text}' is not one of {allowed}"),
            )
        }),
    }
}

/// Personal fields of the canonical records (PRODUCT.md section 4).
pub const PII_FIELDS: [&str; 2] = ["name", "email"];

/// Removes personal fields from every object in `value`, for the viewer role.
pub fn strip_pii(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for field in PII_FIELDS {
                map.remove(field);
            }
            map.values_mut().for_each(strip_pii);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_pii),
        _ => {}
    }
}

//! Wire shapes: rows as the API answers them. Decimals are strings; ids are numbers.

use crate::error::ApiError;
use pshub_engine::IngestResult;
use pshub_engine::store::{
    CaseRow, ConflictRow, DeliveredLine, LineStatus, OutboundRow, Page, QuarantineRow, StepRow,
    StepState,
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

/// A stored JSON text as JSON (or as the string it is, if it does not read).
pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

pub fn line(l: &DeliveredLine) -> Value {
    let (line, step) = (&l.line, &l.step);
    let posted = step.state == StepState::Done;
    json!({
        "id": line.id,
        "erp_id": if posted { step.result.clone() } else { None },
        "kind": line.kind.as_str(),
        "status": LineStatus::of(step.state).as_str(),
        "source_id": line.source_id,
        "posting": line.posting,
        "project_code": line.project_code,
        // A milestone's line is no one's work.
        "worker_id": (!line.worker_id.is_empty()).then_some(&line.worker_id),
        "date": line.date.to_string(),
        "quantity": line.quantity.to_string(),
        "rate": line.rate.to_string(),
        "rate_currency": line.rate_currency.code(),
        "fx_rate": line.fx_rate.map(|r| r.to_string()),
        "amount": line.amount.to_string(),
        "currency": line.currency.code(),
        "tax_code": line.tax_code,
        "billing_class": line.billing_class,
        "overtime_hours": line.overtime_hours.map(|h| h.to_string()),
        "invoice_id": pshub_engine::flows::invoice_status::invoice_id(&line.project_code, line.date),
        "reverses": line.reverses,
        "correlation_id": line.correlation_id,
        "created_at": line.created_at,
        "posted_at": step.done_at,
        "attempts": step.attempts,
        "last_error": step.last_error,
        "step_id": step.id,
        "system": step.system,
    })
}

/// A step of a flow: what it calls, how often it tried, and what the target answered.
pub fn step(s: &StepRow) -> Value {
    json!({
        "id": s.id,
        "flow": s.flow,
        "step": s.step,
        "system": s.system,
        "operation": s.qualified_name(),
        "idempotency_key": s.idempotency_key(),
        "state": s.state.as_str(),
        "waits_on": s.waits_on,
        "attempts": s.attempts,
        "result": s.result,
        "last_error": s.last_error,
        "outcome_unknown": s.outcome_unknown,
        "correlation_id": s.correlation_id,
        "created_at": s.created_at,
        "done_at": s.done_at,
    })
}

/// A step that gave up after its retries, as a dead letter: `line-N` for the step that posts
/// invoice line N, `call-N` for step N otherwise.
pub fn dead_letter(s: &StepRow, line: Option<&pshub_engine::store::LineRow>) -> Value {
    let name = match line {
        Some(line) => format!("line-{}", line.id),
        None => format!("call-{}", s.id),
    };
    json!({
        "id": name,
        "target": s.system,
        "operation": s.qualified_name(),
        "idempotency_key": s.idempotency_key(),
        "state": "dead",
        "attempts": s.attempts,
        "last_error": s.last_error,
        "correlation_id": s.correlation_id,
        "step_id": s.id,
        "source_id": line.map(|l| l.source_id.clone()),
        "amount": line.map(|l| l.amount.to_string()),
        "currency": line.map(|l| l.currency.code().to_string()),
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
        "flow": c.flow,
        "step_id": c.step_id,
        "value": value,
        "evidence": c.evidence.as_deref().map(json_of),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "sla_due_at": sla_due_at,
        "resolution": c.resolution,
    })
}

pub fn quarantined(q: &QuarantineRow) -> Value {
    if q.kind == pshub_engine::store::QUARANTINE_PAYROLL_ROW {
        return json!({
            "id": q.id,
            "kind": q.kind,
            "file": q.file,
            "line": q.line,
            "raw": q.raw,
            "reason": q.reason,
            "received_at": q.received_at,
            "state": q.state,
            "replayed_seq": q.replayed_seq,
        });
    }
    let mut answer = json!({
        "id": q.id,
        "kind": q.kind,
        "source": q.source,
        "event_id": q.event_id,
        "field": q.field,
        "reason": q.reason,
        "received_at": q.received_at,
        "state": q.state,
        "replayed_seq": q.replayed_seq,
        "event": json_of(&q.raw),
    });
    // A row of a CSV drop says where it was read.
    if let (Some(file), Some(line)) = (&q.file, q.line) {
        answer["file"] = json!(file);
        answer["line"] = json!(line);
    }
    answer
}

pub fn conflict(c: &ConflictRow) -> Value {
    json!({
        "id": c.id,
        "source": c.source,
        "event_id": c.event_id,
        "original_seq": c.original_seq,
        "type": c.event_type,
        "data": json_of(&c.data),
        "raw": json_of(&c.raw),
        "received_at": c.received_at,
        "case_id": c.case_id,
    })
}

pub fn outbound(o: &OutboundRow) -> Value {
    json!({
        "id": o.id,
        "type": o.event_type,
        "key": o.key,
        "data": json_of(&o.data),
        "correlation_id": o.correlation_id,
        "published_at": o.published_at,
    })
}

/// The events of outbound rows as the stream's readers see them (`GET /v1/outbound` and the
/// bus's `pshub.out.<type>`): a row of posted lines is one event per line, each shown as the
/// line is, in the row's place in the stream; a case opened shows the case; with a target's
/// `policy`, its masking applied and personal fields of `resource.changed` left out unless
/// it is allowed them.
pub fn outbound_events(
    r: &mut dyn pshub_engine::store::StoreReader,
    rows: &[OutboundRow],
    policy: Option<&pshub_engine::config::Masking>,
) -> pshub_engine::error::Result<Vec<Value>> {
    let mut items = Vec::new();
    for row in rows {
        let mut item = outbound(row);
        if item["type"] == pshub_engine::flows::EXCEPTION_OPENED
            && let Some(id) = item["data"]["case_id"].as_i64()
            && let Some(case) = r.case(id)?
        {
            item["data"] = self::case(&case);
        }
        if item["type"] != pshub_engine::delivery::INVOICE_LINE_POSTED {
            items.push(item);
            continue;
        }
        let ids: Vec<i64> = item["data"]["line_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .collect();
        for id in ids {
            if let Some(line) = r.line(id)? {
                let mut event = item.clone();
                event["key"] = json!(format!("line:{id}"));
                event["correlation_id"] = json!(line.line.correlation_id);
                event["data"] = self::line(&line);
                items.push(event);
            }
        }
    }
    if let Some(policy) = policy {
        for item in &mut items {
            if item["type"] == pshub_engine::flows::resources::RESOURCE_CHANGED
                && let Some(data) = item["data"].as_object_mut()
            {
                for field in PII_FIELDS {
                    if !policy.allow.iter().any(|a| a == field) {
                        data.remove(field);
                    }
                }
            }
            mask(&mut item["data"], policy);
        }
    }
    Ok(items)
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

/// The page of a list held in memory (reference data): the items after the cursor's
/// position, each with its position (1-based), which is the next page's cursor.
pub fn positions<T>(items: impl Iterator<Item = T>, page: Page) -> Vec<(i64, T)> {
    let after = usize::try_from(page.after).unwrap_or(usize::MAX);
    items
        .enumerate()
        .skip(after)
        .take(page.limit as usize)
        .map(|(i, item)| (i64::try_from(i + 1).unwrap_or(i64::MAX), item))
        .collect()
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

/// Applies a target's masking policy to every object in `value`: fields to drop are removed,
/// fields to hash become `sha256:<hex>` of their JSON text, fields to mask become `***`.
pub fn mask(value: &mut Value, policy: &pshub_engine::config::Masking) {
    use sha2::{Digest, Sha256};
    match value {
        Value::Object(map) => {
            for field in &policy.drop {
                map.remove(field);
            }
            for field in &policy.hash {
                if let Some(found) = map.get_mut(field)
                    && !found.is_null()
                {
                    let digest = Sha256::digest(found.to_string().as_bytes());
                    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                    *found = Value::String(format!("sha256:{hex}"));
                }
            }
            for field in &policy.mask {
                if let Some(found) = map.get_mut(field)
                    && !found.is_null()
                {
                    *found = Value::String("***".into());
                }
            }
            map.values_mut().for_each(|v| mask(v, policy));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask(v, policy)),
        _ => {}
    }
}

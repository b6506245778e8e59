//! `GET /v1/reports/leakage?period=YYYY-MM`: revenue leakage from the hub's own records
//! against what the ERP holds (`pshub reconcile ledger` writes the same as a CSV).

use crate::error::ApiError;
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Query, State};
use pshub_engine::leakage::Leak;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
pub struct PeriodQuery {
    period: Option<String>,
}

fn leak(l: &Leak) -> Value {
    let text = |d: Option<rust_decimal::Decimal>| d.map(|d| d.to_string());
    json!({
        "kind": l.kind, "entry_id": l.entry_id, "project_code": l.project_code,
        "worker_id": (!l.worker_id.is_empty()).then_some(&l.worker_id),
        "date": l.date.map(|d| d.to_string()), "hub_amount": text(l.hub_amount),
        "erp_amount": text(l.erp_amount), "amount": text(l.amount), "currency": l.currency,
        "detail": l.detail,
    })
}

pub async fn leakage(
    State(state): State<AppState>,
    Query(query): Query<PeriodQuery>,
) -> Result<Json<Value>, ApiError> {
    if let Some(period) = &query.period {
        pshub_engine::payroll::check_period(period)
            .map_err(|e| ApiError::bad_request("invalid_parameter", e))?;
    }
    let engine = state.engine.clone();
    let report = blocking(move || engine.leakage(query.period.as_deref())).await??;
    let mut answer = report.summary_json();
    answer["period"] = json!(report.period);
    answer["erp_lines"] = json!(report.erp_lines);
    answer["hub_lines"] = json!(report.hub_lines);
    answer["items"] = report.leaks.iter().map(leak).collect();
    Ok(Json(answer))
}

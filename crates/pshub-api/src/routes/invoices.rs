//! `GET /v1/invoices/{invoice_id}`: an invoice as the hub sees it: its lines, its status as
//! the ERP reported it, and what the CRM was last told.

use crate::error::ApiError;
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Path, State};
use pshub_engine::flows::invoice_status::{self as flow, NAME};
use pshub_engine::store::StepState;
use rust_decimal::Decimal;
use serde_json::{Value, json};

pub async fn get_one(
    State(state): State<AppState>,
    Path(invoice_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine.clone();
    let answer = blocking(move || {
        let reported = engine.with_hub(|hub| hub.world().invoice(&invoice_id).cloned());
        engine.read(|r| -> Result<Value, ApiError> {
            let lines = flow::invoice_lines(r, &invoice_id)?;
            let posted: Vec<_> = lines
                .iter()
                .filter(|l| l.step.state == StepState::Done)
                .collect();
            if posted.is_empty() && reported.is_none() {
                return Err(ApiError::not_found(format!(
                    "no invoice {invoice_id} is known to the hub"
                )));
            }
            let status = match &reported {
                Some(state) => state.status.as_str(),
                None => "posted",
            };
            let amount = posted
                .iter()
                .try_fold(Decimal::ZERO, |sum, l| sum.checked_add(l.line.amount))
                .ok_or_else(|| {
                    ApiError::internal("the invoice's amount does not fit".to_string())
                })?;
            let currency = posted.first().map(|l| l.line.currency.code().to_string());
            let steps = r.steps_of_subject(NAME, flow::subject(&invoice_id))?;
            let last = steps
                .iter()
                .filter(|s| {
                    s.state == StepState::Done
                        && s.business_key.starts_with(&format!("{invoice_id}:"))
                })
                .max_by_key(|s| s.id);
            let crm_status = match last {
                Some(step) => flow::stored_change(r, step.event_seq)?
                    .ok()
                    .map(|c| c.status.as_str().to_string()),
                None => None,
            };
            Ok(json!({
                "invoice_id": invoice_id,
                "project_code": flow::invoice_period(&invoice_id).map(|(p, _)| p),
                "status": status,
                "lines": posted.iter().map(|l| l.line.id).collect::<Vec<_>>(),
                "amount": amount.to_string(),
                "currency": currency,
                "crm_status": crm_status,
                "crm_updated_at": last.and_then(|s| s.done_at.clone()),
                "history": reported.map(|s| s.history.iter().map(|(status, at, _)| json!({
                    "status": status.as_str(), "at": at.to_rfc3339(),
                })).collect::<Vec<_>>()).unwrap_or_default(),
            }))
        })
    })
    .await??;
    Ok(Json(answer))
}

//! `GET /v1/invoice-lines`.

use crate::error::ApiError;
use crate::wire::{self, PageQuery};
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Query, State};
use pshub_engine::store::{LineFilter, LineStatus};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct LineQuery {
    project_code: Option<String>,
    worker_id: Option<String>,
    source_id: Option<String>,
    status: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<LineQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = query.page.page()?;
    let status = wire::parse_param(
        "status",
        &query.status,
        LineStatus::parse,
        "pending, posted, refused, failed",
    )?;
    let filter = LineFilter {
        project_code: query.project_code,
        worker_id: query.worker_id,
        source_id: query.source_id,
        status,
        ..LineFilter::default()
    };
    let engine = state.engine.clone();
    let rows = blocking(move || engine.read(|r| r.lines(&filter, page))).await??;
    Ok(Json(wire::page_of(&rows, page, |l| l.line.id, wire::line)))
}

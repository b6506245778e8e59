//! `GET /v1/invoice-lines`.

use crate::error::ApiError;
use crate::wire::{self, PageQuery};
use crate::{AppState, blocking};
use axum::Json;
use axum::extract::{Query, State};
use pshub_engine::store::{EntryKind, LineFilter, LineStatus};
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
    let engine = state.engine.clone();
    blocking(move || {
        engine.with_hub(|hub| -> Result<Json<Value>, ApiError> {
            let filter = LineFilter {
                project_code: query.project_code,
                worker_id: query.worker_id,
                status,
                ..LineFilter::default()
            };
            let mut rows = match &query.source_id {
                None => hub.store().lines(&filter, page)?,
                Some(source_id) => {
                    // An entry id and an expense id may coincide; both are lines of that source id.
                    let mut entry_rows = Vec::new();
                    for kind in [EntryKind::Time, EntryKind::Expense] {
                        entry_rows.extend(hub.entry_row(kind, source_id)?);
                    }
                    let mut rows = Vec::new();
                    for entry_row in entry_rows {
                        let filter = LineFilter {
                            entry_row: Some(entry_row),
                            ..filter.clone()
                        };
                        rows.extend(hub.store().lines(&filter, page)?);
                    }
                    rows.sort_by_key(|l| l.id);
                    rows
                }
            };
            rows.truncate(page.limit as usize);
            Ok(Json(wire::page_of(&rows, page, |l| l.id, wire::line)))
        })
    })
    .await?
}

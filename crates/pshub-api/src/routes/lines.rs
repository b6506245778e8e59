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
        // An entry id and an expense id may coincide; both are lines of that source id.
        let entry_rows = match &query.source_id {
            None => None,
            Some(source_id) => Some(engine.with_hub(|hub| -> Result<Vec<i64>, ApiError> {
                let mut rows = Vec::new();
                for kind in [EntryKind::Time, EntryKind::Expense] {
                    rows.extend(hub.entry_row(kind, source_id)?);
                }
                Ok(rows)
            })?),
        };
        engine.read(|r| -> Result<Json<Value>, ApiError> {
            let filter = LineFilter {
                project_code: query.project_code,
                worker_id: query.worker_id,
                status,
                ..LineFilter::default()
            };
            let mut rows = match entry_rows {
                None => r.lines(&filter, page)?,
                Some(entry_rows) => {
                    let mut rows = Vec::new();
                    for entry_row in entry_rows {
                        let filter = LineFilter {
                            entry_row: Some(entry_row),
                            ..filter.clone()
                        };
                        rows.extend(r.lines(&filter, page)?);
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

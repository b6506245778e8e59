//! Costing: `POST /v1/payroll` (a payroll file, `text/csv`) and
//! `GET /v1/projects/{code}/cost-variance?period=YYYY-MM` (actual against standard cost per
//! worker, computed when read from the approved hours as they stand).

use crate::auth::{Caller, Role, check};
use crate::error::ApiError;
use crate::{AppState, blocking};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use pshub_engine::costing::{self, VarianceRow};
use pshub_engine::payroll::LoadError;
use pshub_model::{Currency, Money};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest payroll file accepted over HTTP (about 7 million rows); `pshub load payroll`
/// takes any size.
pub const MAX_PAYROLL_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Deserialize)]
pub struct PayrollQuery {
    /// The file's name, for the quarantine and the cases (default `request`).
    pub file: Option<String>,
}

pub async fn post_payroll(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    Query(query): Query<PayrollQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check(
        matches!(caller.role, Role::Admin | Role::Finance),
        caller.role,
        "load payroll",
    )?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("text/csv") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "a payroll file is sent as text/csv, not '{content_type}' (columns worker_id,period,gross_cost,currency)"
            ),
        ));
    }
    let file = match query.file {
        Some(name) if !name.trim().is_empty() && name.len() <= 200 => name,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "file: give a name of 1 to 200 characters",
            ));
        }
        None => "request".to_string(),
    };
    let engine = state.engine.clone();
    let report = blocking(move || engine.load_payroll(&file, &body))
        .await?
        .map_err(|e| match e {
            LoadError::File(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_file", message)
            }
            LoadError::Engine(error) => ApiError::from(error),
        })?;
    Ok((StatusCode::OK, Json(report.to_json())))
}

#[derive(Debug, Deserialize)]
pub struct PeriodQuery {
    pub period: Option<String>,
}

pub async fn cost_variance(
    State(state): State<AppState>,
    Path(project_code): Path<String>,
    Query(query): Query<PeriodQuery>,
) -> Result<Json<Value>, ApiError> {
    let Some(period) = query.period else {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "period: give the month as YYYY-MM",
        ));
    };
    pshub_engine::payroll::check_period(&period)
        .map_err(|e| ApiError::bad_request("invalid_parameter", e))?;
    let engine = state.engine.clone();
    let found = blocking(move || {
        engine.with_hub(|hub| {
            let world = hub.world();
            let code = pshub_model::ProjectCode::parse(&project_code).ok();
            let currency = code
                .as_ref()
                .and_then(|c| world.project(c))
                .map(|p| p.contract.currency);
            let Some(currency) = currency else {
                return Ok(None);
            };
            let config = engine.config();
            let variance = engine
                .read(|r| costing::project_variance(world, config, r, &project_code, &period))?;
            Ok::<_, ApiError>(variance.map(|v| answer(world, &v, currency)))
        })
    })
    .await??;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such project is known to the hub"))
}

/// A decimal written with exactly `places` decimals (an amount in its currency's minor
/// unit, a percentage to two places).
fn text(value: Option<Decimal>, places: u32) -> Value {
    value.map_or(Value::Null, |mut v| {
        v.rescale(places);
        Value::String(v.to_string())
    })
}

fn row(r: &VarianceRow) -> Value {
    let places = r.currency.minor_units();
    json!({
        "worker_id": r.worker_id,
        "classification": r.classification.as_str(),
        "hours": r.hours.normalize().to_string(),
        "currency": r.currency.code(),
        "actual_cost": text(r.actual_cost, places),
        "standard_cost": text(r.standard_cost, places),
        "variance": text(r.variance, places),
        "variance_pct": text(r.variance_pct, 2),
        "missing": r.missing,
    })
}

/// The answer: rows in their payroll currency; totals in the project's currency (rows in
/// another are converted at the FX rate of the month's last day; a row that cannot be is
/// left out of the totals and named in `totals.left_out`).
fn answer(
    world: &pshub_engine::world::World,
    v: &costing::ProjectVariance,
    currency: Currency,
) -> Value {
    let last_day = costing::month_range(&v.period).map(|(_, to)| to);
    let mut hours = Decimal::ZERO;
    let (mut actual, mut standard) = (Some(Decimal::ZERO), Some(Decimal::ZERO));
    let mut left_out = Vec::new();
    for r in &v.rows {
        hours = hours.saturating_add(r.hours);
        let fx = if r.currency == currency {
            Some(Decimal::ONE)
        } else {
            last_day.and_then(|d| world.fx_rate(r.currency, currency, d))
        };
        let Some(fx) = fx else {
            left_out.push(format!(
                "{}: no FX rate from {} to {currency}",
                r.worker_id, r.currency
            ));
            continue;
        };
        let convert = |x: Option<Decimal>| x.and_then(|x| x.checked_mul(fx));
        actual = actual
            .zip(convert(r.actual_cost))
            .and_then(|(a, b)| a.checked_add(b));
        standard = standard
            .zip(convert(r.standard_cost))
            .and_then(|(a, b)| a.checked_add(b));
    }
    let round = |x: Option<Decimal>| x.map(|x| Money::rounded(x, currency).amount());
    let (actual, standard) = (round(actual), round(standard));
    let variance = actual.zip(standard).map(|(a, s)| a - s);
    let pct = variance
        .zip(standard)
        .filter(|(_, s)| !s.is_zero())
        .and_then(|(v, s)| v.checked_mul(Decimal::ONE_HUNDRED)?.checked_div(s))
        .map(|p| p.round_dp(2));
    let places = currency.minor_units();
    json!({
        "project_code": v.project_code,
        "period": v.period,
        "currency": currency.code(),
        "rows": v.rows.iter().map(row).collect::<Vec<_>>(),
        "totals": {
            "hours": hours.normalize().to_string(),
            "actual_cost": text(actual, places),
            "standard_cost": text(standard, places),
            "variance": text(variance, places),
            "variance_pct": text(pct, 2),
            "left_out": left_out,
        },
    })
}

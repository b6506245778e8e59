//! One log line per request (at debug level, so that a busy hub logs nothing per request by
//! default): method, route, status, duration and correlation id. Handlers
//! that know the request's correlation id put a [`CorrelationId`] on the response.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// The correlation id a request concerns, for its log line.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

pub async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    let asked = request
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let response = next.run(request).await;
    let correlation_id = response
        .extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone())
        .or(asked)
        .unwrap_or_default();
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(method = %method, route = %route, status, duration_ms, correlation_id = %correlation_id, "request");
    response
}

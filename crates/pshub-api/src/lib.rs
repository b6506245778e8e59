//! The HTTP API of pshub (axum): routes, wire shapes, authentication and the OpenAPI
//! document. The only crate that knows HTTP.
//!
//! Invariant: handlers never block the async runtime; every call into the engine (which
//! does blocking store IO) runs on the blocking pool through [`blocking`].

mod auth;
mod error;
mod openapi;
mod routes;
mod wire;

pub use auth::{Role, hash_token, new_token};
pub use error::ApiError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use pshub_engine::Engine;
use std::sync::Arc;

/// Largest request body accepted; larger ones are refused with 413.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most events in one `POST /v1/events`.
pub const MAX_EVENTS_PER_REQUEST: usize = 10_000;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
}

/// Runs engine work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker stopped: {e}")))
}

pub fn router(engine: Arc<Engine>) -> Router {
    let state = AppState { engine };
    let protected = Router::new()
        .route("/v1/events", post(routes::events::post_events))
        .route("/v1/events/{source}/{id}", get(routes::events::get_event))
        .route("/v1/invoice-lines", get(routes::lines::list))
        .route("/v1/exceptions", get(routes::exceptions::list))
        .route("/v1/exceptions/{id}", get(routes::exceptions::get_one))
        .route(
            "/v1/exceptions/{id}/resolve",
            post(routes::exceptions::resolve),
        )
        .route(
            "/v1/exceptions/{id}/dismiss",
            post(routes::exceptions::dismiss),
        )
        .route(
            "/v1/exceptions/{id}/acknowledge",
            post(routes::exceptions::acknowledge),
        )
        .route(
            "/v1/transactions/{correlation_id}",
            get(routes::ops::transaction),
        )
        .route("/v1/dead-letters", get(routes::ops::dead_letters))
        .route(
            "/v1/dead-letters/{id}/replay",
            post(routes::ops::replay_dead_letter),
        )
        .route("/v1/quarantine", get(routes::ops::quarantine))
        .route(
            "/v1/quarantine/{id}/replay",
            post(routes::ops::replay_quarantined),
        )
        .route("/v1/summary", get(routes::ops::summary))
        .route("/v1/systems", get(routes::ops::systems))
        .route("/metrics", get(routes::ops::metrics))
        .route("/openapi.json", get(openapi::document))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(routes::ops::healthz))
        .merge(protected)
        .fallback(routes::ops::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine))
        .with_graceful_shutdown(shutdown)
        .await
}

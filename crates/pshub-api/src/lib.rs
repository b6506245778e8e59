//! The HTTP API of pshub (axum): routes, wire shapes, authentication and the OpenAPI
//! document. The only crate that knows HTTP.
//!
//! Invariants: handlers never block the async runtime. Events go to the engine's writer with
//! a callback that completes the request's future, so a request holds no thread while its
//! batch commits; reads run on the blocking pool through [`blocking`].

mod auth;
mod error;
mod logging;
pub mod openapi;
mod routes;
pub mod wire;

pub use auth::{Caller, Role, hash_token, new_token};
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

/// What the sandbox systems hold, for `GET /v1/sandbox/{system}/{collection}`, wherever
/// they run (in the hub's process or as a network peer).
pub trait SandboxInspect: Send + Sync {
    /// One page of a collection (`limit`, `cursor` as the sandbox reads them); on error the
    /// HTTP status and why.
    fn page(
        &self,
        system: &str,
        collection: &str,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<serde_json::Value, (u16, String)>;
    fn stats(&self) -> Result<serde_json::Value, (u16, String)>;
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub sandbox: Option<Arc<dyn SandboxInspect>>,
    tokens: Arc<auth::TokenCache>,
}

/// Runs engine work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker stopped: {e}")))
}

pub fn router(engine: Arc<Engine>, sandbox: Option<Arc<dyn SandboxInspect>>) -> Router {
    let state = AppState {
        engine,
        sandbox,
        tokens: Arc::new(auth::TokenCache::default()),
    };
    let protected = Router::new()
        .route("/v1/events", post(routes::events::post_events))
        .route("/v1/events/{source}/{id}", get(routes::events::get_event))
        .route("/v1/invoice-lines", get(routes::lines::list))
        .route(
            "/v1/projects/{project_code}",
            get(routes::projects::get_one),
        )
        .route(
            "/v1/projects/{project_code}/forecast",
            get(routes::projects::forecast),
        )
        .route("/v1/customers", get(routes::customers::list))
        .route(
            "/v1/customers/{customer_id}",
            get(routes::customers::get_one),
        )
        .route("/v1/invoices/{invoice_id}", get(routes::invoices::get_one))
        .route("/v1/xref/{kind}/{id}", get(routes::xref::get_one))
        .route("/v1/projects", get(routes::reference::projects))
        .route(
            "/v1/projects/{project_code}/cost-variance",
            get(routes::costing::cost_variance),
        )
        .route(
            "/v1/payroll",
            post(routes::costing::post_payroll)
                .layer(DefaultBodyLimit::max(routes::costing::MAX_PAYROLL_BYTES)),
        )
        .route("/v1/rate-cards", get(routes::reference::rate_cards))
        .route("/v1/fx-rates", get(routes::reference::fx_rates))
        .route("/v1/assignments", get(routes::reference::assignments))
        .route("/v1/reports/leakage", get(routes::reports::leakage))
        .route("/v1/reports/shadow", get(routes::routing::shadow))
        .route("/v1/reports/onboarding", get(routes::routing::onboarding))
        .route("/v1/config/reload", post(routes::routing::reload))
        .route("/v1/resources", get(routes::resources::list))
        .route("/v1/resources/{worker_id}", get(routes::resources::get_one))
        .route("/v1/workers", get(routes::workers::list))
        .route("/v1/workers/{worker_id}", get(routes::workers::get_one))
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
        .route("/v1/mappings/replay", post(routes::mappings::replay))
        .route("/v1/conflicts", get(routes::ops::conflicts))
        .route("/v1/outbound", get(routes::ops::outbound))
        .route("/v1/summary", get(routes::ops::summary))
        .route("/v1/systems", get(routes::ops::systems))
        .route("/v1/catalog", get(routes::ops::catalog))
        .route("/v1/sandbox/stats", get(routes::sandbox::stats))
        .route(
            "/v1/sandbox/{system}/{collection}",
            get(routes::sandbox::collection),
        )
        .route("/metrics", get(routes::ops::metrics))
        .route("/openapi.json", get(openapi::document))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(routes::ops::healthz))
        // A webhook proves its sender by its signature, not by a token.
        .route(
            "/v1/hooks/{source}",
            post(routes::hooks::post_hook)
                .layer(DefaultBodyLimit::max(routes::hooks::MAX_HOOK_BYTES)),
        )
        .merge(protected)
        .fallback(routes::ops::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(logging::log_request))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    sandbox: Option<Arc<dyn SandboxInspect>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine, sandbox))
        .with_graceful_shutdown(shutdown)
        .await
}

//! Errors as the API answers them: a status and `{"error": {"code", "message"}}`, where
//! the code is stable and the message says what is wrong and what to do.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pshub_engine::ActionError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More of the answer, beside `code` and `message` in `error`.
    pub detail: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// The error with more fields beside its code and message (`detail` is an object).
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The store failed: nothing was acknowledged, the client may retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(serde_json::Value::Object(detail)) = self.detail {
            for (key, value) in detail {
                error[key] = value;
            }
        }
        let body = Json(json!({ "error": error }));
        (self.status, body).into_response()
    }
}

impl From<pshub_engine::EngineError> for ApiError {
    fn from(error: pshub_engine::EngineError) -> Self {
        ApiError::unavailable(format!("{error}; nothing was changed, retry later"))
    }
}

impl From<ActionError> for ApiError {
    fn from(error: ActionError) -> Self {
        match error {
            ActionError::NotFound(what) => ApiError::not_found(format!("{what} was not found")),
            ActionError::WrongState(message) => {
                ApiError::new(StatusCode::CONFLICT, "wrong_state", message)
            }
            ActionError::StillFailing(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "still_failing", message)
            }
            ActionError::Invalid(message) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_event", message)
            }
            ActionError::Engine(error) => error.into(),
        }
    }
}

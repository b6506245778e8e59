//! A JSON-RPC client of Tryton 8.2 (TRYTON.md section 3). Tryton answers its envelope only
//! to a body of exactly `{id, method, params}`, so this is a small client of its own
//! rather than a generic JSON-RPC 2.0 one.
//!
//! - Sessions: `common.db.login` gives a token, sent as `Authorization: Session
//!   base64(login:user_id:token)`; a 401 (an expired session) logs in again once and
//!   repeats the call, which is safe because a 401 ran nothing.
//! - Every model call ends with the context, whose `company` Tryton requires; it is the
//!   user's current company, read once after login.
//! - How an answer maps to an outcome ([`RpcError`]): a `UserError` or `UserWarning` is a
//!   business refusal; a connection that never opened, 401, 429, 5xx, a
//!   `ConcurrencyException` and session errors are technical (nothing was written: Tryton
//!   rolls the transaction back on every error); a timeout or a reply that broke off is
//!   unknown, since the write may still commit.

use super::config::TrytonConfig;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a call did not give a result.
#[derive(Debug, Clone, PartialEq)]
pub enum RpcError {
    /// Nothing was written; worth retrying later.
    Technical {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Tryton refused the call on its rules (a validation `UserError`).
    User(String),
    /// Sent, and no answer came: the write may have happened.
    Unknown(String),
}

impl RpcError {
    fn technical(message: impl Into<String>) -> Self {
        RpcError::Technical {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            RpcError::Technical { message, .. } | RpcError::User(message) => message,
            RpcError::Unknown(message) => message,
        }
    }
}

pub type Rpc<T> = Result<T, RpcError>;

/// A logged-in session: the header to send and the context of every model call.
#[derive(Clone)]
struct Session {
    authorization: String,
    context: Value,
}

pub struct Client {
    url: String,
    database: String,
    user: String,
    password: String,
    http: reqwest::Client,
    runtime: Option<tokio::runtime::Runtime>,
    session: Mutex<Option<Session>>,
    next_id: AtomicU64,
}

impl Drop for Client {
    fn drop(&mut self) {
        // Dropped wherever the engine is dropped, possibly inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What one HTTP exchange gave, before the envelope is read.
enum Reply {
    Body(Value),
    Unauthorized,
}

impl Client {
    pub fn new(config: &TrytonConfig) -> Result<Self, String> {
        let runtime = crate::client_runtime("pshub-tryton-client")?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client {
            url: config.url.clone(),
            database: config.database.clone(),
            user: config.user.clone(),
            password: config.password.clone(),
            http,
            runtime: Some(runtime),
            session: Mutex::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    /// Calls `model.<model>.<method>` with `args` and the session's context.
    pub fn model(&self, model: &str, method: &str, args: Vec<Value>) -> Rpc<Value> {
        self.call(&format!("model.{model}.{method}"), args)
    }

    /// Calls a database method; the context is appended as its last parameter.
    pub fn call(&self, method: &str, args: Vec<Value>) -> Rpc<Value> {
        self.call_with(method, args, None)
    }

    /// Calls a database method with `extra` added to the context (a wizard's
    /// `active_model`, `active_id`, `active_ids`).
    pub fn call_with(&self, method: &str, args: Vec<Value>, extra: Option<Value>) -> Rpc<Value> {
        let mut relogged = false;
        loop {
            let session = self.session()?;
            let mut params = args.clone();
            let mut context = session.context.clone();
            if let (Some(Value::Object(extra)), Value::Object(context)) = (&extra, &mut context) {
                context.extend(extra.clone());
            }
            params.push(context);
            let path = format!("/{}/rpc/", self.database);
            match self.exchange(&path, method, Value::Array(params), Some(&session))? {
                Reply::Body(body) => return read_envelope(method, body),
                Reply::Unauthorized if !relogged => {
                    // The session expired: nothing ran; log in again and repeat once.
                    relogged = true;
                    *lock(&self.session) = None;
                }
                Reply::Unauthorized => {
                    return Err(RpcError::technical(format!(
                        "Tryton refused the session of user {} twice (401)",
                        self.user
                    )));
                }
            }
        }
    }

    /// The user's current company, which every call works in.
    pub fn company(&self) -> Rpc<i64> {
        self.session()?.context["company"]
            .as_i64()
            .ok_or_else(|| RpcError::technical("the session has no company"))
    }

    /// Calls a model method with `extra` added to the context (`active_test: false`).
    pub fn model_with(
        &self,
        model: &str,
        method: &str,
        args: Vec<Value>,
        extra: Value,
    ) -> Rpc<Value> {
        self.call_with(&format!("model.{model}.{method}"), args, Some(extra))
    }

    /// Ends the session (`common.db.logout`); the next call logs in again.
    pub fn logout(&self) -> Rpc<()> {
        let Some(session) = lock(&self.session).clone() else {
            return Ok(());
        };
        let path = format!("/{}/rpc/", self.database);
        match self.exchange(&path, "common.db.logout", json!([]), Some(&session))? {
            Reply::Body(body) => read_envelope("common.db.logout", body).map(|_| ()),
            Reply::Unauthorized => Ok(()),
        }
    }

    /// The version the server reports (`common.server.version`, no session needed).
    pub fn server_version(&self) -> Rpc<String> {
        match self.exchange("/rpc/", "common.server.version", json!([]), None)? {
            Reply::Body(body) => read_envelope("common.server.version", body).map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            }),
            Reply::Unauthorized => Err(RpcError::technical("the server asked for a login")),
        }
    }

    /// The current session, logging in first when there is none.
    fn session(&self) -> Rpc<Session> {
        if let Some(session) = lock(&self.session).clone() {
            return Ok(session);
        }
        let path = format!("/{}/rpc/", self.database);
        let params = json!([self.user, {"password": self.password}, "en"]);
        let answer = match self.exchange(&path, "common.db.login", params, None)? {
            Reply::Body(body) => read_envelope("common.db.login", body)?,
            Reply::Unauthorized => {
                return Err(RpcError::technical(format!(
                    "Tryton refused the login of user {} on database {} (401: wrong user or password)",
                    self.user, self.database
                )));
            }
        };
        let (Some(user_id), Some(token)) = (answer[0].as_i64(), answer[1].as_str()) else {
            return Err(RpcError::technical(format!(
                "common.db.login answered {answer}, not [user_id, token, ...]"
            )));
        };
        let credentials = format!("{}:{user_id}:{token}", self.user);
        let authorization = format!("Session {}", base64(credentials.as_bytes()));
        let bare = Session {
            authorization,
            context: json!({}),
        };
        let preferences = match self.exchange(
            &path,
            "model.res.user.get_preferences",
            json!([true, {}]),
            Some(&bare),
        )? {
            Reply::Body(body) => read_envelope("get_preferences", body)?,
            Reply::Unauthorized => return Err(RpcError::technical("the new session was refused")),
        };
        let Some(company) = preferences["company"].as_i64() else {
            return Err(RpcError::User(format!(
                "Tryton user {} has no current company: set one (the connector works in the user's current company)",
                self.user
            )));
        };
        let session = Session {
            context: json!({"company": company, "companies": [company], "language": "en"}),
            ..bare
        };
        *lock(&self.session) = Some(session.clone());
        tracing::debug!(user = %self.user, company, "logged in to Tryton");
        Ok(session)
    }

    fn exchange(
        &self,
        path: &str,
        method: &str,
        params: Value,
        session: Option<&Session>,
    ) -> Rpc<Reply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{path}", self.url);
        let mut request = self
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(json!({"id": id, "method": method, "params": params}).to_string());
        if let Some(session) = session {
            request = request.header("Authorization", &session.authorization);
        }
        let exchange = async move {
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if e.is_connect() => {
                    return Err(RpcError::technical(format!(
                        "cannot reach Tryton at {url}: {e}"
                    )));
                }
                Err(e) if e.is_timeout() => {
                    return Err(RpcError::Unknown(format!(
                        "{method}: no answer from Tryton in time"
                    )));
                }
                Err(e) => {
                    return Err(RpcError::Unknown(format!(
                        "{method}: the call broke off: {e}"
                    )));
                }
            };
            let status = response.status();
            if status.as_u16() == 401 {
                return Ok(Reply::Unauthorized);
            }
            let retry_after = crate::retry_after(response.headers());
            let text = match response.text().await {
                Ok(text) => text,
                Err(e) => {
                    return Err(RpcError::Unknown(format!(
                        "{method}: the reply broke off: {e}"
                    )));
                }
            };
            if status.as_u16() == 429 || status.is_server_error() {
                return Err(RpcError::Technical {
                    message: format!("{method}: Tryton answered {status}: {}", excerpt(&text)),
                    retry_after,
                });
            }
            if !status.is_success() {
                return Err(RpcError::User(format!(
                    "{method}: Tryton answered {status}: {}",
                    excerpt(&text)
                )));
            }
            serde_json::from_str(&text).map(Reply::Body).map_err(|e| {
                RpcError::Unknown(format!(
                    "{method}: the reply is not JSON ({e}): {}",
                    excerpt(&text)
                ))
            })
        };
        match &self.runtime {
            Some(runtime) => runtime.block_on(exchange),
            None => Err(RpcError::technical("the Tryton client is shut down")),
        }
    }
}

/// The result of an envelope, or its error as an outcome.
fn read_envelope(method: &str, mut body: Value) -> Rpc<Value> {
    let error = body
        .get_mut("error")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if error.is_null() {
        return Ok(body
            .get_mut("result")
            .map(Value::take)
            .unwrap_or(Value::Null));
    }
    Err(classify(method, &error))
}

/// A Tryton error as an outcome: see the module's notes.
pub fn classify(method: &str, error: &Value) -> RpcError {
    let kind = error[0].as_str().unwrap_or_default();
    let detail = &error[1];
    let text = match detail {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .take(3)
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": "),
        other => other.to_string(),
    };
    let message = format!("{method}: {kind}: {text}");
    match kind {
        "ConcurrencyException" => RpcError::technical(message),
        // Shared or stale sessions surface as user errors that name the session.
        "UserError" | "UserWarning" if text.to_lowercase().contains("session") => {
            RpcError::technical(message)
        }
        "UserError" | "UserWarning" => RpcError::User(message),
        // A server-side exception, `[str(exception), ""]`: rolled back, and usually a
        // missing business setting, so it goes to the owner rather than round again.
        _ => RpcError::User(format!("{method}: Tryton failed: {}", error)),
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Standard base64 with padding, for the session header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b"pshub:2:ab"), "cHNodWI6MjphYg==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn errors_map_to_outcomes() {
        let user = json!(["UserError", ["The code on party must be unique.", "", null]]);
        assert_eq!(
            classify("create", &user),
            RpcError::User("create: UserError: The code on party must be unique.".into())
        );
        let busy = json!([
            "ConcurrencyException",
            "Records were modified in the meanwhile"
        ]);
        assert!(matches!(
            classify("write", &busy),
            RpcError::Technical { .. }
        ));
        let session = json!(["UserError", ["Your session has expired", "", null]]);
        assert!(matches!(
            classify("write", &session),
            RpcError::Technical { .. }
        ));
        let bug = json!(["'NoneType' object has no attribute 'id'", ""]);
        assert!(matches!(classify("post", &bug), RpcError::User(m) if m.contains("NoneType")));
    }
}

//! Bearer tokens. A token is 32 random bytes shown once; the store keeps only its SHA-256.
//! A slow password hash is not needed: the token carries 256 bits of entropy, so its hash
//! cannot be reversed by guessing.

use crate::error::ApiError;
use crate::{AppState, blocking};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens seen recently, so that a request does not read the store to know its caller.
/// An entry is trusted for a minute; tokens are only ever added.
#[derive(Default)]
pub struct TokenCache {
    known: Mutex<HashMap<String, (Caller, Instant)>>,
}

const TOKEN_TRUST: Duration = Duration::from_secs(60);

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Caller> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_TRUST)
            .map(|(caller, _)| caller.clone())
    }

    fn put(&self, hash: String, caller: Caller) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() > 10_000 {
            known.clear();
        }
        known.insert(hash, (caller, Instant::now()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Integration,
    Finance,
    Pmo,
    Hr,
    Auditor,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Integration,
        Role::Finance,
        Role::Pmo,
        Role::Hr,
        Role::Auditor,
        Role::Viewer,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Integration => "integration",
            Role::Finance => "finance",
            Role::Pmo => "pmo",
            Role::Hr => "hr",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// Whether this role may act on a case owned by `owner` (resolve, dismiss, acknowledge).
    pub fn may_act_for(&self, owner: &str) -> bool {
        *self == Role::Admin || self.as_str() == owner
    }

    /// Whether this role may send events and replay deliveries.
    pub fn may_operate(&self) -> bool {
        matches!(self, Role::Admin | Role::Integration)
    }

    /// Whether this role may see personal fields (a worker's name and email).
    pub fn may_see_personal_data(&self) -> bool {
        matches!(self, Role::Admin | Role::Hr | Role::Auditor)
    }

    /// Whether this role may read what the sandbox systems hold.
    pub fn may_inspect_systems(&self) -> bool {
        matches!(self, Role::Admin | Role::Auditor)
    }
}

/// Who is calling: the token's role, id and name.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    pub token_id: i64,
    pub name: String,
}

impl Caller {
    pub fn actor(&self) -> pshub_engine::Actor {
        pshub_engine::Actor {
            token_id: Some(self.token_id),
            name: self.name.clone(),
            role: self.role.as_str().to_string(),
        }
    }
}

/// A new random token, `psh_` and 64 hex digits.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("psh_{}", hex(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Refuses a request without a valid `Authorization: Bearer <token>` with 401, and hands
/// the token's role to the handlers.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(header) = request.headers().get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "the Authorization header is missing; send 'Authorization: Bearer <token>' (create one with 'pshub token create --role ROLE')",
        ));
    };
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            unauthorized("the Authorization header is not of the form 'Bearer <token>'")
        })?;
    let hash = hash_token(token);
    let caller = match state.tokens.get(&hash) {
        Some(caller) => caller,
        None => {
            let engine = state.engine.clone();
            let lookup = hash.clone();
            let found = blocking(move || engine.read(|r| r.token(&lookup))).await??;
            let caller = found
                .and_then(|t| {
                    Role::parse(&t.role).map(|role| Caller {
                        role,
                        token_id: t.id,
                        name: t.name,
                    })
                })
                .ok_or_else(|| unauthorized("the token is not valid"))?;
            state.tokens.put(hash, caller.clone());
            caller
        }
    };
    request.extensions_mut().insert(caller.role);
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// Refuses with 403 unless `allowed`.
pub fn check(allowed: bool, role: Role, action: &str) -> Result<(), ApiError> {
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the {} role may not {action}", role.as_str()),
        ))
    }
}

//! The outbound REST target: how the hub calls a system's REST API (`[targets.<name>]` with
//! `connector = "rest"`), whatever operations a vendor adapter makes of it
//! (`salesforce_crm`).
//!
//! - **Authentication**: OAuth2 client credentials (the token is fetched once, cached until
//!   an `expires_in` less a minute, and fetched again when it lapses or when the API answers
//!   401: a token revoked or expired mid-run costs one retried call, not a failure), an
//!   API key in a header, or HTTP Basic (AvaTax's account id and license key). Secrets are
//!   never logged or shown.
//! - **A rate budget per target**, shared by every call made to it: at most `rate_per_s`
//!   calls a second, a caller waiting its turn (each target has its own delivery worker,
//!   so a target at its budget holds up no other).
//! - **Answers as outcomes**: 2xx done; 429 and 503 a technical failure with the
//!   `Retry-After` it asked for (the engine waits that long, up to its cap, and its breaker
//!   counts it); other 5xx and refused connections technical; a timeout after the request
//!   was sent unknown (it may have been applied); other 4xx a business refusal with the
//!   API's message.

use pshub_engine::Engine;
use pshub_engine::hooks::Secret;
use pshub_engine::ports::Outcome;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a target proves who calls it.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// `<header>: <key>`.
    ApiKey {
        header: String,
        key: Secret,
    },
    /// HTTP Basic: `Authorization: Basic base64(<username>:<password>)`.
    Basic {
        username: String,
        password: Secret,
    },
    /// OAuth2's client-credentials grant at `token_url`.
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: Option<String>,
    },
}

impl Auth {
    /// The scheme's name, as the catalog shows it (never the secret).
    pub fn scheme(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::ApiKey { .. } => "api_key",
            Auth::Basic { .. } => "basic",
            Auth::OAuth2 { .. } => "oauth2_client_credentials",
        }
    }
}

/// A target's settings, as the configuration file gives them.
#[derive(Debug, Clone)]
pub struct RestTargetConfig {
    /// Its system name (`[targets.<name>]`).
    pub name: String,
    /// Where its API is; a call's path is joined to it.
    pub base_url: String,
    pub auth: Auth,
    /// At most this many calls a second (none: no budget).
    pub rate_per_s: Option<u32>,
    /// How long one call may take.
    pub timeout: Duration,
}

/// What a call came to.
#[derive(Debug)]
pub enum Reply {
    /// 2xx, with the body (`null` when there is none).
    Done(u16, Value),
    /// A 4xx other than 401 and 429: the API refused the request; its message.
    Refused(u16, String),
    /// Nothing was written; call again, after `retry_after` when the API asked.
    Technical {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request was sent and no answer came: it may have been applied.
    Unknown(String),
}

impl Reply {
    /// As an operation's outcome: `done` reads a 2xx's body, `refusal` says why a 4xx was
    /// refused (from the vendor's error body); technical and unknown answers stay so.
    pub fn outcome(
        self,
        done: impl FnOnce(Value) -> Outcome,
        refusal: impl FnOnce(u16, &str) -> String,
    ) -> Outcome {
        match self {
            Reply::Done(_, body) => done(body),
            Reply::Refused(status, text) => Outcome::Rejected(refusal(status, &text)),
            Reply::Technical {
                message,
                retry_after,
            } => Outcome::Technical {
                message,
                retry_after,
            },
            Reply::Unknown(message) => Outcome::Unknown(message),
        }
    }
}

/// What the client does, each logged and counted (`pshub_connector_events_total`).
enum TargetEvent<'a> {
    TokenFetched,
    /// The API refused the cached token: fetched again, and the call made again.
    TokenRefused,
    Throttled {
        retry_after_s: Option<u64>,
    },
    /// A call waited for the rate budget.
    Paced {
        waited_ms: u128,
    },
    Trouble {
        what: &'a str,
    },
}

/// A token and when it lapses.
struct Token {
    access: String,
    until: Option<Instant>,
}

/// The calls a target allows: the next instant one may go.
struct Budget {
    every: Duration,
    next: Instant,
}

/// A REST target's client: blocking calls (the engine calls ports from its delivery
/// threads) run on a runtime of its own.
pub struct RestClient {
    config: RestTargetConfig,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    token: Mutex<Option<Token>>,
    budget: Option<Mutex<Budget>>,
    engine: Mutex<Option<Arc<Engine>>>,
}

/// How long before its stated expiry a token is fetched again.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

impl RestClient {
    pub fn new(config: RestTargetConfig) -> Result<RestClient, String> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let runtime = crate::client_runtime(&format!("rest-{}", config.name))?;
        let budget = config.rate_per_s.map(|rate| {
            Mutex::new(Budget {
                every: Duration::from_secs(1) / rate.max(1),
                next: Instant::now(),
            })
        });
        Ok(RestClient {
            config,
            http,
            runtime,
            token: Mutex::new(None),
            budget,
            engine: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &RestTargetConfig {
        &self.config
    }

    /// The target as `GET /v1/systems` shows it, for the adapter of `api`: never a secret.
    pub fn describe(&self, api: &str) -> Value {
        json!({
            "kind": api,
            "connector": "rest",
            "url": self.config.base_url,
            "auth": self.config.auth.scheme(),
            "rate_per_s": self.config.rate_per_s,
        })
    }

    /// The engine whose metrics count what the client does (set once the engine is open).
    pub fn count_on(&self, engine: Arc<Engine>) {
        *self.engine.lock().unwrap_or_else(|p| p.into_inner()) = Some(engine);
    }

    fn emit(&self, event: TargetEvent<'_>) {
        let target = self.config.name.as_str();
        let name = match &event {
            TargetEvent::TokenFetched => {
                tracing::debug!(target, "rest target: token fetched");
                "token_fetched"
            }
            TargetEvent::TokenRefused => {
                tracing::info!(target, "rest target: token refused; fetching another");
                "token_refused"
            }
            TargetEvent::Throttled { retry_after_s } => {
                tracing::warn!(target, retry_after_s, "rest target: throttled");
                "throttled"
            }
            TargetEvent::Paced { waited_ms } => {
                tracing::trace!(target, waited_ms, "rest target: waited for the rate budget");
                "paced"
            }
            TargetEvent::Trouble { what } => {
                tracing::warn!(target, what, "rest target: trouble");
                "trouble"
            }
        };
        if let Some(engine) = &*self.engine.lock().unwrap_or_else(|p| p.into_inner()) {
            engine.metrics().connector_event(target, name);
        }
    }

    /// Makes one call: `method` on `path` (joined to the base URL) with a JSON body.
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        self.runtime.block_on(self.call_async(method, path, body))
    }

    async fn call_async(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        let url = format!(
            "{}/{}",
            self.config.base_url.trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        // A refused token is fetched again once; a second refusal is the API's answer.
        for attempt in 0..2 {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("accept", "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            match &self.config.auth {
                Auth::None => {}
                Auth::ApiKey { header, key } => request = request.header(header, key.expose()),
                Auth::Basic { username, password } => {
                    request = request.basic_auth(username, Some(password.expose()));
                }
                Auth::OAuth2 { .. } => match self.access_token().await {
                    Ok(token) => request = request.bearer_auth(token),
                    Err(reply) => return reply,
                },
            }
            // The budget is taken last, just before the send: a token fetched first
            // would otherwise eat into the spacing of this call from the next.
            self.wait_for_budget().await;
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if e.is_timeout() => {
                    return Reply::Unknown(format!("{method} {url}: no answer in time"));
                }
                Err(e) => {
                    return Reply::Technical {
                        message: format!("{method} {url}: {e}"),
                        retry_after: None,
                    };
                }
            };
            let status = response.status().as_u16();
            let retry_after = crate::retry_after(response.headers());
            if status == 401 && attempt == 0 && matches!(self.config.auth, Auth::OAuth2 { .. }) {
                self.emit(TargetEvent::TokenRefused);
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
                continue;
            }
            let text = match response.text().await {
                Ok(text) => text,
                Err(e) => {
                    return Reply::Unknown(format!("{method} {url}: the answer broke off: {e}"));
                }
            };
            return match status {
                200..=299 => {
                    Reply::Done(status, serde_json::from_str(&text).unwrap_or(Value::Null))
                }
                429 | 503 => {
                    self.emit(TargetEvent::Throttled {
                        retry_after_s: retry_after.map(|d| d.as_secs()),
                    });
                    Reply::Technical {
                        message: format!("{method} {url}: answered {status}"),
                        retry_after,
                    }
                }
                500..=599 => Reply::Technical {
                    message: format!("{method} {url}: answered {status}"),
                    retry_after,
                },
                _ => Reply::Refused(status, short(&text)),
            };
        }
        Reply::Technical {
            message: format!("{method} {url}: the API refused a fresh token"),
            retry_after: None,
        }
    }

    /// Waits until the rate budget allows one more call.
    async fn wait_for_budget(&self) {
        let Some(budget) = &self.budget else { return };
        let wait = {
            let mut budget = budget.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let at = budget.next.max(now);
            budget.next = at + budget.every;
            at - now
        };
        if !wait.is_zero() {
            self.emit(TargetEvent::Paced {
                waited_ms: wait.as_millis(),
            });
            tokio::time::sleep(wait).await;
        }
    }

    /// The cached token, or a new one from the token endpoint.
    async fn access_token(&self) -> Result<String, Reply> {
        if let Some(token) = &*self.token.lock().unwrap_or_else(|p| p.into_inner())
            && token.until.is_none_or(|until| Instant::now() < until)
        {
            return Ok(token.access.clone());
        }
        let Auth::OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        } = &self.config.auth
        else {
            return Err(Reply::Technical {
                message: "no OAuth2 settings".into(),
                retry_after: None,
            });
        };
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.expose()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope.as_str()));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let answer = self
            .http
            .post(token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await;
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                let what = format!("the token endpoint {token_url}: {e}");
                self.emit(TargetEvent::Trouble { what: &what });
                return Err(Reply::Technical {
                    message: what,
                    retry_after: None,
                });
            }
        };
        let status = response.status();
        let token: Value = response.json().await.unwrap_or(Value::Null);
        let Some(access) = token["access_token"]
            .as_str()
            .filter(|_| status.is_success())
        else {
            let what = format!(
                "the token endpoint {token_url} answered {status}: {}",
                short(&token["error"].to_string())
            );
            self.emit(TargetEvent::Trouble { what: &what });
            // Bad credentials are the integration team's to fix; the call is retried later.
            return Err(Reply::Technical {
                message: what,
                retry_after: None,
            });
        };
        let until = token["expires_in"]
            .as_u64()
            .map(|s| Instant::now() + Duration::from_secs(s).saturating_sub(TOKEN_MARGIN));
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(Token {
            access: access.to_string(),
            until,
        });
        self.emit(TargetEvent::TokenFetched);
        Ok(access.to_string())
    }
}

/// A text cut to what a message may quote.
fn short(text: &str) -> String {
    let cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

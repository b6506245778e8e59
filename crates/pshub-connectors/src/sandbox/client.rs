//! The sandbox systems over HTTP (`PSHUB_SANDBOX_URL`), as the engine's ports. How an answer
//! maps to an outcome is what every HTTP connector needs to get right:
//! - no connection: nothing was sent, a technical failure;
//! - 429 and 5xx (with `Retry-After` when given): a technical failure;
//! - 422 and other 4xx: a business refusal;
//! - a timeout, a 504, or a reply that breaks off: the write may have happened, unknown.

use super::System;
use super::wire::*;
use pshub_engine::ports::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

pub struct HttpSandbox {
    base: String,
    client: reqwest::Client,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for HttpSandbox {
    fn drop(&mut self) {
        // Dropped wherever the engine is dropped, possibly inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What an HTTP exchange came to, before it is read as an outcome.
enum Exchange<T> {
    Answer(T),
    Refused(String),
    Technical(String, Option<Duration>),
    Unknown(String),
}

impl HttpSandbox {
    /// A client of the sandbox at `url`; `timeout` bounds each request.
    pub fn new(url: &str, timeout: Duration) -> Result<Arc<Self>, String> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("'{url}' is not an http:// or https:// URL"));
        }
        let runtime = crate::client_runtime("pshub-sandbox-client")?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(8)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Arc::new(HttpSandbox {
            base,
            client,
            runtime: Some(runtime),
        }))
    }

    /// Its PSA, ERP and CRM, under their usual names.
    pub fn systems(self: &Arc<Self>, systems: Systems) -> Systems {
        let port = |system| HttpPort {
            sandbox: self.clone(),
            system,
        };
        systems
            .with("psa", Port::Psa(Arc::new(port(System::Psa))))
            .with("erp", Port::Erp(Arc::new(port(System::Erp))))
            .with("crm", Port::Crm(Arc::new(port(System::Crm))))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> Option<F::Output> {
        self.runtime.as_ref().map(|rt| rt.block_on(future))
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        key: Option<&str>,
        body: &B,
    ) -> Exchange<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.post(&url).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let exchange = async move {
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if e.is_connect() => {
                    return Exchange::Technical(format!("cannot reach {url}: {e}"), None);
                }
                Err(e) if e.is_timeout() => {
                    return Exchange::Unknown(format!("no answer from {url} in time"));
                }
                Err(e) => return Exchange::Unknown(format!("the request to {url} broke off: {e}")),
            };
            let status = response.status();
            let retry_after = crate::retry_after(response.headers());
            if status.as_u16() == 504 {
                return Exchange::Unknown(format!("{url} answered 504: it gave up waiting"));
            }
            if status.as_u16() == 429 || status.is_server_error() {
                let text = response.text().await.unwrap_or_default();
                return Exchange::Technical(
                    format!("{url} answered {status}: {text}"),
                    retry_after,
                );
            }
            let text = match response.text().await {
                Ok(text) => text,
                Err(e) => return Exchange::Unknown(format!("the reply from {url} broke off: {e}")),
            };
            if status.is_client_error() {
                let refused = serde_json::from_str::<AnswerBody>(&text)
                    .ok()
                    .and_then(|a| a.refused)
                    .unwrap_or(text);
                return Exchange::Refused(refused);
            }
            match serde_json::from_str(&text) {
                Ok(answer) => Exchange::Answer(answer),
                Err(e) => Exchange::Unknown(format!("the reply from {url} does not read: {e}")),
            }
        };
        self.block_on(exchange)
            .unwrap_or_else(|| Exchange::Technical("the client has stopped".into(), None))
    }

    /// A GET for inspection: the status and the JSON answer.
    pub fn get(&self, path: &str) -> Result<(u16, serde_json::Value), String> {
        let url = format!("{}{path}", self.base);
        let request = self.client.get(&url);
        self.block_on(async move {
            let response = request
                .send()
                .await
                .map_err(|e| format!("cannot reach {url}: {e}"))?;
            let status = response.status().as_u16();
            let body = response
                .json::<serde_json::Value>()
                .await
                .map_err(|e| format!("the answer of {url} does not read: {e}"))?;
            Ok((status, body))
        })
        .unwrap_or_else(|| Err("the client has stopped".into()))
    }
}

/// One system of an HTTP sandbox, as a port.
pub struct HttpPort {
    sandbox: Arc<HttpSandbox>,
    system: System,
}

fn outcome(exchange: Exchange<AnswerBody>) -> Outcome {
    match exchange {
        Exchange::Answer(AnswerBody { id: Some(id), .. }) => Outcome::Done(id),
        Exchange::Answer(AnswerBody {
            refused: Some(why), ..
        }) => Outcome::Rejected(why),
        Exchange::Answer(_) => Outcome::Unknown("the answer names no id".into()),
        Exchange::Refused(why) => Outcome::Rejected(why),
        Exchange::Technical(message, retry_after) => Outcome::Technical {
            message,
            retry_after,
        },
        Exchange::Unknown(message) => Outcome::Unknown(message),
    }
}

impl HttpPort {
    fn create<B: Serialize>(&self, path: &str, key: &str, body: &B) -> Outcome {
        outcome(self.sandbox.post(path, Some(key), body))
    }

    fn find(&self, keys: &[&str]) -> Vec<Lookup> {
        let body = LookupBody {
            keys: keys.iter().map(|k| k.to_string()).collect(),
        };
        let path = format!("/{}/lookup", self.system.as_str());
        match self.sandbox.post::<_, LookupAnswer>(&path, None, &body) {
            Exchange::Answer(answer) if answer.found.len() == keys.len() => answer
                .found
                .into_iter()
                .map(|id| id.map_or(Lookup::NotApplied, Lookup::Applied))
                .collect(),
            Exchange::Answer(_) => keys
                .iter()
                .map(|_| Lookup::Failed("the lookup answered another number of keys".into()))
                .collect(),
            Exchange::Refused(why) | Exchange::Technical(why, _) | Exchange::Unknown(why) => {
                keys.iter().map(|_| Lookup::Failed(why.clone())).collect()
            }
        }
    }

    fn describe_system(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "sandbox", "runs": "over HTTP", "url": self.sandbox.base() })
    }
}

impl Erp for HttpPort {
    fn issue_schedule(&self, request: &ScheduleRequest) -> Outcome {
        self.create(
            "/erp/schedules",
            &request.idempotency_key,
            &ScheduleBody::from(request),
        )
    }

    fn update_costing(&self, request: &CostingRequest) -> Outcome {
        self.create(
            "/erp/employees",
            &request.idempotency_key,
            &CostingBody::from(request),
        )
    }

    fn update_cost_price(&self, request: &CostPriceRequest) -> Outcome {
        self.create(
            "/erp/cost-prices",
            &request.idempotency_key,
            &CostPriceBody::from(request),
        )
    }

    fn provision_project(&self, request: &ProjectRequest) -> Outcome {
        self.create(
            "/erp/projects",
            &request.idempotency_key,
            &ProjectBody::from(request),
        )
    }

    fn attach_billing_rules(&self, request: &BillingRulesRequest) -> Outcome {
        self.create(
            "/erp/billing-rules",
            &request.idempotency_key,
            &BillingRulesBody::from(request),
        )
    }

    fn post_lines(&self, lines: &[LinePosting]) -> Vec<Outcome> {
        let bodies: Vec<LineBody> = lines.iter().map(LineBody::from).collect();
        let all = |outcome: Outcome| vec![outcome; lines.len()];
        match self
            .sandbox
            .post::<_, Vec<AnswerBody>>("/erp/lines", None, &bodies)
        {
            Exchange::Answer(answers) if answers.len() == lines.len() => answers
                .into_iter()
                .map(|a| outcome(Exchange::Answer(a)))
                .collect(),
            Exchange::Answer(_) => all(Outcome::Unknown(
                "the ERP answered another number of lines".into(),
            )),
            Exchange::Refused(why) => all(Outcome::Rejected(why)),
            Exchange::Technical(message, retry_after) => all(Outcome::Technical {
                message,
                retry_after,
            }),
            Exchange::Unknown(message) => all(Outcome::Unknown(message)),
        }
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        self.find(keys)
    }

    fn read_back(&self, collection: &str, after: u64, limit: u32) -> ReadBack {
        let path = format!("/sandbox/erp/{collection}?cursor={after}&limit={limit}");
        match self.sandbox.get(&path)? {
            (200, page) => read_back_page(&page),
            (status, body) => Err(format!("GET {path} answered {status}: {body}")),
        }
    }

    fn describe(&self) -> serde_json::Value {
        self.describe_system()
    }
}

impl Psa for HttpPort {
    fn update_resource(&self, request: &ResourceRequest) -> Outcome {
        self.create(
            "/psa/resources",
            &request.idempotency_key,
            &ResourceBody::from(request),
        )
    }

    fn create_engagement(&self, request: &EngagementRequest) -> Outcome {
        self.create(
            "/psa/engagements",
            &request.idempotency_key,
            &EngagementBody::from(request),
        )
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        self.find(keys)
    }

    fn describe(&self) -> serde_json::Value {
        self.describe_system()
    }
}

impl Crm for HttpPort {
    fn update_invoice_status(&self, request: &InvoiceStatusRequest) -> Outcome {
        self.create(
            "/crm/invoices",
            &request.idempotency_key,
            &InvoiceStatusBody::from(request),
        )
    }

    fn write_back_ids(&self, request: &WriteBackRequest) -> Outcome {
        self.create(
            "/crm/write-backs",
            &request.idempotency_key,
            &WriteBackBody::from(request),
        )
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        self.find(keys)
    }

    fn describe(&self) -> serde_json::Value {
        self.describe_system()
    }
}

/// A page of a sandbox collection (`{items, next}`) as a port's read-back.
pub(crate) fn read_back_page(page: &serde_json::Value) -> ReadBack {
    let items = page["items"]
        .as_array()
        .cloned()
        .ok_or_else(|| format!("the page has no items: {page}"))?;
    let next = page["next"].as_str().and_then(|n| n.parse().ok());
    Ok((items, next))
}

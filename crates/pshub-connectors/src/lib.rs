//! System adapters: one module per kind of external system, each translating between its
//! system's records and the canonical model and implementing the engine's ports.
//!
//! - `sandbox`: the sandbox systems of the embedded default (a PSA, an ERP and a CRM that
//!   run in the hub's process or as a network peer) and the simulated firm whose systems
//!   send events;
//! - `tryton`: Tryton 8.2 as the ERP, over JSON-RPC (docs/TRYTON.md);
//! - `legacy_table`: a legacy ERP reached through a PostgreSQL table (docs/ROUTING.md);
//! - `csv_drop`: a watched folder of CSV files per source (docs/CONNECTORS.md);
//! - `rest_poll`: a REST source polled with a durable cursor (docs/CONNECTORS.md);
//! - `rest_target`: an outbound REST target (OAuth2 client credentials or an API key, a rate
//!   budget, `Retry-After`), and `salesforce_crm`, Salesforce as the CRM on it.
//!
//! Invariant: a connector depends on the model and the engine's ports, never the other way
//! round.

pub mod amqp;
pub mod amqp_out;
pub mod avalara_tax;
pub mod csv_drop;
pub mod legacy_table;
pub mod netsuite_erp;
pub mod pg_table;
pub mod pg_table_out;
pub mod rest_poll;
pub mod rest_target;
pub mod salesforce_crm;
pub mod sandbox;
pub mod tryton;

/// The runtime a blocking connector client runs its HTTP calls on: one worker thread of its
/// own, since the engine calls connectors from its delivery threads, outside any runtime.
pub(crate) fn client_runtime(name: &str) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime of {name}: {e}"))
}

/// A transport the outbound stream's relay hands its pages to (an AMQP exchange, a
/// PostgreSQL table): one pass of the relay, and forgetting the connection after trouble.
pub(crate) trait StreamWriter: Send + 'static {
    /// The target's name, for its thread, its logs and its counts.
    fn target(&self) -> &str;
    /// One pass of the relay; answers how many events went.
    fn pass(&mut self) -> Result<usize, String>;
    /// Drops the connection, made again by the next pass.
    fn reset(&mut self);
    /// Logs and counts what a pass did (`written`, `published`, `trouble`).
    fn emit(&self, event: &'static str, detail: &str);
}

/// Runs `writer`'s relay on a thread named `<prefix>-<target>` until `stop` is set: a pass
/// every 250 ms, the transport's outages waited out a second at a time.
pub(crate) fn spawn_stream_writer<W: StreamWriter>(
    prefix: &str,
    mut writer: W,
    went: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    std::thread::Builder::new()
        .name(format!("{prefix}-{}", writer.target()))
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match writer.pass() {
                    Ok(0) => {}
                    Ok(events) => writer.emit(went, &events.to_string()),
                    Err(what) => {
                        writer.reset();
                        writer.emit("trouble", &what);
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
}

/// A `Retry-After` in seconds, when an answer gives one.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}

/// Percent-encodes all but RFC 3986's unreserved characters: a URL's path segment, or a
/// value of a form (`application/x-www-form-urlencoded` takes `%20` for a space too).
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A URL as it may be logged or shown: without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Whether `system` is, by the current routes, only the shadow of `project`'s ERP: what a
/// shadow holds is for comparison, and its invoice states are not the invoice's.
pub(crate) fn shadow_only(engine: &pshub_engine::Engine, project: &str, system: &str) -> bool {
    let (erp, shadow) = engine.erps_of_project(project);
    erp != system && shadow.as_deref() == Some(system)
}

/// The answers of an ERP that keeps no costing, cost prices or invoice schedules of its own
/// (the hub keeps them): done without a call, each under the id the hub gives it.
pub(crate) mod kept_by_the_hub {
    use pshub_engine::ports::{CostPriceRequest, CostingRequest, Outcome, ScheduleRequest};

    pub fn costing(request: &CostingRequest) -> Outcome {
        Outcome::Done(request.worker_id.clone())
    }

    pub fn cost_price(request: &CostPriceRequest) -> Outcome {
        Outcome::Done(format!("{}:{}", request.worker_id, request.valid_from))
    }

    pub fn schedule(request: &ScheduleRequest) -> Outcome {
        Outcome::Done(format!("{}:v{}", request.contract_id, request.version))
    }
}

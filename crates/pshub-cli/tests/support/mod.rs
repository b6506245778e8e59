//! What the process-level tests share: `pshub serve` and `pshub sandbox` as child processes
//! (killed when dropped, so that a failing test leaves nothing running), free ports, tokens
//! made with `pshub token create`, events sent through the front door, and waiting for a
//! condition with a deadline instead of sleeping.
//!
//! Each test binary compiles this module with `mod support;` and uses part of it.
#![allow(dead_code)]

pub mod hooked;

use serde_json::Value;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_pshub");

/// A port nothing listens on now (the kernel's choice; released before the child binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh folder under the system's temp dir, named after the test and this process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pshub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A temp folder removed when dropped, unless the test is failing (or `PSHUB_TEST_KEEP` is
/// set): then its logs stay for whoever reads the failure.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = temp_dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, part: &str) -> PathBuf {
        self.0.join(part)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("PSHUB_TEST_KEEP").is_some() {
            eprintln!("kept {} for its logs", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    child: Child,
    /// Its exit status, once reaped.
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(command: &mut Command) -> Self {
        let child = command.spawn().expect("the pshub binary starts");
        Proc {
            child,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would; waits until the process is gone.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// SIGTERM, as an operator's stop would (the server finishes what it answers); waits
    /// at most `timeout` for the process to exit.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        if self.exited().is_none() {
            let sent = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status()
                .expect("kill runs");
            assert!(sent.success(), "kill -TERM {}", self.pid());
        }
        self.wait_exit(timeout).await
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits for the process to exit on its own, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {} did not exit within {timeout:?}",
                self.pid()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `pshub serve` or `pshub sandbox` listening on a port of its own.
pub struct Server {
    pub proc: Proc,
    pub port: u16,
    pub base: String,
    /// Where its standard error goes, when it is kept.
    pub log: Option<PathBuf>,
}

impl Server {
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let Some(path) = &self.log else {
            return "(no log kept)".into();
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// How to start `pshub serve`: its data folder, its store, its environment.
pub struct Serve {
    data_dir: PathBuf,
    store: Option<String>,
    env: Vec<(String, String)>,
    log: Option<PathBuf>,
    port: Option<u16>,
    listen_by_env: bool,
}

pub fn serve(data_dir: &Path) -> Serve {
    Serve {
        data_dir: data_dir.to_path_buf(),
        store: None,
        env: Vec::new(),
        log: None,
        port: None,
        listen_by_env: false,
    }
}

impl Serve {
    /// `--store URL` (PostgreSQL).
    pub fn store(mut self, url: &str) -> Self {
        self.store = Some(url.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Keeps its standard error in `path` (else it is dropped).
    pub fn log(mut self, path: PathBuf) -> Self {
        self.log = Some(path);
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Gives the address as `PSHUB_LISTEN` rather than `--listen`.
    pub fn listen_by_env(mut self) -> Self {
        self.listen_by_env = true;
        self
    }

    pub fn spawn(self) -> Server {
        let port = self.port.unwrap_or_else(free_port);
        let listen = format!("127.0.0.1:{port}");
        let mut command = Command::new(BIN);
        command.arg("serve");
        if self.listen_by_env {
            command.env("PSHUB_LISTEN", &listen);
        } else {
            command.args(["--listen", &listen]);
        }
        command.arg("--data-dir").arg(&self.data_dir);
        if let Some(store) = &self.store {
            command.args(["--store", store]);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        spawn_server(command, port, self.log)
    }
}

fn spawn_server(mut command: Command, port: u16, log: Option<PathBuf>) -> Server {
    command.stdout(Stdio::null());
    match &log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("the log file opens");
            command.stderr(Stdio::from(file));
        }
        None => {
            command.stderr(Stdio::null());
        }
    }
    Server {
        proc: Proc::spawn(&mut command),
        port,
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

/// `pshub sandbox --listen ... --data-dir DIR`, with `PSHUB_SANDBOX_FAULTS` if given.
pub fn sandbox(data_dir: &Path, faults: Option<&str>, log: Option<PathBuf>) -> Server {
    sandbox_on(free_port(), data_dir, faults, log)
}

/// The same on a given port (a sandbox started again where its hubs expect it).
pub fn sandbox_on(
    port: u16,
    data_dir: &Path,
    faults: Option<&str>,
    log: Option<PathBuf>,
) -> Server {
    let mut command = Command::new(BIN);
    command
        .args(["sandbox", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PSHUB_SANDBOX_ERP_FAULTS")
        .env_remove("PSHUB_SANDBOX_FAULTS");
    if let Some(faults) = faults {
        command.env("PSHUB_SANDBOX_FAULTS", faults);
    }
    spawn_server(command, port, log)
}

/// Polls `GET {base}/healthz` until it answers 200.
pub async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{base} did not become healthy");
}

/// `pshub serve --config CONFIG` on `tryton` (its URL, database and the connector's user in
/// `PSHUB_TRYTON_*`), logging to `serve.log` in `dir`, once it listens.
pub fn serve_with_tryton(
    dir: &Path,
    config: &Path,
    tryton: &pshub_connectors::tryton::local::LocalTryton,
) -> Server {
    let (user, password) = pshub_connectors::tryton::local::CONNECTOR_USER;
    let server = serve(dir)
        .env("PSHUB_CONFIG", config.to_str().unwrap())
        .env("PSHUB_TRYTON_URL", &tryton.url())
        .env(
            "PSHUB_TRYTON_DATABASE",
            pshub_connectors::tryton::local::DATABASE,
        )
        .env("PSHUB_TRYTON_USER", user)
        .env("PSHUB_TRYTON_PASSWORD", password)
        .log(dir.join("serve.log"))
        .spawn();
    wait_listening(server.port);
    server
}

/// The same, for tests without an async runtime: waits until the port takes connections.
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `pshub token create --role ROLE [--name NAME] --data-dir DIR [--store URL]`: the output
/// of the command, unchecked.
pub fn token_command(
    data_dir: &Path,
    store: Option<&str>,
    role: &str,
    name: Option<&str>,
) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.args(["token", "create", "--role", role]);
    if let Some(name) = name {
        command.args(["--name", name]);
    }
    command.arg("--data-dir").arg(data_dir);
    if let Some(store) = store {
        command.args(["--store", store]);
    }
    command.output().expect("pshub token create runs")
}

/// A new token, read from the last line of `pshub token create`.
pub fn create_token(
    data_dir: &Path,
    store: Option<&str>,
    role: &str,
    name: Option<&str>,
) -> String {
    let output = token_command(data_dir, store, role, name);
    assert!(
        output.status.success(),
        "pshub token create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("the token is printed")
        .trim()
        .to_string()
}

/// One hub as a client sees it: its address and a token.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(client: &reqwest::Client, base: &str, token: &str) -> Self {
        Api {
            client: client.clone(),
            base: base.to_string(),
            token: token.to_string(),
        }
    }

    /// `POST /v1/events`: the per-event results, or why there are none (no answer, not
    /// 200): a sender treats that answer as lost and sends the batch again.
    pub async fn post_events(&self, events: &[Value]) -> Result<Vec<Value>, String> {
        let response = self
            .client
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(&self.token)
            .json(events)
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("the answer broke off: {e}"))?;
        if !status.is_success() {
            return Err(format!("{status}: {text}"));
        }
        let body: Value =
            serde_json::from_str(&text).map_err(|e| format!("the answer does not read: {e}"))?;
        let results = body["results"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no results in {text}"))?;
        if results.len() != events.len() {
            return Err(format!(
                "{} results for {} events",
                results.len(),
                events.len()
            ));
        }
        Ok(results)
    }

    /// A GET with the token: status and JSON body (`Null` when the body is not JSON).
    pub async fn get(&self, path: &str) -> Result<(u16, Value), String> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// A GET that must answer 200 with JSON.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await.unwrap();
        assert_eq!(status, 200, "GET {}{path}: {body}", self.base);
        body
    }

    /// A GET of text (`/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<String, String> {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?
            .text()
            .await
            .map_err(|e| format!("GET {path}: {e}"))
    }

    /// How often `source`'s connector had `event` (`pshub_connector_events_total`; 0
    /// before the first).
    pub async fn connector_count(&self, source: &str, event: &str) -> f64 {
        let text = self.get_text("/metrics").await.unwrap();
        metric(
            &text,
            &format!("pshub_connector_events_total{{source=\"{source}\",event=\"{event}\"}}"),
        )
        .unwrap_or(0.0)
    }

    /// Waits until the hub has accepted exactly `count` events (what a connector brings in
    /// has all arrived, none twice), and answers the summary.
    pub async fn until_accepted(&self, count: u64) -> Value {
        eventually(
            &format!("{count} events are accepted"),
            Duration::from_secs(90),
            Duration::from_millis(50),
            || async {
                let summary = self.summary().await;
                if summary["accepted"].as_u64() == Some(count) {
                    Ok(summary)
                } else {
                    Err(summary.to_string())
                }
            },
        )
        .await
    }

    /// Posts `events` and checks that each was accepted.
    pub async fn post_accepted(&self, events: &[Value]) {
        let results = self.post_events(events).await.unwrap();
        assert!(
            results.iter().all(|r| r["status"] == "accepted"),
            "{results:?}"
        );
    }

    /// Waits until `GET path` answers 200 (what a connector brings in has arrived), and
    /// answers its body.
    pub async fn until_ok(&self, path: &str) -> Value {
        eventually(
            &format!("GET {path} answers 200"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                match self.get(path).await {
                    Ok((200, body)) => Ok(body),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
    }

    /// Waits until the quarantine holds something of `source`, and answers the first.
    pub async fn until_quarantined(&self, source: &str) -> Value {
        eventually(
            &format!("something of {source} is quarantined"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                let quarantine = self.get_ok("/v1/quarantine").await;
                quarantine["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|q| q["source"] == source)
                    .cloned()
                    .ok_or_else(|| quarantine.to_string())
            },
        )
        .await
    }

    /// Waits until `source`'s connector has had `event` at least once.
    pub async fn until_counted(&self, source: &str, event: &str) {
        eventually(
            &format!("{source} counts {event}"),
            Duration::from_secs(30),
            Duration::from_millis(20),
            || async {
                match self.connector_count(source, event).await {
                    n if n >= 1.0 => Ok(()),
                    n => Err(format!("{n}")),
                }
            },
        )
        .await
    }

    /// A POST with the token and no body.
    pub async fn post(&self, path: &str) -> Result<(u16, Value), String> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn summary(&self) -> Value {
        self.get_ok("/v1/summary").await
    }

    /// Every item of a paged list (`/v1/invoice-lines?...`), following `next`.
    pub async fn all_pages(&self, path: &str) -> Vec<Value> {
        all_pages(&self.client, &self.base, path, Some(&self.token)).await
    }

    /// The first event of `event_type` in the outbound stream as `target`'s readers see it
    /// (`GET /v1/outbound?target=`).
    pub async fn outbound_event(&self, target: &str, event_type: &str) -> Value {
        let (_, shown) = self
            .get(&format!("/v1/outbound?target={target}"))
            .await
            .unwrap();
        shown["items"]
            .as_array()
            .and_then(|items| items.iter().find(|e| e["type"] == event_type))
            .cloned()
            .unwrap_or_else(|| panic!("no {event_type} for {target}: {shown}"))
    }

    /// The invoice lines of a time entry or expense, its reversals among them.
    pub async fn lines_of(&self, entry: &str) -> Vec<Value> {
        self.all_pages(&format!("/v1/invoice-lines?source_id={entry}"))
            .await
    }
}

/// Every item of a paged list on `base` (the hub's, or the sandbox's without a token).
pub async fn all_pages(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}{path}{separator}limit=1000");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let mut request = client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(response.status(), 200, "GET {url}");
        let page: Value = response.json().await.unwrap();
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match &page["next"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => return items,
            other => panic!("GET {url}: next is {other}"),
        }
    }
}

/// Every record of one sandbox collection (`GET /sandbox/{system}/{collection}`, no token).
pub async fn sandbox_records(
    client: &reqwest::Client,
    sandbox_base: &str,
    system: &str,
    collection: &str,
) -> Vec<Value> {
    all_pages(
        client,
        sandbox_base,
        &format!("/sandbox/{system}/{collection}"),
        None,
    )
    .await
}

/// `GET /sandbox/stats` of a sandbox process.
pub async fn sandbox_stats(client: &reqwest::Client, sandbox_base: &str) -> Value {
    client
        .get(format!("{sandbox_base}/sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `probe` every `every` until it answers `Ok`, for at most `timeout`; on the
/// deadline the test fails with `what` and the probe's last answer.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        if Instant::now() > deadline {
            panic!("{what}: not reached within {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Runs futures concurrently on the runtime and answers their outputs in order.
pub async fn join_all<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut answers = Vec::with_capacity(handles.len());
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

/// The value of an unlabelled or labelled sample in Prometheus text
/// (`pshub_breaker_state{system="erp"}`).
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A `closed_won` as the front-door tests build it (`pshub-api/tests/it/helpers.rs`).
/// The project codes of the closed-won deals among `reference`, in order.
pub fn project_codes(reference: &[Value]) -> Vec<String> {
    reference
        .iter()
        .filter(|e| e["type"] == "opportunity.closed_won")
        .filter_map(|e| e["data"]["project"]["project_code"].as_str())
        .map(str::to_string)
        .collect()
}

pub fn closed_won(
    project: &str,
    currency: &str,
    card: &str,
    start: &str,
    end: Option<&str>,
) -> Value {
    serde_json::json!({
        "id": format!("won-{project}"),
        "source": "crm",
        "type": "opportunity.closed_won",
        "schema_version": 1,
        "occurred_at": "2026-03-04T17:02:11Z",
        "data": {
            "opportunity_id": format!("OPP-{project}"),
            "customer": { "customer_id": "C-1", "legal_name": "Client GmbH", "tax_id": "DE123", "country": "DE", "currency": currency },
            "contract": { "contract_id": format!("K-{project}"), "billing_model": "time_and_materials", "currency": currency,
                          "rate_card_id": card, "start": start, "end": end },
            "project": { "project_code": project, "name": "Audit", "legal_entity": "DE01", "region": "emea", "service_line": "advisory" }
        }
    })
}

/// Runs one SQL statement with `psql` on the database at `url` and answers its rows, one a
/// line, fields separated by `|`. For evidence the API does not give (who holds a lease).
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            url,
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs (the PostgreSQL client is installed with the server)");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The node id a `pshub serve` logged when it started (`"node":N` with `PSHUB_LOG_FORMAT=json`).
pub fn node_of(log: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(|line| {
        let value: Value = serde_json::from_str(line).ok()?;
        let fields = &value["fields"];
        (fields["message"] == "pshub listening")
            .then(|| fields["node"].as_i64())
            .flatten()
    })
}

/// Serves `app` (a stand-in of a vendor's API) on a free loopback port for the rest of the
/// test; answers its base URL.
pub async fn serve_stand_in(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// `pshub serve` over `dir` with `config` as its configuration file (`dir/pshub.toml`),
/// logging to `dir/serve.log`, once it listens; with an admin's view of it.
pub fn serve_with_config(dir: &TempDir, config: &str) -> (Server, Api) {
    std::fs::write(dir.join("pshub.toml"), config).unwrap();
    let server = serve_configured(dir, "serve.log");
    let token = create_token(dir.path(), None, "admin", None);
    let api = Api::new(&reqwest::Client::new(), &server.base, &token);
    (server, api)
}

/// Another process holding the write lock of the SQLite store in `data_dir` until it is
/// killed: the hub can take work in but not commit it.
pub fn hold_write_lock(data_dir: &Path) -> Child {
    let mut lock = Command::new("sqlite3")
        .arg(data_dir.join(pshub_store_sqlite::DB_FILE))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sqlite3 runs");
    use std::io::Write;
    let stdin = lock.stdin.as_mut().unwrap();
    writeln!(stdin, "BEGIN EXCLUSIVE;").unwrap();
    writeln!(stdin, "SELECT 'locked';").unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(lock.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    lock
}

/// `pshub serve` over `dir` with the configuration file `dir/pshub.toml`, logging to
/// `dir/<log>`, once it listens (a second start of one hub logs to another file).
pub fn serve_configured(dir: &TempDir, log: &str) -> Server {
    let server = serve(dir.path())
        .env("PSHUB_CONFIG", dir.join("pshub.toml").to_str().unwrap())
        .log(dir.join(log))
        .spawn();
    wait_listening(server.port);
    server
}

/// A canonical event as a system sends it.
pub fn envelope(source: &str, id: &str, event_type: &str, data: Value) -> Value {
    serde_json::json!({ "id": id, "source": source, "type": event_type, "schema_version": 1,
                        "occurred_at": "2026-03-04T17:02:11Z", "data": data })
}

/// A firm with a rate card, the won deals of `projects`, and W-1 hired and staffed on P-1.
pub fn firm(projects: &[&str]) -> Vec<Value> {
    let mut events = vec![envelope(
        "psa",
        "rc-1",
        "rate_card.upserted",
        serde_json::json!({ "rate_card_id": "RC-EUR", "currency": "EUR", "rates": [
            { "role": "consultant", "region": "emea", "rate": "150.00", "valid_from": "2026-01-01" }
        ] }),
    )];
    for project in projects {
        events.push(closed_won(project, "EUR", "RC-EUR", "2026-01-01", None));
    }
    events.push(envelope(
        "hris",
        "hire-W-1",
        "worker.hired",
        serde_json::json!({ "worker_id": "W-1", "effective_date": "2025-01-01", "legal_entity": "DE01", "region": "emea", "role": "consultant" }),
    ));
    events.push(envelope(
        "psa",
        "as-1",
        "assignment.changed",
        serde_json::json!({ "assignment_id": "A-1", "version": 1, "worker_id": "W-1", "project_code": "P-1",
                "role": "consultant", "start": "2026-01-01", "end": "2026-12-31", "hours": "160", "state": "approved" }),
    ));
    events
}

/// W-1's approved time entry `id` on P-1.
pub fn approved_time(id: &str, date: &str, hours: &str) -> Value {
    envelope(
        "psa",
        &id.to_lowercase(),
        "time_entry.approved",
        serde_json::json!({ "entry_id": id, "worker_id": "W-1", "project_code": "P-1", "work_date": date, "hours": hours, "billable": true }),
    )
}

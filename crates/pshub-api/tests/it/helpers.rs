use pshub_api::{hash_token, new_token};
use pshub_connectors::sandbox::{Faults, InProcess, Sandbox, System};
use pshub_engine::retry::RetrySchedule;
use pshub_engine::store::Store;
use pshub_engine::store::{IdKind, TokenRow};
use pshub_engine::{Config, Engine, Systems};
use pshub_store_postgres::PostgresStore;
use pshub_store_postgres::testing::TestDatabase;
use pshub_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub struct TestApp {
    pub address: String,
    pub token: String,
    pub client: reqwest::Client,
    pub engine: Arc<Engine>,
    pub sandbox: Arc<Sandbox>,
    /// A second ERP (`erp2`, a sandbox of its own), for routing tests.
    pub erp2: Option<Arc<Sandbox>>,
    pub dir: std::path::PathBuf,
    /// The PostgreSQL database of the test, dropped after the hub.
    database: Option<TestDatabase>,
    backend: Backend,
    config: Config,
    /// Stops the server, and its task.
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

/// The store a front-door test runs on: every test runs on both.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh store for one test, and the database to drop after it (PostgreSQL).
    fn create(self, dir: &std::path::Path) -> (Arc<dyn Store>, Option<TestDatabase>) {
        let database = match self {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let name = dir.file_name().unwrap().to_string_lossy().to_string();
                Some(TestDatabase::create(&name))
            }
        };
        (self.reopen(dir, database.as_ref()), database)
    }

    /// The store of a test, opened (again).
    fn reopen(self, dir: &std::path::Path, database: Option<&TestDatabase>) -> Arc<dyn Store> {
        match (self, database) {
            (Backend::Postgres, Some(database)) => {
                Arc::new(PostgresStore::open(&database.url).expect("store opens"))
            }
            _ => Arc::new(SqliteStore::open(dir).expect("store opens")),
        }
    }
}

/// Every call to the sandbox ERP fails technically.
pub fn failing_erp() -> Faults {
    Faults {
        fail_per_million: 1_000_000,
        ..Faults::default()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The configuration of test hubs: retries are fast so that dead-letter tests finish
/// quickly, and the breaker stays out of the way unless a test asks for it.
pub fn test_config() -> Config {
    Config {
        retry: RetrySchedule {
            delays: vec![Duration::from_millis(1); 3],
            retry_after_cap: Duration::from_millis(5),
        },
        breaker_threshold: 1_000,
        ..Config::default()
    }
}

/// Starts the API over a fresh store and in-process sandbox systems.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, test_config()).await
}

pub async fn spawn_app_with(backend: Backend, config: Config) -> TestApp {
    spawn(backend, config, None).await
}

/// A hub with two ERPs: the sandbox's `erp` and a second sandbox's ERP as `erp2`.
pub async fn spawn_app_with_two_erps(backend: Backend, config: Config) -> TestApp {
    spawn(backend, config, Some(Sandbox::in_memory())).await
}

async fn spawn(backend: Backend, config: Config, erp2: Option<Arc<Sandbox>>) -> TestApp {
    let n = NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pshub-api-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (store, database) = backend.create(&dir);
    let sandbox = Sandbox::in_memory();
    let engine = open_engine(store, &config, &sandbox, erp2.as_ref());
    let token = add_token(&engine, "admin", "test admin");
    let (address, server) = start_server(&engine, &sandbox).await;
    TestApp {
        address,
        token,
        client: reqwest::Client::new(),
        engine,
        sandbox,
        erp2,
        dir,
        database,
        backend,
        config,
        server: Some(server),
    }
}

fn open_engine(
    store: Arc<dyn Store>,
    config: &Config,
    sandbox: &Arc<Sandbox>,
    erp2: Option<&Arc<Sandbox>>,
) -> Arc<Engine> {
    let mut systems = InProcess::systems(sandbox, Systems::default());
    if let Some(erp2) = erp2 {
        let port = InProcess {
            sandbox: erp2.clone(),
            system: System::Erp,
        };
        systems = systems.with("erp2", pshub_engine::Port::Erp(Arc::new(port)));
    }
    Engine::open(store, config.clone(), systems).expect("engine opens")
}

type Server = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

async fn start_server(engine: &Arc<Engine>, sandbox: &Arc<Sandbox>) -> (String, Server) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let inspect: Arc<dyn pshub_api::SandboxInspect> = Arc::new(Inspect(sandbox.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let engine = engine.clone();
        async move {
            pshub_api::serve(listener, engine, Some(inspect), async {
                let _ = stopped.await;
            })
            .await
            .expect("the server runs");
        }
    });
    (address, (stop, task))
}

/// The in-process sandbox, as the hub's inspection routes read it.
struct Inspect(Arc<Sandbox>);

impl pshub_api::SandboxInspect for Inspect {
    fn page(
        &self,
        system: &str,
        collection: &str,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Value, (u16, String)> {
        let query = pshub_connectors::sandbox::server::PageQuery::new(
            limit.map(str::to_string),
            cursor.map(str::to_string),
        );
        pshub_connectors::sandbox::server::inspect(&self.0, system, collection, &query)
    }

    fn stats(&self) -> Result<Value, (u16, String)> {
        Ok(self.0.stats())
    }
}

fn add_token(engine: &Engine, role: &str, name: &str) -> String {
    let token = new_token().unwrap();
    let store = engine.store();
    store
        .add_token(&TokenRow {
            id: store.reserve_ids(IdKind::Token, 1).unwrap(),
            hash: hash_token(&token),
            role: role.into(),
            name: name.into(),
            created_at: "2026-03-01T00:00:00Z".into(),
        })
        .unwrap();
    token
}

impl TestApp {
    /// Stops the hub and starts it again over the same store, as a restart of the process
    /// would; the sandbox systems, being other systems, keep running.
    pub async fn restart(&mut self) {
        let (stop, task) = self.server.take().expect("the server runs");
        self.client = reqwest::Client::new();
        let _ = stop.send(());
        task.await.expect("the server stops");
        let old = std::mem::replace(
            &mut self.engine,
            open_engine(
                self.backend.reopen(&self.dir, self.database.as_ref()),
                &self.config,
                &self.sandbox,
                self.erp2.as_ref(),
            ),
        );
        drop(old);
        let (address, server) = start_server(&self.engine, &self.sandbox).await;
        self.address = address;
        self.server = Some(server);
    }

    pub async fn token_for(&self, role: &str) -> String {
        let role = role.to_string();
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || add_token(&engine, &role, &format!("test {role}")))
            .await
            .unwrap()
    }

    /// GETs `path` with another token.
    pub async fn get_with(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Makes the sandbox ERP misbehave (or behave, with `Faults::default()`).
    pub fn erp_faults(&self, faults: Faults) {
        self.sandbox.set_system_faults(System::Erp, faults);
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request is sent")
    }

    /// Sends events and answers the per-event results.
    pub async fn send(&self, events: Value) -> Vec<Value> {
        let response = self
            .post_raw("/v1/events", events.to_string(), Some(&self.token))
            .await;
        assert_eq!(response.status(), 200, "POST /v1/events");
        let body: Value = response.json().await.unwrap();
        body["results"].as_array().cloned().unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        let response = self.post_raw(path, "", Some(&self.token)).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Runs every step that can run now, waiting for retries, until none is pending.
    pub async fn settle(&self) {
        let engine = self.engine.clone();
        let settled = tokio::task::spawn_blocking(move || engine.settle(Duration::from_secs(20)))
            .await
            .unwrap()
            .unwrap();
        assert!(settled, "the steps settle within 20 s");
    }

    /// Posts a payroll file (`text/csv`) named `file`.
    pub async fn post_payroll(&self, file: &str, csv: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/payroll?file={file}", self.address))
            .header("content-type", "text/csv")
            .bearer_auth(&self.token)
            .body(csv.to_string())
            .send()
            .await
            .expect("request is sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Has the hub open the cases of the payroll loads it has not checked yet (the costing
    /// worker of `serve` does so within a second).
    pub async fn check_payroll(&self) -> pshub_engine::flows::payroll_costing::Checked {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.check_payroll())
            .await
            .unwrap()
            .expect("payroll checks")
    }

    /// Posts with a JSON body.
    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .post_raw(path, body.to_string(), Some(&self.token))
            .await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn lines_of(&self, source_id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/v1/invoice-lines?source_id={source_id}"))
            .await;
        assert_eq!(status, 200);
        body["items"].as_array().cloned().unwrap()
    }

    pub async fn exceptions(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v1/exceptions?{query}")).await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().cloned().unwrap()
    }

    /// A firm with one EUR project, two consultants in emea and a rate card.
    pub async fn with_firm(&self) {
        let results = self.with_firm_unchecked().await;
        assert!(
            results
                .iter()
                .all(|r| r["status"] == "accepted" && r["reason"].is_null()),
            "{results:?}"
        );
    }

    /// The events of [`TestApp::with_firm`], sent and settled; answers their results.
    pub async fn with_firm_unchecked(&self) -> Vec<Value> {
        let results = self
            .send(json!([
                rate_card(
                    "RC-EUR",
                    "EUR",
                    &[("consultant", "emea", "150.00", "2026-01-01", None)]
                ),
                closed_won("P-1", "EUR", "RC-EUR", "2026-01-01", None),
                hired("W-1", "2025-01-01", "emea", "consultant"),
                hired("W-2", "2025-01-01", "emea", "consultant"),
                assignment("A-1", "W-1", "P-1", "approved"),
                assignment("A-2", "W-2", "P-1", "approved"),
            ]))
            .await;
        self.settle().await;
        results
    }
}

pub fn event(source: &str, id: &str, event_type: &str, data: Value) -> Value {
    json!({ "id": id, "source": source, "type": event_type, "schema_version": 1, "occurred_at": "2026-03-04T17:02:11Z", "data": data })
}

pub fn rate_card(
    id: &str,
    currency: &str,
    rates: &[(&str, &str, &str, &str, Option<&str>)],
) -> Value {
    let rates: Vec<Value> = rates
        .iter()
        .map(|(role, region, rate, from, to)| json!({ "role": role, "region": region, "rate": rate, "valid_from": from, "valid_to": to }))
        .collect();
    event(
        "psa",
        &format!("rc-{id}-{}", rates.len()),
        "rate_card.upserted",
        json!({ "rate_card_id": id, "currency": currency, "rates": rates }),
    )
}

pub fn closed_won(
    project: &str,
    currency: &str,
    card: &str,
    start: &str,
    end: Option<&str>,
) -> Value {
    event(
        "crm",
        &format!("won-{project}"),
        "opportunity.closed_won",
        json!({
            "opportunity_id": format!("OPP-{project}"),
            "customer": { "customer_id": "C-1", "legal_name": "Client GmbH", "tax_id": "DE123", "country": "DE", "currency": currency },
            "contract": { "contract_id": format!("K-{project}"), "billing_model": "time_and_materials", "currency": currency,
                          "rate_card_id": card, "start": start, "end": end },
            "project": { "project_code": project, "name": "Audit", "legal_entity": "DE01", "region": "emea", "service_line": "advisory" }
        }),
    )
}

pub fn hired(worker: &str, date: &str, region: &str, role: &str) -> Value {
    event(
        "hris",
        &format!("hire-{worker}"),
        "worker.hired",
        json!({
            "worker_id": worker, "effective_date": date, "legal_entity": "DE01", "region": region,
            "cost_center": "CC1", "role": role, "grade": "G2", "name": "Ada Example", "email": "ada@example.com"
        }),
    )
}

pub fn worker_change(worker: &str, kind: &str, date: &str) -> Value {
    event(
        "hris",
        &format!("{kind}-{worker}-{date}"),
        &format!("worker.{kind}"),
        json!({ "worker_id": worker, "effective_date": date }),
    )
}

pub fn assignment(id: &str, worker: &str, project: &str, state: &str) -> Value {
    event(
        "psa",
        &format!("{id}-{state}"),
        "assignment.changed",
        json!({
            "assignment_id": id, "version": if state == "approved" { 2 } else { 1 }, "worker_id": worker, "project_code": project,
            "role": "consultant", "start": "2026-01-01", "end": "2026-12-31", "hours": "160", "state": state
        }),
    )
}

pub fn time_entry(event_id: &str, entry: &str, worker: &str, date: &str, hours: Value) -> Value {
    event(
        "psa",
        event_id,
        "time_entry.approved",
        json!({
            "entry_id": entry, "worker_id": worker, "project_code": "P-1", "work_date": date, "hours": hours, "billable": true
        }),
    )
}

pub fn rejected(event_id: &str, entry: &str, worker: &str, date: &str, hours: Value) -> Value {
    let mut event = time_entry(event_id, entry, worker, date, hours);
    event["type"] = json!("time_entry.rejected");
    event
}

pub fn statuses(results: &[Value]) -> Vec<String> {
    results
        .iter()
        .map(|r| r["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

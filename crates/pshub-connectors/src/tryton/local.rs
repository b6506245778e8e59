//! A Tryton of its own on loopback, for tests and benchmarks: a copy of the accounting
//! baseline that `tests/tryton/setup.sh` makes (installed under `TRYTON_ROOT`, by default
//! `target/tryton` of the workspace), served by `trytond` on a free port, stopped when
//! dropped. Nothing here skips: a missing install is an error that names the setup command.

use super::config::TrytonConfig;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The connector's user in the baseline, and the administrator's.
pub const CONNECTOR_USER: (&str, &str) = ("pshub", "pshub-connector");
pub const ADMIN_USER: (&str, &str) = ("admin", "admin");
pub const DATABASE: &str = "tryton";

pub struct LocalTryton {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

/// Where Tryton is installed: `TRYTON_ROOT`, else `target/tryton` of this workspace.
pub fn root() -> PathBuf {
    std::env::var_os("TRYTON_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/tryton")
                .components()
                .collect()
        })
}

impl LocalTryton {
    /// Serves a fresh copy of the baseline from a folder under `parent`.
    pub fn start(parent: &Path) -> Result<Self, String> {
        let root = root();
        let baseline = root.join("baseline/tryton.sqlite");
        let trytond = root.join("venv/bin/trytond");
        if !baseline.is_file() || !trytond.is_file() {
            return Err(format!(
                "no Tryton baseline at {}: run tests/tryton/setup.sh (.ci/run does)",
                baseline.display()
            ));
        }
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("tryton-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::copy(&baseline, dir.join("tryton.sqlite"))
            .map_err(|e| format!("cannot copy the baseline: {e}"))?;
        let port = free_port()?;
        let conf = dir.join("trytond.conf");
        std::fs::write(
            &conf,
            format!(
                "[database]\nuri = sqlite://\npath = {}\n[web]\nlisten = 127.0.0.1:{port}\n[session]\ntimeout = 3600\n",
                dir.display()
            ),
        )
        .map_err(|e| format!("{}: {e}", conf.display()))?;
        let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&trytond)
            .arg("-c")
            .arg(&conf)
            .arg("-d")
            .arg(DATABASE)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", trytond.display()))?;
        let mut server = LocalTryton { child, dir, port };
        server.wait_ready(Duration::from_secs(60))?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The connector's configuration for this server, as its own user.
    pub fn config(&self) -> TrytonConfig {
        TrytonConfig::new(&self.url(), DATABASE, CONNECTOR_USER.0, CONNECTOR_USER.1)
    }

    /// The administrator's, to read Tryton independently of the connector.
    pub fn admin_config(&self) -> TrytonConfig {
        TrytonConfig::new(&self.url(), DATABASE, ADMIN_USER.0, ADMIN_USER.1)
    }

    /// The server's log so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let client = super::client::Client::new(&self.config())?;
        loop {
            if client.server_version().is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("trytond exited ({status}): {}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "trytond did not answer within {within:?}: {}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalTryton {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// What a salesperson does in Tryton, for tests: a customer party (`party_code`, named
/// `party_name`), a salesperson, an opportunity from `start` described `description`, then
/// its `opportunity` and `convert` buttons. Answers the opportunity's id. `end` is its end
/// date, if any.
pub fn converted_opportunity(
    admin: &super::client::Client,
    party_code: &str,
    party_name: &str,
    description: &str,
    start: chrono::NaiveDate,
    end: Option<chrono::NaiveDate>,
) -> super::client::Rpc<i64> {
    use serde_json::json;
    let company = admin.company()?;
    let create = |model: &str, values: serde_json::Value| -> super::client::Rpc<i64> {
        let made = admin.model(model, "create", vec![json!([values])])?;
        made[0]
            .as_i64()
            .ok_or_else(|| super::client::RpcError::Unknown(format!("no id for the new {model}")))
    };
    let party = create(
        "party.party",
        json!({"name": party_name, "code": party_code, "addresses": [["create", [{}]]]}),
    )?;
    let seller = create("party.party", json!({"name": "Sales Person"}))?;
    let employee = create(
        "company.employee",
        json!({"party": seller, "company": company}),
    )?;
    let currencies = admin.model(
        "currency.currency",
        "search",
        vec![
            json!([["code", "=", "EUR"]]),
            json!(0),
            json!(1),
            serde_json::Value::Null,
        ],
    )?;
    let mut values = json!({"party": party, "description": description, "currency": currencies[0],
                            "company": company, "employee": employee,
                            "start_date": super::mapping::date(start), "conversion_probability": 0.5});
    if let Some(end) = end {
        values["end_date"] = super::mapping::date(end);
    }
    let opportunity = create("sale.opportunity", values)?;
    for button in ["opportunity", "convert"] {
        admin.model("sale.opportunity", button, vec![json!([opportunity])])?;
    }
    Ok(opportunity)
}

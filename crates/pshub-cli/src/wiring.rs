//! Builds an engine: the store named by `--store` (else `PSHUB_STORE`, else the SQLite file
//! in the data folder), the systems it calls (the sandbox in this process, or the one at
//! `PSHUB_SANDBOX_URL`), and configuration from the environment.

use crate::config_connectors::Connector;
use crate::config_file::ConfigFile;
use anyhow::{Context, Result, bail};
use pshub_api::SandboxInspect;
use pshub_connectors::legacy_table::LegacyTable;
use pshub_connectors::sandbox::client::HttpSandbox;
use pshub_connectors::sandbox::server::{PageQuery, inspect};
use pshub_connectors::sandbox::{FaultPlan, InProcess, Sandbox};
use pshub_connectors::tryton::Tryton;
use pshub_connectors::tryton::config::TrytonConfig;
use pshub_engine::store::Store;
use pshub_engine::{Config, Engine, Port, Systems};
use pshub_store_postgres::PostgresStore;
use pshub_store_sqlite::SqliteStore;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The configuration file named by `--config` (or `PSHUB_CONFIG`), once read.
static CONFIG_FILE: OnceLock<ConfigFile> = OnceLock::new();

/// Makes `file` the configuration every command reads (set once, at the start).
pub fn use_config_file(file: ConfigFile) {
    let _ = CONFIG_FILE.set(file);
}

fn config_file() -> Option<&'static ConfigFile> {
    CONFIG_FILE.get()
}

/// Where the store is, for every command that opens it.
#[derive(clap::Args, Clone, Debug)]
pub struct StoreArgs {
    /// Folder for local files: the embedded store (unless --store names another) and the
    /// in-process sandbox systems' records. Else `[store] data_dir` of the configuration
    /// file, else ./pshub-data.
    #[arg(long = "data-dir", env = "PSHUB_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The store: `sqlite:<path>` or `postgres://user@host:port/db`. Else `[store] url` of
    /// the configuration file, else `sqlite:<data-dir>/pshub.sqlite`.
    #[arg(long, env = "PSHUB_STORE")]
    store: Option<String>,
}

impl StoreArgs {
    pub fn for_dir(data_dir: &Path) -> Self {
        StoreArgs {
            data_dir: Some(data_dir.to_path_buf()),
            store: None,
        }
    }

    pub fn new(data_dir: PathBuf, store: Option<String>) -> Self {
        StoreArgs {
            data_dir: Some(data_dir),
            store,
        }
    }

    /// The folder for local files: as given, else as configured, else ./pshub-data.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| config_file().and_then(ConfigFile::data_dir))
            .unwrap_or_else(|| PathBuf::from("./pshub-data"))
    }

    /// The store's URL: as given, else as configured, else the data folder's SQLite file.
    pub fn url(&self) -> String {
        self.store
            .clone()
            .or_else(|| config_file().and_then(ConfigFile::store_url))
            .unwrap_or_else(|| {
                format!(
                    "sqlite:{}",
                    self.data_dir().join(pshub_store_sqlite::DB_FILE).display()
                )
            })
    }

    /// Opens (and migrates) the store.
    pub fn open(&self) -> Result<Arc<dyn Store>> {
        open_store(&self.url())
    }
}

/// Opens the store a URL names, applying its migrations.
pub fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        if path.trim().is_empty() {
            bail!(
                "--store: '{url}' names no file; give sqlite:<path>, for example sqlite:./pshub-data/pshub.sqlite"
            );
        }
        let store = SqliteStore::open_url(path)
            .with_context(|| format!("failed to open the store {url}"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::open(url)
            .with_context(|| format!("failed to open the store {}", redact(url)))?;
        return Ok(Arc::new(store));
    }
    bail!(
        "--store: '{}' is not a sqlite: or postgres:// URL",
        redact(url)
    )
}

pub use pshub_connectors::redact;

fn parse_list(name: &str, raw: &str) -> Result<Vec<String>> {
    let items: Vec<String> = raw
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        bail!("{name}: '{raw}' names no system");
    }
    Ok(items)
}

/// A whole number from the environment within `range`, or why not.
fn env_number(name: &str, range: std::ops::RangeInclusive<u64>) -> Result<Option<u64>> {
    let Ok(raw) = std::env::var(name) else {
        return Ok(None);
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => bail!(
            "{name}: '{raw}' is not a whole number from {} to {}",
            range.start(),
            range.end()
        ),
    }
}

/// Reads configuration from the environment on top of the defaults:
/// `PSHUB_SOURCES=crm,psa,...`, `PSHUB_TAX_CODES=DE01=DE-VAT19,US01=US-EXEMPT`,
/// `PSHUB_MAX_DAILY_HOURS=24`, `PSHUB_CRASH_AFTER=flow.step`, and delivery's
/// `PSHUB_RETRY_DELAYS_MS=1000,5000,...`, `PSHUB_BREAKER_THRESHOLD`,
/// `PSHUB_BREAKER_COOL_DOWN_MS`, `PSHUB_DELIVERY_BATCH`, `PSHUB_DELIVERY_PAUSE_MS`.
/// How long the bus waits for a message's acknowledgement before delivering it again, unless
/// `PSHUB_BUS_ACK_WAIT_S` says otherwise.
pub const DEFAULT_BUS_ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A bus URL: `nats://HOST:PORT` (several, comma-separated, for a cluster).
pub fn check_bus_url(url: &str) -> std::result::Result<(), String> {
    let bad = url.split(',').find(|one| {
        let rest = one.trim().strip_prefix("nats://").unwrap_or("");
        rest.is_empty() || rest.contains('/')
    });
    match bad {
        None => Ok(()),
        Some(one) => Err(format!("'{one}' is not a NATS URL; write nats://HOST:PORT")),
    }
}

pub fn config_from_env() -> Result<Config> {
    config_from(config_file())
}

/// The configuration of `file` (when one is given) and the environment, on the defaults.
pub fn config_from(file: Option<&ConfigFile>) -> Result<Config> {
    let mut config = Config::default();
    if let Some(file) = file {
        file.apply_to(&mut config);
    }
    let from_file = |set: fn(&ConfigFile) -> bool| file.is_some_and(set);
    if let Ok(sources) = std::env::var("PSHUB_SOURCES")
        && !from_file(ConfigFile::sets_sources)
    {
        config.sources = parse_list("PSHUB_SOURCES", &sources)?;
    }
    if let Ok(codes) = std::env::var("PSHUB_TAX_CODES")
        && !from_file(ConfigFile::sets_legal_entities)
    {
        for pair in codes.split(',').filter(|p| !p.trim().is_empty()) {
            let (entity, code) = pair.split_once('=').with_context(|| {
                format!("PSHUB_TAX_CODES: '{pair}' is not LEGAL_ENTITY=TAX_CODE")
            })?;
            config
                .tax_codes
                .insert(entity.trim().to_string(), code.trim().to_string());
        }
    }
    if let Ok(limit) = std::env::var("PSHUB_MAX_DAILY_HOURS")
        && !from_file(ConfigFile::sets_max_daily_hours)
    {
        let hours = pshub_model::decimal::parse_exact(limit.trim())
            .ok()
            .filter(|h| *h > rust_decimal::Decimal::ZERO && *h <= rust_decimal::Decimal::from(24))
            .with_context(|| {
                format!("PSHUB_MAX_DAILY_HOURS: '{limit}' is not a number of hours above 0 and at most 24")
            })?;
        config.max_daily_hours = Some(hours);
    }
    if let Ok(step) = std::env::var("PSHUB_CRASH_AFTER") {
        let known = pshub_engine::flows::opportunity_to_project::STEPS
            .iter()
            .map(|s| format!("opportunity_to_project.{s}"))
            .chain(std::iter::once("time_to_bill.post_line".to_string()))
            .collect::<Vec<_>>();
        if !known.contains(&step) {
            bail!(
                "PSHUB_CRASH_AFTER: '{step}' is not a step; use one of {}",
                known.join(", ")
            );
        }
        config.crash_after = Some(step);
    }
    if let Ok(delays) = std::env::var("PSHUB_RETRY_DELAYS_MS") {
        let parsed = delays
            .split(',')
            .map(|d| d.trim().parse::<u64>().ok().filter(|ms| (1..=86_400_000).contains(ms)))
            .collect::<Option<Vec<u64>>>()
            .filter(|list| (1..=20).contains(&list.len()))
            .with_context(|| {
                format!("PSHUB_RETRY_DELAYS_MS: '{delays}' is not a list of 1 to 20 delays in milliseconds (1 to 86400000 each), such as 1000,5000,30000")
            })?;
        config.retry.delays = parsed.into_iter().map(Duration::from_millis).collect();
    }
    if let Some(n) = env_number("PSHUB_BREAKER_THRESHOLD", 1..=10_000)? {
        config.breaker_threshold = n as u32;
    }
    if let Some(ms) = env_number("PSHUB_BREAKER_COOL_DOWN_MS", 10..=3_600_000)? {
        config.breaker_cool_down = Duration::from_millis(ms);
    }
    if let Some(n) = env_number("PSHUB_DELIVERY_BATCH", 1..=10_000)? {
        config.delivery_batch = n as u32;
    }
    if let Some(ms) = env_number("PSHUB_DELIVERY_PAUSE_MS", 0..=10_000)? {
        config.delivery_pause = Duration::from_millis(ms);
    }
    Ok(config)
}

/// The sandbox systems the hub calls: in this process, or a network peer.
#[derive(Clone)]
pub enum SandboxLink {
    InProcess(Arc<Sandbox>),
    Http(Arc<HttpSandbox>),
}

impl SandboxInspect for SandboxLink {
    fn page(
        &self,
        system: &str,
        collection: &str,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> std::result::Result<serde_json::Value, (u16, String)> {
        match self {
            SandboxLink::InProcess(sandbox) => inspect(
                sandbox,
                system,
                collection,
                &PageQuery::new(limit.map(str::to_string), cursor.map(str::to_string)),
            ),
            SandboxLink::Http(http) => {
                let mut query = Vec::new();
                if let Some(limit) = limit {
                    query.push(format!("limit={}", encode(limit)));
                }
                if let Some(cursor) = cursor {
                    query.push(format!("cursor={}", encode(cursor)));
                }
                let path = format!(
                    "/sandbox/{}/{}?{}",
                    encode(system),
                    encode(collection),
                    query.join("&")
                );
                let (status, body) = http.get(&path).map_err(|e| (502, e))?;
                if status == 200 {
                    Ok(body)
                } else {
                    let message = body["error"]["message"]
                        .as_str()
                        .unwrap_or("the sandbox refused")
                        .to_string();
                    Err((status, message))
                }
            }
        }
    }

    fn stats(&self) -> std::result::Result<serde_json::Value, (u16, String)> {
        match self {
            SandboxLink::InProcess(sandbox) => Ok(sandbox.stats()),
            SandboxLink::Http(http) => http
                .get("/sandbox/stats")
                .map(|(_, b)| b)
                .map_err(|e| (502, e)),
        }
    }
}

/// Percent-encodes a path or query part.
fn encode(part: &str) -> String {
    part.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// How long a call to the sandbox over HTTP may take before its outcome is unknown.
fn sandbox_timeout() -> Result<Duration> {
    match std::env::var("PSHUB_SANDBOX_TIMEOUT_MS") {
        Err(_) => Ok(Duration::from_secs(5)),
        Ok(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=600_000).contains(ms))
            .map(Duration::from_millis)
            .with_context(|| format!("PSHUB_SANDBOX_TIMEOUT_MS: '{raw}' is not a whole number of milliseconds from 1 to 600000")),
    }
}

/// The faults of `PSHUB_SANDBOX_FAULTS`, and the older `PSHUB_SANDBOX_ERP_FAULTS`.
pub fn faults_from_env() -> Result<FaultPlan> {
    let mut spec = String::new();
    if let Ok(erp) = std::env::var("PSHUB_SANDBOX_ERP_FAULTS") {
        for pair in erp.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if pair.contains('.') {
                spec.push_str(pair);
            } else {
                spec.push_str(&format!("erp.{pair}"));
            }
            spec.push(',');
        }
    }
    if let Ok(all) = std::env::var("PSHUB_SANDBOX_FAULTS") {
        spec.push_str(&all);
    }
    FaultPlan::parse(&spec, None).map_err(|e| anyhow::anyhow!("PSHUB_SANDBOX_FAULTS: {e}"))
}

/// The sandbox the hub calls: `PSHUB_SANDBOX_URL`, else the one kept in `data_dir`.
pub fn sandbox_link(data_dir: &Path) -> Result<SandboxLink> {
    match std::env::var("PSHUB_SANDBOX_URL") {
        Ok(url) => {
            let client = HttpSandbox::new(&url, sandbox_timeout()?)
                .map_err(|e| anyhow::anyhow!("PSHUB_SANDBOX_URL: {e}"))?;
            Ok(SandboxLink::Http(client))
        }
        Err(_) => {
            let sandbox = Sandbox::open(data_dir).with_context(|| {
                format!(
                    "failed to open the sandbox systems in {}",
                    data_dir.display()
                )
            })?;
            sandbox.set_faults(faults_from_env()?);
            Ok(SandboxLink::InProcess(sandbox))
        }
    }
}

impl SandboxLink {
    pub fn systems(&self) -> Systems {
        match self {
            SandboxLink::InProcess(sandbox) => InProcess::systems(sandbox, Systems::default()),
            SandboxLink::Http(http) => http.systems(Systems::default()),
        }
    }

    /// The in-process sandbox, where the hub runs it.
    pub fn in_process(&self) -> Option<&Arc<Sandbox>> {
        match self {
            SandboxLink::InProcess(sandbox) => Some(sandbox),
            SandboxLink::Http(_) => None,
        }
    }
}

pub struct Wired {
    pub engine: Arc<Engine>,
    pub sandbox: SandboxLink,
    /// The configured connectors; each has its worker beside the hub.
    pub connectors: Vec<Connected>,
}

/// A connector as it runs: Tryton (invoicing and invoice states back) or a legacy table
/// (statuses back by watermark).
#[derive(Clone)]
pub enum Connected {
    Tryton(Arc<Tryton>),
    LegacyTable(Arc<LegacyTable>),
}

impl Connected {
    /// Starts the connector's worker beside the engine.
    pub fn spawn_worker(
        &self,
        engine: Arc<Engine>,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        match self {
            Connected::Tryton(tryton) => tryton.spawn_worker(engine, stop),
            Connected::LegacyTable(table) => table.spawn_worker(engine, stop),
        }
    }
}

pub fn open(store: &StoreArgs, mut config: Config) -> Result<Wired> {
    let sandbox = sandbox_link(&store.data_dir())?;
    let mut systems = sandbox.systems();
    let connectors = configured_connectors(Some(&store.data_dir()))?;
    for (name, connected) in &connectors {
        match connected {
            Connected::Tryton(tryton) => {
                config
                    .delivery_pacing
                    .insert(name.clone(), tryton.delivery_pacing());
                systems = systems.with(name, Port::Erp(tryton.clone()));
                let psa = crate::config_connectors::psa_system(name);
                if config.psa_system == psa {
                    systems = systems.with(&psa, Port::Psa(tryton.clone()));
                }
            }
            Connected::LegacyTable(table) => {
                systems = systems.with(name, Port::Erp(table.clone()));
            }
        }
    }
    let targets = match config_file() {
        Some(file) => file.targets().map_err(|e| anyhow::anyhow!(e))?,
        None => Vec::new(),
    };
    for (name, target) in &targets {
        systems = systems.with(name, target.port());
    }
    let engine = Engine::open(store.open()?, config, systems)
        .context("failed to rebuild the hub from its store")?;
    for (_, target) in &targets {
        target.client().count_on(engine.clone());
    }
    if let Some(file) = config_file() {
        let path = file.path.clone();
        engine.set_reloader(Box::new(move || reread(&path)));
    }
    Ok(Wired {
        engine,
        sandbox,
        connectors: connectors.into_iter().map(|(_, c)| c).collect(),
    })
}

/// The configuration as the file at `path` holds it now, with the environment.
fn reread(path: &Path) -> std::result::Result<Config, String> {
    let file = ConfigFile::read(path).map_err(|errors| errors.join("; "))?;
    config_from(Some(&file)).map_err(|e| format!("{e:#}"))
}

/// Every connector the configuration file declares, connected, by name. With `data_dir`,
/// a Tryton's longest create timed is kept there across restarts.
pub fn configured_connectors(data_dir: Option<&Path>) -> Result<Vec<(String, Connected)>> {
    let Some(file) = config_file() else {
        return Ok(Vec::new());
    };
    let mut connected = Vec::new();
    for (name, connector) in file.connectors() {
        let running = match connector {
            Connector::Tryton(tryton) => {
                Connected::Tryton(connect_tryton(&name, *tryton, data_dir)?)
            }
            Connector::LegacyTable(table) => Connected::LegacyTable(
                LegacyTable::connect(&name, table)
                    .map_err(|e| anyhow::anyhow!("[connectors.{name}]: {e}"))?,
            ),
        };
        tracing::info!(connector = %name, "connector connected");
        connected.push((name, running));
    }
    Ok(connected)
}

/// The Tryton ERP that the configuration file names (`[erp] connector`), for `invoice run`.
pub fn configured_tryton(data_dir: Option<&Path>) -> Result<Option<Arc<Tryton>>> {
    let Some((name, tryton)) = config_file().and_then(ConfigFile::erp_connector) else {
        return Ok(None);
    };
    connect_tryton(&name, tryton, data_dir).map(Some)
}

/// Connects the Tryton of `[connectors.<name>]`, the system `name`; with `data_dir`, the
/// longest create it timed is kept there across restarts.
fn connect_tryton(
    name: &str,
    mut tryton: TrytonConfig,
    data_dir: Option<&Path>,
) -> Result<Arc<Tryton>> {
    tryton.system = name.to_string();
    tryton.timings_file = data_dir.map(|dir| dir.join(format!("tryton-{name}.longest-create-ms")));
    Tryton::connect(tryton).map_err(|e| anyhow::anyhow!("[connectors.{name}]: {e}"))
}

/// Logs to stderr at `PSHUB_LOG` (an `EnvFilter`: `info`, `debug`, `pshub_engine=debug`, …;
/// `default_level` when unset), as text or, with `PSHUB_LOG_FORMAT=json`, one JSON object
/// per line.
pub fn init_logging(default_level: &str) -> Result<()> {
    let filter = match std::env::var("PSHUB_LOG") {
        Ok(spec) if !spec.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&spec)
            .map_err(|e| anyhow::anyhow!("PSHUB_LOG: '{spec}' is not a log filter: {e}"))?,
        _ => tracing_subscriber::EnvFilter::new(default_level),
    };
    let json = match std::env::var("PSHUB_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") | Ok("") | Err(_) => false,
        Ok(other) => bail!("PSHUB_LOG_FORMAT: '{other}' is not json or text"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_log() {
        assert_eq!(
            redact("postgres://hub:secret@db:5432/pshub"),
            "postgres://hub:***@db:5432/pshub"
        );
        assert_eq!(
            redact("postgres://root@127.0.0.1/pshub"),
            "postgres://root@127.0.0.1/pshub"
        );
        assert_eq!(redact("sqlite:/tmp/x"), "sqlite:/tmp/x");
    }
}

//! Builds an engine from a data folder: the embedded store, the sandbox ERP, configuration.

use anyhow::{Context, Result};
use pshub_connectors::sandbox::{ErpFaults, SandboxErp};
use pshub_engine::{Config, Engine};
use pshub_store_sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;

/// Reads configuration from the environment on top of the defaults:
/// `PSHUB_SOURCES=crm,psa,...` and `PSHUB_TAX_CODES=DE01=DE-VAT19,US01=US-EXEMPT`.
pub fn config_from_env() -> Result<Config> {
    let mut config = Config::default();
    if let Ok(sources) = std::env::var("PSHUB_SOURCES") {
        config.sources = sources
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
    }
    if let Ok(codes) = std::env::var("PSHUB_TAX_CODES") {
        for pair in codes.split(',').filter(|p| !p.trim().is_empty()) {
            let (entity, code) = pair.split_once('=').with_context(|| {
                format!("PSHUB_TAX_CODES: '{pair}' is not LEGAL_ENTITY=TAX_CODE")
            })?;
            config
                .tax_codes
                .insert(entity.trim().to_string(), code.trim().to_string());
        }
    }
    Ok(config)
}

pub struct Wired {
    pub engine: Arc<Engine>,
    pub erp: Arc<SandboxErp>,
}

pub fn open(data_dir: &Path, config: Config) -> Result<Wired> {
    let store = SqliteStore::open(data_dir)
        .with_context(|| format!("failed to open the store in {}", data_dir.display()))?;
    let erp =
        Arc::new(SandboxErp::open(data_dir).with_context(|| {
            format!("failed to open the sandbox ERP in {}", data_dir.display())
        })?);
    if let Ok(spec) = std::env::var("PSHUB_SANDBOX_ERP_FAULTS") {
        let faults = ErpFaults::parse(&spec)
            .map_err(|e| anyhow::anyhow!("PSHUB_SANDBOX_ERP_FAULTS: {e}"))?;
        erp.set_faults(faults);
    }
    let engine = Engine::open(Box::new(store), config, erp.clone())
        .context("failed to rebuild the hub from its store")?;
    Ok(Wired { engine, erp })
}

pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PSHUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let json = std::env::var("PSHUB_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

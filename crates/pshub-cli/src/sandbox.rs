//! `pshub sandbox`: the sandbox PSA, ERP and CRM as a network peer, for hubs that set
//! `PSHUB_SANDBOX_URL`. Faults come from `PSHUB_SANDBOX_FAULTS`.

use crate::serve::{parse_listen, shutdown_signal};
use crate::wiring;
use anyhow::{Context, Result};
use pshub_connectors::sandbox::{Sandbox, server};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Folder where the systems keep their records.
    #[arg(long = "data-dir", default_value = "./pshub-sandbox")]
    data_dir: PathBuf,
}

pub fn run(args: SandboxArgs) -> Result<()> {
    wiring::init_logging("info")?;
    let sandbox = Sandbox::open(&args.data_dir).with_context(|| {
        format!(
            "failed to open the sandbox systems in {}",
            args.data_dir.display()
        )
    })?;
    sandbox.set_faults(wiring::faults_from_env()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("failed to listen on {}", args.listen))?;
        tracing::info!(address = %listener.local_addr()?, "pshub sandbox listening");
        server::serve(listener, sandbox, shutdown_signal())
            .await
            .context("the sandbox server failed")
    })
}

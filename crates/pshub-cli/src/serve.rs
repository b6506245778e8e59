use crate::{DataDir, wiring};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PSHUB_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    #[command(flatten)]
    data_dir: DataDir,
}

pub fn run(args: ServeArgs) -> Result<()> {
    wiring::init_logging("info");
    let wired = wiring::open(&args.data_dir.path, wiring::config_from_env()?)?;
    serve_engine(wired.engine, &args.listen)
}

/// Serves the engine until Ctrl-C or SIGTERM, with the delivery worker running.
pub fn serve_engine(engine: Arc<pshub_engine::Engine>, listen: &str) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let delivery = engine.spawn_delivery(stop.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("failed to listen on {listen}"))?;
        tracing::info!(address = %listener.local_addr()?, "pshub listening");
        pshub_api::serve(listener, engine, shutdown_signal())
            .await
            .context("the HTTP server failed")
    });
    stop.store(true, Ordering::Relaxed);
    let _ = delivery.join();
    served
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

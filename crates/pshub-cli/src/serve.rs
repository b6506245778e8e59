use crate::wiring::{self, Connected, SandboxLink, StoreArgs};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PSHUB_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
    /// NATS JetStream to consume events from as well (nats://HOST:PORT, several
    /// comma-separated); overrides the configuration file's `bus`.
    #[arg(long, env = "PSHUB_BUS", value_parser = parse_bus)]
    bus: Option<String>,
    /// Seconds a message taken but not acknowledged waits before it is delivered again
    /// (1 to 3600; default 30).
    #[arg(long, env = "PSHUB_BUS_ACK_WAIT_S", value_parser = clap::value_parser!(u64).range(1..=3600))]
    bus_ack_wait_s: Option<u64>,
    /// Names the bus's subjects, stream and consumer (`<ns>.events.>`, `<NS>_EVENTS`,
    /// `<ns>-hub`; default pshub): 1 to 32 letters, digits or _.
    #[arg(long, env = "PSHUB_BUS_NAMESPACE", value_parser = parse_namespace)]
    bus_namespace: Option<String>,
}

fn parse_bus(raw: &str) -> Result<String, String> {
    wiring::check_bus_url(raw).map(|()| raw.to_string())
}

fn parse_namespace(raw: &str) -> Result<String, String> {
    let valid = !raw.is_empty()
        && raw.len() <= 32
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(raw.to_string())
    } else {
        Err(format!("'{raw}' must be 1 to 32 letters, digits or _"))
    }
}

/// A listen address, `HOST:PORT` with a numeric host.
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| format!("'{raw}' is not an address to listen on (such as 127.0.0.1:8080)"))
}

pub fn run(args: ServeArgs) -> Result<()> {
    wiring::init_logging("info")?;
    let mut config = wiring::config_from_env()?;
    if let Some(url) = args.bus {
        config.bus = Some(pshub_engine::config::Bus {
            url,
            ack_wait: wiring::DEFAULT_BUS_ACK_WAIT,
            namespace: pshub_engine::config::Bus::DEFAULT_NAMESPACE.to_string(),
        });
    }
    if let Some(bus) = &mut config.bus {
        if let Some(seconds) = args.bus_ack_wait_s {
            bus.ack_wait = std::time::Duration::from_secs(seconds);
        }
        if let Some(namespace) = args.bus_namespace {
            bus.namespace = namespace;
        }
    }
    let wired = wiring::open(&args.store, config)?;
    serve_engine(wired.engine, wired.sandbox, wired.connectors, args.listen)
}

/// Serves the engine until Ctrl-C or SIGTERM, with the delivery workers running.
pub fn serve_engine(
    engine: Arc<pshub_engine::Engine>,
    sandbox: SandboxLink,
    connectors: Vec<Connected>,
    listen: SocketAddr,
) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = engine.spawn_delivery(stop.clone());
    workers.extend(engine.spawn_costing(stop.clone()));
    for connector in connectors {
        workers.push(
            connector
                .spawn_worker(engine.clone(), stop.clone())
                .context("cannot start a connector's worker")?,
        );
    }
    // The sources' watched folders.
    for (source, drop) in engine.config().csv_drops.clone() {
        let watcher = pshub_connectors::csv_drop::Watcher::new(engine.clone(), &source, drop);
        workers.push(
            watcher
                .spawn(stop.clone())
                .with_context(|| format!("cannot start the CSV drop of {source}"))?,
        );
    }
    // Events on the bus, when the deployment has one.
    if let Some(bus) = engine.config().bus.clone() {
        workers.push(
            pshub_bus_nats::spawn_inbound(engine.clone(), bus.clone(), stop.clone())
                .map_err(|e| anyhow::anyhow!("cannot consume the bus: {e}"))?,
        );
        // The business events, as `GET /v1/outbound?target=bus` shows them.
        workers.push(
            pshub_bus_nats::spawn_outbound(engine.clone(), bus, outbound_render(), stop.clone())
                .map_err(|e| anyhow::anyhow!("cannot publish to the bus: {e}"))?,
        );
    }
    // The sources read by polling.
    for (source, poll) in engine.config().rest_polls.clone() {
        let poller = pshub_connectors::rest_poll::Poller::new(engine.clone(), &source, poll)
            .map_err(|e| anyhow::anyhow!("cannot start the poller of {source}: {e}"))?;
        workers.push(
            poller
                .spawn(stop.clone())
                .with_context(|| format!("cannot start the poller of {source}"))?,
        );
    }
    // The sources whose records arrive on NATS subjects.
    for (source, nats) in engine.config().nats_sources.clone() {
        workers.push(
            pshub_bus_nats::spawn_source(engine.clone(), &source, nats, stop.clone())
                .map_err(|e| anyhow::anyhow!("cannot consume the subjects of {source}: {e}"))?,
        );
    }
    // The sources read from a PostgreSQL table.
    for (source, table) in engine.config().pg_tables.clone() {
        let poller = pshub_connectors::pg_table::Poller::new(engine.clone(), &source, table)
            .map_err(|e| anyhow::anyhow!("cannot start the table poller of {source}: {e}"))?;
        workers.push(
            poller
                .spawn(stop.clone())
                .with_context(|| format!("cannot start the table poller of {source}"))?,
        );
    }
    // The exchanges the business events are published to.
    for (target, amqp) in engine.config().amqp_targets.clone() {
        let publisher = pshub_connectors::amqp_out::Publisher::new(
            engine.clone(),
            &target,
            amqp,
            outbound_render(),
        )
        .map_err(|e| anyhow::anyhow!("cannot start the publisher of {target}: {e}"))?;
        workers.push(
            publisher
                .spawn(stop.clone())
                .with_context(|| format!("cannot start the publisher of {target}"))?,
        );
    }
    // The tables the business events are written to.
    for (target, table) in engine.config().pg_table_targets.clone() {
        let writer = pshub_connectors::pg_table_out::Writer::new(
            engine.clone(),
            &target,
            table,
            outbound_render(),
        )
        .map_err(|e| anyhow::anyhow!("cannot start the table writer of {target}: {e}"))?;
        workers.push(
            writer
                .spawn(stop.clone())
                .with_context(|| format!("cannot start the table writer of {target}"))?,
        );
    }
    // The sources whose messages arrive on a RabbitMQ queue.
    for (source, amqp) in engine.config().amqp_sources.clone() {
        let consumer = pshub_connectors::amqp::Consumer::new(engine.clone(), &source, amqp);
        workers.push(
            consumer
                .spawn(stop.clone())
                .with_context(|| format!("cannot start the AMQP consumer of {source}"))?,
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let inspect: Arc<dyn pshub_api::SandboxInspect> = Arc::new(sandbox);
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("failed to listen on {listen}"))?;
        tracing::info!(address = %listener.local_addr()?, node = engine.node(), "pshub listening");
        tokio::spawn(reload_on_hangup(engine.clone()));
        pshub_api::serve(listener, engine, Some(inspect), shutdown_signal())
            .await
            .context("the HTTP server failed")
    });
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    served
}

/// The outbound stream's events as `GET /v1/outbound?target=` shows them.
fn outbound_render() -> pshub_engine::outbound_relay::Render {
    Box::new(|reads, rows, policy| {
        pshub_api::wire::outbound_events(reads, rows, policy).map_err(|e| e.to_string())
    })
}

/// Reloads the configuration file on each `SIGHUP` (routes, default ERP, legal entities).
async fn reload_on_hangup(engine: Arc<pshub_engine::Engine>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangup.recv().await.is_some() {
        let engine = engine.clone();
        let reloaded = tokio::task::spawn_blocking(move || engine.reload_configured()).await;
        match reloaded {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "SIGHUP: the configuration was not reloaded"),
            Err(error) => tracing::error!(%error, "SIGHUP: the reload stopped"),
        }
    }
}

pub async fn shutdown_signal() {
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

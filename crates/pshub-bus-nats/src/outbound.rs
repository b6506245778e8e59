//! **Outbound.** The hub's business events (`project.provisioned`, `invoice_line.posted`,
//! `exception.opened`, `resource.changed`, ...) are published to `<namespace>.out.<type>`
//! (`pshub.out.invoice_line.posted`) on the stream `PSHUB_OUT`, for other systems and the
//! warehouse, each as `GET /v1/outbound?target=bus` shows it: a posted line one event,
//! masked by the `[masking.bus]` policy, personal fields of the resource view left out
//! unless that policy allows them.
//!
//! The relay of every hub process (`pshub_engine::outbound_relay`) reads the outbound rows
//! by the time they were published, from the cursor the processes share less a minute;
//! here each event is published with its key as `Nats-Msg-Id`, and the stream's duplicate
//! window keeps one copy of what two relays, or one relay before and after a restart,
//! publish twice.

use async_nats::jetstream::{self, stream::Config as StreamConfig, stream::StorageType};
use pshub_engine::Engine;
use pshub_engine::config::Bus;
use pshub_engine::outbound_relay::Relay;
pub use pshub_engine::outbound_relay::Render;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the stream remembers a message id: the window, and a restart's gap, over.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// How often the relay looks for new rows.
const POLL: Duration = Duration::from_millis(250);
/// The target whose `[masking]` policy the bus's readers get.
pub const TARGET: &str = "bus";
/// What the metrics and the log call the relay.
const SOURCE: &str = "bus_out";

/// Publishes the outbound stream on a thread of its own until `stop` is set. Fails when the
/// bus cannot be reached at start; later outages are waited out.
pub fn spawn_outbound(
    engine: Arc<Engine>,
    bus: Bus,
    render: Render,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    let runtime = crate::runtime()?;
    let js = runtime.block_on(async {
        let client = async_nats::connect(&bus.url)
            .await
            .map_err(|e| format!("cannot reach the bus at {}: {e}", bus.url))?;
        let js = jetstream::new(client);
        let name = bus.out_stream();
        js.get_or_create_stream(StreamConfig {
            name: name.clone(),
            subjects: vec![bus.out_subject(">")],
            storage: StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("the stream {name}: {e}"))?;
        Ok::<_, String>(js)
    })?;
    tracing::info!(url = %bus.url, stream = bus.out_stream(), "bus: publishing the outbound stream");
    let mut relay = Relay::new(bus.out_cursor(), TARGET, render);
    std::thread::Builder::new()
        .name("bus-outbound".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut publish =
                    |events: &[Value]| runtime.block_on(publish_all(&js, &bus, events));
                match relay.pass(&engine, &mut publish) {
                    Ok(0) => {}
                    Ok(events) => {
                        tracing::debug!(events, "bus: outbound events published");
                        engine.metrics().connector_event(SOURCE, "published");
                    }
                    Err(what) => {
                        tracing::warn!(what, "bus: outbound trouble");
                        engine.metrics().connector_event(SOURCE, "trouble");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                std::thread::sleep(POLL);
            }
        })
        .map_err(|e| format!("cannot start the bus's thread: {e}"))
}

/// Publishes a page of events, each with its key as `Nats-Msg-Id`, and waits for the
/// stream to have each.
async fn publish_all(js: &jetstream::Context, bus: &Bus, events: &[Value]) -> Result<(), String> {
    let mut acks = Vec::with_capacity(events.len());
    for event in events {
        let kind = event["type"].as_str().unwrap_or("unknown");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event["key"].as_str().unwrap_or_default());
        let ack = js
            .publish_with_headers(bus.out_subject(kind), headers, event.to_string().into())
            .await
            .map_err(|e| format!("publish: {e}"))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| format!("publish: {e}"))?;
    }
    Ok(())
}

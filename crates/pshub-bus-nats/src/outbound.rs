//! **Outbound.** The hub's business events (`project.provisioned`, `invoice_line.posted`,
//! `exception.opened`, `resource.changed`, ...) are published to `<namespace>.out.<type>`
//! (`pshub.out.invoice_line.posted`) on the stream `PSHUB_OUT`, for other systems and the
//! warehouse, each as `GET /v1/outbound?target=bus` shows it: a posted line one event,
//! masked by the `[masking.bus]` policy, personal fields of the resource view left out
//! unless that policy allows them.
//!
//! A relay in every hub process reads the outbound rows by the time they were published,
//! from its saved cursor less a window of [`OVERLAP`] (ids reserved by several processes
//! commit out of order; a row committed late is still in the window), and publishes each
//! with its key as `Nats-Msg-Id`: the stream's duplicate window keeps one copy of what two
//! relays, or one relay before and after a restart, publish twice. A row is published
//! before the cursor passes it, so a crash repeats, never skips.

use async_nats::jetstream::{self, stream::Config as StreamConfig, stream::StorageType};
use pshub_engine::Engine;
use pshub_engine::config::{Bus, Masking};
use pshub_engine::store::{OutboundRow, Page, StoreReader};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How far before its cursor each pass reads: longer than any commit takes.
pub const OVERLAP: Duration = Duration::from_secs(60);
/// How long the stream remembers a message id: the window, and a restart's gap, over.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// How often the relay looks for new rows.
const POLL: Duration = Duration::from_millis(250);
/// The rows one read takes.
const PAGE: u32 = 500;
/// The target whose `[masking]` policy the bus's readers get.
pub const TARGET: &str = "bus";
/// What the metrics and the log call the relay.
const SOURCE: &str = "bus_out";

/// Renders outbound rows as their events (`pshub_api::wire::outbound_events`), with a
/// target's masking.
pub type Render = Box<
    dyn Fn(&mut dyn StoreReader, &[OutboundRow], Option<&Masking>) -> Result<Vec<Value>, String>
        + Send,
>;

/// What the relay does, each logged and counted (`pshub_connector_events_total{source="bus_out"}`).
enum RelayEvent<'a> {
    Published { events: usize },
    Trouble { what: &'a str },
}

impl RelayEvent<'_> {
    fn emit(&self, engine: &Engine) {
        let name = match self {
            RelayEvent::Published { events } => {
                tracing::debug!(events, "bus: outbound events published");
                "published"
            }
            RelayEvent::Trouble { what } => {
                tracing::warn!(what, "bus: outbound trouble");
                "trouble"
            }
        };
        engine.metrics().connector_event(SOURCE, name);
    }
}

struct Relay {
    engine: Arc<Engine>,
    bus: Bus,
    js: jetstream::Context,
    render: Render,
    /// What this process published in the window, by key, with when it was published in
    /// the hub: read again each pass, sent once.
    sent: HashMap<String, String>,
}

/// Publishes the outbound stream on a thread of its own until `stop` is set. Fails when the
/// bus cannot be reached at start; later outages are waited out.
pub fn spawn_outbound(
    engine: Arc<Engine>,
    bus: Bus,
    render: Render,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the bus's runtime: {e}"))?;
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
    let mut relay = Relay {
        engine,
        bus,
        js,
        render,
        sent: HashMap::new(),
    };
    std::thread::Builder::new()
        .name("bus-outbound".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Err(what) = runtime.block_on(relay.pass()) {
                    RelayEvent::Trouble { what: &what }.emit(&relay.engine);
                    std::thread::sleep(Duration::from_secs(1));
                }
                std::thread::sleep(POLL);
            }
        })
        .map_err(|e| format!("cannot start the bus's thread: {e}"))
}

/// The policy the bus's readers get: `[masking.bus]`, or the default one, which still
/// leaves the resource view's personal fields out (as `GET /v1/outbound?target=bus` does).
fn policy_of(config: &pshub_engine::Config) -> Masking {
    config.masking.get(TARGET).cloned().unwrap_or_default()
}

/// The stamp `OVERLAP` before `stamp` (the same format: RFC 3339, milliseconds, UTC).
fn window_start(stamp: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(stamp) {
        Ok(at) => {
            let from = at.with_timezone(&chrono::Utc)
                - chrono::Duration::from_std(OVERLAP).unwrap_or_default();
            from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        }
        Err(_) => String::new(),
    }
}

impl Relay {
    /// Publishes every row of the window not yet sent, then moves the cursor.
    async fn pass(&mut self) -> Result<(), String> {
        let name = self.bus.out_cursor();
        let saved = self
            .engine
            .read(|r| r.cursor(&name))
            .map_err(|e| format!("the cursor cannot be read: {e}"))?;
        let from = saved.as_deref().map(window_start).unwrap_or_default();
        let policy = Some(policy_of(self.engine.config()));
        let mut newest = saved.clone().unwrap_or_default();
        let mut after = 0;
        let mut published = 0;
        loop {
            let page = Page { after, limit: PAGE };
            let (rows, events) = self.engine.read(|r| {
                let rows = r
                    .outbound_since(&from, page)
                    .map_err(|e| format!("the outbound rows cannot be read: {e}"))?;
                let fresh: Vec<OutboundRow> = rows
                    .iter()
                    .filter(|row| !self.sent.contains_key(&row.key))
                    .cloned()
                    .collect();
                let events = (self.render)(r, &fresh, policy.as_ref())?;
                Ok::<_, String>((rows, events))
            })?;
            let mut acks = Vec::with_capacity(events.len());
            for event in &events {
                let kind = event["type"].as_str().unwrap_or("unknown");
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(
                    "Nats-Msg-Id",
                    event["key"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                        .as_str(),
                );
                let ack = self
                    .js
                    .publish_with_headers(
                        self.bus.out_subject(kind),
                        headers,
                        event.to_string().into(),
                    )
                    .await
                    .map_err(|e| format!("publish: {e}"))?;
                acks.push(ack);
            }
            for ack in acks {
                ack.await.map_err(|e| format!("publish: {e}"))?;
            }
            published += events.len();
            for row in &rows {
                self.sent.insert(row.key.clone(), row.published_at.clone());
                if row.published_at > newest {
                    newest = row.published_at.clone();
                }
            }
            match rows.last() {
                Some(last) if rows.len() == PAGE as usize => after = last.id,
                _ => break,
            }
        }
        if published > 0 {
            RelayEvent::Published { events: published }.emit(&self.engine);
        }
        if Some(&newest) != saved.as_ref() && !newest.is_empty() {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            self.engine
                .store()
                .save_cursor(&name, &newest, &now)
                .map_err(|e| format!("the cursor cannot be saved: {e}"))?;
            // What is older than the next window is never read again.
            let next = window_start(&newest);
            self.sent.retain(|_, at| *at >= next);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_bus_policy_the_default_one_applies() {
        let mut config = pshub_engine::Config::default();
        assert_eq!(policy_of(&config), Masking::default());
        let bus = Masking {
            mask: vec!["worker_id".into()],
            ..Masking::default()
        };
        config.masking.insert(TARGET.into(), bus.clone());
        assert_eq!(policy_of(&config), bus);
    }

    #[test]
    fn the_window_reaches_back_the_overlap_in_the_stamps_format() {
        assert_eq!(
            window_start("2026-03-04T10:01:00.250Z"),
            "2026-03-04T10:00:00.250Z"
        );
        assert_eq!(window_start("not a stamp"), "");
    }
}

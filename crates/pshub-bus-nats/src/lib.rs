//! NATS JetStream as the hub's event bus, for deployments of several hub processes
//! (`bus = "nats://..."` or `PSHUB_BUS`; the default stays in-process).
//!
//! **Inbound.** Systems publish canonical events, one JSON envelope a message, on
//! `pshub.events.<source>`. The stream `PSHUB_EVENTS` holds them; one durable pull
//! consumer, `pshub-hub`, is shared by every hub process (`pshub` is the bus's namespace,
//! `PSHUB_BUS_NAMESPACE`), so that each message goes to one
//! of them. A process takes a batch, submits it to its engine as `POST /v1/events` does, and
//! acknowledges each message **only after the batch is committed**. A process that dies
//! between receipt and commit acknowledges nothing: after the consumer's ack wait the
//! messages are delivered again, to it or another process, and applied once (the inbox's
//! `(source, event_id)` is unique; a redelivery of what was committed is a duplicate). A
//! batch whose commit fails is negatively acknowledged and redelivered after a second. A
//! message that is not a valid event is committed to the quarantine like a bad request
//! body, and acknowledged: nothing accepted is lost, and nothing is retried forever.
//!
//! **Sources.** A source whose records arrive on NATS subjects (`[sources.<name>]
//! connector = "nats"`, `pshub_engine::nats_source`) is consumed the same way, by a durable
//! consumer of its own (`pshub-<source>`) on its stream, each message through the source's
//! mappings.
//!
//! The outbound stream is [`outbound`]'s.
//!
//! Invariant: the engine never depends on this crate; it sees only `Engine::submit_texts`
//! and the store's outbound rows.

pub mod outbound;
pub use outbound::spawn_outbound;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use pshub_engine::Engine;
use pshub_engine::config::Bus;
use pshub_engine::hooks::Received;
use pshub_engine::hub::Incoming;
use pshub_engine::nats_source::{self, NatsSource};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The most messages one batch of the bus takes (one commit).
const BATCH: usize = 500;
/// How long a fetch waits for messages before it looks at `stop` again.
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// What the metrics and the log call the bus.
const SOURCE: &str = "bus";
/// How long a source's consumer waits for an acknowledgement before it delivers again.
const SOURCE_ACK_WAIT: Duration = Duration::from_secs(30);

/// What the consumer does, each logged and counted (`pshub_connector_events_total`) under
/// the bus's name or the source's.
enum BusEvent<'a> {
    /// A batch was taken; `redelivered` of its messages had been delivered before (to a
    /// process that died, or whose commit failed). Counted before the commit.
    Taken { messages: usize, redelivered: usize },
    /// A batch was committed and acknowledged.
    Batch { messages: usize },
    /// A record none of the source's mappings takes, acknowledged with its batch.
    NotTaken { why: &'a str },
    /// A batch's commit failed; its messages are delivered again.
    Nak { messages: usize, why: &'a str },
    /// The server could not be reached or answered an error.
    Trouble { what: &'a str },
}

impl BusEvent<'_> {
    fn emit(&self, engine: &Engine, source: &str) {
        let name = match self {
            BusEvent::Taken {
                messages,
                redelivered,
            } => {
                tracing::trace!(source, messages, redelivered, "bus: batch taken");
                let metrics = engine.metrics();
                for _ in 0..*redelivered {
                    metrics.connector_event(source, "redelivered");
                }
                "taken"
            }
            BusEvent::Batch { messages } => {
                tracing::debug!(source, messages, "bus: batch committed and acknowledged");
                "batch"
            }
            BusEvent::NotTaken { why } => {
                tracing::info!(source, why, "bus: a record no mapping takes");
                "not_taken"
            }
            BusEvent::Nak { messages, why } => {
                tracing::warn!(
                    source,
                    messages,
                    why,
                    "bus: batch not committed; delivered again"
                );
                "nak"
            }
            BusEvent::Trouble { what } => {
                tracing::warn!(source, what, "bus: trouble");
                "trouble"
            }
        };
        engine.metrics().connector_event(source, name);
    }
}

/// A stream and its shared durable consumer, as one inbound reads them.
struct Inbound {
    url: String,
    stream: String,
    subjects: String,
    consumer: String,
    ack_wait: Duration,
    batch: usize,
    /// What the metrics and the log call it.
    source: String,
    read: ReadMessage,
}

/// A message (its subject and payload) as an event; `Err` for a record no mapping takes.
/// Run with the commit, while the batch's messages are kept in progress.
type ReadMessage = Arc<dyn Fn(&Engine, &str, &[u8]) -> Result<Incoming, String> + Send + Sync>;

/// The stream and the shared consumer, created when missing (every process may do it: the
/// same configuration is idempotent).
async fn pull_consumer(inbound: &Inbound) -> Result<PullConsumer, String> {
    let client = async_nats::connect(&inbound.url)
        .await
        .map_err(|e| format!("cannot reach the bus at {}: {e}", inbound.url))?;
    let js = jetstream::new(client);
    let (name, consumer) = (&inbound.stream, &inbound.consumer);
    let stream = js
        .get_or_create_stream(StreamConfig {
            name: name.clone(),
            subjects: vec![inbound.subjects.clone()],
            storage: StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("the stream {name}: {e}"))?;
    stream
        .get_or_create_consumer(
            consumer,
            pull::Config {
                durable_name: Some(consumer.clone()),
                filter_subject: inbound.subjects.clone(),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ack_wait: inbound.ack_wait,
                max_deliver: -1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("the consumer {consumer}: {e}"))
}

/// Consumes the bus's inbound stream on a thread of its own until `stop` is set. Fails when
/// the bus cannot be reached at start; later outages are waited out.
pub fn spawn_inbound(
    engine: Arc<Engine>,
    bus: Bus,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    let inbound = Inbound {
        url: bus.url.clone(),
        stream: bus.events_stream(),
        subjects: bus.events_subjects(),
        consumer: bus.consumer(),
        ack_wait: bus.ack_wait,
        batch: BATCH,
        source: SOURCE.to_string(),
        read: Arc::new(|engine, _subject, payload| {
            let text = String::from_utf8_lossy(payload).into_owned();
            Ok(Incoming::parse(text, engine.config()))
        }),
    };
    spawn(engine, inbound, stop)
}

/// Consumes a source's subjects (`[sources.<name>] connector = "nats"`) on a thread of its
/// own until `stop` is set, each message through the source's mappings.
pub fn spawn_source(
    engine: Arc<Engine>,
    source: &str,
    nats: NatsSource,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    let name = source.to_string();
    let inbound = Inbound {
        url: nats.url.clone(),
        stream: nats.stream.clone(),
        subjects: nats.subject.clone(),
        consumer: nats.consumer.clone(),
        ack_wait: SOURCE_ACK_WAIT,
        batch: nats.batch,
        source: name.clone(),
        read: Arc::new(move |engine, subject, payload| {
            match nats_source::receive(&name, &nats, subject, payload, engine.config()) {
                Received::Event(incoming) => Ok(incoming),
                Received::NotTaken(why) => Err(why),
            }
        }),
    };
    spawn(engine, inbound, stop)
}

/// The runtime of one of the bus's threads.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the bus's runtime: {e}"))
}

fn spawn(
    engine: Arc<Engine>,
    inbound: Inbound,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    let runtime = runtime()?;
    let consumer = runtime.block_on(pull_consumer(&inbound))?;
    tracing::info!(url = %inbound.url, stream = %inbound.stream, consumer = %inbound.consumer, source = %inbound.source, "bus: consuming");
    std::thread::Builder::new()
        .name(format!("bus-{}", inbound.source))
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Err(what) = runtime.block_on(take_batch(&engine, &consumer, &inbound)) {
                    BusEvent::Trouble { what: &what }.emit(&engine, &inbound.source);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        })
        .map_err(|e| format!("cannot start the bus's thread: {e}"))
}

/// Takes one batch: commits it, then acknowledges each of its messages.
/// While its commit runs, the batch's messages are marked in progress every half ack wait,
/// so that a slow commit does not have them delivered again meanwhile.
async fn take_batch(
    engine: &Arc<Engine>,
    consumer: &PullConsumer,
    inbound: &Inbound,
) -> Result<(), String> {
    let source = inbound.source.as_str();
    let mut batch = consumer
        .fetch()
        .max_messages(inbound.batch)
        .expires(FETCH_WAIT)
        .messages()
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    let mut messages = Vec::new();
    while let Some(message) = batch.next().await {
        messages.push(message.map_err(|e| format!("fetch: {e}"))?);
    }
    if messages.is_empty() {
        return Ok(());
    }
    let redelivered = messages
        .iter()
        .filter(|m| m.info().is_ok_and(|info| info.delivered > 1))
        .count();
    BusEvent::Taken {
        messages: messages.len(),
        redelivered,
    }
    .emit(engine, source);
    let received: Vec<(String, Vec<u8>)> = messages
        .iter()
        .map(|m| (m.subject.to_string(), m.payload.to_vec()))
        .collect();
    let (submitting, read, named) = (engine.clone(), inbound.read.clone(), source.to_string());
    let mut commit = tokio::task::spawn_blocking(move || {
        let mut incoming = Vec::with_capacity(received.len());
        for (subject, payload) in &received {
            match read(&submitting, subject, payload) {
                Ok(event) => incoming.push(event),
                Err(why) => BusEvent::NotTaken { why: &why }.emit(&submitting, &named),
            }
        }
        submitting.submit_incoming(incoming)
    });
    let committed = loop {
        tokio::select! {
            done = &mut commit => {
                break done
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
            }
            _ = tokio::time::sleep(inbound.ack_wait / 2) => {
                for message in &messages {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        }
    };
    match committed {
        Ok(_) => {
            for message in &messages {
                // A lost acknowledgement only means a redelivery, which is a duplicate.
                if let Err(e) = message.ack().await {
                    BusEvent::Trouble {
                        what: &format!("ack: {e}"),
                    }
                    .emit(engine, source);
                }
            }
            BusEvent::Batch {
                messages: messages.len(),
            }
            .emit(engine, source);
        }
        Err(why) => {
            for message in &messages {
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
            }
            BusEvent::Nak {
                messages: messages.len(),
                why: &why,
            }
            .emit(engine, source);
        }
    }
    Ok(())
}

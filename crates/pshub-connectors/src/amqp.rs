//! The consumer of the AMQP connector: a source whose records arrive on a RabbitMQ queue
//! (`[sources.<name>] connector = "amqp"`), read over AMQP 0-9-1 (the engine's half, a
//! message turned into an event, is `pshub_engine::amqp`).
//!
//! The queue is declared durable when missing, and consumed with manual acknowledgement and
//! a prefetch window: the broker sends at most `prefetch` messages unacknowledged. The
//! consumer takes what has arrived (up to the window) as one batch, commits it, and only
//! then acknowledges it, with one `basic.ack` of the batch's last delivery tag and
//! `multiple`. A hub that dies between receipt and commit acknowledged nothing: the broker
//! delivers the messages again (marked redelivered) once the connection drops, and what had
//! been committed comes back as a duplicate by event id. A batch whose commit fails is
//! negatively acknowledged and requeued, and taken again after a second. A message that is
//! not an event is quarantined, committed and acknowledged like any other: nothing is lost,
//! and nothing is retried forever. A record none of a mapped source's mappings takes is
//! acknowledged and counted, not stored, as a webhook answers it `ignored`. A lost
//! connection is made again, every second.
//!
//! What the consumer does is logged and counted (`pshub_connector_events_total{source}`):
//! `connected`, `taken`, `redelivered` (one a message), `batch`, `not_taken`, `nak`,
//! `trouble`. The broker's password never shows: the URL is logged masked.

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use pshub_engine::Engine;
use pshub_engine::amqp::{AmqpSource, Message, receive};
use pshub_engine::hooks::Received;
use pshub_engine::hub::{Incoming, IngestStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the consumer waits for a first message before it looks at `stop` again.
const WAIT: Duration = Duration::from_millis(500);
/// Once a batch has begun, a pause this long in the messages ends it.
const LINGER: Duration = Duration::from_millis(5);
/// How long after trouble the broker is tried again.
const AGAIN: Duration = Duration::from_secs(1);

/// A connection to the broker at `url` (`shown` as logs may show it) and a channel on it.
pub(crate) async fn open_channel(
    url: &pshub_engine::hooks::Secret,
    shown: &str,
) -> Result<(Connection, Channel), String> {
    let connection = Connection::connect(url.expose(), ConnectionProperties::default())
        .await
        .map_err(|e| format!("cannot reach the broker at {shown}: {e}"))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| format!("cannot open a channel: {e}"))?;
    Ok((connection, channel))
}

/// What the consumer does, each logged and counted.
enum AmqpEvent<'a> {
    Connected,
    /// A batch was taken; `redelivered` of its messages had been delivered before.
    Taken {
        messages: usize,
        redelivered: usize,
    },
    /// A batch was committed and acknowledged.
    Batch {
        messages: usize,
        accepted: usize,
    },
    /// A message that none of the source's mappings takes, acknowledged with its batch.
    NotTaken {
        why: &'a str,
    },
    /// A batch's commit failed; its messages were requeued.
    Nak {
        messages: usize,
        why: &'a str,
    },
    /// The broker could not be reached or answered an error.
    Trouble {
        what: &'a str,
    },
}

pub struct Consumer {
    engine: Arc<Engine>,
    source: String,
    amqp: AmqpSource,
}

impl Consumer {
    pub fn new(engine: Arc<Engine>, source: &str, amqp: AmqpSource) -> Consumer {
        Consumer {
            engine,
            source: source.to_string(),
            amqp,
        }
    }

    fn emit(&self, event: AmqpEvent<'_>) {
        let source = self.source.as_str();
        let metrics = self.engine.metrics();
        let name = match event {
            AmqpEvent::Connected => {
                tracing::info!(source, url = %self.amqp.shown_url(), queue = %self.amqp.queue, "amqp: consuming");
                "connected"
            }
            AmqpEvent::Taken {
                messages,
                redelivered,
            } => {
                tracing::trace!(source, messages, redelivered, "amqp: batch taken");
                for _ in 0..redelivered {
                    metrics.connector_event(source, "redelivered");
                }
                "taken"
            }
            AmqpEvent::Batch { messages, accepted } => {
                tracing::debug!(
                    source,
                    messages,
                    accepted,
                    "amqp: batch committed and acknowledged"
                );
                "batch"
            }
            AmqpEvent::NotTaken { why } => {
                tracing::info!(source, why, "amqp: a message no mapping takes");
                "not_taken"
            }
            AmqpEvent::Nak { messages, why } => {
                tracing::warn!(source, messages, why, "amqp: batch not committed; requeued");
                "nak"
            }
            AmqpEvent::Trouble { what } => {
                tracing::warn!(source, what, "amqp: trouble");
                "trouble"
            }
        };
        metrics.connector_event(source, name);
    }

    /// Consumes the queue on a thread of its own until `stop` is set; the broker's outages
    /// are waited out.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("amqp-{}", self.source))
            .spawn(move || {
                runtime.block_on(async {
                    while !stop.load(Ordering::Relaxed) {
                        if let Err(what) = self.consume(&stop).await {
                            self.emit(AmqpEvent::Trouble { what: &what });
                            tokio::time::sleep(AGAIN).await;
                        }
                    }
                })
            })
    }

    /// One connection's life: consumes until `stop` is set or the broker fails.
    async fn consume(&self, stop: &AtomicBool) -> Result<(), String> {
        let (connection, channel) = open_channel(&self.amqp.url, &self.amqp.shown_url()).await?;
        let queue = self.amqp.queue.as_str();
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("the queue {queue}: {e}"))?;
        channel
            .basic_qos(self.amqp.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| format!("prefetch {}: {e}", self.amqp.prefetch))?;
        let tag = format!("pshub-{}-{}", self.source, self.engine.node());
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("cannot consume {queue}: {e}"))?;
        self.emit(AmqpEvent::Connected);
        let ended = |e: Option<lapin::Error>| match e {
            Some(e) => format!("the consumer of {queue} failed: {e}"),
            None => format!("the broker cancelled the consumer of {queue}"),
        };
        while !stop.load(Ordering::Relaxed) {
            let first = match tokio::time::timeout(WAIT, consumer.next()).await {
                Err(_) => continue,
                Ok(None) => return Err(ended(None)),
                Ok(Some(Err(e))) => return Err(ended(Some(e))),
                Ok(Some(Ok(delivery))) => delivery,
            };
            let mut batch = vec![first];
            while batch.len() < usize::from(self.amqp.prefetch) {
                match tokio::time::timeout(LINGER, consumer.next()).await {
                    Ok(Some(Ok(delivery))) => batch.push(delivery),
                    Ok(Some(Err(e))) => return Err(ended(Some(e))),
                    Ok(None) => return Err(ended(None)),
                    Err(_) => break,
                }
            }
            self.take(&channel, batch).await?;
        }
        let _ = connection.close(200, "the hub stops".into()).await;
        Ok(())
    }

    /// Commits one batch, then acknowledges it; requeues it when the commit fails.
    async fn take(
        &self,
        channel: &Channel,
        batch: Vec<lapin::message::Delivery>,
    ) -> Result<(), String> {
        let messages = batch.len();
        self.emit(AmqpEvent::Taken {
            messages,
            redelivered: batch.iter().filter(|d| d.redelivered).count(),
        });
        let last = batch.last().map_or(0, |d| d.delivery_tag);
        let config = self.engine.config();
        let mut incoming: Vec<Incoming> = Vec::with_capacity(messages);
        for delivery in &batch {
            let text = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.to_string());
            let message = Message {
                exchange: delivery.exchange.to_string(),
                routing_key: delivery.routing_key.to_string(),
                message_id: text(delivery.properties.message_id()),
                kind: text(delivery.properties.kind()),
                app_id: text(delivery.properties.app_id()),
            };
            match receive(&self.source, &self.amqp, &message, &delivery.data, config) {
                Received::Event(event) => incoming.push(event),
                Received::NotTaken(why) => self.emit(AmqpEvent::NotTaken { why: &why }),
            }
        }
        let engine = self.engine.clone();
        let committed = tokio::task::spawn_blocking(move || engine.submit_incoming(incoming))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match committed {
            Ok(results) => {
                // A lost acknowledgement only means a redelivery, which is a duplicate.
                channel
                    .basic_ack(last, BasicAckOptions { multiple: true })
                    .await
                    .map_err(|e| format!("ack: {e}"))?;
                self.emit(AmqpEvent::Batch {
                    messages,
                    accepted: results
                        .iter()
                        .filter(|r| r.status == IngestStatus::Accepted)
                        .count(),
                });
            }
            Err(why) => {
                self.emit(AmqpEvent::Nak {
                    messages,
                    why: &why,
                });
                channel
                    .basic_nack(
                        last,
                        BasicNackOptions {
                            multiple: true,
                            requeue: true,
                        },
                    )
                    .await
                    .map_err(|e| format!("nack: {e}"))?;
                tokio::time::sleep(AGAIN).await;
            }
        }
        Ok(())
    }
}

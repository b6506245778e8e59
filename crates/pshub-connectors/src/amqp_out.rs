//! The outbound stream to a RabbitMQ exchange (`[targets.<name>] connector = "amqp"`): the
//! hub's business events, rendered and masked as `GET /v1/outbound?target=<name>` shows
//! them, published by the relay of `pshub_engine::outbound_relay` to a durable topic
//! exchange, each persistent, its routing key the event's type (`invoice_line.posted`),
//! its `message_id` the event's key and its type in `type`. Publisher confirms are awaited
//! before the relay's cursor moves, so a crash repeats a page and never skips one; RabbitMQ
//! keeps no message ids, so a consumer drops a repeat by `message_id`.

use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use pshub_engine::Engine;
use pshub_engine::amqp::AmqpTarget;
use pshub_engine::outbound_relay::{Relay, Render};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

pub struct Publisher {
    engine: Arc<Engine>,
    target: String,
    amqp: AmqpTarget,
    relay: Relay,
    runtime: tokio::runtime::Runtime,
    /// The connection and its confirming channel, made again after trouble.
    channel: Option<(Connection, Channel)>,
}

impl Publisher {
    pub fn new(
        engine: Arc<Engine>,
        target: &str,
        amqp: AmqpTarget,
        render: Render,
    ) -> Result<Publisher, String> {
        Ok(Publisher {
            relay: Relay::new(AmqpTarget::cursor_name(target), target, render),
            engine,
            target: target.to_string(),
            amqp,
            runtime: crate::client_runtime(&format!("amqp-out-{target}"))?,
            channel: None,
        })
    }

    /// Publishes until `stop` is set; the broker's outages are waited out.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        crate::spawn_stream_writer("amqp-out", self, "published", stop)
    }
}

impl crate::StreamWriter for Publisher {
    fn target(&self) -> &str {
        &self.target
    }

    fn reset(&mut self) {
        self.channel = None;
    }

    fn emit(&self, event: &'static str, detail: &str) {
        let target = self.target.as_str();
        match event {
            "trouble" => tracing::warn!(target, detail, "amqp out: trouble"),
            _ => tracing::debug!(target, detail, "amqp out: events published"),
        }
        self.engine.metrics().connector_event(target, event);
    }

    fn pass(&mut self) -> Result<usize, String> {
        if self.channel.is_none() {
            self.channel = Some(self.runtime.block_on(connect(&self.amqp))?);
        }
        let Some((_, channel)) = &self.channel else {
            return Ok(0);
        };
        let (runtime, exchange) = (&self.runtime, self.amqp.exchange.as_str());
        let mut publish =
            |events: &[Value]| runtime.block_on(publish_all(channel, exchange, events));
        self.relay.pass(&self.engine, &mut publish)
    }
}

/// A confirming channel with the exchange declared.
async fn connect(amqp: &AmqpTarget) -> Result<(Connection, Channel), String> {
    let (connection, channel) = crate::amqp::open_channel(&amqp.url, &amqp.shown_url()).await?;
    channel
        .exchange_declare(
            amqp.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("the exchange {}: {e}", amqp.exchange))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| format!("publisher confirms: {e}"))?;
    Ok((connection, channel))
}

/// Publishes a page of events and waits for the broker to confirm each.
async fn publish_all(channel: &Channel, exchange: &str, events: &[Value]) -> Result<(), String> {
    let mut confirms = futures_util::stream::FuturesUnordered::new();
    for event in events {
        let kind = event["type"].as_str().unwrap_or("unknown");
        let key = event["key"].as_str().unwrap_or_default();
        let body = event.to_string();
        let confirm = channel
            .basic_publish(
                exchange.into(),
                kind.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(key.into())
                    .with_type(kind.into()),
            )
            .await
            .map_err(|e| format!("publish: {e}"))?;
        confirms.push(confirm);
    }
    while let Some(confirm) = confirms.next().await {
        let confirmation = confirm.map_err(|e| format!("publish: {e}"))?;
        if confirmation.is_nack() {
            return Err("the broker refused a message (nack)".into());
        }
    }
    Ok(())
}

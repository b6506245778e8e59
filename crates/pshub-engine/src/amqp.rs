//! The engine's half of the AMQP connector (the consumer, which speaks AMQP 0-9-1 to
//! RabbitMQ and acknowledges, is `pshub_connectors::amqp`): a source's settings and one
//! message turned into an event, through the source's mappings or as a canonical envelope.
//!
//! A message is acknowledged only after the batch that holds it is committed, so a hub that
//! dies between receipt and commit has acknowledged nothing: the broker delivers the
//! messages again and the inbox's unique `(source, event_id)` makes a message committed
//! before a duplicate. What the message said of itself (queue, exchange, routing key,
//! message id, type, app id) is kept with its payload.

use crate::config::Config;
use crate::hooks::{Received, Secret, Via, receive_via};
use serde_json::Value;

/// Messages delivered and not yet acknowledged, by default: one commit's batch at most.
pub const DEFAULT_PREFETCH: u16 = 500;

/// A source whose records arrive on a RabbitMQ queue (`[sources.<name>]` with
/// `connector = "amqp"`).
#[derive(Debug, Clone)]
pub struct AmqpSource {
    /// `amqp://user:password@host:port/vhost`: a secret, as it holds the password.
    pub url: Secret,
    /// The queue consumed; declared durable when missing.
    pub queue: String,
    /// At most this many messages delivered unacknowledged: the largest batch.
    pub prefetch: u16,
    /// The mappings that make a message canonical, tried in order; none: each message is a
    /// canonical event envelope.
    pub mappings: Vec<String>,
}

impl AmqpSource {
    /// The URL with its password masked, for logs and the catalog.
    pub fn shown_url(&self) -> String {
        crate::hooks::shown_url(self.url.expose())
    }
}

/// An exchange the outbound stream of business events is published to
/// (`[targets.<name>] connector = "amqp"`), masked by `[masking.<name>]`.
#[derive(Debug, Clone)]
pub struct AmqpTarget {
    pub url: Secret,
    /// A durable topic exchange, declared when missing; each event's routing key is its type.
    pub exchange: String,
}

impl AmqpTarget {
    /// The name its relay's cursor is saved under.
    pub fn cursor_name(target: &str) -> String {
        format!("amqp_out:{target}")
    }

    pub fn shown_url(&self) -> String {
        crate::hooks::shown_url(self.url.expose())
    }
}

/// What a message says of itself, kept beside its payload.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: Option<String>,
    pub kind: Option<String>,
    pub app_id: Option<String>,
}

/// One message of `source`'s queue as an event: mapped by the first of its mappings that
/// takes it, or parsed as a canonical envelope when it has none.
pub fn receive(
    source: &str,
    amqp: &AmqpSource,
    message: &Message,
    body: &[u8],
    config: &Config,
) -> Received {
    let body = String::from_utf8_lossy(body);
    let text = |v: &Option<String>| v.as_deref().map_or(Value::Null, Value::from);
    let via = Via::connector("amqp")
        .with("queue", Value::from(amqp.queue.as_str()))
        .with("exchange", Value::from(message.exchange.as_str()))
        .with("routing_key", Value::from(message.routing_key.as_str()))
        .with("message_id", text(&message.message_id))
        .with("type", text(&message.kind))
        .with("app_id", text(&message.app_id));
    receive_via(source, &amqp.mappings, &via, &body, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Incoming;

    fn source(url: &str) -> AmqpSource {
        AmqpSource {
            url: Secret::new(url.into()),
            queue: "q".into(),
            prefetch: DEFAULT_PREFETCH,
            mappings: Vec::new(),
        }
    }

    #[test]
    fn the_shown_url_masks_the_password() {
        assert_eq!(
            source("amqp://pshub:s3cret@mq.internal:5672/%2f").shown_url(),
            "amqp://pshub:***@mq.internal:5672/%2f"
        );
        assert_eq!(
            source("amqp://127.0.0.1:5672").shown_url(),
            "amqp://127.0.0.1:5672"
        );
    }

    #[test]
    fn a_mapped_message_keeps_what_it_said_of_itself() {
        let mut amqp = source("amqp://127.0.0.1");
        amqp.mappings = vec!["stripe/invoice.v1".into()];
        let mut config = Config::default();
        config.sources.push("stripe".into());
        let fixture = include_str!("../../../mappings/stripe/fixtures/invoice.paid.json");
        let message = Message {
            exchange: "billing".into(),
            routing_key: "stripe.invoice".into(),
            message_id: Some("m-1".into()),
            ..Message::default()
        };
        let raw = match receive("stripe", &amqp, &message, fixture.as_bytes(), &config) {
            Received::Event(Incoming::Valid { raw, .. }) => raw,
            Received::Event(Incoming::Invalid { error, .. }) => panic!("{error:?}"),
            Received::NotTaken(why) => panic!("{why}"),
        };
        let kept: Value = serde_json::from_str(&raw).unwrap();
        let origin = &kept["origin"];
        assert_eq!(origin["connector"], "amqp", "{origin}");
        assert_eq!(origin["queue"], "q", "{origin}");
        assert_eq!(origin["routing_key"], "stripe.invoice", "{origin}");
        assert_eq!(origin["message_id"], "m-1", "{origin}");
        assert_eq!(origin["mapping"], "stripe/invoice.v1", "{origin}");
    }
}

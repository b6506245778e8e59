//! The engine's half of the NATS connector (the consumer, which speaks JetStream and
//! acknowledges, is `pshub_bus_nats::source`): a source whose records arrive on NATS
//! subjects of a JetStream stream (`[sources.<name>] connector = "nats"`), consumed by one
//! durable consumer every hub process shares, each message acknowledged only after the
//! batch that holds it is committed. A message is one record for the source's mappings, or
//! a canonical event envelope when it has none; the subject it came on is kept with it.

use crate::config::Config;
use crate::hooks::{Received, Via, receive_via};
use serde_json::Value;

/// A source read from NATS JetStream.
#[derive(Debug, Clone)]
pub struct NatsSource {
    /// `nats://host:4222`.
    pub url: String,
    /// The subjects its records arrive on (`fieldsvc.timesheets.>`).
    pub subject: String,
    /// The stream that holds them, created with the subjects when missing.
    pub stream: String,
    /// The most messages one batch (one commit) takes.
    pub batch: usize,
    /// The durable consumer every hub process of the deployment shares (`pshub-<source>`
    /// unless the configuration names another: two deployments reading one stream each
    /// need their own).
    pub consumer: String,
    pub mappings: Vec<String>,
}

impl NatsSource {
    /// The durable consumer of `source` when the configuration names none.
    pub fn default_consumer(source: &str) -> String {
        format!("pshub-{source}")
    }
}

/// A JetStream stream or consumer name: letters, digits, `_` and `-`.
pub fn is_jetstream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// One message of `source` on `subject` as an event.
pub fn receive(
    source: &str,
    nats: &NatsSource,
    subject: &str,
    body: &[u8],
    config: &Config,
) -> Received {
    let body = String::from_utf8_lossy(body);
    let via = Via::connector("nats")
        .with("stream", Value::from(nats.stream.as_str()))
        .with("subject", Value::from(subject));
    receive_via(source, &nats.mappings, &via, &body, config)
}

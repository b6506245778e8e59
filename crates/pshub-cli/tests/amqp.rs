//! The AMQP connector against the RabbitMQ of the machine (127.0.0.1:5672, guest/guest;
//! `.ci/run` starts it when it does not answer): a source whose records arrive on a queue
//! (`[sources.<name>] connector = "amqp"`), acknowledged only after their commit.
//!
//! - A hub killed between receipt and commit (its store held locked by another process, so
//!   that it has taken a batch it cannot commit) acknowledged nothing: after the restart
//!   every message is delivered again and applied once, and the queue ends empty with
//!   nothing unacknowledged.
//! - A mapped source: a Workday worker published on the queue becomes the hub's worker; a
//!   message that is not JSON is quarantined with the queue and routing key it came by, and
//!   acknowledged.
//!
//! - The outbound stream to an exchange (`[targets.warehouse] connector = "amqp"`): the
//!   hub's business events arrive on a queue bound to it, masked by `[masking.warehouse]`,
//!   each with its key as `message_id`, as `GET /v1/outbound?target=warehouse` shows them;
//!   a restart publishes its window again under the same message ids.
//!
//! Each test has a queue of its own, deleted before and after.

mod support;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use support::*;

const RABBITMQ: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn hired(i: usize) -> String {
    json!({
        "id": format!("hire-{i}"), "source": "hris", "type": "worker.hired", "schema_version": 1,
        "occurred_at": "2026-03-04T17:02:11Z",
        "data": { "worker_id": format!("W-{i}"), "effective_date": "2025-01-01", "legal_entity": "DE01",
                  "region": "emea", "role": "consultant" }
    })
    .to_string()
}

/// A channel on the broker, with `queue` deleted (a test run before left it) and declared
/// again, durable, as the hub declares it.
async fn channel_for(queue: &str) -> (Connection, Channel) {
    let connection = Connection::connect(RABBITMQ, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!("RabbitMQ does not answer on {RABBITMQ} ({e}); .ci/run starts it")
        });
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
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
        .unwrap();
    (connection, channel)
}

/// Publishes each body, persistent, to `queue` through the default exchange, and waits for
/// the broker's confirmation of each.
async fn publish(channel: &Channel, queue: &str, bodies: impl Iterator<Item = String>) {
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut confirms = futures_util::stream::FuturesUnordered::new();
    for (i, body) in bodies.enumerate() {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(format!("m-{i}").into()),
            )
            .await
            .unwrap();
        confirms.push(confirm);
    }
    while let Some(confirm) = confirms.next().await {
        confirm.unwrap();
    }
}

/// The queue's messages ready and unacknowledged, as the broker counts them.
fn queue_counts(queue: &str) -> Option<(u64, u64)> {
    let output = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ])
        .output()
        .expect("rabbitmqctl runs (it is installed with the server)");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [name, ready, unacked] if *name == queue => {
                    Some((ready.parse().ok()?, unacked.parse().ok()?))
                }
                _ => None,
            }
        })
}

/// Waits until the broker holds nothing of `queue`: no message ready, none unacknowledged.
async fn until_acknowledged(queue: &str) {
    eventually(
        "every message is acknowledged",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            match queue_counts(queue) {
                Some((0, 0)) => Ok(()),
                counts => Err(format!("{counts:?} ready and unacknowledged")),
            }
        },
    )
    .await
}

/// A hub whose `source` takes its messages from `queue`: a canonical envelope each, or
/// records of `mapping`, whose source then owns the workers.
fn config(source: &str, queue: &str, mapping: Option<&str>) -> String {
    let owner = if mapping.is_some() { source } else { "hris" };
    let mapping = mapping.map_or(String::new(), |m| format!("mapping = {m}\n"));
    format!(
        r#"
[sources]
allowed = ["crm", "psa", "hris", "erp", "payroll", "workday"]

[owners]
worker = "{owner}"

[sources.{source}]
connector = "amqp"
url = "{RABBITMQ}"
queue = "{queue}"
prefetch = 200
{mapping}"#
    )
}

#[tokio::test]
async fn a_hub_killed_between_receipt_and_commit_gets_its_messages_again_and_applies_them_once() {
    const COUNT: usize = 2_000;
    let queue = format!("pshub-test-{}-kill", std::process::id());
    let (_connection, channel) = channel_for(&queue).await;
    let dir = TempDir::new("amqp-kill");
    std::fs::write(dir.join("pshub.toml"), config("hris_mq", &queue, None)).unwrap();
    let start = |log: &str| serve_configured(&dir, log);
    let mut server = start("serve-1.log");
    let token = create_token(dir.path(), None, "admin", None);
    let client = reqwest::Client::new();
    let api = Api::new(&client, &server.base, &token);

    // Another process holds the store's write lock: the hub can take messages but not
    // commit them.
    let mut lock = hold_write_lock(dir.path());
    publish(&channel, &queue, (0..COUNT).map(hired)).await;
    // The hub has taken a batch it cannot commit.
    api.until_counted("hris_mq", "taken").await;
    let (_, summary) = api.get("/v1/summary").await.unwrap();
    assert_eq!(summary["accepted"], 0, "nothing was committed: {summary}");
    assert_eq!(api.connector_count("hris_mq", "batch").await, 0.0);
    server.kill();
    lock.kill().unwrap();
    lock.wait().unwrap();

    let server = start("serve-2.log");
    let api = Api::new(&client, &server.base, &token);
    let summary = api.until_accepted(COUNT as u64).await;
    let redelivered = api.connector_count("hris_mq", "redelivered").await;
    assert!(
        redelivered >= 1.0,
        "what the killed hub had taken came again, marked redelivered"
    );
    // Nothing had been committed: nothing can have been applied twice.
    assert_eq!(summary["duplicates_suppressed"], 0, "{summary}");
    until_acknowledged(&queue).await;
    let (status, worker) = api
        .get(&format!("/v1/workers/W-{}", COUNT - 1))
        .await
        .unwrap();
    assert_eq!(status, 200, "{worker}");
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_mapped_queue_turns_vendor_records_into_events_and_quarantines_what_is_not_json() {
    let queue = format!("pshub-test-{}-mapped", std::process::id());
    let (_connection, channel) = channel_for(&queue).await;
    let dir = TempDir::new("amqp-mapped");
    let (_server, api) = serve_with_config(
        &dir,
        &config(
            "workday",
            &queue,
            Some(r#"["workday/worker.v1", "workday/worker_terminated.v1"]"#),
        ),
    );
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../mappings/workday/fixtures/worker_active.json"),
    )
    .unwrap();
    publish(
        &channel,
        &queue,
        [fixture.trim().to_string(), "<not json>".to_string()].into_iter(),
    )
    .await;

    // The Workday worker is the hub's.
    let worker = api.until_ok("/v1/workers/21001").await;
    assert_eq!(worker["legal_entity"], "DE01", "{worker}");
    // The message that is not JSON is quarantined.
    let quarantined = api.until_quarantined("workday").await;
    assert_eq!(quarantined["kind"], "mapped_record", "{quarantined}");
    // What came in, as the quarantine keeps it: the payload and how it came.
    let raw = &quarantined["event"];
    assert_eq!(raw["connector"], "amqp", "{raw}");
    assert_eq!(raw["queue"], queue.as_str(), "{raw}");
    assert_eq!(raw["routing_key"], queue.as_str(), "{raw}");
    assert_eq!(raw["message_id"], "m-1", "{raw}");
    assert_eq!(raw["payload"], "<not json>", "{raw}");
    until_acknowledged(&queue).await;
    let (_, catalog) = api.get("/v1/catalog").await.unwrap();
    let inbound = &catalog["systems"]["workday"]["inbound"];
    let amqp = inbound
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["connector"] == "amqp")
        .unwrap_or_else(|| panic!("{inbound}"));
    assert!(
        amqp["transport"]
            .as_str()
            .is_some_and(|t| t.contains(&queue) && t.contains("guest:***@")),
        "{amqp}"
    );
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

/// A message read from the queue: its message id, its routing key and its event.
type Arrived = (String, String, Value);

#[tokio::test]
async fn business_events_reach_an_exchange_masked_for_its_target_with_their_keys() {
    let queue = format!("pshub-test-{}-out", std::process::id());
    let exchange = format!("pshub-test-{}-out", std::process::id());
    let (_connection, channel) = channel_for(&queue).await;
    channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let dir = TempDir::new("amqp-out");
    std::fs::write(
        dir.join("pshub.toml"),
        format!(
            r#"
[sources]
allowed = ["crm", "psa", "hris", "erp", "payroll"]

[masking.warehouse]
mask = ["worker_id"]

[targets.warehouse]
connector = "amqp"
url = "{RABBITMQ}"
exchange = "{exchange}"
"#
        ),
    )
    .unwrap();
    let mut server = serve_configured(&dir, "serve-1.log");
    let token = create_token(dir.path(), None, "admin", None);
    let client = reqwest::Client::new();
    let api = Api::new(&client, &server.base, &token);
    api.post_accepted(&{
        let mut events = firm(&["P-1"]);
        events.push(approved_time("T1", "2026-03-04", "2"));
        events
    })
    .await;

    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "pshub-test-reader".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    // Reads the queue until `done` holds of what arrived: (message id, routing key, event).
    let mut arrived: Vec<Arrived> = Vec::new();
    let mut read_until = async |arrived: &mut Vec<Arrived>, done: &dyn Fn(&[Arrived]) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !done(arrived) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "not reached within 60 s: {arrived:?}");
            if let Ok(Some(Ok(delivery))) = tokio::time::timeout(left, consumer.next()).await {
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let event: Value = serde_json::from_slice(&delivery.data).unwrap();
                arrived.push((id, delivery.routing_key.to_string(), event));
                delivery.ack(BasicAckOptions::default()).await.unwrap();
            }
        }
    };
    let has_line = |arrived: &[Arrived]| {
        arrived
            .iter()
            .any(|(_, _, e)| e["type"] == "invoice_line.posted")
            && arrived
                .iter()
                .any(|(_, _, e)| e["type"] == "project.provisioned")
    };
    read_until(&mut arrived, &has_line).await;
    let (id, routing_key, line) = arrived
        .iter()
        .find(|(_, _, e)| e["type"] == "invoice_line.posted")
        .cloned()
        .unwrap();
    assert_eq!(routing_key, "invoice_line.posted");
    assert_eq!(id, line["key"].as_str().unwrap(), "{line}");
    assert_eq!(line["data"]["source_id"], "T1", "{line}");
    assert_eq!(
        line["data"]["worker_id"], "***",
        "masked for the warehouse: {line}"
    );
    let shown_line = api.outbound_event("warehouse", "invoice_line.posted").await;
    assert_eq!(shown_line, line);

    // A restart publishes its window again: the same events under the same message ids,
    // by which a consumer drops them.
    let before = arrived.len();
    server.kill();
    let server = serve_configured(&dir, "serve-2.log");
    let api = Api::new(&client, &server.base, &token);
    read_until(&mut arrived, &|a: &[Arrived]| {
        a[before..]
            .iter()
            .any(|(id, _, _)| id == &line["key"].as_str().unwrap().to_string())
    })
    .await;
    let first: std::collections::BTreeSet<&str> = arrived[..before]
        .iter()
        .map(|(id, _, _)| id.as_str())
        .collect();
    assert!(
        arrived[before..]
            .iter()
            .all(|(id, _, _)| first.contains(id.as_str())),
        "only repeats after the restart: {arrived:?}"
    );
    assert_eq!(api.connector_count("warehouse", "trouble").await, 0.0);
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
}

//! NATS JetStream as the bus, against the NATS server of the machine (127.0.0.1:4222, with
//! JetStream; `.ci/run` starts it when it does not answer): events published on
//! `<namespace>.events.<source>` are consumed by the one durable consumer every hub process
//! shares, and acknowledged only after their commit.
//!
//! - A hub killed between receipt and commit (its store held locked by another process,
//!   so that it has taken a batch it cannot commit) acknowledged nothing: after the restart
//!   every message is delivered again and applied once.
//! - Two hub processes on one PostgreSQL store share the consumer: each takes part of the
//!   stream, and together they apply every event once.
//!
//! - The outbound stream: the hub's business events reach `<namespace>.out.<type>`, as
//!   `GET /v1/outbound?target=bus` shows them (a posted line one event, `[masking.bus]`
//!   applied), and a restart, which reads its window again, publishes nothing twice.
//!
//! - A source's own subjects (`[sources.workday] connector = "nats"`): a Workday record
//!   becomes the hub's worker through its mapping, a message that is not JSON is
//!   quarantined with the subject it came on, and both are acknowledged.
//!
//! Each test has a namespace of its own, so that tests running at once share no stream.

mod support;

use async_nats::jetstream::{self, consumer::pull};
use pshub_store_postgres::testing::TestDatabase;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const NATS: &str = "nats://127.0.0.1:4222";

fn hired(i: usize) -> String {
    json!({
        "id": format!("hire-{i}"), "source": "hris", "type": "worker.hired", "schema_version": 1,
        "occurred_at": "2026-03-04T17:02:11Z",
        "data": { "worker_id": format!("W-{i}"), "effective_date": "2025-01-01", "legal_entity": "DE01",
                  "region": "emea", "role": "consultant" }
    })
    .to_string()
}

/// The server's JetStream, the namespace's stream removed (a test run before left it).
async fn jetstream_for(namespace: &str) -> jetstream::Context {
    let client = async_nats::connect(NATS)
        .await
        .unwrap_or_else(|e| panic!("NATS does not answer on {NATS} ({e}); .ci/run starts it"));
    let js = jetstream::new(client);
    let _ = js
        .delete_stream(format!("{}_EVENTS", namespace.to_uppercase()))
        .await;
    js
}

/// Publishes `count` events and waits for the stream to have each (in runs of 500: the
/// client allows only so many acknowledgements outstanding).
async fn publish(js: &jetstream::Context, namespace: &str, count: usize) {
    for run in (0..count).collect::<Vec<_>>().chunks(500) {
        let mut acks = Vec::with_capacity(run.len());
        for i in run {
            let ack = js
                .publish(format!("{namespace}.events.hris"), hired(*i).into())
                .await
                .unwrap();
            acks.push(ack);
        }
        for ack in acks {
            ack.await.unwrap();
        }
    }
}

/// The bus's shared consumer's (pending, acknowledgement pending) counts.
async fn consumer_counts(js: &jetstream::Context, namespace: &str) -> (u64, usize) {
    let stream = format!("{}_EVENTS", namespace.to_uppercase());
    counts_of(js, &stream, &format!("{namespace}-hub")).await
}

/// A durable consumer's (pending, acknowledgement pending) counts.
async fn counts_of(js: &jetstream::Context, stream: &str, consumer: &str) -> (u64, usize) {
    let stream = js.get_stream(stream).await.unwrap();
    let mut consumer: jetstream::consumer::Consumer<pull::Config> =
        stream.get_consumer(consumer).await.unwrap();
    let info = consumer.info().await.unwrap();
    (info.num_pending, info.num_ack_pending)
}

#[tokio::test]
async fn a_hub_killed_between_receipt_and_commit_gets_its_messages_again_and_applies_them_once() {
    const COUNT: usize = 2_000;
    let namespace = format!("t{}kill", std::process::id());
    let js = jetstream_for(&namespace).await;
    let dir = TempDir::new("bus-kill");
    let start = |log: &str| {
        let server = serve(dir.path())
            .env("PSHUB_BUS", NATS)
            .env("PSHUB_BUS_NAMESPACE", &namespace)
            .env("PSHUB_BUS_ACK_WAIT_S", "2")
            .log(dir.join(log))
            .spawn();
        wait_listening(server.port);
        server
    };
    let mut server = start("serve-1.log");
    let token = create_token(dir.path(), None, "admin", None);
    let client = reqwest::Client::new();
    let api = Api::new(&client, &server.base, &token);

    // Another process holds the store's write lock: the hub can take messages but not
    // commit them.
    let mut lock = hold_write_lock(dir.path());
    publish(&js, &namespace, COUNT).await;
    eventually(
        "the hub has taken messages it has not acknowledged",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            match consumer_counts(&js, &namespace).await {
                (_, pending) if pending > 0 => Ok(()),
                counts => Err(format!("{counts:?}")),
            }
        },
    )
    .await;
    let (_, summary) = api.get("/v1/summary").await.unwrap();
    assert_eq!(summary["accepted"], 0, "nothing was committed: {summary}");
    server.kill();
    lock.kill().unwrap();
    lock.wait().unwrap();

    let server = start("serve-2.log");
    let api = Api::new(&client, &server.base, &token);
    let summary = api.until_accepted(COUNT as u64).await;
    let redelivered = api.connector_count("bus", "redelivered").await;
    assert!(
        redelivered >= 1.0,
        "what the killed hub had taken came again"
    );
    // Nothing had been committed: a duplicate can only be a message delivered again (a
    // commit slower than the ack wait on a loaded machine), never a second application.
    assert!(
        summary["duplicates_suppressed"].as_f64().unwrap() <= redelivered,
        "{summary}, {redelivered} redelivered"
    );
    eventually(
        "every message is acknowledged",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            match consumer_counts(&js, &namespace).await {
                (0, 0) => Ok(()),
                counts => Err(format!("{counts:?}")),
            }
        },
    )
    .await;
    let (status, worker) = api
        .get(&format!("/v1/workers/W-{}", COUNT - 1))
        .await
        .unwrap();
    assert_eq!(status, 200, "{worker}");
    let _ = js
        .delete_stream(format!("{}_EVENTS", namespace.to_uppercase()))
        .await;
}

#[tokio::test]
async fn two_hubs_on_postgresql_share_the_consumer_and_apply_each_event_once() {
    const COUNT: usize = 6_000;
    let namespace = format!("t{}two", std::process::id());
    let js = jetstream_for(&namespace).await;
    let database = TestDatabase::create("bus_two_hubs");
    let dir = TempDir::new("bus-two");
    let servers: Vec<_> = (0..2)
        .map(|i| {
            let server = serve(&dir.join(&format!("hub-{i}")))
                .store(&database.url)
                .env("PSHUB_BUS", NATS)
                .env("PSHUB_BUS_NAMESPACE", &namespace)
                .log(dir.join(&format!("hub-{i}.log")))
                .spawn();
            wait_listening(server.port);
            server
        })
        .collect();
    let token = create_token(&dir.join("token"), Some(&database.url), "admin", None);
    let client = reqwest::Client::new();
    let hubs: Vec<Api> = servers
        .iter()
        .map(|s| Api::new(&client, &s.base, &token))
        .collect();

    publish(&js, &namespace, COUNT).await;
    let summary = hubs[0].until_accepted(COUNT as u64).await;
    let mut redelivered = 0.0;
    for hub in &hubs {
        redelivered += hub.connector_count("bus", "redelivered").await;
    }
    assert!(
        summary["duplicates_suppressed"].as_f64().unwrap() <= redelivered,
        "a duplicate is only a message delivered again: {summary}"
    );
    for (i, hub) in hubs.iter().enumerate() {
        assert!(
            hub.connector_count("bus", "batch").await >= 1.0,
            "hub {i} took part of the stream"
        );
    }
    let (_, other) = hubs[1].get("/v1/summary").await.unwrap();
    assert_eq!(other["accepted"], COUNT, "both read one store: {other}");
    let _ = js
        .delete_stream(format!("{}_EVENTS", namespace.to_uppercase()))
        .await;
}

/// Every message on the namespace's outbound stream: (subject, event), in stream order.
async fn outbound_messages(js: &jetstream::Context, namespace: &str) -> Vec<(String, Value)> {
    let stream = js
        .get_stream(format!("{}_OUT", namespace.to_uppercase()))
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(10_000)
        .expires(Duration::from_millis(500))
        .messages()
        .await
        .unwrap();
    let mut messages = Vec::new();
    while let Some(message) = futures_util::StreamExt::next(&mut batch).await {
        let message = message.unwrap();
        messages.push((
            message.subject.to_string(),
            serde_json::from_slice(&message.payload).unwrap(),
        ));
    }
    messages
}

#[tokio::test]
async fn business_events_reach_the_outbound_stream_masked_for_the_bus_and_once_across_a_restart() {
    let namespace = format!("t{}out", std::process::id());
    let js = jetstream_for(&namespace).await;
    let _ = js
        .delete_stream(format!("{}_OUT", namespace.to_uppercase()))
        .await;
    let dir = TempDir::new("bus-out");
    let config_path = dir.join("pshub.toml");
    std::fs::write(
        &config_path,
        "[sources]\nallowed = [\"crm\", \"psa\", \"hris\", \"erp\", \"payroll\"]\n\n[masking.bus]\nmask = [\"worker_id\"]\n",
    )
    .unwrap();
    let start = |log: &str| {
        let server = serve(dir.path())
            .env("PSHUB_BUS", NATS)
            .env("PSHUB_BUS_NAMESPACE", &namespace)
            .env("PSHUB_CONFIG", config_path.to_str().unwrap())
            .log(dir.join(log))
            .spawn();
        wait_listening(server.port);
        server
    };
    let mut server = start("serve-1.log");
    let token = create_token(dir.path(), None, "admin", None);
    let client = reqwest::Client::new();
    let api = Api::new(&client, &server.base, &token);
    api.post_accepted(&{
        let mut events = firm(&["P-1"]);
        events.push(approved_time("T1", "2026-03-04", "2"));
        events
    })
    .await;

    let messages = eventually(
        "the project and the line reach the outbound stream",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let messages = outbound_messages(&js, &namespace).await;
            let has = |kind: &str| messages.iter().any(|(_, e)| e["type"] == kind);
            if has("project.provisioned") && has("invoice_line.posted") {
                Ok(messages)
            } else {
                Err(format!("{messages:?}"))
            }
        },
    )
    .await;
    let (subject, line) = messages
        .iter()
        .find(|(_, e)| e["type"] == "invoice_line.posted")
        .unwrap();
    assert_eq!(subject, &format!("{namespace}.out.invoice_line.posted"));
    assert_eq!(line["data"]["source_id"], "T1", "{line}");
    assert_eq!(
        line["data"]["worker_id"], "***",
        "masked for the bus: {line}"
    );
    // What the stream carries is what the hub's outbound view shows the bus.
    let (status, shown) = api.get("/v1/outbound?target=bus").await.unwrap();
    assert_eq!(status, 200, "{shown}");
    let shown_line = shown["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "invoice_line.posted")
        .cloned()
        .unwrap();
    assert_eq!(&shown_line, line);

    // A restart reads its window again: the stream keeps one copy of each event.
    server.kill();
    let server = start("serve-2.log");
    let api = Api::new(&client, &server.base, &token);
    // Its relay starts with nothing sent, so it publishes the window again.
    api.until_counted("bus_out", "published").await;
    let again = outbound_messages(&js, &namespace).await;
    let mut keys: Vec<&str> = again
        .iter()
        .map(|(_, e)| e["key"].as_str().unwrap())
        .collect();
    let all = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), all, "no event twice: {again:?}");
    assert!(all >= messages.len());
    let _ = js
        .delete_stream(format!("{}_OUT", namespace.to_uppercase()))
        .await;
    let _ = js
        .delete_stream(format!("{}_EVENTS", namespace.to_uppercase()))
        .await;
}

#[tokio::test]
async fn a_sources_subjects_are_mapped_quarantined_when_bad_and_acknowledged_after_commit() {
    let namespace = format!("t{}wd", std::process::id());
    let js = jetstream_for(&namespace).await;
    let stream = namespace.to_uppercase();
    let _ = js.delete_stream(&stream).await;
    let dir = TempDir::new("bus-source");
    let (_server, api) = serve_with_config(
        &dir,
        &format!(
            r#"
[sources]
allowed = ["crm", "psa", "hris", "erp", "payroll", "workday"]

[owners]
worker = "workday"

[sources.workday]
connector = "nats"
url = "{NATS}"
subject = "{namespace}.workers.>"
stream = "{stream}"
batch = 100
mapping = ["workday/worker.v1", "workday/worker_terminated.v1"]
"#
        ),
    );
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../mappings/workday/fixtures/worker_active.json"),
    )
    .unwrap();
    for (subject, body) in [
        ("changed", fixture.trim().to_string()),
        ("garbled", "<not json>".to_string()),
    ] {
        js.publish(format!("{namespace}.workers.{subject}"), body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    // The Workday worker is the hub's.
    let worker = api.until_ok("/v1/workers/21001").await;
    assert_eq!(worker["legal_entity"], "DE01", "{worker}");
    // The message that is not JSON is quarantined.
    let kept = api.until_quarantined("workday").await;
    assert_eq!(kept["kind"], "mapped_record", "{kept}");
    assert_eq!(kept["event"]["connector"], "nats", "{kept}");
    assert_eq!(
        kept["event"]["subject"],
        format!("{namespace}.workers.garbled"),
        "{kept}"
    );
    eventually(
        "both messages are acknowledged",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            match counts_of(&js, &stream, "pshub-workday").await {
                (0, 0) => Ok(()),
                counts => Err(format!("{counts:?}")),
            }
        },
    )
    .await;
    assert!(api.connector_count("workday", "batch").await >= 1.0);
    let _ = js.delete_stream(&stream).await;
}

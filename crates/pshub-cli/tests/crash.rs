//! A crash in mid-stream loses and doubles nothing: `pshub serve` runs as a child process,
//! takes 20,000 events, is killed with SIGKILL, restarts, and the sender re-sends what was
//! not acknowledged. The end state equals that of a run that never crashed.

use pshub_connectors::sandbox::{FirmSpec, InProcess, Sandbox, SimulatedFirm};
use pshub_engine::summary::Summary;
use pshub_engine::{Config, Engine, Systems};
use pshub_model::Event;
use pshub_store_sqlite::SqliteStore;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use support::{Api, Server, create_token, eventually, join_all, temp_dir, wait_healthy};

mod support;

fn start(dir: &std::path::Path) -> Server {
    support::serve(dir).spawn()
}

fn firm_events() -> Vec<Value> {
    let firm = SimulatedFirm::new(FirmSpec {
        workers: 140,
        entries: 20_500,
        seed: 99,
        ..FirmSpec::default()
    });
    let mut events = firm.reference_events();
    events.extend(firm.work_events());
    events
}

/// The figures a crash must not change (re-sends only add to `events` and `duplicates`).
fn essentials(summary: &Value) -> Value {
    let mut kept = serde_json::Map::new();
    for key in [
        "accepted",
        "lines_posted",
        "reversals_posted",
        "exceptions_by_owner",
        "open_exceptions_by_owner",
        "approved_value",
        "posted_value",
        "held_value",
        "held_unvalued",
        "lines_undelivered",
        "conservation_holds",
    ] {
        kept.insert(key.to_string(), summary[key].clone());
    }
    Value::Object(kept)
}

/// The same events through an engine that never crashes.
fn reference_summary(batches: &[Vec<Value>]) -> Value {
    let dir = temp_dir("crash-reference");
    let engine = Engine::open(
        Arc::new(SqliteStore::open(&dir).unwrap()),
        Config::default(),
        InProcess::systems(&Sandbox::in_memory(), Systems::default()),
    )
    .unwrap();
    for batch in batches {
        engine.submit(batch.clone()).unwrap();
    }
    assert!(engine.settle(Duration::from_secs(60)).unwrap());
    let summary = engine.read(|r| Summary::compute(r)).unwrap().to_json();
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_stream_loses_and_doubles_nothing() {
    let dir = temp_dir("crash");
    let token = create_token(&dir, None, "admin", None);

    let events = firm_events();
    assert!(events.len() >= 20_000, "{} events", events.len());
    let batches: Vec<Vec<Value>> = events.chunks(200).map(<[Value]>::to_vec).collect();
    let client = reqwest::Client::new();
    let mut server = start(&dir);
    let base = server.base.clone();
    wait_healthy(&client, &base).await;

    let api = Api::new(&client, &base, &token);
    let kill_at = batches.len() / 2;
    let mut acknowledged = 0;
    for (i, batch) in batches.iter().enumerate() {
        if i == kill_at {
            // The kill lands while this batch is in flight.
            let request = {
                let (api, batch) = (api.clone(), batch.clone());
                tokio::spawn(async move { api.post_events(&batch).await })
            };
            tokio::time::sleep(Duration::from_millis(3)).await;
            server.kill();
            if request.await.unwrap().is_ok() {
                acknowledged += 1;
            }
            break;
        }
        let results = api
            .post_events(batch)
            .await
            .expect("acknowledged before the crash");
        assert_eq!(results.len(), batch.len());
        acknowledged += 1;
    }
    assert!(acknowledged < batches.len());

    let mut restarted = start(&dir);
    let api = Api::new(&client, &restarted.base, &token);
    wait_healthy(&client, &api.base).await;
    for batch in &batches[acknowledged..] {
        let results = api
            .post_events(batch)
            .await
            .expect("acknowledged after the restart");
        assert_eq!(results.len(), batch.len());
    }

    // Wait for the delivery worker to empty the outbox.
    let summary = eventually(
        "the outbox empties",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let summary = api.summary().await;
            match summary["lines_undelivered"] == 0 {
                true => Ok(summary),
                false => Err(summary.to_string()),
            }
        },
    )
    .await;

    // Every valid event is in the inbox once, applied or held, never pending or lost.
    let mut seen = HashSet::new();
    let mut distinct_valid = Vec::new();
    for event in &events {
        if let Ok(parsed) = Event::parse(event, |_| true)
            && seen.insert((parsed.source.clone(), parsed.id.clone()))
        {
            distinct_valid.push((parsed.source, parsed.id));
        }
    }
    assert_eq!(summary["accepted"], distinct_valid.len());
    for chunk in distinct_valid.chunks(16) {
        let lookups = chunk.iter().map(|(source, id)| {
            let api = api.clone();
            let path = format!("/v1/events/{source}/{id}");
            async move { api.get_ok(&path).await }
        });
        for answer in join_all(lookups).await {
            let status = answer["status"].as_str().unwrap_or("missing");
            assert!(status == "applied" || status == "held", "{answer}");
        }
    }

    // The ERP holds each line once, though lines in flight at the kill were sent again.
    let stats = api.get_ok("/v1/sandbox/stats").await;
    let posted =
        summary["lines_posted"].as_u64().unwrap() + summary["reversals_posted"].as_u64().unwrap();
    assert_eq!(stats["erp_lines"]["records"].as_u64().unwrap(), posted);

    assert_eq!(
        essentials(&summary),
        essentials(&reference_summary(&batches))
    );
    restarted.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

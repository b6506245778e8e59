//! A hub reopened over its store carries on as if it had never stopped: reference data,
//! entries, cases and the outbox are rebuilt from what was committed.

use pshub_connectors::sandbox::{FirmSpec, InProcess, Sandbox, SimulatedFirm};
use pshub_engine::store::{CaseFilter, Page};
use pshub_engine::summary::Summary;
use pshub_engine::{Acting, Actor, Config, Engine, Systems};
use pshub_model::records::ExceptionState;
use pshub_store_sqlite::SqliteStore;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod support;

fn open(dir: &Path, sandbox: &Arc<Sandbox>) -> Arc<Engine> {
    Engine::open(
        Arc::new(SqliteStore::open(dir).unwrap()),
        Config::default(),
        InProcess::systems(sandbox, Systems::default()),
    )
    .unwrap()
}

fn send(engine: &Engine, events: &[Value]) {
    for chunk in events.chunks(250) {
        engine.submit(chunk.to_vec()).unwrap();
    }
}

/// Sends the firm's events, stopping and reopening the hub at `restart_at` if given, then
/// resolves the missing-rate cases after the fixed rate card; answers the summary.
fn run(name: &str, restart_at: Option<usize>) -> Value {
    let dir = support::temp_dir(&format!("restart-{name}"));
    let sandbox = Sandbox::open(&dir).unwrap();
    // Seed 6 gives a firm with missing-rate cases, so resolution after a restart is exercised.
    let firm = SimulatedFirm::new(FirmSpec {
        workers: 120,
        entries: 6_000,
        seed: 6,
        ..FirmSpec::default()
    });
    let mut events = firm.reference_events();
    events.extend(firm.work_events());
    let mut engine = open(&dir, &sandbox);
    let split = restart_at.unwrap_or(events.len());
    send(&engine, &events[..split]);
    if restart_at.is_some() {
        // Stop with deliveries still queued, as a crash would leave them.
        drop(engine);
        engine = open(&dir, &sandbox);
    }
    send(&engine, &events[split..]);
    engine.submit(vec![firm.rate_card_fix()]).unwrap();
    let filter = CaseFilter {
        kind: Some("missing_rate".into()),
        state: Some(ExceptionState::Open),
        ..CaseFilter::default()
    };
    let cases = engine.read(|r| r.cases(&filter, Page::ALL)).unwrap();
    assert!(
        !cases.is_empty(),
        "the firm has missing-rate cases to resolve"
    );
    let acting = Acting {
        actor: Actor::system("test"),
        note: None,
    };
    for case in cases {
        engine.resolve(case.id, &acting).unwrap();
    }
    assert!(engine.settle(Duration::from_secs(30)).unwrap());
    let summary = engine.read(|r| Summary::compute(r)).unwrap();
    assert_eq!(
        summary.lines_posted + summary.reversals_posted,
        sandbox.line_count() as u64
    );
    let _ = std::fs::remove_dir_all(&dir);
    summary.to_json()
}

#[test]
fn a_reopened_hub_ends_where_an_uninterrupted_one_does() {
    let uninterrupted = run("straight", None);
    for restart_at in [1_000, 3_000] {
        assert_eq!(
            run(&format!("at-{restart_at}"), Some(restart_at)),
            uninterrupted,
            "restarted at event {restart_at}"
        );
    }
}

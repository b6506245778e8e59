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
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pshub");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server process, killed when dropped so that a failing test leaves nothing running.
struct Server(Child);

impl Server {
    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start(dir: &std::path::Path, port: u16) -> Server {
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pshub serve starts");
    Server(child)
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("pshub serve did not become healthy at {base}");
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
    let dir = std::env::temp_dir().join(format!("pshub-crash-reference-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
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
    let dir = std::env::temp_dir().join(format!("pshub-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let token_output = Command::new(BIN)
        .args(["token", "create", "--role", "admin", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(token_output.status.success());
    let token = String::from_utf8(token_output.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();

    let events = firm_events();
    assert!(events.len() >= 20_000, "{} events", events.len());
    let batches: Vec<Vec<Value>> = events.chunks(200).map(<[Value]>::to_vec).collect();
    let client = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start(&dir, port);
    wait_healthy(&client, &base).await;

    let post = |batch: Vec<Value>, base: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let response = client
                .post(format!("{base}/v1/events"))
                .bearer_auth(token)
                .json(&batch)
                .send()
                .await
                .ok()?;
            response.status().is_success().then_some(())?;
            response.json::<Value>().await.ok()
        }
    };
    let kill_at = batches.len() / 2;
    let mut acknowledged = 0;
    for (i, batch) in batches.iter().enumerate() {
        if i == kill_at {
            // The kill lands while this batch is in flight.
            let request = tokio::spawn(post(batch.clone(), base.clone()));
            tokio::time::sleep(Duration::from_millis(3)).await;
            server.kill();
            if request.await.unwrap().is_some() {
                acknowledged += 1;
            }
            break;
        }
        let answer = post(batch.clone(), base.clone())
            .await
            .expect("acknowledged before the crash");
        assert_eq!(answer["results"].as_array().unwrap().len(), batch.len());
        acknowledged += 1;
    }
    assert!(acknowledged < batches.len());

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut restarted = start(&dir, port);
    wait_healthy(&client, &base).await;
    for batch in &batches[acknowledged..] {
        let answer = post(batch.clone(), base.clone())
            .await
            .expect("acknowledged after the restart");
        assert_eq!(answer["results"].as_array().unwrap().len(), batch.len());
    }

    // Wait for the delivery worker to empty the outbox.
    let deadline = Instant::now() + Duration::from_secs(60);
    let summary = loop {
        let summary = get_json(&client, format!("{base}/v1/summary"), &token).await;
        if summary["lines_undelivered"] == 0 || Instant::now() > deadline {
            break summary;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

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
            let (client, token, base) = (client.clone(), token.clone(), base.clone());
            let url = format!("{base}/v1/events/{source}/{id}");
            async move { get_json(&client, url, &token).await }
        });
        for answer in futures_join(lookups).await {
            let status = answer["status"].as_str().unwrap_or("missing");
            assert!(status == "applied" || status == "held", "{answer}");
        }
    }

    // The ERP holds each line once, though lines in flight at the kill were sent again.
    let stats = get_json(&client, format!("{base}/v1/sandbox/stats"), &token).await;
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

async fn get_json(client: &reqwest::Client, url: String, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs a handful of requests concurrently.
async fn futures_join<F: std::future::Future<Output = Value> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<Value> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut answers = Vec::with_capacity(handles.len());
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

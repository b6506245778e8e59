//! What an operator meets first: flags that are checked with a clear message, logs that
//! tell each request and each case, `events send` that names what was refused, and a
//! health check that says why the hub is not healthy.

mod support;

use serde_json::{Value, json};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_pshub");

fn event(source: &str, id: &str, kind: &str, data: Value) -> Value {
    json!({ "id": id, "source": source, "type": kind, "schema_version": 1,
            "occurred_at": "2026-03-04T17:02:11Z", "data": data })
}

fn entry(id: &str, worker: &str, hours: &str) -> Value {
    event(
        "psa",
        id,
        "time_entry.approved",
        json!({ "entry_id": id, "worker_id": worker, "project_code": "P-1", "work_date": "2026-03-04",
                "hours": hours, "billable": true }),
    )
}

#[test]
fn every_bad_flag_is_refused_with_a_message_that_names_it() {
    let dir = TempDir::new("operator-flags");
    let data_dir = dir.path().to_str().unwrap().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["demo", "--exit", "--workers", "0"], "--workers"),
        (vec!["demo", "--exit", "--entries", "0"], "--entries"),
        (vec!["demo", "--exit", "--seed", "minus one"], "--seed"),
        (vec!["demo", "--listen", "localhost"], "--listen"),
        (vec!["serve", "--listen", "nowhere:80:1"], "--listen"),
        (
            vec![
                "serve",
                "--store",
                "mysql://db/pshub",
                "--data-dir",
                &data_dir,
            ],
            "--store",
        ),
        (
            vec!["migrate", "--store", "sqlite:", "--data-dir", &data_dir],
            "store",
        ),
        (vec!["sandbox", "--listen", "300.1.1.1:9"], "--listen"),
        (
            vec![
                "token",
                "create",
                "--role",
                "wizard",
                "--data-dir",
                &data_dir,
            ],
            "--role",
        ),
        (
            vec![
                "token",
                "create",
                "--role",
                "admin",
                "--name",
                "",
                "--data-dir",
                &data_dir,
            ],
            "--name",
        ),
        (
            vec!["events", "send", "--token", "t", "--parallel", "0", "f"],
            "--parallel",
        ),
        (
            vec!["events", "send", "--token", "t", "--parallel", "65", "f"],
            "--parallel",
        ),
        (
            vec!["events", "send", "--token", "t", "--batch", "0", "f"],
            "--batch",
        ),
        (
            vec![
                "events",
                "send",
                "--token",
                "t",
                "--url",
                "ftp://x",
                "/dev/null",
            ],
            "--url",
        ),
        (
            vec!["events", "send", "--token", "t", "/no/such/file"],
            "/no/such/file",
        ),
        (vec!["bench", "time-to-bill", "--entries", "0"], "--entries"),
        (vec!["bench", "time-to-bill", "--batch", "0"], "--batch"),
        (vec!["bench", "time-to-bill", "--senders", "0"], "--senders"),
        (
            vec!["bench", "reference", "--assignments", "0"],
            "--assignments",
        ),
    ];
    for (args, named) in cases {
        let output = Command::new(BIN)
            .args(&args)
            .env("PSHUB_DATA_DIR", dir.path())
            .env_remove("PSHUB_STORE")
            .output()
            .expect("pshub runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "pshub {args:?} succeeded");
        assert!(
            !stderr.contains("panicked"),
            "pshub {args:?} panicked: {stderr}"
        );
        assert!(
            stderr.contains(named),
            "pshub {args:?}: the message names {named}: {stderr}"
        );
    }
    for (name, value) in [("PSHUB_LOG", "=debug=="), ("PSHUB_LOG_FORMAT", "xml")] {
        let output = Command::new(BIN)
            .args(["migrate", "--data-dir"])
            .arg(dir.path())
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}={value} is refused");
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    // Settings read with the configuration: the demo reads them before anything runs.
    for (name, value) in [
        ("PSHUB_DELIVERY_BATCH", "0"),
        ("PSHUB_DELIVERY_PAUSE_MS", "-5"),
        ("PSHUB_BREAKER_THRESHOLD", "many"),
        ("PSHUB_BREAKER_COOL_DOWN_MS", "1"),
        ("PSHUB_RETRY_DELAYS_MS", "1000,soon"),
    ] {
        let output = Command::new(BIN)
            .args(["demo", "--exit", "--data-dir"])
            .arg(dir.path().join("demo"))
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}={value} is refused");
        assert!(
            stderr.contains(name) && !stderr.contains("panicked"),
            "{name}: {stderr}"
        );
    }
}

#[tokio::test]
async fn json_logs_tell_each_request_and_each_case_and_events_send_names_refusals() {
    let dir = TempDir::new("operator-logs");
    let token = create_token(dir.path(), None, "admin", Some("ops"));
    let log = dir.join("serve.log");
    let server = serve(dir.path())
        .env("PSHUB_LOG", "debug")
        .env("PSHUB_LOG_FORMAT", "json")
        .log(log.clone())
        .spawn();
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.base).await;
    let api = Api::new(&client, &server.base, &token);

    // A file whose every event is refused: each line named, with its status and reason.
    let file = dir.join("events.jsonl");
    let mut out = std::fs::File::create(&file).unwrap();
    writeln!(out, "{}", entry("e1", "W-404", "1e30")).unwrap();
    writeln!(out, "{}", entry("e2", "W-404", "0")).unwrap();
    drop(out);
    let output = Command::new(BIN)
        .args(["events", "send"])
        .arg(&file)
        .args(["--url", &server.base, "--token", &token])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "all quarantined is not a success");
    assert!(
        stderr.contains("line 1: quarantined: data.hours:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 2: quarantined: data.hours:"),
        "{stderr}"
    );

    // A conflict is named too: the same id, another body.
    let mut out = std::fs::File::create(&file).unwrap();
    writeln!(out, "{}", entry("e3", "W-404", "1")).unwrap();
    writeln!(out, "{}", entry("e3", "W-404", "2")).unwrap();
    drop(out);
    let output = Command::new(BIN)
        .args(["events", "send", "--parallel", "1"])
        .arg(&file)
        .args(["--url", &server.base, "--token", &token])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a conflict is not a success: {stderr}"
    );
    assert!(stderr.contains("line 2: conflict:"), "{stderr}");

    // The accepted e3 opened a case (its worker is unknown); dismissing it closes it.
    let cases = api.get_ok("/v1/exceptions?kind=unknown_worker").await;
    let case_id = cases["items"][0]["id"].as_i64().expect("a case for e3");
    let response = client
        .post(format!("{}/v1/exceptions/{case_id}/dismiss", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(10);
    let (requests, opened, closed) = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        let with = |message: &str| -> Vec<Value> {
            lines
                .iter()
                .filter(|l| l["fields"]["message"] == message)
                .cloned()
                .collect()
        };
        let found = (with("request"), with("case opened"), with("case closed"));
        if (!found.0.is_empty() && !found.1.is_empty() && !found.2.is_empty())
            || Instant::now() > deadline
        {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let dismiss = requests
        .iter()
        .find(|r| r["fields"]["route"] == "/v1/exceptions/{id}/dismiss")
        .unwrap_or_else(|| panic!("a request line for the dismissal: {requests:?}"));
    assert_eq!(dismiss["fields"]["method"], "POST");
    assert_eq!(dismiss["fields"]["status"], 200);
    assert!(dismiss["fields"]["duration_ms"].is_number(), "{dismiss}");
    assert!(dismiss["fields"]["correlation_id"].is_string(), "{dismiss}");
    let posts = requests
        .iter()
        .filter(|r| r["fields"]["route"] == "/v1/events")
        .count();
    assert!(posts >= 2, "one line per request: {requests:?}");
    assert!(
        opened.iter().any(|c| c["fields"]["case_id"] == case_id),
        "{opened:?}"
    );
    assert!(
        closed
            .iter()
            .any(|c| c["fields"]["case_id"] == case_id && c["fields"]["state"] == "dismissed"),
        "{closed:?}"
    );
}

#[tokio::test]
async fn health_answers_503_with_the_reason_when_the_store_is_gone() {
    let database = pshub_store_postgres::testing::TestDatabase::create("operator_health");
    let dir = TempDir::new("operator-health");
    let server = serve(dir.path()).store(&database.url).spawn();
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.base).await;
    drop(database);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            let body: Value = response.json().await.unwrap();
            assert!(
                body.to_string().contains("store"),
                "the reason names the store: {body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "healthz never noticed the store was gone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_send_keeps_each_entrys_order_with_batches_in_flight() {
    let dir = TempDir::new("operator-order");
    let token = create_token(dir.path(), None, "admin", Some("ops"));
    let server = serve(dir.path()).spawn();
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.base).await;
    let api = Api::new(&client, &server.base, &token);

    let card = event(
        "psa",
        "rc-1",
        "rate_card.upserted",
        json!({ "rate_card_id": "RC-EUR", "currency": "EUR",
                "rates": [{ "role": "consultant", "region": "emea", "rate": "100.00", "valid_from": "2026-01-01" }] }),
    );
    let hire = event(
        "hris",
        "hire-1",
        "worker.hired",
        json!({ "worker_id": "W-1", "effective_date": "2025-01-01", "legal_entity": "DE01",
                "region": "emea", "cost_center": "CC1", "role": "consultant", "grade": "G2" }),
    );
    let booking = event(
        "psa",
        "a-1",
        "assignment.changed",
        json!({ "assignment_id": "A-1", "version": 1, "worker_id": "W-1", "project_code": "P-1",
                "role": "consultant", "start": "2026-01-01", "end": "2026-12-31", "hours": "160", "state": "approved" }),
    );
    let work = |id: &str, kind: &str, entry: &str| {
        event(
            "psa",
            id,
            kind,
            json!({ "entry_id": entry, "worker_id": "W-1", "project_code": "P-1",
                    "work_date": "2026-03-04", "hours": "0.25", "billable": true }),
        )
    };
    // 300 entries approved; a third rejected a few lines later, half of those approved again.
    let mut lines = vec![
        card,
        closed_won("P-1", "EUR", "RC-EUR", "2026-01-01", None),
        hire,
        booking,
    ];
    let mut later: Vec<(usize, Value)> = Vec::new();
    for n in 0..300 {
        let entry = format!("E{n}");
        lines.push(work(&format!("{entry}-ok"), "time_entry.approved", &entry));
        if n % 3 == 0 {
            later.push((
                n + 4,
                work(&format!("{entry}-no"), "time_entry.rejected", &entry),
            ));
        }
        if n % 6 == 0 {
            later.push((
                n + 9,
                work(&format!("{entry}-ok2"), "time_entry.approved", &entry),
            ));
        }
        let (due, rest): (Vec<_>, Vec<_>) = later.drain(..).partition(|(at, _)| *at <= n);
        later = rest;
        lines.extend(due.into_iter().map(|(_, e)| e));
    }
    lines.extend(later.into_iter().map(|(_, e)| e));
    let file = dir.join("work.jsonl");
    let mut out = std::fs::File::create(&file).unwrap();
    for line in &lines {
        writeln!(out, "{line}").unwrap();
    }
    drop(out);
    let output = Command::new(BIN)
        .args(["events", "send", "--batch", "7", "--parallel", "4"])
        .arg(&file)
        .args(["--url", &server.base, "--token", &token])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let summary = eventually(
        "the hub settles",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let summary = api.summary().await;
            if summary["lines_undelivered"] == 0 && summary["lines_posted"].as_u64() > Some(0) {
                Ok(summary)
            } else {
                Err(summary.to_string())
            }
        },
    )
    .await;
    // Approved in the end: 200 never rejected, plus 50 approved again: 250 × 25.00.
    assert_eq!(
        summary["posted_value"],
        json!({ "EUR": "6250.00" }),
        "{summary}"
    );
    let rejected_only = api.all_pages("/v1/invoice-lines?source_id=E3").await;
    assert_eq!(
        rejected_only.len(),
        2,
        "a line and its reversal: {rejected_only:?}"
    );
    let approved_again = api.all_pages("/v1/invoice-lines?source_id=E6").await;
    assert_eq!(
        approved_again.len(),
        3,
        "a line, its reversal, a line: {approved_again:?}"
    );
}

/// Runs an operator's command against `server`; answers whether it succeeded and its output.
fn operate(server: &support::Server, token: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .args(["--url", &server.base, "--token", token])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn operators_list_show_and_act_on_cases_in_bulk_from_the_command_line() {
    let dir = TempDir::new("operator-cli");
    let admin = create_token(dir.path(), None, "admin", Some("ops"));
    let server = serve(dir.path()).spawn();
    let client = reqwest::Client::new();
    wait_healthy(&client, &server.base).await;
    let api = Api::new(&client, &server.base, &admin);
    let card = |id: &str, roles: &[&str]| {
        let rates: Vec<Value> = roles.iter().map(|role| json!({ "role": role, "region": "emea", "rate": "100.00", "valid_from": "2026-01-01" })).collect();
        event(
            "psa",
            id,
            "rate_card.upserted",
            json!({ "rate_card_id": "RC-EUR", "currency": "EUR", "rates": rates }),
        )
    };
    let hire = |worker: &str, role: &str| {
        event(
            "hris",
            &format!("hire-{worker}"),
            "worker.hired",
            json!({ "worker_id": worker, "effective_date": "2025-01-01",
            "legal_entity": "DE01", "region": "emea", "cost_center": "CC1", "role": role, "grade": "G2" }),
        )
    };
    let booking = |id: &str, worker: &str, role: &str| {
        event(
            "psa",
            id,
            "assignment.changed",
            json!({ "assignment_id": id, "version": 1, "worker_id": worker, "project_code": "P-1",
            "role": role, "start": "2026-01-01", "end": "2026-12-31", "hours": "160", "state": "approved" }),
        )
    };
    let mut conflicting = entry("E-9", "W-1", "1");
    api.post_events(&[
        card("rc-1", &["consultant"]),
        closed_won("P-1", "EUR", "RC-EUR", "2026-01-01", None),
        hire("W-1", "consultant"),
        hire("W-2", "architect"),
        booking("A-1", "W-1", "consultant"),
        booking("A-2", "W-2", "architect"),
        entry("E-1", "W-1", "1"),
        entry("E-2", "W-2", "2"),
        entry("E-3", "W-2", "3"),
        conflicting.clone(),
        json!({ "id": "bad-1", "source": "psa", "type": "time_entry.approved", "data": { "hours": "7,5" } }),
    ])
    .await
    .unwrap();
    conflicting["data"]["hours"] = json!("2");
    api.post_events(&[conflicting]).await.unwrap();

    let (ok, out, err) = operate(
        &server,
        &admin,
        &["exceptions", "list", "--kind", "missing_rate", "--json"],
    );
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<i64> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{out}");
    let (ok, out, _) = operate(
        &server,
        &admin,
        &["exceptions", "show", &ids[0].to_string()],
    );
    assert!(
        ok && out.contains("missing_rate")
            && out.contains("suggested fix: Send a rate_card.upserted"),
        "{out}"
    );

    // Bulk resolve by filter: while the rate is missing, each case says why and the command fails.
    let resolve = [
        "exceptions",
        "resolve",
        "--kind",
        "missing_rate",
        "--owner",
        "finance",
        "--note",
        "rate card RC-EUR arrived",
    ];
    let (ok, out, err) = operate(&server, &admin, &resolve);
    assert!(!ok, "{out}");
    assert_eq!(out.matches("not resolved (422)").count(), 2, "{out}");
    assert!(err.contains("2 of 2 cases could not be resolved"), "{err}");
    api.post_events(&[card("rc-2", &["consultant", "architect"])])
        .await
        .unwrap();
    let (ok, out, err) = operate(&server, &admin, &resolve);
    assert!(ok, "{out}{err}");
    for id in &ids {
        assert!(
            out.contains(&format!("case {id}: resolved: resumed")),
            "{out}"
        );
    }
    assert!(out.contains("2 of 2 cases resolved"), "{out}");
    let (ok, _, err) = operate(&server, &admin, &["exceptions", "resolve"]);
    assert!(
        !ok && err.contains("give the case ids to resolve, or a filter"),
        "{err}"
    );

    // The timeline names the token and the note.
    let timeline = api.get_ok(&format!("/v1/exceptions/{}", ids[0])).await;
    assert_eq!(timeline["state"], "resolved", "{timeline}");
    assert!(
        timeline["resolution"]
            .as_str()
            .unwrap()
            .contains("rate card RC-EUR arrived"),
        "{timeline}"
    );

    let (ok, out, _) = operate(&server, &admin, &["quarantine", "list"]);
    assert!(
        ok && out.contains("bad-1") && out.contains("(1 shown)"),
        "{out}"
    );
    let (ok, out, _) = operate(&server, &admin, &["conflicts", "list", "--json"]);
    assert!(ok, "{out}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (ok, out, _) = operate(&server, &admin, &["dead-letters", "list"]);
    assert!(ok && out.contains("(0 shown)"), "{out}");
    let (ok, _, err) = operate(&server, "not-a-token", &["exceptions", "list"]);
    assert!(!ok && err.contains("401"), "{err}");
}

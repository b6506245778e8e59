//! The commands as a user runs them: `demo --exit --json`, `token create`, `events send`.

use serde_json::Value;
use std::io::Write;
use std::process::Command;
use support::{BIN, create_token, token_command, wait_listening};

mod support;

fn temp_dir(name: &str) -> std::path::PathBuf {
    support::temp_dir(&format!("cmd-{name}"))
}

#[test]
fn demo_prints_its_summary_as_one_json_object() {
    let dir = temp_dir("demo");
    let output = Command::new(BIN)
        .args([
            "demo",
            "--exit",
            "--json",
            "--workers",
            "30",
            "--entries",
            "3000",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value =
        serde_json::from_slice(&output.stdout).expect("standard output is one JSON object");
    for key in [
        "events",
        "duplicates_suppressed",
        "lines_posted",
        "reversals_posted",
        "exceptions_by_owner",
        "straight_through_rate",
        "approved_value",
        "posted_value",
        "held_value",
        "held_unvalued",
    ] {
        assert!(!summary[key].is_null(), "{key} is missing from {summary}");
    }
    // Fixed-fee time bills through milestones and capped projects hold what crosses a cap.
    assert!(summary["lines_posted"].as_u64().unwrap() > 1_500);
    // The month beyond billing.
    assert_eq!(summary["projects_provisioned"], 40);
    // Two projects per client, and the first client sent again under another spelling.
    assert_eq!(summary["customers"], 20);
    assert!(summary["milestone_lines"].as_u64().unwrap() > 0);
    assert_eq!(summary["invoices_by_status"]["disputed"], 1, "{summary}");
    assert!(summary["invoices_by_status"]["paid"].as_u64().unwrap() > 0);
    let margins = summary["forecast_margin_by_project"].as_object().unwrap();
    assert_eq!(margins.len(), 40);
    assert!(
        margins.values().any(|m| m.as_str().is_some_and(|pct| pct
            .parse::<rust_decimal::Decimal>()
            .is_ok_and(|p| p < rust_decimal::Decimal::from(20)))),
        "one project under its margin floor: {margins:?}"
    );
    assert!(summary["duplicates_suppressed"].as_u64().unwrap() > 0);
    assert!(summary["exceptions_by_owner"]["pmo"].as_u64().unwrap() > 0);
    assert_eq!(summary["conservation_holds"], true);
    let approved = summary["approved_value"].as_object().unwrap();
    assert_eq!(approved.keys().collect::<Vec<_>>(), ["EUR", "JPY", "USD"]);
    assert!(
        approved.values().all(Value::is_string),
        "money is given as decimal strings"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_create_refuses_an_unknown_role_by_name() {
    let dir = temp_dir("token");
    let output = token_command(&dir, None, "boss", None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'boss' is not a role"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn events_send_posts_a_file_and_names_the_lines_it_could_not_read() {
    let dir = temp_dir("send");
    let token = create_token(&dir, None, "integration", None);
    let server = support::serve(&dir).listen_by_env().spawn();
    let url = server.base.clone();
    wait_listening(server.port);

    let file = dir.join("events.jsonl");
    let mut out = std::fs::File::create(&file).unwrap();
    let hire = r#"{"id":"h1","source":"hris","type":"worker.hired","schema_version":1,"occurred_at":"2026-03-01T00:00:00Z","data":{"worker_id":"W-1","effective_date":"2026-01-01","legal_entity":"DE01","region":"emea","role":"consultant"}}"#;
    writeln!(out, "{hire}").unwrap();
    writeln!(out, "{{not json").unwrap();
    writeln!(out, "{hire}").unwrap();
    writeln!(
        out,
        r#"{{"id":"x","source":"psa","type":"time_entry.approved"}}"#
    )
    .unwrap();
    drop(out);
    let output = Command::new(BIN)
        .args(["events", "send"])
        .arg(&file)
        .args(["--url", &url, "--token", &token])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("accepted 1")
            && stdout.contains("duplicate 1")
            && stdout.contains("quarantined 1"),
        "{stdout}"
    );
    assert!(stderr.contains("line 2: not JSON"), "{stderr}");
    assert!(
        !output.status.success(),
        "a file with unreadable lines is not a success"
    );

    let wrong = Command::new(BIN)
        .args(["events", "send"])
        .arg(&file)
        .args(["--url", &url, "--token", "psh_wrong"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("401"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_configuration_file_is_checked_and_read_by_every_command() {
    let dir = temp_dir("config");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[owners]\nworker = \"hris\"\nworkers = \"psa\"\n\n[flows]\nmargin_floor_pct = -1\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3: [owners] 'workers' is not a domain",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:6: [flows] margin_floor_pct is -1",
            bad.display()
        )),
        "{stderr}"
    );

    // A file that is not valid stops any command that is given it, as does a variable that
    // is not set; the store is never opened.
    let unset = dir.join("unset.toml");
    std::fs::write(
        &unset,
        "[store]\nurl = \"${PSHUB_TEST_SURELY_UNSET_VAR}\"\n",
    )
    .unwrap();
    let data = dir.join("data");
    for file in [&bad, &unset] {
        let output = Command::new(BIN)
            .arg("--config")
            .arg(file)
            .args(["migrate", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(!data.exists(), "the store was not opened");
    }
    let output = Command::new(BIN)
        .env("PSHUB_CONFIG", &unset)
        .args(["migrate", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PSHUB_TEST_SURELY_UNSET_VAR is not set"),
        "{stderr}"
    );

    // `[store] data_dir` is read relative to the file.
    let good = dir.join("good.toml");
    std::fs::write(&good, "[store]\ndata_dir = \"from-file\"\n").unwrap();
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&good)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.join("from-file").join("pshub.sqlite").exists());
    let output = Command::new(BIN)
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("good"));
}

#[test]
fn mapping_test_prints_canonical_output_or_names_mapping_version_and_path() {
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../mappings/stripe/fixtures"
    );
    let output = Command::new(BIN)
        .args(["mapping", "test", "stripe/invoice.v1"])
        .arg(format!("{fixtures}/invoice.paid.json"))
        .arg(format!("{fixtures}/customer.created.json"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("\"type\": \"invoice.status_changed\""),
        "{printed}"
    );
    assert!(
        printed.contains("\"invoice_id\": \"INV-P-1001-2026-11\""),
        "{printed}"
    );
    assert!(
        printed.contains("not taken: stripe/invoice.v1"),
        "{printed}"
    );

    let dir = temp_dir("mapping-test");
    std::fs::create_dir_all(&dir).unwrap();
    let mut paid: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/invoice.paid.json")).unwrap(),
    )
    .unwrap();
    paid["data"]["object"]["metadata"] = serde_json::json!({ "pshub_invoice_id": 7 });
    let broken = dir.join("broken.json");
    std::fs::write(&broken, paid.to_string()).unwrap();
    let output = Command::new(BIN)
        .args(["mapping", "test", "stripe/invoice.v1"])
        .arg(&broken)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains(
            "error: data.invoice_id: mapping stripe/invoice v1 (`.data.object.metadata.pshub_invoice_id`)"
        ) && printed.contains("found 7"),
        "{printed}"
    );
}

#[test]
fn the_deployment_files_use_only_flags_and_variables_pshub_has() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let help = |args: &[&str]| {
        let output = Command::new(BIN).args(args).arg("--help").output().unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let (serve, sandbox) = (help(&["serve"]), help(&["sandbox"]));
    for file in [
        "pshub.service",
        "Containerfile",
        "compose.yaml",
        "k8s/pshub.yaml",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        for word in text.split(|c: char| c.is_whitespace() || "[]\",{}:=".contains(c)) {
            let flag = word.starts_with("--") && word.len() > 2 && !word.starts_with("---");
            if flag && !word.starts_with("--from") {
                let known = [
                    "--locked",
                    "--release",
                    "--no-install-recommends",
                    "--system",
                    "--home-dir",
                    "--create-home",
                    "--interval",
                    "--timeout",
                    "--build",
                    "--now",
                ];
                assert!(
                    serve.contains(word) || sandbox.contains(word) || known.contains(&word),
                    "{file}: {word} is not a flag of pshub serve or sandbox"
                );
            }
            if word.starts_with("PSHUB_") {
                let documented = serve.contains(word)
                    || sandbox.contains(word)
                    || ["PSHUB_LOG_FORMAT", "PSHUB_SANDBOX_URL"].contains(&word);
                assert!(documented, "{file}: {word} is not a variable pshub reads");
            }
        }
    }
}

#[test]
fn mapping_replay_checks_its_flags_before_calling_the_hub() {
    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .args([
                "mapping",
                "replay",
                "--token",
                "t",
                "--url",
                "http://127.0.0.1:9",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let err = run(&["--source", "psa", "--from", "0", "--to", "2"]);
    assert!(err.contains("--from"), "{err}");
    let err = run(&[
        "--source",
        "psa",
        "--from",
        "1",
        "--to",
        "2",
        "--since",
        "last week",
    ]);
    assert!(
        err.contains("'last week' is neither a date (YYYY-MM-DD) nor an RFC 3339 instant"),
        "{err}"
    );
    let err = run(&["--from", "1", "--to", "2"]);
    assert!(err.contains("--source"), "{err}");
    // Flags that read reach the hub: here, nobody listens.
    let err = run(&["--source", "psa", "--from", "1", "--to", "2", "--dry-run"]);
    assert!(
        err.contains("cannot reach the hub at http://127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn serve_checks_its_bus_flags_before_it_starts() {
    let dir = temp_dir("serve-bus-flags");
    for (args, expected) in [
        (
            vec!["--bus", "http://127.0.0.1:4222"],
            "'http://127.0.0.1:4222' is not a NATS URL",
        ),
        (
            vec!["--bus", "nats://127.0.0.1:4222", "--bus-ack-wait-s", "0"],
            "--bus-ack-wait-s",
        ),
        (
            vec!["--bus", "nats://127.0.0.1:4222", "--bus-namespace", "a.b"],
            "'a.b' must be 1 to 32 letters, digits or _",
        ),
    ] {
        let output = Command::new(BIN)
            .arg("serve")
            .args([
                "--data-dir",
                dir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(&args)
            .env_remove("PSHUB_BUS")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

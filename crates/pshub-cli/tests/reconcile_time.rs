//! `pshub reconcile time` as a user runs it: two exports in, `differences.csv` and a summary
//! out, known answers for every kind of difference.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use support::{BIN, TempDir};

mod support;

const HEADER: &str = "entry_id,worker_id,project_code,date,hours,amount,currency\n";
const OUT_HEADER: &str = "kind,entry_id,side,psa_hours,erp_hours,psa_amount,erp_amount,\
psa_currency,erp_currency,amount,currency,field,psa_value,erp_value";

fn reconcile(dir: &Path, psa: &str, erp: &str, extra: &[&str]) -> Output {
    let (psa_path, erp_path) = (dir.join("psa.csv"), dir.join("erp.csv"));
    std::fs::write(&psa_path, psa).unwrap();
    std::fs::write(&erp_path, erp).unwrap();
    Command::new(BIN)
        .current_dir(dir)
        .args(["reconcile", "time", "--psa", "psa.csv", "--erp", "erp.csv"])
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn summary(output: &Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).expect("standard output is one JSON object")
}

/// The rows of a differences.csv, without its header (which must be the contract's).
fn differences(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(OUT_HEADER));
    lines.map(str::to_string).collect()
}

#[test]
fn every_kind_of_difference_is_written_and_counted() {
    let dir = TempDir::new("reconcile-kinds");
    let psa = format!(
        "{HEADER}\
         E1,W1,P1,2026-03-02,7.5,750.00,EUR\n\
         E2,W1,P1,2026-03-02,8,800,EUR\n\
         E3,W2,P2,2026-03-03,4,400,USD\n\
         E4,W2,P2,2026-03-03,4,400,USD\n\
         E5,W3,P3,2026-03-04,2,200,EUR\n\
         E6,W3,P3,2026-03-04,2,200,EUR\n\
         E7,W4,P4,2026-03-05,1,100,GBP\n\
         E7,W4,P4,2026-03-05,1,110,GBP\n"
    );
    let erp = format!(
        "{HEADER}\
         E1,W1,P1,2026-03-02,7.50,750,EUR\n\
         E2,W1,P1,2026-03-02,8.25,800,EUR\n\
         E3,W2,P2,2026-03-03,4,390.5,USD\n\
         E4,W2,P2,2026-03-03,4,400,EUR\n\
         E5,W9,P3,2026-03-05,2,200,EUR\n\
         E7,W4,P4,2026-03-05,1,100,GBP\n\
         E8,W5,P5,2026-03-06,3,300,EUR\n\
         E8,W5,P5,2026-03-06,3,300,EUR\n"
    );
    // --out is created, parents included.
    let out = dir.join("out/nested");
    let output = reconcile(
        dir.path(),
        &psa,
        &erp,
        &["--out", out.to_str().unwrap(), "--json"],
    );
    let summary = summary(&output);
    assert_eq!(
        differences(&out.join("differences.csv")),
        [
            "hours_diff,E2,both,8,8.25,800,800,EUR,EUR,,,hours,8,8.25",
            "amount_diff,E3,both,4,4,400,390.5,USD,USD,9.5,USD,amount,400,390.5",
            "currency_diff,E4,both,4,4,400,400,USD,EUR,,,currency,USD,EUR",
            "attribute_diff,E5,both,2,2,200,200,EUR,EUR,,,worker_id,W3,W9",
            "attribute_diff,E5,both,2,2,200,200,EUR,EUR,,,date,2026-03-04,2026-03-05",
            "missing_in_erp,E6,psa,2,,200,,EUR,,200,EUR,,,",
            "duplicate,E7,psa,1,1,110,100,GBP,GBP,110,GBP,,,",
            "missing_in_psa,E8,erp,,3,,300,,EUR,300,EUR,,,",
            "duplicate,E8,erp,,3,,300,,EUR,300,EUR,,,",
        ]
    );
    assert_eq!(
        summary["counts"],
        json!({
            "missing_in_erp": 1, "missing_in_psa": 1, "hours_diff": 1, "amount_diff": 1,
            "currency_diff": 1, "attribute_diff": 2, "duplicate": 2,
        })
    );
    assert_eq!(
        summary["amounts"],
        json!({
            "missing_in_erp": {"EUR": "200"},
            "missing_in_psa": {"EUR": "300"},
            "amount_diff": {"USD": "9.5"},
            "duplicate": {"EUR": "300", "GBP": "110"},
        })
    );
    assert_eq!(summary["rows"], json!({"psa": 8, "erp": 8}));
    assert_eq!(summary["unreadable"], 0);
}

#[test]
fn no_difference_is_every_kind_at_zero() {
    let dir = TempDir::new("reconcile-none");
    let psa = format!("{HEADER}E1,W1,P1,2026-03-02,7.5,750.00,EUR\n");
    let erp = format!("{HEADER}E1,W1,P1,2026-03-02,7.50,750,EUR\n");
    let summary = summary(&reconcile(
        dir.path(),
        &psa,
        &erp,
        &["--out", "out", "--json"],
    ));
    let counts = summary["counts"].as_object().unwrap();
    assert_eq!(counts.len(), 7, "{summary}");
    assert!(counts.values().all(|n| n == 0), "{summary}");
    for kind in [
        "missing_in_erp",
        "missing_in_psa",
        "amount_diff",
        "duplicate",
    ] {
        assert_eq!(summary["amounts"][kind], json!({}), "{summary}");
    }
    assert!(differences(&dir.join("out/differences.csv")).is_empty());
}

#[test]
fn amounts_are_summed_per_currency_in_json() {
    let dir = TempDir::new("reconcile-amounts");
    let psa = format!(
        "{HEADER}A,W,P,D,1,10.50,EUR\nB,W,P,D,1,0.25,EUR\nC,W,P,D,1,1000,JPY\n\
         D,W,P,D,1,100.10,USD\nE,W,P,D,1,50,USD\n"
    );
    let erp = format!("{HEADER}D,W,P,D,1,100,USD\nE,W,P,D,1,50.05,USD\nF,W,P,D,1,-2.5,GBP\n");
    let summary = summary(&reconcile(
        dir.path(),
        &psa,
        &erp,
        &["--out", "o", "--json"],
    ));
    assert_eq!(
        summary["amounts"]["missing_in_erp"],
        json!({"EUR": "10.75", "JPY": "1000"})
    );
    assert_eq!(summary["amounts"]["missing_in_psa"], json!({"GBP": "-2.5"}));
    // 0.10 under-billed on D, 0.05 over-billed on E.
    assert_eq!(summary["amounts"]["amount_diff"], json!({"USD": "0.05"}));
    assert_eq!(summary["counts"]["amount_diff"], 2);
}

#[test]
fn columns_in_any_order_quotes_crlf_and_a_bom_are_read() {
    let dir = TempDir::new("reconcile-format");
    let psa = "currency,note,amount,entry_id,hours,date,project_code,worker_id\n\
               EUR,\"a, note\",750,\"E,1\",7.5,2026-03-02,\"P\n1\",\"W \"\"one\"\"\"\n\
               EUR,,10,E2,1,2026-03-02,P2,W2\n";
    let erp = "\u{feff}hours,entry_id,worker_id,project_code,currency,date,amount,extra\r\n\
               7.50,\"E,1\",\"W \"\"one\"\"\",\"P\n1\",EUR,2026-03-02,750.0,x\r\n\
               1,E2,W2,P2,EUR,2026-03-02,10.01,\"multi\r\nline\"\r\n";
    let summary = summary(&reconcile(dir.path(), psa, erp, &["--out", "o", "--json"]));
    assert_eq!(summary["unreadable"], 0, "{summary}");
    assert_eq!(
        differences(&dir.join("o/differences.csv")),
        ["amount_diff,E2,both,1,1,10,10.01,EUR,EUR,-0.01,EUR,amount,10,10.01"]
    );
}

#[test]
fn unreadable_rows_are_reported_with_file_and_line_and_skipped() {
    let dir = TempDir::new("reconcile-unreadable");
    let psa = format!(
        "{HEADER}E1,W,\"P\nsecond line\",D,1,1,EUR\nE2,W,P,D,1e2,1,EUR\nE3,W,P,D,1,1,EUR\n"
    );
    let erp = format!("{HEADER}E1,W,\"P\nsecond line\",D,1,1,EUR\nE3,W,P\n,W,P,D,1,1,EUR\n");
    let output = reconcile(dir.path(), &psa, &erp, &["--out", "o", "--json"]);
    let summary = summary(&output);
    let messages: Vec<String> = stderr(&output).lines().map(str::to_string).collect();
    assert_eq!(
        messages,
        [
            "psa.csv:4: hours '1e2' is not a decimal number",
            "erp.csv:4: 3 fields where the header has 7",
            "erp.csv:5: entry_id is empty",
        ]
    );
    assert_eq!(summary["unreadable"], 3);
    // E2 is skipped, not missing; E3 is missing from the ERP, whose E3 row was unreadable.
    assert_eq!(
        differences(&dir.join("o/differences.csv")),
        ["missing_in_erp,E3,psa,1,,1,,EUR,,1,EUR,,,"]
    );
}

#[test]
fn differences_exit_zero_with_a_short_summary() {
    let dir = TempDir::new("reconcile-human");
    let psa = format!("{HEADER}E1,W,P,D,1,10,EUR\nE2,W,P,D,1,10,EUR\n");
    let erp = format!("{HEADER}E2,W,P,D,2,10,EUR\n");
    let output = reconcile(dir.path(), &psa, &erp, &["--out", "o"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("2 PSA rows against 1 ERP rows: 2 differences"),
        "{text}"
    );
    assert!(
        text.contains("missing_in_erp          1  (EUR 10)"),
        "{text}"
    );
    assert!(text.contains("hours_diff              1"), "{text}");
}

#[test]
fn a_missing_column_or_file_is_an_error_that_names_it() {
    let dir = TempDir::new("reconcile-errors");
    let erp = format!("{HEADER}E1,W,P,D,1,10,EUR\n");
    let output = reconcile(
        dir.path(),
        "entry_id,worker_id,project_code,date,amount,currency\nE1,W,P,D,10,EUR\n",
        &erp,
        &["--out", "o"],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("psa.csv"), "{message}");
    assert!(message.contains("no column 'hours'"), "{message}");
    assert!(!dir.join("o/differences.csv").exists());

    // An --out that cannot be a folder.
    std::fs::write(dir.join("taken"), "a file").unwrap();
    let output = reconcile(dir.path(), &erp, &erp, &["--out", "taken"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot create taken"),
        "{}",
        stderr(&output)
    );

    let output = Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "reconcile",
            "time",
            "--psa",
            "absent.csv",
            "--erp",
            "erp.csv",
        ])
        .args(["--out", "o"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot read absent.csv"),
        "{}",
        stderr(&output)
    );

    // Flags are checked: --out is required.
    let output = Command::new(BIN)
        .current_dir(dir.path())
        .args(["reconcile", "time", "--psa", "psa.csv", "--erp", "erp.csv"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--out"), "{}", stderr(&output));
}

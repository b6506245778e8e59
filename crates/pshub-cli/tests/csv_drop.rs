//! The CSV drop connector as a deployment runs it: `pshub serve` with a configuration file
//! whose sources watch folders. A payroll bureau's register, dropped in its folder, is
//! mapped row by row (`payroll_bureau/actuals.v1`); a file half written when seen is not
//! read early (its size must hold still, or its `.ready` marker appear); a file whose
//! header lacks a column is moved to `failed/` with nothing taken; a row that does not map
//! is quarantined with its file and line, and its file goes to `failed/` with a report.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::*;

const COLUMNS: &str = "employee_id,period_end,gross_pay,employer_costs,total_cost,currency";

fn config(stable: &Path, marked: &Path) -> String {
    format!(
        r#"
[sources.bureau]
connector = "csv_drop"
dir = "{}"
columns = ["employee_id", "period_end", "total_cost", "currency"]
ready = "size_stable"
stable_ms = 300
poll_ms = 50
mapping = "payroll_bureau/actuals.v1"

[sources.bureau_marked]
connector = "csv_drop"
dir = "{}"
ready = "marker"
poll_ms = 50
mapping = "payroll_bureau/actuals.v1"

[owners]
payroll = "bureau"
"#,
        stable.display(),
        marked.display()
    )
}

/// Waits until the watcher of `source` has looked at its folder `more` times from now.
async fn after_scans(api: &Api, source: &str, more: f64) {
    let from = api.connector_count(source, "scan").await;
    eventually(
        "the watcher looks at its folder",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async {
            let now = api.connector_count(source, "scan").await;
            if now >= from + more {
                Ok(())
            } else {
                Err(format!("{now} scans"))
            }
        },
    )
    .await
}

async fn event_status(api: &Api, source: &str, id: &str) -> (u16, Value) {
    api.get(&format!("/v1/events/{source}/{id}")).await.unwrap()
}

async fn until_file(path: &Path) {
    eventually(
        "the file is moved",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || async {
            if path.is_file() {
                Ok(())
            } else {
                Err(format!("{} is not there", path.display()))
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_dropped_register_is_mapped_once_whole_and_bad_files_and_rows_are_set_aside() {
    let dir = TempDir::new("csv-drop");
    let (stable, marked) = (dir.join("bureau"), dir.join("marked"));
    std::fs::create_dir_all(&stable).unwrap();
    std::fs::create_dir_all(&marked).unwrap();
    let (mut server, api) = serve_with_config(&dir, &config(&stable, &marked));

    // Half a file: the header and half a row, no line end. The bureau is still writing.
    let register = stable.join("register-2026-03.csv");
    std::fs::write(&register, format!("{COLUMNS}\nW-1,2026-03-31,6200.00,13")).unwrap();
    after_scans(&api, "bureau", 3.0).await;
    assert!(
        register.is_file(),
        "a file still being written stays where it is"
    );
    let (status, _) = event_status(&api, "bureau", "bureau-W-1-2026-03").await;
    assert_eq!(status, 404, "nothing of a half-written file is read");
    // It keeps growing past the hold time of the first look: still not read.
    std::fs::write(
        &register,
        format!(
            "{COLUMNS}\nW-1,2026-03-31,6200.00,1302.00,7502.00,EUR\nW-2,2026-03-31,5100.00,1071"
        ),
    )
    .unwrap();
    after_scans(&api, "bureau", 3.0).await;
    let (status, _) = event_status(&api, "bureau", "bureau-W-1-2026-03").await;
    assert_eq!(status, 404, "a file that grew is not whole");
    // Whole: it holds still, and is read once.
    std::fs::write(
        &register,
        format!(
            "{COLUMNS}\nW-1,2026-03-31,6200.00,1302.00,7502.00,EUR\nW-2,2026-03-31,5100.00,1071.00,6171.00,EUR\n"
        ),
    )
    .unwrap();
    let done = stable.join("done/register-2026-03.csv");
    until_file(&done).await;
    assert!(!register.exists());
    for id in ["bureau-W-1-2026-03", "bureau-W-2-2026-03"] {
        let (status, body) = event_status(&api, "bureau", id).await;
        assert_eq!(status, 200, "{id}: {body}");
    }
    let report: Value = serde_json::from_slice(
        &std::fs::read(stable.join("done/register-2026-03.csv.report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["rows"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["rows"][1]["line"], 3, "{report}");
    assert_eq!(report["rows"][1]["status"], "accepted", "{report}");

    // A header without a declared column: nothing taken, the file set aside with why.
    let no_total = stable.join("no-total.csv");
    std::fs::write(
        &no_total,
        "employee_id,period_end,gross_pay,currency\nW-3,2026-03-31,100.00,EUR\n",
    )
    .unwrap();
    let failed = stable.join("failed/no-total.csv.report.json");
    until_file(&failed).await;
    let report: Value = serde_json::from_slice(&std::fs::read(&failed).unwrap()).unwrap();
    assert_eq!(
        report["error"],
        "no-total.csv:1: the header has no column 'total_cost' (it needs employee_id,period_end,total_cost,currency)",
        "{report}"
    );
    let (status, _) = event_status(&api, "bureau", "bureau-W-3-2026-03").await;
    assert_eq!(status, 404);

    // Marker mode: a whole-looking file waits for its marker. A row that does not map is
    // quarantined with file and line; the good row is taken; the file goes to failed/.
    let april = marked.join("april.csv");
    std::fs::write(
        &april,
        format!(
            "{COLUMNS}\nW-1,2026-04-30,6200.00,1302.00,7502.00,EUR\n\nW-2,2026-04-30,5100.00,1071.00,\"6,171.00\",EUR\n"
        ),
    )
    .unwrap();
    after_scans(&api, "bureau_marked", 3.0).await;
    assert!(april.is_file(), "no marker, not read");
    std::fs::write(marked.join("april.csv.ready"), "").unwrap();
    let failed = marked.join("failed/april.csv.report.json");
    until_file(&failed).await;
    assert!(
        !marked.join("april.csv.ready").exists(),
        "the marker is taken away"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&failed).unwrap()).unwrap();
    assert_eq!(report["refused_lines"], serde_json::json!([4]), "{report}");
    let (status, _) = event_status(&api, "bureau_marked", "bureau-W-1-2026-04").await;
    assert_eq!(status, 200, "the good row of a file with a bad one is kept");
    let quarantine = api.get_ok("/v1/quarantine").await;
    let row = quarantine["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["source"] == "bureau_marked")
        .cloned()
        .unwrap_or_else(|| panic!("{quarantine}"));
    assert_eq!(
        (
            row["file"].clone(),
            row["line"].clone(),
            row["kind"].clone()
        ),
        (
            serde_json::json!("april.csv"),
            serde_json::json!(4),
            serde_json::json!("mapped_record")
        ),
        "{row}"
    );
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .contains("'6,171.00' is not a decimal number"),
        "{row}"
    );
    server.kill();
}

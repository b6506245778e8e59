//! Opportunity to project: a closed deal becomes a PSA engagement, an ERP project with its
//! billing rules, a `project.provisioned` event and a CRM write-back, each exactly once.

use crate::helpers::*;
use pshub_connectors::sandbox::{Faults, System};
use serde_json::{Value, json};

/// Every record of one sandbox collection, read through the hub's inspection route.
async fn records(app: &TestApp, system: &str, collection: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/v1/sandbox/{system}/{collection}?limit=1000"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["next"], Value::Null, "one page holds them all");
    page["items"].as_array().cloned().unwrap()
}

fn state_of(project: &Value, step: &str) -> String {
    project["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .map(|s| s["state"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no step {step} in {project}"))
}

pub async fn a_deal_sent_again_and_under_new_ids_provisions_each_system_once(store: Backend) {
    let app = spawn_app(store).await;
    // The first PSA reply is lost after the write: the hub must find the engagement by its
    // key instead of creating a second one.
    app.sandbox.set_system_faults(
        System::Psa,
        Faults {
            lost_reply_per_million: 1_000_000,
            ..Faults::default()
        },
    );
    let deal = closed_won("P-7", "EUR", "RC-EUR", "2026-01-01", Some("2026-12-31"));
    app.send(json!([deal.clone()])).await;
    let engine = app.engine.clone();
    tokio::task::spawn_blocking(move || engine.deliver_due(10).unwrap())
        .await
        .unwrap();
    app.sandbox
        .set_system_faults(System::Psa, Faults::default());

    // The same event again, then the same deal under a new event id with other terms.
    let mut renamed = deal.clone();
    renamed["id"] = json!("won-P-7-again");
    renamed["data"]["contract"]["currency"] = json!("USD");
    renamed["data"]["project"]["name"] = json!("Another name");
    let results = app.send(json!([deal, renamed])).await;
    assert_eq!(statuses(&results), ["duplicate", "accepted"]);
    app.settle().await;

    let engagements = records(&app, "psa", "engagements").await;
    let projects = records(&app, "erp", "projects").await;
    let write_backs = records(&app, "crm", "opportunities").await;
    assert_eq!(engagements.len(), 1, "{engagements:?}");
    assert_eq!(projects.len(), 1, "{projects:?}");
    assert_eq!(write_backs.len(), 1, "{write_backs:?}");
    let psa_id = engagements[0]["psa_id"].clone();
    let erp_id = projects[0]["erp_id"].clone();
    assert_eq!(engagements[0]["project_code"], "P-7");
    assert_eq!(projects[0]["project_code"], "P-7");
    assert_eq!(projects[0]["psa_id"], psa_id, "the ERP got the PSA's id");
    assert_eq!(write_backs[0]["opportunity_id"], "OPP-P-7");
    assert_eq!(write_backs[0]["psa_id"], psa_id);
    assert_eq!(write_backs[0]["erp_id"], erp_id);

    // The id registry answers every system's id of the project, asked by any of them.
    for asked in [
        "P-7",
        "OPP-P-7",
        psa_id.as_str().unwrap(),
        erp_id.as_str().unwrap(),
    ] {
        let (status, xref) = app.get(&format!("/v1/xref/project/{asked}")).await;
        assert_eq!(status, 200, "{asked}: {xref}");
        assert_eq!(
            xref["ids"],
            json!({ "hub": "P-7", "crm": "OPP-P-7", "psa": psa_id, "erp": erp_id }),
            "{asked}: {xref}"
        );
        assert_eq!(xref["entries"].as_array().unwrap().len(), 3, "{xref}");
    }
    let (status, _) = app.get("/v1/xref/project/P-404").await;
    assert_eq!(status, 404);
    let (status, body) = app.get("/v1/xref/planet/P-7").await;
    assert_eq!(status, 400, "{body}");
    let (status, customer) = app.get("/v1/xref/customer/C-1").await;
    assert_eq!(status, 200, "{customer}");
    assert_eq!(customer["ids"]["crm"], "C-1", "{customer}");
    let hub_id = customer["id"].as_str().unwrap();
    assert!(hub_id.starts_with("CUS-"), "{customer}");
    let (_, again) = app.get(&format!("/v1/xref/customer/{hub_id}")).await;
    assert_eq!(again["ids"], customer["ids"]);

    let (_, stats) = app.get("/v1/sandbox/stats").await;
    for system in ["psa", "erp_projects", "erp_billing_rules", "crm"] {
        let created =
            stats[system]["creates"].as_u64().unwrap() - stats[system]["repeats"].as_u64().unwrap();
        assert_eq!(created, 1, "{system}: {stats}");
        assert_eq!(stats[system]["records"], 1, "{system}: {stats}");
    }

    let (status, project) = app.get("/v1/projects/P-7").await;
    assert_eq!(status, 200);
    assert_eq!(project["name"], "Audit", "terms change only by amendment");
    assert_eq!(project["billing_rules"]["currency"], "EUR");
    assert_eq!(
        project["ids"],
        json!({ "crm": "OPP-P-7", "psa": psa_id, "erp": erp_id })
    );
    assert_eq!(
        project["customer"],
        json!({ "hub_customer_id": "CUS-000001", "customer_id": "C-1", "legal_name": "Client GmbH", "tax_id": "DE123" })
    );
    assert_eq!(
        project["billing_rules"],
        json!({ "contract_id": "K-P-7", "billing_model": "time_and_materials", "currency": "EUR",
                "rate_card_id": "RC-EUR", "cap": null, "start": "2026-01-01", "end": "2026-12-31",
                "milestones": [], "amendments": [] })
    );
    assert_eq!(project["schedule_version"], 1);
    for field in ["legal_entity", "region", "service_line"] {
        assert!(project[field].is_string(), "{field}: {project}");
    }
    let steps: Vec<(&str, &str, &str)> = project["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap(),
                s["system"].as_str().unwrap(),
                s["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("psa", "psa", "done"),
            ("erp", "erp", "done"),
            ("billing_rules", "erp", "done"),
            ("publish", "hub", "done"),
            ("crm", "crm", "done"),
        ]
    );
    let psa_step = &project["steps"][0];
    assert_eq!(psa_step["attempts"], 2, "the lost reply, then the lookup");
    assert_eq!(psa_step["result"], psa_id);

    let (_, outbound) = app.get("/v1/outbound?type=project.provisioned").await;
    let published = outbound["items"].as_array().unwrap();
    assert_eq!(published.len(), 1, "{outbound}");
    assert_eq!(app.get("/v1/projects/P-unknown").await.0, 404);

    // The transaction shows each step with its system, operation, attempts and result.
    let correlation = project["correlation_id"].as_str().unwrap();
    let (status, transaction) = app.get(&format!("/v1/transactions/{correlation}")).await;
    assert_eq!(status, 200, "{transaction}");
    let flow_steps = transaction["flow_steps"].as_array().unwrap();
    assert_eq!(flow_steps.len(), 5, "{transaction}");
    assert_eq!(flow_steps[1]["operation"], "opportunity_to_project.erp");
    assert_eq!(flow_steps[1]["result"], erp_id);
}

pub async fn a_project_code_taken_by_another_deal_is_an_integration_case(store: Backend) {
    let app = spawn_app(store).await;
    let first = closed_won("P-9", "EUR", "RC-EUR", "2026-01-01", None);
    let mut second = closed_won("P-9", "EUR", "RC-EUR", "2026-01-01", None);
    second["id"] = json!("won-other");
    second["data"]["opportunity_id"] = json!("OPP-OTHER");
    app.send(json!([first])).await;
    let results = app.send(json!([second])).await;
    assert_eq!(results[0]["status"], "accepted", "{results:?}");
    app.settle().await;
    let cases = app.exceptions("owner=integration").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert!(
        cases[0]["reason"].as_str().unwrap().contains("OPP-P-9"),
        "the case names the deal that holds the code: {}",
        cases[0]
    );
    assert_eq!(records(&app, "psa", "engagements").await.len(), 1);
    let (_, project) = app.get("/v1/projects/P-9").await;
    assert_eq!(
        project["ids"]["crm"], "OPP-P-9",
        "the first deal keeps the code"
    );
}

pub async fn a_deal_whose_rate_card_is_unknown_still_provisions(store: Backend) {
    let app = spawn_app(store).await;
    app.send(json!([
        closed_won("P-3", "EUR", "RC-NOT-YET", "2026-01-01", None),
        hired("W-1", "2025-01-01", "emea", "consultant"),
        assignment("A-1", "W-1", "P-3", "approved"),
    ]))
    .await;
    app.settle().await;
    let (_, project) = app.get("/v1/projects/P-3").await;
    assert_eq!(state_of(&project, "crm"), "done", "{project}");
    let mut entry = time_entry("t1", "T1", "W-1", "2026-03-04", json!("2"));
    entry["data"]["project_code"] = json!("P-3");
    app.send(json!([entry])).await;
    app.settle().await;
    let cases = app.exceptions("kind=missing_rate").await;
    assert_eq!(
        cases.len(),
        1,
        "the entry is held by the missing-rate check: {cases:?}"
    );
}

pub async fn lines_wait_on_the_erp_step_and_show_blocked_when_it_dead_letters(store: Backend) {
    let app = spawn_app(store).await;
    app.erp_faults(failing_erp());
    app.with_firm().await;
    app.send(json!([time_entry(
        "b1",
        "B1",
        "W-1",
        "2026-03-04",
        json!("1")
    )]))
    .await;
    app.settle().await;
    let (_, project) = app.get("/v1/projects/P-1").await;
    assert_eq!(state_of(&project, "erp"), "failed", "{project}");
    let (_, event) = app.get("/v1/events/psa/b1").await;
    assert_eq!(event["status"], "blocked", "{event}");
    let (_, summary) = app.get("/v1/summary").await;
    assert_eq!(summary["lines_blocked"], 1, "{summary}");
    assert_eq!(summary["conservation_holds"], true);
    // The project's ERP step dead-lettered (as did the hires' costing updates to the ERP).
    let cases: Vec<_> = app
        .exceptions("kind=delivery_failed")
        .await
        .into_iter()
        .filter(|c| c["flow"] == "opportunity_to_project")
        .collect();
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["owner"], "integration");

    // Nothing is rewritten while it waits: the line's version stays put across rounds.
    let before = app.lines_of("B1").await;
    let engine = app.engine.clone();
    tokio::task::spawn_blocking(move || engine.deliver_due(100).unwrap())
        .await
        .unwrap();
    assert_eq!(app.lines_of("B1").await, before);

    // Resolving the case replays the step; the project provisions and the line posts once.
    app.erp_faults(Faults::default());
    let id = cases[0]["id"].as_i64().unwrap();
    let (status, body) = app
        .post_json(
            &format!("/v1/exceptions/{id}/resolve"),
            json!({ "note": "ERP is back" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.settle().await;
    assert_eq!(app.lines_of("B1").await[0]["status"], "posted");
    assert_eq!(records(&app, "erp", "lines").await.len(), 1);
    let (_, event) = app.get("/v1/events/psa/b1").await;
    assert_eq!(event["status"], "applied");
}

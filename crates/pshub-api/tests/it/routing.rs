//! ERP routing for a cut-over in waves, on two sandbox ERPs (`erp` and `erp2`): work goes to
//! the ERP its project's route names, a shadow route posts a copy, a reload moves new work
//! only, and a reversal follows the line it cancels.

use crate::helpers::*;
use pshub_connectors::sandbox::{Sandbox, System};
use pshub_engine::config::Route;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// (project, kind) → lines the sandbox ERP holds.
fn erp_lines(sandbox: &Sandbox) -> BTreeMap<(String, String), usize> {
    let page = sandbox
        .list(System::Erp, "lines", 0, 10_000)
        .unwrap()
        .unwrap();
    let mut counts = BTreeMap::new();
    for item in page["items"].as_array().unwrap() {
        let key = (
            item["project_code"].as_str().unwrap().to_string(),
            item["kind"].as_str().unwrap().to_string(),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

fn counts(pairs: &[(&str, &str, usize)]) -> BTreeMap<(String, String), usize> {
    pairs
        .iter()
        .map(|(p, k, n)| ((p.to_string(), k.to_string()), *n))
        .collect()
}

fn route(name: &str, entity: &str, erp: &str, shadow: Option<&str>) -> Route {
    Route {
        name: name.into(),
        legal_entities: vec![entity.into()],
        erp: erp.into(),
        shadow: shadow.map(str::to_string),
        ..Route::default()
    }
}

/// FR01 cut over to erp2; DE01 on erp with erp2 as its shadow.
fn waves() -> Vec<Route> {
    vec![
        route("fr-wave", "FR01", "erp2", None),
        route("de-shadow", "DE01", "erp", Some("erp2")),
    ]
}

/// The test configuration with `routes`, taken as a reload would.
async fn reload(
    app: &TestApp,
    routes: Vec<Route>,
) -> Result<pshub_engine::routing::Reloaded, pshub_engine::ActionError> {
    let mut config = test_config();
    config.routes = routes;
    let engine = app.engine.clone();
    tokio::task::spawn_blocking(move || engine.reload(config))
        .await
        .unwrap()
}

/// A won deal for `project` of legal entity `entity` on the firm's rate card.
fn won_for(project: &str, entity: &str) -> Value {
    let mut won = closed_won(project, "EUR", "RC-EUR", "2026-01-01", None);
    won["data"]["project"]["legal_entity"] = json!(entity);
    won["data"]["customer"]["customer_id"] = json!(format!("C-{project}"));
    won["data"]["customer"]["tax_id"] = json!(format!("TX-{project}"));
    won
}

fn entries(project: &str, from: usize, n: usize) -> Vec<Value> {
    (from..from + n)
        .map(|i| {
            let mut entry = time_entry(
                &format!("ok-{project}-{i}"),
                &format!("{project}-{i}"),
                "W-1",
                &format!("2026-03-{:02}", i + 1),
                json!("2"),
            );
            entry["data"]["project_code"] = json!(project);
            entry
        })
        .collect()
}

fn rejection(project: &str, i: usize) -> Value {
    let mut event = entries(project, i, 1).remove(0);
    event["id"] = json!(format!("no-{project}-{i}"));
    event["type"] = json!("time_entry.rejected");
    event
}

pub async fn work_goes_to_the_erp_its_route_names_and_a_shadow_route_posts_a_copy(
    backend: Backend,
) {
    let mut config = test_config();
    config.routes = waves();
    let app = spawn_app_with_two_erps(backend, config).await;
    app.with_firm().await;
    let mut events = vec![
        won_for("P-FR", "FR01"),
        assignment("A-FR", "W-1", "P-FR", "approved"),
    ];
    events.extend(entries("P-1", 0, 3));
    events.extend(entries("P-FR", 0, 2));
    let results = app.send(Value::Array(events)).await;
    assert!(
        results.iter().all(|r| r["status"] == "accepted"),
        "{results:?}"
    );
    app.settle().await;
    let erp2 = app.erp2.as_ref().unwrap();
    assert_eq!(erp_lines(&app.sandbox), counts(&[("P-1", "time", 3)]));
    assert_eq!(
        erp_lines(erp2),
        counts(&[("P-1", "time", 3), ("P-FR", "time", 2)]),
        "FR01 in erp2 only, DE01's copies beside it"
    );
    let summary = app.get("/v1/summary").await.1;
    assert_eq!(
        summary["lines_posted"], 5,
        "copies are not counted: {summary}"
    );

    // A rejection reverses the line in both: the primary and its shadow.
    app.send(json!([rejection("P-1", 0)])).await;
    app.settle().await;
    assert_eq!(
        erp_lines(&app.sandbox),
        counts(&[("P-1", "time", 3), ("P-1", "reversal", 1)])
    );
    assert_eq!(
        erp_lines(erp2),
        counts(&[
            ("P-1", "time", 3),
            ("P-1", "reversal", 1),
            ("P-FR", "time", 2)
        ])
    );

    // The wave ends and its routes go: a line copied under them is still cancelled in both.
    reload(&app, Vec::new()).await.unwrap();
    app.send(json!([rejection("P-1", 1)])).await;
    app.settle().await;
    assert_eq!(
        erp_lines(erp2),
        counts(&[
            ("P-1", "time", 3),
            ("P-1", "reversal", 2),
            ("P-FR", "time", 2)
        ])
    );
    reload(&app, waves()).await.unwrap();

    let (status, report) = app.get("/v1/reports/shadow?route=de-shadow").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ready"], true, "{report}");
    assert_eq!(report["primary_lines"], 5);
    assert_eq!(
        report["shadow_lines"], 5,
        "only the route's work is compared"
    );
    // The leakage report reads every ERP the work is routed to, and leaves the copies out.
    let (status, leakage) = app.get("/v1/reports/leakage").await;
    assert_eq!(status, 200, "{leakage}");
    assert_eq!(leakage["items"], json!([]), "{leakage}");
    let (status, body) = app.get("/v1/reports/shadow?route=fr-wave").await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = app.get("/v1/reports/shadow?route=nope").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.get("/v1/reports/shadow").await;
    assert_eq!(status, 400, "{body}");
}

pub async fn a_reload_moves_new_work_only_and_a_reversal_follows_its_line(backend: Backend) {
    let app = spawn_app_with_two_erps(backend, test_config()).await;
    app.with_firm().await;
    app.send(Value::Array(entries("P-1", 0, 2))).await;
    app.settle().await;
    let erp2 = app.erp2.as_ref().unwrap();
    assert_eq!(erp_lines(&app.sandbox), counts(&[("P-1", "time", 2)]));

    // The wave: DE01 moves to erp2 while a line is on its way to erp.
    app.erp_faults(failing_erp());
    app.send(Value::Array(entries("P-1", 2, 1))).await;
    let reloaded = reload(&app, vec![route("de-wave", "DE01", "erp2", None)])
        .await
        .unwrap();
    assert_eq!(reloaded.routes, vec!["de-wave".to_string()]);
    app.send(Value::Array(entries("P-1", 3, 2))).await;
    app.send(json!([rejection("P-1", 0)])).await;
    app.erp_faults(Default::default());
    app.settle().await;
    assert_eq!(
        erp_lines(&app.sandbox),
        counts(&[("P-1", "time", 3), ("P-1", "reversal", 1)]),
        "the line in flight stayed with erp, and the reversal went where its line is"
    );
    assert_eq!(erp_lines(erp2), counts(&[("P-1", "time", 2)]));
    let projects = erp2.list(System::Erp, "projects", 0, 100).unwrap().unwrap();
    assert_eq!(
        projects["items"].as_array().unwrap().len(),
        1,
        "the project is provisioned in erp2 before its first line there: {projects}"
    );

    // A route to an ERP this hub does not deliver to is refused, and changes nothing.
    let refused = reload(&app, vec![route("bad", "DE01", "erp3", None)])
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("erp3"), "{refused}");
    assert_eq!(app.engine.current_config().routes[0].name, "de-wave");
    // Without a configuration file there is nothing to reload.
    let (status, body) = app.post("/v1/config/reload").await;
    assert_eq!(status, 409, "{body}");
}

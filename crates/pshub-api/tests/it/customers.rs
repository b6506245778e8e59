//! Customers: one hub customer per company across sources and spellings.

use crate::helpers::*;
use serde_json::{Value, json};

fn customer(source: &str, event_id: &str, id: &str, name: &str, tax_id: &str) -> Value {
    event(
        source,
        event_id,
        "customer.upserted",
        json!({ "customer_id": id, "legal_name": name, "tax_id": tax_id, "country": "DE", "currency": "EUR" }),
    )
}

/// A closed-won for `project` whose customer is `id` named `name` with `tax_id`.
fn won_for(project: &str, id: &str, name: &str, tax_id: &str) -> Value {
    let mut won = closed_won(project, "EUR", "RC-EUR", "2026-01-01", None);
    won["data"]["customer"] = json!({ "customer_id": id, "legal_name": name, "tax_id": tax_id, "country": "DE", "currency": "EUR" });
    won
}

pub async fn a_customer_resent_under_another_spelling_with_the_same_tax_id_is_one_customer(
    store: Backend,
) {
    let app = spawn_app(store).await;
    let results = app
        .send(json!([
            rate_card(
                "RC-EUR",
                "EUR",
                &[("consultant", "emea", "150.00", "2026-01-01", None)]
            ),
            customer("crm", "c-1", "C-1", "Müller Consulting GmbH", "DE123456789"),
            won_for("P-1", "C-1", "Müller Consulting GmbH", "DE123456789"),
            won_for(
                "P-2",
                "C-9",
                "MUELLER CONSULTING G.m.b.H.",
                "de 123.456.789"
            ),
        ]))
        .await;
    assert_eq!(statuses(&results), ["accepted"; 4]);
    app.settle().await;
    let (status, first) = app.get("/v1/customers/C-1").await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = app.get("/v1/customers/C-9").await;
    assert_eq!(first["hub_customer_id"], second["hub_customer_id"]);
    let hub_id = first["hub_customer_id"].as_str().unwrap().to_string();
    let (_, by_hub_id) = app.get(&format!("/v1/customers/{hub_id}")).await;
    // The master is the owner's latest record; every source id is an alias.
    assert_eq!(by_hub_id["legal_name"], "MUELLER CONSULTING G.m.b.H.");
    let ids: Vec<&str> = by_hub_id["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["C-1", "C-9"]);
    assert_eq!(by_hub_id["projects"], json!(["P-1", "P-2"]));
    for project in ["P-1", "P-2"] {
        let (_, body) = app.get(&format!("/v1/projects/{project}")).await;
        assert_eq!(body["customer"]["hub_customer_id"], json!(hub_id), "{body}");
    }
    let (_, list) = app.get("/v1/customers").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert!(
        app.exceptions("kind=possible_duplicate_customer")
            .await
            .is_empty()
    );

    // Known to the hub after a restart too, under the same hub id.
    let mut app = app;
    app.restart().await;
    let (_, again) = app.get("/v1/customers/C-9").await;
    assert_eq!(again["hub_customer_id"], json!(hub_id));
}

pub async fn another_systems_customer_is_an_alias_that_never_overwrites_the_master(store: Backend) {
    let app = spawn_app(store).await;
    app.send(json!([
        customer("crm", "c-1", "C-1", "Acme GmbH", "DE1"),
        customer("erp", "e-1", "ERP-77", "ACME Deutschland", "DE-1"),
    ]))
    .await;
    let (_, found) = app.get("/v1/customers/ERP-77").await;
    assert_eq!(found["legal_name"], "Acme GmbH");
    assert_eq!(found["aliases"][1]["source"], "erp");
    assert_eq!(found["aliases"][1]["legal_name"], "ACME Deutschland");
    assert!(
        app.exceptions("").await.is_empty(),
        "another system's customer opens nothing"
    );
}

pub async fn the_same_name_with_another_tax_id_opens_a_possible_duplicate_case(store: Backend) {
    let app = spawn_app(store).await;
    app.send(json!([customer("crm", "c-1", "C-1", "Acme GmbH", "DE1")]))
        .await;
    let results = app
        .send(json!([customer(
            "crm",
            "c-2",
            "C-2",
            "ACME G.m.b.H.",
            "DE2"
        )]))
        .await;
    let cases = app.exceptions("kind=possible_duplicate_customer").await;
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0]["owner"], "integration");
    assert_eq!(cases[0]["business_key"], "C-2");
    assert_eq!(cases[0]["correlation_id"], results[0]["correlation_id"]);
    let (_, one) = app.get("/v1/customers/C-1").await;
    let (_, two) = app.get("/v1/customers/C-2").await;
    assert_ne!(one["hub_customer_id"], two["hub_customer_id"]);
}

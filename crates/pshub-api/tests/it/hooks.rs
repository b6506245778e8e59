//! Inbound webhooks (`POST /v1/hooks/{source}`): Stripe's signed `invoice.paid`, in its
//! published shape, mapped by `stripe/invoice.v1`, reaches the hub's invoice and the CRM;
//! a request that does not verify is refused with 401 and kept, never applied; a record
//! that fails its mapping is quarantined naming mapping, version, path and value, and a
//! corrected replay applies once.

use crate::helpers::*;
use hmac::{Hmac, Mac};
use pshub_engine::hooks::{Inbound, Secret, Signature};
use pshub_model::Domain;
use serde_json::{Value, json};
use sha2::Sha256;

/// Request headers by name.
type Headers<'a> = Vec<(&'a str, String)>;

const STRIPE_SECRET: &str = "whsec_test_5f2b1c";
const PSA_SECRET: &str = "psa-secret";

fn hex_hmac(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `Stripe-Signature` for `body` made at `t`.
fn stripe_signature(body: &str, t: i64) -> String {
    let v1 = hex_hmac(
        STRIPE_SECRET,
        &[t.to_string().as_bytes(), b".", body.as_bytes()],
    );
    format!("t={t},v1={v1}")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Stripe's event for a paid invoice (its published Event and Invoice objects), for the
/// hub's invoice `invoice` (`None`: the metadata pshub writes is missing).
fn invoice_paid(event_id: &str, invoice: Option<&str>) -> Value {
    let metadata = match invoice {
        Some(id) => json!({ "pshub_invoice_id": id }),
        None => json!({}),
    };
    json!({
        "id": event_id, "object": "event", "api_version": "2024-06-20", "created": now(),
        "data": { "object": {
            "id": "in_1QpTn22eZvKYlo2CbWvXk3Qj", "object": "invoice",
            "amount_due": 45000, "amount_paid": 45000, "amount_remaining": 0, "currency": "eur",
            "customer": "cus_R9XqPzK2mLw0aB", "metadata": metadata, "paid": true, "status": "paid",
            "status_transitions": { "finalized_at": now() - 3600, "paid_at": now() - 60,
                                    "voided_at": null, "marked_uncollectible_at": null }
        } },
        "livemode": false, "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": "invoice.paid"
    })
}

fn config() -> pshub_engine::Config {
    let mut config = test_config();
    config.sources.push("stripe".into());
    // Stripe says whether an invoice is paid.
    config.owners.insert(Domain::InvoiceStatus, "stripe".into());
    config.inbound.insert(
        "stripe".into(),
        Inbound {
            signature: Signature::Stripe,
            secret: Secret::new(STRIPE_SECRET.into()),
            tolerance_s: 300,
            mappings: vec!["stripe/invoice.v1".into()],
            wakes: None,
            wake_on: Vec::new(),
        },
    );
    // The PSA may also push its canonical events to a webhook, signed.
    config.inbound.insert(
        "psa".into(),
        Inbound {
            signature: Signature::HmacSha256,
            secret: Secret::new(PSA_SECRET.into()),
            tolerance_s: 300,
            mappings: Vec::new(),
            wakes: None,
            wake_on: Vec::new(),
        },
    );
    config
}

/// A hub with the firm and one approved entry posted: invoice `INV-P-1-2026-03` exists.
async fn with_invoiced_work(store: Backend) -> TestApp {
    with_invoiced_work_on(store, config()).await
}

/// The same, on `config`.
async fn with_invoiced_work_on(store: Backend, config: pshub_engine::Config) -> TestApp {
    let app = spawn_app_with(store, config).await;
    app.with_firm().await;
    app.send(json!([time_entry(
        "t1",
        "T1",
        "W-1",
        "2026-03-04",
        json!("3")
    )]))
    .await;
    app.settle().await;
    app
}

impl TestApp {
    async fn hook(&self, source: &str, body: &str, headers: &[(&str, String)]) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/v1/hooks/{source}", self.address))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stripe(&self, event: &Value) -> (u16, Value) {
        let body = event.to_string();
        let signature = stripe_signature(&body, now());
        self.hook("stripe", &body, &[("stripe-signature", signature)])
            .await
    }

    async fn quarantined(&self, kind: &str) -> Vec<Value> {
        let (_, listed) = self.get("/v1/quarantine").await;
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| q["kind"] == kind)
            .cloned()
            .collect()
    }
}

pub async fn a_signed_stripe_invoice_paid_reaches_the_invoice_and_the_crm(store: Backend) {
    let app = with_invoiced_work(store).await;
    let invoice = "INV-P-1-2026-03";

    let paid = invoice_paid("evt_1QpTnV2eZvKYlo2C0cEx6JxS", Some(invoice));
    // As Stripe writes it: indented, on several lines.
    let text = serde_json::to_string_pretty(&paid).unwrap();
    let signature = stripe_signature(&text, now());
    let (status, body) = app
        .hook("stripe", &text, &[("stripe-signature", signature)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "accepted", "{body}");
    // Stripe sends an event again until it hears 2xx: the same event is a duplicate.
    let (_, again) = app.stripe(&paid).await;
    assert_eq!(again["results"][0]["status"], "duplicate", "{again}");
    app.settle().await;
    let (_, seen) = app.get(&format!("/v1/invoices/{invoice}")).await;
    assert_eq!(
        (seen["status"].clone(), seen["crm_status"].clone()),
        (json!("paid"), json!("paid")),
        "{seen}"
    );

    // What the inbox keeps: the canonical event, and the payload exactly as it arrived.
    let (_, event) = app
        .get("/v1/events/stripe/evt_1QpTnV2eZvKYlo2C0cEx6JxS")
        .await;
    assert_eq!(event["status"], "applied", "{event}");
    let stored = app
        .engine
        .store()
        .reader()
        .unwrap()
        .event_by_key("stripe", "evt_1QpTnV2eZvKYlo2C0cEx6JxS")
        .unwrap()
        .unwrap();
    let raw: Value = serde_json::from_str(&stored.raw).unwrap();
    assert!(
        stored.raw.contains(&format!("\"payload\":{text}")),
        "the payload is kept byte for byte: {}",
        stored.raw
    );
    assert_eq!(raw["origin"]["payload"], paid);
    assert_eq!(raw["origin"]["mapping"], "stripe/invoice.v1");
    assert!(
        raw["origin"]["headers"]["stripe-signature"]
            .as_str()
            .unwrap()
            .starts_with("t=")
    );
    assert_eq!(raw["data"]["invoice_id"], invoice);

    // Another kind of Stripe event is not for this mapping: answered, not applied.
    let mut other = paid.clone();
    other["id"] = json!("evt_customer");
    other["type"] = json!("customer.created");
    let (status, body) = app.stripe(&other).await;
    assert_eq!(
        (status, body["results"][0]["status"].clone()),
        (200, json!("ignored"))
    );
}

pub async fn a_request_that_does_not_verify_is_refused_with_401_and_kept_never_applied(
    store: Backend,
) {
    let app = spawn_app_with(store, config()).await;
    app.with_firm().await;
    let paid = invoice_paid("evt_forged", Some("INV-P-1-2026-03")).to_string();
    let forged = stripe_signature(&paid.replace("45000", "1"), now());
    let stale = stripe_signature(&paid, now() - 3_600);
    let cases: [(&str, Headers, &str); 4] = [
        (
            "stripe",
            vec![("stripe-signature", forged)],
            "no v1 signature",
        ),
        (
            "stripe",
            vec![("stripe-signature", stale)],
            "past the tolerance of 300 s",
        ),
        ("stripe", vec![], "has no stripe-signature header"),
        (
            "psa",
            vec![(
                "x-signature",
                format!("sha256={}", hex_hmac("wrong", &[paid.as_bytes()])),
            )],
            "does not match",
        ),
    ];
    for (source, headers, why) in &cases {
        let (status, body) = app.hook(source, &paid, headers).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "bad_signature");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{message}");
        assert_eq!(body["error"]["kept"]["status"], "quarantined", "{body}");
    }
    // Anyone can send a request: of one that does not verify, 64 KiB are kept; a body over
    // 1 MiB is refused before anything is read.
    let large = format!("{{\"padding\": \"{}\"}}", "x".repeat(100_000));
    let (status, body) = app.hook("stripe", &large, &[]).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = app.hook("stripe", &"x".repeat(2 * 1024 * 1024), &[]).await;
    assert_eq!(status, 413);
    let kept = app.quarantined("unverified_payload").await;
    assert_eq!(kept.len(), cases.len() + 1);
    let cut = kept.iter().find(|q| {
        q["reason"]
            .as_str()
            .unwrap()
            .contains("the first 65536 of its 100015 bytes are kept")
    });
    assert!(cut.is_some(), "{kept:?}");
    // Kept as it came, and never applied: a replay is refused.
    let first = &kept[0];
    assert_eq!(first["event"]["payload"]["id"], "evt_forged", "{first}");
    assert_eq!(first["field"], "signature");
    let id = first["id"].as_i64().unwrap();
    let replay = app
        .post_raw(&format!("/v1/quarantine/{id}/replay"), "", Some(&app.token))
        .await;
    assert_eq!(replay.status(), 409);
    let (_, event) = app.get("/v1/events/stripe/evt_forged").await;
    assert_ne!(event["status"], "applied", "{event}");

    // The generic scheme: a canonical event signed over its raw body.
    let event = time_entry("psa-hook-1", "T9", "W-1", "2026-03-05", json!("1")).to_string();
    let signature = format!("sha256={}", hex_hmac(PSA_SECRET, &[event.as_bytes()]));
    let (status, body) = app.hook("psa", &event, &[("x-signature", signature)]).await;
    assert_eq!(
        (status, body["results"][0]["status"].clone()),
        (200, json!("accepted")),
        "{body}"
    );
    let (status, _) = app.hook("nobody", &event, &[]).await;
    assert_eq!(status, 404);
}

pub async fn a_record_that_fails_its_mapping_is_quarantined_with_mapping_version_and_path(
    store: Backend,
) {
    let app = with_invoiced_work(store).await;

    // A payment time that is not a time.
    let mut unreadable = invoice_paid("evt_bad_paid_at", Some("INV-P-1-2026-03"));
    unreadable["data"]["object"]["status_transitions"]["paid_at"] = json!("soon");
    let (status, body) = app.stripe(&unreadable).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "quarantined");
    let reason = body["results"][0]["reason"].as_str().unwrap();
    for part in [
        "data.at",
        "mapping stripe/invoice v1",
        "`.data.object.status_transitions",
        "\"soon\"",
    ] {
        assert!(reason.contains(part), "{part} in {reason}");
    }
    let kept = app.quarantined("mapped_record").await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["event"]["payload"], unreadable);
    let id = kept[0]["id"].as_i64().unwrap();

    // Replayed as it is, it fails the same way; with the payload corrected, it applies once.
    let replay = |body: String| {
        let app = &app;
        async move {
            app.post_raw(
                &format!("/v1/quarantine/{id}/replay"),
                body,
                Some(&app.token),
            )
            .await
        }
    };
    assert_eq!(replay(String::new()).await.status(), 422);
    let corrected = invoice_paid("evt_bad_paid_at", Some("INV-P-1-2026-03"));
    let response = replay(corrected.to_string()).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["result"]["status"], "accepted", "{answer}");
    assert_eq!(replay(corrected.to_string()).await.status(), 409);
    app.settle().await;
    let (_, seen) = app.get("/v1/invoices/INV-P-1-2026-03").await;
    assert_eq!(seen["status"], "paid", "{seen}");
}

/// A Kantata-shaped record of the PSA, in the envelope its webhook sends.
fn kantata_time(id: &str, event: &str, entry: &str, minutes: u32) -> String {
    json!({
        "id": id, "event": event, "created_at": "2026-03-04T18:00:00Z",
        "object": { "id": entry, "date_performed": "2026-03-04", "time_in_minutes": minutes,
                    "billable": true, "user_id": "W-1", "workspace_id": "P-1" }
    })
    .to_string()
}

pub async fn a_psa_in_kantatas_shape_bills_as_the_canonical_path_does(store: Backend) {
    let mut config = config();
    config.inbound.get_mut("psa").unwrap().mappings = [
        "kantata/time_entry.v1",
        "kantata/time_entry_rejected.v1",
        "kantata/expense.v1",
    ]
    .map(String::from)
    .to_vec();
    let app = spawn_app_with(store, config).await;
    app.with_firm().await;
    let signed = |body: &str| {
        vec![(
            "x-signature",
            format!("sha256={}", hex_hmac(PSA_SECRET, &[body.as_bytes()])),
        )]
    };
    // The same work, once through the webhook in Kantata's shape and once canonical.
    let approved = kantata_time("k-1", "time_entry.approved", "K1", 150);
    let (status, body) = app.hook("psa", &approved, &signed(&approved)).await;
    assert_eq!(
        (status, body["results"][0]["status"].clone()),
        (200, json!("accepted")),
        "{body}"
    );
    app.send(json!([time_entry(
        "c-1",
        "C1",
        "W-1",
        "2026-03-04",
        json!("2.5")
    )]))
    .await;
    app.settle().await;
    let (hooked, plain) = (&app.lines_of("K1").await[0], &app.lines_of("C1").await[0]);
    for field in [
        "quantity",
        "rate",
        "amount",
        "currency",
        "project_code",
        "worker_id",
        "date",
    ] {
        assert_eq!(
            hooked[field], plain[field],
            "{field}: {hooked} against {plain}"
        );
    }
    // Another record type of the same hook goes to its own mapping: the rejection reverses.
    let rejected = kantata_time("k-2", "time_entry.rejected", "K1", 150);
    let (_, body) = app.hook("psa", &rejected, &signed(&rejected)).await;
    assert_eq!(body["results"][0]["status"], "accepted", "{body}");
    app.settle().await;
    assert_eq!(
        app.lines_of("K1").await.len(),
        2,
        "the line and its reversal"
    );
    // A record type none of the hook's mappings takes is answered, not applied.
    let other = kantata_time("k-3", "time_entry.submitted", "K2", 60);
    let (status, body) = app.hook("psa", &other, &signed(&other)).await;
    assert_eq!(
        (status, body["results"][0]["status"].clone()),
        (200, json!("ignored"))
    );
    assert!(
        body["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("kantata/time_entry.v1, kantata/time_entry_rejected.v1")
    );
    // Minutes that are no exact decimal of hours are refused by the mapping, not rounded.
    let odd = kantata_time("k-4", "time_entry.approved", "K3", 100);
    let (_, body) = app.hook("psa", &odd, &signed(&odd)).await;
    assert_eq!(body["results"][0]["status"], "quarantined", "{body}");
    assert_eq!(
        body["results"][0]["id"], "k-4",
        "quarantined under the id the mapping gives"
    );
    assert!(
        body["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not divide exactly by 60; found 100"),
        "{body}"
    );
}

/// A record of a PSA in Kantata's shape, in the envelope its webhook sends.
fn kantata(id: &str, event: &str, created_at: &str, object: Value) -> String {
    json!({ "id": id, "event": event, "created_at": created_at, "object": object }).to_string()
}

/// Kantata's resource R-1 of W-1 on P-2 (a request or an allocation), written at `updated`.
fn kantata_resource(updated: &str, extra: Value) -> Value {
    let mut object = json!({
        "id": "RR-1", "resource_id": "R-1", "user_id": "W-1", "workspace_id": "P-2",
        "role_name": "consultant", "start_date": "2026-03-01", "end_date": "2026-04-30",
        "minutes": 19200, "updated_at": updated
    });
    for (key, value) in extra.as_object().unwrap() {
        object[key] = value.clone();
    }
    object
}

pub async fn a_psa_in_kantatas_shape_staffs_and_prices_through_its_bookings_and_rate_cards(
    store: Backend,
) {
    let mut config = config();
    config.inbound.get_mut("psa").unwrap().mappings = [
        "kantata/rate_card.v1",
        "kantata/resource_request.v1",
        "kantata/allocation.v1",
        "kantata/time_entry.v1",
    ]
    .map(String::from)
    .to_vec();
    let app = spawn_app_with(store, config).await;
    app.with_firm().await;
    let hook = async |body: String| {
        let signature = format!("sha256={}", hex_hmac(PSA_SECRET, &[body.as_bytes()]));
        let (status, answer) = app.hook("psa", &body, &[("x-signature", signature)]).await;
        assert_eq!(
            (status, answer["results"][0]["status"].clone()),
            (200, json!("accepted")),
            "{answer}"
        );
    };
    // The rate card set, with the version of January and the one of April.
    let roles = |cents: u32| json!([{ "role_name": "consultant", "rate_in_cents": cents }]);
    hook(kantata(
        "k-rcs",
        "rate_card_set_version.published",
        "2026-02-20T09:00:00Z",
        json!({ "id": "RCS-1", "currency": "eur", "versions": [
            { "id": "V1", "effective_date": "2026-01-01",
              "rate_cards": [{ "id": "C1", "title": "emea", "rate_card_roles": roles(17000) }] },
            { "id": "V2", "effective_date": "2026-04-01",
              "rate_cards": [{ "id": "C2", "title": "emea", "rate_card_roles": roles(17550) }] }
        ] }),
    ))
    .await;
    app.send(json!([closed_won(
        "P-2",
        "EUR",
        "KRC-RCS-1",
        "2026-01-01",
        None
    )]))
    .await;
    // Staffing, in Kantata's steps: a request, a soft then a hard allocation, the approval.
    let assignment = async || {
        app.settle().await;
        let (_, found) = app.get("/v1/assignments?project_code=P-2").await;
        found["items"][0].clone()
    };
    hook(kantata(
        "k-rr-1",
        "resource_request.created",
        "2026-02-25T09:00:00Z",
        kantata_resource("2026-02-25T09:00:00Z", json!({ "status": "pending" })),
    ))
    .await;
    let requested = assignment().await;
    assert_eq!(
        (
            requested["assignment_id"].clone(),
            requested["state"].clone()
        ),
        (json!("KR-R-1"), json!("tentative")),
        "{requested}"
    );
    assert_eq!(requested["hours"], "320");
    for (id, at, kind) in [
        ("k-al-1", "2026-02-26T10:00:00Z", "soft"),
        ("k-al-2", "2026-02-27T10:00:00Z", "hard"),
    ] {
        let allocation = json!({ "id": "AL-1", "allocation_type": kind });
        hook(kantata(
            id,
            "allocation.updated",
            at,
            kantata_resource(at, allocation),
        ))
        .await;
        assert_eq!(assignment().await["state"], kind);
    }
    // An allocation written before the last word arrives late: it changes nothing.
    let late = kantata_resource(
        "2026-02-26T12:00:00Z",
        json!({ "id": "AL-1", "allocation_type": "soft" }),
    );
    hook(kantata(
        "k-al-late",
        "allocation.updated",
        "2026-02-26T12:00:00Z",
        late,
    ))
    .await;
    assert_eq!(assignment().await["state"], "hard");
    let approved_at = "2026-02-28T16:30:00Z";
    hook(kantata(
        "k-rr-2",
        "resource_request.updated",
        approved_at,
        kantata_resource(approved_at, json!({ "status": "approved" })),
    ))
    .await;
    let approved = assignment().await;
    assert_eq!(approved["state"], "approved", "{approved}");
    assert_eq!(
        approved["version"],
        chrono::DateTime::parse_from_rfc3339(approved_at)
            .unwrap()
            .timestamp()
    );
    // Work on either side of April is priced by the version of its day.
    let worked = |id: &str, entry: &str, day: &str| {
        kantata(
            id,
            "time_entry.approved",
            "2026-04-05T18:00:00Z",
            json!({ "id": entry, "date_performed": day, "time_in_minutes": 120,
                    "billable": true, "user_id": "W-1", "workspace_id": "P-2" }),
        )
    };
    hook(worked("k-t-1", "KT-MAR", "2026-03-31")).await;
    hook(worked("k-t-2", "KT-APR", "2026-04-01")).await;
    app.settle().await;
    for (entry, rate, amount) in [("KT-MAR", "170", "340.00"), ("KT-APR", "175.5", "351.00")] {
        let lines = app.lines_of(entry).await;
        assert_eq!(lines.len(), 1, "{entry}: {lines:?}");
        assert_eq!(
            (lines[0]["rate"].clone(), lines[0]["amount"].clone()),
            (json!(rate), json!(amount)),
            "{entry}: {}",
            lines[0]
        );
    }
    // A rate the card cannot read is quarantined naming its line, and the card stands.
    let bad = kantata(
        "k-rcs-bad",
        "rate_card_set_version.published",
        "2026-04-06T09:00:00Z",
        json!({ "id": "RCS-1", "currency": "eur", "versions": [
            { "id": "V3", "effective_date": "2026-05-01",
              "rate_cards": [{ "id": "C3", "title": "emea", "rate_card_roles": [
                  { "role_name": "consultant", "rate_in_cents": 18000 },
                  { "role_name": "analyst", "rate_in_cents": "TBD" }] }] }
        ] }),
    );
    let signature = format!("sha256={}", hex_hmac(PSA_SECRET, &[bad.as_bytes()]));
    let (_, answer) = app.hook("psa", &bad, &[("x-signature", signature)]).await;
    let result = &answer["results"][0];
    assert_eq!(result["status"], "quarantined", "{answer}");
    let reason = result["reason"].as_str().unwrap();
    assert!(
        reason.contains("data.rates[1].rate") && reason.contains("kantata/rate_card v1"),
        "{reason}"
    );
    let (_, cards) = app.get("/v1/rate-cards").await;
    let card = cards["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rate_card_id"] == "KRC-RCS-1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(card["rates"].as_array().map(Vec::len), Some(2), "{cards}");
    // A deleted allocation cancels the assignment: the resource is no longer booked.
    let deleted_at = "2026-04-10T08:00:00Z";
    hook(kantata(
        "k-al-3",
        "allocation.deleted",
        deleted_at,
        kantata_resource(
            deleted_at,
            json!({ "id": "AL-1", "allocation_type": "hard" }),
        ),
    ))
    .await;
    assert_eq!(assignment().await["state"], "cancelled");
}

pub async fn the_catalog_lists_each_system_with_its_connectors_flows_and_health(store: Backend) {
    let app = with_invoiced_work(store).await;
    let (status, catalog) = app.get("/v1/catalog").await;
    assert_eq!(status, 200, "{catalog}");
    let systems = &catalog["systems"];
    let stripe = &systems["stripe"];
    assert_eq!(stripe["owns"], json!(["invoice_status"]), "{stripe}");
    assert_eq!(stripe["owner_team"], "finance");
    let hook = &stripe["inbound"][1];
    assert_eq!(hook["connector"], "webhook", "{stripe}");
    assert_eq!(
        hook["mappings"][0],
        json!({ "name": "stripe/invoice.v1", "record": "invoice", "version": 1, "target": "invoice.status_changed" })
    );
    assert!(
        hook["transport"]
            .as_str()
            .unwrap()
            .contains("/v1/hooks/stripe")
    );
    assert!(
        stripe["flows"]
            .as_array()
            .unwrap()
            .contains(&json!("invoice_status"))
    );
    // The PSA sends through both doors; the ERP is called by the billing flows.
    let psa = &systems["psa"];
    let doors: Vec<&str> = psa["inbound"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["connector"].as_str().unwrap())
        .collect();
    assert_eq!(doors, ["events_api", "webhook"], "{psa}");
    assert_eq!(psa["owner_team"], "pmo");
    let erp = &systems["erp"];
    for flow in ["time_to_bill", "opportunity_to_project"] {
        assert!(
            erp["flows"].as_array().unwrap().contains(&json!(flow)),
            "{flow} in {erp}"
        );
    }
    assert!(erp["outbound"]["connector"].is_string(), "{erp}");
    let health = &erp["health"];
    assert!(health["calls"].as_u64().unwrap() > 0, "{health}");
    assert!(health["last_success"].is_string(), "{health}");
    assert_eq!(
        (health["error_rate"].as_f64(), health["breaker"].as_str()),
        (Some(0.0), Some("closed")),
        "{health}"
    );
    // A system the hub only hears from has no calls to count.
    assert!(
        stripe["health"]["calls"].is_null() && stripe["outbound"].is_null(),
        "{stripe}"
    );
}

/// A version 2 of the Kantata time mapping beside the shipped ones: hours from the minutes
/// the project manager approved, where Kantata gives them, else from the minutes logged.
fn mappings_with_a_second_version() -> std::sync::Arc<pshub_mapping::Mappings> {
    let dir = std::env::temp_dir().join(format!(
        "pshub-mappings-{}-{}",
        std::process::id(),
        now_nanos()
    ));
    std::fs::create_dir_all(dir.join("kantata")).unwrap();
    std::fs::write(
        dir.join("kantata/time_entry.v2.toml"),
        include_str!("../../../../mappings/kantata/time_entry.v1.toml")
            .replace("version = 1", "version = 2")
            .replace(
                r#"hours = { decimal = ".object.time_in_minutes", divide_by = 60 }"#,
                r#"hours = { decimal = ".object.approved_minutes // .object.time_in_minutes", divide_by = 60 }"#,
            ),
    )
    .unwrap();
    let mappings = pshub_mapping::Mappings::with_dir(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let v2 = mappings.get("kantata/time_entry.v2").expect("v2 is read");
    assert_eq!(v2.version, 2);
    std::sync::Arc::new(mappings)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub async fn a_replay_under_a_new_mapping_version_shows_the_difference_dry_and_applies_once(
    store: Backend,
) {
    let mut config = config();
    config.mappings = mappings_with_a_second_version();
    config.inbound.get_mut("psa").unwrap().mappings = vec!["kantata/time_entry.v1".into()];
    let app = spawn_app_with(store, config).await;
    app.with_firm().await;
    let signed = |body: &str| {
        vec![(
            "x-signature",
            format!("sha256={}", hex_hmac(PSA_SECRET, &[body.as_bytes()])),
        )]
    };
    // K1 logged 150 minutes of which 120 were approved; K2 has nothing approved apart.
    let mut k1: Value =
        serde_json::from_str(&kantata_time("k-1", "time_entry.approved", "K1", 150)).unwrap();
    k1["object"]["approved_minutes"] = json!(120);
    let k1 = k1.to_string();
    let k2 = kantata_time("k-2", "time_entry.approved", "K2", 60);
    // K3 came through the webhook, then was corrected by a later event of the PSA.
    let mut k3: Value =
        serde_json::from_str(&kantata_time("k-3", "time_entry.approved", "K3", 90)).unwrap();
    k3["object"]["approved_minutes"] = json!(60);
    let k3 = k3.to_string();
    for body in [&k1, &k2, &k3] {
        let (status, answer) = app.hook("psa", body, &signed(body)).await;
        assert_eq!(
            answer["results"][0]["status"], "accepted",
            "{status} {answer}"
        );
    }
    app.send(json!([time_entry(
        "c-3",
        "K3",
        "W-1",
        "2026-03-04",
        json!("1.25")
    )]))
    .await;
    app.settle().await;
    let billed = app.lines_of("K1").await;
    assert_eq!(billed.len(), 1);
    assert_eq!(billed[0]["quantity"], "2.5", "v1 bills the minutes logged");

    // A dry run shows each event's record before and after and what would be written.
    let ask = |dry_run: bool| json!({"source": "psa", "from": 1, "to": 2, "dry_run": dry_run});
    let (status, dry) = app.post_json("/v1/mappings/replay", ask(true)).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["examined"], 3, "{dry}");
    assert_eq!(
        dry["counts"],
        json!({"changed": 1, "superseded": 1, "unchanged": 1}),
        "{dry}"
    );
    let events = dry["events"].as_array().unwrap();
    let k3_dry = events.iter().find(|e| e["event_id"] == "k-3").unwrap();
    assert!(
        k3_dry["error"]
            .as_str()
            .unwrap()
            .contains("changed this entry after it"),
        "a later event's figures are not undone: {k3_dry}"
    );
    let changed = events.iter().find(|e| e["event_id"] == "k-1").unwrap();
    assert_eq!(changed["from_mapping"], "kantata/time_entry.v1");
    assert_eq!(changed["to_mapping"], "kantata/time_entry.v2");
    assert_eq!(
        changed["changes"],
        json!([{"field": "data.hours", "before": "2.5", "after": "2"}]),
        "{changed}"
    );
    let lines = changed["downstream"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "a reversal and the line again: {changed}");
    let reversal = lines.iter().find(|l| !l["reverses"].is_null()).unwrap();
    assert_eq!(reversal["reverses"], billed[0]["id"], "{changed}");
    assert_eq!(reversal["quantity"], "-2.5");
    assert!(
        lines
            .iter()
            .any(|l| l["quantity"] == "2" && l["reverses"].is_null())
    );
    let unchanged = events.iter().find(|e| e["event_id"] == "k-2").unwrap();
    assert_eq!(unchanged["status"], "unchanged");
    assert_eq!(unchanged["changes"], json!([]));
    // ... and changes nothing.
    app.settle().await;
    assert_eq!(
        app.lines_of("K1").await.len(),
        1,
        "a dry run writes nothing"
    );
    let (status, _) = app.get("/v1/events/psa/k-1~v2").await;
    assert_eq!(status, 404, "a dry run takes no event in");

    // For real: the change goes through the flows once, on the original's timeline.
    let (status, applied) = app.post_json("/v1/mappings/replay", ask(false)).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(
        applied["counts"],
        json!({"applied": 1, "superseded": 1, "unchanged": 1}),
        "{applied}"
    );
    let k3_lines = app.lines_of("K3").await;
    assert_eq!(k3_lines.len(), 3, "K3 as the PSA last said: {k3_lines:?}");
    let k1_replay = applied["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == "k-1")
        .unwrap()
        .clone();
    assert_eq!(k1_replay["result"]["status"], "accepted", "{k1_replay}");
    app.settle().await;
    let after = app.lines_of("K1").await;
    assert_eq!(
        after.len(),
        3,
        "the line, its reversal and the line at 2 h: {after:?}"
    );
    let mut quantities: Vec<&str> = after
        .iter()
        .map(|l| l["quantity"].as_str().unwrap())
        .collect();
    quantities.sort();
    assert_eq!(quantities, ["-2.5", "2", "2.5"]);
    let (status, stored) = app.get("/v1/events/psa/k-1~v2").await;
    assert_eq!(status, 200, "{stored}");
    let correlation = k1_replay["correlation_id"].as_str().unwrap();
    let (_, trail) = app.get(&format!("/v1/transactions/{correlation}")).await;
    let steps = trail["steps"].as_array().unwrap();
    let received: Vec<&str> = steps
        .iter()
        .filter(|s| s["step"] == "received")
        .map(|s| s["detail"].as_str().unwrap())
        .collect();
    assert_eq!(received.len(), 2, "{trail}");
    assert!(received[1].contains("k-1~v2"), "{trail}");
    let remapped = steps.iter().find(|s| s["step"] == "remapped").unwrap();
    assert_eq!(
        remapped["detail"],
        "k-1 mapped again by kantata/time_entry.v2 (was kantata/time_entry.v1, seq 1)"
            .replace("seq 1", &format!("seq {}", k1_replay["seq"])),
        "{trail}"
    );
    assert_eq!(trail["lines"].as_array().unwrap().len(), 3, "{trail}");

    // Again: nothing more is taken in.
    let (_, again) = app.post_json("/v1/mappings/replay", ask(false)).await;
    assert_eq!(
        again["counts"],
        json!({"already_replayed": 1, "superseded": 1, "unchanged": 1}),
        "{again}"
    );
    app.settle().await;
    assert_eq!(app.lines_of("K1").await.len(), 3);

    // A version that does not exist is an error per event, and nothing is taken in.
    let (status, missing) = app
        .post_json(
            "/v1/mappings/replay",
            json!({"source": "psa", "from": 1, "to": 3}),
        )
        .await;
    assert_eq!(status, 200, "{missing}");
    assert_eq!(missing["counts"], json!({"errors": 3}), "{missing}");
    assert!(
        missing["events"][0]["error"]
            .as_str()
            .unwrap()
            .contains("'kantata/time_entry.v3' is not a mapping this hub knows")
    );
    let (status, bad) = app
        .post_json("/v1/mappings/replay", json!({"source": "psa", "from": 1}))
        .await;
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `to`")
    );

    // A request names its records' mapping version; the configured one is the default.
    let mut k4: Value =
        serde_json::from_str(&kantata_time("k-4", "time_entry.approved", "K4", 60)).unwrap();
    k4["object"]["approved_minutes"] = json!(30);
    let k4 = k4.to_string();
    let mut headers = signed(&k4);
    headers.push(("x-schema-version", "2".into()));
    let (_, answer) = app.hook("psa", &k4, &headers).await;
    assert_eq!(answer["results"][0]["status"], "accepted", "{answer}");
    app.settle().await;
    assert_eq!(
        app.lines_of("K4").await[0]["quantity"],
        "0.5",
        "mapped by v2"
    );
    let (_, stored) = app.get("/v1/events/psa/k-4").await;
    assert!(
        stored.to_string().contains("kantata/time_entry.v2"),
        "{stored}"
    );
    headers[1].1 = "two".into();
    let (status, answer) = app.hook("psa", &k4, &headers).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_schema_version");
}

/// Stripe's `charge.refunded` for the charge that paid Stripe's invoice `stripe_invoice`,
/// refunded in full: a Charge names its invoice only by Stripe's id.
fn charge_refunded(event_id: &str, stripe_invoice: &str) -> Value {
    json!({
        "id": event_id, "object": "event", "api_version": "2024-06-20", "created": now(),
        "data": { "object": {
            "id": "ch_3QpTn52eZvKYlo2C0aBcDeFg", "object": "charge", "amount": 45000,
            "amount_captured": 45000, "amount_refunded": 45000, "captured": true, "currency": "eur",
            "customer": "cus_R9XqPzK2mLw0aB", "invoice": stripe_invoice, "metadata": {},
            "paid": true, "refunded": true, "status": "succeeded"
        }, "previous_attributes": { "amount_refunded": 0, "refunded": false } },
        "livemode": false, "pending_webhooks": 1,
        "request": { "id": "req_Hq7Xk2LmN0pQrS", "idempotency_key": null },
        "type": "charge.refunded"
    })
}

pub async fn stripe_events_without_the_metadata_find_the_invoice_through_the_id_registry(
    store: Backend,
) {
    let mut config = config();
    config.inbound.get_mut("stripe").unwrap().mappings =
        vec!["stripe/invoice.v2".into(), "stripe/charge.v1".into()];
    let app = with_invoiced_work_on(store, config).await;
    let invoice = "INV-P-1-2026-03";
    let stripe_invoice = "in_1QpTn22eZvKYlo2CbWvXk3Qj";

    // Before the registry knows Stripe's id, an event that names only it is kept aside.
    let unnamed = invoice_paid("evt_paid_unnamed", None);
    let (_, body) = app.stripe(&unnamed).await;
    assert_eq!(body["results"][0]["status"], "quarantined", "{body}");
    let reason = body["results"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("data.system_invoice_id")
            && reason.contains(stripe_invoice)
            && reason.contains("id registry"),
        "{reason}"
    );
    let kept = app.quarantined("mapped_record").await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["event"]["payload"], unnamed);

    // The invoice with pshub's metadata: paid, and Stripe's id registered.
    let (_, body) = app.stripe(&invoice_paid("evt_paid", Some(invoice))).await;
    assert_eq!(body["results"][0]["status"], "accepted", "{body}");
    app.settle().await;
    for asked in [invoice, stripe_invoice] {
        let (status, xref) = app.get(&format!("/v1/xref/invoice/{asked}")).await;
        assert_eq!(status, 200, "{xref}");
        assert!(
            xref.to_string().contains(stripe_invoice) && xref.to_string().contains(invoice),
            "{asked}: {xref}"
        );
    }

    // A refund names only Stripe's invoice: found through the registry, it reopens the paid
    // invoice for finance.
    // (One body, sent twice below: Stripe's retry is the same bytes, `created` included.)
    let refund = charge_refunded("evt_refund", stripe_invoice);
    let (_, body) = app.stripe(&refund).await;
    assert_eq!(body["results"][0]["status"], "accepted", "{body}");
    app.settle().await;
    let (_, seen) = app.get(&format!("/v1/invoices/{invoice}")).await;
    assert_eq!(seen["status"], "disputed", "{seen}");
    let disputed = app.exceptions("kind=invoice_disputed").await;
    assert_eq!(disputed.len(), 1, "{disputed:?}");
    assert_eq!(disputed[0]["owner"], "finance");
    assert_eq!(disputed[0]["business_key"], invoice);
    // The stored event names the hub's invoice: it parses the same after a restart.
    let stored = app
        .engine
        .store()
        .reader()
        .unwrap()
        .event_by_key("stripe", "evt_refund")
        .unwrap()
        .unwrap();
    let data: Value = serde_json::from_str(&stored.data).unwrap();
    assert_eq!(data["invoice_id"], invoice, "{data}");
    assert_eq!(data["system_invoice_id"], stripe_invoice, "{data}");
    // Stripe sends the refund again: a duplicate, not a second change.
    let (_, again) = app.stripe(&refund).await;
    assert_eq!(again["results"][0]["status"], "duplicate", "{again}");

    // The event kept aside, replayed now that the registry knows the id, is accepted.
    let id = kept[0]["id"].as_i64().unwrap();
    let response = app
        .post_raw(
            &format!("/v1/quarantine/{id}/replay"),
            String::new(),
            Some(&app.token),
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["result"]["status"], "accepted", "{answer}");
}

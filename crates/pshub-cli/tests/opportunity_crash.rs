//! Opportunity to project survives a crash between its steps: `pshub serve`, calling a
//! separate `pshub sandbox` process (whose records outlive the hub), exits with status 137
//! right after the PSA step commits (`PSHUB_CRASH_AFTER=opportunity_to_project.psa`). The
//! restarted hub resumes at the ERP step and creates nothing twice, and the deal sent again,
//! under its own id and under a new one with other terms, changes nothing.

use serde_json::{Value, json};
use std::time::Duration;
use support::{
    Api, Server, TempDir, closed_won, create_token, eventually, sandbox, sandbox_records,
    sandbox_stats, wait_healthy,
};

mod support;

const PROJECT: &str = "P-CRASH";

fn hub(dir: &TempDir, sandbox: &Server, crash_after: Option<&str>, log: &str) -> Server {
    let mut serve = support::serve(&dir.join("hub"))
        .env("PSHUB_SANDBOX_URL", &sandbox.base)
        .log(dir.join(log));
    if let Some(step) = crash_after {
        serve = serve.env("PSHUB_CRASH_AFTER", step);
    }
    serve.spawn()
}

/// The state of each step of the project, in order: (step, state, attempts).
fn steps(project: &Value) -> Vec<(String, String, u64)> {
    project["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    (
                        s["step"].as_str().unwrap_or("?").to_string(),
                        s["state"].as_str().unwrap_or("?").to_string(),
                        s["attempts"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What the sandbox systems hold: (engagements, ERP projects, CRM write-backs).
async fn held(client: &reqwest::Client, sandbox: &Server) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    (
        sandbox_records(client, &sandbox.base, "psa", "engagements").await,
        sandbox_records(client, &sandbox.base, "erp", "projects").await,
        sandbox_records(client, &sandbox.base, "crm", "opportunities").await,
    )
}

/// Creates that made a record (received minus repeats answered from the key).
fn created(stats: &Value, system: &str) -> u64 {
    stats[system]["creates"].as_u64().unwrap() - stats[system]["repeats"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_psa_step_resumes_at_the_erp_step_and_creates_nothing_twice() {
    let dir = TempDir::new("opportunity-crash");
    let client = reqwest::Client::new();
    let sandbox = sandbox(&dir.join("sandbox"), None, Some(dir.join("sandbox.log")));
    wait_healthy(&client, &sandbox.base).await;
    let token = create_token(
        &dir.join("hub"),
        None,
        "admin",
        Some("opportunity crash test"),
    );

    let mut first = hub(
        &dir,
        &sandbox,
        Some("opportunity_to_project.psa"),
        "hub-1.log",
    );
    wait_healthy(&client, &first.base).await;
    let deal = closed_won(PROJECT, "EUR", "RC-EUR", "2026-01-01", Some("2026-12-31"));
    let api = Api::new(&client, &first.base, &token);
    // The process exits soon after the event commits; should the answer itself be lost,
    // the deal is sent again after the restart, as any sender would.
    let answered = api.post_events(std::slice::from_ref(&deal)).await;
    if let Ok(results) = &answered {
        assert_eq!(results[0]["status"], "accepted", "{results:?}");
    }

    let status = first.proc.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(
        status.code(),
        Some(137),
        "serve exits with status 137 (not by a signal) after the PSA step: {status:?}\n{}",
        first.log_tail(20)
    );
    let (engagements, projects, write_backs) = held(&client, &sandbox).await;
    assert_eq!(engagements.len(), 1, "the PSA step ran: {engagements:?}");
    assert_eq!(engagements[0]["project_code"], PROJECT);
    assert!(
        projects.is_empty(),
        "the ERP step did not run yet: {projects:?}"
    );
    assert!(write_backs.is_empty(), "{write_backs:?}");
    let psa_id = engagements[0]["psa_id"].clone();
    assert!(psa_id.is_string(), "{engagements:?}");

    let second = hub(&dir, &sandbox, None, "hub-2.log");
    wait_healthy(&client, &second.base).await;
    let api = Api::new(&client, &second.base, &token);
    if answered.is_err() {
        api.post_events(std::slice::from_ref(&deal))
            .await
            .expect("the deal is taken after the restart");
    }
    let path = format!("/v1/projects/{PROJECT}");
    let project = eventually(
        "every step of the project is done after the restart",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let (status, project) = api.get(&path).await?;
            let all_done = status == 200
                && !steps(&project).is_empty()
                && steps(&project).iter().all(|(_, state, _)| state == "done");
            if all_done {
                Ok(project)
            } else {
                Err(format!("{status} {project}"))
            }
        },
    )
    .await;
    let step_names: Vec<String> = steps(&project).into_iter().map(|s| s.0).collect();
    assert_eq!(
        step_names,
        ["psa", "erp", "billing_rules", "publish", "crm"],
        "{project}"
    );
    let psa_step = &project["steps"][0];
    assert_eq!(
        psa_step["attempts"], 1,
        "the restart resumed after the PSA step, which was recorded done before the exit: {project}"
    );
    assert_eq!(psa_step["result"], psa_id, "{project}");

    let check_records = |engagements: &[Value], projects: &[Value], write_backs: &[Value]| {
        assert_eq!(engagements.len(), 1, "one PSA engagement: {engagements:?}");
        assert_eq!(projects.len(), 1, "one ERP project: {projects:?}");
        assert_eq!(write_backs.len(), 1, "one CRM write-back: {write_backs:?}");
        assert_eq!(engagements[0]["psa_id"], psa_id);
        assert_eq!(projects[0]["project_code"], PROJECT);
        assert_eq!(
            projects[0]["psa_id"], psa_id,
            "the ERP project carries the PSA id"
        );
        let erp_id = projects[0]["erp_id"].clone();
        assert!(erp_id.is_string(), "{projects:?}");
        assert_eq!(write_backs[0]["opportunity_id"], format!("OPP-{PROJECT}"));
        assert_eq!(write_backs[0]["psa_id"], psa_id, "{write_backs:?}");
        assert_eq!(write_backs[0]["erp_id"], erp_id, "{write_backs:?}");
        erp_id
    };
    let (engagements, projects, write_backs) = held(&client, &sandbox).await;
    let erp_id = check_records(&engagements, &projects, &write_backs);
    assert_eq!(
        project["ids"],
        json!({ "crm": format!("OPP-{PROJECT}"), "psa": psa_id, "erp": erp_id }),
        "the hub's ids are the sandbox's"
    );
    let stats = sandbox_stats(&client, &sandbox.base).await;
    assert_eq!(
        stats["psa"]["creates"], 1,
        "the restart did not ask the PSA to create again: {stats}"
    );
    for system in ["psa", "erp_projects", "crm"] {
        assert_eq!(stats[system]["records"], 1, "{system}: {stats}");
    }
    assert_eq!(created(&stats, "crm"), 1, "{stats}");
    let outbound = api.get_ok("/v1/outbound?type=project.provisioned").await;
    assert_eq!(
        outbound["items"].as_array().map(Vec::len),
        Some(1),
        "project.provisioned is published once: {outbound}"
    );

    // The same deal again, and under a new event id with other terms.
    let mut renamed = deal.clone();
    renamed["id"] = json!(format!("won-{PROJECT}-again"));
    renamed["data"]["contract"]["currency"] = json!("USD");
    renamed["data"]["contract"]["contract_id"] = json!("K-OTHER");
    renamed["data"]["project"]["name"] = json!("Another name");
    let results = api
        .post_events(&[deal.clone(), renamed.clone()])
        .await
        .unwrap();
    assert_eq!(results[0]["status"], "duplicate", "{results:?}");
    assert_eq!(results[1]["status"], "accepted", "{results:?}");
    // Nothing is left for the hub to do about either: no step of theirs is pending.
    for id in [format!("won-{PROJECT}"), format!("won-{PROJECT}-again")] {
        let path = format!("/v1/events/crm/{id}");
        eventually(
            "the re-sent deal has nothing pending",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                let answer = api.get_ok(&path).await;
                match answer["status"].as_str() {
                    Some("applied") => Ok(()),
                    _ => Err(answer.to_string()),
                }
            },
        )
        .await;
    }
    let again = api
        .get_ok(&format!("/v1/events/crm/won-{PROJECT}-again"))
        .await;
    assert_eq!(
        again["steps"].as_array().map(Vec::len),
        Some(0),
        "a deal re-sent under a new id makes no steps: {again}"
    );
    let project = api.get_ok(&path).await;
    assert!(
        steps(&project).iter().all(|(_, state, _)| state == "done"),
        "{project}"
    );
    assert_eq!(
        project["name"], "Audit",
        "terms change only by amendment: {project}"
    );
    assert_eq!(project["billing_rules"]["currency"], "EUR", "{project}");
    assert_eq!(
        project["billing_rules"]["contract_id"],
        format!("K-{PROJECT}"),
        "{project}"
    );
    let (engagements, projects, write_backs) = held(&client, &sandbox).await;
    assert_eq!(check_records(&engagements, &projects, &write_backs), erp_id);
    let after = sandbox_stats(&client, &sandbox.base).await;
    for system in ["psa", "erp_projects", "crm"] {
        assert_eq!(
            after[system]["creates"], stats[system]["creates"],
            "{system}: the re-sent deals called nothing: {after}"
        );
    }
}

//! Several hub processes, one PostgreSQL store: three `pshub serve` processes on their own
//! ports share one fresh database and one `pshub sandbox`. A simulated firm's 100,000 events
//! go in across all three, several batches in flight; halfway, one process is SIGKILLed
//! (while it holds leased work) and is not restarted. Its unanswered batches are sent again
//! to the survivors, as any sender treats a lost answer. Then:
//! - every approved entry is posted exactly once, read back from the sandbox ERP and from
//!   the hub;
//! - every event is accounted for, by the summary's counters and one by one;
//! - the dead process's leased work was finished by the others once its leases lapsed;
//! - order per key holds across processes: an entry's approval, rejection and re-approval,
//!   each sent to another process after the one before was answered, net to one line.

use pshub_connectors::sandbox::{FirmSpec, SimulatedFirm};
use pshub_model::Event;
use pshub_store_postgres::testing::TestDatabase;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use support::{
    Api, Server, TempDir, create_token, eventually, join_all, node_of, project_codes, psql,
    sandbox, sandbox_records, wait_healthy,
};
use tokio::task::JoinSet;

mod support;

/// Events of the whole run, about.
const EVENTS: usize = 100_000;
/// Events looked up one by one, besides those whose answer was lost.
const LOOKUP_SAMPLE: usize = 4_000;
const BATCH: usize = 1_000;
/// Batches in flight at once, across the processes.
const IN_FLIGHT: usize = 6;
/// Entries approved, rejected and approved again through three processes (at least; three
/// times as many are tried, since an approval held by a case makes no line).
const ORDERED: usize = 12;
/// The process that is killed.
const VICTIM: usize = 2;

fn decimal(value: &Value) -> Decimal {
    match value {
        Value::String(text) => text.parse().unwrap(),
        other => other.to_string().parse().unwrap(),
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Entries whose only event is one billable approval of a real worker on a real project:
/// the per-key order check sends their rejection and re-approval itself.
fn ordered_candidates(work: &[Value]) -> Vec<usize> {
    let mut per_entry: HashMap<&str, usize> = HashMap::new();
    for event in work {
        if let Some(id) = event["data"]["entry_id"].as_str() {
            *per_entry.entry(id).or_default() += 1;
        }
    }
    let candidates: Vec<usize> = work
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            let data = &e["data"];
            e["type"] == "time_entry.approved"
                && data["billable"] == true
                && data["worker_id"]
                    .as_str()
                    .is_some_and(|w| w.starts_with("W-"))
                && data["project_code"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("PRJ-0"))
                && per_entry[data["entry_id"].as_str().unwrap()] == 1
        })
        .map(|(i, _)| i)
        .collect();
    // Spread over the month.
    let step = (candidates.len() / (ORDERED * 3)).max(1);
    candidates
        .into_iter()
        .step_by(step)
        .take(ORDERED * 3)
        .collect()
}

/// Sends an entry's approval to A, then its rejection to B, then its re-approval to C, each
/// once the one before was answered. Answers the events sent, and whether the approval made
/// a line (an approval held by a case makes none, and is not what this checks).
async fn approve_reject_approve(hubs: [Api; 3], approval: Value) -> (Vec<Value>, bool) {
    let entry = approval["data"]["entry_id"].as_str().unwrap().to_string();
    let results = hubs[0]
        .post_events(std::slice::from_ref(&approval))
        .await
        .unwrap();
    assert_eq!(results[0]["status"], "accepted", "{results:?}");
    let id = approval["id"].as_str().unwrap();
    let status = hubs[0].get_ok(&format!("/v1/events/psa/{id}")).await;
    if status["lines"].as_array().is_none_or(Vec::is_empty) {
        return (vec![approval], false);
    }
    let mut rejection = approval.clone();
    rejection["id"] = json!(format!("order-{entry}-rejected"));
    rejection["type"] = json!("time_entry.rejected");
    let results = hubs[1]
        .post_events(std::slice::from_ref(&rejection))
        .await
        .unwrap();
    assert_eq!(results[0]["status"], "accepted", "{results:?}");
    let mut again = approval.clone();
    again["id"] = json!(format!("order-{entry}-approved-again"));
    let results = hubs[2]
        .post_events(std::slice::from_ref(&again))
        .await
        .unwrap();
    assert_eq!(results[0]["status"], "accepted", "{results:?}");
    (vec![approval, rejection, again], true)
}

/// The order check for every candidate entry at once (each entry's events in order).
async fn order_check(hubs: [Api; 3], approvals: Vec<Value>) -> (Vec<Value>, Vec<String>) {
    let runs = approvals
        .into_iter()
        .map(|approval| approve_reject_approve(hubs.clone(), approval));
    let mut sent = Vec::new();
    let mut billed = Vec::new();
    for (events, made_a_line) in join_all(runs).await {
        if made_a_line {
            billed.push(events[0]["data"]["entry_id"].as_str().unwrap().to_string());
        }
        sent.extend(events);
    }
    (sent, billed)
}

/// Watches the dead process's leased steps from its death until others hold them all:
/// answers how long after `killed_at` the first and the last were taken over.
async fn watch_takeover(
    url: String,
    orphaned: Vec<i64>,
    node: i64,
    killed_at: Instant,
) -> (Duration, Duration) {
    let ids = orphaned
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT count(*) FROM steps WHERE id IN ({ids}) AND lease_owner = {node} AND state = 'running'"
    );
    let mut first = None;
    loop {
        let (url, sql) = (url.clone(), sql.clone());
        let still: usize = tokio::task::spawn_blocking(move || psql(&url, &sql))
            .await
            .unwrap()
            .parse()
            .unwrap();
        if still < orphaned.len() && first.is_none() {
            first = Some(killed_at.elapsed());
        }
        if still == 0 {
            return (first.unwrap_or_default(), killed_at.elapsed());
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(120),
            "{still} of the dead process's leased steps are still leased to it after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What happened to the batches sent.
#[derive(Default)]
struct Sending {
    /// Events in batches that were answered.
    acknowledged_events: usize,
    /// Events in batches whose answer was lost (sent again).
    unanswered_events: usize,
    /// The batches whose answer was lost.
    unanswered_batches: Vec<usize>,
    /// Answers other than 200 from a process that was alive.
    live_errors: Vec<String>,
    /// The steps the victim held leased when it was killed.
    orphaned: Vec<i64>,
    victim_posted_before: f64,
    /// Claimable steps of others queued before the first orphan when the victim died.
    ahead: String,
    takeover: Option<tokio::task::JoinHandle<(Duration, Duration)>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_store_and_one_dying_loses_and_doubles_nothing() {
    let started = Instant::now();
    let dir = TempDir::new("multi-process");
    let database = TestDatabase::create("multi_process");
    let client = reqwest::Client::new();
    let sandbox = sandbox(&dir.join("sandbox"), None, Some(dir.join("sandbox.log")));
    wait_healthy(&client, &sandbox.base).await;

    // Three processes started together: they migrate the one store at once.
    let mut servers: Vec<Server> = (0..3)
        .map(|i| {
            support::serve(&dir.join(&format!("hub-{i}")))
                .store(&database.url)
                .env("PSHUB_SANDBOX_URL", &sandbox.base)
                .env("PSHUB_LOG_FORMAT", "json")
                .log(dir.join(&format!("hub-{i}.log")))
                .spawn()
        })
        .collect();
    for server in &servers {
        wait_healthy(&client, &server.base).await;
    }
    // A token made through one process's store is known to all.
    let token = create_token(
        &dir.join("token"),
        Some(&database.url),
        "admin",
        Some("multi"),
    );
    let hubs: [Api; 3] = std::array::from_fn(|i| Api::new(&client, &servers[i].base, &token));
    let victim_log = dir.join(&format!("hub-{VICTIM}.log"));
    let victim_node = node_of(&victim_log).expect("the victim logged its node id");

    let spec = FirmSpec {
        workers: 200,
        projects: 40,
        entries: EVENTS * 105 / 100,
        seed: 2_027,
        ..FirmSpec::default()
    };
    let firm = SimulatedFirm::new(spec);
    let reference = firm.reference_events();
    let mut work: Vec<Value> = firm.work_events().collect();
    let projects = project_codes(&reference);
    let ordered: Vec<Value> = {
        let picked = ordered_candidates(&work);
        let set: HashSet<usize> = picked.iter().copied().collect();
        let approvals = picked.iter().map(|&i| work[i].clone()).collect();
        let mut i = 0;
        work.retain(|_| {
            i += 1;
            !set.contains(&(i - 1))
        });
        approvals
    };
    let total = reference.len() + work.len() + ordered.len();
    eprintln!(
        "{} reference and {} work events ({} in all) made in {} ms",
        reference.len(),
        work.len(),
        total,
        ms(started.elapsed())
    );
    assert!(total >= EVENTS, "{total} events");

    // Reference data first, to one process, each batch answered before the next.
    for batch in reference.chunks(BATCH) {
        hubs[0]
            .post_events(batch)
            .await
            .expect("reference data is taken");
    }
    let reference_at = started.elapsed();

    // The approval, rejection and re-approval of a few entries, each to another process,
    // while the firm's work goes in.
    let order = tokio::spawn(order_check(hubs.clone(), ordered));

    // The work, round-robin in batches, several in flight; the victim dies halfway.
    let batches: Vec<Vec<Value>> = work.chunks(BATCH).map(<[Value]>::to_vec).collect();
    let mut queue: std::collections::VecDeque<(usize, usize)> =
        (0..batches.len()).map(|i| (i, i % 3)).collect();
    let mut in_flight: JoinSet<(usize, usize, Result<Vec<Value>, String>)> = JoinSet::new();
    let mut sending = Sending::default();
    let mut answered = 0;
    let mut alive = [true; 3];
    let mut order_done = None;
    let mut order = Some(order);
    while !queue.is_empty() || !in_flight.is_empty() {
        while in_flight.len() < IN_FLIGHT
            && let Some((batch, mut to)) = queue.pop_front()
        {
            if !alive[to] {
                // A survivor takes what the dead process would have had.
                to = if batch % 2 == 0 { 0 } else { 1 };
            }
            let api = hubs[to].clone();
            let events = batches[batch].clone();
            in_flight.spawn(async move { (batch, to, api.post_events(&events).await) });
        }
        let Some(joined) = in_flight.join_next().await else {
            break;
        };
        let (batch, to, result) = joined.unwrap();
        match result {
            Ok(results) => {
                assert_eq!(results.len(), batches[batch].len());
                sending.acknowledged_events += results.len();
                answered += 1;
            }
            Err(why) => {
                if alive[to] {
                    sending
                        .live_errors
                        .push(format!("batch {batch} to process {to}: {why}"));
                } else {
                    sending.unanswered_events += batches[batch].len();
                    sending.unanswered_batches.push(batch);
                }
                // Sent again, as a sender does with an answer it did not get.
                queue.push_front((batch, to));
            }
        }
        if let Some(handle) = order.take_if(|h| h.is_finished()) {
            order_done = Some(handle.await.unwrap());
        }
        // Halfway, once the order check is through: kill the victim while it holds leases.
        if alive[VICTIM] && order_done.is_some() && answered * 2 >= batches.len() {
            let leased = psql(
                &database.url,
                &format!(
                    "SELECT count(*) FROM steps WHERE lease_owner = {victim_node} AND state = 'running'"
                ),
            );
            if leased != "0" {
                let metrics = hubs[VICTIM].get_text("/metrics").await.unwrap_or_default();
                sending.victim_posted_before =
                    support::metric(&metrics, "pshub_lines_posted_total").unwrap_or(0.0);
                servers[VICTIM].kill();
                alive[VICTIM] = false;
                let orphaned = psql(
                    &database.url,
                    &format!(
                        "SELECT id FROM steps WHERE lease_owner = {victim_node} AND state = 'running' ORDER BY id"
                    ),
                );
                sending.orphaned = orphaned.lines().map(|l| l.parse().unwrap()).collect();
                if let Some(first) = sending.orphaned.first() {
                    sending.ahead = psql(
                        &database.url,
                        &format!(
                            "SELECT count(*) FROM steps WHERE state IN ('pending', 'running') AND id < {first} AND lease_owner IS DISTINCT FROM {victim_node}"
                        ),
                    );
                    sending.takeover = Some(tokio::spawn(watch_takeover(
                        database.url.clone(),
                        sending.orphaned.clone(),
                        victim_node,
                        Instant::now(),
                    )));
                }
                eprintln!(
                    "killed process {VICTIM} (node {victim_node}) at {} ms after {answered} of {} batches; it had posted {} lines and held {} steps leased",
                    ms(started.elapsed()),
                    batches.len(),
                    sending.victim_posted_before,
                    sending.orphaned.len()
                );
            }
        }
    }
    let sent_at = started.elapsed();
    let (order_sent, billed) = match (order_done, order) {
        (Some(billed), _) => billed,
        (None, Some(handle)) => handle.await.unwrap(),
        (None, None) => unreachable!(),
    };
    assert!(
        !alive[VICTIM],
        "the victim was killed while the events went in"
    );
    assert!(
        sending.live_errors.is_empty(),
        "live processes answered errors: {:?}",
        sending.live_errors
    );
    assert!(
        billed.len() >= ORDERED,
        "entries for the order check: {billed:?}"
    );
    assert!(
        sending.victim_posted_before > 0.0,
        "the victim delivered lines before it died"
    );
    assert!(
        !sending.orphaned.is_empty(),
        "the victim held leased steps when it died"
    );
    let survivors = [hubs[0].clone(), hubs[1].clone()];

    // The dead process's leases lapse and the others take its steps over.
    let (first_taken_over, taken_over_after) = sending.takeover.take().unwrap().await.unwrap();
    // Leases last 5 s and are renewed while work runs: the others resume within 10 s.
    assert!(
        taken_over_after <= Duration::from_secs(10),
        "the dead process's {} leased steps were taken over {} ms after the kill (the first at {} ms)",
        sending.orphaned.len(),
        ms(taken_over_after),
        ms(first_taken_over)
    );
    let ahead = &sending.ahead;
    let orphaned_list = sending
        .orphaned
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");

    // Everything settles on the survivors.
    let summary = eventually(
        "every line is posted and no step is pending or running",
        Duration::from_secs(600),
        Duration::from_millis(500),
        || async {
            let summary = survivors[0].summary().await;
            if summary["lines_undelivered"] != 0 {
                return Err(format!(
                    "lines_undelivered {}",
                    summary["lines_undelivered"]
                ));
            }
            let active = psql(
                &database.url,
                "SELECT count(*) FROM steps WHERE state IN ('pending', 'running')",
            );
            if active != "0" {
                return Err(format!("{active} steps pending or running"));
            }
            Ok(summary)
        },
    )
    .await;
    let settled_at = started.elapsed();
    let done_orphans = psql(
        &database.url,
        &format!("SELECT count(*) FROM steps WHERE id IN ({orphaned_list}) AND state = 'done'"),
    );
    assert_eq!(
        done_orphans,
        sending.orphaned.len().to_string(),
        "the dead process's leased steps were finished by the others"
    );
    for code in &projects {
        let project = survivors[1].get_ok(&format!("/v1/projects/{code}")).await;
        let steps = project["steps"].as_array().unwrap();
        assert!(steps.iter().all(|s| s["state"] == "done"), "{project}");
    }
    assert_eq!(summary["conservation_holds"], true, "{summary}");
    assert_eq!(summary["lines_blocked"], 0, "{summary}");
    assert_eq!(summary["steps_blocked"], 0, "{summary}");

    // The steps the dead process held were asked about before they were sent again: the
    // sandbox received no create twice, not even as a repeat answered from its key.
    let stats = support::sandbox_stats(&client, &sandbox.base).await;
    for system in ["erp_lines", "erp_projects", "psa", "crm"] {
        assert_eq!(stats[system]["repeats"], 0, "{system}: {stats}");
    }

    // Every approved entry posted exactly once: the ERP holds one line per key, and the
    // hub's posted lines are the ERP's, one for one.
    let erp_lines = sandbox_records(&client, &sandbox.base, "erp", "lines").await;
    let mut keys: HashMap<&str, usize> = HashMap::new();
    for line in &erp_lines {
        *keys
            .entry(line["idempotency_key"].as_str().unwrap())
            .or_default() += 1;
    }
    let twice: Vec<_> = keys.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(
        twice.is_empty(),
        "keys the ERP took more than once: {twice:?}"
    );
    let posted = summary["lines_posted"].as_u64().unwrap();
    let reversals = summary["reversals_posted"].as_u64().unwrap();
    assert!(posted as usize > work.len() * 8 / 10, "{summary}");
    assert_eq!(erp_lines.len() as u64, posted + reversals, "{summary}");
    assert_eq!(
        erp_lines.iter().filter(|l| l["kind"] == "reversal").count() as u64,
        reversals
    );
    let hub_lines = survivors[0]
        .all_pages("/v1/invoice-lines?status=posted")
        .await;
    assert_eq!(hub_lines.len(), erp_lines.len());
    let by_erp_id: HashMap<&str, &Value> = erp_lines
        .iter()
        .map(|l| (l["erp_id"].as_str().unwrap(), l))
        .collect();
    let mut matched = HashSet::new();
    for line in &hub_lines {
        let erp_id = line["erp_id"].as_str().unwrap_or_else(|| panic!("{line}"));
        let theirs = by_erp_id
            .get(erp_id)
            .unwrap_or_else(|| panic!("the ERP has no line {erp_id}: {line}"));
        assert!(
            matched.insert(erp_id),
            "two hub lines are ERP line {erp_id}"
        );
        for field in ["kind", "source_id", "posting", "currency"] {
            assert_eq!(theirs[field], line[field], "{field}: {line} vs {theirs}");
        }
        assert_eq!(decimal(&theirs["amount"]), decimal(&line["amount"]));
    }
    let mut erp_totals: BTreeMap<String, Decimal> = BTreeMap::new();
    for line in &erp_lines {
        *erp_totals
            .entry(line["currency"].as_str().unwrap().to_string())
            .or_default() += decimal(&line["amount"]);
    }
    erp_totals.retain(|_, v| !v.is_zero());
    let hub_totals: BTreeMap<String, Decimal> = summary["posted_value"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(c, v)| (c.clone(), decimal(v)))
        .filter(|(_, v)| !v.is_zero())
        .collect();
    assert_eq!(erp_totals, hub_totals, "posted value per currency");

    // Order per key across processes: a line, its reversal, a line again; net one line.
    // (Ids come from each process's own block, so the lines are put in posting order.)
    for entry in &billed {
        let mut lines = survivors[1]
            .all_pages(&format!("/v1/invoice-lines?source_id={entry}"))
            .await;
        lines.sort_by_key(|l| l["posting"].as_u64());
        let shape: Vec<(u64, &str, &str)> = lines
            .iter()
            .map(|l| {
                (
                    l["posting"].as_u64().unwrap(),
                    l["kind"].as_str().unwrap(),
                    l["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (1, "time", "posted"),
                (2, "reversal", "posted"),
                (3, "time", "posted")
            ],
            "{entry}: {lines:?}"
        );
        let amount = decimal(&lines[0]["amount"]);
        let net: Decimal = lines.iter().map(|l| decimal(&l["amount"])).sum();
        assert_eq!(net, amount, "{entry} nets to one line: {lines:?}");
        assert_eq!(lines[1]["reverses"], lines[0]["id"], "{lines:?}");
        let theirs: Vec<&Value> = erp_lines
            .iter()
            .filter(|l| l["source_id"] == *entry)
            .collect();
        assert_eq!(theirs.len(), 3, "{entry} in the ERP: {theirs:?}");
        let net: Decimal = theirs.iter().map(|l| decimal(&l["amount"])).sum();
        assert_eq!(
            net, amount,
            "{entry} nets to one line in the ERP: {theirs:?}"
        );
        let reversal = theirs.iter().find(|l| l["kind"] == "reversal").unwrap();
        assert_eq!(
            reversal["reverses_erp_id"], lines[0]["erp_id"],
            "{theirs:?}"
        );
    }

    // Every event accounted for. The store's counters: each distinct valid event accepted
    // once; every answered event counted, and nothing counted that was not sent.
    let mut seen = HashSet::new();
    let mut distinct_valid = Vec::new();
    let mut malformed = Vec::new();
    for event in reference.iter().chain(&work).chain(&order_sent) {
        match Event::parse(event, |_| true) {
            Ok(parsed) => {
                if seen.insert((parsed.source.clone(), parsed.id.clone())) {
                    distinct_valid.push((parsed.source, parsed.id));
                }
            }
            Err(_) => malformed.push(event),
        }
    }
    let received = summary["events"].as_u64().unwrap() as usize;
    let accepted = summary["accepted"].as_u64().unwrap() as usize;
    let counted = accepted
        + summary["duplicates_suppressed"].as_u64().unwrap() as usize
        + summary["conflicts"].as_u64().unwrap() as usize
        + summary["quarantined"].as_u64().unwrap() as usize;
    assert_eq!(counted, received, "{summary}");
    assert_eq!(
        accepted,
        distinct_valid.len(),
        "every distinct valid event accepted once: {summary}"
    );
    let answered_events = sending.acknowledged_events + reference.len() + order_sent.len();
    assert!(
        received >= answered_events && received <= answered_events + sending.unanswered_events,
        "received {received}: {answered_events} answered, {} unanswered",
        sending.unanswered_events
    );

    // And one by one: every event answers on a survivor, none pending. All of those whose
    // answer was lost when the victim died and of the order check, and a sample of the rest
    // (a lookup takes a few ms in a debug build; all 100,000 would take minutes).
    let lookup_started = Instant::now();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let key = |e: &Value| {
        (
            e["source"].as_str().unwrap_or_default().to_string(),
            e["id"].as_str().unwrap_or_default().to_string(),
        )
    };
    let must: HashSet<(String, String)> = sending
        .unanswered_batches
        .iter()
        .flat_map(|&b| batches[b].iter().map(key))
        .chain(order_sent.iter().map(key))
        .collect();
    let stride = (distinct_valid.len() / LOOKUP_SAMPLE).max(1);
    let keys: Vec<&(String, String)> = distinct_valid
        .iter()
        .enumerate()
        .filter(|(i, k)| i % stride == 0 || must.contains(*k))
        .map(|(_, k)| k)
        .collect();
    for chunk in keys.chunks(64) {
        let lookups = chunk.iter().enumerate().map(|(i, (source, id))| {
            let api = survivors[i % 2].clone();
            let path = format!("/v1/events/{source}/{}", urlencode(id));
            async move { api.get(&path).await }
        });
        for ((source, id), answer) in chunk.iter().zip(join_all(lookups).await) {
            let (status, body) = answer.unwrap();
            assert_eq!(status, 200, "{source}/{id}: {body}");
            let state = body["status"].as_str().unwrap_or("missing").to_string();
            assert!(
                ["applied", "held", "recorded"].contains(&state.as_str()),
                "{source}/{id}: {body}"
            );
            *statuses.entry(state).or_default() += 1;
        }
    }
    for event in &malformed {
        let path = format!(
            "/v1/events/{}/{}",
            event["source"].as_str().unwrap(),
            urlencode(event["id"].as_str().unwrap())
        );
        let answer = survivors[0].get_ok(&path).await;
        assert_eq!(answer["status"], "quarantined", "{answer}");
    }
    eprintln!(
        "reference in {} ms, all sent at {} ms, leases taken over from {} to {} ms after the kill ({ahead} steps queued before the first), settled at {} ms, {} events looked up in {} ms: {statuses:?}; {} unanswered events sent again; summary {summary}",
        ms(reference_at),
        ms(sent_at),
        ms(first_taken_over),
        ms(taken_over_after),
        ms(settled_at),
        keys.len() + malformed.len(),
        ms(lookup_started.elapsed()),
        sending.unanswered_events
    );
    drop(servers);
}

/// Percent-encodes a path segment.
fn urlencode(part: &str) -> String {
    part.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

//! Stand-ins for a firm's systems, so that the whole quote-to-cash loop runs with no other
//! software: a PSA that creates engagements, an ERP that provisions projects, takes billing
//! rules and posts invoice lines, and a CRM that takes back the ids of won deals. Like real
//! systems they assign their own ids, answer a repeated idempotency key with the first
//! answer, refuse lines for projects they do not know, keep their records across restarts,
//! and misbehave on demand ([`faults`]). They run in the hub's process ([`InProcess`]) or as
//! a network peer (`pshub sandbox`, [`server`]) that the hub reaches over HTTP ([`client`]).
//!
//! Also here: the simulated firm whose CRM, HRIS and PSA send events.

pub mod client;
pub mod faults;
pub mod firm;
mod in_process;
mod ledger;
mod rng;
pub mod server;
pub mod wire;

pub use faults::{Fault, FaultPlan, Faults};
pub use firm::{FirmSpec, SimulatedFirm};
pub use in_process::InProcess;

use ledger::Ledger;
use pshub_engine::flows::invoice_status::invoice_id;
use rng::Rng;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use wire::*;

/// A posted line as the ERP keeps it: written straight from the line, since lines are
/// the sandbox's one record that arrives at event rate.
#[derive(serde::Serialize)]
struct LineRecord<'a> {
    key: &'a str,
    erp_id: &'a str,
    /// The invoice that holds it: one per project and calendar month.
    invoice_id: String,
    line: &'a LineBody,
}

/// One of the sandbox's systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    Psa,
    Erp,
    Crm,
}

impl System {
    pub const ALL: [System; 3] = [System::Psa, System::Erp, System::Crm];

    pub fn as_str(&self) -> &'static str {
        match self {
            System::Psa => "psa",
            System::Erp => "erp",
            System::Crm => "crm",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The collections it shows to `GET /sandbox/{system}/{collection}`.
    pub fn collections(&self) -> &'static [&'static str] {
        match self {
            System::Psa => &["engagements", "resources"],
            System::Erp => &[
                "projects",
                "billing-rules",
                "lines",
                "employees",
                "cost-prices",
                "schedules",
            ],
            System::Crm => &["opportunities", "invoices"],
        }
    }
}

/// What a create answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Created (or created before under the same key): the id the system gave it.
    Created(String),
    /// Refused on business grounds. A refusal is not remembered, so a corrected retry
    /// under the same key goes through.
    Refused(String),
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    creates: u64,
    repeats: u64,
    refused: u64,
}

struct Collection {
    records: Ledger,
    stats: Stats,
}

struct ErpState {
    projects: Collection,
    lines: Collection,
    rules: Collection,
    /// Project code to the ERP's id; few enough to keep whole.
    by_code: HashMap<String, String>,
}

/// The updates each system keeps as they come (a worker's resource status, costing
/// attributes, an invoice's status), one collection each, with an id of the system's own.
const KEPT: [(System, &str); 5] = [
    (System::Psa, "resources"),
    (System::Erp, "employees"),
    (System::Erp, "cost-prices"),
    (System::Erp, "schedules"),
    (System::Crm, "invoices"),
];

pub struct Sandbox {
    kept: Mutex<HashMap<(System, &'static str), Collection>>,
    psa: Mutex<Collection>,
    erp: Mutex<ErpState>,
    crm: Mutex<Collection>,
    faults: Mutex<FaultPlan>,
    rng: Mutex<Rng>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn record_id(text: &str, field: &str) -> Option<String> {
    serde_json::from_str::<Value>(text)
        .ok()?
        .get(field)?
        .as_str()
        .map(str::to_string)
}

/// The id field of each collection's records.
fn id_field(system: System, collection: &str) -> &'static str {
    match (system, collection) {
        (_, "resources" | "employees" | "cost-prices" | "schedules" | "invoices") => "update_id",
        (System::Psa, _) => "psa_id",
        (System::Crm, _) => "opportunity_id",
        (System::Erp, "billing-rules") => "rules_id",
        (System::Erp, _) => "erp_id",
    }
}

impl Collection {
    fn new(records: Ledger) -> Self {
        Collection {
            records,
            stats: Stats::default(),
        }
    }

    /// The id a repeated key was first answered with.
    fn repeated(&mut self, key: &str, field: &str) -> std::io::Result<Option<String>> {
        let Some(seq) = self.records.find(key)? else {
            return Ok(None);
        };
        self.stats.repeats += 1;
        Ok(self
            .records
            .get(seq)?
            .and_then(|text| record_id(&text, field)))
    }
}

impl Sandbox {
    /// Systems that forget everything when the process ends.
    pub fn in_memory() -> Arc<Self> {
        Arc::new(Sandbox {
            kept: Mutex::new(
                KEPT.iter()
                    .map(|&k| (k, Collection::new(Ledger::in_memory())))
                    .collect(),
            ),
            psa: Mutex::new(Collection::new(Ledger::in_memory())),
            erp: Mutex::new(ErpState {
                projects: Collection::new(Ledger::in_memory()),
                lines: Collection::new(Ledger::in_memory()),
                rules: Collection::new(Ledger::in_memory()),
                by_code: HashMap::new(),
            }),
            crm: Mutex::new(Collection::new(Ledger::in_memory())),
            faults: Mutex::new(FaultPlan::default()),
            rng: Mutex::new(Rng::new(7)),
        })
    }

    /// Systems that keep their records in `data_dir`, as real ones would across restarts.
    pub fn open(data_dir: &Path) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(data_dir)?;
        let ledger = |name: &str| Ledger::open(&data_dir.join(format!("sandbox-{name}.jsonl")));
        let projects = ledger("erp-projects")?;
        let mut by_code = HashMap::new();
        for seq in 0..projects.len() as u64 {
            if let Some(text) = projects.get(seq)?
                && let (Some(code), Some(id)) =
                    (record_id(&text, "project_code"), record_id(&text, "erp_id"))
            {
                by_code.insert(code, id);
            }
        }
        let mut kept = HashMap::new();
        for (system, collection) in KEPT {
            let name = format!("{}-{collection}", system.as_str());
            kept.insert((system, collection), Collection::new(ledger(&name)?));
        }
        Ok(Arc::new(Sandbox {
            kept: Mutex::new(kept),
            psa: Mutex::new(Collection::new(ledger("psa-engagements")?)),
            erp: Mutex::new(ErpState {
                projects: Collection::new(projects),
                lines: Collection::new(ledger("erp-lines")?),
                rules: Collection::new(ledger("erp-billing-rules")?),
                by_code,
            }),
            crm: Mutex::new(Collection::new(ledger("crm-opportunities")?)),
            faults: Mutex::new(FaultPlan::default()),
            rng: Mutex::new(Rng::new(7)),
        }))
    }

    pub fn set_faults(&self, plan: FaultPlan) {
        *lock(&self.faults) = plan;
    }

    pub fn set_system_faults(&self, system: System, faults: Faults) {
        lock(&self.faults).set(system, faults);
    }

    /// Decides whether this call to `system` misbehaves, after the configured latency.
    pub fn fault(&self, system: System) -> Option<Fault> {
        let plan = lock(&self.faults).clone();
        let latency = plan.of(system).latency;
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        plan.roll(system, &mut lock(&self.rng))
    }

    pub fn create_engagement(&self, key: &str, body: &EngagementBody) -> std::io::Result<Answer> {
        let mut psa = lock(&self.psa);
        psa.stats.creates += 1;
        if let Some(id) = psa.repeated(key, "psa_id")? {
            return Ok(Answer::Created(id));
        }
        let id = format!("PSA-ENG-{:05}", psa.records.len() + 1);
        let record = json!({ "key": key, "psa_id": id, "engagement": body, "project_code": body.project_code });
        psa.records
            .append(&[(key.to_string(), record.to_string())])?;
        Ok(Answer::Created(id))
    }

    pub fn provision_project(&self, key: &str, body: &ProjectBody) -> std::io::Result<Answer> {
        let mut erp = lock(&self.erp);
        erp.projects.stats.creates += 1;
        if let Some(id) = erp.projects.repeated(key, "erp_id")? {
            return Ok(Answer::Created(id));
        }
        if erp.by_code.contains_key(&body.project_code) {
            erp.projects.stats.refused += 1;
            return Ok(Answer::Refused(format!(
                "project {} exists already, created under another request",
                body.project_code
            )));
        }
        let id = format!("ERP-PRJ-{:05}", erp.projects.records.len() + 1);
        let record = json!({ "key": key, "erp_id": id, "project_code": body.project_code,
            "psa_id": body.psa_id, "project": body });
        erp.projects
            .records
            .append(&[(key.to_string(), record.to_string())])?;
        erp.by_code.insert(body.project_code.clone(), id.clone());
        Ok(Answer::Created(id))
    }

    pub fn attach_billing_rules(
        &self,
        key: &str,
        body: &BillingRulesBody,
    ) -> std::io::Result<Answer> {
        let mut erp = lock(&self.erp);
        erp.rules.stats.creates += 1;
        if let Some(seq) = erp.rules.records.find(key)? {
            erp.rules.stats.repeats += 1;
            let text = erp.rules.records.get(seq)?.unwrap_or_default();
            return Ok(Answer::Created(
                record_id(&text, "rules_id").unwrap_or_default(),
            ));
        }
        if !erp.by_code.contains_key(&body.project_code) {
            erp.rules.stats.refused += 1;
            return Ok(Answer::Refused(format!(
                "project {} does not exist in the ERP",
                body.project_code
            )));
        }
        let id = format!("ERP-RULES-{:05}", erp.rules.records.len() + 1);
        let record =
            json!({ "key": key, "rules_id": id, "project_code": body.project_code, "rules": body });
        erp.rules
            .records
            .append(&[(key.to_string(), record.to_string())])?;
        Ok(Answer::Created(id))
    }

    pub fn post_lines(&self, lines: &[LineBody]) -> std::io::Result<Vec<Answer>> {
        let mut guard = lock(&self.erp);
        let erp = &mut *guard;
        let mut answers = Vec::with_capacity(lines.len());
        let mut new = Vec::new();
        let mut next = erp.lines.records.len() + 1;
        let mut in_batch: HashMap<&str, String> = HashMap::new();
        for line in lines {
            erp.lines.stats.creates += 1;
            if let Some(id) = in_batch.get(line.idempotency_key.as_str()) {
                erp.lines.stats.repeats += 1;
                answers.push(Answer::Created(id.clone()));
                continue;
            }
            if let Some(id) = erp.lines.repeated(&line.idempotency_key, "erp_id")? {
                answers.push(Answer::Created(id));
                continue;
            }
            if !erp.by_code.contains_key(&line.project_code) {
                erp.lines.stats.refused += 1;
                answers.push(Answer::Refused(format!(
                    "project {} does not exist in the ERP",
                    line.project_code
                )));
                continue;
            }
            let id = format!("ERP-L-{next:08}");
            next += 1;
            let invoice_id = chrono::NaiveDate::parse_from_str(&line.date, "%Y-%m-%d")
                .map(|date| invoice_id(&line.project_code, date))
                .unwrap_or_default();
            let record = LineRecord {
                key: &line.idempotency_key,
                erp_id: &id,
                invoice_id,
                line,
            };
            new.push((
                line.idempotency_key.clone(),
                serde_json::to_string(&record)?,
            ));
            in_batch.insert(&line.idempotency_key, id.clone());
            answers.push(Answer::Created(id));
        }
        if !new.is_empty() {
            erp.lines.records.append(&new)?;
        }
        Ok(answers)
    }

    pub fn write_back_ids(&self, key: &str, body: &WriteBackBody) -> std::io::Result<Answer> {
        let mut crm = lock(&self.crm);
        crm.stats.creates += 1;
        if let Some(id) = crm.repeated(key, "opportunity_id")? {
            return Ok(Answer::Created(id));
        }
        let record = json!({ "key": key, "opportunity_id": body.opportunity_id, "psa_id": body.psa_id,
            "erp_id": body.erp_id, "project_code": body.project_code });
        crm.records
            .append(&[(key.to_string(), record.to_string())])?;
        Ok(Answer::Created(body.opportunity_id.clone()))
    }

    /// Keeps an update in one of a system's kept collections, once per key: answers the id
    /// the system gave it.
    pub fn keep(
        &self,
        system: System,
        collection: &str,
        key: &str,
        body: Value,
    ) -> std::io::Result<Answer> {
        let mut kept = lock(&self.kept);
        let Some((_, found)) = kept
            .iter_mut()
            .find(|((s, c), _)| *s == system && *c == collection)
        else {
            return Ok(Answer::Refused(format!(
                "the {} keeps no {collection}",
                system.as_str()
            )));
        };
        found.stats.creates += 1;
        if let Some(id) = found.repeated(key, "update_id")? {
            return Ok(Answer::Created(id));
        }
        let id = format!(
            "{}-{}-{:06}",
            system.as_str().to_uppercase(),
            collection.to_uppercase(),
            found.records.len() + 1
        );
        let record = json!({ "key": key, "update_id": id, "update": body });
        found
            .records
            .append(&[(key.to_string(), record.to_string())])?;
        Ok(Answer::Created(id))
    }

    /// What each key was first answered with, where a create under it succeeded.
    pub fn lookup(&self, system: System, keys: &[String]) -> std::io::Result<Vec<Option<String>>> {
        let find =
            |collection: &Collection, field: &str, key: &str| -> std::io::Result<Option<String>> {
                Ok(match collection.records.find(key)? {
                    Some(seq) => collection
                        .records
                        .get(seq)?
                        .and_then(|t| record_id(&t, field)),
                    None => None,
                })
            };
        let kept = lock(&self.kept);
        let find_kept = |key: &str| -> std::io::Result<Option<String>> {
            for ((s, _), collection) in kept.iter() {
                if *s == system
                    && let Some(id) = find(collection, "update_id", key)?
                {
                    return Ok(Some(id));
                }
            }
            Ok(None)
        };
        keys.iter()
            .map(|key| {
                if let Some(id) = find_kept(key)? {
                    return Ok(Some(id));
                }
                match system {
                    System::Psa => find(&lock(&self.psa), "psa_id", key),
                    System::Crm => find(&lock(&self.crm), "opportunity_id", key),
                    System::Erp => {
                        let erp = lock(&self.erp);
                        if let Some(id) = find(&erp.lines, "erp_id", key)? {
                            return Ok(Some(id));
                        }
                        if let Some(id) = find(&erp.projects, "erp_id", key)? {
                            return Ok(Some(id));
                        }
                        find(&erp.rules, "rules_id", key)
                    }
                }
            })
            .collect()
    }

    /// A page of a system's records: `{"items": [...], "next": cursor-or-null}`; the cursor
    /// is the position after the page. `None` for a collection the system does not have.
    pub fn list(
        &self,
        system: System,
        collection: &str,
        after: u64,
        limit: u32,
    ) -> std::io::Result<Option<Value>> {
        if !system.collections().contains(&collection) {
            return Ok(None);
        }
        let page = |records: &Ledger| -> std::io::Result<Value> {
            let mut items = Vec::new();
            let end = (after + u64::from(limit)).min(records.len() as u64);
            for seq in after..end {
                if let Some(text) = records.get(seq)? {
                    items.push(item(system, collection, &text));
                }
            }
            let next = (end < records.len() as u64).then(|| end.to_string());
            Ok(json!({ "items": items, "next": next }))
        };
        if let Some((_, found)) = lock(&self.kept)
            .iter()
            .find(|((s, c), _)| *s == system && *c == collection)
        {
            return Ok(Some(page(&found.records)?));
        }
        let answer = match (system, collection) {
            (System::Psa, _) => page(&lock(&self.psa).records)?,
            (System::Crm, _) => page(&lock(&self.crm).records)?,
            (System::Erp, "projects") => page(&lock(&self.erp).projects.records)?,
            (System::Erp, "billing-rules") => page(&lock(&self.erp).rules.records)?,
            (System::Erp, _) => page(&lock(&self.erp).lines.records)?,
        };
        Ok(Some(answer))
    }

    /// Per system: the creates it received and how many were repeats of a key.
    pub fn stats(&self) -> Value {
        let of = |stats: Stats, records: usize| json!({ "creates": stats.creates, "repeats": stats.repeats, "refused": stats.refused, "records": records });
        let erp = lock(&self.erp);
        let collections = [&erp.projects, &erp.rules, &erp.lines];
        let erp_stats = Stats {
            creates: collections.iter().map(|c| c.stats.creates).sum(),
            repeats: collections.iter().map(|c| c.stats.repeats).sum(),
            refused: collections.iter().map(|c| c.stats.refused).sum(),
        };
        let erp_records: usize = collections.iter().map(|c| c.records.len()).sum();
        let psa = lock(&self.psa);
        let crm = lock(&self.crm);
        let kept = lock(&self.kept);
        let kept_of = |system: System, collection: &str| {
            kept.get(&(system, collection))
                .map_or(Value::Null, |c| of(c.stats, c.records.len()))
        };
        json!({
            "psa_resources": kept_of(System::Psa, "resources"),
            "erp_employees": kept_of(System::Erp, "employees"),
            "erp_cost_prices": kept_of(System::Erp, "cost-prices"),
            "erp_schedules": kept_of(System::Erp, "schedules"),
            "crm_invoices": kept_of(System::Crm, "invoices"),
            "psa": of(psa.stats, psa.records.len()),
            "erp": of(erp_stats, erp_records),
            "crm": of(crm.stats, crm.records.len()),
            "erp_lines": of(erp.lines.stats, erp.lines.records.len()),
            "erp_projects": of(erp.projects.stats, erp.projects.records.len()),
            "erp_billing_rules": of(erp.rules.stats, erp.rules.records.len()),
        })
    }

    /// How many lines the ERP holds.
    pub fn line_count(&self) -> usize {
        lock(&self.erp).lines.records.len()
    }
}

/// A stored record as inspection shows it: its fields, with `idempotency_key` for its key.
fn item(system: System, collection: &str, text: &str) -> Value {
    let Ok(Value::Object(mut record)) = serde_json::from_str::<Value>(text) else {
        return Value::Null;
    };
    let key = record.remove("key").unwrap_or(Value::Null);
    let mut item = serde_json::Map::new();
    let id = id_field(system, collection);
    item.insert(id.into(), record.remove(id).unwrap_or(Value::Null));
    item.insert("idempotency_key".into(), key);
    // The body the system received, flattened beside the ids.
    for nested in ["line", "project", "engagement", "update"] {
        if let Some(Value::Object(body)) = record.remove(nested) {
            for (k, v) in body {
                item.entry(k).or_insert(v);
            }
        }
    }
    for (k, v) in record {
        item.entry(k).or_insert(v);
    }
    Value::Object(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pshub_engine::ports::{Erp, LinePosting, Lookup, Outcome, Port, ProjectRequest, Request};
    use pshub_model::Currency;
    use std::time::Duration;

    fn line(key: &str, project: &str) -> LinePosting {
        LinePosting {
            idempotency_key: key.into(),
            kind: "time",
            project_code: project.into(),
            source_id: "T-1".into(),
            posting: 1,
            worker_id: "W-1".into(),
            date: "2026-03-02".parse().unwrap(),
            quantity: "1".parse().unwrap(),
            rate: "100".parse().unwrap(),
            rate_currency: Currency::parse("EUR").unwrap(),
            amount: "100.00".parse().unwrap(),
            currency: Currency::parse("EUR").unwrap(),
            tax_code: "STANDARD".into(),
            billing_class: "professional_services".into(),
            reverses_erp_id: None,
            role: None,
        }
    }

    fn project(code: &str) -> ProjectRequest {
        ProjectRequest {
            idempotency_key: format!("k-{code}"),
            project_code: code.into(),
            name: "Audit".into(),
            legal_entity: "DE01".into(),
            currency: Currency::parse("EUR").unwrap(),
            psa_id: "PSA-ENG-00001".into(),
            customer_id: "C-1".into(),
            customer_name: "Globex GmbH".into(),
        }
    }

    /// Every port behaves the same, in process or over HTTP.
    fn check_port(erp: &dyn Erp, sandbox: &Sandbox) {
        let first = erp.provision_project(&project("P-1"));
        assert_eq!(
            first,
            erp.provision_project(&project("P-1")),
            "a repeated key"
        );
        let posted = erp.post_lines(&[line("k1", "P-1"), line("k2", "P-1"), line("k3", "P-9")]);
        assert!(matches!(&posted[0], Outcome::Done(id) if id.starts_with("ERP-L-")));
        assert!(matches!(&posted[2], Outcome::Rejected(why) if why.contains("P-9")));
        assert_eq!(erp.post_lines(&[line("k1", "P-1")])[0], posted[0]);
        assert_ne!(posted[0], posted[1]);
        assert_eq!(sandbox.line_count(), 2);
        assert_eq!(
            erp.lookup(&["k2", "nope"]),
            vec![
                Lookup::Applied(match &posted[1] {
                    Outcome::Done(id) => id.clone(),
                    other => panic!("{other:?}"),
                }),
                Lookup::NotApplied
            ]
        );
        let stats = sandbox.stats();
        assert_eq!(stats["erp_lines"]["repeats"], 1);
        assert_eq!(stats["erp_projects"]["repeats"], 1);
        let page = sandbox.list(System::Erp, "lines", 0, 1).unwrap().unwrap();
        assert_eq!(page["items"][0]["idempotency_key"], "k1");
        assert_eq!(page["items"][0]["project_code"], "P-1");
        assert_eq!(page["next"], "1");
    }

    #[test]
    fn the_erp_in_process_assigns_ids_once_per_key_and_refuses_unknown_projects() {
        let sandbox = Sandbox::in_memory();
        let port = InProcess {
            sandbox: sandbox.clone(),
            system: System::Erp,
        };
        check_port(&port, &sandbox);
    }

    #[test]
    fn the_systems_keep_their_records_across_restarts() {
        let dir = std::env::temp_dir().join(format!("pshub-sandbox-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = {
            let sandbox = Sandbox::open(&dir).unwrap();
            let erp = InProcess {
                sandbox,
                system: System::Erp,
            };
            erp.provision_project(&project("P-1"));
            erp.post_lines(&[line("k1", "P-1")]).remove(0)
        };
        let sandbox = Sandbox::open(&dir).unwrap();
        let erp = InProcess {
            sandbox: sandbox.clone(),
            system: System::Erp,
        };
        assert_eq!(erp.post_lines(&[line("k1", "P-1")]).remove(0), first);
        assert!(
            matches!(
                erp.post_lines(&[line("k2", "P-1")]).remove(0),
                Outcome::Done(_)
            ),
            "the project is still known"
        );
        assert_eq!(sandbox.line_count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lost_reply_writes_and_the_lookup_finds_it() {
        let sandbox = Sandbox::in_memory();
        let erp = InProcess {
            sandbox: sandbox.clone(),
            system: System::Erp,
        };
        erp.provision_project(&project("P-1"));
        sandbox.set_system_faults(
            System::Erp,
            Faults {
                lost_reply_per_million: 1_000_000,
                ..Faults::default()
            },
        );
        assert!(matches!(
            erp.post_lines(&[line("k1", "P-1")])[0],
            Outcome::Unknown(_)
        ));
        sandbox.set_faults(FaultPlan::default());
        assert!(
            matches!(&erp.lookup(&["k1"])[0], Lookup::Applied(_)),
            "it was written"
        );
        assert_eq!(sandbox.line_count(), 1);
    }

    /// Runs the sandbox's server on a free port in a thread of its own.
    fn serve(sandbox: Arc<Sandbox>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                server::serve(listener, sandbox, std::future::pending())
                    .await
                    .unwrap();
            });
        });
        address
    }

    #[test]
    fn over_http_the_ports_behave_the_same_and_faults_map_to_outcomes() {
        let sandbox = Sandbox::in_memory();
        let client =
            client::HttpSandbox::new(&serve(sandbox.clone()), Duration::from_millis(500)).unwrap();
        let systems = client.systems(pshub_engine::ports::Systems::default());
        let Some(Port::Erp(erp)) = systems.get("erp") else {
            panic!("an ERP")
        };
        check_port(erp.as_ref(), &sandbox);

        let mut faults = Faults {
            fail_per_million: 1_000_000,
            retry_after: Some(Duration::from_secs(2)),
            ..Faults::default()
        };
        sandbox.set_system_faults(System::Erp, faults.clone());
        assert_eq!(
            erp.post_lines(&[line("k7", "P-1")])[0],
            Outcome::Technical {
                message: erp.post_lines(&[line("k7", "P-1")])[0].clone().message(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
        faults.fail_per_million = 0;
        faults.lost_reply_per_million = 1_000_000;
        sandbox.set_system_faults(System::Erp, faults.clone());
        assert!(
            matches!(erp.post_lines(&[line("k8", "P-1")])[0], Outcome::Unknown(_)),
            "lost"
        );
        faults.lost_reply_per_million = 0;
        faults.timeout_per_million = 1_000_000;
        faults.timeout_hold = Duration::from_millis(900);
        sandbox.set_system_faults(System::Erp, faults);
        assert!(
            matches!(erp.post_lines(&[line("k9", "P-1")])[0], Outcome::Unknown(_)),
            "timed out"
        );
        sandbox.set_faults(FaultPlan::default());
        let found = erp.lookup(&["k8", "k9"]);
        assert!(
            matches!(found[0], Lookup::Applied(_)),
            "the lost reply's write happened"
        );
        assert_eq!(
            found[1],
            Lookup::NotApplied,
            "the timed-out call wrote nothing"
        );
        let (status, page) = client.get("/sandbox/erp/projects").unwrap();
        assert_eq!(status, 200);
        assert_eq!(page["items"][0]["project_code"], "P-1");
        let (status, _) = client.get("/sandbox/erp/nothing").unwrap();
        assert_eq!(status, 404);
        let (status, stats) = client.get("/sandbox/stats").unwrap();
        assert_eq!(
            (status, stats["erp_lines"]["repeats"].as_u64()),
            (200, Some(1))
        );
        let publish = Request::Publish(pshub_engine::ports::PublishRequest {
            idempotency_key: "x".into(),
            event_type: "t".into(),
            data: serde_json::Value::Null,
        });
        assert!(matches!(
            &Port::Erp(erp.clone()).call("erp", &[publish])[0],
            Outcome::Rejected(why) if why.contains("cannot publish")
        ));
    }
}

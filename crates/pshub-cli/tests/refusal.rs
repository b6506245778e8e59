//! When the ERP refuses lines on business grounds, each becomes a case for the integration
//! team; resolving the case sends the line again, once.

use pshub_connectors::sandbox::{FirmSpec, InProcess, Sandbox, SimulatedFirm};
use pshub_engine::ports::{
    BillingRulesRequest, CostPriceRequest, CostingRequest, Erp, LinePosting, Lookup, Outcome, Port,
    ProjectRequest, ScheduleRequest,
};
use pshub_engine::store::{CaseFilter, Page};
use pshub_engine::summary::Summary;
use pshub_engine::{Acting, Actor, Config, Engine, Systems};
use pshub_model::records::{ExceptionState, OwnerTeam};
use pshub_store_sqlite::SqliteStore;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod support;

/// An ERP that refuses every line while `refusing` is set, and remembers what it took.
#[derive(Default)]
struct ChoosyErp {
    refusing: AtomicBool,
    taken: Mutex<HashSet<String>>,
}

impl Erp for ChoosyErp {
    fn provision_project(&self, project: &ProjectRequest) -> Outcome {
        Outcome::Done(format!("PRJ-{}", project.project_code))
    }

    fn attach_billing_rules(&self, rules: &BillingRulesRequest) -> Outcome {
        Outcome::Done(format!("RULES-{}", rules.project_code))
    }

    fn issue_schedule(&self, schedule: &ScheduleRequest) -> Outcome {
        Outcome::Done(format!("SCHEDULE-{}", schedule.project_code))
    }

    fn update_costing(&self, costing: &CostingRequest) -> Outcome {
        Outcome::Done(format!("COSTING-{}", costing.worker_id))
    }

    fn update_cost_price(&self, price: &CostPriceRequest) -> Outcome {
        Outcome::Done(format!("COST-{}", price.worker_id))
    }

    fn post_lines(&self, lines: &[LinePosting]) -> Vec<Outcome> {
        lines
            .iter()
            .map(|line| {
                if self.refusing.load(Ordering::Relaxed) {
                    return Outcome::Rejected(format!(
                        "cost center closed for {}",
                        line.project_code
                    ));
                }
                self.taken
                    .lock()
                    .unwrap()
                    .insert(line.idempotency_key.clone());
                Outcome::Done(format!("ERP-{}", line.idempotency_key))
            })
            .collect()
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        let taken = self.taken.lock().unwrap();
        keys.iter()
            .map(|k| match taken.contains(*k) {
                true => Lookup::Applied(format!("ERP-{k}")),
                false => Lookup::NotApplied,
            })
            .collect()
    }
}

#[test]
fn refused_lines_are_cases_and_resolving_them_posts_each_once() {
    let dir = support::temp_dir("refusal");
    let erp = Arc::new(ChoosyErp::default());
    erp.refusing.store(true, Ordering::Relaxed);
    // The PSA and CRM of the sandbox, and the choosy ERP.
    let systems = InProcess::systems(&Sandbox::in_memory(), Systems::default())
        .with("erp", Port::Erp(erp.clone()));
    let engine = Engine::open(
        Arc::new(SqliteStore::open(&dir).unwrap()),
        Config::default(),
        systems,
    )
    .unwrap();
    let firm = SimulatedFirm::new(FirmSpec {
        workers: 6,
        entries: 120,
        faults: false,
        ..FirmSpec::default()
    });
    let mut events = firm.reference_events();
    events.extend(firm.work_events());
    for chunk in events.chunks(200) {
        engine.submit(chunk.to_vec()).unwrap();
    }
    assert!(engine.settle(Duration::from_secs(30)).unwrap());

    let open = CaseFilter {
        owner: Some(OwnerTeam::Integration),
        state: Some(ExceptionState::Open),
        ..CaseFilter::default()
    };
    let cases = engine.read(|r| r.cases(&open, Page::ALL)).unwrap();
    let summary = engine.read(|r| Summary::compute(r)).unwrap();
    assert!(!cases.is_empty());
    assert_eq!(
        cases.len() as u64,
        summary.lines_undelivered,
        "one case per refused line"
    );
    assert!(
        cases
            .iter()
            .all(|c| c.kind == "erp_rejected" && c.reason.contains("cost center closed"))
    );
    assert_eq!(summary.lines_posted, 0);

    erp.refusing.store(false, Ordering::Relaxed);
    let acting = Acting {
        actor: Actor::system("test"),
        note: None,
    };
    for case in &cases {
        engine.resolve(case.id, &acting).unwrap();
    }
    assert!(engine.settle(Duration::from_secs(30)).unwrap());
    let summary = engine.read(|r| Summary::compute(r)).unwrap();
    assert_eq!(summary.lines_undelivered, 0);
    assert_eq!(summary.lines_posted as usize, cases.len());
    assert_eq!(
        erp.taken.lock().unwrap().len(),
        cases.len(),
        "each line reached the ERP once"
    );
    assert!(
        engine
            .read(|r| r.cases(&open, Page::ALL))
            .unwrap()
            .is_empty()
    );
    assert!(summary.conservation_breaks().is_empty());
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Conservation of money over randomly generated firm-months (time and materials, and with
//! `contracts` fixed-fee milestones, caps crossed and amendments): per currency, the value of
//! approved billable work equals the value posted plus the value held in open exception
//! cases, to the minor unit; and every entry's lines net to its value exactly once.

use proptest::prelude::*;
use pshub_connectors::sandbox::{Faults, FirmSpec, InProcess, Sandbox, SimulatedFirm, System};
use pshub_engine::retry::RetrySchedule;
use pshub_engine::store::{EntryPhase, LineFilter, Page};
use pshub_engine::summary::Summary;
use pshub_engine::{Config, Engine, Systems};
use pshub_store_sqlite::SqliteStore;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn run_month(
    seed: u64,
    workers: usize,
    entries: usize,
    faults: bool,
    flaky_erp: bool,
    batch: usize,
    contracts: bool,
) -> Month {
    let dir = std::env::temp_dir().join(format!(
        "pshub-conservation-{}-{seed}-{workers}-{entries}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir).unwrap();
    let sandbox = Sandbox::in_memory();
    if flaky_erp {
        sandbox.set_system_faults(
            System::Erp,
            Faults {
                fail_per_million: 150_000,
                lost_reply_per_million: 50_000,
                ..Faults::default()
            },
        );
    }
    let config = Config {
        retry: RetrySchedule {
            delays: vec![Duration::ZERO; 30],
            retry_after_cap: Duration::ZERO,
        },
        breaker_threshold: 1_000,
        ..Config::default()
    };
    let engine = Engine::open(
        Arc::new(store),
        config,
        InProcess::systems(&sandbox, Systems::default()),
    )
    .unwrap();
    let firm = SimulatedFirm::new(FirmSpec {
        workers,
        projects: 3 + workers / 5,
        entries,
        seed,
        faults,
        contracts,
        ..FirmSpec::default()
    });
    for chunk in firm.reference_events().chunks(batch) {
        engine.submit(chunk.to_vec()).unwrap();
    }
    let work: Vec<_> = firm.work_events().collect();
    for chunk in work.chunks(batch) {
        engine.submit(chunk.to_vec()).unwrap();
        engine.deliver_due(500).unwrap();
    }
    assert!(
        engine.settle(Duration::from_secs(60)).unwrap(),
        "the outbox empties"
    );

    let summary = engine.read(|r| Summary::compute(r)).unwrap();
    for currency in summary.currencies() {
        let approved = summary.approved_value.get(currency);
        let accounted = summary.posted_value.get(currency) + summary.held_value.get(currency);
        assert_eq!(
            approved, accounted,
            "{currency}: approved {approved} != posted + held {accounted} (seed {seed})"
        );
        assert!(
            summary.undelivered_value.get(currency).is_zero(),
            "{currency}: undelivered after drain"
        );
        assert!(summary.written_off_value.get(currency).is_zero());
        assert_eq!(
            approved.scale(),
            currency.minor_units(),
            "{currency}: kept at the minor unit"
        );
    }

    // Nothing doubled: each entry's lines net to its value if billed, else to zero.
    engine.read(|r| {
        let lines = r.lines(&LineFilter::default(), Page::ALL).unwrap();
        let mut net: BTreeMap<i64, (Decimal, usize)> = BTreeMap::new();
        for line in &lines {
            let slot = net.entry(line.line.entry_row).or_default();
            slot.0 += line.line.amount;
            slot.1 += 1;
        }
        for (entry_row, (net, count)) in net {
            let entry = r.entry(entry_row).unwrap().expect("the entry of a line");
            let expected = match entry.phase {
                EntryPhase::Billed => entry.value.expect("a billed entry has a value"),
                _ => Decimal::ZERO,
            };
            assert_eq!(
                net, expected,
                "entry {} ({:?}) nets {net} over {count} lines",
                entry.entry_id, entry.phase
            );
        }
    });
    assert_eq!(
        summary.lines_posted + summary.reversals_posted,
        sandbox.line_count() as u64,
        "the ERP holds each line once"
    );
    let month = engine.read(|r| {
        let mut cases = BTreeMap::new();
        r.each_case(&mut |case| *cases.entry(case.kind.clone()).or_default() += 1)
            .unwrap();
        let lines = r.lines(&LineFilter::default(), Page::ALL).unwrap();
        let milestone_lines = lines
            .iter()
            .filter(|l| l.line.kind == pshub_model::records::LineKind::Milestone)
            .count();
        Month {
            cases,
            milestone_lines,
        }
    });
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    month
}

/// What a month left behind, for tests that look at its kinds of work.
struct Month {
    cases: BTreeMap<String, usize>,
    milestone_lines: usize,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn approved_value_is_posted_or_held_in_every_currency(
        seed in any::<u64>(),
        workers in 3usize..40,
        entries in 50usize..2_500,
        faults in prop::bool::weighted(0.8),
        flaky_erp in any::<bool>(),
        batch in prop::sample::select(vec![1usize, 7, 100, 500]),
        contracts in prop::bool::weighted(0.7),
    ) {
        let _ = run_month(seed, workers, entries, faults, flaky_erp, batch, contracts);
    }
}

/// Found by the property test: with a flaky ERP, lines were sent before their project's
/// provisioning had gone through, and the ERP refused them. Lines now wait for it.
#[test]
fn lines_wait_for_their_project_to_be_provisioned() {
    let _ = run_month(8_256_354, 31, 117, true, true, 500, false);
}

/// A month with every kind of contract: milestones billed once each (Design sent twice),
/// caps crossed and raised, amendments, and conservation across all of it.
#[test]
fn a_month_of_fixed_fee_capped_and_amended_contracts_conserves_money() {
    let month = run_month(2026, 40, 2_400, true, false, 100, true);
    // 11 projects, of which 2 are fixed fee: Kick-off, Design (sent twice) and Handover each
    // bill once; M-9 is in no contract.
    assert_eq!(month.milestone_lines, 2 * 3, "{:?}", month.cases);
    assert_eq!(
        month.cases.get("unknown_milestone"),
        Some(&2),
        "{:?}",
        month.cases
    );
    assert!(
        month.cases.get("cap_exceeded").copied().unwrap_or(0) > 0,
        "{:?}",
        month.cases
    );
}

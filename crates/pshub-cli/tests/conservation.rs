//! Conservation of money over randomly generated firm-months: per currency, the value of
//! approved billable work equals the value posted plus the value held in open exception
//! cases, to the minor unit; and every entry's lines net to its value exactly once.

use proptest::prelude::*;
use pshub_connectors::sandbox::{ErpFaults, FirmSpec, SandboxErp, SimulatedFirm};
use pshub_engine::retry::RetrySchedule;
use pshub_engine::store::{EntryPhase, LineFilter, Page};
use pshub_engine::summary::Summary;
use pshub_engine::{Config, Engine};
use pshub_store_sqlite::SqliteStore;
use rust_decimal::Decimal;
use std::sync::Arc;
use std::time::Duration;

fn run_month(
    seed: u64,
    workers: usize,
    entries: usize,
    faults: bool,
    flaky_erp: bool,
    batch: usize,
) {
    let dir = std::env::temp_dir().join(format!(
        "pshub-conservation-{}-{seed}-{workers}-{entries}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open(&dir).unwrap();
    let erp = Arc::new(SandboxErp::in_memory());
    if flaky_erp {
        erp.set_faults(ErpFaults {
            failure_per_million: 200_000,
            ..ErpFaults::default()
        });
    }
    let config = Config {
        retry: RetrySchedule {
            delays: vec![Duration::ZERO; 30],
            retry_after_cap: Duration::ZERO,
        },
        ..Config::default()
    };
    let engine = Engine::open(Box::new(store), config, erp.clone()).unwrap();
    let firm = SimulatedFirm::new(FirmSpec {
        workers,
        projects: 3 + workers / 5,
        entries,
        seed,
        faults,
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

    // Nothing doubled: each entry's posted lines net to its value if billed, else to zero.
    engine.with_hub(|hub| {
        let mut entries = Vec::new();
        hub.store()
            .reads()
            .each_entry(&mut |e| entries.push(e.clone()))
            .unwrap();
        for entry in entries {
            let filter = LineFilter {
                entry_row: Some(entry.row_id),
                ..LineFilter::default()
            };
            let lines = hub.store().reads().lines(&filter, Page::ALL).unwrap();
            let net: Decimal = lines.iter().map(|l| l.amount).sum();
            let expected = match entry.phase {
                EntryPhase::Billed => entry.value.expect("a billed entry has a value"),
                _ => Decimal::ZERO,
            };
            assert_eq!(
                net,
                expected,
                "entry {} ({:?}) nets {net} over {} lines",
                entry.entry_id,
                entry.phase,
                lines.len()
            );
        }
    });
    assert_eq!(
        summary.lines_posted + summary.reversals_posted,
        erp.line_count() as u64,
        "the ERP holds each line once"
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
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
    ) {
        run_month(seed, workers, entries, faults, flaky_erp, batch);
    }
}

/// Found by the property test: with a flaky ERP, lines were sent before their project's
/// provisioning had gone through, and the ERP refused them. Lines now wait for it.
#[test]
fn lines_wait_for_their_project_to_be_provisioned() {
    run_month(8_256_354, 31, 117, true, true, 500);
}

//! The conformance suite every [`Store`] must pass. A store's crate instantiates it with
//! [`store_conformance_tests!`](crate::store_conformance_tests), giving a function that
//! opens a fresh, empty store; each check then runs against its own store.

use crate::store::*;
use chrono::NaiveDate;
use pshub_model::Currency;
use pshub_model::records::{ExceptionState, LineKind, OwnerTeam};
use rust_decimal::Decimal;

fn dec(text: &str) -> Decimal {
    text.parse().expect("test decimals parse")
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("EUR is a currency")
}

pub fn inbox(seq: i64, source: &str, id: &str, reference: bool) -> InboxRow {
    InboxRow {
        seq,
        source: source.into(),
        event_id: id.into(),
        event_type: "time_entry.approved".into(),
        business_key: format!("time_entry:{id}"),
        correlation_id: format!("cor-{seq}"),
        occurred_at: "2026-03-04T17:02:11.000Z".into(),
        received_at: "2026-03-04T17:02:12.000Z".into(),
        data: format!("{{\"entry_id\":\"{id}\"}}"),
        reference,
    }
}

pub fn line(id: i64, reverses: Option<i64>) -> LineRow {
    LineRow {
        id,
        kind: if reverses.is_some() {
            LineKind::Reversal
        } else {
            LineKind::Time
        },
        status: LineStatus::Pending,
        erp_id: None,
        entry_row: 1,
        source_id: "T-1".into(),
        event_seq: 1,
        project_code: "P-1".into(),
        worker_id: "W-1".into(),
        date: NaiveDate::from_ymd_opt(2026, 3, 4).expect("a date"),
        quantity: dec("7.5"),
        rate: dec("150"),
        rate_currency: eur(),
        fx_rate: Some(dec("1.0835")),
        amount: if reverses.is_some() {
            dec("-1125.00")
        } else {
            dec("1125.00")
        },
        currency: eur(),
        tax_code: "STANDARD".into(),
        billing_class: "professional_services".into(),
        reverses,
        correlation_id: "cor-1".into(),
        created_at: "2026-03-04T17:02:12.000Z".into(),
        posted_at: None,
        attempts: 0,
        next_attempt_at: 0,
        last_error: None,
    }
}

pub fn outbox(id: i64, subject: i64, due_at: i64) -> OutboxRow {
    OutboxRow {
        id,
        target: "erp".into(),
        operation: Operation::ProvisionProject,
        subject,
        idempotency_key: format!("project:P-{subject}"),
        state: OutboxState::Pending,
        attempts: 0,
        next_attempt_at: due_at,
        last_error: None,
        correlation_id: "cor-1".into(),
    }
}

pub fn case(id: i64, owner: OwnerTeam) -> CaseRow {
    CaseRow {
        id,
        kind: "missing_rate".into(),
        owner,
        business_key: "T-1".into(),
        state: ExceptionState::Open,
        reason: "no bill rate".into(),
        suggested_fix: "send the rate card".into(),
        correlation_id: "cor-1".into(),
        event_seq: 1,
        entry_row: Some(1),
        line_id: None,
        outbox_id: None,
        value: Some(dec("10.00")),
        currency: Some(eur()),
        created_at: "2026-03-04T17:02:12.000Z".into(),
        updated_at: "2026-03-04T17:02:12.000Z".into(),
        resolution: None,
    }
}

pub fn entry(row_id: i64, id: &str) -> EntryRow {
    EntryRow {
        row_id,
        kind: EntryKind::Time,
        entry_id: id.into(),
        phase: EntryPhase::Billed,
        event_seq: 1,
        fingerprint: u64::MAX - 7,
        line_id: Some(1),
        case_id: None,
        value: Some(dec("1125.00")),
        currency: Some(eur()),
        manual: false,
    }
}

/// Every row written comes back exactly as written.
pub fn rows_read_back_as_written(store: &mut dyn Store) {
    let commit = Commit {
        inbox: vec![inbox(1, "psa", "e1", false), inbox(2, "erp", "rc", true)],
        entries: vec![entry(1, "T-1")],
        lines: vec![line(1, None)],
        outbox: vec![outbox(1, 1, 0)],
        cases: vec![case(1, OwnerTeam::Finance)],
        counters: Counters {
            received: 3,
            duplicates: 1,
            conflicts: 0,
            quarantined: 0,
        },
        ..Commit::default()
    };
    store.commit(&commit).expect("commit");
    assert_eq!(
        store.reads().event(1).unwrap(),
        Some(commit.inbox[0].clone())
    );
    assert_eq!(
        store.find_event("psa", "e1").unwrap(),
        Some(commit.inbox[0].clone())
    );
    assert_eq!(
        store.find_event("psa", "rc").unwrap(),
        None,
        "the key is source and id together"
    );
    assert_eq!(
        store.reads().entry(1).unwrap(),
        Some(commit.entries[0].clone())
    );
    assert_eq!(
        store.reads().line(1).unwrap(),
        Some(commit.lines[0].clone())
    );
    assert_eq!(
        store.reads().outbox_item(1).unwrap(),
        Some(commit.outbox[0].clone())
    );
    assert_eq!(
        store.reads().case(1).unwrap(),
        Some(commit.cases[0].clone())
    );
    assert_eq!(store.reads().counters().unwrap(), commit.counters);
    let mut reader = store.reader().unwrap();
    assert_eq!(
        reader.line(1).unwrap(),
        Some(commit.lines[0].clone()),
        "a reader sees what is committed"
    );
    let loaded = store.load().unwrap();
    assert_eq!(loaded.reference, vec![commit.inbox[1].clone()]);
    assert_eq!(
        (
            loaded.max_ids.seq,
            loaded.max_ids.line,
            loaded.max_ids.case,
            loaded.max_ids.entry
        ),
        (2, 1, 1, 1)
    );
}

/// A commit that fails writes nothing of itself.
pub fn a_failed_commit_writes_nothing(store: &mut dyn Store) {
    store
        .commit(&Commit {
            inbox: vec![inbox(1, "psa", "e1", false)],
            ..Commit::default()
        })
        .unwrap();
    let clashing = Commit {
        lines: vec![line(5, None)],
        inbox: vec![
            inbox(2, "psa", "e2", false),
            inbox(1, "psa", "again", false),
        ],
        ..Commit::default()
    };
    assert!(
        store.commit(&clashing).is_err(),
        "a second row with seq 1 is refused"
    );
    assert_eq!(store.reads().event(2).unwrap(), None);
    assert_eq!(store.reads().line(5).unwrap(), None);
    assert_eq!(store.find_event("psa", "e2").unwrap(), None);
}

/// Updates change a line's and an item's delivery, and nothing else.
pub fn updates_change_only_the_delivery(store: &mut dyn Store) {
    store
        .commit(&Commit {
            lines: vec![line(1, None)],
            outbox: vec![outbox(1, 1, 0)],
            ..Commit::default()
        })
        .unwrap();
    let update = Commit {
        line_updates: vec![LineUpdate {
            id: 1,
            status: LineStatus::Posted,
            erp_id: Some("ERP-1".into()),
            posted_at: Some("t".into()),
            attempts: 3,
            next_attempt_at: 7,
            last_error: None,
        }],
        outbox_updates: vec![OutboxUpdate {
            id: 1,
            state: OutboxState::Delivered,
            attempts: 2,
            next_attempt_at: 9,
            last_error: None,
        }],
        ..Commit::default()
    };
    store.commit(&update).unwrap();
    let mut expected = line(1, None);
    expected.status = LineStatus::Posted;
    expected.erp_id = Some("ERP-1".into());
    expected.posted_at = Some("t".into());
    expected.attempts = 3;
    expected.next_attempt_at = 7;
    assert_eq!(store.reads().line(1).unwrap(), Some(expected));
    let item = store.reads().outbox_item(1).unwrap().unwrap();
    assert_eq!(
        (item.state, item.attempts, item.next_attempt_at),
        (OutboxState::Delivered, 2, 9)
    );
    assert_eq!(item.idempotency_key, "project:P-1");
}

/// Due deliveries, read on a reader: pending and due only, oldest first, calls
/// and lines, with the ERP id of the line a reversal cancels once it is posted.
pub fn due_deliveries_come_oldest_first_with_their_lines(store: &mut dyn Store) {
    let mut posted = line(1, None);
    posted.status = LineStatus::Posted;
    posted.erp_id = Some("ERP-1".into());
    let mut reversal = line(2, Some(1));
    reversal.next_attempt_at = 100;
    let mut later = line(3, None);
    later.next_attempt_at = 5_000;
    let mut delivered = outbox(1, 1, 0);
    delivered.state = OutboxState::Delivered;
    store
        .commit(&Commit {
            lines: vec![posted, reversal, later],
            outbox: vec![delivered, outbox(2, 2, 100), outbox(3, 3, 5_000)],
            ..Commit::default()
        })
        .unwrap();
    let names = |due: &[Due]| -> Vec<String> {
        due.iter()
            .map(|d| match d {
                Due::Line { line, .. } => Outbound::Line(line.id).to_string(),
                Due::Call(item) => Outbound::Call(item.id).to_string(),
            })
            .collect()
    };
    let mut reader = store.reader().unwrap();
    let due = reader.due_deliveries(1_000, 10).unwrap();
    assert_eq!(
        names(&due),
        ["call-2", "line-2"],
        "delivered and not yet due items stay out"
    );
    let Due::Line {
        reverses_erp_id, ..
    } = &due[1]
    else {
        panic!("a line")
    };
    assert_eq!(reverses_erp_id.as_deref(), Some("ERP-1"));
    assert_eq!(
        names(&reader.due_deliveries(10_000, 10).unwrap()),
        ["call-2", "call-3", "line-2", "line-3"]
    );
    assert_eq!(
        reader.due_deliveries(10_000, 1).unwrap().len(),
        2,
        "the limit holds for each kind"
    );
}

/// Lists page by id in a stable order and filter as asked.
pub fn lists_page_and_filter(store: &mut dyn Store) {
    let lines: Vec<LineRow> = (1..=5)
        .map(|id| {
            let mut l = line(id, None);
            l.project_code = if id % 2 == 0 {
                "P-even".into()
            } else {
                "P-odd".into()
            };
            l
        })
        .collect();
    let cases = vec![
        case(1, OwnerTeam::Finance),
        case(2, OwnerTeam::Pmo),
        case(3, OwnerTeam::Finance),
    ];
    store
        .commit(&Commit {
            lines,
            cases,
            ..Commit::default()
        })
        .unwrap();
    let first = store
        .reads()
        .lines(&LineFilter::default(), Page { after: 0, limit: 2 })
        .unwrap();
    let second = store
        .reads()
        .lines(&LineFilter::default(), Page { after: 2, limit: 2 })
        .unwrap();
    assert_eq!(
        first
            .iter()
            .chain(&second)
            .map(|l| l.id)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let odd = LineFilter {
        project_code: Some("P-odd".into()),
        ..LineFilter::default()
    };
    assert_eq!(
        store
            .reads()
            .lines(&odd, Page::ALL)
            .unwrap()
            .iter()
            .map(|l| l.id)
            .collect::<Vec<_>>(),
        [1, 3, 5]
    );
    let finance = CaseFilter {
        owner: Some(OwnerTeam::Finance),
        ..CaseFilter::default()
    };
    assert_eq!(
        store
            .reads()
            .cases(&finance, Page::ALL)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [1, 3]
    );
}

/// Tokens are found by their hash only.
pub fn tokens_are_found_by_hash(store: &mut dyn Store) {
    store.add_token("hash-1", "finance", "test").unwrap();
    assert_eq!(
        store.reads().token_role("hash-1").unwrap().as_deref(),
        Some("finance")
    );
    assert_eq!(store.reads().token_role("hash-2").unwrap(), None);
}

/// Runs every check of the suite as its own test, each with a fresh store from `$open`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($open:expr) => {
        $crate::store_conformance_tests!(@each $open;
            rows_read_back_as_written,
            a_failed_commit_writes_nothing,
            updates_change_only_the_delivery,
            due_deliveries_come_oldest_first_with_their_lines,
            lists_page_and_filter,
            tokens_are_found_by_hash,
        );
    };
    (@each $open:expr; $($check:ident,)*) => {
        $(
            #[test]
            fn $check() {
                let mut store = $open(stringify!($check));
                $crate::conformance::$check(&mut store);
            }
        )*
    };
}

//! The conformance suite every [`Store`] must pass. A store's crate instantiates it with
//! [`store_conformance_tests!`](crate::store_conformance_tests), giving a function that
//! opens a fresh, empty store; each check then runs against its own store. The concurrency
//! checks run two writers, or two claimers, on one store at once.

use crate::store::*;
use chrono::NaiveDate;
use pshub_model::Currency;
use pshub_model::records::{ExceptionState, LineKind, OwnerTeam};
use rust_decimal::Decimal;
use std::collections::HashSet;

fn dec(text: &str) -> Decimal {
    text.parse().expect("test decimals parse")
}

fn eur() -> Currency {
    Currency::parse("EUR").expect("EUR is a currency")
}

pub fn inbox(seq: i64, source: &str, id: &str, ref_version: Option<i64>) -> InboxRow {
    InboxRow {
        seq,
        source: source.into(),
        event_id: id.into(),
        event_type: "time_entry.approved".into(),
        correlation_id: format!("cor-{seq}"),
        occurred_at: "2026-03-04T17:02:11.000Z".into(),
        received_at: "2026-03-04T17:02:12.000Z".into(),
        raw: format!("{{\"id\":\"{id}\",\"extra\":\"kept\"}}"),
        data: format!("{{\"entry_id\":\"{id}\"}}"),
        ref_version,
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
        postings: 1,
        work: None,
        version: 0,
    }
}

pub fn line(id: i64, posting: u32, step_id: i64, reverses: Option<i64>) -> LineRow {
    LineRow {
        id,
        kind: if reverses.is_some() {
            LineKind::Reversal
        } else {
            LineKind::Time
        },
        entry_row: 1,
        posting,
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
        step_id,
        overtime_hours: None,
        role: Some("consultant".into()),
    }
}

pub fn step(id: i64, system: &str, subject: i64, due_at: i64, waits_on: Option<i64>) -> StepRow {
    StepRow {
        id,
        flow: "time_to_bill".into(),
        step: "post_line".into(),
        system: system.into(),
        subject,
        business_key: format!("time:T-{subject}:1"),
        state: if waits_on.is_some() {
            StepState::Waiting
        } else {
            StepState::Pending
        },
        waits_on,
        attempts: 0,
        next_attempt_at: due_at,
        lease_owner: None,
        lease_until: 0,
        result: None,
        last_error: None,
        outcome_unknown: false,
        correlation_id: "cor-1".into(),
        event_seq: 1,
        created_at: "2026-03-04T17:02:12.000Z".into(),
        done_at: None,
        version: 0,
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
        flow: "time_to_bill".into(),
        entry_row: Some(1),
        step_id: None,
        value: Some(dec("10.00")),
        currency: Some(eur()),
        created_at: "2026-03-04T17:02:12.000Z".into(),
        updated_at: "2026-03-04T17:02:12.000Z".into(),
        resolution: None,
        evidence: Some("{\"why\":\"test\"}".into()),
        version: 0,
    }
}

fn commit(store: &dyn Store, commit: Commit) {
    store
        .commit(&std::sync::Arc::new(commit))
        .expect("the commit is written");
}

fn conflicts(store: &dyn Store, commit: Commit, why: &str) {
    match store.commit(&std::sync::Arc::new(commit)) {
        Err(CommitError::Conflict(_)) => {}
        other => panic!("{why}: expected a conflict, got {other:?}"),
    }
}

/// The row as stored after a write at version `version` (the store bumps it).
fn stored<T: Versioned>(mut row: T, version: i64, set: fn(&mut T, i64)) -> T {
    set(&mut row, version);
    row
}

/// Every row written comes back exactly as written, with its version bumped.
pub fn rows_read_back_as_written(store: &dyn Store) {
    let mut steps = Rows::default();
    steps.put(step(1, "erp", 1, 0, None));
    let mut entries = Rows::default();
    entries.put(entry(1, "T-1"));
    let mut cases = Rows::default();
    cases.put(case(1, OwnerTeam::Finance));
    let inbox_rows = vec![inbox(1, "psa", "e1", None), inbox(2, "erp", "rc", Some(1))];
    commit(
        store,
        Commit {
            inbox: inbox_rows.clone(),
            entries,
            lines: vec![line(1, 1, 1, None)],
            steps,
            cases,
            projects: vec![ProjectRow {
                id: 1,
                project_code: "P-1".into(),
                opportunity_id: "OPP-1".into(),
                event_seq: 2,
                correlation_id: "cor-2".into(),
                created_at: "t".into(),
            }],
            outbound: vec![OutboundRow {
                id: 1,
                event_type: "project.provisioned".into(),
                key: "k-1".into(),
                data: "{\"project_code\":\"P-1\"}".into(),
                correlation_id: "cor-2".into(),
                published_at: "2026-03-04T10:00:00.000Z".into(),
            }],
            timeline: vec![TimelineRow {
                correlation_id: "cor-1".into(),
                at: "t".into(),
                what: "attempt failed".into(),
                detail: "503".into(),
                step_id: Some(1),
                actor: None,
            }],
            counters: Counters {
                received: 3,
                duplicates: 1,
                conflicts: 0,
                quarantined: 0,
            },
            node: 1,
            reference: Some(ReferenceCheck { seen: 0, to: 1 }),
            ..Commit::default()
        },
    );
    let mut r = store.reader().expect("a reader");
    assert_eq!(r.event(1).unwrap(), Some(inbox_rows[0].clone()));
    assert_eq!(
        r.event_by_key("psa", "e1").unwrap(),
        Some(inbox_rows[0].clone())
    );
    assert_eq!(
        store
            .find_events(&[("psa", "e1"), ("psa", "rc"), ("erp", "rc")])
            .unwrap(),
        vec![
            Some(inbox_rows[0].clone()),
            None,
            Some(inbox_rows[1].clone())
        ],
        "the key is source and id together"
    );
    let entry_back = stored(entry(1, "T-1"), 1, |e, v| e.version = v);
    assert_eq!(r.entry(1).unwrap(), Some(entry_back.clone()));
    assert_eq!(
        r.entry_by_key(EntryKind::Time, "T-1").unwrap(),
        Some(entry_back.clone())
    );
    assert_eq!(
        store
            .find_entries(&[(EntryKind::Expense, "T-1"), (EntryKind::Time, "T-1")])
            .unwrap(),
        vec![None, Some(entry_back)]
    );
    let step_back = stored(step(1, "erp", 1, 0, None), 1, |s, v| s.version = v);
    assert_eq!(r.step(1).unwrap(), Some(step_back.clone()));
    let delivered = r.line(1).unwrap().expect("the line");
    assert_eq!(delivered.line, line(1, 1, 1, None));
    assert_eq!(delivered.step, step_back);
    assert_eq!(r.lines_by_ids(&[1, 99]).unwrap(), vec![line(1, 1, 1, None)]);
    assert_eq!(
        r.case(1).unwrap(),
        Some(stored(case(1, OwnerTeam::Finance), 1, |c, v| c.version = v))
    );
    assert_eq!(
        r.project("P-1").unwrap().map(|p| p.opportunity_id),
        Some("OPP-1".into())
    );
    assert_eq!(
        r.outbound(Some("project.provisioned"), Page::ALL)
            .unwrap()
            .len(),
        1
    );
    assert!(
        r.outbound(Some("invoice.sent"), Page::ALL)
            .unwrap()
            .is_empty()
    );
    // By the time of publication: at or after the stamp given.
    for (from, found) in [
        ("2026-03-04T09:59:59.999Z", 1),
        ("2026-03-04T10:00:00.000Z", 1),
        ("2026-03-04T10:00:00.001Z", 0),
    ] {
        assert_eq!(
            r.outbound_since(from, Page::ALL).unwrap().len(),
            found,
            "{from}"
        );
    }
    assert_eq!(r.timeline_of_step(1).unwrap().len(), 1);
    assert_eq!(r.counters().unwrap().received, 3);
    assert_eq!(store.reference_version().unwrap(), 1);
    let mut seen = Vec::new();
    let version = store
        .reference_since(0, &mut |row| {
            seen.push(row.seq);
            Ok(())
        })
        .unwrap();
    assert_eq!((seen, version), (vec![2], 1));
    let trail = r.trail("cor-1").unwrap();
    assert_eq!(
        (
            trail.events.len(),
            trail.lines.len(),
            trail.steps.len(),
            trail.cases.len(),
            trail.timeline.len()
        ),
        (1, 1, 1, 1, 1)
    );
}

/// A commit that conflicts writes nothing of itself.
pub fn a_conflicting_commit_writes_nothing(store: &dyn Store) {
    commit(
        store,
        Commit {
            inbox: vec![inbox(1, "psa", "e1", None)],
            ..Commit::default()
        },
    );
    let mut cases = Rows::default();
    cases.put(case(5, OwnerTeam::Pmo));
    conflicts(
        store,
        Commit {
            cases,
            lines: vec![line(5, 1, 5, None)],
            inbox: vec![inbox(2, "psa", "e2", None), inbox(3, "psa", "e1", None)],
            ..Commit::default()
        },
        "a second event with key psa/e1",
    );
    let mut r = store.reader().unwrap();
    assert_eq!(r.event(2).unwrap(), None);
    assert_eq!(r.case(5).unwrap(), None);
    assert!(r.lines_by_ids(&[5]).unwrap().is_empty());
    assert_eq!(store.find_events(&[("psa", "e2")]).unwrap(), vec![None]);
}

/// Every unique key is the store's to keep: events, entries, lines, steps, projects,
/// outbound events.
pub fn unique_keys_refuse_a_second_row(store: &dyn Store) {
    let mut entries = Rows::default();
    entries.put(entry(1, "T-1"));
    let mut steps = Rows::default();
    steps.put(step(1, "erp", 1, 0, None));
    let project = |id: i64| ProjectRow {
        id,
        project_code: "P-1".into(),
        opportunity_id: "OPP-1".into(),
        event_seq: 1,
        correlation_id: "c".into(),
        created_at: "t".into(),
    };
    let outbound = |id: i64| OutboundRow {
        id,
        event_type: "project.provisioned".into(),
        key: "k".into(),
        data: "{}".into(),
        correlation_id: "c".into(),
        published_at: "t".into(),
    };
    commit(
        store,
        Commit {
            entries,
            steps,
            lines: vec![line(1, 1, 1, None)],
            projects: vec![project(1)],
            outbound: vec![outbound(1)],
            ..Commit::default()
        },
    );
    let mut entries = Rows::default();
    entries.put(entry(2, "T-1"));
    conflicts(
        store,
        Commit {
            entries,
            ..Commit::default()
        },
        "a second entry time/T-1",
    );
    conflicts(
        store,
        Commit {
            lines: vec![line(2, 1, 2, None)],
            ..Commit::default()
        },
        "a second line posting 1 of entry 1",
    );
    let mut steps = Rows::default();
    let mut again = step(2, "erp", 1, 0, None);
    again.business_key = "time:T-1:1".into();
    steps.put(again);
    conflicts(
        store,
        Commit {
            steps,
            ..Commit::default()
        },
        "a second post_line step for line 1",
    );
    let mut steps = Rows::default();
    let mut other_subject = step(3, "erp", 7, 0, None);
    other_subject.business_key = "time:T-1:1".into();
    steps.put(other_subject);
    conflicts(
        store,
        Commit {
            steps,
            ..Commit::default()
        },
        "a second step with the idempotency key pshub:time_to_bill:post_line:time:T-1:1",
    );
    conflicts(
        store,
        Commit {
            projects: vec![project(2)],
            ..Commit::default()
        },
        "a second project P-1",
    );
    conflicts(
        store,
        Commit {
            outbound: vec![outbound(2)],
            ..Commit::default()
        },
        "a second outbound event with key k",
    );
}

/// An update of a row that changed since it was read is refused.
pub fn stale_versions_are_refused(store: &dyn Store) {
    let mut entries = Rows::default();
    entries.put(entry(1, "T-1"));
    commit(
        store,
        Commit {
            entries,
            ..Commit::default()
        },
    );
    let mut r = store.reader().unwrap();
    let read = r.entry(1).unwrap().unwrap();
    assert_eq!(read.version, 1);
    let mut first = read.clone();
    first.phase = EntryPhase::Rejected;
    let mut entries = Rows::default();
    entries.put(first);
    commit(
        store,
        Commit {
            entries,
            ..Commit::default()
        },
    );
    let mut second = read;
    second.phase = EntryPhase::WrittenOff;
    let mut entries = Rows::default();
    entries.put(second);
    conflicts(
        store,
        Commit {
            entries,
            ..Commit::default()
        },
        "an update from version 1 after version 2",
    );
    let now = r.entry(1).unwrap().unwrap();
    assert_eq!((now.phase, now.version), (EntryPhase::Rejected, 2));
}

/// Reference changes are ordered by one version; a commit decided on a stale version is
/// refused, and the events come back in version order.
pub fn reference_versions_order_reference_changes(store: &dyn Store) {
    commit(
        store,
        Commit {
            inbox: vec![
                inbox(10, "erp", "a", Some(1)),
                inbox(5, "erp", "b", Some(2)),
            ],
            reference: Some(ReferenceCheck { seen: 0, to: 2 }),
            ..Commit::default()
        },
    );
    conflicts(
        store,
        Commit {
            inbox: vec![inbox(11, "psa", "t", None)],
            reference: Some(ReferenceCheck { seen: 0, to: 0 }),
            ..Commit::default()
        },
        "an entry priced on reference version 0 after version 2",
    );
    commit(
        store,
        Commit {
            inbox: vec![inbox(11, "psa", "t", None)],
            reference: Some(ReferenceCheck { seen: 2, to: 2 }),
            ..Commit::default()
        },
    );
    let mut order = Vec::new();
    store
        .reference_since(0, &mut |row| {
            order.push(row.event_id.clone());
            Ok(())
        })
        .unwrap();
    assert_eq!(order, ["a", "b"], "version order, not id order");
    let mut after = Vec::new();
    store
        .reference_since(1, &mut |row| {
            after.push(row.event_id.clone());
            Ok(())
        })
        .unwrap();
    assert_eq!(after, ["b"]);
}

/// Due steps are claimed oldest first under a lease; waiting, done and not yet due steps
/// stay out; a lapsed lease is taken over; a step done releases the steps waiting on it.
pub fn claims_lease_due_steps_and_release_waiters(store: &dyn Store) {
    let mut steps = Rows::default();
    steps.put(step(1, "erp", 1, 0, None));
    steps.put(step(2, "erp", 2, 5_000, None));
    steps.put(step(3, "erp", 3, 0, Some(1)));
    steps.put(step(4, "psa", 4, 0, None));
    commit(
        store,
        Commit {
            steps,
            ..Commit::default()
        },
    );
    let claimed = store
        .claim_steps(&claim("erp", 1_000, 10, 7, 5_000))
        .unwrap();
    assert_eq!(claimed.iter().map(|c| c.step.id).collect::<Vec<_>>(), [1]);
    assert_eq!(claimed[0].step.state, StepState::Running);
    assert!(!claimed[0].taken_over);
    assert!(
        store
            .claim_steps(&claim("erp", 2_000, 10, 8, 5_000))
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert_eq!(
        store.renew_leases(&[1], 8, 9_000).unwrap(),
        0,
        "not 8's lease"
    );
    assert_eq!(store.renew_leases(&[1], 7, 9_000).unwrap(), 1);
    let taken = store
        .claim_steps(&claim("erp", 9_500, 10, 8, 5_000))
        .unwrap();
    assert_eq!(
        taken
            .iter()
            .map(|c| (c.step.id, c.taken_over))
            .collect::<Vec<_>>(),
        [(1, true), (2, false)],
        "the lapsed lease is taken over, then the step now due"
    );
    let mut done = taken[0].step.clone();
    done.state = StepState::Done;
    done.result = Some("ERP-1".into());
    let mut steps = Rows::default();
    steps.put(done);
    // The step that was waiting on step 1 is due once step 1 is done; one inserted
    // waiting on a step that is already done is due at once.
    steps.put(step(5, "erp", 5, 0, Some(1)));
    commit(
        store,
        Commit {
            steps,
            ..Commit::default()
        },
    );
    let mut stale = claimed[0].step.clone();
    stale.state = StepState::Done;
    let mut steps = Rows::default();
    steps.put(stale);
    conflicts(
        store,
        Commit {
            steps,
            ..Commit::default()
        },
        "an outcome from the lease that lapsed",
    );
    let mut r = store.reader().unwrap();
    assert_eq!(r.step(3).unwrap().unwrap().state, StepState::Pending);
    assert_eq!(r.step(5).unwrap().unwrap().state, StepState::Pending);
    let next = store
        .claim_steps(&claim("erp", 20_000, 10, 8, 5_000))
        .unwrap();
    assert_eq!(
        next.iter().map(|c| c.step.id).collect::<Vec<_>>(),
        [2, 3, 5]
    );
    assert_eq!(
        store
            .claim_steps(&claim("psa", 20_000, 10, 8, 5_000))
            .unwrap()
            .len(),
        1,
        "each system's steps are its own"
    );
}

/// Two writers racing to insert the same keys: every key ends with one row.
pub fn two_writers_never_write_two_rows_for_one_key(store: &dyn Store) {
    let keys = 200;
    let won: Vec<usize> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..2i64)
            .map(|writer| {
                scope.spawn(move || {
                    let mut won = 0;
                    for k in 0..keys {
                        let seq = 1 + writer * 10_000 + k as i64;
                        let mut entries = Rows::default();
                        entries.put(entry(seq, &format!("T-{k}")));
                        let attempt = Commit {
                            inbox: vec![inbox(seq, "psa", &format!("e{k}"), None)],
                            entries,
                            ..Commit::default()
                        };
                        match store.commit(&std::sync::Arc::new(attempt)) {
                            Ok(()) => won += 1,
                            Err(CommitError::Conflict(_)) => {}
                            Err(other) => panic!("{other}"),
                        }
                    }
                    won
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().expect("a writer"))
            .collect()
    });
    assert_eq!(
        won.iter().sum::<usize>(),
        keys,
        "each key won once: {won:?}"
    );
    let mut r = store.reader().unwrap();
    for k in 0..keys {
        let event = r
            .event_by_key("psa", &format!("e{k}"))
            .unwrap()
            .expect("stored once");
        let entry = r
            .entry_by_key(EntryKind::Time, &format!("T-{k}"))
            .unwrap()
            .expect("stored");
        assert_eq!(
            event.seq, entry.row_id,
            "the event and the entry of one commit"
        );
    }
}

/// Two claimers racing over the same due steps: no step is claimed twice.
pub fn two_claimers_never_claim_one_step_twice(store: &dyn Store) {
    let total = 300;
    let mut steps = Rows::default();
    for id in 1..=total {
        steps.put(step(id, "erp", id, 0, None));
    }
    commit(
        store,
        Commit {
            steps,
            ..Commit::default()
        },
    );
    let claims: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let claimers: Vec<_> = (0..2i64)
            .map(|owner| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let got = store
                            .claim_steps(&claim("erp", 1_000, 7, owner, 60_000))
                            .unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|c| c.step.id));
                    }
                })
            })
            .collect();
        claimers
            .into_iter()
            .map(|c| c.join().expect("a claimer"))
            .collect()
    });
    let all: Vec<i64> = claims.iter().flatten().copied().collect();
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), distinct.len(), "a step was claimed twice");
    assert_eq!(distinct.len(), total as usize, "every step was claimed");
}

/// Ids reserved by two threads at once never overlap.
pub fn id_blocks_never_overlap(store: &dyn Store) {
    let blocks: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let reservers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(move || {
                    (0..50)
                        .map(|_| store.reserve_ids(IdKind::Step, 10).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        reservers
            .into_iter()
            .map(|r| r.join().expect("a reserver"))
            .collect()
    });
    let mut ids: Vec<i64> = blocks
        .iter()
        .flatten()
        .flat_map(|first| *first..*first + 10)
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "two blocks overlap");
    assert!(ids[0] >= 1);
    let other = store.reserve_ids(IdKind::Case, 1).unwrap();
    assert!(other >= 1, "each kind has its own ids");
}

/// Lists page by id in a stable order and filter as asked.
pub fn lists_page_and_filter(store: &dyn Store) {
    let mut steps = Rows::default();
    let lines: Vec<LineRow> = (1..=5)
        .map(|id| {
            let mut s = step(id, "erp", id, 0, None);
            if id == 4 {
                s.state = StepState::Done;
            }
            steps.put(s);
            let mut l = line(id, id as u32, id, None);
            l.project_code = if id % 2 == 0 {
                "P-even".into()
            } else {
                "P-odd".into()
            };
            l
        })
        .collect();
    let mut cases = Rows::default();
    cases.put(case(1, OwnerTeam::Finance));
    cases.put(case(2, OwnerTeam::Pmo));
    cases.put(case(3, OwnerTeam::Finance));
    let mut entries = Rows::default();
    entries.put(entry(1, "T-1"));
    let inbox_rows = (1..=5)
        .map(|seq| {
            let mut row = inbox(
                seq,
                if seq == 3 { "crm" } else { "psa" },
                &format!("e{seq}"),
                None,
            );
            row.received_at = format!("2026-03-0{seq}T09:00:00.000Z");
            row
        })
        .collect();
    commit(
        store,
        Commit {
            inbox: inbox_rows,
            lines,
            steps,
            cases,
            entries,
            ..Commit::default()
        },
    );
    let mut r = store.reader().unwrap();
    let ids = |lines: Vec<DeliveredLine>| lines.iter().map(|l| l.line.id).collect::<Vec<_>>();
    let first = r
        .lines(&LineFilter::default(), Page { after: 0, limit: 2 })
        .unwrap();
    let second = r
        .lines(&LineFilter::default(), Page { after: 2, limit: 2 })
        .unwrap();
    assert_eq!([ids(first), ids(second)].concat(), [1, 2, 3, 4]);
    let odd = LineFilter {
        project_code: Some("P-odd".into()),
        ..LineFilter::default()
    };
    assert_eq!(ids(r.lines(&odd, Page::ALL).unwrap()), [1, 3, 5]);
    let posted = LineFilter {
        status: Some(LineStatus::Posted),
        ..LineFilter::default()
    };
    assert_eq!(ids(r.lines(&posted, Page::ALL).unwrap()), [4]);
    let by_source = LineFilter {
        source_id: Some("T-1".into()),
        ..LineFilter::default()
    };
    assert_eq!(ids(r.lines(&by_source, Page::ALL).unwrap()).len(), 5);
    let finance = CaseFilter {
        owner: Some(OwnerTeam::Finance),
        ..CaseFilter::default()
    };
    assert_eq!(
        r.cases(&finance, Page::ALL)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [1, 3]
    );
    // A source's events in the order received, from a time on, a page at a time.
    let seqs = |rows: Vec<InboxRow>| rows.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(r.events_of_source("psa", None, Page::ALL).unwrap()),
        [1, 2, 4, 5]
    );
    let since = Some("2026-03-02T09:00:00.000Z");
    assert_eq!(
        seqs(r.events_of_source("psa", since, Page::first(2)).unwrap()),
        [2, 4]
    );
    let next = Page { after: 4, limit: 2 };
    assert_eq!(seqs(r.events_of_source("psa", since, next).unwrap()), [5]);
    assert_eq!(
        seqs(r.events_of_source("crm", None, Page::ALL).unwrap()),
        [3]
    );
    assert_eq!(
        r.steps_in_state(StepState::Pending, Page::first(2))
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        [1, 2]
    );
}

/// Tokens are found by their hash only.
pub fn tokens_are_found_by_hash(store: &dyn Store) {
    store
        .add_token(&TokenRow {
            id: 3,
            hash: "hash-1".into(),
            role: "finance".into(),
            name: "ops".into(),
            created_at: "t".into(),
        })
        .unwrap();
    let mut r = store.reader().unwrap();
    let token = r.token("hash-1").unwrap().expect("found");
    assert_eq!(
        (token.id, token.role.as_str(), token.name.as_str()),
        (3, "finance", "ops")
    );
    assert_eq!(r.token("hash-2").unwrap(), None);
}

/// The id registry finds a thing by the hub's id or any system's, and keeps one row per
/// system id however often it is registered.
pub fn xrefs_are_found_by_any_id_and_kept_once(store: &dyn Store) {
    let xref = |canonical: &str, system: &str, id: &str| XrefRow {
        kind: "project".into(),
        canonical_id: canonical.into(),
        system: system.into(),
        system_id: id.into(),
        correlation_id: format!("cor-{canonical}"),
        created_at: format!("2026-03-01T00:00:0{}Z", id.len() % 10),
    };
    commit(
        store,
        Commit {
            xrefs: vec![
                xref("P-1", "crm", "OPP-1"),
                xref("P-1", "psa", "ENG-1"),
                xref("P-2", "crm", "OPP-2"),
            ],
            ..Commit::default()
        },
    );
    // A step done again registers its id again: still one row.
    commit(
        store,
        Commit {
            xrefs: vec![xref("P-1", "psa", "ENG-1"), xref("P-1", "erp", "PRJ-1")],
            ..Commit::default()
        },
    );
    let mut r = store.reader().unwrap();
    for asked in ["P-1", "OPP-1", "ENG-1", "PRJ-1"] {
        let found = r.xrefs("project", asked).unwrap();
        let mut systems: Vec<(&str, &str)> = found
            .iter()
            .map(|x| (x.system.as_str(), x.system_id.as_str()))
            .collect();
        systems.sort();
        assert_eq!(
            systems,
            [("crm", "OPP-1"), ("erp", "PRJ-1"), ("psa", "ENG-1")],
            "{asked}"
        );
        assert!(found.iter().all(|x| x.canonical_id == "P-1"));
    }
    assert_eq!(r.xrefs("project", "OPP-2").unwrap().len(), 1);
    assert!(r.xrefs("project", "OPP-3").unwrap().is_empty());
    assert!(r.xrefs("customer", "OPP-1").unwrap().is_empty());
}

/// A connector's cursor reads back as last saved, one per name.
pub fn cursors_read_back_as_last_saved(store: &dyn Store) {
    let mut r = store.reader().unwrap();
    assert_eq!(r.cursor("rest_poll:workday").unwrap(), None);
    store
        .save_cursor("rest_poll:workday", "2026-03-01T00:00:00Z", "t1")
        .unwrap();
    store
        .save_cursor("rest_poll:salesforce", "2026-02-01T00:00:00Z", "t1")
        .unwrap();
    store
        .save_cursor("rest_poll:workday", "2026-03-02T00:00:00Z", "t2")
        .unwrap();
    let mut r = store.reader().unwrap();
    assert_eq!(
        r.cursor("rest_poll:workday").unwrap().as_deref(),
        Some("2026-03-02T00:00:00Z")
    );
    assert_eq!(
        r.cursor("rest_poll:salesforce").unwrap().as_deref(),
        Some("2026-02-01T00:00:00Z")
    );
}

/// A consistent read sees one snapshot: what commits while it runs is not in it.
pub fn a_consistent_read_sees_one_snapshot(store: &dyn Store) {
    let with_entry = |row_id: i64, id: &str| {
        let mut entries = Rows::default();
        entries.put(entry(row_id, id));
        Commit {
            entries,
            ..Commit::default()
        }
    };
    commit(store, with_entry(1, "T-1"));
    let count = |r: &mut dyn StoreReader| {
        let mut n = 0;
        r.each_entry_figure(&mut |_| n += 1).unwrap();
        n
    };
    let mut reader = store.reader().unwrap();
    let mut seen = Vec::new();
    reader
        .consistent(&mut |r| {
            seen.push(count(r));
            commit(store, with_entry(2, "T-2"));
            seen.push(count(r));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        seen,
        [1, 1],
        "the second read sees the snapshot of the first"
    );
    assert_eq!(
        count(reader.as_mut()),
        2,
        "after it, the reader sees the new commit"
    );
}

/// Runs every check of the suite as its own test. `$with_store(name, check)` opens a fresh
/// store for the test `name`, runs `check` on it and then tears the store down.
#[macro_export]
macro_rules! store_conformance_tests {
    ($with_store:expr) => {
        $crate::store_conformance_tests!(@each $with_store;
            rows_read_back_as_written,
            a_conflicting_commit_writes_nothing,
            unique_keys_refuse_a_second_row,
            stale_versions_are_refused,
            reference_versions_order_reference_changes,
            claims_lease_due_steps_and_release_waiters,
            two_writers_never_write_two_rows_for_one_key,
            two_claimers_never_claim_one_step_twice,
            id_blocks_never_overlap,
            lists_page_and_filter,
            tokens_are_found_by_hash,
            cursors_read_back_as_last_saved,
            xrefs_are_found_by_any_id_and_kept_once,
            a_consistent_read_sees_one_snapshot,
        );
    };
    (@each $with_store:expr; $($check:ident,)*) => {
        $(
            #[test]
            fn $check() {
                $with_store(stringify!($check), $crate::conformance::$check);
            }
        )*
    };
}

/// A claim of `system`'s due steps, as a delivery worker makes it.
fn claim(system: &str, now_ms: i64, limit: u32, owner: i64, lease_ms: i64) -> ClaimRequest {
    ClaimRequest {
        system: system.to_string(),
        now_ms,
        limit,
        owner,
        lease_ms,
    }
}

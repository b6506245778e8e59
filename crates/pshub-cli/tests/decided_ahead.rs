//! The writer decides a batch of time while the batch before it is still being committed.
//! The later batch sees the earlier one's rows (its entries, lines, steps, worker-days and
//! event keys) before they are in the store; nothing of either is answered before it is
//! durable; and when the earlier commit fails, the later batch is decided again without it.

mod support;

use pshub_connectors::sandbox::{InProcess, Sandbox, System};
use pshub_engine::error::EngineError;
use pshub_engine::store::*;
use pshub_engine::{Config, Engine, IngestResult, Systems};
use pshub_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};
use support::hooked::{BeforeCommit, Hooked, event, reference_batch};

/// Holds commits at a gate while it is closed; the next held commit can fail.
struct Gate {
    /// Commits wait while it is closed (`true`); `held` counts those waiting.
    closed: Mutex<bool>,
    opened: Condvar,
    held: AtomicUsize,
    fail_next: AtomicBool,
    /// Commits that wrote inbox rows, the reference batch's among them (a batch decided
    /// again would be one more).
    batches: AtomicUsize,
}

impl Gate {
    fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }
}

impl BeforeCommit for Gate {
    fn before_commit(&self, commit: &Commit) -> std::result::Result<(), CommitError> {
        let mut closed = self.closed.lock().unwrap();
        if *closed {
            self.held.fetch_add(1, Ordering::SeqCst);
            while *closed {
                closed = self.opened.wait(closed).unwrap();
            }
            self.held.fetch_sub(1, Ordering::SeqCst);
            if self.fail_next.swap(false, Ordering::SeqCst) {
                return Err(CommitError::Store(EngineError::Store(
                    "the disk is full".into(),
                )));
            }
        }
        if !commit.inbox.is_empty() {
            self.batches.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

fn time(id: &str, entry_id: &str, approved: bool, hours: &str) -> Value {
    let kind = if approved {
        "time_entry.approved"
    } else {
        "time_entry.rejected"
    };
    event(
        "psa",
        id,
        kind,
        json!({ "entry_id": entry_id, "worker_id": "W-1", "project_code": "P-1", "work_date": "2026-03-04",
                "hours": hours, "billable": true }),
    )
}

type Answer = mpsc::Receiver<pshub_engine::error::Result<Vec<IngestResult>>>;

/// Submits a batch and answers where its reply will arrive.
fn submit(engine: &Engine, events: Vec<Value>) -> Answer {
    let config = engine.config();
    let parsed = events
        .iter()
        .map(|e| pshub_engine::Incoming::parse(e.to_string(), config))
        .collect();
    let (tx, rx) = mpsc::channel();
    engine.submit_parsed(
        parsed,
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    rx
}

fn wait_until(what: &str, mut holds: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !holds() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

fn statuses(answer: &Answer) -> Vec<&'static str> {
    let results = answer
        .recv_timeout(Duration::from_secs(20))
        .expect("an answer")
        .expect("the batch is durable");
    results.iter().map(|r| r.status.as_str()).collect()
}

struct Hub {
    dir: std::path::PathBuf,
    store: Arc<Hooked<Gate>>,
    sandbox: Arc<Sandbox>,
    engine: Arc<Engine>,
}

fn hub(name: &str) -> Hub {
    let dir = std::env::temp_dir().join(format!("pshub-ahead-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(Hooked {
        inner: SqliteStore::open(&dir).unwrap(),
        hook: Gate {
            closed: Mutex::new(false),
            opened: Condvar::new(),
            held: AtomicUsize::new(0),
            fail_next: AtomicBool::new(false),
            batches: AtomicUsize::new(0),
        },
    });
    let sandbox = Sandbox::in_memory();
    // With a daily limit, each worker's approved hours per day are a row that every
    // batch reads and updates.
    let config = Config {
        max_daily_hours: Some(rust_decimal::Decimal::from(24)),
        ..Config::default()
    };
    let engine = Engine::open(
        store.clone(),
        config,
        InProcess::systems(&sandbox, Systems::default()),
    )
    .unwrap();
    engine.submit(reference_batch()).unwrap();
    assert!(engine.settle(Duration::from_secs(20)).unwrap());
    Hub {
        dir,
        store,
        sandbox,
        engine,
    }
}

impl Hub {
    /// Holds the next commit at the gate with `first` in it, and decides `second` on top.
    fn second_decided_ahead(&self, first: Vec<Value>, second: Vec<Value>) -> (Answer, Answer) {
        *self.store.hook.closed.lock().unwrap() = true;
        let first = submit(&self.engine, first);
        wait_until("the first batch's commit is held", || {
            self.store.hook.held.load(Ordering::SeqCst) == 1
        });
        let second = submit(&self.engine, second);
        wait_until("the second batch is decided ahead", || {
            self.engine.metrics().batches_decided_ahead.get() == 1
        });
        assert!(
            first.try_recv().is_err() && second.try_recv().is_err(),
            "nothing is answered before it is durable"
        );
        (first, second)
    }

    /// The ERP's lines: (source entry, amount).
    fn erp_lines(&self) -> Vec<(String, String)> {
        let lines = self
            .sandbox
            .list(System::Erp, "lines", 0, 100)
            .unwrap()
            .unwrap();
        let mut lines: Vec<(String, String)> = lines["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["source_id"].as_str().unwrap().to_string(),
                    l["amount"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        lines.sort();
        lines
    }

    fn hours_on_the_day(&self) -> String {
        let mut reader = self.store.reader().unwrap();
        let day = "2026-03-04".parse().unwrap();
        reader
            .worker_day("W-1", day)
            .unwrap()
            .map(|d| d.hours.normalize().to_string())
            .unwrap_or_default()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.store.hook.open();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_batch_decided_while_the_one_before_commits_sees_its_rows() {
    let hub = hub("sees");
    let (first, second) = hub.second_decided_ahead(
        vec![time("t1", "T-1", true, "2"), time("t2", "T-2", true, "3")],
        vec![
            // The rejection of an entry approved in the batch still committing: its line
            // is reversed.
            time("t1-r", "T-1", false, "2"),
            time("t3", "T-3", true, "4"),
            // An event of the batch still committing, sent again: a duplicate.
            time("t2", "T-2", true, "3"),
        ],
    );
    hub.store.hook.open();
    assert_eq!(statuses(&first), ["accepted", "accepted"]);
    assert_eq!(statuses(&second), ["accepted", "accepted", "duplicate"]);
    assert_eq!(
        hub.store.hook.batches.load(Ordering::SeqCst),
        1 + 2,
        "the second batch went through as decided, without a conflict to decide it again"
    );
    assert!(hub.engine.settle(Duration::from_secs(20)).unwrap());
    assert_eq!(
        hub.erp_lines(),
        [
            ("T-1".to_string(), "-300.00".to_string()),
            ("T-1".to_string(), "300.00".to_string()),
            ("T-2".to_string(), "450.00".to_string()),
            ("T-3".to_string(), "600.00".to_string()),
        ]
    );
    assert_eq!(
        hub.hours_on_the_day(),
        "7",
        "the worker's day counts T-2 and T-3, T-1 taken back"
    );
}

#[test]
fn when_the_batch_before_fails_the_one_decided_on_it_is_decided_again() {
    let hub = hub("fails");
    hub.store.hook.fail_next.store(true, Ordering::SeqCst);
    let (first, second) = hub.second_decided_ahead(
        vec![time("t1", "T-1", true, "2")],
        vec![
            time("t1-r", "T-1", false, "2"),
            time("t2", "T-2", true, "3"),
        ],
    );
    hub.store.hook.open();
    let failed = first
        .recv_timeout(Duration::from_secs(20))
        .expect("an answer");
    assert!(failed.is_err(), "the failed batch is not acknowledged");
    // Decided again without T-1's approval: the rejection has no line to reverse.
    assert_eq!(statuses(&second), ["accepted", "accepted"]);
    assert!(hub.engine.settle(Duration::from_secs(20)).unwrap());
    assert_eq!(hub.erp_lines(), [("T-2".to_string(), "450.00".to_string())]);
    assert_eq!(hub.hours_on_the_day(), "3", "only T-2's hours count");
}

//! The writer: one thread decides the submitted batches in arrival order, and a second
//! commits them, so that batch N+1 is decided while batch N is written (decisions take
//! about a third of the writer's time, the store's commit the rest).
//!
//! Batch N+1 is decided on top of N only when both hold nothing but time and expenses
//! (the flow whose reads see the batch before, [`crate::flows::ahead`]); any other batch
//! waits for the one before to be durable. N+1 is handed to the store only once N is
//! durable, and nothing of a batch is answered before it is. When N does not go through,
//! memory goes back to before N (taking N+1 with it), and both are decided again: N after
//! a lost race, N+1 in any case. The hub stays locked while a batch is in flight, so that
//! an action (resolve, replay) never decides on what is not durable yet; an action that
//! asks for the hub stops the next batch from being decided ahead, and gets it as soon as
//! the one in flight is durable.

use super::{Core, Reply, lock};
use crate::error::EngineError;
use crate::hub::{Decided, Hub, Incoming};
use crate::store::{Commit, CommitError};
use chrono::Utc;
use pshub_model::{EventData, EventType};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

/// The most events one group commit takes; more wait for the next.
const GROUP_EVENTS: usize = 20_000;

pub(super) struct Submission {
    pub events: Vec<Incoming>,
    pub reply: Reply,
}

/// What waits for the writer and for its committer.
#[derive(Default)]
pub(super) struct Queue {
    pub waiting: Vec<Submission>,
    pub closed: bool,
    /// The commit handed to the committer thread.
    to_commit: Option<Arc<Commit>>,
    /// How the committer's last commit went, until the writer takes it.
    committed: Option<Committed>,
    /// Set when the writer ends: the committer ends too.
    committer_stops: bool,
}

enum Committed {
    Done,
    Failed(CommitError),
    /// The commit stopped on a bug: nothing of it was written.
    Panicked,
}

/// The submissions of one group commit, decided as one batch.
struct Batch {
    events: Vec<Incoming>,
    replies: Vec<(Reply, usize)>,
    /// Commits tried so far (a lost race is decided again).
    attempt: u32,
    /// Only time and expenses: may be decided while the batch before commits.
    rides_ahead: bool,
}

impl Batch {
    fn of(group: Vec<Submission>) -> Self {
        let mut events = Vec::with_capacity(group.iter().map(|s| s.events.len()).sum());
        let mut replies = Vec::with_capacity(group.len());
        for submission in group {
            replies.push((submission.reply, submission.events.len()));
            events.extend(submission.events);
        }
        Batch {
            rides_ahead: rides_ahead(&events),
            events,
            replies,
            attempt: 1,
        }
    }

    fn answer(self, results: Vec<crate::hub::IngestResult>) {
        let mut results = results.into_iter();
        for (reply, size) in self.replies {
            reply(Ok(results.by_ref().take(size).collect()));
        }
    }

    fn fail(self, why: &str) {
        for (reply, _) in self.replies {
            reply(Err(EngineError::Store(why.to_string())));
        }
    }
}

/// How many of the waiting submissions the next batch takes: all, up to [`GROUP_EVENTS`]
/// events; but when nothing is in flight and they all ride ahead, half of their events,
/// so that the other half is decided while the first commits (two senders with a batch
/// each would otherwise always share one commit, and nothing would overlap).
fn cut_of(waiting: &[Submission], idle: bool) -> usize {
    let total: usize = waiting.iter().map(|s| s.events.len()).sum();
    let limit = if idle && waiting.len() > 1 && waiting.iter().all(|s| rides_ahead(&s.events)) {
        total.div_ceil(2).min(GROUP_EVENTS)
    } else {
        GROUP_EVENTS
    };
    let mut taken = 0;
    waiting
        .iter()
        .position(|s| {
            taken += s.events.len();
            taken > limit
        })
        .unwrap_or(waiting.len())
        .max(1)
}

/// Only time and expenses (and what does not parse): the events whose flow reads the
/// batch before through [`crate::flows::ahead`].
fn rides_ahead(events: &[Incoming]) -> bool {
    events.iter().all(|incoming| match incoming {
        Incoming::Valid { event, .. } => matches!(
            event.data,
            EventData::TimeEntry { .. } | EventData::Expense { .. }
        ),
        Incoming::Invalid { .. } => true,
    })
}

/// A batch decided and handed on, with what it was decided from.
struct Flight {
    batch: Batch,
    decided: Decided,
}

const INTERRUPTED: &str =
    "the batch stopped on an internal error; nothing of it was recorded, retry";

/// What the writer does next.
enum Next {
    Decide(Batch),
    Committed(Committed),
    Stop,
}

/// The writer's state between two steps.
struct Writer<'c> {
    core: &'c Core,
    hub: Option<MutexGuard<'c, Hub>>,
    /// The batch whose commit the committer is writing.
    committing: Option<Flight>,
    /// The batch decided on top of it, handed to the committer once it is durable.
    next: Option<Flight>,
    /// Batches taken from the queue (or to decide again), in order.
    pending: VecDeque<Batch>,
    /// A decision failed or stopped on a bug while a batch was in flight: nothing rides
    /// ahead until that batch is durable and memory rebuilt where needed.
    broken: bool,
}

/// Ends the committer and answers what still waits, when the writer ends for any reason.
struct Stopping<'c>(&'c Core);

impl Drop for Stopping<'_> {
    fn drop(&mut self) {
        let core = self.0;
        core.writer_alive.store(false, Ordering::Relaxed);
        let waiting = {
            let mut queue = lock(&core.queue);
            queue.committer_stops = true;
            queue.closed = true;
            std::mem::take(&mut queue.waiting)
        };
        core.commit_due.notify_all();
        for submission in waiting {
            (submission.reply)(Err(EngineError::Store("the writer stopped".into())));
        }
    }
}

/// How often the writer lets a waiting action go first before it takes the hub anyway.
const YIELDS_TO_ACTIONS: u32 = 10_000;

impl Core {
    pub(super) fn write_loop(&self) {
        std::thread::scope(|scope| {
            scope.spawn(|| self.commit_loop());
            // Also when the writer stops on a bug: the committer ends, and whatever waits
            // is answered.
            let _stopping = Stopping(self);
            Writer {
                core: self,
                hub: None,
                committing: None,
                next: None,
                pending: VecDeque::new(),
                broken: false,
            }
            .run();
        });
    }

    fn commit_loop(&self) {
        loop {
            let commit = {
                let mut queue = lock(&self.queue);
                loop {
                    if let Some(commit) = queue.to_commit.take() {
                        break commit;
                    }
                    if queue.committer_stops {
                        return;
                    }
                    queue = self
                        .commit_due
                        .wait(queue)
                        .unwrap_or_else(|p| p.into_inner());
                }
            };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.store.commit(&commit)
            }));
            let committed = match outcome {
                Ok(Ok(())) => Committed::Done,
                Ok(Err(error)) => Committed::Failed(error),
                Err(_) => Committed::Panicked,
            };
            lock(&self.queue).committed = Some(committed);
            self.queued.notify_all();
        }
    }

    /// The hub, for anyone but the writer: the writer lets go of it once the batch in
    /// flight is durable, and decides no batch ahead while someone waits for it.
    pub(super) fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub_wanted.fetch_add(1, Ordering::SeqCst);
        let hub = lock(&self.hub);
        self.hub_wanted.fetch_sub(1, Ordering::SeqCst);
        hub
    }
}

impl Writer<'_> {
    fn run(&mut self) {
        loop {
            match self.next_step() {
                Next::Decide(batch) => self.decide(batch),
                Next::Committed(committed) => self.committed(committed),
                Next::Stop => return,
            }
            if self.committing.is_none() {
                // Nothing in flight: the hub is free for actions between batches.
                self.hub = None;
                self.broken = false;
            }
        }
    }

    /// Waits until a batch may be decided or the commit in flight is done.
    fn next_step(&mut self) -> Next {
        let core = self.core;
        let mut queue = lock(&core.queue);
        loop {
            if let Some(committed) = queue.committed.take() {
                return Next::Committed(committed);
            }
            if self.pending.is_empty() && !queue.waiting.is_empty() {
                let cut = cut_of(&queue.waiting, self.committing.is_none());
                let batch = Batch::of(queue.waiting.drain(..cut).collect());
                core.saw_sources(&batch.events);
                self.pending.push_back(batch);
            }
            if let Some(batch) = self.pending.front()
                && self.may_decide(batch)
            {
                return Next::Decide(self.pending.pop_front().expect("a pending batch"));
            }
            if self.committing.is_none() && self.pending.is_empty() && queue.closed {
                return Next::Stop;
            }
            queue = core.queued.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Whether `batch` may be decided now.
    fn may_decide(&self, batch: &Batch) -> bool {
        match (&self.committing, &self.next) {
            (None, _) => true,
            (Some(flight), None) => {
                flight.batch.rides_ahead
                    && batch.rides_ahead
                    && !self.broken
                    && self.core.hub_wanted.load(Ordering::SeqCst) == 0
            }
            (Some(_), Some(_)) => false,
        }
    }

    fn decide(&mut self, batch: Batch) {
        let core = self.core;
        let hub = self.hub.get_or_insert_with(|| {
            // An action that asked first goes first (within bounds: a stream of readers
            // does not keep the writer out).
            let mut yields = 0;
            while core.hub_wanted.load(Ordering::SeqCst) > 0 && yields < YIELDS_TO_ACTIONS {
                std::thread::yield_now();
                yields += 1;
            }
            lock(&core.hub)
        });
        let ahead = self.committing.as_ref().map(|f| &f.decided.commit);
        let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hub.decide(&batch.events, Utc::now(), ahead)
        }));
        match decided {
            Ok(Ok(decided)) => {
                let flight = Flight { batch, decided };
                if self.committing.is_none() {
                    self.hand_on(flight);
                } else {
                    self.core.metrics.batches_decided_ahead.add(1);
                    self.next = Some(flight);
                }
            }
            Ok(Err(error)) => {
                // What the batch before left in the hub's caches was dropped with this one's:
                // nothing rides ahead until the store has it.
                self.broken |= self.committing.is_some();
                batch.fail(&error.to_string());
            }
            Err(_) => {
                tracing::error!(
                    "a batch stopped on a bug; the hub rebuilds its memory before the next"
                );
                self.broken = true;
                hub.interrupted();
                batch.fail(INTERRUPTED);
            }
        }
    }

    /// Hands a decided batch to the committer.
    fn hand_on(&mut self, flight: Flight) {
        lock(&self.core.queue).to_commit = Some(flight.decided.commit.clone());
        self.core.commit_due.notify_one();
        self.committing = Some(flight);
    }

    fn committed(&mut self, committed: Committed) {
        let Some(flight) = self.committing.take() else {
            return;
        };
        let Some(hub) = self.hub.as_mut() else {
            flight.batch.fail(INTERRUPTED);
            if let Some(next) = self.next.take() {
                self.pending.push_front(next.batch);
            }
            return;
        };
        match committed {
            Committed::Done => {
                let payroll = flight.batch.events.iter().any(|incoming| {
                    matches!(incoming, Incoming::Valid { event, .. } if event.event_type == EventType::PayrollActuals)
                });
                let next = self.next.as_mut().map(|f| &mut f.decided);
                let results = hub.kept(flight.decided, next);
                let woken = hub.take_woken();
                // The next batch's commit starts before this one's senders are answered.
                if let Some(next) = self.next.take() {
                    self.hand_on(next);
                }
                flight.batch.answer(results);
                if payroll {
                    self.core.signal_payroll();
                }
                self.core.signal_systems(woken.iter().map(String::as_str));
            }
            Committed::Failed(error) => {
                hub.abandon(&flight.decided);
                if let Some(next) = self.next.take() {
                    self.pending.push_front(next.batch);
                }
                let mut batch = flight.batch;
                match hub.after_failed_commit(error, batch.attempt) {
                    Ok(()) => {
                        batch.attempt += 1;
                        self.pending.push_front(batch);
                    }
                    Err(error) => batch.fail(&error.to_string()),
                }
            }
            Committed::Panicked => {
                tracing::error!(
                    "a commit stopped on a bug; the hub rebuilds its memory before the next"
                );
                hub.abandon(&flight.decided);
                hub.interrupted();
                if let Some(next) = self.next.take() {
                    self.pending.push_front(next.batch);
                }
                flight.batch.fail(INTERRUPTED);
            }
        }
    }
}

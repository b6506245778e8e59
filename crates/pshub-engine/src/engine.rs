//! The thread-safe face of the hub: group commit of inbound batches, and the delivery
//! worker that empties the outbox into the ERP.

use crate::config::Config;
use crate::error::{ActionError, EngineError, Result};
use crate::hub::{Delivery, DeliveryOutcome, Hub, Incoming, IngestResult, Resolution};
use crate::metrics::Metrics;
use crate::ports::{ErpError, ErpPort};
use crate::store::{
    LineFilter, LineStatus, Operation, Outbound, OutboxState, Page, Store, StoreReader,
};
use chrono::Utc;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

type Reply = mpsc::SyncSender<Result<Vec<IngestResult>>>;

struct Submission {
    events: Vec<Incoming>,
    reply: Reply,
}

pub struct Engine {
    hub: Mutex<Hub>,
    /// A copy of the hub's configuration, for parsing outside the lock.
    config: Config,
    /// Submissions waiting for the next group commit.
    queue: Mutex<Vec<Submission>>,
    erp: Arc<dyn ErpPort>,
    metrics: Arc<Metrics>,
    /// The delivery pass's own reads; held for a whole pass, so that two passes never
    /// claim the same items.
    delivering: Mutex<Box<dyn StoreReader>>,
    /// Readers for the API and operators' questions: reads never wait for the writer.
    readers: Vec<Mutex<Box<dyn StoreReader>>>,
    /// Set when a commit may have added outbox work; wakes the delivery worker.
    outbox_signal: (Mutex<bool>, Condvar),
}

/// The most lines, and the most other calls, one delivery pass reads.
pub const DELIVERY_BATCH: u32 = 2_000;

/// Read connections kept for the API.
const READERS: usize = 3;

impl Engine {
    pub fn open(store: Box<dyn Store>, config: Config, erp: Arc<dyn ErpPort>) -> Result<Arc<Self>> {
        let metrics = Arc::new(Metrics::default());
        let reader = store.reader()?;
        let readers = (0..READERS)
            .map(|_| store.reader().map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let hub = Hub::open(store, config.clone(), metrics.clone())?;
        Ok(Arc::new(Engine {
            hub: Mutex::new(hub),
            config,
            queue: Mutex::new(Vec::new()),
            erp,
            metrics,
            delivering: Mutex::new(reader),
            readers,
            outbox_signal: (Mutex::new(true), Condvar::new()),
        }))
    }

    /// What the ERP port says of itself, for operators.
    pub fn describe_erp(&self) -> serde_json::Value {
        self.erp.describe()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn lock_hub(&self) -> MutexGuard<'_, Hub> {
        // A panic while holding the lock cannot leave a half-written commit behind (the
        // store's transaction rolls back), so the hub is still usable.
        self.hub
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn signal_outbox(&self) {
        let (flag, wake) = &self.outbox_signal;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
    }

    /// Runs `f` with a reader that sees what is committed, without waiting for the writer.
    pub fn read<R>(&self, f: impl FnOnce(&mut dyn StoreReader) -> R) -> R {
        for reader in &self.readers {
            if let Ok(mut reader) = reader.try_lock() {
                return f(reader.as_mut());
            }
        }
        let mut reader = self.readers[0].lock().unwrap_or_else(|p| p.into_inner());
        f(reader.as_mut())
    }

    /// Runs `f` with the hub locked: for reads that need its memory.
    pub fn with_hub<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R {
        f(&mut self.lock_hub())
    }

    /// Takes a batch of events and returns once they are durably committed. Batches that
    /// arrive while another commit runs are committed together (group commit), so that
    /// many senders share one fsync.
    pub fn submit(&self, events: Vec<Value>) -> Result<Vec<IngestResult>> {
        let events = events
            .iter()
            .map(|value| Incoming::parse(value, &self.config))
            .collect();
        let (reply, answer) = mpsc::sync_channel(1);
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Submission { events, reply });
        {
            let mut hub = self.lock_hub();
            let waiting =
                std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
            if !waiting.is_empty() {
                self.commit_group(&mut hub, waiting);
            }
        }
        answer
            .recv()
            .unwrap_or_else(|_| Err(EngineError::Store("the committing thread stopped".into())))
    }

    fn commit_group(&self, hub: &mut Hub, waiting: Vec<Submission>) {
        let sizes: Vec<usize> = waiting.iter().map(|s| s.events.len()).collect();
        let mut replies = Vec::with_capacity(waiting.len());
        let mut all = Vec::with_capacity(sizes.iter().sum());
        for submission in waiting {
            all.extend(submission.events);
            replies.push(submission.reply);
        }
        match hub.ingest(&all, Utc::now()) {
            Ok(results) => {
                let mut results = results.into_iter();
                for (reply, size) in replies.into_iter().zip(sizes) {
                    let _ = reply.send(Ok(results.by_ref().take(size).collect()));
                }
                self.signal_outbox();
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(EngineError::Store(error.to_string())));
                }
            }
        }
    }

    /// Sends what is due, once: reads it on the delivery reader, plans under the hub's lock,
    /// calls the ERP outside it, and records the outcomes under it again. Answers how many
    /// items were sent (items that wait for another to be delivered first are not counted).
    pub fn deliver_due(&self, limit: u32) -> Result<usize> {
        let mut reader = self.delivering.lock().unwrap_or_else(|p| p.into_inner());
        let now = Utc::now();
        let due = reader.due_deliveries(now.timestamp_millis(), limit)?;
        if due.is_empty() {
            return Ok(0);
        }
        let unprovisioned: HashSet<String> = reader
            .undelivered(Operation::ProvisionProject)?
            .into_iter()
            .filter_map(|o| {
                o.idempotency_key
                    .strip_prefix("project:")
                    .map(str::to_string)
            })
            .collect();
        let deliveries = self.lock_hub().plan_deliveries(due, &unprovisioned, now)?;
        if deliveries.is_empty() {
            return Ok(0);
        }
        let count = deliveries.len();
        let mut outcomes: Vec<(Delivery, DeliveryOutcome)> = Vec::with_capacity(count);
        let mut lines = Vec::new();
        for delivery in deliveries {
            match &delivery {
                Delivery::Line { .. } => lines.push(delivery),
                Delivery::Project { posting, .. } => {
                    let outcome = self.erp.ensure_project(posting);
                    outcomes.push((delivery, outcome));
                }
            }
        }
        if !lines.is_empty() {
            let postings: Vec<_> = lines
                .iter()
                .filter_map(|d| match d {
                    Delivery::Line { posting, .. } => Some(posting.clone()),
                    _ => None,
                })
                .collect();
            let mut answers = self.erp.post_lines(&postings).into_iter();
            for delivery in lines {
                let answer = answers.next().unwrap_or_else(|| {
                    Err(ErpError::Technical {
                        message: "the ERP gave fewer answers than lines".into(),
                        retry_after: None,
                    })
                });
                outcomes.push((delivery, answer));
            }
        }
        self.lock_hub().record_deliveries(outcomes, Utc::now())?;
        Ok(count)
    }

    /// Delivers until nothing is due now. Items waiting for a later retry stay queued.
    pub fn drain(&self) -> Result<()> {
        while self.deliver_due(DELIVERY_BATCH)? > 0 {}
        Ok(())
    }

    /// Delivers until the outbox has nothing pending, waiting for items that wait on
    /// others or retry later, for at most `timeout`. Answers whether it emptied.
    pub fn settle(&self, timeout: Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.drain()?;
            let first = Page { after: 0, limit: 1 };
            let pending_lines = LineFilter {
                status: Some(LineStatus::Pending),
                ..LineFilter::default()
            };
            let idle = self.read(|r| -> Result<bool> {
                Ok(r.outbox_list(OutboxState::Pending, first)?.is_empty()
                    && r.lines(&pending_lines, first)?.is_empty())
            })?;
            if idle {
                return Ok(true);
            }
            if std::time::Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Starts the delivery worker: it sends due items as they appear until `stop` is set.
    pub fn spawn_delivery(self: &Arc<Self>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        let engine = Arc::clone(self);
        std::thread::Builder::new()
            .name("pshub-delivery".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match engine.deliver_due(DELIVERY_BATCH) {
                        Ok(0) => engine.wait_for_work(Duration::from_millis(250)),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::error!(%error, "delivery pass failed");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                }
            })
            .expect("spawning a thread only fails when the process is out of resources")
    }

    fn wait_for_work(&self, timeout: Duration) {
        let (flag, wake) = &self.outbox_signal;
        let mut pending = flag.lock().unwrap_or_else(|p| p.into_inner());
        if !*pending {
            pending = wake
                .wait_timeout(pending, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *pending = false;
    }

    pub fn resolve(&self, case_id: i64) -> std::result::Result<Resolution, ActionError> {
        let resolution = self.lock_hub().resolve(case_id, Utc::now())?;
        self.signal_outbox();
        Ok(resolution)
    }

    pub fn dismiss(&self, case_id: i64) -> std::result::Result<(), ActionError> {
        self.lock_hub().dismiss(case_id, Utc::now())
    }

    pub fn acknowledge(&self, case_id: i64) -> std::result::Result<(), ActionError> {
        self.lock_hub().acknowledge(case_id, Utc::now())
    }

    pub fn replay_dead_letter(&self, target: Outbound) -> std::result::Result<(), ActionError> {
        self.lock_hub().replay_dead_letter(target, Utc::now())?;
        self.signal_outbox();
        Ok(())
    }

    pub fn replay_quarantined(
        &self,
        id: i64,
        corrected: Option<&Value>,
    ) -> std::result::Result<IngestResult, ActionError> {
        let result = self
            .lock_hub()
            .replay_quarantined(id, corrected, Utc::now())?;
        self.signal_outbox();
        Ok(result)
    }
}

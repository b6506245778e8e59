//! The thread-safe face of the hub. One writer thread takes every submitted batch in
//! arrival order and commits the batches that wait together (group commit: many senders
//! share one fsync); senders are answered through a callback, so an async server never
//! parks a thread per request. One delivery worker per target system runs that system's
//! steps, so a slow system never holds up another; each system has its circuit breaker.

use crate::breaker::{Breaker, BreakerState};
use crate::config::Config;
use crate::delivery::{Caller, Delivered, Round};
use crate::error::{ActionError, EngineError, Result};
use crate::flows::Resolution;
use crate::hub::{Acting, Hub, Incoming, IngestResult};
use crate::ids::Ids;
use crate::lease::LeaseKeeper;
use crate::metrics::Metrics;
use crate::ports::{Outcome, Port, Systems};
use crate::store::{Claimed, IdKind, Outbound, Page, StepState, Store, StoreReader};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a submitter hears that its events are durable (or why not).
pub type Reply = Box<dyn FnOnce(Result<Vec<IngestResult>>) + Send>;

mod writer;
use writer::{Queue, Submission};

/// Read connections kept for the API.
const READERS: usize = 4;

/// A worker whose heartbeat is older than this is reported dead by `/healthz`.
const HEARTBEAT_LIMIT: Duration = Duration::from_secs(30);

type Requests = Vec<std::result::Result<crate::ports::Request, String>>;

/// A round under call on its own thread, with what it was built from.
struct InFlight<'scope> {
    claimed: Vec<Claimed>,
    requests: Requests,
    call: std::thread::ScopedJoinHandle<'scope, Vec<crate::ports::Outcome>>,
}

struct Core {
    hub: Mutex<Hub>,
    store: Arc<dyn Store>,
    config: Arc<Config>,
    ids: Arc<Ids>,
    systems: Systems,
    breakers: BTreeMap<String, Breaker>,
    metrics: Arc<Metrics>,
    node: i64,
    readers: Vec<Mutex<Box<dyn StoreReader>>>,
    /// Each system's reader for building requests, when rounds run on the caller's thread.
    round_readers: BTreeMap<String, Mutex<Box<dyn StoreReader>>>,
    /// Per system, the thread that renews the leases of steps under call.
    leases: BTreeMap<String, LeaseKeeper>,
    queue: Mutex<Queue>,
    /// The writer waits on it for submissions and for its committer.
    queued: Condvar,
    /// The committer waits on it for the writer's next commit.
    commit_due: Condvar,
    /// How many threads besides the writer wait for the hub.
    hub_wanted: AtomicUsize,
    /// Counts commits that may have made steps due; the delivery workers wait on it.
    /// Per system, a count of the commits that made work due for it; its worker waits for
    /// the count to move.
    work: (Mutex<BTreeMap<String, u64>>, Condvar),
    writer_alive: AtomicBool,
    /// Unix milliseconds of each running worker's last round.
    heartbeats: BTreeMap<String, AtomicI64>,
    /// When this process last took an event from each source.
    last_seen: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// Counts payroll loads made here; the costing worker wakes when it moves (and looks
    /// for loads of other processes every second).
    payroll: (Mutex<u64>, Condvar),
    /// Where a reload reads the configuration from (`serve`'s file).
    reloader: Mutex<Option<crate::routing::Reloader>>,
    /// Legal entities added by a reload, by code.
    onboarding: Mutex<BTreeMap<String, crate::routing::Onboarding>>,
}

pub struct Engine {
    core: Arc<Core>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Per polling source, what wakes its poller before its next poll.
    wakers: Mutex<BTreeMap<String, Arc<crate::rest_poll::Wake>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave a half-written commit behind (the store's
    // transaction rolls back); the hub marks itself for a rebuild.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    pub fn open(store: Arc<dyn Store>, config: Config, systems: Systems) -> Result<Arc<Self>> {
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::default());
        let ids = Arc::new(Ids::new(store.clone()));
        let node = ids.next(IdKind::Node)?;
        let readers = (0..READERS)
            .map(|_| store.reader().map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let mut round_readers = BTreeMap::new();
        let mut leases = BTreeMap::new();
        let mut breakers = BTreeMap::new();
        let mut heartbeats = BTreeMap::new();
        for (name, _) in systems.iter() {
            round_readers.insert(name.clone(), Mutex::new(store.reader()?));
            leases.insert(
                name.clone(),
                LeaseKeeper::spawn(store.clone(), name, config.lease).map_err(|e| {
                    EngineError::Store(format!("cannot start the lease keeper of {name}: {e}"))
                })?,
            );
            breakers.insert(
                name.clone(),
                Breaker::new(config.breaker_threshold, config.breaker_cool_down),
            );
            heartbeats.insert(name.clone(), AtomicI64::new(0));
        }
        let hub = Hub::open(
            store.clone(),
            config.clone(),
            ids.clone(),
            metrics.clone(),
            node,
        )?;
        let core = Arc::new(Core {
            hub: Mutex::new(hub),
            store,
            config,
            ids,
            systems,
            breakers,
            metrics,
            node,
            readers,
            round_readers,
            leases,
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            commit_due: Condvar::new(),
            hub_wanted: AtomicUsize::new(0),
            work: (
                Mutex::new(heartbeats.keys().map(|name| (name.clone(), 0)).collect()),
                Condvar::new(),
            ),
            writer_alive: AtomicBool::new(true),
            heartbeats,
            last_seen: Mutex::new(BTreeMap::new()),
            payroll: (Mutex::new(0), Condvar::new()),
            reloader: Mutex::new(None),
            onboarding: Mutex::new(BTreeMap::new()),
        });
        let writer = {
            let core = core.clone();
            std::thread::Builder::new()
                .name("pshub-writer".into())
                .spawn(move || core.write_loop())
                .map_err(|e| EngineError::Store(format!("cannot start the writer: {e}")))?
        };
        Ok(Arc::new(Engine {
            core,
            writer: Mutex::new(Some(writer)),
            wakers: Mutex::default(),
        }))
    }

    /// What wakes the poller of `source` (a change event says there is something to read).
    pub fn waker(&self, source: &str) -> Arc<crate::rest_poll::Wake> {
        lock(&self.wakers)
            .entry(source.to_string())
            .or_default()
            .clone()
    }

    pub fn config(&self) -> &Config {
        &self.core.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.core.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

    /// This process's node id: its leases and counters are kept under it.
    pub fn node(&self) -> i64 {
        self.core.node
    }

    /// Runs `f` with a reader that sees what is committed, without waiting for the writer.
    pub fn read<R>(&self, f: impl FnOnce(&mut dyn StoreReader) -> R) -> R {
        for reader in &self.core.readers {
            if let Ok(mut reader) = reader.try_lock() {
                return f(reader.as_mut());
            }
        }
        let mut reader = lock(&self.core.readers[0]);
        f(reader.as_mut())
    }

    /// Runs `f` with the hub locked (its reference data, for tests and tools).
    pub fn with_hub<R>(&self, f: impl FnOnce(&mut Hub) -> R) -> R {
        f(&mut self.core.hub())
    }

    /// Hands parsed events to the writer; `reply` is called once they are durably
    /// committed (or with why not). Returns at once.
    pub fn submit_parsed(&self, events: Vec<Incoming>, reply: Reply) {
        let mut queue = lock(&self.core.queue);
        if queue.closed {
            drop(queue);
            reply(Err(EngineError::Store(
                "the engine is shutting down".into(),
            )));
            return;
        }
        queue.waiting.push(Submission { events, reply });
        self.core.queued.notify_one();
    }

    /// Takes events as they arrived (one JSON text each) and returns once they are durably
    /// committed.
    pub fn submit_texts(&self, events: Vec<String>) -> Result<Vec<IngestResult>> {
        let config = &self.core.config;
        let parsed = events
            .into_iter()
            .map(|raw| Incoming::parse(raw, config))
            .collect();
        self.submit_incoming(parsed)
    }

    /// Takes parsed events and returns once they are durably committed.
    pub fn submit_incoming(&self, events: Vec<Incoming>) -> Result<Vec<IngestResult>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit_parsed(
            events,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv()
            .unwrap_or_else(|_| Err(EngineError::Store("the writer stopped".into())))
    }

    /// Takes events as JSON values and returns once they are durably committed.
    pub fn submit(&self, events: Vec<Value>) -> Result<Vec<IngestResult>> {
        self.submit_texts(events.iter().map(Value::to_string).collect())
    }

    /// Runs one delivery round for every system on this thread; answers how many steps ran.
    pub fn deliver_due(&self, limit: u32) -> Result<usize> {
        let mut total = 0;
        for name in self
            .core
            .systems
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
        {
            total += self.core.round(&name, limit, Vec::new(), false)?.0.steps;
        }
        Ok(total)
    }

    /// Delivers until nothing is due now. Steps waiting for a later retry stay queued.
    pub fn drain(&self) -> Result<()> {
        while self.deliver_due(self.core.config.delivery_batch)? > 0 {}
        Ok(())
    }

    /// Delivers until no step is pending or running, waiting for retries and for the steps
    /// others wait on, for at most `timeout`. Answers whether it got there. Steps blocked
    /// behind a failed or held step do not count: nothing moves them but a person.
    pub fn settle(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain()?;
            let idle = self.read(|r| -> Result<bool> {
                Ok(r.steps_in_state(StepState::Pending, Page::first(1))?
                    .is_empty()
                    && r.steps_in_state(StepState::Running, Page::first(1))?
                        .is_empty())
            })?;
            if idle {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Starts one delivery worker per system; each runs its system's due steps until `stop`.
    pub fn spawn_delivery(self: &Arc<Self>, stop: Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
        let names: Vec<String> = self.core.systems.iter().map(|(n, _)| n.clone()).collect();
        names
            .into_iter()
            .filter_map(|name| {
                let core = self.core.clone();
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("pshub-{name}"))
                    .spawn(move || core.delivery_loop(&name, &stop))
                    .map_err(|e| tracing::error!(%e, "cannot start a delivery worker"))
                    .ok()
            })
            .collect()
    }

    /// Starts the worker that opens the cases of payroll loads (this process's and those
    /// of `pshub load payroll` on the same store), until `stop`.
    pub fn spawn_costing(self: &Arc<Self>, stop: Arc<AtomicBool>) -> Option<JoinHandle<()>> {
        let engine = self.clone();
        std::thread::Builder::new()
            .name("pshub-costing".into())
            .spawn(move || {
                let mut seen = 0;
                while !stop.load(Ordering::Relaxed) {
                    let pending = engine.read(|r| r.payroll_loads(true, Page::first(1)));
                    if pending.is_ok_and(|loads| !loads.is_empty())
                        && let Err(error) = engine.check_payroll()
                    {
                        tracing::error!(%error, "checking payroll loads failed");
                    }
                    let (count, wake) = &engine.core.payroll;
                    let count = lock(count);
                    if *count == seen {
                        let _ = wake.wait_timeout(count, Duration::from_secs(1));
                    }
                    seen = *lock(&engine.core.payroll.0);
                }
            })
            .map_err(|e| tracing::error!(%e, "cannot start the costing worker"))
            .ok()
    }

    /// Reads, checks and stores a payroll file in one transaction, and wakes the costing
    /// worker to open the cases it implies.
    pub fn load_payroll(
        &self,
        file: &str,
        bytes: &[u8],
    ) -> std::result::Result<crate::payroll::LoadReport, crate::payroll::LoadError> {
        let report = crate::payroll::load(
            self.core.store.as_ref(),
            file,
            bytes,
            &crate::flows::stamp(Utc::now()),
        )?;
        self.core.signal_payroll();
        Ok(report)
    }

    /// The revenue-leakage report: what the sources approved, what the hub posted and what
    /// the configured ERP holds (read back through its port), for `period` (`YYYY-MM`) or
    /// all time.
    pub fn leakage(&self, period: Option<&str>) -> Result<crate::leakage::Report> {
        let config = self.current_config();
        let mut erps: Vec<(&str, &dyn crate::ports::Erp)> = Vec::new();
        for name in config.primary_erps() {
            let Some(crate::ports::Port::Erp(erp)) = self.core.systems.get(name) else {
                return Err(EngineError::Store(format!(
                    "the configured ERP {name} is not an ERP this hub can read"
                )));
            };
            erps.push((name, erp.as_ref()));
        }
        let mut reader = self.core.store.reader()?;
        let hub = self.core.hub();
        crate::leakage::report(hub.world(), &config, reader.as_mut(), &erps, period)
    }

    /// Sets where [`Engine::reload_configured`] reads the configuration from.
    pub fn set_reloader(&self, reloader: crate::routing::Reloader) {
        *lock(&self.core.reloader) = Some(reloader);
    }

    /// Re-reads the configuration and takes its routes, default ERP and legal entities
    /// (`SIGHUP`, `POST /v1/config/reload`). Events already taken keep the ERP they were
    /// routed to; the next group is decided under the new configuration.
    pub fn reload_configured(&self) -> std::result::Result<crate::routing::Reloaded, ActionError> {
        // Held until the file read is taken, so that two reloads apply in the order read.
        let reloader = lock(&self.core.reloader);
        let Some(reload) = reloader.as_ref() else {
            return Err(ActionError::WrongState(
                "this hub was not started from a configuration file; there is nothing to reload"
                    .into(),
            ));
        };
        let config = reload().map_err(ActionError::Invalid)?;
        self.reload(config)
    }

    /// Takes the reloadable parts of `config` (see [`crate::routing::merge`]).
    pub fn reload(
        &self,
        config: Config,
    ) -> std::result::Result<crate::routing::Reloaded, ActionError> {
        let mut hub = self.core.hub();
        let (next, reloaded) = crate::routing::merge(hub.config(), config, &self.core.systems)?;
        hub.set_config(Arc::new(next));
        drop(hub);
        let mut onboarding = lock(&self.core.onboarding);
        for entity in &reloaded.legal_entities_added {
            onboarding.insert(
                entity.clone(),
                crate::routing::Onboarding {
                    legal_entity: entity.clone(),
                    configured_at: reloaded.at,
                    first_posted_at: None,
                },
            );
        }
        tracing::info!(
            routes = reloaded.routes.len(),
            added = ?reloaded.legal_entities_added,
            default_erp = %reloaded.default_erp,
            "configuration reloaded"
        );
        Ok(reloaded)
    }

    /// The ERP that takes a project's work now (by the current routes), and its shadow: a
    /// connector reports invoice states only of the projects it is the ERP of.
    pub fn erps_of_project(&self, project_code: &str) -> (String, Option<String>) {
        let hub = self.core.hub();
        let routed = hub.config().route_of_project(hub.world(), project_code);
        (routed.erp.to_string(), routed.shadow.map(str::to_string))
    }

    /// The configuration events are decided under now (reloads included).
    pub fn current_config(&self) -> Arc<Config> {
        self.core.hub().config_arc()
    }

    /// Each legal entity added by a reload, with `entity_onboarding_seconds` once its first
    /// line is posted.
    pub fn onboarding(&self) -> Result<Vec<crate::routing::Onboarding>> {
        let waiting: Vec<String> = lock(&self.core.onboarding)
            .values()
            .filter(|o| o.first_posted_at.is_none())
            .map(|o| o.legal_entity.clone())
            .collect();
        if !waiting.is_empty() {
            let mut reader = self.core.store.reader()?;
            let hub = self.core.hub();
            let mut found = Vec::new();
            for entity in waiting {
                if let Some(at) =
                    crate::routing::first_posted(hub.world(), reader.as_mut(), &entity)?
                {
                    found.push((entity, at));
                }
            }
            drop(hub);
            let mut onboarding = lock(&self.core.onboarding);
            for (entity, at) in found {
                if let Some(o) = onboarding.get_mut(&entity) {
                    o.first_posted_at = Some(at.max(o.configured_at));
                    self.core.metrics.record_onboarding(&entity, o.seconds());
                }
            }
        }
        Ok(lock(&self.core.onboarding).values().cloned().collect())
    }

    /// The shadow report of a route in shadow mode, for `period` (`YYYY-MM`) or all time.
    pub fn shadow_report(
        &self,
        route: &str,
        period: Option<&str>,
    ) -> std::result::Result<crate::routing::ShadowReport, ActionError> {
        // What the route matches, read under the hub's lock; the ERPs are read outside it.
        let (config, projects) = {
            let hub = self.core.hub();
            let config = hub.config_arc();
            let projects = crate::routing::projects_of_route(&config, hub.world(), route);
            (config, projects)
        };
        crate::routing::shadow_report(&config, &self.core.systems, &projects, route, period)
    }

    /// Opens the cases of every payroll load not yet checked; answers what it found.
    pub fn check_payroll(
        &self,
    ) -> std::result::Result<crate::flows::payroll_costing::Checked, ActionError> {
        let checked = self.core.hub().check_payroll(Utc::now())?;
        Ok(checked)
    }

    pub fn resolve(
        &self,
        case_id: i64,
        acting: &Acting,
    ) -> std::result::Result<Resolution, ActionError> {
        let resolution = self.core.hub().resolve(case_id, acting, Utc::now())?;
        self.core.signal_work();
        Ok(resolution)
    }

    pub fn dismiss(&self, case_id: i64, acting: &Acting) -> std::result::Result<(), ActionError> {
        self.core.hub().dismiss(case_id, acting, Utc::now())
    }

    pub fn acknowledge(
        &self,
        case_id: i64,
        acting: &Acting,
    ) -> std::result::Result<(), ActionError> {
        self.core.hub().acknowledge(case_id, acting, Utc::now())
    }

    /// Sends a dead letter again: `line-N` names the step of invoice line N, `call-N` step N.
    pub fn replay_dead_letter(
        &self,
        target: Outbound,
        acting: &Acting,
    ) -> std::result::Result<(), ActionError> {
        let step_id = match target {
            Outbound::Call(id) => id,
            Outbound::Line(id) => {
                self.read(|r| r.line(id))?
                    .ok_or_else(|| ActionError::NotFound(format!("dead letter {target}")))?
                    .step
                    .id
            }
        };
        self.core
            .hub()
            .replay_step(step_id, acting, Utc::now())
            .map_err(|e| match e {
                ActionError::NotFound(_) => ActionError::NotFound(format!("dead letter {target}")),
                ActionError::WrongState(_) => {
                    ActionError::WrongState(format!("{target} is not a dead letter"))
                }
                other => other,
            })?;
        self.core.signal_work();
        Ok(())
    }

    pub fn replay_quarantined(
        &self,
        id: i64,
        corrected: Option<String>,
        acting: &Acting,
    ) -> std::result::Result<IngestResult, ActionError> {
        let result = self
            .core
            .hub()
            .replay_quarantined(id, corrected, acting, Utc::now())?;
        self.core.signal_work();
        // A corrected payroll row is a load of its own.
        self.core.signal_payroll();
        Ok(result)
    }

    /// Every configured system: its kind, breaker and what it says of itself.
    /// Every configured system: the targets the flows call (kind, breaker, what the target
    /// says of itself) and the sources allowed to send, each with its roles, the domains it
    /// owns and when this process last took an event from it.
    pub fn systems(&self) -> Value {
        let config = &self.core.config;
        let seen = lock(&self.core.last_seen).clone();
        let mut names: Vec<String> = self.core.systems.iter().map(|(n, _)| n.clone()).collect();
        names.extend(config.sources.iter().cloned());
        names.sort();
        names.dedup();
        let mut all = serde_json::Map::new();
        for name in names {
            let port = self.core.systems.get(&name);
            let mut roles = Vec::new();
            if config.knows_source(&name) {
                roles.push("source");
            }
            if port.is_some() {
                roles.push("target");
            }
            let owns: Vec<&str> = pshub_model::Domain::ALL
                .iter()
                .filter(|d| config.owner_of(**d) == name)
                .map(|d| d.as_str())
                .collect();
            let mut entry = json!({
                "roles": roles,
                "owns": owns,
                "last_seen": seen.get(&name).map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            });
            if let (Some(port), Some(breaker)) = (port, self.core.breakers.get(&name)) {
                entry["kind"] = json!(port.kind());
                entry["breaker"] = json!({
                    "state": breaker.state().as_str(),
                    "opened": breaker.opened.load(Ordering::Relaxed),
                    "closed_again": breaker.closed_again.load(Ordering::Relaxed),
                });
                entry["target"] = port.describe();
            }
            all.insert(name, entry);
        }
        Value::Object(all)
    }

    /// The port of a configured system.
    pub fn port(&self, system: &str) -> Option<&Port> {
        self.core.systems.get(system)
    }

    /// The circuit breaker of a configured target system, with its call counts.
    pub fn breaker(&self, system: &str) -> Option<&Breaker> {
        self.core.breakers.get(system)
    }

    pub fn breaker_state(&self, system: &str) -> Option<BreakerState> {
        self.core.breakers.get(system).map(Breaker::state)
    }

    /// `/metrics`: the engine's counters and each system's breaker.
    pub fn render_metrics(&self) -> String {
        let mut text = self.core.metrics.render();
        text.push_str("# HELP pshub_breaker_state Circuit breaker of each target system: 0 closed, 1 open, 2 half-open.\n# TYPE pshub_breaker_state gauge\n");
        for (name, breaker) in &self.core.breakers {
            text.push_str(&format!(
                "pshub_breaker_state{{system=\"{name}\"}} {}\n",
                breaker.state().as_gauge()
            ));
        }
        text.push_str("# HELP pshub_breaker_opened_total Times each system's breaker opened.\n# TYPE pshub_breaker_opened_total counter\n");
        for (name, breaker) in &self.core.breakers {
            text.push_str(&format!(
                "pshub_breaker_opened_total{{system=\"{name}\"}} {}\n",
                breaker.opened.load(Ordering::Relaxed)
            ));
        }
        text.push_str("# HELP pshub_breaker_closed_total Times each system's breaker closed again after a probe.\n# TYPE pshub_breaker_closed_total counter\n");
        for (name, breaker) in &self.core.breakers {
            text.push_str(&format!(
                "pshub_breaker_closed_total{{system=\"{name}\"}} {}\n",
                breaker.closed_again.load(Ordering::Relaxed)
            ));
        }
        text
    }

    /// Whether the store answers and the writer and delivery workers run; else why not.
    pub fn health(&self) -> std::result::Result<(), String> {
        self.read(|r| r.ping())
            .map_err(|e| format!("the store does not answer: {e}"))?;
        if !self.core.writer_alive.load(Ordering::Relaxed) {
            return Err("the writer thread has stopped".into());
        }
        let now = Utc::now().timestamp_millis();
        for (name, beat) in &self.core.heartbeats {
            let last = beat.load(Ordering::Relaxed);
            let limit = i64::try_from(HEARTBEAT_LIMIT.as_millis()).unwrap_or(30_000);
            // 0: no worker was started for it (a tool that delivers on its own thread).
            if last != 0 && now - last > limit {
                return Err(format!(
                    "the delivery worker of {name} has not run for {} s",
                    (now - last) / 1000
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        lock(&self.core.queue).closed = true;
        self.core.queued.notify_all();
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
    }
}

impl Core {
    /// Wakes every system's worker.
    fn signal_work(&self) {
        let (counts, wake) = &self.work;
        for count in lock(counts).values_mut() {
            *count += 1;
        }
        wake.notify_all();
    }

    /// Wakes the workers of these systems only.
    fn signal_systems<'a>(&self, systems: impl Iterator<Item = &'a str>) {
        let (counts, wake) = &self.work;
        let mut counts = lock(counts);
        let mut any = false;
        for system in systems {
            if let Some(count) = counts.get_mut(system) {
                *count += 1;
                any = true;
            }
        }
        if any {
            wake.notify_all();
        }
    }

    fn signal_payroll(&self) {
        let (count, wake) = &self.payroll;
        *lock(count) += 1;
        wake.notify_all();
    }

    /// Notes when each source of a batch was last seen.
    fn saw_sources(&self, events: &[Incoming]) {
        let now = Utc::now();
        let mut seen = lock(&self.last_seen);
        let mut last: Option<&str> = None;
        for incoming in events {
            if let Incoming::Valid { event, .. } = incoming
                && last != Some(event.source.as_str())
            {
                last = Some(event.source.as_str());
                match seen.get_mut(event.source.as_str()) {
                    Some(at) => *at = now,
                    None => {
                        seen.insert(event.source.clone(), now);
                    }
                }
            }
        }
    }

    fn round(
        &self,
        system: &str,
        limit: u32,
        carried: Vec<Claimed>,
        claim_next: bool,
    ) -> Result<(Delivered, Vec<Claimed>)> {
        self.with_round(system, |round| round.run(limit, carried, claim_next))
            .unwrap_or_else(|| Ok((Delivered::default(), Vec::new())))
    }

    /// A system's delivery round, with its reader locked for as long as `f` runs.
    fn with_round<R>(&self, system: &str, f: impl FnOnce(&mut Round<'_>) -> R) -> Option<R> {
        let port = self.systems.get(system)?;
        let breaker = self.breakers.get(system)?;
        let leases = self.leases.get(system)?;
        let mut reader = lock(self.round_readers.get(system)?);
        let mut round = Round {
            system,
            port,
            breaker,
            store: self.store.as_ref(),
            reads: reader.as_mut(),
            ids: &self.ids,
            config: &self.config,
            metrics: &self.metrics,
            node: self.node,
            leases,
        };
        Some(f(&mut round))
    }

    fn delivery_loop(&self, system: &str, stop: &AtomicBool) {
        if self.config.delivery_pacing.contains_key(system) {
            return self.pipelined_loop(system, stop);
        }
        let beat = &self.heartbeats[system];
        let mut seen = 0;
        // Steps claimed together with the last round's outcomes, for the next round.
        let mut carried = Vec::new();
        // Whether the last round took all it could: more is due at once.
        let mut full = false;
        let (batch, pause) = self.config.pacing(system);
        while !stop.load(Ordering::Relaxed) {
            beat.store(Utc::now().timestamp_millis(), Ordering::Relaxed);
            let round = self
                .round(system, batch, std::mem::take(&mut carried), full)
                .map(|(delivered, next)| {
                    carried = next;
                    delivered
                });
            match round {
                Ok(Delivered {
                    steps: 0,
                    held_back_until,
                }) => {
                    let wait = held_back_until
                        .map(|until| until.saturating_duration_since(Instant::now()))
                        .unwrap_or(Duration::from_millis(250))
                        .min(Duration::from_millis(250));
                    self.wait_for_work(system, &mut seen, wait);
                }
                Ok(delivered) => {
                    // Done steps may have released steps of other systems.
                    self.signal_work();
                    // A small round pauses before the next, so that what comes due meanwhile
                    // goes in one round, one write and one fsync, rather than many.
                    full = delivered.steps >= batch as usize;
                    if !full {
                        std::thread::sleep(pause);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, system, "delivery round failed");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        beat.store(0, Ordering::Relaxed);
    }

    /// The delivery of a connector that batches on its own terms (`delivery_pacing`): while
    /// one round's call runs on a thread of its own, the previous round's outcomes are
    /// recorded, the next round claimed in the same write, and its requests built; so the
    /// target never waits for the hub's commit. The steps under call and those claimed
    /// after them are held (their leases renewed) together.
    fn pipelined_loop(&self, system: &str, stop: &AtomicBool) {
        let (Some(port), Some(leases)) = (self.systems.get(system), self.leases.get(system)) else {
            return;
        };
        let caller = Caller {
            system,
            port,
            leases,
            node: self.node,
            holds_leases: false,
        };
        let beat = &self.heartbeats[system];
        let (batch, pause) = self.config.pacing(system);
        let holding = leases.hold(Vec::new(), self.node);
        let ids = |steps: &[&[Claimed]]| -> Vec<i64> {
            steps
                .iter()
                .flat_map(|s| s.iter().map(|c| c.step.id))
                .collect()
        };
        std::thread::scope(|scope| {
            // The round claimed and built, to call as soon as the one under call answers.
            let mut ready: Option<(Vec<Claimed>, Requests)> = None;
            let mut in_flight: Option<InFlight<'_>> = None;
            loop {
                beat.store(Utc::now().timestamp_millis(), Ordering::Relaxed);
                let stopping = stop.load(Ordering::Relaxed);
                // 1. The answers of the round under call.
                let finished = in_flight.take().map(|f| {
                    let outcomes = f.call.join().unwrap_or_else(|_| {
                        let lost = format!("the call to {system} stopped without an answer");
                        f.claimed
                            .iter()
                            .map(|_| Outcome::Unknown(lost.clone()))
                            .collect()
                    });
                    (f.claimed, f.requests, outcomes)
                });
                // 2. The next call, at once, when the breaker lets calls through. On a stop,
                //    a round not yet sent is left to lapse.
                if ready.is_some()
                    && !stopping
                    && let Some(breaker) = self.breakers.get(system)
                    && let crate::breaker::Permit::Wait(until) = breaker.permit(Instant::now())
                {
                    // Held, with its leases, until the breaker lets a call through.
                    if finished.is_none() {
                        std::thread::sleep(
                            until
                                .saturating_duration_since(Instant::now())
                                .min(Duration::from_millis(250)),
                        );
                        continue;
                    }
                } else if let Some((claimed, requests)) = ready.take().filter(|_| !stopping) {
                    let call = {
                        let (claimed, requests) = (claimed.clone(), requests.clone());
                        scope.spawn(move || caller.outcomes(&claimed, &requests))
                    };
                    in_flight = Some(InFlight {
                        claimed,
                        requests,
                        call,
                    });
                }
                // 3. The answered round recorded, and the round after the one just sent
                //    claimed in the same write.
                let mut claimed = Vec::new();
                let mut small = false;
                if let Some((answered, requests, outcomes)) = finished {
                    match self.with_round(system, |r| {
                        r.finish(batch, &answered, &requests, outcomes, !stopping)
                    }) {
                        Some(Ok((delivered, next))) => {
                            claimed = next;
                            small = delivered.steps < batch as usize;
                            self.signal_work();
                        }
                        Some(Err(error)) => {
                            // The outcomes are lost with the commit: the steps' leases lapse
                            // and their next attempt asks the system first.
                            tracing::error!(%error, system, "recording a delivery round failed");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        None => return,
                    }
                } else if !stopping {
                    match self.with_round(system, |r| r.claim(batch)) {
                        Some(Ok((next, held_back))) => {
                            if next.is_empty() && in_flight.is_none() {
                                let wait = held_back
                                    .map(|u| u.saturating_duration_since(Instant::now()))
                                    .unwrap_or(Duration::from_millis(250))
                                    .min(Duration::from_millis(250));
                                let mut seen = lock(&self.work.0).get(system).copied().unwrap_or(0);
                                self.wait_for_work(system, &mut seen, wait);
                                continue;
                            }
                            claimed = next;
                        }
                        Some(Err(error)) => {
                            tracing::error!(%error, system, "claiming a delivery round failed");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        None => return,
                    }
                }
                if stopping && in_flight.is_none() {
                    break;
                }
                holding.replace(ids(&[
                    in_flight.as_ref().map_or(&[][..], |f| &f.claimed[..]),
                    ready.as_ref().map_or(&[][..], |(c, _)| &c[..]),
                    &claimed,
                ]));
                // 4. Its requests, built while the round before it is under call.
                if !claimed.is_empty() {
                    match self.with_round(system, |r| r.requests(&claimed)) {
                        Some(Ok(requests)) => match &mut ready {
                            // A round held by the breaker takes these too.
                            Some((held, built)) => {
                                held.extend(claimed);
                                built.extend(requests);
                            }
                            None => ready = Some((claimed, requests)),
                        },
                        Some(Err(error)) => {
                            // Its steps lapse and are claimed again.
                            tracing::error!(%error, system, "building a delivery round failed");
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        None => return,
                    }
                } else if small && in_flight.is_none() {
                    // A round that was not full pauses, so that what comes due meanwhile
                    // goes in one round.
                    std::thread::sleep(pause);
                }
            }
        });
        drop(holding);
        beat.store(0, Ordering::Relaxed);
    }

    /// Waits until a commit after the one `seen` last made work due for `system`, or
    /// `timeout`.
    fn wait_for_work(&self, system: &str, seen: &mut u64, timeout: Duration) {
        let (counts, wake) = &self.work;
        let deadline = Instant::now() + timeout;
        let mut counts = lock(counts);
        loop {
            let current = counts.get(system).copied().unwrap_or(0);
            let left = deadline.saturating_duration_since(Instant::now());
            if current != *seen || left.is_zero() {
                *seen = current;
                return;
            }
            counts = wake
                .wait_timeout(counts, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

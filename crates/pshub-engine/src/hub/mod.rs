//! The hub: takes batches of events in, hands each accepted event to the flow that acts on
//! it, and turns every decision into rows of one [`Commit`]. One hub per process; several
//! processes may share one store, and the store's checks (unique keys, row versions, the
//! reference version) keep them from overwriting each other: a commit that lost a race is
//! rebuilt on fresh data and retried.
//!
//! Memory is a cache of the store: reference data (the [`World`]) follows the store's
//! reference order, and whatever a failed or interrupted batch changed is undone or rebuilt
//! before the next batch.

mod actions;
pub use actions::Acting;
mod ingest;
pub use ingest::Decided;
mod registry;
mod systems_of_record;
pub use systems_of_record::{NOT_SYSTEM_OF_RECORD, POSSIBLE_DUPLICATE_CUSTOMER};

use crate::config::Config;
use crate::error::Result;
use crate::fingerprint::fingerprint;
use crate::flows::{Caches, stamp};
use crate::ids::Ids;
use crate::metrics::Metrics;
use crate::store::*;
use crate::world::World;
use chrono::{DateTime, Utc};
use pshub_model::records::{ExceptionState, OwnerTeam};
use pshub_model::{Event, EventData, EventError, EventType};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// How an inbound event was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestStatus {
    Accepted,
    Duplicate,
    Conflict,
    Quarantined,
}

impl IngestStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            IngestStatus::Accepted => "accepted",
            IngestStatus::Duplicate => "duplicate",
            IngestStatus::Conflict => "conflict",
            IngestStatus::Quarantined => "quarantined",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestResult {
    pub id: Option<String>,
    pub status: IngestStatus,
    pub reason: Option<String>,
    pub correlation_id: Option<String>,
}

/// An inbound event, parsed before it reaches the hub: parsing needs nothing but the
/// configured sources, so it runs on the sender's thread.
#[derive(Debug, Clone)]
pub enum Incoming {
    Valid {
        event: Box<Event>,
        /// The canonical data, as stored and compared.
        data: String,
        raw: String,
        fingerprint: u64,
    },
    Invalid {
        error: EventError,
        raw: String,
        correlation_id: Option<String>,
        /// What the quarantine keeps it as (`event`, `mapped_record`, `unverified_payload`).
        kind: &'static str,
        /// The file and line it was read from (a row of a CSV drop).
        at: Option<Box<(String, u64)>>,
    },
}

impl Incoming {
    /// An event already parsed, with the text kept of it.
    pub fn valid(event: Event, raw: String) -> Self {
        let data = event.data.canonical_json();
        let fingerprint = fingerprint(&[&data]);
        Incoming::Valid {
            event: Box::new(event),
            data,
            raw,
            fingerprint,
        }
    }

    /// Parses one event from its text as it arrived.
    pub fn parse(raw: String, config: &Config) -> Self {
        match Event::parse_text(&raw, |s| config.knows_source(s)) {
            Ok(event) => Incoming::valid(event, raw),
            Err(error) => {
                let correlation_id = serde_json::from_str::<Value>(&raw)
                    .ok()
                    .and_then(|v| v.get("correlation_id")?.as_str().map(str::to_string));
                Incoming::Invalid {
                    error,
                    raw,
                    correlation_id,
                    kind: QUARANTINE_EVENT,
                    at: None,
                }
            }
        }
    }
}

/// Parses a stored event's canonical data.
pub fn parse_stored(row: &InboxRow) -> std::result::Result<EventData, String> {
    let event_type = EventType::parse(&row.event_type)
        .ok_or_else(|| format!("type: '{}' is not an event type", row.event_type))?;
    EventData::parse_canonical(event_type, &row.data).map_err(|e| e.to_string())
}

pub struct Hub {
    store: Arc<dyn Store>,
    /// The hub's own reads of what is committed.
    reads: Box<dyn StoreReader>,
    config: Arc<Config>,
    world: World,
    ids: Arc<Ids>,
    metrics: Arc<Metrics>,
    caches: Caches,
    node: i64,
    /// Set while a batch is built; still set at the next one, a panic interrupted it.
    dirty: bool,
    /// The systems that committed work has made due since [`Hub::take_woken`] last ran.
    woken: BTreeSet<String>,
    /// While a batch is decided on top of one still committing: that one's rows.
    ahead: Option<crate::flows::ahead::Ahead>,
}

/// Commits that lose a race with another writer are rebuilt and retried this often.
const ATTEMPTS: u32 = 8;

impl Hub {
    /// Opens the hub over a store, building its memory from what the store holds.
    pub fn open(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        ids: Arc<Ids>,
        metrics: Arc<Metrics>,
        node: i64,
    ) -> Result<Self> {
        let reads = store.reader()?;
        let mut hub = Hub {
            store,
            reads,
            world: World::configured(&config),
            config,
            ids,
            metrics,
            caches: Caches::default(),
            node,
            dirty: false,
            woken: BTreeSet::new(),
            ahead: None,
        };
        hub.rebuild()?;
        Ok(hub)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Takes a reloaded configuration: the next group of events is decided under it.
    pub fn set_config(&mut self, config: Arc<Config>) {
        self.config = config;
    }

    /// The configuration events are decided under now.
    pub fn config_arc(&self) -> Arc<Config> {
        self.config.clone()
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Rebuilds memory from the store: at start, and after a batch was interrupted, so that
    /// nothing that was not written is believed.
    pub fn rebuild(&mut self) -> Result<()> {
        self.world = World::configured(&self.config);
        self.caches = Caches::default();
        self.ahead = None;
        self.refresh()?;
        self.dirty = false;
        Ok(())
    }

    /// Applies the reference changes other processes committed since the world's version.
    /// A stored event that no longer reads is moved to quarantine with a case; the hub goes on.
    pub fn refresh(&mut self) -> Result<()> {
        let mut unreadable = Vec::new();
        let world = &mut self.world;
        let after = world.version;
        let version = self.store.reference_since(after, &mut |row| {
            match parse_stored(&row) {
                Ok(data) => {
                    world.apply_from(&row.source, row.seq, &data);
                }
                Err(error) => unreadable.push((row.clone(), error)),
            }
            world.version = row.ref_version.unwrap_or(world.version);
            Ok(())
        })?;
        world.version = world.version.max(version);
        world.keep();
        if !unreadable.is_empty() {
            self.quarantine_unreadable(unreadable)?;
        }
        Ok(())
    }

    /// Moves stored events that no longer parse out of the inbox into quarantine, each with
    /// a case for the integration team, so that one bad row never stops a start.
    fn quarantine_unreadable(&mut self, rows: Vec<(InboxRow, String)>) -> Result<()> {
        let now = Utc::now();
        let mut commit = Commit {
            node: self.node,
            ..Commit::default()
        };
        for (row, error) in rows {
            tracing::error!(seq = row.seq, source = %row.source, id = %row.event_id, %error,
                "a stored event no longer reads; moved to quarantine");
            let field = error.split(':').next().unwrap_or("data").to_string();
            commit.inbox_removed.push(row.seq);
            commit.quarantine.put(QuarantineRow {
                id: self.ids.next(IdKind::Quarantine)?,
                source: Some(row.source.clone()),
                event_id: Some(row.event_id.clone()),
                raw: row.raw.clone(),
                field,
                reason: format!("stored event {} no longer reads: {error}", row.seq),
                received_at: row.received_at.clone(),
                state: "open".into(),
                replayed_seq: None,
                version: 0,
                kind: QUARANTINE_EVENT.into(),
                file: None,
                line: None,
            });
            commit.cases.put(CaseRow {
                id: self.ids.next(IdKind::Case)?,
                kind: "unreadable_stored_event".into(),
                owner: OwnerTeam::Integration,
                business_key: format!("{}/{}", row.source, row.event_id),
                state: ExceptionState::Open,
                reason: format!(
                    "stored event {}/{} (seq {}) no longer reads: {error}; it was moved to quarantine",
                    row.source, row.event_id, row.seq
                ),
                suggested_fix: "Correct the event in GET /v1/quarantine and replay it, then resolve this case.".into(),
                correlation_id: row.correlation_id.clone(),
                event_seq: row.seq,
                flow: "hub".into(),
                entry_row: None,
                step_id: None,
                value: None,
                currency: None,
                created_at: stamp(now),
                updated_at: stamp(now),
                resolution: None,
                evidence: Some(serde_json::json!({ "raw": row.raw, "error": error }).to_string()),
                version: 0,
            });
        }
        let commit = Arc::new(commit);
        self.store.commit(&commit).map_err(|e| match e {
            CommitError::Store(e) => e,
            CommitError::Conflict(why) => crate::EngineError::Store(why),
        })?;
        self.after_commit(&commit);
        Ok(())
    }

    /// What follows a successful commit in memory: counters and logs of what it did.
    fn after_commit(&mut self, commit: &Commit) {
        self.world.keep();
        self.after_commit_keeping(commit);
    }

    /// [`Hub::after_commit`] but for reference data, which the caller keeps as far as the
    /// commit goes.
    fn after_commit_keeping(&mut self, commit: &Commit) {
        self.metrics.record_ingest(&commit.counters);
        self.metrics
            .reapprovals_suppressed
            .add(self.caches.reapprovals_suppressed);
        log_cases(commit);
        self.caches.end_of_commit(true);
        for step in commit.steps.iter() {
            if step.state == StepState::Pending && !self.woken.contains(&step.system) {
                self.woken.insert(step.system.clone());
            }
        }
    }

    /// What follows a commit that failed or was never made: memory goes back to `mark`,
    /// where it agreed with the store.
    fn undo_since(&mut self, mark: crate::world::Mark, version: i64) {
        self.world.undo(mark, version);
        self.caches.end_of_commit(false);
    }

    /// What a flow's decisions read and write, for one event (or one person's action).
    fn cx<'a>(
        &'a mut self,
        commit: &'a mut Commit,
        now: DateTime<Utc>,
        event: crate::flows::EventMeta,
        actor: Option<(crate::flows::Actor, Option<String>)>,
    ) -> crate::flows::Cx<'a> {
        crate::flows::Cx {
            world: &self.world,
            config: &self.config,
            store: self.store.as_ref(),
            reads: self.reads.as_mut(),
            ids: &self.ids,
            caches: &mut self.caches,
            commit,
            ahead: self.ahead.as_ref(),
            now,
            event,
            actor,
        }
    }

    /// The systems with work made due by commits since the last call, for their workers.
    pub fn take_woken(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.woken)
    }
}

/// One log line per case opened or closed by a commit.
pub fn log_cases(commit: &Commit) {
    for case in commit.cases.iter() {
        if case.version == 0 {
            tracing::info!(case_id = case.id, kind = %case.kind, owner = case.owner.as_str(),
                business_key = %case.business_key, correlation_id = %case.correlation_id, "case opened");
        } else if !case.state.is_open() {
            tracing::info!(case_id = case.id, kind = %case.kind, owner = case.owner.as_str(),
                state = case.state.as_str(), correlation_id = %case.correlation_id, "case closed");
        }
    }
}

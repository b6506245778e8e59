//! The hub: applies events to the world and the entries, and turns every decision into
//! rows of one [`Commit`]. Single-threaded by design; [`crate::Engine`] serialises access.
//!
//! Order per business key follows from applying each batch in arrival order under one
//! lock; the checks of entries are pure (`rules::evaluate`), so the work done under the
//! lock is small and the store commit dominates.

mod actions;
mod delivery;
mod ingest;

use crate::config::Config;
use crate::error::{ActionError, EngineError, Result};
use crate::fingerprint::fingerprint;
use crate::index::HashedIndex;
use crate::metrics::Metrics;
use crate::ports::{LinePosting, ProjectPosting};
use crate::rules::{self, Failure, Pricing, Verdict, Work};
use crate::store::*;
use crate::world::{Applied, World};
use chrono::{DateTime, Utc};
use pshub_model::fields::Obj;
use pshub_model::records::{ClosedWon, ExceptionState, LineKind, OwnerTeam};
use pshub_model::{Event, EventData, EventError, EventType, Money};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
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

/// An inbound event, parsed before it reaches the writer: parsing needs nothing but the
/// configured sources, so it runs on the sender's thread, outside the hub's lock.
#[derive(Debug, Clone)]
pub enum Incoming {
    Valid {
        event: Event,
        data: String,
    },
    Invalid {
        error: EventError,
        raw: String,
        correlation_id: Option<String>,
    },
}

impl Incoming {
    pub fn parse(value: &Value, config: &Config) -> Self {
        match Event::parse(value, |s| config.knows_source(s)) {
            Ok(event) => {
                let data = event.data.canonical_json();
                Incoming::Valid { event, data }
            }
            Err(error) => Incoming::Invalid {
                error,
                raw: value.to_string(),
                correlation_id: value
                    .get("correlation_id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            },
        }
    }
}

/// The key of an entry in the hub's index: kind and the source's id.
fn entry_key(kind: EntryKind, source_id: &str) -> String {
    let prefix = match kind {
        EntryKind::Time => "t:",
        EntryKind::Expense => "e:",
    };
    format!("{prefix}{source_id}")
}

/// An entry's state as the flow reads it, taken from its row.
#[derive(Debug, Clone, Copy)]
struct EntryState {
    row_id: i64,
    event_seq: i64,
    fingerprint: u64,
    /// The line when billed, the case when held, else 0.
    link: i64,
    phase: EntryPhase,
    manual: bool,
}

impl EntryState {
    fn of(row: &EntryRow) -> Self {
        EntryState {
            row_id: row.row_id,
            event_seq: row.event_seq,
            fingerprint: row.fingerprint,
            link: match row.phase {
                EntryPhase::Billed => row.line_id.unwrap_or(0),
                EntryPhase::Held => row.case_id.unwrap_or(0),
                _ => 0,
            },
            phase: row.phase,
            manual: row.manual,
        }
    }
}

/// One item the delivery worker is to send, built under the lock and sent outside it.
#[derive(Debug, Clone)]
pub enum Delivery {
    Line {
        line: Box<LineRow>,
        posting: LinePosting,
    },
    Project {
        item: OutboxRow,
        posting: ProjectPosting,
    },
}

/// How one delivery went.
pub type DeliveryOutcome = std::result::Result<String, crate::ports::ErpError>;

/// What resolving a case led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The held work went through: the line created, if any.
    Posted { line_id: Option<i64> },
    /// The work now fails another check: the new case that holds it.
    HandedOver { case_id: i64, reason: String },
}

pub struct Hub {
    store: Box<dyn Store>,
    config: Config,
    world: World,
    /// Entry row ids by `t:` or `e:` and the entry's id; the rows themselves are in the store.
    entries: HashedIndex<i64>,
    next: MaxIds,
    metrics: Arc<Metrics>,
}

/// The latest version of a row: as written earlier in the commit being built (`written`),
/// else as stored.
fn latest<T: Clone>(
    written: &[T],
    is_it: impl Fn(&T) -> bool,
    stored: impl FnOnce() -> Result<Option<T>>,
) -> Result<Option<T>> {
    match written.iter().rev().find(|row| is_it(row)) {
        Some(row) => Ok(Some(row.clone())),
        None => stored(),
    }
}

fn stamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_stored(row: &InboxRow) -> std::result::Result<EventData, String> {
    let value: Value = serde_json::from_str(&row.data).map_err(|e| e.to_string())?;
    let event_type = EventType::parse(&row.event_type)
        .ok_or_else(|| format!("unknown type {}", row.event_type))?;
    let data = Obj::new("data", &value).map_err(|e| e.to_string())?;
    EventData::parse(event_type, &data).map_err(|e| e.to_string())
}

impl Hub {
    /// Opens the hub over a store, rebuilding its memory from what the store holds.
    pub fn open(store: Box<dyn Store>, config: Config, metrics: Arc<Metrics>) -> Result<Self> {
        let mut hub = Hub {
            store,
            config,
            world: World::default(),
            entries: HashedIndex::default(),
            next: MaxIds::default(),
            metrics,
        };
        hub.rebuild()?;
        Ok(hub)
    }

    /// Rebuilds memory from the store: at start, and after a failed commit, so that
    /// nothing that was not written is believed.
    fn rebuild(&mut self) -> Result<()> {
        let loaded = self.store.load()?;
        let mut world = World::default();
        for row in &loaded.reference {
            let data = parse_stored(row).map_err(|error| {
                EngineError::Store(format!("stored event {} does not parse: {error}", row.seq))
            })?;
            world.apply(&data);
        }
        // Keys whose hash is taken by another key are checked against the store after the scan.
        let mut entries = HashedIndex::default();
        let mut deferred = Vec::new();
        self.store.reads().each_entry(&mut |row| {
            let key = entry_key(row.kind, &row.entry_id);
            if entries.insert(&key, row.row_id, |_| Err(())).is_err() {
                deferred.push((key, row.row_id));
            }
        })?;
        for (key, row_id) in deferred {
            let store = &mut self.store;
            entries.insert(&key, row_id, |other| {
                Ok::<_, EngineError>(
                    store
                        .reads()
                        .entry(*other)?
                        .is_some_and(|r| entry_key(r.kind, &r.entry_id) == key),
                )
            })?;
        }
        self.world = world;
        self.entries = entries;
        self.next = loaded.max_ids;
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&mut self) -> &mut dyn Store {
        self.store.as_mut()
    }

    /// Looks up the entry row id of a time entry or expense by its source id.
    pub fn entry_row(&mut self, kind: EntryKind, source_id: &str) -> Result<Option<i64>> {
        Ok(self
            .entry_state(&Commit::default(), kind, source_id)?
            .map(|s| s.row_id))
    }

    /// The state of an entry: as written earlier in `commit`, else as stored.
    fn entry_state(
        &mut self,
        commit: &Commit,
        kind: EntryKind,
        source_id: &str,
    ) -> Result<Option<EntryState>> {
        let key = entry_key(kind, source_id);
        let store = &mut self.store;
        let mut found = None;
        self.entries.get(&key, |row_id| {
            let row = latest(
                &commit.entries,
                |e| e.row_id == *row_id,
                || store.reads().entry(*row_id),
            )?;
            found = row
                .filter(|r| r.kind == kind && r.entry_id == source_id)
                .map(|r| EntryState::of(&r));
            Ok::<_, EngineError>(found.is_some())
        })?;
        Ok(found)
    }

    fn write(&mut self, commit: &Commit) -> Result<()> {
        if commit.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.store.commit(commit) {
            tracing::error!(%error, "commit failed; rebuilding state from the store");
            self.rebuild()?;
            return Err(error);
        }
        Ok(())
    }
}

/// What every decision about one event shares.
struct Ctx<'a> {
    seq: i64,
    correlation_id: &'a str,
    now: DateTime<Utc>,
    fingerprint: u64,
}

//! A mapping replay (`pshub mapping replay`, `POST /v1/mappings/replay`): the payloads a
//! source sent, kept as they arrived, mapped again under another version of their mappings.
//!
//! Each stored event of the source that a mapping of version `from` made is mapped by the
//! mapping of the same record at version `to`. Where the canonical record differs, the new
//! one is taken in as an event of its own, `<event id>~v<to>`, under the original's
//! correlation id, so that it goes through the flows like any other (a changed time entry
//! is reversed and billed again), shows on the original's transaction timeline, and is
//! taken once however often the replay runs. A dry run decides the same events and undoes
//! them: it answers, per event, the record before and after and what the flows would write.

use crate::engine::Engine;
use crate::error::ActionError;
use crate::hooks::{Origin, canonical, with_origin};
use crate::hub::Incoming;
use crate::store::{Commit, EntryKind, InboxRow, Page};
use chrono::{DateTime, Utc};
use pshub_model::EventData;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Events read from the store per page while looking for the source's payloads.
const PAGE: u32 = 1_000;

/// The most events one replay takes in: a larger one is split by `since`.
pub const MAX_REPLAYED: usize = 20_000;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub source: String,
    pub from: u32,
    pub to: u32,
    /// Only payloads received at or after this.
    pub since: Option<DateTime<Utc>>,
    pub dry_run: bool,
    /// Who asked, kept with each event the replay takes in.
    pub actor: Option<String>,
}

/// Reads a replay's `since`: a date (from its midnight UTC) or an RFC 3339 instant.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            format!("since: '{text}' is neither a date (YYYY-MM-DD) nor an RFC 3339 instant")
        })
}

/// What became of one stored event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStatus {
    /// The new version makes the same canonical record: nothing to do.
    Unchanged,
    /// The record changes (a dry run: it would be taken in).
    Changed,
    /// The record changed and was taken in through the flows.
    Applied,
    /// A replay of this event under this version was taken in before.
    AlreadyReplayed,
    /// A later event changed the same entry; replaying this one would undo it.
    Superseded,
    /// The new version refuses the payload (or has no mapping for its record).
    Error,
}

/// One field that the new version maps differently.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// One stored event, re-mapped.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub seq: i64,
    pub event_id: String,
    pub correlation_id: String,
    pub from_mapping: String,
    pub to_mapping: String,
    pub status: ReplayStatus,
    /// The id the new record is taken in under.
    pub replayed_as: String,
    pub before: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the flows write for it (a dry run: would write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downstream: Option<Value>,
    /// How the hub took it (not on a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// The answer to a replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub source: String,
    pub from: u32,
    pub to: u32,
    pub dry_run: bool,
    /// Stored events of the source that a mapping of version `from` made.
    pub examined: usize,
    pub counts: BTreeMap<&'static str, usize>,
    pub events: Vec<Replayed>,
}

impl Engine {
    /// Re-maps the source's stored payloads of mapping version `from` under version `to`
    /// (see the module's documentation).
    pub fn replay_mapping(
        &self,
        request: &ReplayRequest,
    ) -> std::result::Result<ReplayReport, ActionError> {
        if request.from == request.to {
            return Err(ActionError::Invalid(format!(
                "--from and --to are both version {}: a replay maps under another version",
                request.from
            )));
        }
        let config = self.with_hub(|hub| hub.config_arc());
        if !config.knows_source(&request.source) {
            return Err(ActionError::NotFound(format!(
                "source '{}'",
                request.source
            )));
        }
        let since = request.since.map(crate::flows::stamp);
        let from_suffix = format!(".v{}", request.from);
        let mut events = Vec::new();
        let mut incoming = Vec::new();
        let mut page = Page {
            after: 0,
            limit: PAGE,
        };
        loop {
            let rows =
                self.read(|r| r.events_of_source(&request.source, since.as_deref(), page))?;
            let Some(last) = rows.last() else { break };
            page.after = last.seq;
            for row in rows {
                let Some(origin) = Origin::of_stored(&row.raw) else {
                    continue;
                };
                let origin = origin
                    .map_err(|e| ActionError::Invalid(format!("stored event {}: {e}", row.seq)))?;
                let Some(from_mapping) = origin.mapping.clone() else {
                    continue;
                };
                let Some(record) = from_mapping.strip_suffix(&from_suffix) else {
                    continue;
                };
                let to_mapping = format!("{record}.v{}", request.to);
                let (replayed, event) =
                    self.remap_one(&row, origin, (from_mapping, to_mapping), request)?;
                if let Some(event) = event {
                    incoming.push(event);
                }
                events.push(replayed);
                if incoming.len() > MAX_REPLAYED {
                    return Err(ActionError::Invalid(format!(
                        "more than {MAX_REPLAYED} events change; replay them in parts with --since"
                    )));
                }
            }
        }
        let taken: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].status == ReplayStatus::Changed)
            .collect();
        if request.dry_run {
            if !incoming.is_empty() {
                let (_, commit) = self.with_hub(|hub| hub.preview(&incoming, Utc::now()))?;
                let seq_of: BTreeMap<&str, i64> = commit
                    .inbox
                    .iter()
                    .map(|row| (row.event_id.as_str(), row.seq))
                    .collect();
                for &i in &taken {
                    let seq = seq_of.get(events[i].replayed_as.as_str()).copied();
                    events[i].downstream =
                        Some(seq.map_or(Value::Null, |s| downstream(&commit, s)));
                }
            }
        } else if !incoming.is_empty() {
            let results = self.submit_incoming(incoming)?;
            for (&i, result) in taken.iter().zip(results) {
                events[i].status = ReplayStatus::Applied;
                events[i].result = Some(json!({
                    "status": result.status.as_str(),
                    "reason": result.reason,
                    "correlation_id": result.correlation_id,
                }));
            }
        }
        let mut counts = BTreeMap::new();
        for event in &events {
            let name = match event.status {
                ReplayStatus::Unchanged => "unchanged",
                ReplayStatus::Changed => "changed",
                ReplayStatus::Applied => "applied",
                ReplayStatus::AlreadyReplayed => "already_replayed",
                ReplayStatus::Superseded => "superseded",
                ReplayStatus::Error => "errors",
            };
            *counts.entry(name).or_insert(0) += 1;
        }
        tracing::info!(source = %request.source, from = request.from, to = request.to,
            dry_run = request.dry_run, examined = events.len(), ?counts, "mapping replay");
        Ok(ReplayReport {
            source: request.source.clone(),
            from: request.from,
            to: request.to,
            dry_run: request.dry_run,
            examined: events.len(),
            counts,
            events,
        })
    }

    /// Maps one stored event's payload under `to_mapping`: what it becomes, and the event
    /// to take in when its record changes.
    fn remap_one(
        &self,
        row: &InboxRow,
        origin: Origin,
        (from_mapping, to_mapping): (String, String),
        request: &ReplayRequest,
    ) -> std::result::Result<(Replayed, Option<Incoming>), ActionError> {
        let config = self.with_hub(|hub| hub.config_arc());
        let before: Value = serde_json::from_str(&row.data).unwrap_or(Value::Null);
        let replayed_as = format!("{}~v{}", row.event_id, request.to);
        let mut replayed = Replayed {
            seq: row.seq,
            event_id: row.event_id.clone(),
            correlation_id: row.correlation_id.clone(),
            from_mapping,
            to_mapping: to_mapping.clone(),
            status: ReplayStatus::Error,
            replayed_as: replayed_as.clone(),
            before,
            after: None,
            changes: Vec::new(),
            error: None,
            downstream: None,
            result: None,
        };
        let fail = |mut replayed: Replayed, error: String| {
            replayed.error = Some(error);
            Ok((replayed, None))
        };
        let Some(mapping) = config.mappings.get(&to_mapping) else {
            return fail(
                replayed,
                format!("'{to_mapping}' is not a mapping this hub knows"),
            );
        };
        let record: Value = match serde_json::from_str(&origin.payload) {
            Ok(record) => record,
            Err(e) => return fail(replayed, format!("the kept payload is not JSON: {e}")),
        };
        let (mut envelope, event) =
            match canonical(mapping, &row.source, &record, |s| config.knows_source(s)) {
                Ok(Some(mapped)) => mapped,
                Ok(None) => {
                    return fail(replayed, format!("{to_mapping} does not take this record"));
                }
                Err(error) => return fail(replayed, error.to_string()),
            };
        let after = event.data.canonical_json();
        replayed.after = serde_json::from_str(&after).ok();
        if event.event_type.as_str() != row.event_type {
            replayed.changes.push(Change {
                field: "type".into(),
                before: Value::from(row.event_type.clone()),
                after: Value::from(event.event_type.as_str()),
            });
        }
        let (before, after_value) = (&replayed.before, replayed.after.clone().unwrap_or_default());
        diff("data", before, &after_value, &mut replayed.changes);
        if replayed.changes.is_empty() {
            replayed.status = ReplayStatus::Unchanged;
            return Ok((replayed, None));
        }
        if self
            .read(|r| r.event_by_key(&row.source, &replayed_as))?
            .is_some()
        {
            replayed.status = ReplayStatus::AlreadyReplayed;
            return Ok((replayed, None));
        }
        if let Some(later) = self.superseded_by(row)? {
            replayed.status = ReplayStatus::Superseded;
            replayed.error = Some(format!(
                "stored event {later} changed this entry after it; replaying it would undo that"
            ));
            return Ok((replayed, None));
        }
        // The new record, under its own id and the original's correlation id.
        envelope["id"] = Value::from(replayed_as.clone());
        envelope["correlation_id"] = Value::from(row.correlation_id.clone());
        let event = match pshub_model::Event::parse(&envelope, |s| config.knows_source(s)) {
            Ok(event) => event,
            Err(error) => return fail(replayed, error.to_string()),
        };
        let replay_of = json!({
            "seq": row.seq,
            "event_id": row.event_id,
            "mapping": replayed.from_mapping,
            "by": request.actor,
        });
        let origin = origin.via.with("replay_of", replay_of).record(
            &row.source,
            Some(&to_mapping),
            &origin.payload,
        );
        replayed.status = ReplayStatus::Changed;
        let kept = with_origin(&envelope, &origin);
        Ok((replayed, Some(Incoming::valid(event, kept))))
    }

    /// A later event that changed the entry this stored event is about, if any: a time
    /// entry or expense is as its last event left it.
    fn superseded_by(&self, row: &InboxRow) -> std::result::Result<Option<i64>, ActionError> {
        let Ok(data) = crate::hub::parse_stored(row) else {
            return Ok(None);
        };
        let key = match &data {
            EventData::TimeEntry { entry, .. } => (EntryKind::Time, entry.entry_id.as_str()),
            EventData::Expense { expense, .. } => (EntryKind::Expense, expense.expense_id.as_str()),
            _ => return Ok(None),
        };
        let entry = self.read(|r| r.entry_by_key(key.0, key.1))?;
        Ok(entry.map(|e| e.event_seq).filter(|&seq| seq > row.seq))
    }
}

/// The fields where `after` differs from `before`, by their dotted path.
fn diff(path: &str, before: &Value, after: &Value, changes: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for key in keys {
                let null = Value::Null;
                let child = format!("{path}.{key}");
                diff(
                    &child,
                    b.get(key).unwrap_or(&null),
                    a.get(key).unwrap_or(&null),
                    changes,
                );
            }
        }
        _ if before != after => changes.push(Change {
            field: path.to_string(),
            before: before.clone(),
            after: after.clone(),
        }),
        _ => {}
    }
}

/// What a commit writes because of the event with inbox seq `seq`: lines (a reversal names
/// the line it cancels), steps to other systems, cases opened or closed, entries, and
/// business events published.
fn downstream(commit: &Commit, seq: i64) -> Value {
    let lines: Vec<Value> = commit
        .lines
        .iter()
        .filter(|l| l.event_seq == seq)
        .map(|l| {
            json!({
                "line": l.id,
                "project_code": l.project_code,
                "quantity": l.quantity.to_string(),
                "amount": l.amount.to_string(),
                "currency": l.currency.code(),
                "reverses": l.reverses,
            })
        })
        .collect();
    let steps: Vec<Value> = commit
        .steps
        .iter()
        .filter(|s| s.event_seq == seq)
        .map(|s| json!({"flow": s.flow, "step": s.step, "system": s.system, "state": s.state.as_str()}))
        .collect();
    let touched: Vec<&crate::store::EntryRow> = commit
        .entries
        .iter()
        .filter(|e| e.event_seq == seq)
        .collect();
    // A case is the event's when the event opened it, or when it holds an entry the event
    // changed (a held entry's case closed by the new record).
    let cases: Vec<Value> = commit
        .cases
        .iter()
        .filter(|c| {
            c.event_seq == seq || touched.iter().any(|e| c.entry_row == Some(e.row_id))
        })
        .map(|c| {
            json!({"case": c.id, "kind": c.kind, "owner": c.owner.as_str(), "state": c.state.as_str()})
        })
        .collect();
    let entries: Vec<Value> = touched
        .iter()
        .map(
            |e| json!({"entry_id": e.entry_id, "kind": e.kind.as_str(), "phase": e.phase.as_str()}),
        )
        .collect();
    json!({ "lines": lines, "steps": steps, "cases": cases, "entries": entries })
}

//! Taking events in: quarantine, dedupe, the inbox, reference data, and the flows.

use super::*;
use crate::flows::{self, EventMeta};
use crate::world::Applied;
use std::collections::HashMap;

/// A batch decided, not yet durable: its answers, its commit, and where memory stood
/// before it (to be undone to, if the commit does not go through).
pub struct Decided {
    pub results: Vec<IngestResult>,
    pub commit: Arc<Commit>,
    mark: crate::world::Mark,
    version: i64,
    reapprovals_suppressed: u64,
}

impl Hub {
    /// Decides a batch: each event is quarantined, found a duplicate or a conflict, or
    /// accepted and handed to its flow, and the one commit that makes the answers true is
    /// built. Memory takes the batch's reference changes at once; the caller commits, then
    /// calls [`Hub::kept`], or [`Hub::abandon`] and [`Hub::after_failed_commit`] (a commit
    /// that lost a race with another writer is decided again on fresh data).
    /// `ahead` is the commit of the batch decided just before, when it is still being
    /// written: the batch's reads see its rows as they will be stored.
    pub fn decide(
        &mut self,
        batch: &[Incoming],
        now: DateTime<Utc>,
        ahead: Option<&Arc<Commit>>,
    ) -> Result<Decided> {
        if self.dirty {
            tracing::warn!("the previous batch was interrupted; rebuilding memory from the store");
            self.rebuild()?;
        }
        let mark = self.world.mark();
        let version = self.world.version;
        self.dirty = true;
        self.ahead = ahead.map(|commit| flows::ahead::Ahead::new(commit.clone()));
        let built = self.build(batch, now);
        self.ahead = None;
        let reapprovals_suppressed = std::mem::take(&mut self.caches.reapprovals_suppressed);
        // What the batch cached of the store is kept only as far as the next one may trust it.
        self.caches.end_of_commit(built.is_ok());
        self.dirty = false;
        match built {
            Ok((results, commit)) => Ok(Decided {
                results,
                commit: Arc::new(commit),
                mark,
                version,
                reapprovals_suppressed,
            }),
            Err(error) => {
                self.world.undo(mark, version);
                Err(error)
            }
        }
    }

    /// What follows the commit of `decided` in memory; `next` is the batch decided on top
    /// of it, still to be committed. Answers the batch's results.
    pub fn kept(&mut self, decided: Decided, next: Option<&mut Decided>) -> Vec<IngestResult> {
        self.caches.reapprovals_suppressed = decided.reapprovals_suppressed;
        match next {
            Some(next) => {
                next.mark = self.world.keep_before(next.mark);
                self.after_commit_keeping(&decided.commit);
            }
            None => self.after_commit(&decided.commit),
        }
        decided.results
    }

    /// What follows a commit of `decided` that did not go through: memory goes back to
    /// where it stood before the batch, taking back any batch decided after it as well.
    pub fn abandon(&mut self, decided: &Decided) {
        self.undo_since(decided.mark, decided.version);
    }

    /// A batch stopped on a bug: memory is rebuilt from the store before the next, and
    /// nothing more is read from the batch it was decided on top of.
    pub fn interrupted(&mut self) {
        self.dirty = true;
        self.ahead = None;
    }

    /// After a commit that did not go through: a lost race is retried on fresh reference
    /// data (`Ok`, up to [`ATTEMPTS`] attempts); anything else is the batch's error.
    pub fn after_failed_commit(&mut self, error: CommitError, attempt: u32) -> Result<()> {
        match error {
            CommitError::Conflict(why) if attempt < ATTEMPTS => {
                tracing::debug!(attempt, %why, "batch lost a race with another writer; rebuilding it");
                self.refresh()
            }
            CommitError::Conflict(why) => Err(crate::EngineError::Store(format!(
                "the batch conflicted with other writers {ATTEMPTS} times: {why}"
            ))),
            CommitError::Store(error) => {
                tracing::error!(%error, "commit failed; memory is rolled back to the store");
                Err(error)
            }
        }
    }

    /// What a batch would do: decided as [`Self::ingest`] decides it, then undone, so that
    /// nothing is written and memory is as it was (a mapping replay's dry run).
    pub fn preview(
        &mut self,
        batch: &[Incoming],
        now: DateTime<Utc>,
    ) -> Result<(Vec<IngestResult>, Commit)> {
        if self.dirty {
            self.rebuild()?;
        }
        let mark = self.world.mark();
        let version = self.world.version;
        self.dirty = true;
        let built = self.build(batch, now);
        self.undo_since(mark, version);
        self.dirty = false;
        built
    }

    /// Builds the commit of a batch, and the answer to each event.
    pub(super) fn build(
        &mut self,
        batch: &[Incoming],
        now: DateTime<Utc>,
    ) -> Result<(Vec<IngestResult>, Commit)> {
        let mut commit = Commit {
            node: self.node,
            reference: Some(ReferenceCheck {
                seen: self.world.version,
                to: self.world.version,
            }),
            ..Commit::default()
        };
        let batch = self.find_invoices(batch)?;
        let batch = batch.as_ref();
        let stored = self.prefetch(batch)?;
        let mut accepted_here: HashMap<(&str, &str), usize> = HashMap::new();
        let mut results = Vec::with_capacity(batch.len());
        for (incoming, stored) in batch.iter().zip(stored) {
            commit.counters.received += 1;
            let result = match incoming {
                Incoming::Invalid {
                    error,
                    raw,
                    correlation_id,
                    kind,
                    at,
                } => self.quarantine(
                    error,
                    raw,
                    correlation_id,
                    (kind, at.as_deref()),
                    now,
                    &mut commit,
                )?,
                Incoming::Valid {
                    event,
                    data,
                    raw,
                    fingerprint,
                } => {
                    let key = (event.source.as_str(), event.id.as_str());
                    let prior = match accepted_here.get(&key) {
                        Some(&at) => Some(commit.inbox[at].clone()),
                        None => stored,
                    };
                    match prior {
                        Some(prior) => self.repeated(event, data, raw, &prior, now, &mut commit)?,
                        None => {
                            let result =
                                self.accept(event, data, raw, *fingerprint, now, &mut commit)?;
                            accepted_here.insert(key, commit.inbox.len() - 1);
                            result
                        }
                    }
                }
            };
            results.push(result);
        }
        if let Some(check) = commit.reference.as_mut() {
            check.to = self.world.version;
        }
        Ok((results, commit))
    }

    /// Reads, once per batch, the stored events its keys name and the stored entries its
    /// time entries and expenses name (those of the batch before first, while it commits).
    fn prefetch(&mut self, batch: &[Incoming]) -> Result<Vec<Option<InboxRow>>> {
        let keys: Vec<(&str, &str)> = batch
            .iter()
            .map(|incoming| match incoming {
                Incoming::Valid { event, .. } => (event.source.as_str(), event.id.as_str()),
                Incoming::Invalid { .. } => ("", ""),
            })
            .collect();
        let mut found = self.store.find_events(&keys)?;
        if let Some(ahead) = &self.ahead {
            for (&(source, id), found) in keys.iter().zip(found.iter_mut()) {
                if let Some(row) = ahead.event(source, id) {
                    *found = Some(row.clone());
                }
            }
        }
        let entry_keys: Vec<(EntryKind, &str)> = batch
            .iter()
            .filter_map(|incoming| match incoming {
                Incoming::Valid { event, .. } => match &event.data {
                    EventData::TimeEntry { entry, .. } => {
                        Some((EntryKind::Time, entry.entry_id.as_str()))
                    }
                    EventData::Expense { expense, .. } => {
                        Some((EntryKind::Expense, expense.expense_id.as_str()))
                    }
                    _ => None,
                },
                Incoming::Invalid { .. } => None,
            })
            .collect();
        if !entry_keys.is_empty() {
            let entries = self.store.find_entries(&entry_keys)?;
            for ((kind, id), entry) in entry_keys.into_iter().zip(entries) {
                let entry = match &self.ahead {
                    Some(ahead) => ahead.entry(kind, id).or(entry),
                    None => entry,
                };
                self.caches.entries.insert((kind, id.to_string()), entry);
            }
        }
        Ok(found)
    }

    fn quarantine(
        &mut self,
        error: &EventError,
        raw: &str,
        correlation_id: &Option<String>,
        (kind, at): (&str, Option<&(String, u64)>),
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<IngestResult> {
        commit.counters.quarantined += 1;
        let reason = error.to_string();
        commit.quarantine.put(QuarantineRow {
            id: self.ids.next(IdKind::Quarantine)?,
            source: error.source.clone(),
            event_id: error.id.clone(),
            raw: raw.to_string(),
            field: error.error.field.clone(),
            reason: reason.clone(),
            received_at: stamp(now),
            state: "open".into(),
            replayed_seq: None,
            version: 0,
            kind: kind.into(),
            file: at.map(|(file, _)| file.clone()),
            line: at.map(|&(_, line)| line),
        });
        Ok(IngestResult {
            id: error.id.clone(),
            status: IngestStatus::Quarantined,
            reason: Some(reason),
            correlation_id: correlation_id.clone(),
        })
    }

    /// An event whose key was taken before: the same body is a duplicate; another body is a
    /// conflict, kept and not applied, with a case for the integration team.
    fn repeated(
        &mut self,
        event: &Event,
        data: &str,
        raw: &str,
        prior: &InboxRow,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<IngestResult> {
        let result = |status, reason| IngestResult {
            id: Some(event.id.clone()),
            status,
            reason,
            correlation_id: Some(prior.correlation_id.clone()),
        };
        if prior.event_type == event.event_type.as_str() && prior.data == data {
            commit.counters.duplicates += 1;
            return Ok(result(IngestStatus::Duplicate, None));
        }
        commit.counters.conflicts += 1;
        let conflict_id = self.ids.next(IdKind::Conflict)?;
        let case_id = self.ids.next(IdKind::Case)?;
        let key = format!("{}/{}", event.source, event.id);
        commit.conflicts.push(ConflictRow {
            id: conflict_id,
            source: event.source.clone(),
            event_id: event.id.clone(),
            original_seq: prior.seq,
            event_type: event.event_type.as_str().to_string(),
            data: data.to_string(),
            raw: raw.to_string(),
            received_at: stamp(now),
            case_id,
        });
        commit.cases.put(CaseRow {
            id: case_id,
            kind: "conflicting_event".into(),
            owner: OwnerTeam::Integration,
            business_key: key.clone(),
            state: ExceptionState::Open,
            reason: format!(
                "{key} was first received as {} with other data; the new body is kept as conflict {conflict_id} and not applied",
                prior.event_type
            ),
            suggested_fix: "Compare the two bodies (GET /v1/conflicts). If the new one is right, send it under a new event id; then resolve this case.".into(),
            correlation_id: prior.correlation_id.clone(),
            event_seq: prior.seq,
            flow: "hub".into(),
            entry_row: None,
            step_id: None,
            value: None,
            currency: None,
            created_at: stamp(now),
            updated_at: stamp(now),
            resolution: None,
            evidence: Some(
                serde_json::json!({ "conflict_id": conflict_id, "type": event.event_type.as_str(),
                    "first": serde_json::from_str::<Value>(&prior.data).unwrap_or(Value::Null),
                    "second": serde_json::from_str::<Value>(data).unwrap_or(Value::Null) })
                .to_string(),
            ),
            version: 0,
        });
        let reason = format!(
            "{key} was first received with a different type or data (as {}); this body is kept as conflict {conflict_id} and not applied",
            prior.event_type
        );
        Ok(result(IngestStatus::Conflict, Some(reason)))
    }

    /// Records a new event in the inbox, applies it to reference data if it is reference
    /// data, and hands it to its flow.
    pub(super) fn accept(
        &mut self,
        event: &Event,
        data: &str,
        raw: &str,
        fingerprint: u64,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<IngestResult> {
        let seq = self.ids.next(IdKind::Event)?;
        let correlation_id = event
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("cor-{:011x}-{seq:09x}", now.timestamp_millis()));
        let meta = EventMeta {
            seq,
            correlation_id: correlation_id.clone(),
            fingerprint,
        };
        let not_owned = self.owner_other_than_source(event);
        let applies = not_owned.is_none();
        let reference = applies && event.data.is_reference();
        let applied = if reference {
            self.world.version += 1;
            self.world.apply_from(&event.source, seq, &event.data)
        } else {
            Applied::default()
        };
        commit.inbox.push(InboxRow {
            seq,
            source: event.source.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.as_str().to_string(),
            correlation_id: correlation_id.clone(),
            occurred_at: stamp(event.occurred_at),
            received_at: stamp(now),
            raw: raw.to_string(),
            data: data.to_string(),
            ref_version: reference.then_some(self.world.version),
        });
        let reason = match not_owned {
            Some(owner) => Some(self.hold_not_owned(event, &owner, meta, now, commit)?),
            None => {
                self.report_possible_duplicate(event, &applied, meta.clone(), now, commit)?;
                if let Some(flow) = flows::for_type(event.event_type) {
                    let mut cx = self.cx(commit, now, meta, None);
                    flow.apply(&mut cx, event, &applied)?;
                }
                None
            }
        };
        Ok(IngestResult {
            id: Some(event.id.clone()),
            status: IngestStatus::Accepted,
            reason,
            correlation_id: Some(correlation_id),
        })
    }
}

//! An operator's actions: resolve, dismiss and acknowledge cases; replay dead steps and
//! quarantined events. Each is one commit, retried on fresh data when another writer changed
//! what it read; each names the person acting and their note on the timeline.

use super::*;
use crate::error::ActionError;
use crate::flows::{self, Actor, Cx, EventMeta, Resolution};

/// What the person acting says about it.
#[derive(Debug, Clone, Default)]
pub struct Acting {
    pub actor: Actor,
    pub note: Option<String>,
}

impl Hub {
    /// Runs `action` into a fresh commit and commits it, retrying on fresh data when the
    /// commit lost a race.
    fn act<T>(
        &mut self,
        now: DateTime<Utc>,
        acting: &Acting,
        action: impl FnMut(&mut Cx<'_>) -> std::result::Result<T, ActionError>,
    ) -> std::result::Result<T, ActionError> {
        let actor = Some((acting.actor.clone(), acting.note.clone()));
        self.act_as(now, actor, action)
    }

    /// As [`Self::act`], for the hub's own work (`actor` `None`) as well as a person's.
    pub(super) fn act_as<T>(
        &mut self,
        now: DateTime<Utc>,
        actor: Option<(Actor, Option<String>)>,
        mut action: impl FnMut(&mut Cx<'_>) -> std::result::Result<T, ActionError>,
    ) -> std::result::Result<T, ActionError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mark = self.world.mark();
            let version = self.world.version;
            let mut commit = Commit {
                node: self.node,
                ..Commit::default()
            };
            let answer = {
                let meta = EventMeta {
                    seq: 0,
                    correlation_id: String::new(),
                    fingerprint: 0,
                };
                let mut cx = self.cx(&mut commit, now, meta, actor.clone());
                action(&mut cx)
            };
            let answer = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    self.undo_since(mark, version);
                    return Err(error);
                }
            };
            let commit = std::sync::Arc::new(commit);
            match self.store.commit(&commit) {
                Ok(()) => {
                    self.after_commit(&commit);
                    return Ok(answer);
                }
                Err(CommitError::Conflict(why)) if attempt < ATTEMPTS => {
                    tracing::debug!(attempt, %why, "an action lost a race; retrying on fresh data");
                    self.undo_since(mark, version);
                    self.refresh()?;
                }
                Err(error) => {
                    self.undo_since(mark, version);
                    return Err(error.into());
                }
            }
        }
    }

    /// Opens the cases of payroll loads not yet checked (by this process or another), one
    /// commit per load, oldest first; answers what it found.
    pub fn check_payroll(
        &mut self,
        now: DateTime<Utc>,
    ) -> std::result::Result<flows::payroll_costing::Checked, ActionError> {
        use flows::payroll_costing::{self as costing, SLICE};
        self.refresh()?;
        let mut total = costing::Checked::default();
        loop {
            let loads = self.reads.payroll_loads(true, Page::first(16))?;
            if loads.is_empty() {
                return Ok(total);
            }
            for load in loads {
                let correlation_id = format!("payroll-load-{}", load.id);
                for month in costing::months_of(self.reads.as_mut(), &load)? {
                    for slice in month.actuals.chunks(SLICE) {
                        let checked = self.act_as(now, None, |cx| {
                            cx.event.correlation_id = correlation_id.clone();
                            Ok(costing::check_slice(cx, &load, &month, slice)?)
                        })?;
                        total.actuals += checked.actuals;
                        total.cases_opened += checked.cases_opened;
                        total.cases_resolved += checked.cases_resolved;
                    }
                }
                self.act_as(now, None, |cx| {
                    cx.commit.payroll_checked.push(load.id);
                    Ok(())
                })?;
            }
        }
    }

    /// Resolves an open case: replays the step it holds, or has its flow re-run the work it
    /// holds against today's reference data.
    pub fn resolve(
        &mut self,
        case_id: i64,
        acting: &Acting,
        now: DateTime<Utc>,
    ) -> std::result::Result<Resolution, ActionError> {
        if let Some(case) = self.reads.case(case_id)?
            && case.kind == super::NOT_SYSTEM_OF_RECORD
            && case.state.is_open()
        {
            return self.apply_held(case, acting, now);
        }
        self.act(now, acting, |cx| {
            let case = open_case(cx, case_id, "resolved")?;
            cx.event = EventMeta {
                seq: case.event_seq,
                correlation_id: case.correlation_id.clone(),
                fingerprint: 0,
            };
            if let Some(step_id) = case.step_id {
                requeue(cx, step_id, "resolved: step sent again")?;
                cx.close_case(case.id, ExceptionState::Resolved, "step sent again".into())?;
                return Ok(Resolution::Replayed { step_id });
            }
            match flows::named(&case.flow) {
                Some(flow) => flow.resolve(cx, &case),
                None => {
                    cx.close_case(case.id, ExceptionState::Resolved, "resolved".into())?;
                    Ok(Resolution::Closed)
                }
            }
        })
    }

    /// Dismisses an open case: the work it holds will not be done (an entry is written off).
    pub fn dismiss(
        &mut self,
        case_id: i64,
        acting: &Acting,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), ActionError> {
        self.act(now, acting, |cx| {
            let case = open_case(cx, case_id, "dismissed")?;
            cx.event.correlation_id = case.correlation_id.clone();
            cx.close_case(
                case.id,
                ExceptionState::Dismissed,
                "dismissed: not to be done".into(),
            )?;
            if case.step_id.is_none()
                && let Some(flow) = flows::named(&case.flow)
            {
                flow.dismiss(cx, &case)?;
            }
            Ok(())
        })
    }

    /// Marks an open case as seen by its owner; it still holds its work.
    pub fn acknowledge(
        &mut self,
        case_id: i64,
        acting: &Acting,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), ActionError> {
        self.act(now, acting, |cx| {
            let mut case = cx
                .reads
                .case(case_id)?
                .ok_or_else(|| ActionError::NotFound(format!("exception {case_id}")))?;
            if case.state != ExceptionState::Open {
                return Err(ActionError::WrongState(format!(
                    "exception {case_id} is {}; only open exceptions can be acknowledged",
                    case.state.as_str()
                )));
            }
            case.state = ExceptionState::Acknowledged;
            case.updated_at = cx.stamp();
            cx.commit.timeline.push(TimelineRow {
                correlation_id: case.correlation_id.clone(),
                at: cx.stamp(),
                what: "exception acknowledged".into(),
                detail: cx.noted(format!("case {case_id} ({})", case.kind)),
                step_id: case.step_id,
                actor: cx.actor_json(),
            });
            cx.commit.cases.put(case);
            Ok(())
        })
    }

    /// Sends a dead step again from its first attempt, and resolves the case that holds it.
    pub fn replay_step(
        &mut self,
        step_id: i64,
        acting: &Acting,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), ActionError> {
        self.act(now, acting, |cx| {
            let step = cx
                .reads
                .step(step_id)?
                .ok_or_else(|| ActionError::NotFound(format!("dead letter step {step_id}")))?;
            if step.state != StepState::Failed {
                return Err(ActionError::WrongState(format!(
                    "step {step_id} is {}, not a dead letter",
                    step.state.as_str()
                )));
            }
            cx.event.correlation_id = step.correlation_id.clone();
            requeue(cx, step_id, "dead letter replayed")?;
            let holding = CaseFilter {
                step_id: Some(step_id),
                ..CaseFilter::default()
            };
            for case in cx.reads.cases(&holding, Page::ALL)? {
                if case.state.is_open() {
                    cx.close_case(
                        case.id,
                        ExceptionState::Resolved,
                        "dead letter replayed".into(),
                    )?;
                }
            }
            Ok(())
        })
    }

    /// Takes a quarantined event again: the corrected body if given, else the stored one
    /// (which passes once the configuration that refused it has changed).
    pub fn replay_quarantined(
        &mut self,
        id: i64,
        corrected: Option<String>,
        acting: &Acting,
        now: DateTime<Utc>,
    ) -> std::result::Result<IngestResult, ActionError> {
        let row = self
            .reads
            .quarantined(id)?
            .ok_or_else(|| ActionError::NotFound(format!("quarantined event {id}")))?;
        if row.state != "open" {
            return Err(ActionError::WrongState(format!(
                "quarantined event {id} was already replayed"
            )));
        }
        let incoming = match row.kind.as_str() {
            QUARANTINE_UNVERIFIED => {
                return Err(ActionError::WrongState(format!(
                    "quarantined request {id} did not prove its sender (its signature failed); it is kept for inspection and is never applied: have the sender send it again, signed"
                )));
            }
            QUARANTINE_PAYROLL_ROW => Incoming::parse(
                payroll_row_event(&row, corrected.as_deref(), &self.config, now)?,
                &self.config,
            ),
            QUARANTINE_MAPPED_RECORD => {
                match crate::hooks::remap(&row.raw, corrected, &self.config)
                    .map_err(ActionError::Invalid)?
                {
                    crate::hooks::Received::Event(incoming) => incoming,
                    crate::hooks::Received::NotTaken(why) => {
                        return Err(ActionError::Invalid(why));
                    }
                }
            }
            _ => Incoming::parse(corrected.unwrap_or(row.raw.clone()), &self.config),
        };
        if let Incoming::Invalid { error, .. } = &incoming {
            return Err(ActionError::Invalid(format!(
                "the event is still invalid: {error}"
            )));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mark = self.world.mark();
            let version = self.world.version;
            let built = self.build(std::slice::from_ref(&incoming), now);
            let (mut results, mut commit) = match built {
                Ok(built) => built,
                Err(error) => {
                    self.undo_since(mark, version);
                    return Err(error.into());
                }
            };
            let mut replayed = row.clone();
            replayed.state = "replayed".into();
            replayed.replayed_seq = commit.inbox.first().map(|r| r.seq);
            commit.quarantine.put(replayed);
            commit.timeline.push(TimelineRow {
                correlation_id: results[0].correlation_id.clone().unwrap_or_default(),
                at: stamp(now),
                what: "replayed".into(),
                detail: match &acting.note {
                    Some(note) => format!("quarantined event {id} replayed; note: {note}"),
                    None => format!("quarantined event {id} replayed"),
                },
                step_id: None,
                actor: Some(acting.actor.to_json()),
            });
            let commit = std::sync::Arc::new(commit);
            match self.store.commit(&commit) {
                Ok(()) => {
                    self.after_commit(&commit);
                    return Ok(results.remove(0));
                }
                Err(CommitError::Conflict(why)) if attempt < ATTEMPTS => {
                    tracing::debug!(attempt, %why, "a replay lost a race; retrying on fresh data");
                    self.undo_since(mark, version);
                    self.refresh()?;
                    if self
                        .reads
                        .quarantined(id)?
                        .is_some_and(|r| r.state != "open")
                    {
                        return Err(ActionError::WrongState(format!(
                            "quarantined event {id} was already replayed"
                        )));
                    }
                }
                Err(error) => {
                    self.undo_since(mark, version);
                    return Err(error.into());
                }
            }
        }
    }
}

impl From<CommitError> for ActionError {
    fn from(error: CommitError) -> Self {
        match error {
            CommitError::Store(e) => ActionError::Engine(e),
            CommitError::Conflict(why) => ActionError::Engine(crate::EngineError::Store(why)),
        }
    }
}

/// The case, if it is still open (or acknowledged); else why it cannot be `verb`.
fn open_case(
    cx: &mut Cx<'_>,
    case_id: i64,
    verb: &str,
) -> std::result::Result<CaseRow, ActionError> {
    let case = cx
        .reads
        .case(case_id)?
        .ok_or_else(|| ActionError::NotFound(format!("exception {case_id}")))?;
    if !case.state.is_open() {
        return Err(ActionError::WrongState(format!(
            "exception {case_id} is {}; only open or acknowledged exceptions can be {verb}",
            case.state.as_str()
        )));
    }
    Ok(case)
}

/// Puts a step back in the queue, from its first attempt.
fn requeue(cx: &mut Cx<'_>, step_id: i64, note: &str) -> Result<()> {
    let mut step = cx.step(step_id)?;
    step.state = StepState::Pending;
    step.attempts = 0;
    step.next_attempt_at = cx.now.timestamp_millis();
    step.lease_owner = None;
    cx.commit.timeline.push(TimelineRow {
        correlation_id: step.correlation_id.clone(),
        at: cx.stamp(),
        what: "replayed".into(),
        detail: cx.noted(format!(
            "step {} ({}): {note}",
            step.id,
            step.qualified_name()
        )),
        step_id: Some(step.id),
        actor: cx.actor_json(),
    });
    cx.commit.steps.put(step);
    Ok(())
}

/// A corrected payroll row as the `payroll.actuals` event that replays it: the body is the
/// event itself, or only its `data` (`worker_id`, `period`, `gross_cost`, `currency`), sent
/// in the name of payroll's system of record.
fn payroll_row_event(
    row: &QuarantineRow,
    corrected: Option<&str>,
    config: &Config,
    now: DateTime<Utc>,
) -> std::result::Result<String, ActionError> {
    let Some(corrected) = corrected else {
        return Err(ActionError::Invalid(format!(
            "payroll row {} ({}:{}) needs its corrected row in the body: {{\"worker_id\", \"period\", \"gross_cost\", \"currency\"}}",
            row.id,
            row.file.as_deref().unwrap_or("?"),
            row.line.unwrap_or(0)
        )));
    };
    let value: Value = serde_json::from_str(corrected)
        .map_err(|e| ActionError::Invalid(format!("the corrected row is not JSON: {e}")))?;
    if value.get("type").is_some() {
        return Ok(corrected.to_string());
    }
    Ok(serde_json::json!({
        "id": format!("payroll-row-{}", row.id),
        "source": config.owner_of(pshub_model::Domain::Payroll),
        "type": "payroll.actuals",
        "schema_version": pshub_model::event::SCHEMA_VERSION,
        "occurred_at": stamp(now),
        "data": value,
    })
    .to_string())
}

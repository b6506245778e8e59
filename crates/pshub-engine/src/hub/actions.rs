//! An operator's actions: resolve, dismiss and acknowledge cases; replay dead letters
//! and quarantined events.

use super::*;

impl Hub {
    pub(super) fn load_work(&mut self, seq: i64) -> std::result::Result<EventData, ActionError> {
        let row = self
            .store
            .reads()
            .event(seq)?
            .ok_or_else(|| ActionError::NotFound(format!("event {seq}")))?;
        parse_stored(&row)
            .map_err(|e| ActionError::Engine(EngineError::Store(format!("event {seq}: {e}"))))
    }

    /// The case, if it is still open (or acknowledged); else why it cannot be `verb`.
    fn open_case(&mut self, case_id: i64, verb: &str) -> std::result::Result<CaseRow, ActionError> {
        let case = self
            .store
            .reads()
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

    /// Resolves an open case: re-runs the work it holds against today's reference data.
    pub fn resolve(
        &mut self,
        case_id: i64,
        now: DateTime<Utc>,
    ) -> std::result::Result<Resolution, ActionError> {
        let case = self.open_case(case_id, "resolved")?;
        let mut commit = Commit::default();
        let refused = match (case.line_id, case.outbox_id) {
            (Some(line), _) => Some(Outbound::Line(line)),
            (None, Some(call)) => Some(Outbound::Call(call)),
            (None, None) => None,
        };
        if let Some(target) = refused {
            self.requeue(target, "resolved: delivery retried", now, &mut commit)?;
            self.close_case(
                case_id,
                ExceptionState::Resolved,
                "delivery retried".into(),
                now,
                &mut commit,
            )?;
            self.write(&commit)?;
            return Ok(Resolution::Posted { line_id: None });
        }
        let data = self.load_work(case.event_seq)?;
        let (work, kind) = match &data {
            EventData::TimeEntry { entry, .. } => (Work::Time(entry), EntryKind::Time),
            EventData::Expense { expense, .. } => (Work::Expense(expense), EntryKind::Expense),
            _ => {
                return Err(ActionError::WrongState(format!(
                    "exception {case_id} holds no entry"
                )));
            }
        };
        let Some(mut state) = self.entry_state(&commit, kind, work.source_id())? else {
            return Err(ActionError::NotFound(format!("entry {}", work.source_id())));
        };
        let verdict: Verdict = rules::evaluate(&self.world, &self.config, work);
        let ctx = Ctx {
            seq: case.event_seq,
            correlation_id: &case.correlation_id,
            now,
            fingerprint: state.fingerprint,
        };
        let resolution = match verdict.outcome {
            Ok(pricing) => {
                let line_id = self.create_line(work, &pricing, state.row_id, &ctx, &mut commit);
                self.close_case(
                    case_id,
                    ExceptionState::Resolved,
                    format!("resolved: line {line_id} created"),
                    now,
                    &mut commit,
                )?;
                state.phase = EntryPhase::Billed;
                state.link = line_id;
                state.manual = true;
                Resolution::Posted {
                    line_id: Some(line_id),
                }
            }
            Err(failure) if failure.kind.as_str() == case.kind => {
                return Err(ActionError::StillFailing(format!(
                    "exception {case_id} still applies: {}. {}",
                    failure.reason, failure.suggested_fix
                )));
            }
            Err(failure) => {
                let new_case = self.hold(
                    work,
                    &failure,
                    verdict.value,
                    state.row_id,
                    Some(case_id),
                    &ctx,
                    &mut commit,
                )?;
                state.link = new_case;
                Resolution::HandedOver {
                    case_id: new_case,
                    reason: failure.reason,
                }
            }
        };
        self.save_entry(kind, work.source_id(), state, verdict.value, &mut commit)?;
        self.write(&commit)?;
        Ok(resolution)
    }

    /// Dismisses an open case: its work will not be billed (written off).
    pub fn dismiss(
        &mut self,
        case_id: i64,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), ActionError> {
        let case = self.open_case(case_id, "dismissed")?;
        let mut commit = Commit::default();
        self.close_case(
            case_id,
            ExceptionState::Dismissed,
            "dismissed: not to be billed".into(),
            now,
            &mut commit,
        )?;
        if case.entry_row.is_some() {
            let data = self.load_work(case.event_seq)?;
            let (source_id, kind) = match &data {
                EventData::TimeEntry { entry, .. } => (entry.entry_id.as_str(), EntryKind::Time),
                EventData::Expense { expense, .. } => {
                    (expense.expense_id.as_str(), EntryKind::Expense)
                }
                _ => {
                    return Err(ActionError::WrongState(format!(
                        "exception {case_id} holds no entry"
                    )));
                }
            };
            if let Some(mut state) = self.entry_state(&commit, kind, source_id)? {
                state.phase = EntryPhase::WrittenOff;
                state.link = 0;
                let value = case
                    .value
                    .zip(case.currency)
                    .map(|(amount, currency)| Money::rounded(amount, currency));
                self.save_entry(kind, source_id, state, value, &mut commit)?;
            }
        }
        self.write(&commit)?;
        Ok(())
    }

    /// Marks an open case as seen by its owner; it still holds its work.
    pub fn acknowledge(
        &mut self,
        case_id: i64,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), ActionError> {
        let mut case = self
            .store
            .reads()
            .case(case_id)?
            .ok_or_else(|| ActionError::NotFound(format!("exception {case_id}")))?;
        if case.state != ExceptionState::Open {
            return Err(ActionError::WrongState(format!(
                "exception {case_id} is {}; only open exceptions can be acknowledged",
                case.state.as_str()
            )));
        }
        case.state = ExceptionState::Acknowledged;
        case.updated_at = stamp(now);
        let commit = Commit {
            cases: vec![case],
            ..Commit::default()
        };
        self.write(&commit)?;
        Ok(())
    }

    /// Puts a line or a call back in the queue, from its first attempt.
    pub(super) fn requeue(
        &mut self,
        target: Outbound,
        note: &str,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<()> {
        let correlation_id = match target {
            Outbound::Line(id) => {
                let mut line = self.find_line(commit, id)?;
                line.status = LineStatus::Pending;
                line.attempts = 0;
                line.next_attempt_at = now.timestamp_millis();
                commit.line_updates.push(line.update());
                line.correlation_id
            }
            Outbound::Call(id) => {
                let Some(mut item) = self.store.reads().outbox_item(id)? else {
                    return Err(EngineError::Store(format!(
                        "outbox item {id} is referenced but missing"
                    )));
                };
                item.state = OutboxState::Pending;
                item.attempts = 0;
                item.next_attempt_at = now.timestamp_millis();
                commit.outbox_updates.push(item.update());
                item.correlation_id
            }
        };
        commit.steps.push(StepRow {
            correlation_id,
            at: stamp(now),
            step: "replayed".into(),
            detail: format!("{target}: {note}"),
        });
        Ok(())
    }

    /// Sends a dead letter (a line or a call that gave up after its retries) again, from
    /// its first attempt.
    pub fn replay_dead_letter(
        &mut self,
        target: Outbound,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), ActionError> {
        let dead = match target {
            Outbound::Line(id) => self
                .store
                .reads()
                .line(id)?
                .map(|l| l.status == LineStatus::Failed),
            Outbound::Call(id) => self
                .store
                .reads()
                .outbox_item(id)?
                .map(|o| o.state == OutboxState::Dead),
        };
        match dead {
            None => return Err(ActionError::NotFound(format!("dead letter {target}"))),
            Some(false) => {
                return Err(ActionError::WrongState(format!(
                    "{target} is not a dead letter"
                )));
            }
            Some(true) => {}
        }
        let mut commit = Commit::default();
        self.requeue(target, "dead letter replayed", now, &mut commit)?;
        self.write(&commit)?;
        Ok(())
    }

    /// Takes a quarantined event again: the corrected body if given, else the stored one
    /// (which passes once the configuration that refused it has changed).
    pub fn replay_quarantined(
        &mut self,
        id: i64,
        corrected: Option<&Value>,
        now: DateTime<Utc>,
    ) -> std::result::Result<IngestResult, ActionError> {
        let mut row = self
            .store
            .reads()
            .quarantined(id)?
            .ok_or_else(|| ActionError::NotFound(format!("quarantined event {id}")))?;
        if row.state != "open" {
            return Err(ActionError::WrongState(format!(
                "quarantined event {id} was already replayed"
            )));
        }
        let stored: Value;
        let value = match corrected {
            Some(value) => value,
            None => {
                stored = serde_json::from_str(&row.raw)
                    .map_err(|e| ActionError::Invalid(e.to_string()))?;
                &stored
            }
        };
        let incoming = Incoming::parse(value, &self.config);
        if let Incoming::Invalid { error, .. } = &incoming {
            return Err(ActionError::Invalid(format!(
                "the event is still invalid: {error}"
            )));
        }
        let mut commit = Commit::default();
        let mut accepted_here = HashMap::new();
        let result = self.ingest_one(&incoming, now, &mut commit, &mut accepted_here)?;
        row.state = "replayed".into();
        row.replayed_seq = commit.inbox.first().map(|r| r.seq);
        commit.quarantine.push(row);
        self.write(&commit)?;
        Ok(result)
    }
}

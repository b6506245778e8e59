//! Taking events in: dedupe, the inbox, and flow 4 for time entries and expenses.

use super::*;

impl Hub {
    /// Takes a batch of events: each is quarantined, found a duplicate or a conflict, or
    /// accepted and applied. Everything is committed in one transaction before returning.
    pub fn ingest(&mut self, batch: &[Incoming], now: DateTime<Utc>) -> Result<Vec<IngestResult>> {
        let mut commit = Commit::default();
        let mut accepted_here: HashMap<(String, String), usize> = HashMap::new();
        let mut results = Vec::with_capacity(batch.len());
        for incoming in batch {
            let result = self.ingest_one(incoming, now, &mut commit, &mut accepted_here)?;
            results.push(result);
        }
        self.write(&commit)?;
        self.metrics.record_ingest(&commit.counters);
        Ok(results)
    }

    /// Takes one event into `commit`. `accepted_here` maps the keys accepted earlier in the
    /// same commit to their place in `commit.inbox`, which the store cannot see yet.
    pub(super) fn ingest_one(
        &mut self,
        incoming: &Incoming,
        now: DateTime<Utc>,
        commit: &mut Commit,
        accepted_here: &mut HashMap<(String, String), usize>,
    ) -> Result<IngestResult> {
        commit.counters.received += 1;
        let (event, data) = match incoming {
            Incoming::Valid { event, data } => (event, data),
            Incoming::Invalid {
                error,
                raw,
                correlation_id,
            } => {
                self.next.quarantine += 1;
                commit.counters.quarantined += 1;
                let reason = error.to_string();
                commit.quarantine.push(QuarantineRow {
                    id: self.next.quarantine,
                    source: error.source.clone(),
                    event_id: error.id.clone(),
                    raw: raw.clone(),
                    field: error.error.field.clone(),
                    reason: reason.clone(),
                    received_at: stamp(now),
                    state: "open".into(),
                    replayed_seq: None,
                });
                return Ok(IngestResult {
                    id: error.id.clone(),
                    status: IngestStatus::Quarantined,
                    reason: Some(reason),
                    correlation_id: correlation_id.clone(),
                });
            }
        };
        let key = (event.source.clone(), event.id.clone());
        let prior = match accepted_here.get(&key) {
            Some(at) => Some(commit.inbox[*at].clone()),
            None => self.store.find_event(&event.source, &event.id)?,
        };
        if let Some(prior) = prior {
            let result = |status, reason| IngestResult {
                id: Some(event.id.clone()),
                status,
                reason,
                correlation_id: Some(prior.correlation_id.clone()),
            };
            if prior.event_type == event.event_type.as_str() && prior.data == *data {
                commit.counters.duplicates += 1;
                return Ok(result(IngestStatus::Duplicate, None));
            }
            self.next.conflict += 1;
            commit.counters.conflicts += 1;
            commit.conflicts.push(ConflictRow {
                id: self.next.conflict,
                source: event.source.clone(),
                event_id: event.id.clone(),
                original_seq: prior.seq,
                event_type: event.event_type.as_str().to_string(),
                data: data.clone(),
                received_at: stamp(now),
            });
            let reason = format!(
                "{}/{} was first received with a different type or data (as {}); this body is kept as conflict {} and not applied",
                event.source, event.id, prior.event_type, self.next.conflict
            );
            return Ok(result(IngestStatus::Conflict, Some(reason)));
        }
        let correlation_id = self.accept(event, data.clone(), now, commit)?;
        accepted_here.insert(key, commit.inbox.len() - 1);
        Ok(IngestResult {
            id: Some(event.id.clone()),
            status: IngestStatus::Accepted,
            reason: None,
            correlation_id: Some(correlation_id),
        })
    }

    /// Records a new event in the inbox and applies it; answers its correlation id.
    pub(super) fn accept(
        &mut self,
        event: &Event,
        data: String,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<String> {
        self.next.seq += 1;
        let seq = self.next.seq;
        let correlation_id = event
            .correlation_id
            .clone()
            .unwrap_or_else(|| format!("cor-{:011x}-{seq:09x}", now.timestamp_millis()));
        let fingerprint = fingerprint(&[&data]);
        let row = InboxRow {
            seq,
            source: event.source.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.as_str().to_string(),
            business_key: event.data.business_key(),
            correlation_id,
            occurred_at: stamp(event.occurred_at),
            received_at: stamp(now),
            data,
            reference: event.data.is_reference(),
        };
        let correlation_id = row.correlation_id.clone();
        commit.inbox.push(row);
        let ctx = Ctx {
            seq,
            correlation_id: &correlation_id,
            now,
            fingerprint,
        };
        match &event.data {
            EventData::TimeEntry { approved, entry } => {
                self.apply_work(Work::Time(entry), *approved, &ctx, commit)?
            }
            EventData::Expense { approved, expense } => {
                self.apply_work(Work::Expense(expense), *approved, &ctx, commit)?
            }
            EventData::ClosedWon(_) => {
                if let Applied::NewProject(code) = self.world.apply(&event.data) {
                    self.next.outbox += 1;
                    commit.outbox.push(OutboxRow {
                        id: self.next.outbox,
                        target: "erp".into(),
                        operation: Operation::ProvisionProject,
                        subject: seq,
                        idempotency_key: format!("project:{code}"),
                        state: OutboxState::Pending,
                        attempts: 0,
                        next_attempt_at: now.timestamp_millis(),
                        last_error: None,
                        correlation_id: correlation_id.clone(),
                    });
                }
            }
            other => {
                self.world.apply(other);
            }
        }
        Ok(correlation_id)
    }

    /// Flow 4 for one approved or rejected time entry or expense.
    pub(super) fn apply_work(
        &mut self,
        work: Work<'_>,
        approved: bool,
        ctx: &Ctx<'_>,
        commit: &mut Commit,
    ) -> Result<()> {
        let kind = match work {
            Work::Time(_) => EntryKind::Time,
            Work::Expense(_) => EntryKind::Expense,
        };
        let prior = self.entry_state(commit, kind, work.source_id())?;
        let mut state = prior.unwrap_or_else(|| {
            self.next.entry += 1;
            EntryState {
                row_id: self.next.entry,
                event_seq: ctx.seq,
                fingerprint: ctx.fingerprint,
                link: 0,
                phase: EntryPhase::Rejected,
                manual: false,
            }
        });
        let billed_line = (state.phase == EntryPhase::Billed).then_some(state.link);
        let held_case = (state.phase == EntryPhase::Held).then_some(state.link);

        if approved
            && work.billable()
            && billed_line.is_some()
            && state.fingerprint == ctx.fingerprint
        {
            // The same approval again under another event id: already billed, once.
            self.metrics.reapprovals_suppressed.inc();
            return Ok(());
        }
        if let Some(line_id) = billed_line {
            self.reverse_line(line_id, ctx, commit)?;
        }
        state.event_seq = ctx.seq;
        state.fingerprint = ctx.fingerprint;
        state.manual = false;

        if !approved || !work.billable() {
            if let Some(case_id) = held_case {
                let why = if approved {
                    "the entry is no longer billable"
                } else {
                    "the entry was rejected at the source"
                };
                self.close_case(
                    case_id,
                    ExceptionState::Dismissed,
                    format!("withdrawn: {why}"),
                    ctx.now,
                    commit,
                )?;
            }
            state.phase = if approved {
                EntryPhase::NotBillable
            } else {
                EntryPhase::Rejected
            };
            state.link = 0;
            self.save_entry(kind, work.source_id(), state, None, commit)?;
            return Ok(());
        }

        let verdict = rules::evaluate(&self.world, &self.config, work);
        match verdict.outcome {
            Ok(pricing) => {
                if let Some(case_id) = held_case {
                    let note = format!("cleared by a later event (inbox seq {})", ctx.seq);
                    self.close_case(case_id, ExceptionState::Resolved, note, ctx.now, commit)?;
                }
                let line_id = self.create_line(work, &pricing, state.row_id, ctx, commit);
                state.phase = EntryPhase::Billed;
                state.link = line_id;
            }
            Err(failure) => {
                let case_id = self.hold(
                    work,
                    &failure,
                    verdict.value,
                    state.row_id,
                    held_case,
                    ctx,
                    commit,
                )?;
                state.phase = EntryPhase::Held;
                state.link = case_id;
            }
        }
        self.save_entry(kind, work.source_id(), state, verdict.value, commit)?;
        Ok(())
    }

    pub(super) fn save_entry(
        &mut self,
        kind: EntryKind,
        source_id: &str,
        state: EntryState,
        value: Option<Money>,
        commit: &mut Commit,
    ) -> Result<()> {
        commit.entries.push(EntryRow {
            row_id: state.row_id,
            kind,
            entry_id: source_id.to_string(),
            phase: state.phase,
            event_seq: state.event_seq,
            fingerprint: state.fingerprint,
            line_id: (state.phase == EntryPhase::Billed).then_some(state.link),
            case_id: (state.phase == EntryPhase::Held).then_some(state.link),
            value: value.map(|m| m.amount()),
            currency: value.map(|m| m.currency()),
            manual: state.manual,
        });
        let key = entry_key(kind, source_id);
        let store = &mut self.store;
        let entries = &commit.entries;
        self.entries.insert(&key, state.row_id, |other| {
            let row = latest(
                entries,
                |e| e.row_id == *other,
                || store.reads().entry(*other),
            )?;
            Ok::<_, EngineError>(row.is_some_and(|r| r.kind == kind && r.entry_id == source_id))
        })?;
        Ok(())
    }

    /// Opens a case for the failure, or keeps the entry's open case when it already
    /// holds it for the same reason.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hold(
        &mut self,
        work: Work<'_>,
        failure: &Failure,
        value: Option<Money>,
        entry_row: i64,
        held_case: Option<i64>,
        ctx: &Ctx<'_>,
        commit: &mut Commit,
    ) -> Result<i64> {
        if let Some(case_id) = held_case {
            let mut case = self.find_case(commit, case_id)?;
            if case.kind == failure.kind.as_str() {
                case.reason = failure.reason.clone();
                case.event_seq = ctx.seq;
                case.value = value.map(|m| m.amount());
                case.currency = value.map(|m| m.currency());
                case.updated_at = stamp(ctx.now);
                commit.cases.push(case);
                return Ok(case_id);
            }
            let note = format!("superseded: the entry now fails {}", failure.kind.as_str());
            self.close_case(case_id, ExceptionState::Resolved, note, ctx.now, commit)?;
        }
        self.next.case += 1;
        let case = CaseRow {
            id: self.next.case,
            kind: failure.kind.as_str().to_string(),
            owner: failure.kind.owner(),
            business_key: work.source_id().to_string(),
            state: ExceptionState::Open,
            reason: failure.reason.clone(),
            suggested_fix: failure.suggested_fix.clone(),
            correlation_id: ctx.correlation_id.to_string(),
            event_seq: ctx.seq,
            entry_row: Some(entry_row),
            line_id: None,
            outbox_id: None,
            value: value.map(|m| m.amount()),
            currency: value.map(|m| m.currency()),
            created_at: stamp(ctx.now),
            updated_at: stamp(ctx.now),
            resolution: None,
        };
        self.metrics.cases_opened.inc();
        commit.cases.push(case);
        Ok(self.next.case)
    }

    pub(super) fn close_case(
        &mut self,
        case_id: i64,
        state: ExceptionState,
        note: String,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<()> {
        let mut case = self.find_case(commit, case_id)?;
        commit.steps.push(StepRow {
            correlation_id: case.correlation_id.clone(),
            at: stamp(now),
            step: format!("exception {}", state.as_str()),
            detail: format!("case {case_id} ({}): {note}", case.kind),
        });
        case.state = state;
        case.resolution = Some(note);
        case.updated_at = stamp(now);
        commit.cases.push(case);
        Ok(())
    }

    /// The latest version of a case: as written earlier in this commit, else as stored.
    pub(super) fn find_case(&mut self, commit: &Commit, id: i64) -> Result<CaseRow> {
        latest(
            &commit.cases,
            |c| c.id == id,
            || self.store.reads().case(id),
        )?
        .ok_or_else(|| EngineError::Store(format!("case {id} is referenced but missing")))
    }

    /// A line as created, earlier in this commit or before (its delivery fields may be
    /// older than a pending update; callers set those themselves).
    pub(super) fn find_line(&mut self, commit: &Commit, id: i64) -> Result<LineRow> {
        latest(
            &commit.lines,
            |l| l.id == id,
            || self.store.reads().line(id),
        )?
        .ok_or_else(|| EngineError::Store(format!("line {id} is referenced but missing")))
    }

    pub(super) fn create_line(
        &mut self,
        work: Work<'_>,
        pricing: &Pricing,
        entry_row: i64,
        ctx: &Ctx<'_>,
        commit: &mut Commit,
    ) -> i64 {
        self.next.line += 1;
        let line = LineRow {
            id: self.next.line,
            kind: match work {
                Work::Time(_) => LineKind::Time,
                Work::Expense(_) => LineKind::Expense,
            },
            status: LineStatus::Pending,
            erp_id: None,
            entry_row,
            source_id: work.source_id().to_string(),
            event_seq: ctx.seq,
            project_code: work.project().to_string(),
            worker_id: work.worker().to_string(),
            date: work.date(),
            quantity: pricing.quantity,
            rate: pricing.rate,
            rate_currency: pricing.rate_currency,
            fx_rate: pricing.fx_rate,
            amount: pricing.amount.amount(),
            currency: pricing.amount.currency(),
            tax_code: pricing.tax_code.clone(),
            billing_class: pricing.billing_class.clone(),
            reverses: None,
            correlation_id: ctx.correlation_id.to_string(),
            created_at: stamp(ctx.now),
            posted_at: None,
            attempts: 0,
            next_attempt_at: ctx.now.timestamp_millis(),
            last_error: None,
        };
        let id = line.id;
        commit.lines.push(line);
        id
    }

    /// Posts the negative of a line: the entry's billing is withdrawn, once.
    pub(super) fn reverse_line(
        &mut self,
        line_id: i64,
        ctx: &Ctx<'_>,
        commit: &mut Commit,
    ) -> Result<()> {
        let original = self.find_line(commit, line_id)?;
        self.next.line += 1;
        let reversal = LineRow {
            id: self.next.line,
            kind: LineKind::Reversal,
            status: LineStatus::Pending,
            erp_id: None,
            event_seq: ctx.seq,
            quantity: -original.quantity,
            amount: -original.amount,
            reverses: Some(original.id),
            correlation_id: ctx.correlation_id.to_string(),
            created_at: stamp(ctx.now),
            posted_at: None,
            attempts: 0,
            next_attempt_at: ctx.now.timestamp_millis(),
            last_error: None,
            ..original
        };
        commit.lines.push(reversal);
        Ok(())
    }
}

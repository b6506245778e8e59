//! The outbox side: what is due to send, and what became of what was sent. Lines carry
//! their own delivery; other calls (provisioning a project) are outbox items.

use super::*;
use crate::ports::ErpError;

/// Where a delivery stands after one failed attempt.
enum AfterFailure {
    RetryAt(i64),
    DeadLetter,
}

/// What an outbox call or a line shares when the ERP refuses it: the case that holds it.
struct Refusal<'a> {
    key: &'a str,
    reason: &'a str,
    business_key: &'a str,
    correlation_id: &'a str,
    event_seq: i64,
    line_id: Option<i64>,
    outbox_id: Option<i64>,
}

impl Hub {
    /// What to send of what is due (read by the delivery reader). Lines that wait for
    /// another delivery (their project's provisioning, in `unprovisioned`, or the line a
    /// reversal cancels) are put off briefly without counting an attempt.
    pub fn plan_deliveries(
        &mut self,
        due: Vec<Due>,
        unprovisioned: &HashSet<String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>> {
        let wait = i64::try_from(self.config.prerequisite_poll.as_millis()).unwrap_or(1_000);
        let mut waiting = Commit::default();
        let mut deliveries = Vec::with_capacity(due.len());
        for item in due {
            match item {
                Due::Line {
                    mut line,
                    reverses_erp_id,
                } => {
                    let why = if unprovisioned.contains(&line.project_code) {
                        Some(format!(
                            "waiting: project {} is not provisioned in the ERP yet",
                            line.project_code
                        ))
                    } else if let (Some(original), None) = (line.reverses, &reverses_erp_id) {
                        Some(format!(
                            "waiting: line {original} that it reverses is not posted yet"
                        ))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        line.last_error = Some(why);
                        line.next_attempt_at = now.timestamp_millis().saturating_add(wait);
                        waiting.line_updates.push(line.update());
                        continue;
                    }
                    let posting = LinePosting {
                        idempotency_key: line_idempotency_key(line.id),
                        kind: line.kind.as_str(),
                        project_code: line.project_code.clone(),
                        source_id: line.source_id.clone(),
                        worker_id: line.worker_id.clone(),
                        date: line.date,
                        quantity: line.quantity,
                        rate: line.rate,
                        rate_currency: line.rate_currency,
                        amount: line.amount,
                        currency: line.currency,
                        tax_code: line.tax_code.clone(),
                        billing_class: line.billing_class.clone(),
                        reverses_erp_id,
                    };
                    deliveries.push(Delivery::Line { line, posting });
                }
                Due::Call(item) => match item.operation {
                    Operation::ProvisionProject => {
                        let data = self
                            .store
                            .reads()
                            .event(item.subject)?
                            .map(|row| parse_stored(&row));
                        let Some(Ok(EventData::ClosedWon(won))) = data else {
                            return Err(EngineError::Store(format!(
                                "outbox item {} names no closed-won event",
                                item.id
                            )));
                        };
                        let ClosedWon {
                            project, contract, ..
                        } = *won;
                        let posting = ProjectPosting {
                            idempotency_key: item.idempotency_key.clone(),
                            project_code: project.project_code.to_string(),
                            name: project.name,
                            legal_entity: project.legal_entity,
                            currency: contract.currency,
                        };
                        deliveries.push(Delivery::Project { item, posting });
                    }
                },
            }
        }
        self.write(&waiting)?;
        Ok(deliveries)
    }

    /// Records how deliveries went: posted, retried later, dead-lettered or refused.
    pub fn record_deliveries(
        &mut self,
        outcomes: Vec<(Delivery, DeliveryOutcome)>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut commit = Commit::default();
        for (delivery, outcome) in outcomes {
            match delivery {
                Delivery::Line { line, .. } => self.record_line(*line, outcome, now, &mut commit),
                Delivery::Project { item, .. } => self.record_call(item, outcome, now, &mut commit),
            }
        }
        self.write(&commit)
    }

    fn record_line(
        &mut self,
        mut line: LineRow,
        outcome: DeliveryOutcome,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) {
        line.attempts += 1;
        let key = line_idempotency_key(line.id);
        match outcome {
            Ok(erp_id) => {
                self.metrics.record_posted(line.kind);
                line.status = LineStatus::Posted;
                line.erp_id = Some(erp_id);
                line.posted_at = Some(stamp(now));
                line.last_error = None;
            }
            Err(ErpError::Technical {
                message,
                retry_after,
            }) => {
                match self.after_failure(
                    &key,
                    line.attempts,
                    &message,
                    retry_after,
                    &line.correlation_id,
                    now,
                    commit,
                ) {
                    AfterFailure::RetryAt(at) => line.next_attempt_at = at,
                    AfterFailure::DeadLetter => line.status = LineStatus::Failed,
                }
                line.last_error = Some(message);
            }
            Err(ErpError::Rejected { reason }) => {
                line.status = LineStatus::Refused;
                self.open_refusal_case(
                    Refusal {
                        key: &key,
                        reason: &reason,
                        business_key: &line.source_id,
                        correlation_id: &line.correlation_id,
                        event_seq: line.event_seq,
                        line_id: Some(line.id),
                        outbox_id: None,
                    },
                    now,
                    commit,
                );
                line.last_error = Some(reason);
            }
        }
        commit.line_updates.push(line.update());
    }

    fn record_call(
        &mut self,
        mut item: OutboxRow,
        outcome: DeliveryOutcome,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) {
        item.attempts += 1;
        match outcome {
            Ok(_) => {
                item.state = OutboxState::Delivered;
                item.last_error = None;
            }
            Err(ErpError::Technical {
                message,
                retry_after,
            }) => {
                let key = item.idempotency_key.clone();
                match self.after_failure(
                    &key,
                    item.attempts,
                    &message,
                    retry_after,
                    &item.correlation_id,
                    now,
                    commit,
                ) {
                    AfterFailure::RetryAt(at) => item.next_attempt_at = at,
                    AfterFailure::DeadLetter => item.state = OutboxState::Dead,
                }
                item.last_error = Some(message);
            }
            Err(ErpError::Rejected { reason }) => {
                item.state = OutboxState::Refused;
                self.open_refusal_case(
                    Refusal {
                        key: &item.idempotency_key,
                        reason: &reason,
                        business_key: &item.idempotency_key,
                        correlation_id: &item.correlation_id,
                        event_seq: item.subject,
                        line_id: None,
                        outbox_id: Some(item.id),
                    },
                    now,
                    commit,
                );
                item.last_error = Some(reason);
            }
        }
        commit.outbox_updates.push(item.update());
    }

    /// Counts a technical failure and decides, by the retry schedule, when to try again.
    #[allow(clippy::too_many_arguments)]
    fn after_failure(
        &mut self,
        key: &str,
        attempts: u32,
        message: &str,
        retry_after: Option<std::time::Duration>,
        correlation_id: &str,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> AfterFailure {
        self.metrics.delivery_failures.inc();
        let step = |step: &str, detail: String| StepRow {
            correlation_id: correlation_id.to_string(),
            at: stamp(now),
            step: step.into(),
            detail,
        };
        commit.steps.push(step(
            "attempt failed",
            format!("{key} attempt {attempts}: {message}"),
        ));
        match self.config.retry.next_delay(attempts, retry_after) {
            Some(delay) => {
                let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                AfterFailure::RetryAt(now.timestamp_millis().saturating_add(delay))
            }
            None => {
                self.metrics.dead_letters.inc();
                commit.steps.push(step(
                    "dead-lettered",
                    format!("{key} after {attempts} attempts"),
                ));
                AfterFailure::DeadLetter
            }
        }
    }

    /// The ERP refused a record on business grounds: a case for the integration team.
    fn open_refusal_case(&mut self, refusal: Refusal<'_>, now: DateTime<Utc>, commit: &mut Commit) {
        self.next.case += 1;
        self.metrics.cases_opened.inc();
        commit.cases.push(CaseRow {
            id: self.next.case,
            kind: "erp_rejected".into(),
            owner: OwnerTeam::Integration,
            business_key: refusal.business_key.to_string(),
            state: ExceptionState::Open,
            reason: format!("the ERP refused {}: {}", refusal.key, refusal.reason),
            suggested_fix: "Correct the record in the ERP (for example provision the project), then resolve this case to send it again.".into(),
            correlation_id: refusal.correlation_id.to_string(),
            event_seq: refusal.event_seq,
            entry_row: None,
            line_id: refusal.line_id,
            outbox_id: refusal.outbox_id,
            value: None,
            currency: None,
            created_at: stamp(now),
            updated_at: stamp(now),
            resolution: None,
        });
    }
}

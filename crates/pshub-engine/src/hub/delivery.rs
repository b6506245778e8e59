//! The outbox side: what is due to send, and what became of what was sent.

use super::*;

impl Hub {
    /// Due outbox items, with what to send for each.
    pub fn claim_due(&mut self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Delivery>> {
        let due = self.store.due_deliveries(now.timestamp_millis(), limit)?;
        // A line waits for its project to exist in the ERP, and a reversal for its original.
        let unprovisioned: HashSet<String> = self
            .store
            .undelivered(Operation::ProvisionProject)?
            .into_iter()
            .filter_map(|o| {
                o.idempotency_key
                    .strip_prefix("project:")
                    .map(str::to_string)
            })
            .collect();
        let wait = self.config.prerequisite_poll;
        let wait = i64::try_from(wait.as_millis()).unwrap_or(1_000);
        let mut waiting = Commit::default();
        let mut deliveries = Vec::with_capacity(due.len());
        for DueDelivery {
            mut item,
            line,
            reverses_erp_id,
        } in due
        {
            match item.operation {
                Operation::PostLine => {
                    let Some(line) = line else {
                        return Err(EngineError::Store(format!(
                            "outbox item {} names missing line {}",
                            item.id, item.subject
                        )));
                    };
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
                        // Waiting is not a failed attempt: the item keeps its retries.
                        item.last_error = Some(why);
                        item.next_attempt_at = now.timestamp_millis().saturating_add(wait);
                        waiting.outbox_updates.push(item.update());
                        continue;
                    }
                    let posting = LinePosting {
                        idempotency_key: item.idempotency_key.clone(),
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
                    deliveries.push(Delivery::Line {
                        item,
                        line: Box::new(line),
                        posting,
                    });
                }
                Operation::ProvisionProject => {
                    let data = self
                        .store
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
        use crate::ports::ErpError;
        let mut commit = Commit::default();
        for (delivery, outcome) in outcomes {
            let (mut item, line) = match delivery {
                Delivery::Line { item, line, .. } => (item, Some(*line)),
                Delivery::Project { item, .. } => (item, None),
            };
            item.attempts += 1;
            match outcome {
                Ok(erp_id) => {
                    item.state = OutboxState::Delivered;
                    item.last_error = None;
                    if let Some(line) = line {
                        self.metrics.record_posted(line.kind);
                        commit.line_updates.push(LineUpdate {
                            id: line.id,
                            status: LineStatus::Posted,
                            erp_id: Some(erp_id),
                            posted_at: Some(stamp(now)),
                        });
                    }
                }
                Err(ErpError::Technical {
                    message,
                    retry_after,
                }) => {
                    self.metrics.delivery_failures.inc();
                    commit.steps.push(StepRow {
                        correlation_id: item.correlation_id.clone(),
                        at: stamp(now),
                        step: "attempt failed".into(),
                        detail: format!(
                            "{} attempt {}: {message}",
                            item.idempotency_key, item.attempts
                        ),
                    });
                    item.last_error = Some(message);
                    match self.config.retry.next_delay(item.attempts, retry_after) {
                        Some(delay) => {
                            let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                            item.next_attempt_at = now.timestamp_millis().saturating_add(delay);
                        }
                        None => {
                            item.state = OutboxState::Dead;
                            self.metrics.dead_letters.inc();
                            commit.steps.push(StepRow {
                                correlation_id: item.correlation_id.clone(),
                                at: stamp(now),
                                step: "dead-lettered".into(),
                                detail: format!(
                                    "{} after {} attempts",
                                    item.idempotency_key, item.attempts
                                ),
                            });
                            if let Some(line) = line {
                                commit.line_updates.push(LineUpdate {
                                    id: line.id,
                                    status: LineStatus::Failed,
                                    erp_id: None,
                                    posted_at: None,
                                });
                            }
                        }
                    }
                }
                Err(ErpError::Rejected { reason }) => {
                    item.state = OutboxState::Refused;
                    item.last_error = Some(reason.clone());
                    self.next.case += 1;
                    let business_key = line
                        .as_ref()
                        .map_or(item.idempotency_key.clone(), |l| l.source_id.clone());
                    commit.cases.push(CaseRow {
                        id: self.next.case,
                        kind: "erp_rejected".into(),
                        owner: OwnerTeam::Integration,
                        business_key,
                        state: ExceptionState::Open,
                        reason: format!("the ERP refused {}: {reason}", item.idempotency_key),
                        suggested_fix: "Correct the record in the ERP (for example provision the project), then resolve this case to send it again.".into(),
                        correlation_id: item.correlation_id.clone(),
                        event_seq: line.as_ref().map_or(item.subject, |l| l.event_seq),
                        entry_row: None,
                        outbox_id: Some(item.id),
                        value: None,
                        currency: None,
                        created_at: stamp(now),
                        updated_at: stamp(now),
                        resolution: None,
                    });
                    self.metrics.cases_opened.inc();
                    if let Some(line) = line {
                        commit.line_updates.push(LineUpdate {
                            id: line.id,
                            status: LineStatus::Refused,
                            erp_id: None,
                            posted_at: None,
                        });
                    }
                }
            }
            commit.outbox_updates.push(item.update());
        }
        self.write(&commit)
    }
}

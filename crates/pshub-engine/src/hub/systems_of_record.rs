//! Systems of record (PRODUCT.md section 3): each domain has one owning system, named in
//! configuration. An event about a domain from a system that does not own it is kept in the
//! inbox, not applied, and held in an `integration` case: resolving the case applies the
//! event as it was sent; dismissing it drops the event (it stays on record, unapplied).

use super::*;
use crate::customers::Linked;
use crate::error::ActionError;
use crate::flows::{self, Actor, EventMeta, NewCase, Resolution};
use crate::world::Applied;
use pshub_model::Domain;

/// The kind of the case that holds an event from a system that does not own its domain.
pub const NOT_SYSTEM_OF_RECORD: &str = "not_system_of_record";

/// The kind of the case about a new customer named like a known one with another tax id.
pub const POSSIBLE_DUPLICATE_CUSTOMER: &str = "possible_duplicate_customer";

impl Hub {
    /// The owner of the event's domain, when the event's source is another system. Another
    /// system's customer record is the exception: it becomes an alias of the customer.
    pub(super) fn owner_other_than_source(&self, event: &Event) -> Option<String> {
        if event.event_type == EventType::CustomerUpserted {
            return None;
        }
        let owner = self.config.owner_of(event.event_type.domain());
        (owner != event.source).then(|| owner.to_string())
    }

    /// Holds an event from a system that does not own its domain: the caller has kept it in
    /// the inbox, unapplied; this opens its case. Answers why the event was not applied.
    pub(super) fn hold_not_owned(
        &mut self,
        event: &Event,
        owner: &str,
        meta: EventMeta,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<String> {
        let domain = event.event_type.domain().as_str();
        let record = event.data.record_id();
        let reason = format!(
            "{} sent {} about {domain} {record}, but the system of record of {domain} is {owner}; the event is kept and not applied",
            event.source, event.event_type
        );
        let suggested_fix = format!(
            "Make the change in {owner}, which will send it. To apply this event as {} sent it, resolve this case; to drop it, dismiss the case.",
            event.source
        );
        let evidence = serde_json::json!({
            "event_id": event.id, "source": event.source, "type": event.event_type.as_str(),
            "domain": domain, "system_of_record": owner,
        });
        let mut cx = self.cx(commit, now, meta, None);
        let case_id = cx.open_case(NewCase {
            kind: NOT_SYSTEM_OF_RECORD,
            owner: OwnerTeam::Integration,
            business_key: &record,
            reason: reason.clone(),
            suggested_fix: &suggested_fix,
            flow: "hub",
            entry_row: None,
            step_id: None,
            value: None,
            evidence: Some(evidence.to_string()),
        })?;
        Ok(format!("{reason} (case {case_id})"))
    }

    /// Reports a customer record from the customer owner that was kept apart from a known
    /// customer of the same normalised name, since their tax ids differ.
    pub(super) fn report_possible_duplicate(
        &mut self,
        event: &Event,
        applied: &Applied,
        meta: EventMeta,
        now: DateTime<Utc>,
        commit: &mut Commit,
    ) -> Result<()> {
        let Some((at, Linked::PossibleDuplicate { of })) = &applied.customer else {
            return Ok(());
        };
        let record = match &event.data {
            EventData::Customer(customer) => customer,
            EventData::ClosedWon(won) => &won.customer,
            _ => return Ok(()),
        };
        if event.source != self.config.owner_of(Domain::Customer) {
            return Ok(());
        }
        let customers = self.world.customers();
        let (Some(new), Some(known)) = (customers.get(*at), customers.find(of)) else {
            return Ok(());
        };
        let tax = |t: &Option<String>| t.clone().unwrap_or_else(|| "none".into());
        let reason = format!(
            "customer {} '{}' (tax id {}) is named like {of} '{}' (tax id {}); it is kept as a separate customer {}",
            record.customer_id,
            record.legal_name,
            tax(&record.tax_id),
            known.master.legal_name,
            tax(&known.master.tax_id),
            new.hub_id
        );
        let evidence = serde_json::json!({ "customer_id": record.customer_id, "hub_customer_id": new.hub_id,
            "similar_to": of, "legal_name": record.legal_name, "tax_id": record.tax_id,
            "similar_legal_name": known.master.legal_name, "similar_tax_id": known.master.tax_id });
        let business_key = record.customer_id.to_string();
        let mut cx = self.cx(commit, now, meta, None);
        cx.open_case(NewCase {
            kind: POSSIBLE_DUPLICATE_CUSTOMER,
            owner: OwnerTeam::Integration,
            business_key: &business_key,
            reason,
            suggested_fix: "If they are one company, correct the tax id in the CRM so that both records carry the same one; if they are two, resolve this case.",
            flow: "hub",
            entry_row: None,
            step_id: None,
            value: None,
            evidence: Some(evidence.to_string()),
        })?;
        Ok(())
    }

    /// Resolves a `not_system_of_record` case: applies the event it holds as it was sent,
    /// in the reference order as of now, and hands it to its flow.
    pub(super) fn apply_held(
        &mut self,
        case: CaseRow,
        acting: &super::Acting,
        now: DateTime<Utc>,
    ) -> std::result::Result<Resolution, ActionError> {
        let row = self.reads.event(case.event_seq)?.ok_or_else(|| {
            ActionError::NotFound(format!(
                "the event {} that exception {} holds",
                case.event_seq, case.id
            ))
        })?;
        let (event, fingerprint) = match Incoming::parse(row.raw.clone(), &self.config) {
            Incoming::Valid {
                event, fingerprint, ..
            } => (event, fingerprint),
            Incoming::Invalid { error, .. } => {
                return Err(ActionError::Invalid(format!(
                    "the event exception {} holds no longer reads: {error}",
                    case.id
                )));
            }
        };
        let actor: Option<(Actor, Option<String>)> =
            Some((acting.actor.clone(), acting.note.clone()));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mark = self.world.mark();
            let version = self.world.version;
            let mut commit = Commit {
                node: self.node,
                reference: Some(ReferenceCheck {
                    seen: version,
                    to: version,
                }),
                ..Commit::default()
            };
            let applied = if event.data.is_reference() {
                self.world.version += 1;
                commit.inbox_applied.push((row.seq, self.world.version));
                self.world.apply_from(&event.source, row.seq, &event.data)
            } else {
                Applied::default()
            };
            let meta = EventMeta {
                seq: row.seq,
                correlation_id: row.correlation_id.clone(),
                fingerprint,
            };
            let answer = {
                let mut cx = self.cx(&mut commit, now, meta, actor.clone());
                let flow = flows::for_type(event.event_type);
                flow.map_or(Ok(()), |flow| flow.apply(&mut cx, &event, &applied))
                    .and_then(|()| {
                        cx.close_case(
                            case.id,
                            ExceptionState::Resolved,
                            format!("{} applied as {} sent it", event.event_type, event.source),
                        )
                    })
            };
            if let Err(error) = answer {
                self.undo_since(mark, version);
                return Err(error.into());
            }
            if let Some(check) = commit.reference.as_mut() {
                check.to = self.world.version;
            }
            let commit = Arc::new(commit);
            match self.store.commit(&commit) {
                Ok(()) => {
                    self.after_commit(&commit);
                    return Ok(Resolution::Closed);
                }
                Err(CommitError::Conflict(why)) if attempt < ATTEMPTS => {
                    tracing::debug!(attempt, %why, "applying a held event lost a race; retrying on fresh data");
                    self.undo_since(mark, version);
                    self.refresh()?;
                    let fresh = self.reads.case(case.id)?;
                    if !fresh.is_some_and(|c| c.state.is_open()) {
                        return Err(ActionError::WrongState(format!(
                            "exception {} was closed meanwhile",
                            case.id
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

//! Running steps, the same way for every flow and every system: claim what is due for one
//! system under a lease, build each request through the step's flow, ask the system first
//! where an earlier attempt may have gone through, call it (renewing the lease while the
//! call runs), and record each answer in one commit.
//!
//! A technical failure is retried on the [`RetrySchedule`](crate::retry::RetrySchedule) and
//! then dead-lettered with a case for the integration team; a business refusal holds the
//! step in a case at once. A step that is done releases the steps waiting on it.

use crate::breaker::{Breaker, Permit};
use crate::config::Config;
use crate::error::Result;
use crate::flows::{self, stamp};
use crate::hub::log_cases;
use crate::ids::Ids;
use crate::lease::LeaseKeeper;
use crate::metrics::Metrics;
use crate::ports::{Lookup, Outcome, Port, Request};
use crate::store::*;
use chrono::{DateTime, Utc};
use pshub_model::records::{ExceptionState, OwnerTeam};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The outbound event of a line the ERP took. One stored row holds the lines a delivery
/// round posted (`line_ids`); the API lists one event per line.
pub const INVOICE_LINE_POSTED: &str = "invoice_line.posted";

/// What one system's delivery round works with.
pub struct Round<'a> {
    pub system: &'a str,
    pub port: &'a Port,
    pub breaker: &'a Breaker,
    pub store: &'a dyn Store,
    pub reads: &'a mut dyn StoreReader,
    pub ids: &'a Ids,
    pub config: &'a Config,
    pub metrics: &'a Metrics,
    pub node: i64,
    /// Renews the leases of the steps under call.
    pub leases: &'a LeaseKeeper,
}

/// How a round went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Steps claimed and answered.
    pub steps: usize,
    /// The breaker holds calls back until then.
    pub held_back_until: Option<Instant>,
}

/// The part of a round that calls the system. It borrows nothing of the round, so that a
/// batching connector's call can run on a thread of its own while the next round is
/// claimed and built (the engine's pipelined delivery).
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub system: &'a str,
    pub port: &'a Port,
    pub leases: &'a LeaseKeeper,
    pub node: i64,
    /// Whether the call holds its steps' leases itself; else its caller holds them.
    pub holds_leases: bool,
}

impl<'a> Round<'a> {
    pub fn caller(&self) -> Caller<'a> {
        Caller {
            system: self.system,
            port: self.port,
            leases: self.leases,
            node: self.node,
            holds_leases: true,
        }
    }

    /// The round's size as the breaker allows it: `None` while it holds calls back.
    fn permitted(&self, limit: u32) -> std::result::Result<u32, Instant> {
        match self.breaker.permit(Instant::now()) {
            Permit::Calls => Ok(limit),
            Permit::Probe => Ok(1),
            Permit::Wait(until) => Err(until),
        }
    }

    fn claim_request(&self, limit: u32) -> ClaimRequest {
        ClaimRequest {
            system: self.system.to_string(),
            now_ms: Utc::now().timestamp_millis(),
            limit,
            owner: self.node,
            lease_ms: i64::try_from(self.config.lease.as_millis()).unwrap_or(5_000),
        }
    }

    /// Claims up to `limit` due steps, as many as the breaker allows (none while it holds
    /// calls back, with until when).
    pub fn claim(&self, limit: u32) -> Result<(Vec<Claimed>, Option<Instant>)> {
        match self.permitted(limit) {
            Ok(limit) => Ok((self.store.claim_steps(&self.claim_request(limit))?, None)),
            Err(until) => Ok((Vec::new(), Some(until))),
        }
    }

    /// Runs up to `limit` due steps and records how they went. `carried` are steps claimed
    /// with the previous round's outcomes (none: claim now). With `claim_next`, the next
    /// round's steps are claimed in the same write as this round's outcomes, and returned.
    pub fn run(
        &mut self,
        limit: u32,
        carried: Vec<Claimed>,
        claim_next: bool,
    ) -> Result<(Delivered, Vec<Claimed>)> {
        let limit = match self.permitted(limit) {
            Ok(limit) => limit,
            Err(until) => {
                // Steps carried over keep their lease until it lapses; the breaker says wait.
                let held = Delivered {
                    steps: 0,
                    held_back_until: Some(until),
                };
                return Ok((held, carried));
            }
        };
        let claimed = if carried.is_empty() {
            self.store.claim_steps(&self.claim_request(limit))?
        } else {
            carried
        };
        if claimed.is_empty() {
            return Ok((Delivered::default(), Vec::new()));
        }
        let requests = self.requests(&claimed)?;
        let outcomes = self.caller().outcomes(&claimed, &requests);
        self.finish(limit, &claimed, &requests, outcomes, claim_next)
    }

    /// Records the outcomes of `claimed` in one commit; with `claim_next`, claims up to
    /// `limit` steps of the next round in the same write and returns them.
    pub fn finish(
        &mut self,
        limit: u32,
        claimed: &[Claimed],
        requests: &[std::result::Result<Request, String>],
        outcomes: Vec<Outcome>,
        claim_next: bool,
    ) -> Result<(Delivered, Vec<Claimed>)> {
        let answered = outcomes.iter().any(|o| !o.is_failure());
        self.breaker.record(!answered, Instant::now());
        let mut commit = Commit {
            node: self.node,
            ..Commit::default()
        };
        let now = Utc::now();
        let mut done = Vec::new();
        let mut posted = (0, 0);
        let mut posted_lines = Vec::new();
        for ((claimed, request), outcome) in claimed.iter().zip(requests).zip(outcomes) {
            if matches!(outcome, Outcome::Done(_)) {
                done.push(claimed.step.qualified_name());
                if let (Ok(Request::PostLine(line)), false) = (request, claimed.step.is_copy()) {
                    posted_lines.push(claimed.step.subject);
                    match line.kind {
                        "reversal" => posted.1 += 1,
                        _ => posted.0 += 1,
                    }
                }
            }
            self.record(
                &mut commit,
                &claimed.step,
                request.as_ref().ok(),
                outcome,
                now,
            )?;
        }
        if let Some(&first) = posted_lines.first() {
            // The round's posted lines, one row for all: at event rate, a row per line would
            // cost the writer a tenth of its throughput. Readers list one event per line.
            commit.outbound.push(OutboundRow {
                id: self.ids.next(IdKind::Outbound)?,
                event_type: INVOICE_LINE_POSTED.into(),
                key: format!("lines:{first}:{}", posted_lines.len()),
                data: serde_json::json!({ "line_ids": posted_lines }).to_string(),
                correlation_id: String::new(),
                published_at: stamp(now),
            });
        }
        let commit = std::sync::Arc::new(commit);
        let claim_next = claim_next && self.breaker.permit(Instant::now()) == Permit::Calls;
        let (committed, next) = if claim_next {
            self.store
                .commit_and_claim(&commit, &self.claim_request(limit))
        } else {
            (self.store.commit(&commit), Ok(Vec::new()))
        };
        match committed {
            Ok(()) => {
                log_cases(&commit);
                self.metrics.lines_posted.add(posted.0);
                self.metrics.reversals_posted.add(posted.1);
                self.metrics
                    .cases_opened
                    .add(commit.cases.iter().filter(|c| c.version == 0).count() as u64);
                if let Some(name) = &self.config.crash_after
                    && done.contains(name)
                {
                    tracing::warn!(step = %name, "exiting after the step, as PSHUB_CRASH_AFTER asks");
                    std::process::exit(137);
                }
            }
            // Another process took these steps over after our lease lapsed: its attempt
            // asks the system first, so what we did is found, not repeated.
            Err(CommitError::Conflict(why)) => {
                tracing::warn!(system = self.system, %why, "lost the lease of claimed steps; their outcome is left to the new holder");
            }
            Err(CommitError::Store(error)) => return Err(error),
        }
        let delivered = Delivered {
            steps: claimed.len(),
            held_back_until: None,
        };
        Ok((delivered, next?))
    }

    /// Each claimed step's request, built by its flow.
    pub fn requests(
        &mut self,
        claimed: &[Claimed],
    ) -> Result<Vec<std::result::Result<Request, String>>> {
        let mut by_flow: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, c) in claimed.iter().enumerate() {
            by_flow.entry(c.step.flow.as_str()).or_default().push(i);
        }
        let mut requests: Vec<Option<std::result::Result<Request, String>>> =
            vec![None; claimed.len()];
        for (name, at) in by_flow {
            let steps: Vec<&StepRow> = at.iter().map(|&i| &claimed[i].step).collect();
            let built = match flows::named(name) {
                Some(flow) => flow.requests(&steps, self.reads)?,
                None => steps
                    .iter()
                    .map(|_| Err(format!("no flow is named {name}")))
                    .collect(),
            };
            for (i, request) in at.into_iter().zip(built) {
                requests[i] = Some(request);
            }
        }
        Ok(requests
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err("no request".into())))
            .collect())
    }

    /// Records one step's outcome: done, retried later, dead-lettered or held.
    fn record(
        &mut self,
        commit: &mut Commit,
        claimed: &StepRow,
        request: Option<&Request>,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut step = claimed.clone();
        step.attempts += 1;
        step.lease_owner = None;
        step.lease_until = 0;
        let note = |what: &str, detail: String| TimelineRow {
            correlation_id: step.correlation_id.clone(),
            at: stamp(now),
            what: what.into(),
            detail,
            step_id: Some(step.id),
            actor: None,
        };
        match outcome {
            Outcome::Done(result) => {
                let published = match request {
                    Some(Request::Publish(publish)) => Some((
                        publish.event_type.clone(),
                        publish.idempotency_key.clone(),
                        publish.data.clone(),
                    )),
                    _ => None,
                };
                if let Some((event_type, key, data)) = published {
                    commit.outbound.push(OutboundRow {
                        id: self.ids.next(IdKind::Outbound)?,
                        event_type,
                        key,
                        data: data.to_string(),
                        correlation_id: step.correlation_id.clone(),
                        published_at: stamp(now),
                    });
                }
                if let Some(kind) = flows::named(&step.flow).and_then(|f| f.registers(&step))
                    && !result.is_empty()
                {
                    commit.xrefs.push(XrefRow {
                        kind: kind.to_string(),
                        canonical_id: step.business_key.clone(),
                        system: step.system.clone(),
                        system_id: result.clone(),
                        correlation_id: step.correlation_id.clone(),
                        created_at: stamp(now),
                    });
                }
                let finding = match (flows::named(&step.flow), request) {
                    (Some(flow), Some(request)) => flow.examine(&step, request, &result),
                    _ => None,
                };
                step.result = Some(result);
                step.outcome_unknown = false;
                if let Some(finding) = finding {
                    commit.timeline.push(note(
                        "held",
                        format!("{}: {}", finding.kind, finding.reason),
                    ));
                    self.open_case(
                        commit,
                        &step,
                        CaseOf {
                            kind: finding.kind,
                            owner: finding.owner,
                            reason: finding.reason.clone(),
                            fix: finding.suggested_fix,
                            evidence: finding.evidence,
                        },
                        now,
                    )?;
                    step.state = StepState::Held;
                    step.last_error = Some(finding.reason);
                } else {
                    step.state = StepState::Done;
                    step.done_at = Some(stamp(now));
                    step.last_error = None;
                }
            }
            Outcome::Rejected(reason) => {
                commit.timeline.push(note(
                    "refused",
                    format!(
                        "{} refused {}: {reason}",
                        self.system,
                        step.idempotency_key()
                    ),
                ));
                let kind = format!("{}_rejected", self.port.kind());
                self.open_case(
                    commit,
                    &step,
                    CaseOf {
                        kind: &kind,
                        owner: OwnerTeam::Integration,
                        reason: format!("{} refused {}: {reason}", self.system, step.idempotency_key()),
                        fix: "Correct the record in the target system (for example provision the project), then resolve this case to send it again.",
                        evidence: None,
                    },
                    now,
                )?;
                step.state = StepState::Held;
                step.last_error = Some(reason);
                step.outcome_unknown = false;
            }
            Outcome::Technical {
                message,
                retry_after,
            } => {
                self.failed(commit, &mut step, message, retry_after, false, now)?;
            }
            Outcome::Unknown(message) => {
                self.failed(commit, &mut step, message, None, true, now)?;
            }
        }
        commit.steps.put(step);
        Ok(())
    }

    fn failed(
        &mut self,
        commit: &mut Commit,
        step: &mut StepRow,
        message: String,
        retry_after: Option<Duration>,
        unknown: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.metrics.delivery_failures.inc();
        step.outcome_unknown |= unknown;
        let what = if unknown {
            "outcome unknown"
        } else {
            "attempt failed"
        };
        // A failed attempt that will be retried is routine; a dead letter is logged as a warning.
        tracing::info!(step_id = step.id, step = %step.qualified_name(), system = self.system,
            attempt = step.attempts, correlation_id = %step.correlation_id, %message, "delivery attempt failed");
        let attempt = TimelineRow {
            correlation_id: step.correlation_id.clone(),
            at: stamp(now),
            what: what.into(),
            detail: format!(
                "{} attempt {}: {message}",
                step.idempotency_key(),
                step.attempts
            ),
            step_id: Some(step.id),
            actor: None,
        };
        commit.timeline.push(attempt.clone());
        step.last_error = Some(message.clone());
        match self.config.retry.next_delay(step.attempts, retry_after) {
            Some(delay) => {
                let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                step.state = StepState::Pending;
                step.next_attempt_at = now.timestamp_millis().saturating_add(delay);
            }
            None => {
                self.metrics.dead_letters.inc();
                tracing::warn!(step_id = step.id, step = %step.qualified_name(), system = self.system,
                    attempts = step.attempts, correlation_id = %step.correlation_id, %message, "dead-lettered");
                step.state = StepState::Failed;
                let mut history: Vec<serde_json::Value> = self
                    .reads
                    .timeline_of_step(step.id)?
                    .into_iter()
                    .chain(std::iter::once(attempt))
                    .filter(|t| t.what == "attempt failed" || t.what == "outcome unknown")
                    .map(|t| serde_json::json!({ "at": t.at, "what": t.what, "detail": t.detail }))
                    .collect();
                history.dedup();
                commit.timeline.push(TimelineRow {
                    correlation_id: step.correlation_id.clone(),
                    at: stamp(now),
                    what: "dead-lettered".into(),
                    detail: format!(
                        "{} after {} attempts",
                        step.idempotency_key(),
                        step.attempts
                    ),
                    step_id: Some(step.id),
                    actor: None,
                });
                self.open_case(
                    commit,
                    step,
                    CaseOf {
                        kind: "delivery_failed",
                        owner: OwnerTeam::Integration,
                        reason: format!(
                            "{} to {} gave up after {} attempts (a technical failure): {message}",
                            step.qualified_name(),
                            self.system,
                            step.attempts
                        ),
                        fix: "Check that the target system is up and reachable, then resolve this case (or replay the dead letter) to send it again.",
                        evidence: Some(serde_json::json!({ "attempts": history, "idempotency_key": step.idempotency_key() }).to_string()),
                    },
                    now,
                )?;
            }
        }
        Ok(())
    }

    fn open_case(
        &self,
        commit: &mut Commit,
        step: &StepRow,
        case: CaseOf<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let CaseOf {
            kind,
            owner,
            reason,
            fix,
            evidence,
        } = case;
        commit.cases.put(CaseRow {
            id: self.ids.next(IdKind::Case)?,
            kind: kind.to_string(),
            owner,
            business_key: step.business_key.clone(),
            state: ExceptionState::Open,
            reason,
            suggested_fix: fix.to_string(),
            correlation_id: step.correlation_id.clone(),
            event_seq: step.event_seq,
            flow: step.flow.clone(),
            entry_row: None,
            step_id: Some(step.id),
            value: None,
            currency: None,
            created_at: stamp(now),
            updated_at: stamp(now),
            resolution: None,
            evidence,
            version: 0,
        });
        Ok(())
    }
}

/// A case a step's delivery opens, holding the step.
struct CaseOf<'a> {
    kind: &'a str,
    owner: OwnerTeam,
    reason: String,
    fix: &'a str,
    evidence: Option<String>,
}

impl Caller<'_> {
    /// Each step's outcome: asked first where an earlier attempt may have been applied,
    /// then called.
    pub fn outcomes(
        &self,
        claimed: &[Claimed],
        requests: &[std::result::Result<Request, String>],
    ) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; claimed.len()];
        let unsure: Vec<usize> = (0..claimed.len())
            .filter(|&i| {
                requests[i].is_ok() && (claimed[i].step.outcome_unknown || claimed[i].taken_over)
            })
            .collect();
        if !unsure.is_empty() {
            let keys: Vec<String> = unsure
                .iter()
                .map(|&i| claimed[i].step.idempotency_key())
                .collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let found = self.port.lookup(&keys);
            for (i, answer) in unsure.iter().zip(found) {
                outcomes[*i] = match answer {
                    Lookup::Applied(result) => Some(Outcome::Done(result)),
                    Lookup::NotApplied => None,
                    Lookup::Failed(message) => Some(Outcome::Technical {
                        message: format!("could not ask whether it was applied: {message}"),
                        retry_after: None,
                    }),
                };
            }
        }
        let mut to_call = Vec::new();
        let mut called_at = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            match (request, &outcomes[i]) {
                (Ok(request), None) => {
                    to_call.push(request.clone());
                    called_at.push(i);
                }
                (Err(why), None) => outcomes[i] = Some(Outcome::technical(why.clone())),
                _ => {}
            }
        }
        if !to_call.is_empty() {
            let ids: Vec<i64> = called_at.iter().map(|&i| claimed[i].step.id).collect();
            let answers = self.call_renewing(&to_call, &ids);
            for (i, answer) in called_at.into_iter().zip(answers) {
                outcomes[i] = Some(answer);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::technical("no answer")))
            .collect()
    }

    /// Calls the system, with the steps' leases renewed while the call runs. A call that
    /// panics has an unknown outcome: it may have reached the system.
    fn call_renewing(&self, requests: &[Request], step_ids: &[i64]) -> Vec<Outcome> {
        let _held = self
            .holds_leases
            .then(|| self.leases.hold(step_ids.to_vec(), self.node));
        let (port, system) = (self.port, self.system);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| port.call(system, requests)))
            .unwrap_or_else(|_| {
                requests
                    .iter()
                    .map(|_| {
                        Outcome::Unknown(format!("the call to {system} stopped without an answer"))
                    })
                    .collect()
            })
    }
}

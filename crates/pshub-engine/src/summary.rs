//! The figures of `demo --json` and `GET /v1/summary`, and the conservation of money:
//! per currency, approved = posted + undelivered + held + written off.

use crate::error::Result;
use crate::store::{Counters, EntryPhase, StepState, StoreReader};
use pshub_model::records::{LineKind, OwnerTeam};
use pshub_model::{Currency, Money};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Money per currency, kept at each currency's minor unit.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Amounts(BTreeMap<Currency, Decimal>);

impl Amounts {
    /// Adds an amount. A total past what a decimal holds stays at the largest value, and
    /// conservation then fails visibly rather than the summary panicking.
    pub fn add(&mut self, currency: Currency, amount: Decimal) {
        let slot = self
            .0
            .entry(currency)
            .or_insert_with(|| Money::zero(currency).amount());
        *slot = slot
            .checked_add(amount)
            .unwrap_or(if amount.is_sign_negative() {
                Decimal::MIN
            } else {
                Decimal::MAX
            });
    }

    pub fn get(&self, currency: Currency) -> Decimal {
        self.0
            .get(&currency)
            .copied()
            .unwrap_or_else(|| Money::zero(currency).amount())
    }

    pub fn currencies(&self) -> impl Iterator<Item = Currency> + '_ {
        self.0.keys().copied()
    }

    /// As `{"EUR": "1234.50"}`, every currency of `all` present.
    pub fn to_json(&self, all: &[Currency]) -> serde_json::Value {
        let map = all
            .iter()
            .map(|c| {
                (
                    c.code().to_string(),
                    serde_json::Value::String(self.get(*c).to_string()),
                )
            })
            .collect();
        serde_json::Value::Object(map)
    }
}

#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub counters: Counters,
    pub accepted: u64,
    pub lines_posted: u64,
    pub reversals_posted: u64,
    pub lines_undelivered: u64,
    /// Lines that wait behind a step that failed or is held: nothing moves them but a person.
    pub lines_blocked: u64,
    /// Steps (of any flow) that wait behind a failed or held step.
    pub steps_blocked: u64,
    pub exceptions_by_owner: BTreeMap<OwnerTeam, u64>,
    pub open_exceptions_by_owner: BTreeMap<OwnerTeam, u64>,
    pub approved_entries: u64,
    pub straight_through_entries: u64,
    pub approved_value: Amounts,
    pub posted_value: Amounts,
    pub undelivered_value: Amounts,
    pub held_value: Amounts,
    pub written_off_value: Amounts,
    pub held_unvalued: BTreeMap<OwnerTeam, u64>,
}

impl Summary {
    /// The figures, all read from one snapshot of the store.
    pub fn compute(store: &mut dyn StoreReader) -> Result<Self> {
        let mut summary = None;
        store.consistent(&mut |store| {
            summary = Some(Self::compute_on(store)?);
            Ok(())
        })?;
        summary.ok_or_else(|| crate::EngineError::Store("the summary read nothing".into()))
    }

    fn compute_on(store: &mut dyn StoreReader) -> Result<Self> {
        let mut summary = Summary {
            counters: store.counters()?,
            ..Summary::default()
        };
        let c = summary.counters;
        summary.accepted = c
            .received
            .saturating_sub(c.duplicates + c.conflicts + c.quarantined);
        store.each_entry_figure(&mut |entry| {
            match entry.phase {
                EntryPhase::Billed | EntryPhase::Held | EntryPhase::WrittenOff => {
                    summary.approved_entries += 1;
                    if let Some((amount, currency)) = entry.value {
                        summary.approved_value.add(currency, amount);
                    }
                }
                EntryPhase::Rejected | EntryPhase::NotBillable => {}
            }
            // Straight through: billed with no manual step, and the line is in the ERP.
            if entry.phase == EntryPhase::Billed
                && !entry.manual
                && entry.line_state == Some(StepState::Done)
            {
                summary.straight_through_entries += 1;
            }
            if let (EntryPhase::WrittenOff, Some((amount, currency))) = (entry.phase, entry.value) {
                summary.written_off_value.add(currency, amount);
            }
        })?;
        store.each_line_figure(&mut |line| match line.state {
            StepState::Done => {
                summary.posted_value.add(line.currency, line.amount);
                match line.kind {
                    LineKind::Reversal => summary.reversals_posted += 1,
                    _ => summary.lines_posted += 1,
                }
            }
            _ => {
                summary.undelivered_value.add(line.currency, line.amount);
                summary.lines_undelivered += 1;
                if line.blocked {
                    summary.lines_blocked += 1;
                }
            }
        })?;
        summary.steps_blocked = store.blocked_steps()?;
        let mut cases = Vec::new();
        store.each_case(&mut |case| {
            cases.push((
                case.owner,
                case.state,
                case.entry_row.is_some(),
                case.value.zip(case.currency),
            ))
        })?;
        for (owner, state, holds_entry, value) in cases {
            *summary.exceptions_by_owner.entry(owner).or_default() += 1;
            if !state.is_open() {
                continue;
            }
            *summary.open_exceptions_by_owner.entry(owner).or_default() += 1;
            match (holds_entry, value) {
                (true, Some((amount, currency))) => summary.held_value.add(currency, amount),
                (true, None) => *summary.held_unvalued.entry(owner).or_default() += 1,
                (false, _) => {}
            }
        }
        Ok(summary)
    }

    /// Every currency any figure mentions.
    pub fn currencies(&self) -> Vec<Currency> {
        let mut all: Vec<Currency> = [
            &self.approved_value,
            &self.posted_value,
            &self.undelivered_value,
            &self.held_value,
            &self.written_off_value,
        ]
        .iter()
        .flat_map(|a| a.currencies())
        .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Currencies where approved value differs from posted + undelivered + held + written off.
    pub fn conservation_breaks(&self) -> Vec<Currency> {
        self.currencies()
            .into_iter()
            .filter(|c| {
                let accounted = [
                    &self.undelivered_value,
                    &self.held_value,
                    &self.written_off_value,
                ]
                .iter()
                .try_fold(self.posted_value.get(*c), |sum, a| {
                    sum.checked_add(a.get(*c))
                });
                accounted != Some(self.approved_value.get(*c))
            })
            .collect()
    }

    /// Share of approved billable entries posted with no manual step.
    pub fn straight_through_rate(&self) -> Decimal {
        if self.approved_entries == 0 {
            return Decimal::ONE;
        }
        (Decimal::from(self.straight_through_entries) / Decimal::from(self.approved_entries))
            .round_dp(4)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let all = self.currencies();
        let by_owner = |map: &BTreeMap<OwnerTeam, u64>| {
            let object = OwnerTeam::ALL
                .iter()
                .map(|o| {
                    (
                        o.as_str().to_string(),
                        serde_json::Value::from(map.get(o).copied().unwrap_or(0)),
                    )
                })
                .collect();
            serde_json::Value::Object(object)
        };
        let rate: serde_json::Number = self
            .straight_through_rate()
            .to_string()
            .parse()
            .unwrap_or_else(|_| 0.into());
        serde_json::json!({
            "events": self.counters.received,
            "accepted": self.accepted,
            "duplicates_suppressed": self.counters.duplicates,
            "conflicts": self.counters.conflicts,
            "quarantined": self.counters.quarantined,
            "lines_posted": self.lines_posted,
            "reversals_posted": self.reversals_posted,
            "lines_undelivered": self.lines_undelivered,
            "lines_blocked": self.lines_blocked,
            "steps_blocked": self.steps_blocked,
            "exceptions_by_owner": by_owner(&self.exceptions_by_owner),
            "open_exceptions_by_owner": by_owner(&self.open_exceptions_by_owner),
            "straight_through_rate": rate,
            "approved_value": self.approved_value.to_json(&all),
            "posted_value": self.posted_value.to_json(&all),
            "held_value": self.held_value.to_json(&all),
            "undelivered_value": self.undelivered_value.to_json(&all),
            "written_off_value": self.written_off_value.to_json(&all),
            "held_unvalued": by_owner(&self.held_unvalued),
            "conservation_holds": self.conservation_breaks().is_empty(),
        })
    }
}

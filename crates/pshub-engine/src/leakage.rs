//! Revenue leakage (PRODUCT.md 5.9) from the hub's own records: what the sources approved
//! (entries, and the cases that hold some), what the hub posted (its lines and their
//! steps), and what the ERP holds, read back through its port. The kinds:
//!
//! - `approved_unbilled`: approved billable work that is not in the ERP: held by a case,
//!   still on its way (a step not done), or posted and since missing from the ERP;
//! - `billed_unapproved`: a line in the ERP that nobody approved: the hub never posted it,
//!   or its entry was rejected and the reversal is not in the ERP yet;
//! - `rate_mismatch`: a time line in the ERP at another rate than the rate card in force on
//!   its date for the worker's role and region (amount: the difference);
//! - `duplicate`: a line the ERP holds more than once (amount: each extra copy);
//! - `terms_mismatch`: a contract's terms as the CRM's deal and its amendments make them
//!   today, against the billing rules the ERP holds (one row per differing field).
//!
//! `period` (`YYYY-MM`) keeps lines and work dated in that month; terms are compared
//! whatever the period.

use crate::error::Result;
use crate::ports::Erp;
use crate::store::*;
use crate::world::World;
use chrono::NaiveDate;
use pshub_model::records::LineKind;
use pshub_model::{EventData, ProjectCode, WorkerId};
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

pub const KINDS: [&str; 5] = [
    "approved_unbilled",
    "billed_unapproved",
    "rate_mismatch",
    "duplicate",
    "terms_mismatch",
];

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Leak {
    pub kind: &'static str,
    /// The time entry, expense or milestone, where there is one.
    pub entry_id: String,
    pub project_code: String,
    pub worker_id: String,
    pub date: Option<NaiveDate>,
    pub hub_amount: Option<Decimal>,
    pub erp_amount: Option<Decimal>,
    pub amount: Option<Decimal>,
    pub currency: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub period: Option<String>,
    pub leaks: Vec<Leak>,
    pub erp_lines: usize,
    pub hub_lines: usize,
}

impl Report {
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let mut counts: BTreeMap<&'static str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
        for leak in &self.leaks {
            *counts.entry(leak.kind).or_default() += 1;
        }
        counts
    }

    /// Amounts per kind and currency.
    pub fn amounts(&self) -> BTreeMap<&'static str, BTreeMap<String, Decimal>> {
        let mut amounts: BTreeMap<&'static str, BTreeMap<String, Decimal>> = BTreeMap::new();
        for leak in &self.leaks {
            if let Some(amount) = leak.amount {
                let sum = amounts
                    .entry(leak.kind)
                    .or_default()
                    .entry(leak.currency.clone())
                    .or_default();
                *sum = sum.saturating_add(amount);
            }
        }
        amounts
    }

    /// One line per kind for people: the kind, its count, its amounts per currency.
    pub fn text_lines(&self) -> Vec<String> {
        let amounts = self.amounts();
        self.counts()
            .into_iter()
            .map(|(kind, n)| {
                let money: Vec<String> = amounts
                    .get(kind)
                    .into_iter()
                    .flatten()
                    .map(|(currency, amount)| format!("{amount} {currency}"))
                    .collect();
                format!("{kind:<22} {n:>7}  {}", money.join(", "))
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    /// `{counts: {kind: n}, amounts: {kind: {currency: "decimal"}}}`.
    pub fn summary_json(&self) -> Value {
        let amounts: serde_json::Map<String, Value> = self
            .amounts()
            .into_iter()
            .map(|(kind, by)| {
                let by: serde_json::Map<String, Value> = by
                    .into_iter()
                    .map(|(c, a)| (c, Value::String(a.to_string())))
                    .collect();
                (kind.to_string(), Value::Object(by))
            })
            .collect();
        serde_json::json!({ "counts": self.counts(), "amounts": amounts })
    }
}

/// A line as the ERP holds it.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) key: String,
    pub(crate) kind: String,
    pub(crate) posting: String,
    pub(crate) source_id: String,
    pub(crate) project_code: String,
    pub(crate) worker_id: String,
    pub(crate) date: Option<NaiveDate>,
    pub(crate) quantity: Decimal,
    pub(crate) rate: Decimal,
    pub(crate) rate_currency: String,
    pub(crate) amount: Decimal,
    pub(crate) currency: String,
}

impl Held {
    /// A finding about this ERP line.
    fn leak(
        &self,
        kind: &'static str,
        hub_amount: Option<Decimal>,
        amount: Option<Decimal>,
        detail: String,
    ) -> Leak {
        Leak {
            kind,
            entry_id: self.source_id.clone(),
            project_code: self.project_code.clone(),
            worker_id: self.worker_id.clone(),
            date: self.date,
            hub_amount,
            erp_amount: Some(self.amount),
            amount,
            currency: self.currency.clone(),
            detail,
        }
    }
}

fn decimal(v: &Value) -> Decimal {
    match v {
        Value::String(s) => s.parse().unwrap_or_default(),
        Value::Number(n) => n.to_string().parse().unwrap_or_default(),
        _ => Decimal::ZERO,
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub(crate) fn held(item: &Value) -> Held {
    Held {
        key: text(&item["idempotency_key"]),
        kind: text(&item["kind"]),
        posting: item["posting"].to_string(),
        source_id: text(&item["source_id"]),
        project_code: text(&item["project_code"]),
        worker_id: text(&item["worker_id"]),
        date: item["date"].as_str().and_then(|d| d.parse().ok()),
        quantity: decimal(&item["quantity"]),
        rate: decimal(&item["rate"]),
        rate_currency: text(&item["rate_currency"]),
        amount: decimal(&item["amount"]),
        currency: text(&item["currency"]),
    }
}

/// Every record of an ERP collection, page by page, each kept as `map` makes it (not as
/// the JSON it came as).
pub(crate) fn read_all<T>(
    erp: &dyn Erp,
    collection: &str,
    map: impl Fn(&Value) -> T,
) -> Result<Vec<T>> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (items, next) = erp
            .read_back(collection, after, 1_000)
            .map_err(crate::EngineError::Store)?;
        all.extend(items.iter().map(&map));
        match next {
            Some(next) if next > after => after = next,
            _ => return Ok(all),
        }
    }
}

fn in_period(date: Option<NaiveDate>, range: Option<(NaiveDate, NaiveDate)>) -> bool {
    match (range, date) {
        (None, _) => true,
        (Some((from, to)), Some(date)) => from <= date && date <= to,
        (Some(_), None) => false,
    }
}

/// The date of the work an entry stands for.
fn entry_date(reads: &mut dyn StoreReader, entry: &EntryRow) -> Result<Option<NaiveDate>> {
    if let Some(work) = &entry.work {
        return Ok(Some(work.date));
    }
    let Some(row) = reads.event(entry.event_seq)? else {
        return Ok(None);
    };
    Ok(match crate::hub::parse_stored(&row) {
        Ok(EventData::TimeEntry { entry, .. }) => Some(entry.work_date),
        Ok(EventData::Expense { expense, .. }) => Some(expense.spent_on),
        Ok(EventData::MilestoneReached(m)) => Some(m.reached_on),
        _ => None,
    })
}

/// The report against what `erps` hold together, by name: the ERPs the hub's work is
/// routed to. What an ERP holds as a route's shadow is a copy, not the work, and is left out.
pub fn report(
    world: &World,
    config: &crate::Config,
    reads: &mut dyn StoreReader,
    erps: &[(&str, &dyn Erp)],
    period: Option<&str>,
) -> Result<Report> {
    let range = period.and_then(crate::costing::month_range);
    let mut erp_lines: Vec<Held> = Vec::new();
    for (name, erp) in erps {
        let shadow_copy = |line: &Held| {
            let routed = config.route_of_project(world, &line.project_code);
            routed.erp != *name && routed.shadow == Some(*name)
        };
        erp_lines.extend(
            read_all(*erp, "lines", held)?
                .into_iter()
                .filter(|l| !shadow_copy(l)),
        );
    }
    let hub_lines = reads.lines(&LineFilter::default(), Page::ALL)?;
    let mut leaks = Vec::new();

    // The ERP's copies of each posting (project, kind, entry, n-th line), whoever sent them: the
    // first is the line, any more are duplicates.
    let mut by_key: HashMap<&str, &Held> = HashMap::new();
    let posting = |l: &Held| {
        (
            l.project_code.clone(),
            l.kind.clone(),
            l.source_id.clone(),
            l.posting.clone(),
        )
    };
    let mut copies: HashMap<(String, String, String, String), Vec<&Held>> = HashMap::new();
    for line in &erp_lines {
        by_key.entry(line.key.as_str()).or_insert(line);
        copies.entry(posting(line)).or_default().push(line);
    }
    let hub_keys: HashMap<String, &DeliveredLine> = hub_lines
        .iter()
        .map(|l| (l.step.idempotency_key(), l))
        .collect();
    // Each reversal, by the line it cancels.
    let reversal_of: HashMap<i64, &DeliveredLine> = hub_lines
        .iter()
        .filter_map(|l| Some((l.line.reverses?, l)))
        .collect();
    let mut entries: HashMap<i64, Option<EntryRow>> = HashMap::new();
    for line in &erp_lines {
        if !in_period(line.date, range) {
            continue;
        }
        let copies = &copies[&posting(line)];
        if !std::ptr::eq(copies[0], line) {
            let detail = format!(
                "the ERP holds {} copies of {} line {} of {} (this one under {})",
                copies.len(),
                line.kind,
                line.posting,
                line.source_id,
                line.key
            );
            leaks.push(line.leak("duplicate", None, Some(line.amount), detail));
            continue;
        }
        let Some(hub) = hub_keys.get(&line.key) else {
            let detail = format!("the hub never posted {}", line.key);
            leaks.push(line.leak("billed_unapproved", None, Some(line.amount), detail));
            continue;
        };
        let entry = match entries.get(&hub.line.entry_row) {
            Some(found) => found.clone(),
            None => {
                let found = reads.entry(hub.line.entry_row)?;
                entries.insert(hub.line.entry_row, found.clone());
                found
            }
        };
        let rejected = entry
            .as_ref()
            .is_some_and(|e| e.phase == EntryPhase::Rejected);
        let reversal_posted = reversal_of.get(&hub.line.id).is_some_and(|l| {
            l.step.state == StepState::Done
                && by_key.contains_key(l.step.idempotency_key().as_str())
        });
        if hub.line.kind != LineKind::Reversal && rejected && !reversal_posted {
            let detail = "the entry was rejected and its reversal is not in the ERP".into();
            let hub_amount = Some(hub.line.amount);
            leaks.push(line.leak("billed_unapproved", hub_amount, Some(line.amount), detail));
        }
        if hub.line.kind == LineKind::Time
            && !reversal_of.contains_key(&hub.line.id)
            && let Some(expected) = card_rate(world, reads, &hub.line, line.rate)?
            && expected != line.rate
        {
            let difference = (line.rate - expected).checked_mul(line.quantity);
            let detail = format!(
                "posted at {} {}, the rate card in force says {expected}",
                line.rate, line.rate_currency
            );
            let mut leak = line.leak("rate_mismatch", Some(hub.line.amount), difference, detail);
            leak.currency = line.rate_currency.clone();
            leaks.push(leak);
        }
    }

    // Hub lines that are not in the ERP: held, on their way, or lost.
    for hub in &hub_lines {
        if hub.line.kind == LineKind::Reversal || !in_period(Some(hub.line.date), range) {
            continue;
        }
        let key = hub.step.idempotency_key();
        if by_key.contains_key(key.as_str()) || reversal_of.contains_key(&hub.line.id) {
            continue;
        }
        let why = if hub.step.state == StepState::Done {
            "posted, but the ERP does not hold it".to_string()
        } else {
            format!("its posting is {}", hub.step.state.as_str())
        };
        leaks.push(Leak {
            kind: "approved_unbilled",
            entry_id: hub.line.source_id.clone(),
            project_code: hub.line.project_code.clone(),
            worker_id: hub.line.worker_id.clone(),
            date: Some(hub.line.date),
            hub_amount: Some(hub.line.amount),
            erp_amount: None,
            amount: Some(hub.line.amount),
            currency: hub.line.currency.code().to_string(),
            detail: why,
        });
    }
    // Work held by an open case: approved, valued, not billed.
    let open = CaseFilter::default();
    for case in reads.cases(&open, Page::ALL)? {
        if !case.state.is_open() || crate::flows::NOTICES.contains(&case.kind.as_str()) {
            continue;
        }
        let (Some(row), Some(value), Some(currency)) = (case.entry_row, case.value, case.currency)
        else {
            continue;
        };
        let Some(entry) = reads.entry(row)? else {
            continue;
        };
        if entry.phase != EntryPhase::Held {
            continue;
        }
        let date = entry_date(reads, &entry)?;
        if !in_period(date, range) {
            continue;
        }
        leaks.push(Leak {
            kind: "approved_unbilled",
            entry_id: entry.entry_id.clone(),
            project_code: entry
                .work
                .as_ref()
                .map(|w| w.project_code.clone())
                .unwrap_or_default(),
            worker_id: entry
                .work
                .as_ref()
                .map(|w| w.worker_id.clone())
                .unwrap_or_default(),
            date,
            hub_amount: Some(value),
            erp_amount: None,
            amount: Some(value),
            currency: currency.code().to_string(),
            detail: format!(
                "held by case {} ({}, {})",
                case.id,
                case.kind,
                case.owner.as_str()
            ),
        });
    }

    for (_, erp) in erps {
        leaks.extend(terms(world, *erp)?);
    }
    // Amounts in their currency's minor unit (a rate difference times hours, rounded).
    for leak in &mut leaks {
        if let Ok(currency) = pshub_model::Currency::parse(&leak.currency) {
            for amount in [&mut leak.amount, &mut leak.hub_amount, &mut leak.erp_amount]
                .into_iter()
                .flatten()
            {
                *amount = pshub_model::Money::rounded(*amount, currency).amount();
            }
        }
    }
    Ok(Report {
        period: period.map(str::to_string),
        erp_lines: erp_lines.len(),
        hub_lines: hub_lines.len(),
        leaks,
    })
}

/// The bill rate in force for a time line: the terms of its date, for the role it was
/// priced for (the entry's own, else its assignment's, else the worker's) in the worker's
/// region. The entry is read only when the rate found differs from `posted`.
fn card_rate(
    world: &World,
    reads: &mut dyn StoreReader,
    line: &LineRow,
    posted: Decimal,
) -> Result<Option<Decimal>> {
    let rate_for = |role: Option<&str>| -> Option<Decimal> {
        let project = world.project(&ProjectCode::parse(&line.project_code).ok()?)?;
        let card = project.contract_on(line.date).rate_card_id.clone();
        let worker = WorkerId::parse(&line.worker_id).ok()?;
        let on_date = world.worker_on(&worker, line.date)?;
        let role = role
            .or_else(|| {
                world.approved_assignment(&worker, &project.project.project_code, line.date)
            })
            .or(on_date.role)?;
        match world.bill_rate(card.as_str(), role, on_date.region?, line.date)? {
            (_, Some(rate)) => Some(rate),
            _ => None,
        }
    };
    let found = rate_for(None);
    if found.is_none_or(|rate| rate == posted) {
        return Ok(found);
    }
    let own_role = match reads.event(line.event_seq)? {
        Some(row) => match crate::hub::parse_stored(&row) {
            Ok(EventData::TimeEntry { entry, .. }) => entry.role,
            _ => None,
        },
        None => None,
    };
    Ok(match own_role {
        Some(role) => rate_for(Some(&role)),
        None => found,
    })
}

/// The CRM's terms today against the billing rules the ERP holds, field by field.
fn terms(world: &World, erp: &dyn Erp) -> Result<Vec<Leak>> {
    let mut leaks = Vec::new();
    for item in read_all(erp, "billing-rules", Value::clone)? {
        let code = text(&item["project_code"]);
        let Some(project) = ProjectCode::parse(&code)
            .ok()
            .and_then(|c| world.project(&c))
        else {
            continue;
        };
        let held = &item["rules"]["contract"];
        let today = project.contract_on(NaiveDate::MAX);
        let ours = serde_json::to_value(&*today).unwrap_or(Value::Null);
        for field in ["billing_model", "currency", "rate_card_id", "cap", "end"] {
            let (crm, erp_value) = (&ours[field], &held[field]);
            let same = match (crm, erp_value) {
                (Value::String(a), Value::String(b)) if field == "cap" => {
                    a.parse::<Decimal>().ok() == b.parse::<Decimal>().ok()
                }
                (a, b) => a == b,
            };
            if !same {
                leaks.push(Leak {
                    kind: "terms_mismatch",
                    entry_id: today.contract_id.to_string(),
                    project_code: code.clone(),
                    worker_id: String::new(),
                    date: None,
                    hub_amount: None,
                    erp_amount: None,
                    amount: None,
                    currency: today.currency.code().to_string(),
                    detail: format!("{field}: the CRM says {crm}, the ERP holds {erp_value}"),
                });
            }
        }
    }
    Ok(leaks)
}

/// The report as `leakage.csv`.
pub fn to_csv(report: &Report) -> String {
    let mut out = String::from(
        "kind,entry_id,project_code,worker_id,date,hub_amount,erp_amount,amount,currency,detail\n",
    );
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let number = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
    for l in &report.leaks {
        let row = [
            l.kind.to_string(),
            field(&l.entry_id),
            field(&l.project_code),
            field(&l.worker_id),
            l.date.map(|d| d.to_string()).unwrap_or_default(),
            number(l.hub_amount),
            number(l.erp_amount),
            number(l.amount),
            field(&l.currency),
            field(&l.detail),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

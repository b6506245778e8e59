//! A simulated consulting firm: its CRM closes deals, its HRIS hires, moves, sends on leave
//! and terminates consultants, its PSA books them and approves their time and expenses.
//! The events come with the faults of real life: consultants who log time after they left
//! or while on leave, a rate card with a hole in it, bookings never approved, a contract
//! that ended, expenses in a currency nobody quotes, typos in project codes, contractors
//! unknown to the HRIS, approvals rejected after they were billed, events sent twice,
//! malformed and conflicting events.
//!
//! Everything is derived from a seed, so a run is reproducible. Work events are produced
//! lazily, so a benchmark can stream millions of them in little memory.

use super::rng::Rng;
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::VecDeque;

/// The shape of the firm and the month simulated.
#[derive(Debug, Clone)]
pub struct FirmSpec {
    pub workers: usize,
    pub projects: usize,
    /// The first day of the month simulated.
    pub month: NaiveDate,
    /// About how many time entries and expenses to approve.
    pub entries: usize,
    pub seed: u64,
    /// Whether to mix in the faults of real life.
    pub faults: bool,
    /// Whether some contracts are fixed fee (billed by milestones) or capped, with
    /// amendments during the month; else every contract is time and materials.
    pub contracts: bool,
}

impl Default for FirmSpec {
    fn default() -> Self {
        FirmSpec {
            workers: 200,
            projects: 40,
            month: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default(),
            entries: 30_000,
            seed: 2026,
            faults: true,
            contracts: false,
        }
    }
}

struct Region {
    name: &'static str,
    currency: &'static str,
    legal_entity: &'static str,
    /// Percent applied to the base rate.
    rate_percent: i64,
}

/// The worker engaged as a contractor when the firm has contracts.
const CONTRACTOR: &str = "W-00004";

const REGIONS: [Region; 3] = [
    Region {
        name: "emea",
        currency: "EUR",
        legal_entity: "DE01",
        rate_percent: 100,
    },
    Region {
        name: "amer",
        currency: "USD",
        legal_entity: "US01",
        rate_percent: 110,
    },
    Region {
        name: "apac",
        currency: "JPY",
        legal_entity: "JP01",
        rate_percent: 90,
    },
];

/// Roles with their base hourly bill rate in EUR.
const ROLES: [(&str, i64); 5] = [
    ("analyst", 95),
    ("consultant", 140),
    ("senior_consultant", 185),
    ("manager", 230),
    ("architect", 260),
];

/// Units of each card's currency per EUR, for the simulated rate cards.
const CARD_FACTOR: [(&str, i64); 3] = [("EUR", 100), ("USD", 108), ("JPY", 16_200)];

/// The hole in a rate card: the USD card has no apac architect.
const MISSING_RATE: (&str, &str, &str) = ("RC-USD", "architect", "apac");

#[derive(Clone)]
struct Worker {
    id: String,
    region: usize,
    role: usize,
    projects: Vec<usize>,
    terminated_on: Option<NaiveDate>,
    leave: Option<(NaiveDate, NaiveDate)>,
    transfer: Option<(NaiveDate, usize)>,
}

struct ProjectPlan {
    code: String,
    currency: &'static str,
    card: &'static str,
    end: Option<NaiveDate>,
    model: Model,
}

/// How a project's contract bills.
#[derive(Clone, Copy, PartialEq)]
enum Model {
    TimeAndMaterials,
    /// By milestones: Kick-off, Design and Go-live; an amendment on the 10th changes Design
    /// and adds Handover.
    FixedFee,
    /// Time and materials up to a cap (in hundredths of the contract currency), which an
    /// amendment on the 20th raises by a fifth.
    Capped(i64),
}

/// The milestones of a fixed-fee contract: amounts in hundreds of EUR, scaled by the card's
/// factor for other currencies.
const MILESTONES: [(&str, &str, i64); 3] = [
    ("M-1", "Kick-off", 400),
    ("M-2", "Design", 800),
    ("M-3", "Go-live", 1_200),
];

fn factor_of(currency: &str) -> i64 {
    CARD_FACTOR
        .iter()
        .find(|(c, _)| *c == currency)
        .map_or(100, |(_, f)| *f)
}

pub struct SimulatedFirm {
    spec: FirmSpec,
    workers: Vec<Worker>,
    projects: Vec<ProjectPlan>,
    /// Assignments left soft (never approved): (worker index, project index).
    unapproved: Vec<(usize, usize)>,
}

fn envelope(source: &str, id: String, event_type: &str, day: NaiveDate, data: Value) -> Value {
    json!({
        "id": id,
        "source": source,
        "type": event_type,
        "schema_version": 1,
        "occurred_at": format!("{day}T18:00:00Z"),
        "data": data,
    })
}

fn money_text(cents: i64, currency: &str) -> String {
    let scale = if currency == "JPY" { 0 } else { 2 };
    let value = Decimal::new(cents, 2);
    value.round_dp(scale).to_string()
}

impl SimulatedFirm {
    pub fn new(spec: FirmSpec) -> Self {
        let mut rng = Rng::new(spec.seed);
        let projects: Vec<ProjectPlan> = (0..spec.projects.max(3))
            .map(|i| {
                let region = &REGIONS[i % REGIONS.len()];
                // Every fifth project bills in USD off the EUR card: converted by FX.
                let (currency, card) = if i % 5 == 4 {
                    ("USD", "RC-EUR")
                } else {
                    (region.currency, card_of(region.currency))
                };
                let end = (spec.faults && i == 1).then(|| spec.month + Duration::days(14));
                let per_project = (spec.entries / spec.projects.max(3)).max(1) as i64;
                let model = match i % 6 {
                    _ if !spec.contracts || currency != region.currency => Model::TimeAndMaterials,
                    2 => Model::FixedFee,
                    // About half of what the project's time will be worth: crossed mid-month.
                    3 => Model::Capped(per_project * 150 * factor_of(currency)),
                    _ => Model::TimeAndMaterials,
                };
                ProjectPlan {
                    code: format!("PRJ-{:04}", i + 1),
                    currency,
                    card,
                    end,
                    model,
                }
            })
            .collect();
        let mut workers = Vec::with_capacity(spec.workers);
        let mut unapproved = Vec::new();
        for i in 0..spec.workers {
            let region = i % REGIONS.len();
            let role = rng.below(ROLES.len() as u64) as usize;
            let first = region
                + REGIONS.len()
                    * rng.below((projects.len() / REGIONS.len()).max(1) as u64) as usize;
            let mut assigned = vec![first.min(projects.len() - 1)];
            if rng.chance(300_000) {
                let second = rng.below(projects.len() as u64) as usize;
                if !assigned.contains(&second) {
                    assigned.push(second);
                }
            }
            let mut worker = Worker {
                id: format!("W-{:05}", i + 1),
                region,
                role,
                projects: assigned,
                terminated_on: None,
                leave: None,
                transfer: None,
            };
            if spec.faults {
                match rng.below(100) {
                    0 | 1 => {
                        worker.terminated_on =
                            Some(spec.month + Duration::days(9 + rng.below(10) as i64))
                    }
                    2 | 3 => {
                        let start = spec.month + Duration::days(4 + rng.below(5) as i64);
                        worker.leave = Some((start, start + Duration::days(7)));
                    }
                    4 => {
                        worker.transfer = Some((
                            spec.month + Duration::days(15),
                            (region + 1) % REGIONS.len(),
                        ))
                    }
                    5..=7 => unapproved.push((i, worker.projects[0])),
                    _ => {}
                }
            }
            workers.push(worker);
        }
        SimulatedFirm {
            spec,
            workers,
            projects,
            unapproved,
        }
    }

    /// Reference data in the order the systems would send it: FX and rate cards (ERP),
    /// closed deals (CRM), hires and moves (HRIS), bookings (PSA).
    pub fn reference_events(&self) -> Vec<Value> {
        let spec = &self.spec;
        let start = spec.month - Duration::days(5);
        let mut events = Vec::new();
        for (from, to, base) in [
            ("EUR", "USD", 10_850),
            ("USD", "EUR", 9_217),
            ("JPY", "USD", 67),
            ("USD", "JPY", 1_500_000),
            ("EUR", "JPY", 1_620_000),
            ("JPY", "EUR", 62),
        ] {
            let mut day = start;
            while day <= last_day(spec.month) {
                let wobble = (day.ordinal() as i64 % 7) - 3;
                let rate = Decimal::new(base * 1000 + base * wobble, 7).normalize();
                events.push(envelope("erp", format!("fx-{from}{to}-{day}"), "fx_rate.upserted", day, json!({
                    "from": from, "to": to, "rate": rate.to_string(), "valid_on": day.to_string(), "source": "ecb-reference"
                })));
                day += Duration::days(1);
            }
        }
        for (currency, factor) in CARD_FACTOR {
            events.push(self.rate_card(card_of(currency), currency, factor, spec.faults));
        }
        if spec.contracts {
            events.extend(self.cost_rates(start));
        }
        for (i, plan) in self.projects.iter().enumerate() {
            let region = &REGIONS[i % REGIONS.len()];
            let customer = format!("CUST-{:04}", i / 2 + 1);
            let factor = factor_of(plan.currency);
            let mut contract = json!({ "contract_id": contract_id(i), "billing_model": "time_and_materials",
                "currency": plan.currency, "rate_card_id": plan.card,
                "start": "2026-01-01", "end": plan.end.map(|d| d.to_string()) });
            if spec.contracts && i == 0 {
                // The first project's client pays overtime at the region's premium.
                contract["bill_overtime"] = json!(true);
            }
            match plan.model {
                Model::TimeAndMaterials => {}
                Model::FixedFee => {
                    contract["billing_model"] = json!("fixed_fee");
                    contract["milestones"] = json!(MILESTONES.iter().map(|(id, name, hundreds)| json!({
                        "milestone_id": id, "name": name, "amount": money_text(hundreds * factor * 100, plan.currency),
                    })).collect::<Vec<_>>());
                }
                Model::Capped(cap) => {
                    contract["billing_model"] = json!("capped_tm");
                    contract["cap"] = json!(money_text(cap, plan.currency));
                }
            }
            events.push(envelope("crm", format!("crm-opp-{}", i + 1), "opportunity.closed_won", start, json!({
                "opportunity_id": format!("OPP-{:04}", i + 1),
                "customer": { "customer_id": customer, "legal_name": format!("Client {} GmbH", i / 2 + 1),
                              "tax_id": format!("TX{:06}", i / 2 + 1), "country": "DE", "currency": plan.currency },
                "contract": contract,
                "project": { "project_code": plan.code, "name": format!("Engagement {}", i + 1),
                             "legal_entity": region.legal_entity, "region": region.name, "service_line": "advisory" },
            })));
            events.extend(self.amendments(i, plan));
        }
        if spec.contracts {
            // The first client again, from the CRM under another id and spelling: one customer.
            events.push(envelope("crm", "crm-cust-9001".into(), "customer.upserted", start, json!({
                "customer_id": "CUST-9001", "legal_name": "CLIENT 1 G.m.b.H.", "tax_id": "TX 000001",
                "country": "DE", "currency": self.projects[0].currency,
            })));
        }
        for worker in &self.workers {
            events.extend(self.worker_events(worker));
        }
        for (w, worker) in self.workers.iter().enumerate() {
            for &p in &worker.projects {
                let id = format!("A-{}-{}", worker.id, self.projects[p].code);
                let assignment = |version: u32, state: &str| {
                    envelope(
                        "psa",
                        format!("psa-{id}-v{version}"),
                        "assignment.changed",
                        start,
                        json!({
                            "assignment_id": id, "version": version, "worker_id": worker.id,
                            "project_code": self.projects[p].code, "role": ROLES[worker.role].0,
                            "start": spec.month.to_string(), "end": last_day(spec.month).to_string(),
                            "hours": "184", "state": state,
                        }),
                    )
                };
                events.push(assignment(1, "soft"));
                if !self.unapproved.contains(&(w, p)) {
                    events.push(assignment(2, "approved"));
                }
            }
        }
        events
    }

    /// What the ERP says of the month's invoices (one per project) once they are out: all
    /// sent, every other one paid, and the first project's disputed.
    pub fn invoice_events(&self) -> Vec<Value> {
        let month = self.spec.month;
        let next = last_day(month) + Duration::days(1);
        let mut events = Vec::new();
        for (i, plan) in self.projects.iter().enumerate() {
            let invoice = format!("INV-{}-{:04}-{:02}", plan.code, month.year(), month.month());
            let mut status = |status: &str, days: i64| {
                events.push(envelope(
                    "erp",
                    format!("erp-{invoice}-{status}"),
                    "invoice.status_changed",
                    next,
                    json!({
                        "invoice_id": invoice, "status": status,
                        "at": format!("{}T09:00:00Z", next + Duration::days(days)),
                    }),
                ));
            };
            status("sent", 1);
            if i == 0 {
                status("disputed", 10);
            } else if i % 2 == 0 {
                status("paid", 20);
            }
        }
        events
    }

    /// Standard cost by grade (in EUR: three fifths of the role's base rate), and for the
    /// staff of the second project a cost so high that its margin falls under the floor.
    fn cost_rates(&self, day: NaiveDate) -> Vec<Value> {
        let mut events: Vec<Value> = ROLES
            .iter()
            .enumerate()
            .map(|(i, (_, base))| {
                envelope(
                    "psa",
                    format!("psa-cost-G{}", i + 1),
                    "cost_rate.upserted",
                    day,
                    json!({
                        "grade": format!("G{}", i + 1), "currency": "EUR",
                        "hourly_cost": money_text(base * 60, "EUR"), "valid_from": "2026-01-01",
                    }),
                )
            })
            .collect();
        for worker in self.workers.iter().filter(|w| self.is_contractor(w)) {
            let base = ROLES[worker.role].1;
            events.push(envelope(
                "psa",
                format!("psa-cost-{}", worker.id),
                "cost_rate.upserted",
                day,
                json!({
                    "worker_id": worker.id, "currency": "EUR",
                    "hourly_cost": money_text(base * 70, "EUR"), "valid_from": "2026-01-01",
                }),
            ));
        }
        for worker in self
            .workers
            .iter()
            .filter(|w| w.projects.first() == Some(&1) && !self.is_contractor(w))
        {
            let base = ROLES[worker.role].1;
            events.push(envelope(
                "psa",
                format!("psa-cost-{}", worker.id),
                "cost_rate.upserted",
                day,
                json!({
                    "worker_id": worker.id, "currency": "EUR",
                    "hourly_cost": money_text(base * 95, "EUR"), "valid_from": "2026-01-01",
                }),
            ));
        }
        events
    }

    /// The firm's one contractor (with contracts on): an outside consultant whose cost is
    /// their rate agreement.
    fn is_contractor(&self, worker: &Worker) -> bool {
        self.spec.contracts && worker.id == CONTRACTOR
    }

    /// The workers, with their classification: (id, region, contractor).
    pub fn staff(&self) -> Vec<(&str, &'static str, bool)> {
        self.workers
            .iter()
            .map(|w| (w.id.as_str(), REGIONS[w.region].name, self.is_contractor(w)))
            .collect()
    }

    /// An overtime week (with contracts on): the first emea consultant of the first project
    /// logs four hours more each day of the month's second full week, on top of their usual
    /// time, on a contract that bills overtime.
    pub fn overtime_week(&self) -> Vec<Value> {
        let Some(worker) = self.workers.iter().find(|w| {
            self.spec.contracts
                && w.region == 0
                && w.projects.first() == Some(&0)
                && w.terminated_on.is_none()
                && w.leave.is_none()
                && w.transfer.is_none()
                && !self.is_contractor(w)
        }) else {
            return Vec::new();
        };
        let mut monday = self.spec.month + Duration::days(7);
        while monday.weekday() != Weekday::Mon {
            monday += Duration::days(1);
        }
        (0..5)
            .map(|d| {
                let day = monday + Duration::days(d);
                let entry_id = format!("OT-{}-{day}", worker.id);
                envelope(
                    "psa",
                    format!("psa-{entry_id}-approved-1"),
                    "time_entry.approved",
                    day,
                    json!({
                        "entry_id": entry_id, "worker_id": worker.id, "project_code": self.projects[0].code,
                        "work_date": day.to_string(), "hours": "4", "billable": true,
                    }),
                )
            })
            .collect()
    }

    /// A contract's amendments during the month.
    fn amendments(&self, i: usize, plan: &ProjectPlan) -> Vec<Value> {
        let month = self.spec.month;
        let amend = |day: i64, changes: Value| {
            let from = month + Duration::days(day);
            envelope(
                "crm",
                format!("crm-amend-{}-{from}", i + 1),
                "contract.amended",
                month,
                json!({
                    "contract_id": contract_id(i), "effective_from": from.to_string(), "changes": changes,
                }),
            )
        };
        let factor = factor_of(plan.currency);
        match plan.model {
            Model::TimeAndMaterials => Vec::new(),
            Model::FixedFee => {
                let mut milestones: Vec<Value> = MILESTONES.iter().map(|(id, name, hundreds)| {
                    let hundreds = if *id == "M-2" { hundreds + 100 } else { *hundreds };
                    json!({ "milestone_id": id, "name": name, "amount": money_text(hundreds * factor * 100, plan.currency) })
                }).collect();
                milestones.push(json!({ "milestone_id": "M-4", "name": "Handover",
                    "amount": money_text(300 * factor * 100, plan.currency) }));
                vec![amend(9, json!({ "milestones": milestones }))]
            }
            Model::Capped(cap) => vec![amend(
                19,
                json!({ "cap": money_text(cap / 5 * 6, plan.currency) }),
            )],
        }
    }

    fn rate_card(&self, id: &str, currency: &str, factor: i64, with_hole: bool) -> Value {
        let mut rates = Vec::new();
        for (role, base) in ROLES {
            for region in &REGIONS {
                if with_hole && (id, role, region.name) == MISSING_RATE {
                    continue;
                }
                let cents = base * factor * region.rate_percent / 100;
                rates.push(json!({ "role": role, "region": region.name, "rate": money_text(cents, currency), "valid_from": "2026-01-01" }));
            }
        }
        let version = if with_hole { 1 } else { 2 };
        envelope(
            "psa",
            format!("psa-{id}-v{version}"),
            "rate_card.upserted",
            self.spec.month - Duration::days(5),
            json!({
                "rate_card_id": id, "currency": currency, "rates": rates,
            }),
        )
    }

    fn worker_events(&self, worker: &Worker) -> Vec<Value> {
        let region = &REGIONS[worker.region];
        let hired = self.spec.month - Duration::days(200);
        let mut events = vec![envelope(
            "hris",
            format!("hris-{}-hired", worker.id),
            "worker.hired",
            hired,
            json!({
                "worker_id": worker.id, "effective_date": hired.to_string(), "legal_entity": region.legal_entity,
                "region": region.name, "cost_center": format!("CC-{}", region.name), "role": ROLES[worker.role].0,
                "grade": format!("G{}", worker.role + 1), "manager_id": null,
            }),
        )];
        if self.is_contractor(worker) {
            events[0]["data"]["classification"] = json!("contractor");
        }
        let simple = |kind: &str, day: NaiveDate| {
            envelope(
                "hris",
                format!("hris-{}-{kind}-{day}", worker.id),
                &format!("worker.{kind}"),
                day,
                json!({
                    "worker_id": worker.id, "effective_date": day.to_string(),
                }),
            )
        };
        if let Some(day) = worker.terminated_on {
            events.push(simple("terminated", day));
        }
        if let Some((start, end)) = worker.leave {
            events.push(simple("leave_started", start));
            events.push(simple("leave_ended", end));
        }
        if let Some((day, to)) = worker.transfer {
            let region = &REGIONS[to];
            events.push(envelope("hris", format!("hris-{}-transferred-{day}", worker.id), "worker.transferred", day, json!({
                "worker_id": worker.id, "effective_date": day.to_string(), "region": region.name,
                "legal_entity": region.legal_entity, "cost_center": format!("CC-{}", region.name),
            })));
        }
        events
    }

    /// Approved (and some rejected) time entries and expenses, produced lazily.
    pub fn work_events(&self) -> WorkStream<'_> {
        let days: Vec<NaiveDate> = (0..31)
            .map(|d| self.spec.month + Duration::days(d))
            .filter(|d| {
                d.month() == self.spec.month.month()
                    && !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
            })
            .collect();
        let worker_days = (self.workers.len() * days.len()).max(1);
        let per_day_tenths = (self.spec.entries * 10 * 93 / 100 / worker_days).max(10);
        WorkStream {
            firm: self,
            rng: Rng::new(self.spec.seed ^ 0x5eed),
            days,
            per_day_tenths,
            day: 0,
            worker: 0,
            entry_seq: 0,
            expense_seq: 0,
            queue: VecDeque::new(),
            delayed: VecDeque::new(),
            emitted: 0,
            extras_done: false,
        }
    }

    /// What the firm's finance team sends once it notices the hole in the rate card.
    pub fn rate_card_fix(&self) -> Value {
        self.rate_card("RC-USD", "USD", 108, false)
    }
}

fn card_of(currency: &str) -> &'static str {
    match currency {
        "USD" => "RC-USD",
        "JPY" => "RC-JPY",
        _ => "RC-EUR",
    }
}

fn contract_id(project: usize) -> String {
    format!("CTR-{:04}", project + 1)
}

fn last_day(month: NaiveDate) -> NaiveDate {
    let next = if month.month() == 12 {
        NaiveDate::from_ymd_opt(month.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(month.year(), month.month() + 1, 1)
    };
    next.map_or(month, |n| n - Duration::days(1))
}

/// The lazy stream of work events; see [`SimulatedFirm::work_events`].
pub struct WorkStream<'a> {
    firm: &'a SimulatedFirm,
    rng: Rng,
    days: Vec<NaiveDate>,
    /// Mean time entries per worker-day, in tenths.
    per_day_tenths: usize,
    day: usize,
    worker: usize,
    entry_seq: u64,
    expense_seq: u64,
    queue: VecDeque<Value>,
    /// Events to send again later: (emit when this many have gone out, event).
    delayed: VecDeque<(u64, Value)>,
    emitted: u64,
    extras_done: bool,
}

impl WorkStream<'_> {
    fn fill(&mut self) {
        if self.day >= self.days.len() || self.firm.workers.is_empty() {
            if !self.extras_done {
                self.extras_done = true;
                self.extras();
            }
            return;
        }
        let day = self.days[self.day];
        let firm = self.firm;
        if self.worker == 0 {
            self.milestones_on(self.day, day);
        }
        let worker = &firm.workers[self.worker];
        self.worker += 1;
        if self.worker == firm.workers.len() {
            self.worker = 0;
            self.day += 1;
        }
        let tenths = self.per_day_tenths;
        let count = (tenths / 10 + usize::from(self.rng.below(10) < (tenths % 10) as u64)).max(1);
        // 8 hours split into `count` parts in quarter hours (at least a quarter each).
        let quarters = 32usize.max(count);
        let mut parts = vec![1usize; count];
        for _ in count..quarters {
            let i = self.rng.below(count as u64) as usize;
            parts[i] += 1;
        }
        let project = *self.rng.pick(&worker.projects);
        for part in parts {
            let hours = Decimal::new(part as i64 * 25, 2).normalize();
            let billable = self.rng.below(100) < 92;
            let mut project_code = firm.projects[project].code.clone();
            if firm.spec.faults && self.rng.chance(500) {
                project_code = project_code.replace("PRJ-0", "PRJ-O"); // a typo in the PSA
            }
            self.push_entry(&worker.id, &project_code, day, hours, billable);
        }
        if self.rng.chance(70_000) {
            self.expense(worker, project, day);
        }
        if firm.spec.faults && self.rng.chance(4_000) {
            // A contractor the HRIS has never heard of.
            self.push_entry(
                "C-90001",
                &firm.projects[project].code,
                day,
                Decimal::from(4),
                true,
            );
        }
    }

    /// The milestones fixed-fee projects reach on the `index`-th working day: Kick-off on
    /// the 3rd, Design on the 12th (sent twice, under two ids), Handover on the 18th; with
    /// faults, a milestone no contract has.
    fn milestones_on(&mut self, index: usize, day: NaiveDate) {
        let firm = self.firm;
        let due: &[(&str, usize)] = match index {
            2 => &[("M-1", 1)],
            11 => &[("M-2", 2)],
            17 => &[("M-4", 1)],
            _ => return,
        };
        for (i, plan) in firm.projects.iter().enumerate() {
            if plan.model != Model::FixedFee {
                continue;
            }
            for &(milestone, times) in due {
                for n in 0..times {
                    self.queue.push_back(envelope(
                        "psa",
                        format!("psa-{}-{milestone}-{n}", plan.code),
                        "milestone.reached",
                        day,
                        json!({ "milestone_id": milestone, "contract_id": contract_id(i), "reached_on": day.to_string() }),
                    ));
                }
            }
            if firm.spec.faults && index == 17 {
                self.queue.push_back(envelope(
                    "psa",
                    format!("psa-{}-M-9", plan.code),
                    "milestone.reached",
                    day,
                    json!({ "milestone_id": "M-9", "contract_id": contract_id(i), "reached_on": day.to_string() }),
                ));
            }
        }
    }

    fn push_entry(
        &mut self,
        worker: &str,
        project: &str,
        day: NaiveDate,
        hours: Decimal,
        billable: bool,
    ) {
        self.entry_seq += 1;
        let entry_id = format!("T{:08}", self.entry_seq);
        let data = json!({
            "entry_id": entry_id, "worker_id": worker, "project_code": project,
            "work_date": day.to_string(), "hours": hours.to_string(), "billable": billable,
        });
        let event = envelope(
            "psa",
            format!("psa-{entry_id}-approved-1"),
            "time_entry.approved",
            day,
            data.clone(),
        );
        self.schedule_faults(&event, &entry_id, "time_entry", data, day);
        self.queue.push_back(event);
    }

    fn expense(&mut self, worker: &Worker, project: usize, day: NaiveDate) {
        self.expense_seq += 1;
        let expense_id = format!("X{:07}", self.expense_seq);
        let mut currency = REGIONS[worker.region].currency;
        if self.firm.spec.faults && self.rng.chance(30_000) {
            currency = "GBP"; // a trip to London: nobody sends a GBP rate
        }
        let cents = 2_000 + self.rng.below(40_000) as i64;
        let amount = if currency == "JPY" {
            money_text(cents * 160, currency)
        } else {
            money_text(cents, currency)
        };
        let category = *self.rng.pick(&["travel", "lodging", "meals"]);
        let data = json!({
            "expense_id": expense_id, "worker_id": worker.id, "project_code": self.firm.projects[project].code,
            "spent_on": day.to_string(), "amount": amount, "currency": currency, "category": category, "billable": true,
        });
        let event = envelope(
            "psa",
            format!("psa-{expense_id}-approved-1"),
            "expense.approved",
            day,
            data.clone(),
        );
        self.schedule_faults(&event, &expense_id, "expense", data, day);
        self.queue.push_back(event);
    }

    /// Re-sends, late rejections and re-approvals of the event just made.
    fn schedule_faults(
        &mut self,
        event: &Value,
        id: &str,
        record: &str,
        data: Value,
        day: NaiveDate,
    ) {
        if !self.firm.spec.faults {
            return;
        }
        let later = self.emitted + 500 + self.rng.below(5_000);
        if self.rng.chance(10_000) {
            self.delayed.push_back((later, event.clone()));
        }
        if self.rng.chance(8_000) {
            let rejected = envelope(
                "psa",
                format!("psa-{id}-rejected-1"),
                &format!("{record}.rejected"),
                day,
                data.clone(),
            );
            self.delayed.push_back((later, rejected));
            if self.rng.chance(250_000) {
                let again = envelope(
                    "psa",
                    format!("psa-{id}-approved-2"),
                    &format!("{record}.approved"),
                    day,
                    data,
                );
                self.delayed.push_back((later + 1_000, again));
            }
        }
    }

    /// Malformed and conflicting events, sent once at the end.
    fn extras(&mut self) {
        if !self.firm.spec.faults || self.firm.workers.is_empty() {
            return;
        }
        let day = self.days.last().copied().unwrap_or(self.firm.spec.month);
        let worker = &self.firm.workers[0];
        let project = &self.firm.projects[worker.projects[0]].code;
        for i in 0..5 {
            self.queue.push_back(envelope(
                "psa",
                format!("psa-bad-{i}"),
                "time_entry.approved",
                day,
                json!({
                    "entry_id": format!("TBAD{i}"), "worker_id": worker.id, "project_code": project,
                    "work_date": day.to_string(), "hours": "7,5", "billable": true,
                }),
            ));
        }
        for i in 1..=5u64 {
            let entry_id = format!("T{:08}", i * 7);
            self.queue.push_back(envelope(
                "psa",
                format!("psa-{entry_id}-approved-1"),
                "time_entry.approved",
                day,
                json!({
                    "entry_id": entry_id, "worker_id": worker.id, "project_code": project,
                    "work_date": day.to_string(), "hours": "12", "billable": true,
                }),
            ));
        }
    }
}

impl Iterator for WorkStream<'_> {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        loop {
            if let Some((due, _)) = self.delayed.front()
                && (*due <= self.emitted || (self.queue.is_empty() && self.extras_done))
            {
                self.emitted += 1;
                return self.delayed.pop_front().map(|(_, event)| event);
            }
            if let Some(event) = self.queue.pop_front() {
                self.emitted += 1;
                return Some(event);
            }
            if self.extras_done {
                return self.delayed.pop_front().map(|(_, event)| event);
            }
            self.fill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pshub_model::Event;

    #[test]
    fn the_default_firm_is_about_the_promised_size_and_parses() {
        let firm = SimulatedFirm::new(FirmSpec::default());
        let reference = firm.reference_events();
        let work: Vec<Value> = firm.work_events().collect();
        assert!(
            (25_000..36_000).contains(&work.len()),
            "{} work events",
            work.len()
        );
        let invalid = reference
            .iter()
            .chain(&work)
            .filter(|e| Event::parse(e, |_| true).is_err())
            .count();
        assert_eq!(
            invalid, 5,
            "only the five deliberately malformed events fail to parse"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_firm() {
        let a: Vec<Value> = SimulatedFirm::new(FirmSpec::default())
            .work_events()
            .take(500)
            .collect();
        let b: Vec<Value> = SimulatedFirm::new(FirmSpec::default())
            .work_events()
            .take(500)
            .collect();
        assert_eq!(a, b);
    }
}

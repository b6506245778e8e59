//! The canonical records of v1 and their states. Each record parses from the `data` of an
//! event with [`crate::fields::Obj`], so every error names its field.

use crate::Currency;
use crate::decimal::Bounds;
use crate::fields::{FieldResult, Obj};
use crate::ids::*;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

/// A short free-text attribute (a region, a role, a legal entity): non-empty, trimmed.
fn label(obj: &Obj, name: &str) -> FieldResult<String> {
    obj.key(name, |raw| check_key(raw).map(|()| raw.to_string()))
}

fn opt_label(obj: &Obj, name: &str) -> FieldResult<Option<String>> {
    if obj.get(name).is_none() {
        Ok(None)
    } else {
        label(obj, name).map(Some)
    }
}

fn check_period(obj: &Obj, start: &str, end: &str) -> FieldResult<(NaiveDate, Option<NaiveDate>)> {
    let from = obj.date(start)?;
    let to = obj.opt_date(end)?;
    if let Some(to) = to
        && to < from
    {
        return Err(obj.error(end, format!("{to} is before {start} {from}")));
    }
    Ok((from, to))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub customer_id: CustomerId,
    pub legal_name: String,
    pub tax_id: Option<String>,
    pub country: String,
    pub currency: Currency,
}

impl Customer {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let country = obj.str("country")?;
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(obj.error(
                "country",
                format!("'{country}' is not an ISO 3166 alpha-2 code"),
            ));
        }
        Ok(Customer {
            customer_id: obj.key("customer_id", CustomerId::parse)?,
            legal_name: label(obj, "legal_name")?,
            tax_id: opt_label(obj, "tax_id")?,
            country: country.to_string(),
            currency: obj.currency("currency")?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingModel {
    TimeAndMaterials,
    FixedFee,
    CappedTm,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MilestoneTerm {
    pub milestone_id: MilestoneId,
    pub name: String,
    pub amount: Decimal,
}

impl MilestoneTerm {
    fn parse_all(obj: &Obj) -> FieldResult<Option<Vec<Self>>> {
        let Some(items) = obj.opt_objects("milestones")? else {
            return Ok(None);
        };
        let terms = items
            .iter()
            .map(|m| {
                Ok(MilestoneTerm {
                    milestone_id: m.key("milestone_id", MilestoneId::parse)?,
                    name: label(m, "name")?,
                    amount: m.decimal("amount", Bounds::AMOUNT)?,
                })
            })
            .collect::<FieldResult<Vec<_>>>()?;
        Ok(Some(terms))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contract {
    pub contract_id: ContractId,
    pub billing_model: BillingModel,
    pub currency: Currency,
    pub rate_card_id: RateCardId,
    pub cap: Option<Decimal>,
    pub milestones: Vec<MilestoneTerm>,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    /// Overtime hours bill at the region's `bill_multiplier` (and the line says so); by
    /// default they bill at the plain rate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bill_overtime: bool,
}

impl Contract {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let (start, end) = check_period(obj, "start", "end")?;
        let billing_model = obj.one_of(
            "billing_model",
            &[
                ("time_and_materials", BillingModel::TimeAndMaterials),
                ("fixed_fee", BillingModel::FixedFee),
                ("capped_tm", BillingModel::CappedTm),
            ],
        )?;
        let cap = obj.opt_decimal("cap", Bounds::AMOUNT)?;
        if billing_model == BillingModel::CappedTm && cap.is_none() {
            return Err(obj.error("cap", "is required when billing_model is capped_tm"));
        }
        let milestones = MilestoneTerm::parse_all(obj)?.unwrap_or_default();
        if billing_model == BillingModel::FixedFee && milestones.is_empty() {
            return Err(obj.error(
                "milestones",
                "is required (at least one) when billing_model is fixed_fee",
            ));
        }
        Ok(Contract {
            contract_id: obj.key("contract_id", ContractId::parse)?,
            billing_model,
            currency: obj.currency("currency")?,
            rate_card_id: obj.key("rate_card_id", RateCardId::parse)?,
            cap,
            milestones,
            start,
            end,
            bill_overtime: obj.opt_bool("bill_overtime")?.unwrap_or(false),
        })
    }

    /// Whether `date` falls inside the contract's term (both ends inclusive).
    pub fn covers(&self, date: NaiveDate) -> bool {
        date >= self.start && self.end.is_none_or(|end| date <= end)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    pub project_code: ProjectCode,
    pub name: String,
    pub legal_entity: String,
    pub region: String,
    pub service_line: String,
}

impl Project {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        Ok(Project {
            project_code: obj.key("project_code", ProjectCode::parse)?,
            name: label(obj, "name")?,
            legal_entity: label(obj, "legal_entity")?,
            region: label(obj, "region")?,
            service_line: label(obj, "service_line")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClosedWon {
    pub opportunity_id: OpportunityId,
    pub customer: Customer,
    pub contract: Contract,
    pub project: Project,
}

impl ClosedWon {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        Ok(ClosedWon {
            opportunity_id: obj.key("opportunity_id", OpportunityId::parse)?,
            customer: Customer::parse(&obj.obj("customer")?)?,
            contract: Contract::parse(&obj.obj("contract")?)?,
            project: Project::parse(&obj.obj("project")?)?,
        })
    }
}

/// Written as the event carries it: `{contract_id, effective_from, changes: {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractAmendment {
    pub contract_id: ContractId,
    pub effective_from: NaiveDate,
    pub rate_card_id: Option<RateCardId>,
    pub cap: Option<Decimal>,
    pub end: Option<NaiveDate>,
    pub milestones: Option<Vec<MilestoneTerm>>,
}

impl Serialize for ContractAmendment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Changes<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            rate_card_id: Option<&'a RateCardId>,
            #[serde(skip_serializing_if = "Option::is_none")]
            cap: Option<&'a Decimal>,
            #[serde(skip_serializing_if = "Option::is_none")]
            end: Option<&'a NaiveDate>,
            #[serde(skip_serializing_if = "Option::is_none")]
            milestones: Option<&'a Vec<MilestoneTerm>>,
        }
        #[derive(Serialize)]
        struct Written<'a> {
            contract_id: &'a ContractId,
            effective_from: NaiveDate,
            changes: Changes<'a>,
        }
        Written {
            contract_id: &self.contract_id,
            effective_from: self.effective_from,
            changes: Changes {
                rate_card_id: self.rate_card_id.as_ref(),
                cap: self.cap.as_ref(),
                end: self.end.as_ref(),
                milestones: self.milestones.as_ref(),
            },
        }
        .serialize(s)
    }
}

impl ContractAmendment {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let changes = obj.obj("changes")?;
        let amendment = ContractAmendment {
            contract_id: obj.key("contract_id", ContractId::parse)?,
            effective_from: obj.date("effective_from")?,
            rate_card_id: changes.opt_key("rate_card_id", RateCardId::parse)?,
            cap: changes.opt_decimal("cap", Bounds::AMOUNT)?,
            end: changes.opt_date("end")?,
            milestones: MilestoneTerm::parse_all(&changes)?,
        };
        if amendment.rate_card_id.is_none()
            && amendment.cap.is_none()
            && amendment.end.is_none()
            && amendment.milestones.is_none()
        {
            return Err(obj.error(
                "changes",
                "names no change (rate_card_id, cap, end or milestones)",
            ));
        }
        Ok(amendment)
    }
}

/// HRIS lifecycle events; the worker's state follows from them by effective date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerChangeKind {
    Hired,
    Transferred,
    LeaveStarted,
    LeaveEnded,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    Active,
    OnLeave,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerChange {
    pub kind: WorkerChangeKind,
    pub worker_id: WorkerId,
    pub effective_date: NaiveDate,
    pub legal_entity: Option<String>,
    pub region: Option<String>,
    pub cost_center: Option<String>,
    pub role: Option<String>,
    pub grade: Option<String>,
    pub manager_id: Option<WorkerId>,
    /// Employee or contractor (absent: unchanged, and an employee when never said).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Personal data (PII): optional, never needed by a flow.
    pub name: Option<String>,
    pub email: Option<String>,
}

impl WorkerChange {
    pub fn parse(kind: WorkerChangeKind, obj: &Obj) -> FieldResult<Self> {
        let change = WorkerChange {
            kind,
            worker_id: obj.key("worker_id", WorkerId::parse)?,
            effective_date: obj.date("effective_date")?,
            legal_entity: opt_label(obj, "legal_entity")?,
            region: opt_label(obj, "region")?,
            cost_center: opt_label(obj, "cost_center")?,
            role: opt_label(obj, "role")?,
            grade: opt_label(obj, "grade")?,
            manager_id: obj.opt_key("manager_id", WorkerId::parse)?,
            classification: match obj.get("classification") {
                None => None,
                Some(_) => Some(obj.one_of(
                    "classification",
                    &[
                        ("employee", Classification::Employee),
                        ("contractor", Classification::Contractor),
                    ],
                )?),
            },
            name: obj.opt_str("name")?.map(str::to_string),
            email: obj.opt_str("email")?.map(str::to_string),
        };
        if kind == WorkerChangeKind::Hired {
            for (name, value) in [
                ("legal_entity", &change.legal_entity),
                ("region", &change.region),
                ("role", &change.role),
            ] {
                if value.is_none() {
                    return Err(obj.error(name, "is required for worker.hired"));
                }
            }
        }
        Ok(change)
    }
}

/// How a worker is engaged: it decides where their cost comes from (payroll, or their rate
/// agreement) and the tax treatment of their lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Employee,
    Contractor,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Employee => "employee",
            Classification::Contractor => "contractor",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "employee" => Some(Classification::Employee),
            "contractor" => Some(Classification::Contractor),
            _ => None,
        }
    }
}

/// A worker's availability as the PSA plans it: `hours_per_week` from `from` (through
/// `to`, inclusive, when given). The PSA's view of the resource's region and role may come
/// with it; where it differs from the HRIS's, the resource view flags it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AvailabilityChange {
    pub worker_id: WorkerId,
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub hours_per_week: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl AvailabilityChange {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let (from, to) = check_period(obj, "from", "to")?;
        Ok(AvailabilityChange {
            worker_id: obj.key("worker_id", WorkerId::parse)?,
            from,
            to,
            hours_per_week: obj.decimal("hours_per_week", Bounds::HOURS_PER_WEEK)?,
            region: opt_label(obj, "region")?,
            role: opt_label(obj, "role")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateLine {
    pub role: String,
    pub region: String,
    pub rate: Decimal,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
}

impl RateLine {
    /// Whether this line applies to (role, region, date); both validity ends are inclusive.
    pub fn applies(&self, role: &str, region: &str, date: NaiveDate) -> bool {
        self.role == role
            && self.region == region
            && date >= self.valid_from
            && self.valid_to.is_none_or(|to| date <= to)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateCard {
    pub rate_card_id: RateCardId,
    pub currency: Currency,
    pub rates: Vec<RateLine>,
}

impl RateCard {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let rates = obj
            .objects("rates")?
            .iter()
            .map(|line| {
                let (valid_from, valid_to) = check_period(line, "valid_from", "valid_to")?;
                Ok(RateLine {
                    role: label(line, "role")?,
                    region: label(line, "region")?,
                    rate: line.decimal("rate", Bounds::RATE)?,
                    valid_from,
                    valid_to,
                })
            })
            .collect::<FieldResult<Vec<_>>>()?;
        Ok(RateCard {
            rate_card_id: obj.key("rate_card_id", RateCardId::parse)?,
            currency: obj.currency("currency")?,
            rates,
        })
    }

    /// The bill rate for (role, region, date); the latest `valid_from` wins where lines overlap.
    pub fn rate_for(&self, role: &str, region: &str, date: NaiveDate) -> Option<Decimal> {
        self.rates
            .iter()
            .filter(|line| line.applies(role, region, date))
            .max_by_key(|line| line.valid_from)
            .map(|line| line.rate)
    }
}

/// Whom a standard cost rate applies to: one worker, or every worker of a grade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSubject {
    Worker(WorkerId),
    Grade(String),
}

/// Written as the event carries it: `worker_id` or `grade`, never both.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRate {
    pub subject: CostSubject,
    pub currency: Currency,
    pub hourly_cost: Decimal,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
}

impl Serialize for CostRate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Written<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            worker_id: Option<&'a WorkerId>,
            #[serde(skip_serializing_if = "Option::is_none")]
            grade: Option<&'a str>,
            currency: Currency,
            hourly_cost: Decimal,
            valid_from: NaiveDate,
            valid_to: Option<NaiveDate>,
        }
        let (worker_id, grade) = match &self.subject {
            CostSubject::Worker(w) => (Some(w), None),
            CostSubject::Grade(g) => (None, Some(g.as_str())),
        };
        Written {
            worker_id,
            grade,
            currency: self.currency,
            hourly_cost: self.hourly_cost,
            valid_from: self.valid_from,
            valid_to: self.valid_to,
        }
        .serialize(s)
    }
}

impl CostRate {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let subject = match (
            obj.opt_key("worker_id", WorkerId::parse)?,
            opt_label(obj, "grade")?,
        ) {
            (Some(worker), None) => CostSubject::Worker(worker),
            (None, Some(grade)) => CostSubject::Grade(grade),
            (Some(_), Some(_)) => {
                return Err(obj.error("grade", "give worker_id or grade, not both"));
            }
            (None, None) => return Err(obj.error("worker_id", "worker_id or grade is required")),
        };
        let (valid_from, valid_to) = check_period(obj, "valid_from", "valid_to")?;
        Ok(CostRate {
            subject,
            currency: obj.currency("currency")?,
            hourly_cost: obj.decimal("hourly_cost", Bounds::RATE)?,
            valid_from,
            valid_to,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FxRate {
    pub from: Currency,
    pub to: Currency,
    pub rate: Decimal,
    pub valid_on: NaiveDate,
    pub source: String,
}

impl FxRate {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let rate = FxRate {
            from: obj.currency("from")?,
            to: obj.currency("to")?,
            rate: obj.decimal("rate", Bounds::FX_RATE)?,
            valid_on: obj.date("valid_on")?,
            source: label(obj, "source")?,
        };
        if rate.from == rate.to {
            return Err(obj.error(
                "to",
                format!("is the same currency as from ({})", rate.from),
            ));
        }
        Ok(rate)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentState {
    Tentative,
    Soft,
    Hard,
    Approved,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    pub assignment_id: AssignmentId,
    pub version: u32,
    pub worker_id: WorkerId,
    pub project_code: ProjectCode,
    pub role: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub hours: Decimal,
    pub state: AssignmentState,
}

impl Assignment {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let start = obj.date("start")?;
        let end = obj.date("end")?;
        if end < start {
            return Err(obj.error("end", format!("{end} is before start {start}")));
        }
        Ok(Assignment {
            assignment_id: obj.key("assignment_id", AssignmentId::parse)?,
            version: obj.u32("version")?,
            worker_id: obj.key("worker_id", WorkerId::parse)?,
            project_code: obj.key("project_code", ProjectCode::parse)?,
            role: label(obj, "role")?,
            start,
            end,
            hours: obj.decimal("hours", Bounds::PLANNED_HOURS)?,
            state: obj.one_of(
                "state",
                &[
                    ("tentative", AssignmentState::Tentative),
                    ("soft", AssignmentState::Soft),
                    ("hard", AssignmentState::Hard),
                    ("approved", AssignmentState::Approved),
                    ("cancelled", AssignmentState::Cancelled),
                ],
            )?,
        })
    }

    pub fn covers(&self, date: NaiveDate) -> bool {
        date >= self.start && date <= self.end
    }
}

/// Where a time entry or expense stands in its source system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    Submitted,
    Approved,
    Posted,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeEntry {
    pub entry_id: EntryId,
    pub worker_id: WorkerId,
    pub project_code: ProjectCode,
    pub work_date: NaiveDate,
    pub hours: Decimal,
    pub billable: bool,
    pub role: Option<String>,
    pub task: Option<String>,
}

impl TimeEntry {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let hours = obj.decimal("hours", Bounds::HOURS)?;
        Ok(TimeEntry {
            entry_id: obj.key("entry_id", EntryId::parse)?,
            worker_id: obj.key("worker_id", WorkerId::parse)?,
            project_code: obj.key("project_code", ProjectCode::parse)?,
            work_date: obj.date("work_date")?,
            hours,
            billable: obj.bool("billable")?,
            role: opt_label(obj, "role")?,
            task: opt_label(obj, "task")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expense {
    pub expense_id: ExpenseId,
    pub worker_id: WorkerId,
    pub project_code: ProjectCode,
    pub spent_on: NaiveDate,
    pub amount: Decimal,
    pub currency: Currency,
    pub category: String,
    pub billable: bool,
}

impl Expense {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        Ok(Expense {
            expense_id: obj.key("expense_id", ExpenseId::parse)?,
            worker_id: obj.key("worker_id", WorkerId::parse)?,
            project_code: obj.key("project_code", ProjectCode::parse)?,
            spent_on: obj.date("spent_on")?,
            amount: obj.decimal("amount", Bounds::AMOUNT)?,
            currency: obj.currency("currency")?,
            category: label(obj, "category")?,
            billable: obj.bool("billable")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MilestoneReached {
    pub milestone_id: MilestoneId,
    pub contract_id: ContractId,
    pub reached_on: NaiveDate,
}

impl MilestoneReached {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        Ok(MilestoneReached {
            milestone_id: obj.key("milestone_id", MilestoneId::parse)?,
            contract_id: obj.key("contract_id", ContractId::parse)?,
            reached_on: obj.date("reached_on")?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Posted,
    Sent,
    Paid,
    Disputed,
    Void,
}

impl InvoiceStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Posted => "posted",
            InvoiceStatus::Sent => "sent",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Disputed => "disputed",
            InvoiceStatus::Void => "void",
        }
    }

    /// Whether an invoice may move from `self` to `to`: forward along draft → posted →
    /// sent → paid (skipping states is fine); to disputed or void from any state but paid
    /// and void; from paid only to disputed (a refund or a chargeback reopens it for
    /// finance); and to paid from disputed.
    pub fn may_become(self, to: InvoiceStatus) -> bool {
        use InvoiceStatus::*;
        let rank = |s: InvoiceStatus| match s {
            Draft => Some(0),
            Posted => Some(1),
            Sent => Some(2),
            Paid => Some(3),
            Disputed | Void => None,
        };
        match (self, to) {
            (Paid, Disputed) => true,
            (Paid | Void, _) => false,
            (_, Disputed | Void) => self != to,
            (Disputed, Paid) => true,
            (Disputed, _) => false,
            (from, to) => matches!((rank(from), rank(to)), (Some(a), Some(b)) if b > a),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvoiceStatusChange {
    /// The hub's invoice. Absent when the sender names the invoice only by its own id,
    /// which the hub finds through the id registry before it accepts the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_id: Option<InvoiceId>,
    /// The sender's own id of the invoice (Stripe's `in_...`): registered when it comes with
    /// `invoice_id`, and looked up when it comes alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_invoice_id: Option<String>,
    pub status: InvoiceStatus,
    pub at: DateTime<Utc>,
}

impl InvoiceStatusChange {
    /// The invoice as the event names it: the hub's id, else the sender's own.
    pub fn invoice_key(&self) -> &str {
        match (&self.invoice_id, &self.system_invoice_id) {
            (Some(id), _) => id.as_str(),
            (None, Some(id)) => id,
            (None, None) => "",
        }
    }

    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let at = obj.str("at")?;
        let invoice_id = obj.opt_key("invoice_id", InvoiceId::parse)?;
        let system_invoice_id = opt_label(obj, "system_invoice_id")?;
        if invoice_id.is_none() && system_invoice_id.is_none() {
            return Err(obj.error(
                "invoice_id",
                "is required, unless system_invoice_id gives the sender's own id of the invoice (found through the id registry)",
            ));
        }
        Ok(InvoiceStatusChange {
            invoice_id,
            system_invoice_id,
            status: obj.one_of(
                "status",
                &[
                    ("draft", InvoiceStatus::Draft),
                    ("posted", InvoiceStatus::Posted),
                    ("sent", InvoiceStatus::Sent),
                    ("paid", InvoiceStatus::Paid),
                    ("disputed", InvoiceStatus::Disputed),
                    ("void", InvoiceStatus::Void),
                ],
            )?,
            at: DateTime::parse_from_rfc3339(at)
                .map_err(|_| obj.error("at", format!("'{at}' is not an RFC 3339 timestamp")))?
                .with_timezone(&Utc),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PayrollActual {
    pub worker_id: WorkerId,
    /// A calendar month, `YYYY-MM`.
    pub period: String,
    pub gross_cost: Decimal,
    pub currency: Currency,
}

impl PayrollActual {
    pub fn parse(obj: &Obj) -> FieldResult<Self> {
        let period = obj.str("period")?;
        if NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").is_err() {
            return Err(obj.error("period", format!("'{period}' is not a month (YYYY-MM)")));
        }
        Ok(PayrollActual {
            worker_id: obj.key("worker_id", WorkerId::parse)?,
            period: period.to_string(),
            gross_cost: obj.decimal("gross_cost", Bounds::AMOUNT_OR_ZERO)?,
            currency: obj.currency("currency")?,
        })
    }
}

/// The team that owns an exception case (PRODUCT.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerTeam {
    Integration,
    Finance,
    Pmo,
    Hr,
}

impl OwnerTeam {
    pub const ALL: [OwnerTeam; 4] = [
        OwnerTeam::Integration,
        OwnerTeam::Finance,
        OwnerTeam::Pmo,
        OwnerTeam::Hr,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            OwnerTeam::Integration => "integration",
            OwnerTeam::Finance => "finance",
            OwnerTeam::Pmo => "pmo",
            OwnerTeam::Hr => "hr",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        OwnerTeam::ALL.into_iter().find(|team| team.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionState {
    Open,
    Acknowledged,
    Resolved,
    Dismissed,
}

impl ExceptionState {
    pub const ALL: [ExceptionState; 4] = [
        ExceptionState::Open,
        ExceptionState::Acknowledged,
        ExceptionState::Resolved,
        ExceptionState::Dismissed,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ExceptionState::Open => "open",
            ExceptionState::Acknowledged => "acknowledged",
            ExceptionState::Resolved => "resolved",
            ExceptionState::Dismissed => "dismissed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        ExceptionState::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Open and acknowledged cases still hold their work.
    pub fn is_open(&self) -> bool {
        matches!(self, ExceptionState::Open | ExceptionState::Acknowledged)
    }
}

/// What an invoice line bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Time,
    Expense,
    Milestone,
    Reversal,
}

impl LineKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            LineKind::Time => "time",
            LineKind::Expense => "expense",
            LineKind::Milestone => "milestone",
            LineKind::Reversal => "reversal",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            LineKind::Time,
            LineKind::Expense,
            LineKind::Milestone,
            LineKind::Reversal,
        ]
        .into_iter()
        .find(|k| k.as_str() == raw)
    }
}

#[cfg(test)]
mod invoice_tests {
    use super::InvoiceStatus::{self, *};

    #[test]
    fn invoice_statuses_move_forward_reach_disputed_or_void_until_paid_and_paid_may_be_disputed() {
        let table: [(InvoiceStatus, InvoiceStatus, bool); 15] = [
            (Draft, Posted, true),
            (Posted, Paid, true),
            (Sent, Posted, false),
            (Paid, Draft, false),
            (Paid, Disputed, true),
            (Paid, Void, false),
            (Void, Paid, false),
            (Posted, Disputed, true),
            (Sent, Void, true),
            (Disputed, Paid, true),
            (Disputed, Void, true),
            (Disputed, Sent, false),
            (Disputed, Disputed, false),
            (Draft, Void, true),
            (Posted, Posted, false),
        ];
        for (from, to, allowed) in table {
            assert_eq!(from.may_become(to), allowed, "{from:?} -> {to:?}");
        }
    }
}

//! The event envelope (PRODUCT.md section 4) and the typed `data` of each v1 event type.

use crate::fields::{FieldError, Obj};
use crate::records::*;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::fmt;

macro_rules! event_types {
    ($($variant:ident => $name:literal,)*) => {
        /// Every event type of v1: `<record>.<what happened>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType { $($variant,)* }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            pub fn as_str(&self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($name => Some(EventType::$variant),)* _ => None }
            }
        }
    };
}

event_types! {
    CustomerUpserted => "customer.upserted",
    OpportunityClosedWon => "opportunity.closed_won",
    ContractAmended => "contract.amended",
    WorkerHired => "worker.hired",
    WorkerTransferred => "worker.transferred",
    WorkerLeaveStarted => "worker.leave_started",
    WorkerLeaveEnded => "worker.leave_ended",
    WorkerTerminated => "worker.terminated",
    RateCardUpserted => "rate_card.upserted",
    CostRateUpserted => "cost_rate.upserted",
    FxRateUpserted => "fx_rate.upserted",
    AssignmentChanged => "assignment.changed",
    TimeEntryApproved => "time_entry.approved",
    TimeEntryRejected => "time_entry.rejected",
    ExpenseApproved => "expense.approved",
    ExpenseRejected => "expense.rejected",
    MilestoneReached => "milestone.reached",
    InvoiceStatusChanged => "invoice.status_changed",
    PayrollActuals => "payroll.actuals",
    AvailabilityChanged => "availability.changed",
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The canonical `data` of an event, typed by its event type.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    Customer(Customer),
    ClosedWon(Box<ClosedWon>),
    ContractAmended(ContractAmendment),
    Worker(WorkerChange),
    RateCard(RateCard),
    CostRate(CostRate),
    FxRate(FxRate),
    Assignment(Assignment),
    TimeEntry { approved: bool, entry: TimeEntry },
    Expense { approved: bool, expense: Expense },
    MilestoneReached(MilestoneReached),
    InvoiceStatus(InvoiceStatusChange),
    PayrollActual(PayrollActual),
    Availability(AvailabilityChange),
}

impl EventData {
    pub fn parse(event_type: EventType, data: &Obj) -> Result<Self, FieldError> {
        use EventType as T;
        use WorkerChangeKind as W;
        Ok(match event_type {
            T::CustomerUpserted => EventData::Customer(Customer::parse(data)?),
            T::OpportunityClosedWon => EventData::ClosedWon(Box::new(ClosedWon::parse(data)?)),
            T::ContractAmended => EventData::ContractAmended(ContractAmendment::parse(data)?),
            T::WorkerHired => EventData::Worker(WorkerChange::parse(W::Hired, data)?),
            T::WorkerTransferred => EventData::Worker(WorkerChange::parse(W::Transferred, data)?),
            T::WorkerLeaveStarted => EventData::Worker(WorkerChange::parse(W::LeaveStarted, data)?),
            T::WorkerLeaveEnded => EventData::Worker(WorkerChange::parse(W::LeaveEnded, data)?),
            T::WorkerTerminated => EventData::Worker(WorkerChange::parse(W::Terminated, data)?),
            T::RateCardUpserted => EventData::RateCard(RateCard::parse(data)?),
            T::CostRateUpserted => EventData::CostRate(CostRate::parse(data)?),
            T::FxRateUpserted => EventData::FxRate(FxRate::parse(data)?),
            T::AssignmentChanged => EventData::Assignment(Assignment::parse(data)?),
            T::TimeEntryApproved | T::TimeEntryRejected => EventData::TimeEntry {
                approved: event_type == T::TimeEntryApproved,
                entry: TimeEntry::parse(data)?,
            },
            T::ExpenseApproved | T::ExpenseRejected => EventData::Expense {
                approved: event_type == T::ExpenseApproved,
                expense: Expense::parse(data)?,
            },
            T::MilestoneReached => EventData::MilestoneReached(MilestoneReached::parse(data)?),
            T::InvoiceStatusChanged => EventData::InvoiceStatus(InvoiceStatusChange::parse(data)?),
            T::PayrollActuals => EventData::PayrollActual(PayrollActual::parse(data)?),
            T::AvailabilityChanged => EventData::Availability(AvailabilityChange::parse(data)?),
        })
    }

    /// The canonical JSON of the record: decimals normalised and written as strings, so
    /// two bodies that parse to the same record have the same text.
    pub fn canonical_json(&self) -> String {
        let value = match self {
            EventData::Customer(r) => serde_json::to_string(r),
            EventData::ClosedWon(r) => serde_json::to_string(r),
            EventData::ContractAmended(r) => serde_json::to_string(r),
            EventData::Worker(r) => serde_json::to_string(r),
            EventData::RateCard(r) => serde_json::to_string(r),
            EventData::CostRate(r) => serde_json::to_string(r),
            EventData::FxRate(r) => serde_json::to_string(r),
            EventData::Assignment(r) => serde_json::to_string(r),
            EventData::TimeEntry { entry, .. } => serde_json::to_string(entry),
            EventData::Expense { expense, .. } => serde_json::to_string(expense),
            EventData::MilestoneReached(r) => serde_json::to_string(r),
            EventData::InvoiceStatus(r) => serde_json::to_string(r),
            EventData::PayrollActual(r) => serde_json::to_string(r),
            EventData::Availability(r) => serde_json::to_string(r),
        };
        // Serialising these plain records cannot fail: no maps with non-string keys.
        value.unwrap_or_default()
    }

    /// The event type this data is the canonical record of.
    pub fn event_type(&self) -> EventType {
        use EventType as T;
        match self {
            EventData::Customer(_) => T::CustomerUpserted,
            EventData::ClosedWon(_) => T::OpportunityClosedWon,
            EventData::ContractAmended(_) => T::ContractAmended,
            EventData::Worker(change) => match change.kind {
                WorkerChangeKind::Hired => T::WorkerHired,
                WorkerChangeKind::Transferred => T::WorkerTransferred,
                WorkerChangeKind::LeaveStarted => T::WorkerLeaveStarted,
                WorkerChangeKind::LeaveEnded => T::WorkerLeaveEnded,
                WorkerChangeKind::Terminated => T::WorkerTerminated,
            },
            EventData::RateCard(_) => T::RateCardUpserted,
            EventData::CostRate(_) => T::CostRateUpserted,
            EventData::FxRate(_) => T::FxRateUpserted,
            EventData::Assignment(_) => T::AssignmentChanged,
            EventData::TimeEntry { approved: true, .. } => T::TimeEntryApproved,
            EventData::TimeEntry {
                approved: false, ..
            } => T::TimeEntryRejected,
            EventData::Expense { approved: true, .. } => T::ExpenseApproved,
            EventData::Expense {
                approved: false, ..
            } => T::ExpenseRejected,
            EventData::MilestoneReached(_) => T::MilestoneReached,
            EventData::InvoiceStatus(_) => T::InvoiceStatusChanged,
            EventData::PayrollActual(_) => T::PayrollActuals,
            EventData::Availability(_) => T::AvailabilityChanged,
        }
    }

    /// Parses the canonical JSON written by [`Self::canonical_json`] (as the inbox stores it).
    pub fn parse_canonical(event_type: EventType, text: &str) -> Result<Self, FieldError> {
        let value: Value = serde_json::from_str(text).map_err(|e| FieldError {
            field: "data".into(),
            problem: format!("is not JSON: {e}"),
        })?;
        EventData::parse(event_type, &Obj::new("data", &value)?)
    }

    /// The business key whose events must apply in order (PRODUCT.md section 6).
    pub fn business_key(&self) -> String {
        match self {
            EventData::Customer(r) => format!("customer:{}", r.customer_id),
            EventData::ClosedWon(r) => format!("project:{}", r.project.project_code),
            EventData::ContractAmended(r) => format!("contract:{}", r.contract_id),
            EventData::Worker(r) => format!("worker:{}", r.worker_id),
            EventData::RateCard(r) => format!("rate_card:{}", r.rate_card_id),
            EventData::CostRate(r) => match &r.subject {
                CostSubject::Worker(w) => format!("cost_rate:worker:{w}"),
                CostSubject::Grade(g) => format!("cost_rate:grade:{g}"),
            },
            EventData::FxRate(r) => format!("fx:{}:{}", r.from, r.to),
            EventData::Assignment(r) => format!("assignment:{}", r.assignment_id),
            EventData::TimeEntry { entry, .. } => format!("time_entry:{}", entry.entry_id),
            EventData::Expense { expense, .. } => format!("expense:{}", expense.expense_id),
            EventData::MilestoneReached(r) => format!("milestone:{}", r.milestone_id),
            EventData::InvoiceStatus(r) => format!("invoice:{}", r.invoice_key()),
            EventData::PayrollActual(r) => format!("payroll:{}:{}", r.worker_id, r.period),
            EventData::Availability(r) => format!("worker:{}", r.worker_id),
        }
    }

    /// The id of the record the event is about, as its owning system names it (the worker
    /// id, the customer id, ...).
    pub fn record_id(&self) -> String {
        match self {
            EventData::Customer(r) => r.customer_id.to_string(),
            EventData::ClosedWon(r) => r.opportunity_id.to_string(),
            EventData::ContractAmended(r) => r.contract_id.to_string(),
            EventData::Worker(r) => r.worker_id.to_string(),
            EventData::RateCard(r) => r.rate_card_id.to_string(),
            EventData::CostRate(r) => match &r.subject {
                CostSubject::Worker(w) => w.to_string(),
                CostSubject::Grade(g) => g.to_string(),
            },
            EventData::FxRate(r) => format!("{}/{}", r.from, r.to),
            EventData::Assignment(r) => r.assignment_id.to_string(),
            EventData::TimeEntry { entry, .. } => entry.entry_id.to_string(),
            EventData::Expense { expense, .. } => expense.expense_id.to_string(),
            EventData::MilestoneReached(r) => r.milestone_id.to_string(),
            EventData::InvoiceStatus(r) => r.invoice_key().to_string(),
            EventData::PayrollActual(r) => r.worker_id.to_string(),
            EventData::Availability(r) => r.worker_id.to_string(),
        }
    }

    /// Whether the event changes the reference data that flows read (customers, deals and
    /// their amendments, workers, rate cards, cost rates, FX rates, assignments), rather than
    /// being work or a
    /// record that no flow acts on yet.
    pub fn is_reference(&self) -> bool {
        matches!(
            self,
            EventData::Customer(_)
                | EventData::ClosedWon(_)
                | EventData::ContractAmended(_)
                | EventData::InvoiceStatus(_)
                | EventData::Worker(_)
                | EventData::RateCard(_)
                | EventData::CostRate(_)
                | EventData::FxRate(_)
                | EventData::Assignment(_)
                | EventData::Availability(_)
        )
    }
}

/// A parsed, valid event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub event_type: EventType,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
    pub data: EventData,
}

/// Why an event was quarantined: the field at fault, and the ids when they were readable.
#[derive(Debug, Clone, PartialEq)]
pub struct EventError {
    pub id: Option<String>,
    pub source: Option<String>,
    pub error: FieldError,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

pub const SCHEMA_VERSION: u32 = 1;

impl Event {
    /// Parses one event from its text as it arrived. Besides [`Event::parse`], it refuses an
    /// object with the same key twice, which a parse into maps would hide.
    pub fn parse_text(raw: &str, known_source: impl Fn(&str) -> bool) -> Result<Event, EventError> {
        let value: Value = serde_json::from_str(raw).map_err(|e| EventError {
            id: None,
            source: None,
            error: FieldError {
                field: String::new(),
                problem: format!("is not JSON: {e}"),
            },
        })?;
        let parsed = Event::parse(&value, known_source);
        let Some(path) = crate::json::duplicate_key(raw) else {
            return parsed;
        };
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
        let (id, source) = match &parsed {
            Ok(event) => (Some(event.id.clone()), Some(event.source.clone())),
            Err(error) => (error.id.clone().or(text("id")), error.source.clone()),
        };
        Err(EventError {
            id,
            source,
            error: FieldError {
                field: path,
                problem: "appears twice in one object; send each key once".into(),
            },
        })
    }

    /// Parses an envelope and its `data`. `known_source` says whether a source is configured.
    pub fn parse(value: &Value, known_source: impl Fn(&str) -> bool) -> Result<Event, EventError> {
        let fail = |id: Option<&str>, source: Option<&str>, error: FieldError| EventError {
            id: id.map(str::to_string),
            source: source.map(str::to_string),
            error,
        };
        let envelope = Obj::new("", value).map_err(|e| fail(None, None, e))?;
        let id = envelope.key("id", |raw| {
            crate::ids::check_key(raw).map(|()| raw.to_string())
        });
        let source = envelope.str("source");
        let (id_ref, source_ref) = (id.as_deref().ok(), source.as_ref().ok().copied());
        let id = id.clone().map_err(|e| fail(None, source_ref, e))?;
        let source = source.map_err(|e| fail(Some(&id), None, e))?;
        let fail = |error: FieldError| fail(id_ref, Some(source), error);
        if !known_source(source) {
            return Err(fail(
                envelope.error("source", format!("'{source}' is not a configured system")),
            ));
        }
        let type_name = envelope.str("type").map_err(fail)?;
        let event_type = EventType::parse(type_name).ok_or_else(|| {
            fail(envelope.error(
                "type",
                format!("'{type_name}' is not an event type of schema version 1"),
            ))
        })?;
        let schema_version = envelope.u32("schema_version").map_err(fail)?;
        if schema_version != SCHEMA_VERSION {
            return Err(fail(envelope.error(
                "schema_version",
                format!("version {schema_version} is not supported; this hub reads version {SCHEMA_VERSION}"),
            )));
        }
        let occurred_at = envelope.str("occurred_at").map_err(fail)?;
        let occurred_at = DateTime::parse_from_rfc3339(occurred_at)
            .map_err(|_| {
                fail(envelope.error(
                    "occurred_at",
                    format!("'{occurred_at}' is not an RFC 3339 timestamp"),
                ))
            })?
            .with_timezone(&Utc);
        let correlation_id = envelope
            .opt_key("correlation_id", |raw| {
                crate::ids::check_key(raw).map(|()| raw.to_string())
            })
            .map_err(fail)?;
        let data = envelope.obj("data").map_err(fail)?;
        let data = EventData::parse(event_type, &data).map_err(fail)?;
        Ok(Event {
            id,
            source: source.to_string(),
            event_type,
            schema_version,
            occurred_at,
            correlation_id,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn approved_entry(hours: Value) -> Value {
        json!({
            "id": "psa-1", "source": "psa", "type": "time_entry.approved", "schema_version": 1,
            "occurred_at": "2026-03-04T17:02:11Z",
            "data": { "entry_id": "T-1", "worker_id": "W-1", "project_code": "P-1",
                      "work_date": "2026-03-04", "hours": hours, "billable": true }
        })
    }

    fn check(value: Value, expected: Result<&str, &str>) {
        let parsed = Event::parse(&value, |s| s == "psa");
        match (parsed, expected) {
            (Ok(event), Ok(canonical)) => assert_eq!(event.data.canonical_json(), canonical),
            (Err(error), Err(message)) => assert_eq!(error.to_string(), message),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn decimals_as_strings_or_numbers_give_the_same_canonical_data() {
        let canonical = r#"{"entry_id":"T-1","worker_id":"W-1","project_code":"P-1","work_date":"2026-03-04","hours":"7.5","billable":true,"role":null,"task":null}"#;
        check(approved_entry(json!("7.5")), Ok(canonical));
        check(
            approved_entry(serde_json::from_str("7.50").unwrap()),
            Ok(canonical),
        );
    }

    #[test]
    fn errors_name_the_field() {
        check(
            approved_entry(json!(true)),
            Err("data.hours: expected a decimal number (string or number), got true"),
        );
        let mut unknown = approved_entry(json!("1"));
        unknown["type"] = json!("time_entry.deleted");
        check(
            unknown,
            Err("type: 'time_entry.deleted' is not an event type of schema version 1"),
        );
        let mut missing = approved_entry(json!("1"));
        missing["data"].as_object_mut().unwrap().remove("work_date");
        check(missing, Err("data.work_date: is required"));
        let mut source = approved_entry(json!("1"));
        source["source"] = json!("sap");
        check(source, Err("source: 'sap' is not a configured system"));
        check(json!([1]), Err(": expected an object, got an array"));
        let mut version = approved_entry(json!("1"));
        version["schema_version"] = json!(2);
        check(
            version,
            Err("schema_version: version 2 is not supported; this hub reads version 1"),
        );
    }

    #[test]
    fn every_type_name_round_trips() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[ -~]{0,12}".prop_map(Value::String),
            Just(json!("2026-03-04")),
            Just(json!("7.5")),
            Just(json!("EUR")),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn valid() -> Value {
        json!({
            "id": "psa-1", "source": "psa", "type": "time_entry.approved", "schema_version": 1,
            "occurred_at": "2026-03-04T17:02:11Z",
            "data": { "entry_id": "T-1", "worker_id": "W-1", "project_code": "P-1",
                      "work_date": "2026-03-04", "hours": "7.5", "billable": true }
        })
    }

    proptest! {
        #[test]
        fn any_json_parses_or_names_a_field(value in any_json()) {
            if let Err(error) = Event::parse(&value, |_| true) {
                prop_assert!(!error.error.problem.is_empty());
            }
        }

        #[test]
        fn a_valid_event_with_one_field_replaced_parses_or_names_that_field(
            field in prop::sample::select(vec!["id", "type", "schema_version", "occurred_at", "data",
                "data.entry_id", "data.worker_id", "data.project_code", "data.work_date", "data.hours", "data.billable"]),
            replacement in any_json(),
        ) {
            let mut event = valid();
            match field.split_once('.') {
                Some((outer, inner)) => event[outer][inner] = replacement,
                None => event[field] = replacement,
            }
            if let Err(error) = Event::parse(&event, |_| true) {
                prop_assert!(error.error.field.starts_with(field), "{} does not name {field}", error);
            }
        }
    }
}

/// The stored form of every event type reads back as the same record: a hub that restarts
/// rebuilds its memory from these texts, so one that did not parse would stop the start.
#[cfg(test)]
mod round_trip {
    use super::*;
    use crate::Currency;
    use crate::ids::*;
    use chrono::NaiveDate;
    use proptest::option;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn key<T: std::fmt::Debug>(parse: fn(&str) -> Result<T, String>) -> impl Strategy<Value = T> {
        "[A-Z]{1,3}-[0-9]{1,6}".prop_map(move |s| parse(&s).expect("a valid key"))
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z][a-z_]{0,11}"
    }

    fn date() -> impl Strategy<Value = NaiveDate> {
        (0i64..4_000).prop_map(|days| {
            NaiveDate::from_ymd_opt(2020, 1, 1).expect("a date") + chrono::Duration::days(days)
        })
    }

    fn period() -> impl Strategy<Value = (NaiveDate, Option<NaiveDate>)> {
        (date(), option::of(0i64..900))
            .prop_map(|(from, days)| (from, days.map(|d| from + chrono::Duration::days(d))))
    }

    fn currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec!["EUR", "USD", "JPY", "BHD", "CHF"])
            .prop_map(|c| Currency::parse(c).expect("a currency"))
    }

    /// A decimal below 10^12 with at most `places` decimal places, above zero if `positive`.
    fn decimal(places: u32, positive: bool) -> impl Strategy<Value = Decimal> {
        (0i64..1_000_000_000_000, 0..=places).prop_map(move |(units, scale)| {
            let units = if positive { units.max(1) } else { units };
            Decimal::new(units, scale).normalize()
        })
    }

    fn customer() -> impl Strategy<Value = Customer> {
        (
            key(CustomerId::parse),
            label(),
            option::of(label()),
            "[A-Z]{2}",
            currency(),
        )
            .prop_map(
                |(customer_id, legal_name, tax_id, country, currency)| Customer {
                    customer_id,
                    legal_name,
                    tax_id,
                    country,
                    currency,
                },
            )
    }

    fn milestones() -> impl Strategy<Value = Vec<MilestoneTerm>> {
        prop::collection::vec(
            (key(MilestoneId::parse), label(), decimal(2, true)).prop_map(
                |(milestone_id, name, amount)| MilestoneTerm {
                    milestone_id,
                    name,
                    amount,
                },
            ),
            1..4,
        )
    }

    fn contract() -> impl Strategy<Value = Contract> {
        (
            key(ContractId::parse),
            prop::sample::select(vec![
                BillingModel::TimeAndMaterials,
                BillingModel::FixedFee,
                BillingModel::CappedTm,
            ]),
            currency(),
            key(RateCardId::parse),
            option::of(decimal(2, true)),
            option::of(milestones()),
            period(),
        )
            .prop_map(
                |(
                    contract_id,
                    billing_model,
                    currency,
                    rate_card_id,
                    cap,
                    milestones,
                    (start, end),
                )| {
                    let cap = match billing_model {
                        BillingModel::CappedTm => cap.or(Some(Decimal::from(1000))),
                        _ => cap,
                    };
                    let mut milestones = milestones.unwrap_or_default();
                    if billing_model != BillingModel::FixedFee && milestones.len() > 2 {
                        milestones.clear();
                    }
                    if billing_model == BillingModel::FixedFee && milestones.is_empty() {
                        milestones.push(MilestoneTerm {
                            milestone_id: MilestoneId::parse("M-1").expect("a key"),
                            name: "kickoff".into(),
                            amount: Decimal::from(500),
                        });
                    }
                    Contract {
                        contract_id,
                        billing_model,
                        currency,
                        rate_card_id,
                        cap,
                        milestones,
                        start,
                        end,
                        // Round-trips whether set or not.
                        bill_overtime: cap.is_some(),
                    }
                },
            )
    }

    fn project() -> impl Strategy<Value = Project> {
        (key(ProjectCode::parse), label(), label(), label(), label()).prop_map(
            |(project_code, name, legal_entity, region, service_line)| Project {
                project_code,
                name,
                legal_entity,
                region,
                service_line,
            },
        )
    }

    fn worker_change() -> impl Strategy<Value = WorkerChange> {
        let kinds = vec![
            WorkerChangeKind::Hired,
            WorkerChangeKind::Transferred,
            WorkerChangeKind::LeaveStarted,
            WorkerChangeKind::LeaveEnded,
            WorkerChangeKind::Terminated,
        ];
        (
            prop::sample::select(kinds),
            key(WorkerId::parse),
            date(),
            option::of(label()),
            option::of(label()),
            option::of(label()),
            option::of(label()),
            option::of(label()),
            option::of(key(WorkerId::parse)),
            option::of("[A-Za-z ]{1,20}"),
            option::of("[a-z]{1,8}@example\\.com"),
        )
            .prop_map(
                |(
                    kind,
                    worker_id,
                    effective_date,
                    le,
                    region,
                    cc,
                    role,
                    grade,
                    manager,
                    name,
                    email,
                )| {
                    let hired = kind == WorkerChangeKind::Hired;
                    WorkerChange {
                        kind,
                        worker_id,
                        effective_date,
                        legal_entity: if hired {
                            le.or(Some("DE01".into()))
                        } else {
                            le
                        },
                        region: if hired {
                            region.or(Some("emea".into()))
                        } else {
                            region
                        },
                        cost_center: cc,
                        role: if hired {
                            role.or(Some("consultant".into()))
                        } else {
                            role
                        },
                        grade,
                        manager_id: manager,
                        classification: hired.then_some(Classification::Contractor),
                        name,
                        email,
                    }
                },
            )
    }

    fn rate_card() -> impl Strategy<Value = RateCard> {
        let line = (label(), label(), decimal(6, false), period()).prop_map(
            |(role, region, rate, (valid_from, valid_to))| RateLine {
                role,
                region,
                rate,
                valid_from,
                valid_to,
            },
        );
        (
            key(RateCardId::parse),
            currency(),
            prop::collection::vec(line, 0..4),
        )
            .prop_map(|(rate_card_id, currency, rates)| RateCard {
                rate_card_id,
                currency,
                rates,
            })
    }

    fn cost_rate() -> impl Strategy<Value = CostRate> {
        let subject = prop_oneof![
            key(WorkerId::parse).prop_map(CostSubject::Worker),
            label().prop_map(CostSubject::Grade),
        ];
        (subject, currency(), decimal(6, false), period()).prop_map(
            |(subject, currency, hourly_cost, (valid_from, valid_to))| CostRate {
                subject,
                currency,
                hourly_cost,
                valid_from,
                valid_to,
            },
        )
    }

    fn fx_rate() -> impl Strategy<Value = FxRate> {
        (decimal(12, true), date(), label()).prop_map(|(rate, valid_on, source)| FxRate {
            from: Currency::parse("EUR").expect("EUR"),
            to: Currency::parse("USD").expect("USD"),
            rate,
            valid_on,
            source,
        })
    }

    fn assignment() -> impl Strategy<Value = Assignment> {
        let states = vec![
            AssignmentState::Tentative,
            AssignmentState::Soft,
            AssignmentState::Hard,
            AssignmentState::Approved,
            AssignmentState::Cancelled,
        ];
        (
            key(AssignmentId::parse),
            any::<u32>(),
            key(WorkerId::parse),
            key(ProjectCode::parse),
            label(),
            date(),
            0i64..400,
            decimal(2, false),
            prop::sample::select(states),
        )
            .prop_map(
                |(
                    assignment_id,
                    version,
                    worker_id,
                    project_code,
                    role,
                    start,
                    days,
                    hours,
                    state,
                )| {
                    Assignment {
                        assignment_id,
                        version,
                        worker_id,
                        project_code,
                        role,
                        start,
                        end: start + chrono::Duration::days(days),
                        hours,
                        state,
                    }
                },
            )
    }

    fn time_entry() -> impl Strategy<Value = TimeEntry> {
        (
            key(EntryId::parse),
            key(WorkerId::parse),
            key(ProjectCode::parse),
            date(),
            1i64..=240_000,
            any::<bool>(),
            option::of(label()),
            option::of(label()),
        )
            .prop_map(
                |(entry_id, worker_id, project_code, work_date, units, billable, role, task)| {
                    TimeEntry {
                        entry_id,
                        worker_id,
                        project_code,
                        work_date,
                        hours: Decimal::new(units, 4).normalize(),
                        billable,
                        role,
                        task,
                    }
                },
            )
    }

    fn expense() -> impl Strategy<Value = Expense> {
        (
            key(ExpenseId::parse),
            key(WorkerId::parse),
            key(ProjectCode::parse),
            date(),
            decimal(2, true),
            currency(),
            label(),
            any::<bool>(),
        )
            .prop_map(
                |(
                    expense_id,
                    worker_id,
                    project_code,
                    spent_on,
                    amount,
                    currency,
                    category,
                    billable,
                )| {
                    Expense {
                        expense_id,
                        worker_id,
                        project_code,
                        spent_on,
                        amount,
                        currency,
                        category,
                        billable,
                    }
                },
            )
    }

    fn any_data() -> impl Strategy<Value = EventData> {
        prop_oneof![
            customer().prop_map(EventData::Customer),
            (key(OpportunityId::parse), customer(), contract(), project()).prop_map(
                |(opportunity_id, customer, contract, project)| EventData::ClosedWon(Box::new(
                    ClosedWon {
                        opportunity_id,
                        customer,
                        contract,
                        project,
                    }
                ))
            ),
            (
                key(ContractId::parse),
                date(),
                option::of(key(RateCardId::parse)),
                option::of(decimal(2, true)),
                option::of(date()),
                option::of(milestones()),
            )
                .prop_filter_map(
                    "an amendment changes something",
                    |(contract_id, effective_from, rate_card_id, cap, end, milestones)| {
                        let amendment = ContractAmendment {
                            contract_id,
                            effective_from,
                            rate_card_id,
                            cap,
                            end,
                            milestones,
                        };
                        let changes = amendment.rate_card_id.is_some()
                            || amendment.cap.is_some()
                            || amendment.end.is_some()
                            || amendment.milestones.is_some();
                        changes.then_some(EventData::ContractAmended(amendment))
                    }
                ),
            worker_change().prop_map(EventData::Worker),
            rate_card().prop_map(EventData::RateCard),
            cost_rate().prop_map(EventData::CostRate),
            fx_rate().prop_map(EventData::FxRate),
            assignment().prop_map(EventData::Assignment),
            (any::<bool>(), time_entry())
                .prop_map(|(approved, entry)| EventData::TimeEntry { approved, entry }),
            (any::<bool>(), expense())
                .prop_map(|(approved, expense)| EventData::Expense { approved, expense }),
            (key(MilestoneId::parse), key(ContractId::parse), date()).prop_map(
                |(milestone_id, contract_id, reached_on)| EventData::MilestoneReached(
                    MilestoneReached {
                        milestone_id,
                        contract_id,
                        reached_on,
                    }
                )
            ),
            (key(InvoiceId::parse), 0i64..2_000_000_000).prop_map(|(invoice_id, secs)| {
                EventData::InvoiceStatus(InvoiceStatusChange {
                    invoice_id: Some(invoice_id),
                    system_invoice_id: None,
                    status: InvoiceStatus::Sent,
                    at: DateTime::from_timestamp(secs, 0).expect("a time"),
                })
            }),
            (
                key(WorkerId::parse),
                2020i32..2030,
                1u32..=12,
                decimal(2, false),
                currency()
            )
                .prop_map(|(worker_id, year, month, gross_cost, currency)| {
                    EventData::PayrollActual(PayrollActual {
                        worker_id,
                        period: format!("{year}-{month:02}"),
                        gross_cost,
                        currency,
                    })
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

        #[test]
        fn the_canonical_form_of_every_event_parses_back_to_the_same_record(data in any_data()) {
            let text = data.canonical_json();
            let again = EventData::parse_canonical(data.event_type(), &text);
            prop_assert_eq!(again.as_ref(), Ok(&data), "{}", text);
            // And the text is a fixed point: canonical twice is canonical once.
            prop_assert_eq!(again.map(|d| d.canonical_json()), Ok(text));
        }
    }

    #[test]
    fn the_two_shapes_that_once_failed_read_back() {
        for (event_type, data) in [
            (
                EventType::CostRateUpserted,
                r#"{"worker_id":"W-1","currency":"EUR","hourly_cost":"60","valid_from":"2026-01-01"}"#,
            ),
            (
                EventType::CostRateUpserted,
                r#"{"grade":"G2","currency":"EUR","hourly_cost":"60","valid_from":"2026-01-01","valid_to":"2026-12-31"}"#,
            ),
            (
                EventType::ContractAmended,
                r#"{"contract_id":"K-1","effective_from":"2026-04-01","changes":{"end":"2026-12-31"}}"#,
            ),
        ] {
            let parsed = EventData::parse_canonical(event_type, data).unwrap();
            let text = parsed.canonical_json();
            assert_eq!(
                EventData::parse_canonical(event_type, &text),
                Ok(parsed),
                "{text}"
            );
        }
    }
}

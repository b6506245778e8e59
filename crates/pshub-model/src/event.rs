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
        };
        // Serialising these plain records cannot fail: no maps with non-string keys.
        value.unwrap_or_default()
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
            EventData::InvoiceStatus(r) => format!("invoice:{}", r.invoice_id),
            EventData::PayrollActual(r) => format!("payroll:{}:{}", r.worker_id, r.period),
        }
    }

    /// Whether the event changes the reference data that rules read (workers, rates,
    /// projects, assignments) rather than being work to bill.
    pub fn is_reference(&self) -> bool {
        !matches!(
            self,
            EventData::TimeEntry { .. } | EventData::Expense { .. }
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

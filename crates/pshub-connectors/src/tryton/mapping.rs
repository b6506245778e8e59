//! Between the hub's records and Tryton's: the names and keys the connector writes into
//! Tryton's own fields (Tryton has no idempotency keys, so every record carries the hub's
//! key in a field the connector can search), and Tryton's class-tagged values.

use chrono::{Datelike, NaiveDate};
use pshub_model::Currency;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Value, json};

/// A project's `comment`: the key it is found by.
pub fn project_comment(project_code: &str) -> String {
    format!("pshub:project:{project_code}")
}

/// A project's name as people see it in Tryton.
pub fn project_name(project_code: &str, name: &str) -> String {
    format!("{project_code} {name}")
}

/// The task that carries one bill rate: a rate change adds a task, so lines already booked
/// keep the list price they were booked at. The rate is written with at least the
/// currency's minor units, so `150`, `150.0` and `150.00` name one task.
pub fn task_name(role: &str, rate: Decimal, currency: Currency) -> String {
    let mut rate = rate.normalize();
    if rate.scale() < currency.minor_units() {
        rate.rescale(currency.minor_units());
    }
    format!("{role} @ {rate} {}", currency.code())
}

/// An employee's party `code`.
pub fn employee_code(worker_id: &str) -> String {
    format!("EMP-{worker_id}")
}

/// A timesheet line's `description`: the entry and the n-th posting of it.
pub fn line_description(entry_id: &str, posting: u32) -> String {
    format!("pshub:{entry_id}:{posting}")
}

/// An invoice's `reference`: one per project and month.
pub fn invoice_reference(project_code: &str, period: &str) -> String {
    format!("pshub:{project_code}:{period}")
}

/// The entry and posting of a line step's idempotency key
/// (`pshub:time_to_bill:post_line:<kind>:<entry_id>:<n>`).
pub fn line_of_key(key: &str) -> Option<(&str, u32)> {
    let (_, entry, posting) = entry_of_key(key)?;
    Some((entry, posting))
}

/// The entry kind, entry and posting of a line step's idempotency key.
pub fn entry_of_key(key: &str) -> Option<(&str, &str, u32)> {
    let rest = key.strip_prefix("pshub:time_to_bill:post_line:")?;
    let (kind, rest) = rest.split_once(':')?;
    let (entry, posting) = rest.rsplit_once(':')?;
    Some((kind, entry, posting.parse().ok()?))
}

/// The `description` a line's key is kept under in Tryton: `pshub:<entry_id>:<n>` for time,
/// `pshub:<kind>:<entry_id>:<n>` for the other kinds, so that an expense and a time entry of
/// the same id never share one.
pub fn description_of_key(key: &str) -> Option<String> {
    let (kind, entry, posting) = entry_of_key(key)?;
    Some(match kind {
        "time" => line_description(entry, posting),
        other => format!("pshub:{other}:{entry}:{posting}"),
    })
}

/// The key of a description (the inverse of [`description_of_key`]).
pub fn key_of_description(description: &str) -> Option<String> {
    let rest = description.strip_prefix("pshub:")?;
    let (rest, posting) = rest.rsplit_once(':')?;
    let (kind, entry) = match rest.split_once(':') {
        Some((kind @ ("expense" | "milestone"), entry)) => (kind, entry),
        _ => ("time", rest),
    };
    Some(format!(
        "pshub:time_to_bill:post_line:{kind}:{entry}:{posting}"
    ))
}

pub fn decimal(value: Decimal) -> Value {
    json!({"__class__": "Decimal", "decimal": value.normalize().to_string()})
}

pub fn date(value: NaiveDate) -> Value {
    json!({"__class__": "date", "year": value.year(), "month": value.month(), "day": value.day()})
}

/// Hours as Tryton's duration (a timedelta in seconds). Tryton keeps durations as floating
/// seconds; hours that are not whole seconds are sent to the microsecond, as Tryton keeps
/// them.
pub fn duration(hours: Decimal) -> Option<Value> {
    let seconds = hours.checked_mul(Decimal::from(3600))?;
    let value = if seconds.fract().is_zero() {
        json!(seconds.to_i64()?)
    } else {
        let micros = seconds.round_dp(6);
        serde_json::Number::from_f64(micros.to_string().parse::<f64>().ok()?).map(Value::Number)?
    };
    Some(json!({"__class__": "timedelta", "seconds": value}))
}

/// A Tryton date (`{"__class__": "date", "year": …}`).
pub fn read_date(value: &Value) -> Option<NaiveDate> {
    let part = |k: &str| value[k].as_i64();
    NaiveDate::from_ymd_opt(
        i32::try_from(part("year")?).ok()?,
        u32::try_from(part("month")?).ok()?,
        u32::try_from(part("day")?).ok()?,
    )
}

/// A Tryton Decimal (`{"__class__": "Decimal", "decimal": "55.00"}`) as a decimal.
pub fn read_decimal(value: &Value) -> Option<Decimal> {
    value["decimal"].as_str()?.parse().ok()
}

/// A Tryton duration as hours, to the second.
pub fn read_hours(value: &Value) -> Option<Decimal> {
    let seconds = value["seconds"].as_f64()?;
    let whole = Decimal::from_f64_retain(seconds.round())?;
    whole.checked_div(Decimal::from(3600))
}

/// The ids of a `search` or `create` answer.
pub fn ids(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn keys_and_names_follow_the_contract() {
        assert_eq!(project_comment("P-1"), "pshub:project:P-1");
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(
            task_name("consultant", d("150.00"), eur),
            "consultant @ 150.00 EUR"
        );
        assert_eq!(
            task_name("consultant", d("150"), eur),
            "consultant @ 150.00 EUR"
        );
        assert_eq!(task_name("lead", d("150.125"), eur), "lead @ 150.125 EUR");
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(task_name("lead", d("15000.0"), jpy), "lead @ 15000 JPY");
        assert_eq!(employee_code("W-00001"), "EMP-W-00001");
        assert_eq!(line_description("E-7", 2), "pshub:E-7:2");
        assert_eq!(invoice_reference("P-1", "2026-10"), "pshub:P-1:2026-10");
        assert_eq!(
            line_of_key("pshub:time_to_bill:post_line:time:TS-1:2"),
            Some(("TS-1", 2))
        );
        assert_eq!(
            line_of_key("pshub:time_to_bill:post_line:time:a:b:1"),
            Some(("a:b", 1))
        );
        assert_eq!(line_of_key("pshub:opportunity_to_project:erp:P-1"), None);
        for key in [
            "pshub:time_to_bill:post_line:time:TS-1:2",
            "pshub:time_to_bill:post_line:expense:TS-1:1",
            "pshub:time_to_bill:post_line:milestone:K-1:M-1:1",
        ] {
            let description = description_of_key(key).unwrap();
            assert_eq!(key_of_description(&description).as_deref(), Some(key));
        }
        assert_eq!(
            description_of_key("pshub:time_to_bill:post_line:expense:TS-1:1").as_deref(),
            Some("pshub:expense:TS-1:1")
        );
    }

    #[test]
    fn values_are_class_tagged() {
        assert_eq!(
            decimal(d("150.500")),
            json!({"__class__": "Decimal", "decimal": "150.5"})
        );
        assert_eq!(
            date(NaiveDate::from_ymd_opt(2026, 11, 5).unwrap()),
            json!({"__class__": "date", "year": 2026, "month": 11, "day": 5})
        );
        assert_eq!(duration(d("1.5")).unwrap()["seconds"], json!(5400));
        assert_eq!(duration(d("0.25")).unwrap()["seconds"], json!(900));
        assert_eq!(duration(d("0.0001")).unwrap()["seconds"], json!(0.36));
        let back = json!({"__class__": "timedelta", "seconds": 5400.0});
        assert_eq!(read_hours(&back), Some(d("1.5")));
        assert_eq!(
            read_decimal(&json!({"decimal": "225.00"})),
            Some(d("225.00"))
        );
    }
}

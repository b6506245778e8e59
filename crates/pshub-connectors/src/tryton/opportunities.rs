//! Won deals read from Tryton (`[connectors.<name>.opportunities]`): every `sale.opportunity`
//! that reaches `converted` or `won` is read by `write_date` from where the last read ended
//! (the same instant included: a record written in it later is not missed, and the hub
//! drops what it already has by event id), as a record that a mapping
//! (`tryton/opportunity.v1` unless configured) makes an `opportunity.closed_won` event of,
//! from the source that owns opportunities (`crm` by default), keyed
//! `tryton-opportunity-<id>`. What the opportunity does not hold (rate card, billing model,
//! legal entity, region, service line, a country where the party's address has none, the
//! project code's prefix) comes from the configuration, as the record's `terms`.

use super::Tryton;
use super::client::Rpc;
use super::config::Opportunities;
use super::mapping::read_date;
use chrono::NaiveDateTime;
use serde_json::{Value, json};

/// The fields of an opportunity the event is made of.
const FIELDS: [&str; 11] = [
    "number",
    "description",
    "state",
    "write_date",
    "start_date",
    "end_date",
    "currency.code",
    "party.code",
    "party.name",
    "party.tax_identifier.code",
    "party.addresses",
];

/// A Tryton datetime (`{"__class__": "datetime", …}`).
pub fn read_datetime(value: &Value) -> Option<NaiveDateTime> {
    let day = read_date(value)?;
    let part = |k: &str| value[k].as_u64().and_then(|n| u32::try_from(n).ok());
    day.and_hms_micro_opt(
        part("hour")?,
        part("minute")?,
        part("second")?,
        part("microsecond").unwrap_or(0),
    )
}

fn datetime(at: NaiveDateTime) -> Value {
    use chrono::{Datelike, Timelike};
    json!({"__class__": "datetime", "year": at.year(), "month": at.month(), "day": at.day(),
           "hour": at.hour(), "minute": at.minute(), "second": at.second(),
           "microsecond": at.nanosecond() / 1_000})
}

impl Tryton {
    /// The won deals written at or after `since` (all of them without), as the records
    /// their mapping reads, with the newest `write_date` among them.
    pub fn won_deals(
        &self,
        since: Option<NaiveDateTime>,
    ) -> Rpc<(Vec<Value>, Option<NaiveDateTime>)> {
        let Some(settings) = &self.config.opportunities else {
            return Ok((Vec::new(), since));
        };
        let mut domain = vec![json!(["state", "in", ["converted", "won"]])];
        if let Some(since) = since {
            domain.push(json!(["write_date", ">=", datetime(since)]));
        }
        let rows = self.search_read("sale.opportunity", Value::Array(domain), &FIELDS)?;
        let countries = self.countries(&rows)?;
        let newest = rows
            .iter()
            .filter_map(|r| read_datetime(&r["write_date"]))
            .max();
        let records = rows
            .iter()
            .map(|row| {
                let country = row["party."]["addresses"]
                    .as_array()
                    .and_then(|a| a.iter().find_map(|id| countries.get(&id.as_i64()?)))
                    .cloned()
                    .unwrap_or_else(|| settings.country.clone());
                won_record(row, settings, &country)
            })
            .collect();
        Ok((records, newest.max(since)))
    }

    /// The country code of each address of the opportunities' parties that has one.
    fn countries(&self, rows: &[Value]) -> Rpc<std::collections::HashMap<i64, String>> {
        let addresses: Vec<i64> = rows
            .iter()
            .flat_map(|r| super::mapping::ids(&r["party."]["addresses"]))
            .collect();
        if addresses.is_empty() {
            return Ok(Default::default());
        }
        let read = self.search_read(
            "party.address",
            json!([["id", "in", addresses]]),
            &["country.code"],
        )?;
        Ok(read
            .iter()
            .filter_map(|a| {
                Some((
                    a["id"].as_i64()?,
                    a["country."]["code"].as_str()?.to_string(),
                ))
            })
            .collect())
    }
}

/// One opportunity as the record its mapping reads: the row as Tryton answered it, with
/// Tryton's dates, datetimes and decimals as text (`2026-11-02`, `2026-11-02T09:30:00Z`,
/// `"55.00"`), the country of the party's address (or the configured one), and the terms
/// the configuration gives. The mapping (`tryton/opportunity.v1`) makes the event.
fn won_record(row: &Value, o: &Opportunities, country: &str) -> Value {
    json!({
        "opportunity": plain(row),
        "country": country,
        "terms": {
            "rate_card_id": o.rate_card_id, "billing_model": o.billing_model,
            "legal_entity": o.legal_entity, "region": o.region,
            "service_line": o.service_line, "project_prefix": o.project_prefix,
        },
    })
}

/// A value of Tryton's JSON-RPC with its typed objects as text: a date as `YYYY-MM-DD`, a
/// datetime (UTC, as Tryton keeps them) as RFC 3339, a Decimal as its digits.
pub fn plain(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(plain).collect()),
        Value::Object(object) => match object.get("__class__").and_then(Value::as_str) {
            Some("date") => read_date(value).map_or(Value::Null, |d| json!(d.to_string())),
            Some("datetime") => read_datetime(value).map_or(Value::Null, |at| {
                json!(
                    at.and_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                )
            }),
            Some("Decimal") => object.get("decimal").cloned().unwrap_or(Value::Null),
            _ => Value::Object(
                object
                    .iter()
                    .map(|(key, value)| (key.clone(), plain(value)))
                    .collect(),
            ),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opportunities() -> Opportunities {
        Opportunities {
            rate_card_id: "RC-T".into(),
            billing_model: "time_and_materials".into(),
            legal_entity: "DE01".into(),
            region: "emea".into(),
            service_line: "advisory".into(),
            country: "DE".into(),
            project_prefix: "TRY-".into(),
            mapping: super::super::config::OPPORTUNITY_MAPPING.into(),
        }
    }

    /// A row as Tryton's `search_read` answers it.
    fn row(start: Value) -> Value {
        json!({
            "id": 7, "number": "7", "description": "Audit", "state": "converted",
            "write_date": {"__class__": "datetime", "year": 2026, "month": 11, "day": 2,
                           "hour": 9, "minute": 30, "second": 0, "microsecond": 250000},
            "start_date": start, "end_date": null,
            "currency.": {"id": 1, "code": "EUR"},
            "party.": {"id": 3, "code": "C-1", "name": "Client", "addresses": [],
                       "tax_identifier.": null},
        })
    }

    fn mapped(record: &Value) -> Result<Option<Value>, pshub_model::FieldError> {
        let config = pshub_engine::Config::default();
        let mapping = config.mappings.get(&opportunities().mapping).unwrap();
        pshub_engine::hooks::canonical(mapping, "crm", record, |s| s == "crm")
            .map(|made| made.map(|(envelope, _)| envelope))
    }

    #[test]
    fn trytons_typed_values_are_read_as_text_and_a_deal_is_mapped() {
        let start = json!({"__class__": "date", "year": 2026, "month": 11, "day": 2});
        let record = won_record(&row(start), &opportunities(), "DE");
        assert_eq!(record["opportunity"]["start_date"], "2026-11-02");
        assert_eq!(
            record["opportunity"]["write_date"],
            "2026-11-02T09:30:00.250Z"
        );
        assert_eq!(
            plain(&json!({"__class__": "Decimal", "decimal": "55.00"})),
            json!("55.00")
        );
        let event = mapped(&record).unwrap().expect("a converted deal is taken");
        assert_eq!(event["id"], "tryton-opportunity-7");
        assert_eq!(event["data"]["project"]["project_code"], "TRY-7");
        assert_eq!(event["data"]["contract"]["start"], "2026-11-02");
        assert!(event["data"]["customer"].get("tax_id").is_none());
    }

    #[test]
    fn a_deal_without_a_start_date_or_a_number_is_refused_naming_the_field() {
        let record = won_record(&row(Value::Null), &opportunities(), "DE");
        let error = mapped(&record).unwrap_err();
        assert_eq!(error.field, "data.contract.start", "{error:?}");
        assert!(error.problem.contains("tryton/opportunity v1"), "{error:?}");
        // No number: no code made of the prefix alone, which every such deal would share.
        let start = json!({"__class__": "date", "year": 2026, "month": 11, "day": 2});
        let mut numberless = row(start);
        numberless["number"] = Value::Null;
        let error = mapped(&won_record(&numberless, &opportunities(), "DE")).unwrap_err();
        assert_eq!(error.field, "data.opportunity_id", "{error:?}");
    }
}

//! Won deals read from Tryton (`[connectors.<name>.opportunities]`): every `sale.opportunity`
//! that reaches `converted` or `won` becomes an `opportunity.closed_won` event from the
//! source that owns opportunities (`crm` by default), keyed `tryton-opportunity-<id>`, read
//! by `write_date` from where the last read ended (the same instant included: a record
//! written in it later is not missed, and the hub drops what it already has by event id).
//! What the opportunity does not hold (rate card, billing model, legal entity, region,
//! service line, a country where the party's address has none) comes from the
//! configuration; the project code is `project_prefix` and the opportunity's number.

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
    /// The won deals written at or after `since` (all of them without), as events from
    /// `source`, with the newest `write_date` among them.
    pub fn won_deals(
        &self,
        since: Option<NaiveDateTime>,
        source: &str,
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
        let events = rows
            .iter()
            .filter_map(|row| {
                let country = row["party."]["addresses"]
                    .as_array()
                    .and_then(|a| a.iter().find_map(|id| countries.get(&id.as_i64()?)))
                    .cloned()
                    .unwrap_or_else(|| settings.country.clone());
                closed_won(row, settings, &country, source)
            })
            .collect();
        Ok((events, newest.max(since)))
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

/// One opportunity as the hub's closed-won event; `None` when it lacks what a deal needs
/// (a number, a start date, a currency).
fn closed_won(row: &Value, o: &Opportunities, country: &str, source: &str) -> Option<Value> {
    let id = row["id"].as_i64()?;
    let number = row["number"].as_str()?;
    let code = format!("{}{number}", o.project_prefix);
    let start = read_date(&row["start_date"])?;
    let end = read_date(&row["end_date"]);
    let currency = row["currency."]["code"].as_str()?;
    let party = &row["party."];
    let customer_id = party["code"]
        .as_str()
        .map_or_else(|| format!("TRYTON-PARTY-{}", party["id"]), str::to_string);
    let written = read_datetime(&row["write_date"])?;
    let at = written
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let name = row["description"]
        .as_str()
        .filter(|d| !d.trim().is_empty())
        .map_or_else(|| format!("Opportunity {number}"), str::to_string);
    let mut customer = json!({
        "customer_id": customer_id, "legal_name": party["name"], "country": country,
        "currency": currency,
    });
    if let Some(tax_id) = party["tax_identifier."]["code"].as_str() {
        customer["tax_id"] = json!(tax_id);
    }
    Some(json!({
        "id": format!("tryton-opportunity-{id}"),
        "source": source,
        "type": "opportunity.closed_won",
        "schema_version": 1,
        "occurred_at": at,
        "data": {
            "opportunity_id": format!("TRYTON-OPP-{number}"),
            "customer": customer,
            "contract": {
                "contract_id": format!("K-{code}"), "billing_model": o.billing_model,
                "currency": currency, "rate_card_id": o.rate_card_id,
                "start": start.to_string(), "end": end.map(|d| d.to_string()),
            },
            "project": {
                "project_code": code, "name": name, "legal_entity": o.legal_entity,
                "region": o.region, "service_line": o.service_line,
            },
        },
    }))
}

//! What Tryton's project invoicing does not make from timesheets: expense and milestone
//! lines, and the credit of a reversal whose timesheet line is already invoiced (and so
//! locked). Each is a standalone customer invoice line (`account.invoice.line` without an
//! invoice yet) with the configured product, its `description` the hub's key
//! (`pshub:<entry_id>:<n>`) and its `note` the project and date
//! (`pshub:<project_code>:<YYYY-MM-DD>`); the period's invoice takes every such line of the
//! project dated up to its end when it is made, so an expense or a milestone is on the
//! invoice of its month, and a credit on the next invoice.

use super::client::{Rpc, RpcError};
use super::mapping::{decimal, ids, read_decimal};
use super::{Tryton, lock, refused};
use chrono::NaiveDate;
use pshub_engine::ports::LinePosting;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The `note` of a standalone line: its project and date.
pub fn line_note(project_code: &str, day: NaiveDate) -> String {
    format!("pshub:{project_code}:{day}")
}

/// The project and date of a standalone line's note.
pub fn note_of(note: &str) -> Option<(&str, NaiveDate)> {
    let (project, day) = note.strip_prefix("pshub:")?.rsplit_once(':')?;
    Some((project, day.parse().ok()?))
}

/// An answer's id for a standalone line, told apart from a timesheet line's plain id.
pub fn standalone_id(id: i64) -> String {
    format!("invoice_line:{id}")
}

pub fn standalone_of(erp_id: &str) -> Option<i64> {
    erp_id.strip_prefix("invoice_line:")?.parse().ok()
}

/// A standalone line to make: `quantity` of `product` at `unit_price` for the project,
/// dated `day`.
pub(super) struct Standalone<'a> {
    pub project: i64,
    pub project_code: &'a str,
    pub product: &'a str,
    pub quantity: Decimal,
    pub unit_price: Decimal,
    pub day: NaiveDate,
    pub description: &'a str,
}

/// A product as an invoice line needs it: its id, unit and revenue account.
#[derive(Debug, Clone, Copy)]
pub(super) struct Billed {
    pub product: i64,
    pub unit: i64,
    pub account: i64,
}

impl Tryton {
    /// The product named `name` with its unit and revenue account, read once.
    pub(super) fn billed(&self, name: &str) -> Rpc<Billed> {
        if let Some(billed) = lock(&self.known).billed.get(name) {
            return Ok(*billed);
        }
        let rows = self.search_read(
            "product.product",
            json!([["name", "=", name]]),
            &["default_uom", "template.account_category.account_revenue"],
        )?;
        let Some(row) = rows.first() else {
            return refused(format!(
                "Tryton has no product named '{name}'; create it as in the accounting baseline, or name another in the connector's configuration"
            ));
        };
        let (Some(product), Some(unit), Some(account)) = (
            row["id"].as_i64(),
            row["default_uom"].as_i64(),
            row["template."]["account_category."]["account_revenue"].as_i64(),
        ) else {
            return refused(format!(
                "product '{name}' has no unit or no revenue account in Tryton"
            ));
        };
        let billed = Billed {
            product,
            unit,
            account,
        };
        lock(&self.known).billed.insert(name.to_string(), billed);
        Ok(billed)
    }

    /// The values of a standalone line.
    pub(super) fn standalone_values(&self, line: Standalone<'_>) -> Rpc<Value> {
        let Standalone {
            project,
            project_code,
            product,
            quantity,
            unit_price,
            day,
            description,
        } = line;
        let billed = self.billed(product)?;
        let party = self.party_of(project)?;
        let company = self.client.company()?;
        let currency = self.company_currency()?.0;
        Ok(json!({
            "type": "line",
            "invoice_type": "out",
            "party": party,
            "company": company,
            "currency": currency,
            "product": billed.product,
            "unit": billed.unit,
            "account": billed.account,
            "quantity": quantity.to_string().parse::<f64>().ok(),
            "unit_price": decimal(unit_price),
            "description": description,
            "note": line_note(project_code, day),
        }))
    }

    /// An expense or a milestone as a standalone line with its product: one unit at the
    /// line's amount (in the company's currency, as every line posted to Tryton).
    pub(super) fn charge_values(&self, line: &LinePosting, description: &str) -> Rpc<Value> {
        self.in_company_currency(&line.project_code, line.currency.code())?;
        let Some(project) = self.project(&line.project_code)? else {
            return refused(format!(
                "project {} is not in Tryton: its provisioning has not reached it",
                line.project_code
            ));
        };
        let product = match line.kind {
            "milestone" => self.config.milestone_product.clone(),
            _ => self.config.expense_product.clone(),
        };
        self.standalone_values(Standalone {
            project,
            project_code: &line.project_code,
            product: &product,
            quantity: Decimal::ONE,
            unit_price: line.amount,
            day: line.date,
            description,
        })
    }

    /// The credit of a reversal whose timesheet line is on an invoice: the same hours at the
    /// same task price, negative, on the project's next invoice.
    pub(super) fn credit_values(
        &self,
        reversal: &LinePosting,
        original: i64,
        description: &str,
    ) -> Rpc<Value> {
        let read = self.client.model(
            "timesheet.line",
            "read",
            vec![json!([original]), json!(["duration", "work"])],
        )?;
        let row = read
            .get(0)
            .ok_or_else(|| RpcError::User(format!("timesheet line {original} is gone")))?;
        let hours = super::mapping::read_hours(&row["duration"]).unwrap_or(reversal.quantity.abs());
        let tasks = self.search_read(
            "project.work",
            json!([["timesheet_works", "in", [row["work"].clone()]]]),
            &["list_price"],
        )?;
        let price = tasks
            .first()
            .and_then(|t| read_decimal(&t["list_price"]))
            .unwrap_or(reversal.rate);
        let Some(project) = self.project(&reversal.project_code)? else {
            return refused(format!(
                "project {} is not in Tryton",
                reversal.project_code
            ));
        };
        let product = self.config.product.clone();
        self.standalone_values(Standalone {
            project,
            project_code: &reversal.project_code,
            product: &product,
            quantity: -hours,
            unit_price: price,
            day: reversal.date,
            description,
        })
    }

    /// Withdraws a standalone line: deleted while it is on no invoice, else credited on the
    /// next one.
    pub(super) fn reverse_standalone(&self, original: i64) -> Rpc<Option<String>> {
        let read = self.search_read(
            "account.invoice.line",
            json!([["id", "=", original]]),
            &["invoice", "quantity", "unit_price", "product.name"],
        )?;
        let Some(row) = read.first() else {
            return Ok(Some(format!("deleted:{}", standalone_id(original))));
        };
        if row["invoice"].is_null() {
            self.client
                .model("account.invoice.line", "delete", vec![json!([original])])?;
            return Ok(Some(format!("deleted:{}", standalone_id(original))));
        }
        Ok(None)
    }

    /// The credit of an invoiced standalone line: the same, negative.
    pub(super) fn standalone_credit_values(
        &self,
        reversal: &LinePosting,
        original: i64,
        description: &str,
    ) -> Rpc<Value> {
        let read = self.search_read(
            "account.invoice.line",
            json!([["id", "=", original]]),
            &["quantity", "unit_price", "product.name"],
        )?;
        let row = read
            .first()
            .ok_or_else(|| RpcError::User(format!("invoice line {original} is gone")))?;
        let quantity = row["quantity"]
            .as_f64()
            .and_then(|q| Decimal::try_from(q).ok())
            .unwrap_or(Decimal::ONE);
        let price = read_decimal(&row["unit_price"]).unwrap_or(reversal.amount.abs());
        let product = row["product."]["name"]
            .as_str()
            .unwrap_or(&self.config.expense_product)
            .to_string();
        let Some(project) = self.project(&reversal.project_code)? else {
            return refused(format!(
                "project {} is not in Tryton",
                reversal.project_code
            ));
        };
        self.standalone_values(Standalone {
            project,
            project_code: &reversal.project_code,
            product: &product,
            quantity: -quantity,
            unit_price: price,
            day: reversal.date,
            description,
        })
    }

    /// The project's standalone lines on no invoice yet, dated up to `up_to`.
    pub(super) fn open_standalone(&self, project_code: &str, up_to: NaiveDate) -> Rpc<Vec<i64>> {
        let rows = self.search_read(
            "account.invoice.line",
            json!([
                ["invoice", "=", null],
                ["note", "like", format!("pshub:{project_code}:%")]
            ]),
            &["note"],
        )?;
        Ok(rows
            .iter()
            .filter(|r| {
                r["note"]
                    .as_str()
                    .and_then(note_of)
                    .is_some_and(|(code, day)| code == project_code && day <= up_to)
            })
            .filter_map(|r| r["id"].as_i64())
            .collect())
    }

    /// A draft without the hub's reference that holds one of the project's standalone
    /// lines: made by an invoicing pass that a crash stopped before the reference.
    pub(super) fn standalone_orphan(&self, project_code: &str) -> Rpc<Option<i64>> {
        let rows = self.search_read(
            "account.invoice.line",
            json!([
                ["note", "like", format!("pshub:{project_code}:%")],
                ["invoice.state", "=", "draft"],
                ["invoice.reference", "=", null]
            ]),
            &["invoice"],
        )?;
        Ok(rows.iter().find_map(|r| r["invoice"].as_i64()))
    }

    /// The (project, date) of every standalone line of the hub's on no invoice yet.
    pub(super) fn open_standalone_days(&self) -> Rpc<Vec<(String, NaiveDate)>> {
        let rows = self.search_read(
            "account.invoice.line",
            json!([["invoice", "=", null], ["note", "like", "pshub:%"]]),
            &["note"],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let (code, day) = note_of(r["note"].as_str()?)?;
                Some((code.to_string(), day))
            })
            .collect())
    }

    /// A draft customer invoice for the project's party, for a period whose only lines are
    /// standalone ones (project invoicing makes an invoice from timesheets only): made with
    /// its reference and its lines in one call, so a crash leaves no draft to find.
    pub(super) fn new_invoice(&self, project: i64, reference: &str, lines: &[i64]) -> Rpc<i64> {
        let party = self.party_of(project)?;
        let parties = self.search_read(
            "party.party",
            json!([["id", "=", party]]),
            &["addresses", "account_receivable"],
        )?;
        let row = parties
            .first()
            .ok_or_else(|| RpcError::User(format!("party {party} is gone")))?;
        let address = ids(&row["addresses"]).first().copied();
        // The party's receivable account, else the company's default.
        let receivable = match row["account_receivable"].as_i64() {
            Some(account) => account,
            None => {
                let read = self.search_read(
                    "account.configuration",
                    json!([]),
                    &["default_account_receivable"],
                )?;
                read.first()
                    .and_then(|c| c["default_account_receivable"].as_i64())
                    .ok_or_else(|| {
                        RpcError::User(
                            "Tryton has no default receivable account (account configuration)"
                                .into(),
                        )
                    })?
            }
        };
        let journals = self.search("account.journal", json!([["type", "=", "revenue"]]))?;
        let values = json!({
            "type": "out",
            "party": party,
            "invoice_address": address,
            "company": self.client.company()?,
            "currency": self.company_currency()?.0,
            "account": receivable,
            "journal": journals.first(),
            "reference": reference,
            "lines": [["add", lines]],
        });
        self.create("account.invoice", vec![values])?
            .first()
            .copied()
            .ok_or_else(|| RpcError::Unknown("no id for the invoice".into()))
    }

    /// Puts standalone lines on a draft invoice.
    pub(super) fn attach(&self, invoice: i64, lines: &[i64]) -> Rpc<()> {
        if lines.is_empty() {
            return Ok(());
        }
        self.client.model(
            "account.invoice",
            "write",
            vec![json!([invoice]), json!({"lines": [["add", lines]]})],
        )?;
        Ok(())
    }

    /// The party of a project, read once per project.
    fn party_of(&self, project: i64) -> Rpc<i64> {
        if let Some(&party) = lock(&self.known).parties.get(&project) {
            return Ok(party);
        }
        let read = self.client.model(
            "project.work",
            "read",
            vec![json!([project]), json!(["party"])],
        )?;
        let party = read[0]["party"]
            .as_i64()
            .ok_or_else(|| RpcError::User(format!("project {project} has no party in Tryton")))?;
        lock(&self.known).parties.insert(project, party);
        Ok(party)
    }
}

/// A standalone line as its read-back record (as a timesheet line's, in `mod.rs`): a
/// negative quantity is a credit, the reversal of its line.
pub(super) fn read_back_standalone(row: &Value, currency: &str) -> Option<Value> {
    let description = row["description"].as_str()?;
    let key = super::mapping::key_of_description(description)?;
    let (kind, entry, posting) = super::mapping::entry_of_key(&key)?;
    let (project, day) = note_of(row["note"].as_str()?)?;
    let quantity = Decimal::try_from(row["quantity"].as_f64()?)
        .ok()?
        .round_dp(6);
    let price = read_decimal(&row["unit_price"])?;
    let amount = quantity.checked_mul(price)?.round_dp(2);
    let kind = if quantity.is_sign_negative() {
        "reversal"
    } else {
        kind
    };
    Some(json!({
        "id": standalone_id(row["id"].as_i64()?), "idempotency_key": key, "kind": kind,
        "source_id": entry, "posting": posting, "project_code": project, "worker_id": "",
        "date": day.to_string(), "quantity": quantity.normalize().to_string(),
        "rate": price.normalize().to_string(), "rate_currency": currency,
        "amount": amount.normalize().to_string(), "currency": currency,
        "invoice": row["invoice"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_and_ids_read_back() {
        let day = NaiveDate::from_ymd_opt(2026, 10, 3).unwrap();
        assert_eq!(note_of(&line_note("P-1", day)), Some(("P-1", day)));
        assert_eq!(note_of(&line_note("P:1", day)), Some(("P:1", day)));
        assert_eq!(standalone_of(&standalone_id(7)), Some(7));
        assert_eq!(standalone_of("7"), None);
    }
}

//! Invoices through Tryton's own project invoicing, one per project and calendar month
//! (`[connectors.<name>.invoicing]`), and invoice states read back for the hub.
//!
//! A period is invoiced once it has ended (by the hub's clock, in UTC) and nothing was
//! posted to it for `after_idle`: the project's `project_invoice_timesheet_up_to` is set
//! to the period's last day and Tryton invoices every line not yet invoiced up to it. The
//! invoice's `reference` is `pshub:<project_code>:<YYYY-MM>`, written before it is posted,
//! so a crash between create and post posts the same draft; a draft that a crash left
//! without its reference is found again through its lines. A line posted after its period
//! was invoiced waits for the next period that is not, so a closed period never gets a
//! second invoice. Expenses, milestones and credits are standalone invoice lines
//! (`invoice_lines`) that the period's invoice takes when it is made.

use super::client::{Rpc, RpcError};
use super::mapping::{date, ids, invoice_reference, read_decimal};
use super::{Tryton, lock};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Instant;

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

impl Period {
    pub fn of(day: NaiveDate) -> Self {
        Period {
            year: day.year(),
            month: day.month(),
        }
    }

    /// `YYYY-MM`, checked.
    pub fn parse(text: &str) -> Option<Self> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let period = Period {
            year: year.parse().ok()?,
            month: month.parse().ok()?,
        };
        period.first_day().map(|_| period)
    }

    pub fn first_day(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }

    pub fn next(&self) -> Self {
        if self.month == 12 {
            Period {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Period {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn last_day(&self) -> Option<NaiveDate> {
        self.next().first_day()?.pred_opt()
    }

    /// Whether the period is over on `today`.
    pub fn ended_by(&self, today: NaiveDate) -> bool {
        self.last_day().is_some_and(|last| last < today)
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// An invoice as Tryton holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub id: i64,
    pub reference: String,
    /// `draft`, `validated`, `posted`, `paid` or `cancelled`.
    pub state: String,
    pub number: Option<String>,
    pub untaxed_amount: Decimal,
}

impl Invoice {
    fn read(row: &Value) -> Option<Self> {
        Some(Invoice {
            id: row["id"].as_i64()?,
            reference: row["reference"].as_str().unwrap_or_default().to_string(),
            state: row["state"].as_str()?.to_string(),
            number: row["number"].as_str().map(str::to_string),
            untaxed_amount: read_decimal(&row["untaxed_amount"]).unwrap_or_default(),
        })
    }

    /// The project and period its reference names.
    pub fn period(&self) -> Option<(&str, Period)> {
        let rest = self.reference.strip_prefix("pshub:")?;
        let (project, period) = rest.rsplit_once(':')?;
        Some((project, Period::parse(period)?))
    }
}

/// Whether the hub still holds a line of the project (first) dated up to the day (second)
/// that has not reached the ERP.
pub type Pending<'a> = &'a dyn Fn(&str, NaiveDate) -> bool;

const INVOICE_FIELDS: [&str; 5] = ["reference", "state", "number", "untaxed_amount", "id"];

impl Tryton {
    /// Notes that a line of `project_code` dated `day` went to Tryton now.
    pub(super) fn touched(&self, project_code: &str, day: NaiveDate) {
        lock(&self.activity).insert((project_code.to_string(), Period::of(day)), Instant::now());
    }

    /// The invoice whose reference is `pshub:<project>:<period>`, if Tryton has one.
    pub fn invoice_of(&self, project_code: &str, period: Period) -> Rpc<Option<Invoice>> {
        let reference = invoice_reference(project_code, &period.to_string());
        let rows = self.search_read(
            "account.invoice",
            json!([["reference", "=", reference], ["type", "=", "out"]]),
            &INVOICE_FIELDS,
        )?;
        Ok(rows.iter().find_map(Invoice::read))
    }

    /// Invoices the project's lines up to the end of `period`: answers the invoice (found
    /// again, or made and posted), or `None` when nothing is left to invoice.
    pub fn invoice_period(&self, project_code: &str, period: Period) -> Rpc<Option<Invoice>> {
        let Some(project) = self.project(project_code)? else {
            return Err(RpcError::User(format!(
                "project {project_code} is not in Tryton"
            )));
        };
        let Some(up_to) = period.last_day() else {
            return Err(RpcError::User(format!("{period} is not a period")));
        };
        let reference = invoice_reference(project_code, &period.to_string());
        let standalone = self.open_standalone(project_code, up_to)?;
        if let Some(invoice) = self.invoice_of(project_code, period)? {
            // A draft that a crash left before it was posted still takes what is open.
            if invoice.state == "draft" {
                self.attach(invoice.id, &standalone)?;
            }
            return self.finish(invoice).map(Some);
        }
        let lines = self.lines_up_to(project, up_to)?;
        // A draft that a crash left before its reference was written.
        let orphan = lines.iter().find_map(|line| {
            let invoice = &line["invoice_line."]["invoice."];
            (invoice["reference"].is_null() && invoice["state"] == "draft")
                .then(|| invoice["id"].as_i64())
                .flatten()
        });
        let open = lines
            .iter()
            .find(|l| l["invoice_line"].is_null())
            .and_then(|l| l["id"].as_i64());
        let orphan = match orphan {
            Some(id) => Some(id),
            None => self.standalone_orphan(project_code)?,
        };
        let invoice = match (orphan, open) {
            (Some(id), _) => id,
            // Only expenses, milestones or credits: an invoice of their own.
            (None, None) if !standalone.is_empty() => {
                self.new_invoice(project, &reference, &standalone)?
            }
            (None, None) => return Ok(None),
            (None, Some(open)) => {
                self.client.model(
                    "project.work",
                    "write",
                    vec![
                        json!([project]),
                        json!({"project_invoice_timesheet_up_to": date(up_to)}),
                    ],
                )?;
                self.client
                    .model("project.work", "invoice", vec![json!([project])])?;
                let read = self.client.model(
                    "timesheet.line",
                    "read",
                    vec![json!([open]), json!(["invoice_line.invoice"])],
                )?;
                read[0]["invoice_line."]["invoice"].as_i64().ok_or_else(|| {
                    RpcError::Unknown(format!(
                        "Tryton invoiced project {project_code} up to {up_to}, and line {open} is on no invoice"
                    ))
                })?
            }
        };
        self.attach(invoice, &standalone)?;
        self.client.model(
            "account.invoice",
            "write",
            vec![json!([invoice]), json!({"reference": reference})],
        )?;
        let invoice = self
            .invoice_of(project_code, period)?
            .ok_or_else(|| RpcError::Unknown(format!("invoice {invoice} lost its reference")))?;
        self.finish(invoice).map(Some)
    }

    /// Posts a draft when the configuration says so.
    fn finish(&self, invoice: Invoice) -> Rpc<Invoice> {
        if !(self.config.invoicing.post && matches!(invoice.state.as_str(), "draft" | "validated"))
        {
            return Ok(invoice);
        }
        self.client
            .model("account.invoice", "post", vec![json!([invoice.id])])?;
        let rows = self.search_read(
            "account.invoice",
            json!([["id", "=", invoice.id]]),
            &INVOICE_FIELDS,
        )?;
        rows.iter()
            .find_map(Invoice::read)
            .ok_or_else(|| RpcError::Unknown(format!("invoice {} is gone", invoice.id)))
    }

    /// The project's timesheet lines dated up to `up_to`, with their invoices.
    fn lines_up_to(&self, project: i64, up_to: NaiveDate) -> Rpc<Vec<Value>> {
        let works = self.search_read(
            "project.work",
            json!(["OR", [["parent", "=", project]], [["id", "=", project]]]),
            &["timesheet_works"],
        )?;
        let works: Vec<i64> = works
            .iter()
            .flat_map(|w| ids(&w["timesheet_works"]))
            .collect();
        self.search_read(
            "timesheet.line",
            json!([["work", "in", works], ["date", "<=", date(up_to)]]),
            &[
                "invoice_line",
                "invoice_line.invoice.reference",
                "invoice_line.invoice.state",
            ],
        )
    }

    /// The periods to invoice on `today`: ended, with lines posted to them, nothing
    /// posted for `after_idle`, and no line of the project dated up to the period's end
    /// still on its way (`pending`, the hub's word). A period that has its invoice hands
    /// its late lines to the next one.
    pub fn due_periods(
        &self,
        today: NaiveDate,
        pending: Pending<'_>,
    ) -> Rpc<Vec<(String, Period)>> {
        let idle = self.config.invoicing.after_idle;
        let candidates: Vec<((String, Period), Instant)> = lock(&self.activity)
            .iter()
            .map(|(key, at)| (key.clone(), *at))
            .collect();
        let mut due = Vec::new();
        let mut seen = HashSet::new();
        for ((code, posted_in), at) in candidates {
            if at.elapsed() < idle || !posted_in.ended_by(today) {
                continue;
            }
            let mut period = posted_in;
            while period.ended_by(today) && self.invoice_of(&code, period)?.is_some() {
                period = period.next();
            }
            if period.ended_by(today) && period.last_day().is_some_and(|last| pending(&code, last))
            {
                // Waits for the hub to post what it still holds for the project.
                continue;
            }
            let mut activity = lock(&self.activity);
            let key = (code.clone(), posted_in);
            if activity.get(&key) == Some(&at) {
                activity.remove(&key);
            }
            if !period.ended_by(today) {
                // Late lines wait for the next period to end.
                activity.entry((code, period)).or_insert(at);
            } else if seen.insert((code.clone(), period)) {
                due.push((code, period));
            }
        }
        Ok(due)
    }

    /// After a start: the periods with lines not yet invoiced, dated before `before`, as
    /// if just posted and idle since, so that the next pass invoices them.
    pub fn recover_activity(&self, before: NaiveDate) -> Rpc<usize> {
        let open = self.open_lines(None, before.pred_opt().unwrap_or(before))?;
        let long_ago = Instant::now()
            .checked_sub(self.config.invoicing.after_idle)
            .unwrap_or_else(Instant::now);
        let mut activity = lock(&self.activity);
        for key in &open {
            activity.entry(key.clone()).or_insert(long_ago);
        }
        Ok(open.len())
    }

    /// One pass of invoicing on `today`: each due period, with what came of it.
    pub fn invoice_due(
        &self,
        today: NaiveDate,
        pending: Pending<'_>,
    ) -> Vec<(String, Period, Rpc<Option<Invoice>>)> {
        let due = match self.due_periods(today, pending) {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(
                    error = error.message(),
                    "cannot read what is due for invoicing"
                );
                return Vec::new();
            }
        };
        due.into_iter()
            .map(|(code, period)| {
                let result = self.invoice_period(&code, period);
                match &result {
                    Ok(Some(invoice)) => tracing::info!(project = %code, %period, invoice = invoice.id, state = %invoice.state, "invoiced in Tryton"),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(project = %code, %period, error = error.message(), "invoicing failed; tried again later");
                        // Tried again on a later pass.
                        lock(&self.activity).insert((code.clone(), period), Instant::now());
                    }
                }
                (code, period, result)
            })
            .collect()
    }

    /// Every project with lines not yet invoiced dated in `period`: what `pshub invoice
    /// run --period` invoices.
    pub fn projects_with_open_lines(&self, period: Period) -> Rpc<Vec<String>> {
        let (Some(first), Some(last)) = (period.first_day(), period.last_day()) else {
            return Ok(Vec::new());
        };
        let mut codes: Vec<String> = self
            .open_lines(Some(first), last)?
            .into_iter()
            .map(|(code, _)| code)
            .collect();
        codes.dedup();
        Ok(codes)
    }

    /// The (project, period) pairs of the hub's lines not yet invoiced, dated from `from`
    /// (or any time) to `to`.
    fn open_lines(&self, from: Option<NaiveDate>, to: NaiveDate) -> Rpc<Vec<(String, Period)>> {
        let mut domain = vec![
            json!(["invoice_line", "=", null]),
            json!(["date", "<=", date(to)]),
            json!(["description", "like", "pshub:%"]),
        ];
        if let Some(from) = from {
            domain.push(json!(["date", ">=", date(from)]));
        }
        let rows = self.search_read(
            "timesheet.line",
            Value::Array(domain),
            &["date", "work.origin"],
        )?;
        let task_of = |r: &Value| -> Option<i64> {
            r["work."]["origin"]
                .as_str()?
                .strip_prefix("project.work,")?
                .parse()
                .ok()
        };
        let mut tasks: Vec<i64> = rows.iter().filter_map(task_of).collect();
        tasks.sort_unstable();
        tasks.dedup();
        let works = self.search_read(
            "project.work",
            json!([["id", "in", tasks]]),
            &["comment", "parent.comment"],
        )?;
        let code_of: std::collections::HashMap<i64, String> = works
            .iter()
            .filter_map(|w| {
                let comment = w["parent."]["comment"]
                    .as_str()
                    .or_else(|| w["comment"].as_str())?;
                Some((
                    w["id"].as_i64()?,
                    comment.strip_prefix("pshub:project:")?.to_string(),
                ))
            })
            .collect();
        let mut open: Vec<(String, Period)> = rows
            .iter()
            .filter_map(|r| {
                let code = code_of.get(&task_of(r)?)?;
                let day = NaiveDate::from_ymd_opt(
                    r["date"]["year"].as_i64()? as i32,
                    r["date"]["month"].as_u64()? as u32,
                    r["date"]["day"].as_u64()? as u32,
                )?;
                Some((code.clone(), Period::of(day)))
            })
            .collect();
        for (code, day) in self.open_standalone_days()? {
            if day <= to && from.is_none_or(|from| day >= from) {
                open.push((code, Period::of(day)));
            }
        }
        open.sort();
        open.dedup();
        Ok(open)
    }

    /// The hub's invoices in Tryton (reference `pshub:…`), in the order they were made.
    pub fn hub_invoices(&self) -> Rpc<Vec<Invoice>> {
        let rows = self.search_read(
            "account.invoice",
            json!([["reference", "like", "pshub:%"], ["type", "=", "out"]]),
            &INVOICE_FIELDS,
        )?;
        let mut invoices: Vec<Invoice> = rows.iter().filter_map(Invoice::read).collect();
        invoices.sort_by_key(|i| i.id);
        Ok(invoices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_end_and_follow_each_other() {
        let october = Period::parse("2026-10").unwrap();
        assert_eq!(october.last_day(), NaiveDate::from_ymd_opt(2026, 10, 31));
        assert_eq!(
            Period::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        assert!(october.ended_by(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()));
        assert!(!october.ended_by(NaiveDate::from_ymd_opt(2026, 10, 31).unwrap()));
        for bad in ["2026-13", "2026-1", "26-10", "2026/10", ""] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
        let invoice = Invoice {
            id: 1,
            reference: "pshub:P-1:2026-10".into(),
            state: "posted".into(),
            number: None,
            untaxed_amount: Decimal::ZERO,
        };
        assert_eq!(invoice.period(), Some(("P-1", october)));
    }
}

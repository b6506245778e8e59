//! The legacy ERP's table: one row per invoice line the hub posted, keyed by the hub's
//! idempotency key, which the table keeps unique, so a repeated insert changes nothing.
//! The legacy system sets `status` (`received` as inserted, then `posted`, `sent`, `paid`
//! or `void`), `invoice_number`, and the watermark column when it changes a row.

use pshub_engine::ports::LinePosting;
use serde_json::{Value, json};

/// The table as the connector creates it when it is missing (a legacy system's own table
/// has at least these columns).
pub fn create_table(table: &str, watermark: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            id BIGSERIAL PRIMARY KEY,
            idempotency_key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            source_id TEXT NOT NULL,
            posting INTEGER NOT NULL,
            project_code TEXT NOT NULL,
            worker_id TEXT NOT NULL,
            work_date DATE NOT NULL,
            quantity NUMERIC NOT NULL,
            rate NUMERIC NOT NULL,
            rate_currency TEXT NOT NULL,
            amount NUMERIC NOT NULL,
            currency TEXT NOT NULL,
            tax_code TEXT NOT NULL,
            reverses BIGINT,
            status TEXT NOT NULL DEFAULT 'received',
            invoice_number TEXT,
            {watermark} TIMESTAMPTZ NOT NULL DEFAULT now()
        )"
    )
}

/// Inserts a batch of lines given as arrays; a key already there is left as it is.
pub fn insert_lines(table: &str) -> String {
    format!(
        "INSERT INTO {table} (idempotency_key, kind, source_id, posting, project_code, worker_id,
            work_date, quantity, rate, rate_currency, amount, currency, tax_code, reverses)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::text[],
            $6::text[], $7::date[], $8::numeric[], $9::numeric[], $10::text[], $11::numeric[],
            $12::text[], $13::text[], $14::bigint[])
         ON CONFLICT (idempotency_key) DO NOTHING"
    )
}

/// The ids of the keys the table holds.
pub fn ids_of_keys(table: &str) -> String {
    format!("SELECT idempotency_key, id FROM {table} WHERE idempotency_key = ANY($1)")
}

/// A page of lines by id, for read-back.
pub fn page(table: &str) -> String {
    format!(
        "SELECT id, idempotency_key, kind, source_id, posting, project_code, worker_id,
            work_date, quantity, rate, rate_currency, amount, currency, status, invoice_number
         FROM {table} WHERE id > $1 ORDER BY id LIMIT $2"
    )
}

/// Each project month's status changed since the watermark: the latest status of its lines
/// that the legacy system set, with the newest watermark of them.
pub fn statuses_since(table: &str, watermark: &str) -> String {
    format!(
        "SELECT project_code, to_char(work_date, 'YYYY-MM') AS period, status,
            max({watermark}) AS moved, max(invoice_number) AS invoice_number
         FROM {table}
         WHERE {watermark} >= $1 AND status IN ('posted', 'sent', 'paid', 'void')
         GROUP BY project_code, to_char(work_date, 'YYYY-MM'), status
         ORDER BY moved"
    )
}

/// The row id a line's answer names, as the hub keeps it.
pub fn line_id(id: i64) -> String {
    format!("legacy:{id}")
}

/// The row id of `reverses_erp_id` (`legacy:<id>`), when it is one of ours.
pub fn row_of(erp_id: &str) -> Option<i64> {
    erp_id.strip_prefix("legacy:")?.parse().ok()
}

/// A line as its read-back record: what the leakage and shadow reports compare.
#[allow(clippy::too_many_arguments)]
pub fn read_back_record(
    id: i64,
    key: &str,
    kind: &str,
    source_id: &str,
    posting: i32,
    project_code: &str,
    worker_id: &str,
    date: chrono::NaiveDate,
    quantity: rust_decimal::Decimal,
    rate: rust_decimal::Decimal,
    rate_currency: &str,
    amount: rust_decimal::Decimal,
    currency: &str,
    status: &str,
    invoice_number: Option<&str>,
) -> Value {
    json!({
        "id": line_id(id), "idempotency_key": key, "kind": kind, "source_id": source_id,
        "posting": posting, "project_code": project_code, "worker_id": worker_id,
        "date": date.to_string(), "quantity": quantity.normalize().to_string(),
        "rate": rate.normalize().to_string(), "rate_currency": rate_currency,
        "amount": amount.normalize().to_string(), "currency": currency, "status": status,
        "invoice": invoice_number,
    })
}

/// The arrays one insert of `lines` binds, column by column.
pub struct Columns {
    pub keys: Vec<String>,
    pub kinds: Vec<String>,
    pub sources: Vec<String>,
    pub postings: Vec<i32>,
    pub projects: Vec<String>,
    pub workers: Vec<String>,
    pub dates: Vec<chrono::NaiveDate>,
    pub quantities: Vec<rust_decimal::Decimal>,
    pub rates: Vec<rust_decimal::Decimal>,
    pub rate_currencies: Vec<String>,
    pub amounts: Vec<rust_decimal::Decimal>,
    pub currencies: Vec<String>,
    pub tax_codes: Vec<String>,
    pub reverses: Vec<Option<i64>>,
}

impl Columns {
    pub fn of(lines: &[&LinePosting]) -> Self {
        let col = |f: &dyn Fn(&LinePosting) -> String| lines.iter().map(|l| f(l)).collect();
        Columns {
            keys: col(&|l| l.idempotency_key.clone()),
            kinds: col(&|l| l.kind.to_string()),
            sources: col(&|l| l.source_id.clone()),
            postings: lines
                .iter()
                .map(|l| i32::try_from(l.posting).unwrap_or(i32::MAX))
                .collect(),
            projects: col(&|l| l.project_code.clone()),
            workers: col(&|l| l.worker_id.clone()),
            dates: lines.iter().map(|l| l.date).collect(),
            quantities: lines.iter().map(|l| l.quantity).collect(),
            rates: lines.iter().map(|l| l.rate).collect(),
            rate_currencies: col(&|l| l.rate_currency.to_string()),
            amounts: lines.iter().map(|l| l.amount).collect(),
            currencies: col(&|l| l.currency.to_string()),
            tax_codes: col(&|l| l.tax_code.clone()),
            reverses: lines
                .iter()
                .map(|l| l.reverses_erp_id.as_deref().and_then(row_of))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        assert_eq!(row_of(&line_id(42)), Some(42));
        assert_eq!(row_of("tryton:42"), None);
    }
}

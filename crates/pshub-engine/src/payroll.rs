//! Payroll files (PRODUCT.md 5.8): a CSV with a header row and the columns
//! `worker_id,period,gross_cost,currency` in any order (extra columns ignored), RFC 4180
//! quoting, LF or CRLF, an optional BOM. Every row is either an actual or a refusal that
//! names its physical line (the header is line 1); good rows load whatever the bad ones.
//!
//! Loading is one pass and one transaction ([`crate::store::Store::load_payroll`]); the cases
//! the actuals imply are opened by the hub afterwards
//! ([`crate::flows::payroll_costing`], with the figures of [`crate::costing`]).

use crate::error::EngineError;
use crate::store::*;
use pshub_model::Currency;
use pshub_model::decimal::parse_exact;
use rust_decimal::Decimal;

/// Why a file was not loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read as a payroll file (no header, a column missing).
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

type Result<T> = std::result::Result<T, LoadError>;

/// The columns a payroll file must have.
pub const COLUMNS: [&str; 4] = ["worker_id", "period", "gross_cost", "currency"];

/// One good row.
#[derive(Debug, Clone, PartialEq)]
pub struct PayrollRow {
    pub worker_id: String,
    pub period: String,
    pub gross_cost: Decimal,
    pub currency: Currency,
    pub line: u64,
}

/// A row refused: where, what it held, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub line: u64,
    pub raw: String,
    pub reason: String,
}

/// A file read: its good rows in file order and its refused ones.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct ParsedPayroll {
    /// Data rows (the header excluded; blank lines are not rows).
    pub rows: u64,
    pub good: Vec<PayrollRow>,
    pub rejected: Vec<RejectedRow>,
}

/// What a load stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub load_id: i64,
    pub rows: u64,
    pub loaded: u64,
    pub duplicates: u64,
    pub rejected: Vec<RejectedRow>,
}

impl LoadReport {
    /// `{load_id, rows, loaded, duplicates, rejected: [{line, reason, raw}]}`, as
    /// `POST /v1/payroll` and `pshub load payroll --json` answer it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "load_id": self.load_id,
            "rows": self.rows,
            "loaded": self.loaded,
            "duplicates": self.duplicates,
            "rejected": self.rejected.iter().map(|r| serde_json::json!({
                "line": r.line, "reason": r.reason, "raw": r.raw,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Checks a `YYYY-MM` month without allocating.
pub fn check_period(period: &str) -> std::result::Result<(), String> {
    let b = period.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    let month = || (b[5] - b'0') * 10 + (b[6] - b'0');
    if b.len() == 7
        && digits(&b[..4])
        && b[4] == b'-'
        && digits(&b[5..])
        && (1..=12).contains(&month())
    {
        Ok(())
    } else {
        Err(format!("period '{period}' is not a month (YYYY-MM)"))
    }
}

/// Checks one row's fields; answers the actual or why it is refused.
pub fn check_row(
    worker_id: &str,
    period: &str,
    gross_cost: &str,
    currency: &str,
) -> std::result::Result<(Decimal, Currency), String> {
    check_row_with(worker_id, period, gross_cost, currency, &mut None)
}

/// As [`check_row`], reusing the currency of the row before when it is the same code.
fn check_row_with(
    worker_id: &str,
    period: &str,
    gross_cost: &str,
    currency: &str,
    last_currency: &mut Option<Currency>,
) -> std::result::Result<(Decimal, Currency), String> {
    pshub_model::ids::check_key(worker_id).map_err(|e| format!("worker_id {e}"))?;
    check_period(period)?;
    let cost = match plain_decimal(gross_cost) {
        Some(cost) => cost,
        None => parse_exact(gross_cost).map_err(|e| format!("gross_cost {e}"))?,
    };
    if cost.is_sign_negative() && !cost.is_zero() {
        return Err(format!("gross_cost {gross_cost} is negative"));
    }
    pshub_model::decimal::Bounds::AMOUNT_OR_ZERO
        .check(cost)
        .map_err(|e| format!("gross_cost {e}"))?;
    let currency = match *last_currency {
        Some(last) if last.code() == currency => last,
        _ => Currency::parse(currency).map_err(|e| format!("currency {e}"))?,
    };
    *last_currency = Some(currency);
    Ok((cost, currency))
}

/// `123` or `123.45` (at most 15 digits before the point and 6 after), read without
/// allocating, as [`parse_exact`] would read it (trailing zeros dropped); anything else is
/// left to `parse_exact`.
fn plain_decimal(text: &str) -> Option<Decimal> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || whole.len() > 15 || fraction.len() > 6 {
        return None;
    }
    let mut mantissa: i64 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        mantissa = mantissa * 10 + i64::from(b - b'0');
    }
    let mut scale = fraction.len() as u32;
    while scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    Some(Decimal::new(mantissa, scale))
}

/// Reads a payroll file, handing each good row to `good` as it is read. Fails only when the
/// file cannot be read as one: no header, or a header without a required column. `name`
/// is for messages only. Answers the data rows and the refused ones.
pub fn read(
    name: &str,
    bytes: &[u8],
    good: &mut dyn FnMut(PayrollRow),
) -> Result<(u64, Vec<RejectedRow>)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let header_found = reader
        .read_byte_record(&mut record)
        .map_err(|e| LoadError::File(format!("{name}:1: {e}")))?;
    if !header_found {
        return Err(LoadError::File(format!(
            "{name}: the file is empty; a header row with {} is required",
            COLUMNS.join(",")
        )));
    }
    let mut at = [0usize; 4];
    for (slot, column) in at.iter_mut().zip(COLUMNS) {
        *slot = record
            .iter()
            .position(|h| h.trim_ascii() == column.as_bytes())
            .ok_or_else(|| {
                LoadError::File(format!(
                    "{name}:1: the header has no column '{column}' (it needs {})",
                    COLUMNS.join(",")
                ))
            })?;
    }
    let (mut rows, mut rejected) = (0, Vec::new());
    let mut last_currency = None;
    let mut start = reader.position().byte() as usize;
    let (mut line, mut counted) = (1u64, 0usize);
    loop {
        let read = reader.read_byte_record(&mut record);
        let end = reader.position().byte() as usize;
        // The physical line where the record starts, counted here: blank lines are skipped
        // and a quoted field may span lines.
        let mut begins = record
            .position()
            .map_or(start, |p| p.byte() as usize)
            .min(end);
        // The reader may place a record's start at the line feed ending the line before.
        while begins < end && matches!(bytes[begins], b'\r' | b'\n') {
            begins += 1;
        }
        line += bytes[counted..begins]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        counted = begins;
        let raw = || {
            String::from_utf8_lossy(&bytes[begins..end])
                .trim_end_matches(['\r', '\n'])
                .to_string()
        };
        match read {
            Ok(false) => break,
            Ok(true) if record.len() == 1 && record[0].is_empty() => {}
            Ok(true) => {
                rows += 1;
                match row_of(&record, &at, &mut last_currency) {
                    Ok((worker_id, period, gross_cost, currency)) => good(PayrollRow {
                        worker_id,
                        period,
                        gross_cost,
                        currency,
                        line,
                    }),
                    Err(reason) => rejected.push(RejectedRow {
                        line,
                        raw: raw(),
                        reason,
                    }),
                }
            }
            Err(error) => {
                rows += 1;
                rejected.push(RejectedRow {
                    line,
                    raw: raw(),
                    reason: format!("unreadable row: {error}"),
                });
            }
        }
        start = end;
    }
    Ok((rows, rejected))
}

/// Reads a whole payroll file into memory.
#[cfg(test)]
pub fn parse(name: &str, bytes: &[u8]) -> Result<ParsedPayroll> {
    let mut good = Vec::new();
    let (rows, rejected) = read(name, bytes, &mut |row| good.push(row))?;
    Ok(ParsedPayroll {
        rows,
        good,
        rejected,
    })
}

type Fields = (String, String, Decimal, Currency);

fn row_of(
    record: &csv::ByteRecord,
    at: &[usize; 4],
    last_currency: &mut Option<Currency>,
) -> std::result::Result<Fields, String> {
    let mut fields = [""; 4];
    for ((field, &i), column) in fields.iter_mut().zip(at).zip(COLUMNS) {
        let bytes = record
            .get(i)
            .ok_or_else(|| format!("{column} is missing (the row has {} fields)", record.len()))?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| format!("{column} is not valid UTF-8"))?;
        if text.is_empty() {
            return Err(format!("{column} is empty"));
        }
        *field = text;
    }
    let [worker_id, period, gross_cost, currency] = fields;
    let (cost, currency) = check_row_with(worker_id, period, gross_cost, currency, last_currency)?;
    Ok((worker_id.to_string(), period.to_string(), cost, currency))
}

/// Actuals go to the store in parts of this many rows while the rest of the file is read.
const PART_ROWS: usize = 16_384;

/// A quarantine row for a refused payroll row (its id is the store's to give).
fn quarantined(file: &str, row: &RejectedRow, now: &str) -> QuarantineRow {
    QuarantineRow {
        id: 0,
        source: Some("payroll".into()),
        event_id: None,
        raw: row.raw.clone(),
        field: "row".into(),
        reason: row.reason.clone(),
        received_at: now.to_string(),
        state: "open".into(),
        replayed_seq: None,
        version: 0,
        kind: QUARANTINE_PAYROLL_ROW.into(),
        file: Some(file.to_string()),
        line: Some(row.line),
    }
}

/// Reads, checks and stores a payroll file in one transaction: one thread reads and checks
/// rows while the store writes the parts already read. Answers what it stored.
pub fn load(store: &dyn Store, file: &str, bytes: &[u8], now: &str) -> Result<LoadReport> {
    let load_id = store.reserve_ids(IdKind::PayrollLoad, 1)?;
    let (send, parts) = std::sync::mpsc::sync_channel::<PayrollPart>(4);
    let load = PayrollLoad {
        load: PayrollLoadRow {
            id: load_id,
            file: file.to_string(),
            rows: 0,
            loaded: 0,
            duplicates: 0,
            rejected: 0,
            loaded_at: now.to_string(),
            checked: false,
        },
        parts: std::sync::Mutex::new(parts),
    };
    let (read, stored) = std::thread::scope(|scope| -> Result<_> {
        let reading = move || -> Result<Vec<RejectedRow>> {
            // In a file sorted by (period, worker), as payroll exports usually are, a key
            // that comes twice comes twice in a row; in another, it may have: the store
            // then counts what changed instead.
            let mut boundary: Option<(String, String)> = None;
            let mut repeats = false;
            let mut part = Vec::with_capacity(PART_ROWS);
            let mut sent = true;
            let (rows, rejected) = read(file, bytes, &mut |row| {
                if !repeats {
                    let before = part
                        .last()
                        .map(|r: &PayrollActualRow| (r.period.as_str(), r.worker_id.as_str()))
                        .or(boundary.as_ref().map(|(p, w)| (p.as_str(), w.as_str())));
                    repeats = before.is_some_and(|before| {
                        before >= (row.period.as_str(), row.worker_id.as_str())
                    });
                }
                part.push(PayrollActualRow {
                    worker_id: row.worker_id,
                    period: row.period,
                    gross_cost: row.gross_cost,
                    currency: row.currency,
                    load_id,
                    line: row.line,
                });
                if part.len() == PART_ROWS && sent {
                    boundary = part.last().map(|r| (r.period.clone(), r.worker_id.clone()));
                    let full = std::mem::replace(&mut part, Vec::with_capacity(PART_ROWS));
                    sent = send.send(PayrollPart::Actuals(full)).is_ok();
                }
            })?;
            if !part.is_empty() {
                let _ = send.send(PayrollPart::Actuals(part));
            }
            let end = PayrollPart::End {
                rows,
                rejected: rejected.iter().map(|r| quarantined(file, r, now)).collect(),
                repeats,
            };
            // The store is told the file ended only once it was read whole.
            let _ = send.send(end);
            Ok(rejected)
        };
        let reader = std::thread::Builder::new()
            .name("pshub-payroll-read".into())
            .spawn_scoped(scope, reading)
            .map_err(|e| LoadError::File(format!("{file}: cannot start reading: {e}")))?;
        let stored = store.load_payroll(load);
        let read = reader.join().unwrap_or_else(|_| {
            Err(LoadError::File(format!(
                "{file}: reading stopped on an internal error"
            )))
        });
        Ok((read, stored))
    })?;
    // A file that cannot be read is that error, whatever the store made of its absence.
    let rejected = read?;
    let row = stored?;
    Ok(LoadReport {
        load_id: row.id,
        rows: row.rows,
        loaded: row.loaded,
        duplicates: row.duplicates,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> ParsedPayroll {
        parse("p.csv", text.as_bytes()).unwrap()
    }

    #[test]
    fn columns_in_any_order_quotes_crlf_and_a_bom_are_read() {
        let text = "\u{feff}currency,extra,gross_cost,period,worker_id\r\nEUR,x,\"5,000.00\",2026-03,W1\r\nEUR,\"a \"\"b\"\"\",5000.50,2026-03,\"W2\"\r\n";
        let p = parsed(text);
        assert_eq!(p.rows, 2);
        assert_eq!(p.good.len(), 1);
        assert_eq!(p.good[0].worker_id, "W2");
        assert_eq!(p.good[0].gross_cost.to_string(), "5000.5");
        assert_eq!(p.good[0].line, 3);
        assert_eq!(p.rejected[0].line, 2);
        assert!(
            p.rejected[0].reason.contains("gross_cost"),
            "{:?}",
            p.rejected
        );
        assert_eq!(p.rejected[0].raw, "EUR,x,\"5,000.00\",2026-03,W1");
    }

    #[test]
    fn lines_are_physical_even_when_a_quoted_field_spans_two() {
        let text = "worker_id,period,gross_cost,currency,note\nW1,2026-03,10,EUR,\"two\nlines\"\nW2,2026-3,10,EUR,\n";
        let p = parsed(text);
        assert_eq!(p.good[0].line, 2);
        assert_eq!(p.rejected[0].line, 4);
        assert!(p.rejected[0].reason.contains("period"));
    }

    #[test]
    fn every_kind_of_bad_row_names_its_problem() {
        let text = "worker_id,period,gross_cost,currency\n\
                    ,2026-03,10,EUR\n\
                    W1,2026-13,10,EUR\n\
                    W1,2026-03,-1,EUR\n\
                    W1,2026-03,ten,EUR\n\
                    W1,2026-03,10,EURO\n\
                    W1,2026-03,10,XYZ\n\
                    W1,2026-03\n";
        let p = parsed(text);
        let reasons: Vec<(u64, &str)> = p
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(p.good.len(), 0);
        assert_eq!(reasons.len(), 7, "{reasons:?}");
        assert!(reasons[0].1.starts_with("worker_id"));
        assert!(reasons[1].1.contains("not a month"));
        assert!(reasons[2].1.contains("negative"));
        assert!(reasons[3].1.contains("not a decimal"));
        assert!(reasons[4].1.contains("currency"));
        assert!(reasons[5].1.contains("ISO 4217"));
        assert!(reasons[6].1.contains("missing"));
        assert_eq!(
            reasons.iter().map(|r| r.0).collect::<Vec<_>>(),
            [2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn a_header_without_a_column_is_an_error_for_the_whole_file() {
        let error = parse("p.csv", b"worker_id,period,currency\nW1,2026-03,EUR\n").unwrap_err();
        assert!(error.to_string().contains("p.csv:1"), "{error}");
        assert!(error.to_string().contains("gross_cost"), "{error}");
        assert!(parse("p.csv", b"").is_err());
    }
}

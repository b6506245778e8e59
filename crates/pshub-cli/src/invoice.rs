//! `pshub invoice run --period YYYY-MM`: what the Tryton connector's invoicing does when a
//! period has ended, on demand. Every project with lines in the period not yet invoiced gets
//! its one invoice for the period (found again when it exists), posted when
//! `[connectors.<name>.invoicing] post` says so.

use crate::wiring;
use anyhow::{Context, Result, bail};
use pshub_connectors::tryton::invoicing::Period;
use serde_json::json;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The month to invoice, YYYY-MM; it must have ended (UTC).
    #[arg(long, value_parser = parse_period)]
    period: Period,
    /// Print the invoices as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_period(raw: &str) -> Result<Period, String> {
    Period::parse(raw).ok_or_else(|| format!("'{raw}' is not a month (YYYY-MM)"))
}

pub fn run(args: RunArgs) -> Result<()> {
    wiring::init_logging("warn")?;
    let tryton = wiring::configured_tryton(None)?.context(
        "invoice run: the configuration names no ERP to invoice in; give --config FILE with [erp] connector and its [connectors.<name>] (examples/tryton.toml)",
    )?;
    let today = chrono::Utc::now().date_naive();
    if !args.period.ended_by(today) {
        bail!(
            "--period {}: the month has not ended (today is {today}, UTC); a period is invoiced once, after its end",
            args.period
        );
    }
    let projects = tryton
        .projects_with_open_lines(args.period)
        .map_err(|e| anyhow::anyhow!("cannot read Tryton's open lines: {}", e.message()))?;
    let mut answers = Vec::new();
    let mut failed = 0;
    for code in &projects {
        match tryton.invoice_period(code, args.period) {
            Ok(Some(invoice)) => {
                if !args.json {
                    println!(
                        "{code} {}: invoice {} {} {}, untaxed {}",
                        args.period,
                        invoice.id,
                        invoice.number.as_deref().unwrap_or("(no number)"),
                        invoice.state,
                        invoice.untaxed_amount
                    );
                }
                answers.push(json!({
                    "project_code": code, "period": args.period.to_string(), "invoice": invoice.id,
                    "reference": invoice.reference, "number": invoice.number, "state": invoice.state,
                    "untaxed_amount": invoice.untaxed_amount.to_string(),
                }));
            }
            Ok(None) => {}
            Err(error) => {
                failed += 1;
                eprintln!("{code} {}: {}", args.period, error.message());
                answers.push(json!({"project_code": code, "period": args.period.to_string(), "error": error.message()}));
            }
        }
    }
    if args.json {
        println!(
            "{}",
            json!({ "period": args.period.to_string(), "invoices": answers })
        );
    } else if projects.is_empty() {
        println!("{}: no lines left to invoice", args.period);
    }
    if failed > 0 {
        bail!("{failed} of {} projects were not invoiced", projects.len());
    }
    Ok(())
}

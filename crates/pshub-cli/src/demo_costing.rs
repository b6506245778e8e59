//! The demo's month beyond billing: the payroll file (a row per consultant near their
//! standard cost, some well above it, the contractor's row that payroll should not have
//! sent, two bad rows), loaded the way `pshub load payroll` loads it, and the revenue-leakage
//! report that ends the month.

use anyhow::{Context, Result};
use pshub_connectors::sandbox::SimulatedFirm;
use pshub_engine::Engine;
use pshub_engine::config::{Overtime, Region};
use pshub_engine::store::{CaseFilter, HoursFilter, Page};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::path::Path;

/// The region whose overtime rules the demo shows, unless the configuration has its own.
pub const OVERTIME_REGION: &str = "emea";

/// Overtime past 10 hours a day or 45 a week, costed at 1.5 and billed at 1.25.
pub fn overtime_rules() -> Region {
    Region {
        overtime: Some(Overtime {
            daily_hours: Some(Decimal::from(10)),
            weekly_hours: Some(Decimal::from(45)),
            cost_multiplier: Decimal::new(15, 1),
            bill_multiplier: Decimal::new(125, 2),
        }),
        ..Region::default()
    }
}

/// What payroll and leakage came to, for the summary.
pub struct MonthCost {
    pub file: String,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    pub rejected: Vec<String>,
    pub cost_variance_cases: u64,
    pub leakage: pshub_engine::leakage::Report,
}

/// Writes the month's payroll file into `dir`, loads it, has the hub open its cases, and
/// runs the leakage report.
pub fn run(
    engine: &Engine,
    firm: &SimulatedFirm,
    month: chrono::NaiveDate,
    dir: &Path,
) -> Result<MonthCost> {
    let period = month.format("%Y-%m").to_string();
    let (from, to) = pshub_engine::costing::month_range(&period).context("the demo's month")?;
    let mut csv = String::from("worker_id,period,gross_cost,currency\n");
    let month = pshub_engine::costing::by_worker(engine.read(|r| {
        r.worked_hours(&HoursFilter {
            from,
            to,
            worker_id: None,
            project_code: None,
        })
    })?);
    for (i, (worker, _, _)) in firm.staff().into_iter().enumerate() {
        let entries = month.get(worker).map_or(&[][..], Vec::as_slice);
        let standard: Decimal = engine.with_hub(|hub| {
            pshub_engine::costing::worker_month(hub.world(), engine.config(), worker, entries, None)
                .iter()
                .filter_map(|row| row.standard_cost)
                .sum()
        });
        // Most near standard (within 4%), every twelfth a quarter above it; no hours, a
        // month's salary all the same.
        let factor = if i % 12 == 5 {
            Decimal::new(125, 2)
        } else {
            Decimal::ONE + Decimal::new((i as i64 * 7) % 9 - 4, 2)
        };
        let gross = if standard.is_zero() {
            Decimal::from(4_000)
        } else {
            (standard * factor).round_dp(2)
        };
        csv.push_str(&format!("{worker},{period},{gross},EUR\n"));
    }
    csv.push_str(&format!("W-00001,{period},-120.00,EUR\n"));
    csv.push_str("W-00002,2026-3,5000.00,EUR\n");
    let path = dir.join(format!("payroll-{period}.csv"));
    std::fs::create_dir_all(dir).ok();
    std::fs::write(&path, &csv).with_context(|| format!("cannot write {}", path.display()))?;
    let name = path.display().to_string();
    let report = engine
        .load_payroll(&name, csv.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    engine.check_payroll().map_err(|e| anyhow::anyhow!("{e}"))?;
    let variance = CaseFilter {
        kind: Some(pshub_engine::flows::payroll_costing::COST_VARIANCE.into()),
        ..CaseFilter::default()
    };
    let cost_variance_cases = engine.read(|r| r.cases(&variance, Page::ALL))?.len() as u64;
    let leakage = engine.leakage(Some(&period))?;
    Ok(MonthCost {
        file: name.clone(),
        rows_loaded: report.loaded,
        rows_rejected: report.rejected.len() as u64,
        rejected: report
            .rejected
            .iter()
            .map(|r| format!("{name}:{}: {}", r.line, r.reason))
            .collect(),
        cost_variance_cases,
        leakage,
    })
}

/// The figures `demo --json` adds.
pub fn json_figures(cost: &MonthCost) -> Vec<(&'static str, Value)> {
    vec![
        ("payroll_rows_loaded", json!(cost.rows_loaded)),
        ("payroll_rows_rejected", json!(cost.rows_rejected)),
        ("cost_variance_cases", json!(cost.cost_variance_cases)),
        ("leakage", json!(cost.leakage.counts())),
        (
            "leakage_amounts",
            cost.leakage.summary_json()["amounts"].clone(),
        ),
    ]
}

/// The same, for people.
pub fn print(cost: &MonthCost) {
    println!(
        "\npayroll                  {} rows loaded from {}, {} refused:",
        cost.rows_loaded, cost.file, cost.rows_rejected
    );
    for line in &cost.rejected {
        println!("  {line}");
    }
    println!(
        "cost variance            {} finance cases past the threshold",
        cost.cost_variance_cases
    );
    println!("revenue leakage          (GET /v1/reports/leakage?period=...)");
    for line in cost.leakage.text_lines() {
        println!("  {line}");
    }
}

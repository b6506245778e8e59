//! `pshub reconcile ledger [--period YYYY-MM] --out DIR [--json]`: the revenue-leakage
//! report from the hub's own records against what its ERP holds (read back through the
//! ERP's port), written to `DIR/leakage.csv`, as `GET /v1/reports/leakage` gives it.

use crate::wiring::{self, StoreArgs};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct LedgerArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only lines and work dated in this month (YYYY-MM); else all of them.
    #[arg(long, value_name = "YYYY-MM")]
    pub period: Option<String>,
    /// Folder for leakage.csv (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print counts and amounts per kind as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: LedgerArgs) -> Result<()> {
    wiring::init_logging("warn")?;
    if let Some(period) = &args.period
        && let Err(why) = pshub_engine::payroll::check_period(period)
    {
        bail!("--period: {why}");
    }
    let wired = wiring::open(&args.store, wiring::config_from_env()?)?;
    let report = wired.engine.leakage(args.period.as_deref())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join("leakage.csv");
    std::fs::write(&path, pshub_engine::leakage::to_csv(&report))
        .with_context(|| format!("cannot write {}", path.display()))?;
    if args.json {
        println!("{}", report.summary_json());
    } else {
        println!(
            "{} lines in the hub, {} in the ERP; {}",
            report.hub_lines,
            report.erp_lines,
            path.display()
        );
        for line in report.text_lines() {
            println!("{line}");
        }
    }
    Ok(())
}

//! `pshub load payroll FILE.csv`: reads, checks and stores a payroll file in the store
//! named by `--data-dir` or `--store`, in one transaction (safe while `serve` runs on the
//! same store: its costing worker finds the load within a second and opens the cases it
//! implies). Bad rows are printed as `FILE:LINE: reason` and kept in quarantine; the good
//! ones load all the same, and the command exits 0 whenever the file could be read.

use crate::wiring::StoreArgs;
use anyhow::{Context, Result, bail};
use clap::Args;
use pshub_engine::payroll::{self, LoadError};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct PayrollArgs {
    /// The payroll file: a header row with worker_id,period,gross_cost,currency (any order).
    pub file: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the outcome as one JSON object (rows, loaded, duplicates, rejected).
    #[arg(long)]
    pub json: bool,
}

pub fn payroll(args: PayrollArgs) -> Result<()> {
    let name = args.file.display().to_string();
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read the payroll file {name}"))?;
    let store = args.store.open()?;
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("loading {name} ({} bytes)", bytes.len()));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let now = pshub_engine::flows::stamp(chrono::Utc::now());
    let report = match payroll::load(store.as_ref(), &name, &bytes, &now) {
        Ok(report) => report,
        Err(LoadError::File(message)) => bail!("{message}"),
        Err(LoadError::Engine(error)) => return Err(error.into()),
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let rejected = &report.rejected;
    for r in rejected {
        eprintln!("{name}:{}: {}", r.line, r.reason);
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!(
            "{name}: {} rows, {} loaded, {} duplicates, {} rejected (load {})",
            report.rows,
            report.loaded,
            report.duplicates,
            rejected.len(),
            report.load_id
        );
    }
    Ok(())
}

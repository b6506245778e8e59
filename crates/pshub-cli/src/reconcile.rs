//! `pshub reconcile`: what one system holds against another, from their exports.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pshub_reconcile::time::{self, Export, Kind, Report};
use serde_json::{Map, Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Subcommand)]
pub enum ReconcileCommand {
    /// Approved time in a PSA export against the time entries an ERP export holds.
    Time(TimeArgs),
    /// Revenue leakage: the hub's approved and posted work against what its ERP holds.
    Ledger(crate::ledger::LedgerArgs),
}

#[derive(Args)]
pub struct TimeArgs {
    /// The PSA's approved time: CSV with a header naming entry_id, worker_id, project_code,
    /// date, hours, amount and currency, in any order.
    #[arg(long, value_name = "PSA.csv")]
    psa: PathBuf,
    /// The ERP's time entries, with the same columns.
    #[arg(long, value_name = "ERP.csv")]
    erp: PathBuf,
    /// The folder to write differences.csv into (created when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Print the counts and amounts per kind as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(command: ReconcileCommand) -> Result<()> {
    match command {
        ReconcileCommand::Time(args) => reconcile_time(args),
        ReconcileCommand::Ledger(args) => crate::ledger::run(args),
    }
}

/// Reads an export and indexes it; and how long that took.
fn load(path: &Path) -> Result<(Export, f64)> {
    let started = Instant::now();
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let export = Export::read(path.display().to_string(), file, size)?;
    Ok((export, started.elapsed().as_secs_f64()))
}

/// How long each phase took, in seconds (in the JSON summary).
struct Phases {
    psa_read: f64,
    erp_read: f64,
    compare: f64,
    write: f64,
}

fn reconcile_time(args: TimeArgs) -> Result<()> {
    // The folder first, so that one that cannot be made fails before the work.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    // The two exports are read and indexed side by side, one per thread.
    let (psa, erp) = std::thread::scope(|scope| {
        let psa = scope.spawn(|| load(&args.psa));
        let erp = load(&args.erp);
        (psa.join().expect("the PSA reader panicked"), erp)
    });
    let ((psa, psa_read), (erp, erp_read)) = (psa?, erp?);

    let mut unreadable = 0;
    {
        let mut stderr = std::io::BufWriter::new(std::io::stderr().lock());
        for export in [&psa, &erp] {
            for row in export.unreadable() {
                writeln!(stderr, "{}:{}: {}", export.name(), row.line, row.reason)?;
            }
            unreadable += export.unreadable().len();
        }
        stderr.flush()?;
    }

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let report = time::reconcile(&psa, &erp, threads)?;
    let compare = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let path = args.out.join("differences.csv");
    let file =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    report
        .write_csv(std::io::BufWriter::with_capacity(1 << 20, file))
        .with_context(|| format!("cannot write {}", path.display()))?;
    let phases = Phases {
        psa_read,
        erp_read,
        compare,
        write: started.elapsed().as_secs_f64(),
    };

    if args.json {
        println!("{}", summary_json(&report, unreadable, &path, &phases));
    } else {
        print_summary(&report, unreadable, &path);
    }
    Ok(())
}

/// `{"counts": {kind: n}, "amounts": {kind: {currency: "decimal"}}, "rows": ..., ...}`.
fn summary_json(report: &Report, unreadable: usize, path: &Path, phases: &Phases) -> Value {
    let mut counts = Map::new();
    let mut amounts = Map::new();
    for kind in Kind::ALL {
        counts.insert(kind.name().into(), json!(report.count(kind)));
        if kind.carries_amount() {
            let per_currency: Map<String, Value> = report
                .amounts(kind)
                .iter()
                .map(|(currency, sum)| {
                    let currency = String::from_utf8_lossy(currency).into_owned();
                    (currency, Value::String(sum.to_string()))
                })
                .collect();
            amounts.insert(kind.name().into(), Value::Object(per_currency));
        }
    }
    json!({
        "counts": counts,
        "amounts": amounts,
        "rows": {"psa": report.psa_rows(), "erp": report.erp_rows()},
        "unreadable": unreadable,
        "differences": report.differences(),
        "out": path.display().to_string(),
        "seconds": {
            "psa_read": phases.psa_read,
            "erp_read": phases.erp_read,
            "compare": phases.compare,
            "write": phases.write,
        },
    })
}

fn print_summary(report: &Report, unreadable: usize, path: &Path) {
    println!(
        "{} PSA rows against {} ERP rows: {} differences, written to {}",
        report.psa_rows(),
        report.erp_rows(),
        report.differences(),
        path.display()
    );
    for kind in Kind::ALL {
        let amounts: Vec<String> = report
            .amounts(kind)
            .iter()
            .map(|(currency, sum)| format!("{} {sum}", String::from_utf8_lossy(currency)))
            .collect();
        let amounts = if amounts.is_empty() {
            String::new()
        } else {
            format!("  ({})", amounts.join(", "))
        };
        println!("  {:<15} {:>9}{amounts}", kind.name(), report.count(kind));
    }
    if unreadable > 0 {
        println!("  {unreadable} unreadable rows skipped (listed on standard error)");
    }
}

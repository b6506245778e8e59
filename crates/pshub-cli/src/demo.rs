//! `pshub demo`: one simulated month of a consulting firm through the real engine, the
//! embedded store and the sandbox ERP, then the API over the result.

use crate::serve::parse_listen;
use crate::wiring::StoreArgs;
use crate::{demo_costing, serve, token, wiring};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use pshub_api::Role;
use pshub_connectors::sandbox::{Faults, FirmSpec, SimulatedFirm, System};
use pshub_engine::retry::RetrySchedule;
use pshub_engine::store::{CaseFilter, Page};
use pshub_engine::summary::Summary;
use pshub_engine::{Acting, Actor, Engine};
use pshub_model::records::ExceptionState;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Print the summary and exit instead of serving the result.
    #[arg(long)]
    exit: bool,
    /// Print the summary as one JSON object (nothing else on standard output).
    #[arg(long)]
    json: bool,
    /// Address to serve on afterwards.
    #[arg(long, env = "PSHUB_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Folder of the store and the sandbox systems; by default a fresh folder under the
    /// system's temporary folder.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// The store (`sqlite:<path>` or `postgres://...`); by default the data folder's.
    #[arg(long, env = "PSHUB_STORE")]
    store: Option<String>,
    /// Consultants in the firm.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    workers: u32,
    /// About how many time entries and expenses the month has.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    entries: u32,
    /// Seed of the simulation; the same seed gives the same month.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// Submits events in batches, as a PSA would.
fn send_all(
    engine: &Engine,
    events: impl Iterator<Item = Value>,
    batch: usize,
    progress: &ProgressBar,
) -> Result<()> {
    let mut chunk = Vec::with_capacity(batch);
    for event in events {
        chunk.push(event);
        if chunk.len() == batch {
            progress.inc(chunk.len() as u64);
            engine
                .submit(std::mem::take(&mut chunk))
                .context("the engine refused a batch")?;
        }
    }
    if !chunk.is_empty() {
        progress.inc(chunk.len() as u64);
        engine.submit(chunk).context("the engine refused a batch")?;
    }
    Ok(())
}

/// Waits until the outbox has nothing pending (retries included).
fn settle(engine: &Engine) -> Result<()> {
    if !engine.settle(Duration::from_secs(120))? {
        anyhow::bail!("deliveries to the sandbox ERP did not finish within two minutes");
    }
    Ok(())
}

pub fn run(args: DemoArgs) -> Result<()> {
    wiring::init_logging("warn")?;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S-%3f");
        std::env::temp_dir().join(format!("pshub-demo-{stamp}"))
    });
    let store = StoreArgs::new(data_dir.clone(), args.store.clone());
    let mut config = wiring::config_from_env()?;
    config.max_daily_hours = config
        .max_daily_hours
        .or(Some(rust_decimal::Decimal::from(24)));
    // The demo's ERP fails 2% of calls; short delays let the retries finish in seconds.
    config.retry = RetrySchedule {
        delays: [10, 20, 50, 100, 200, 500]
            .into_iter()
            .map(Duration::from_millis)
            .collect(),
        retry_after_cap: Duration::from_secs(1),
    };
    config
        .regions
        .entry(demo_costing::OVERTIME_REGION.into())
        .or_insert_with(demo_costing::overtime_rules);
    let wired = wiring::open(&store, config)?;
    if let Some(sandbox) = wired.sandbox.in_process() {
        sandbox.set_system_faults(
            System::Erp,
            Faults {
                fail_per_million: 20_000,
                ..Faults::default()
            },
        );
    }
    let engine = wired.engine.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let workers = engine.spawn_delivery(stop.clone());

    let spec = FirmSpec {
        workers: args.workers as usize,
        entries: args.entries as usize,
        seed: args.seed,
        contracts: true,
        ..FirmSpec::default()
    };
    let firm = SimulatedFirm::new(spec.clone());
    let started = Instant::now();
    let reference = firm.reference_events();
    let hidden = args.json;
    let progress = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} events")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    progress.set_message("CRM, HRIS and ERP send reference data:");
    send_all(&engine, reference.into_iter(), 1_000, &progress)?;
    progress.set_message("the PSA sends approved time and expenses:");
    send_all(&engine, firm.work_events(), 500, &progress)?;
    engine.submit(firm.overtime_week())?;
    settle(&engine)?;

    // Finance notices the hole in the USD rate card, sends the fixed card and resolves its cases.
    engine.submit(vec![firm.rate_card_fix()])?;
    let filter = CaseFilter {
        kind: Some("missing_rate".into()),
        state: Some(ExceptionState::Open),
        ..CaseFilter::default()
    };
    let missing_rate = engine.read(|r| r.cases(&filter, Page::ALL))?;
    let acting = Acting {
        actor: Actor::system("demo finance team"),
        note: Some("rate card RC-USD fixed with the missing architect rate".into()),
    };
    let mut resumed = 0;
    for case in &missing_rate {
        if engine.resolve(case.id, &acting).is_ok() {
            resumed += 1;
        }
    }
    settle(&engine)?;
    // The month's invoices go out; the ERP reports them sent, paid, one disputed.
    engine.submit(firm.invoice_events())?;
    settle(&engine)?;
    // Payroll for the month comes in; the month ends with the leakage report.
    let cost = demo_costing::run(&engine, &firm, spec.month, &data_dir)?;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed();

    let summary = engine.read(|r| Summary::compute(r))?;
    if args.json {
        let mut json = summary.to_json();
        json["data_dir"] = Value::String(data_dir.display().to_string());
        json["resolved_after_rate_card_fix"] = Value::from(resumed);
        for (key, value) in month_figures(&engine)? {
            json[key] = value;
        }
        for (key, value) in demo_costing::json_figures(&cost) {
            json[key] = value;
        }
        json["seconds"] = Value::from(elapsed.as_secs_f64());
        println!("{json}");
    } else {
        print_summary(
            &summary,
            &spec,
            &store,
            resumed,
            missing_rate.len(),
            elapsed,
        );
        print_month(&month_figures(&engine)?, engine.config().margin_floor_pct);
        demo_costing::print(&cost);
    }
    if args.exit {
        return Ok(());
    }
    let admin = token::create_token(&store, Role::Admin, "demo")?;
    eprintln!(
        "\nserving the result on http://{} (Ctrl-C to stop); an admin token:\n{admin}",
        args.listen
    );
    eprintln!(
        "try: curl -H 'Authorization: Bearer {admin}' http://{}/v1/exceptions?owner=pmo",
        args.listen
    );
    serve::serve_engine(engine, wired.sandbox, wired.connectors, args.listen)
}

fn thousands(n: u64) -> String {
    group_digits(&n.to_string())
}

/// `1234567` as `1,234,567`.
fn group_digits(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount with its thousands grouped: `-1234567.50` as `-1,234,567.50`.
fn money(amount: rust_decimal::Decimal) -> String {
    let text = amount.abs().to_string();
    let (whole, fraction) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(w, f)| (w, Some(f)));
    let sign = if amount.is_sign_negative() && !amount.is_zero() {
        "-"
    } else {
        ""
    };
    match fraction {
        Some(fraction) => format!("{sign}{}.{fraction}", group_digits(whole)),
        None => format!("{sign}{}", group_digits(whole)),
    }
}

/// The month beyond billing: projects, customers, milestone lines, invoices by status and
/// each project's forecast margin.
fn month_figures(engine: &pshub_engine::Engine) -> Result<Vec<(&'static str, Value)>> {
    let mut milestone_lines = 0u64;
    engine.read(|r| {
        r.each_line_figure(&mut |line| {
            if line.kind == pshub_model::records::LineKind::Milestone {
                milestone_lines += 1;
            }
        })
    })?;
    Ok(engine.with_hub(|hub| {
        let world = hub.world();
        let mut invoices: std::collections::BTreeMap<&str, u64> = Default::default();
        for (_, state) in world.invoices() {
            *invoices.entry(state.status.as_str()).or_default() += 1;
        }
        let margins: serde_json::Map<String, Value> = world
            .projects()
            .map(|p| {
                let code = p.project.project_code.to_string();
                let pct = pshub_engine::forecast::forecast(world, &code)
                    .and_then(|f| f.margin_pct)
                    .map(|pct| Value::String(pct.to_string()));
                (code, pct.unwrap_or(Value::Null))
            })
            .collect();
        vec![
            (
                "projects_provisioned",
                Value::from(world.projects().count()),
            ),
            ("customers", Value::from(world.customers().len())),
            ("milestone_lines", Value::from(milestone_lines)),
            (
                "invoices_by_status",
                serde_json::to_value(invoices).unwrap_or_default(),
            ),
            ("forecast_margin_by_project", Value::Object(margins)),
        ]
    }))
}

/// The month beyond billing, for people: projects, customers, milestones, invoices, and
/// the projects whose forecast margin is under the floor.
fn print_month(figures: &[(&'static str, Value)], floor: rust_decimal::Decimal) {
    let get = |key: &str| {
        figures
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(Value::Null, |(_, v)| v.clone())
    };
    println!(
        "\nprojects provisioned     {}  for {} customers; {} milestone lines",
        get("projects_provisioned"),
        get("customers"),
        get("milestone_lines")
    );
    let invoices = get("invoices_by_status");
    let by_status: Vec<String> = invoices
        .as_object()
        .into_iter()
        .flatten()
        .map(|(status, n)| format!("{status} {n}"))
        .collect();
    println!("invoices                 {}", by_status.join(", "));
    let under: Vec<String> = get("forecast_margin_by_project")
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(code, pct)| {
            let pct: rust_decimal::Decimal = pct.as_str()?.parse().ok()?;
            (pct < floor).then(|| format!("{code} {pct}%"))
        })
        .collect();
    println!(
        "under the margin floor   {} (floor {floor}%)",
        if under.is_empty() {
            "none".to_string()
        } else {
            under.join(", ")
        }
    );
}

fn print_summary(
    s: &Summary,
    spec: &FirmSpec,
    store: &StoreArgs,
    resumed: usize,
    missing: usize,
    elapsed: Duration,
) {
    let c = &s.counters;
    println!(
        "pshub demo: one month ({}) of a {}-person consulting firm, in {:.1} s",
        spec.month.format("%B %Y"),
        spec.workers,
        elapsed.as_secs_f64()
    );
    println!(
        "store: {}  (local files in {})\n",
        wiring::redact(&store.url()),
        store.data_dir().display()
    );
    println!(
        "events received        {:>9}  (accepted {}, duplicates suppressed {}, conflicts {}, quarantined {})",
        thousands(c.received),
        thousands(s.accepted),
        thousands(c.duplicates),
        c.conflicts,
        c.quarantined
    );
    println!(
        "invoice lines posted   {:>9}  (reversals {}, undelivered {})",
        thousands(s.lines_posted),
        thousands(s.reversals_posted),
        s.lines_undelivered
    );
    println!(
        "straight-through rate  {:>8.1}%  of approved billable entries posted with no manual step",
        s.straight_through_rate() * rust_decimal::Decimal::from(100)
    );
    let owners = |map: &std::collections::BTreeMap<pshub_model::records::OwnerTeam, u64>| {
        map.iter()
            .map(|(o, n)| format!("{} {}", o.as_str(), n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("exceptions by owner    {}", owners(&s.exceptions_by_owner));
    println!(
        "  still open           {}",
        owners(&s.open_exceptions_by_owner)
    );
    println!("  held, not valued     {}", owners(&s.held_unvalued));
    println!(
        "rate card fixed        {resumed} of {missing} missing-rate cases resolved and posted\n"
    );
    println!(
        "{:<8}{:>18}{:>18}{:>16}{:>14}{:>14}",
        "money", "approved", "posted", "held", "undelivered", "written off"
    );
    for currency in s.currencies() {
        println!(
            "{:<8}{:>18}{:>18}{:>16}{:>14}{:>14}",
            currency.code(),
            money(s.approved_value.get(currency)),
            money(s.posted_value.get(currency)),
            money(s.held_value.get(currency)),
            money(s.undelivered_value.get(currency)),
            money(s.written_off_value.get(currency))
        );
    }
    let breaks = s.conservation_breaks();
    if breaks.is_empty() {
        println!(
            "\nconservation of money holds in every currency: approved = posted + held + undelivered + written off"
        );
    } else {
        println!("\nCONSERVATION OF MONEY BROKEN in {breaks:?}");
    }
}

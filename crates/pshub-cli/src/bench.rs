//! `pshub bench time-to-bill`: the whole path from event bytes to posted invoice lines,
//! with durable commits, on this machine.
//!
//! Untimed: a simulated firm's events are written to a JSON-lines file and the reference
//! data is sent. Timed: a reader parses the work events from the file into batches, sender
//! threads submit them (each submit returns once the inbox, the rules' outcome and the
//! outbox are committed with fsync), the delivery worker posts lines to the sandbox ERP
//! meanwhile, and the clock stops when the outbox is empty.

use crate::wiring;
use anyhow::{Context, Result};
use pshub_connectors::sandbox::{FirmSpec, SimulatedFirm};
use pshub_engine::summary::Summary;
use serde_json::{Value, json};
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TimeToBillArgs {
    /// About how many time entries and expenses to run through.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Events per submitted batch.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Threads submitting batches concurrently.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// Folder for the store and the event file; by default a fresh temporary folder, removed after.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn time_to_bill(args: TimeToBillArgs) -> Result<()> {
    wiring::init_logging("warn");
    let temporary = args.data_dir.is_none();
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("pshub-bench-{}", std::process::id()))
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;

    // A firm big enough that each consultant logs a realistic month (~150 entries).
    let spec = FirmSpec {
        workers: (args.entries / 150).max(200),
        projects: (args.entries / 750).max(40),
        entries: args.entries,
        ..FirmSpec::default()
    };
    let firm = SimulatedFirm::new(spec);
    let reference = firm.reference_events();
    let file = dir.join("work-events.jsonl");
    let mut writer = BufWriter::new(std::fs::File::create(&file)?);
    let mut work_events = 0u64;
    for event in firm.work_events() {
        serde_json::to_writer(&mut writer, &event)?;
        writer.write_all(b"\n")?;
        work_events += 1;
    }
    writer.flush()?;
    drop(writer);

    let wired = wiring::open(&dir, wiring::config_from_env()?)?;
    let engine = wired.engine.clone();
    for chunk in reference.chunks(1_000) {
        engine.submit(chunk.to_vec())?;
    }
    engine.drain()?;
    if !args.json {
        eprintln!(
            "{work_events} work events written to {}; running...",
            file.display()
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let delivery = engine.spawn_delivery(stop.clone());
    let started = Instant::now();
    let (tx, rx) = mpsc::sync_channel::<Vec<Value>>(4);
    let rx = Arc::new(Mutex::new(rx));
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let reader = {
        let file = file.clone();
        let batch = args.batch.max(1);
        std::thread::spawn(move || -> Result<()> {
            let mut chunk = Vec::with_capacity(batch);
            for line in
                std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&file)?).lines()
            {
                chunk.push(serde_json::from_str::<Value>(&line?)?);
                if chunk.len() == batch
                    && tx
                        .send(std::mem::replace(&mut chunk, Vec::with_capacity(batch)))
                        .is_err()
                {
                    break;
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(chunk);
            }
            Ok(())
        })
    };
    let senders: Vec<_> = (0..args.senders.max(1))
        .map(|_| {
            let (rx, engine, latencies) = (rx.clone(), engine.clone(), latencies.clone());
            std::thread::spawn(move || -> Result<()> {
                loop {
                    let next = rx
                        .lock()
                        .map_err(|_| anyhow::anyhow!("a sender panicked"))?
                        .recv();
                    let Ok(batch) = next else { return Ok(()) };
                    let sent = Instant::now();
                    engine.submit(batch)?;
                    let ms = sent.elapsed().as_secs_f64() * 1000.0;
                    latencies
                        .lock()
                        .map_err(|_| anyhow::anyhow!("a sender panicked"))?
                        .push(ms);
                }
            })
        })
        .collect();
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))??;
    for sender in senders {
        sender
            .join()
            .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
    }
    let ingested = started.elapsed();
    if !engine.settle(Duration::from_secs(600))? {
        anyhow::bail!("the outbox did not empty within ten minutes");
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = delivery.join();

    let summary = engine.read(|r| Summary::compute(r))?;
    let mut sorted = latencies
        .lock()
        .map_err(|_| anyhow::anyhow!("a sender panicked"))?
        .clone();
    sorted.sort_by(f64::total_cmp);
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let figures = json!({
        "entries": work_events,
        "seconds": round(seconds),
        "entries_per_sec": (work_events as f64 / seconds).round(),
        "p50_ms": round(percentile(&sorted, 50.0)),
        "p99_ms": round(percentile(&sorted, 99.0)),
        "peak_rss_mb": round(peak_rss_mb()),
        "latency_of": format!("one submit of {} events, until durably committed", args.batch),
        "ingest_seconds": round(ingested.as_secs_f64()),
        "lines_posted": summary.lines_posted,
        "reversals_posted": summary.reversals_posted,
        "exceptions": summary.exceptions_by_owner.values().sum::<u64>(),
        "duplicates_suppressed": summary.counters.duplicates,
        "conservation_holds": summary.conservation_breaks().is_empty(),
        "batch": args.batch,
        "senders": args.senders,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    if args.json {
        println!("{figures}");
    } else {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    }
    drop(engine);
    drop(wired);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

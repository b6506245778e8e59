//! `pshub bench time-to-bill`: the whole path from event bytes to posted invoice lines,
//! with durable commits, on this machine.
//!
//! Untimed: a simulated firm's events are written to a JSON-lines file and the reference
//! data is sent. Timed: a reader parses the work events from the file into batches, sender
//! threads submit them (each submit returns once the inbox, the rules' outcome and the
//! outbox are committed with fsync), the delivery worker posts lines to the sandbox ERP
//! meanwhile, and the clock stops when the outbox is empty.

use crate::wiring::{self, StoreArgs};
use anyhow::{Context, Result};
use pshub_connectors::sandbox::{FirmSpec, SimulatedFirm};
use pshub_engine::summary::Summary;
use serde_json::json;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TimeToBillArgs {
    /// About how many time entries and expenses to run through.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    entries: u32,
    /// Events per submitted batch.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    batch: u32,
    /// Threads submitting batches concurrently, each with its share of the entries, whose
    /// events it submits in file order.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    senders: u32,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
    /// Folder for the store and the event file; by default a fresh temporary folder, removed after.
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// The store (`postgres://...` to measure PostgreSQL); by default the data folder's SQLite.
    #[arg(long, env = "PSHUB_STORE")]
    store: Option<String>,
    /// Start posting only once every event is in: shows ingest alone (`ingest_seconds`)
    /// and delivery alone, where the default runs them side by side.
    #[arg(long)]
    ingest_first: bool,
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
    wiring::init_logging("warn")?;
    let temporary = args.data_dir.is_none();
    let dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("pshub-bench-{}", std::process::id()))
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;

    // A firm big enough that each consultant logs a realistic month (~150 entries).
    let firm = SimulatedFirm::new(crate::bench_generate::firm_spec(args.entries as usize));
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

    let store = StoreArgs::new(dir.clone(), args.store.clone());
    let wired = wiring::open(&store, wiring::config_from_env()?)?;
    let engine = wired.engine.clone();
    for chunk in reference.chunks(1_000) {
        engine.submit(chunk.to_vec())?;
    }
    engine.drain()?;
    // What the run measures is the hub's memory: the generator's is given back first.
    drop(reference);
    drop(firm);
    if !args.json {
        eprintln!(
            "{work_events} work events written to {}; running...",
            file.display()
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = if args.ingest_first {
        Vec::new()
    } else {
        engine.spawn_delivery(stop.clone())
    };
    let started = Instant::now();
    // One sender per lane, and each entry's events on one lane, in file order: an entry's
    // approval, rejection and re-approval are submitted in that order, as `events send`
    // sends them; entries on other lanes go side by side.
    let lanes = args.senders as usize;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..lanes)
        .map(|_| mpsc::sync_channel::<Vec<String>>(2))
        .unzip();
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let reader = {
        let file = file.clone();
        let batch = args.batch as usize;
        std::thread::spawn(move || -> Result<()> {
            let mut chunks: Vec<Vec<String>> =
                (0..lanes).map(|_| Vec::with_capacity(batch)).collect();
            for line in
                std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&file)?).lines()
            {
                let line = line?;
                // The work file holds time entries and expenses; anything else takes lane 0.
                let lane = crate::send::lane_of(&line, lanes).unwrap_or(0);
                chunks[lane].push(line);
                if chunks[lane].len() == batch {
                    let full = std::mem::replace(&mut chunks[lane], Vec::with_capacity(batch));
                    if txs[lane].send(full).is_err() {
                        return Ok(());
                    }
                }
            }
            for (lane, chunk) in chunks.into_iter().enumerate() {
                if !chunk.is_empty() {
                    let _ = txs[lane].send(chunk);
                }
            }
            Ok(())
        })
    };
    let senders: Vec<_> = rxs
        .into_iter()
        .map(|rx| {
            let (engine, latencies) = (engine.clone(), latencies.clone());
            std::thread::spawn(move || -> Result<()> {
                while let Ok(batch) = rx.recv() {
                    let sent = Instant::now();
                    engine.submit_texts(batch)?;
                    let ms = sent.elapsed().as_secs_f64() * 1000.0;
                    latencies
                        .lock()
                        .map_err(|_| anyhow::anyhow!("a sender panicked"))?
                        .push(ms);
                }
                Ok(())
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
    if args.ingest_first {
        workers = engine.spawn_delivery(stop.clone());
    }
    if !engine.settle(Duration::from_secs(600))? {
        anyhow::bail!("the outbox did not empty within ten minutes");
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }

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
        "ingest_first": args.ingest_first,
        "store": engine.store().kind(),
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

#[derive(clap::Args)]
pub struct ReferenceArgs {
    /// About how many reference events to load (mostly assignments, as in a large firm).
    #[arg(long, default_value_t = 400_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    events: u32,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
}

fn rss_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// `pshub bench reference`: loads a large firm's reference data (workers, projects, rate
/// cards and, mostly, assignments) through the engine and reports the memory it takes.
pub fn reference(args: ReferenceArgs) -> Result<()> {
    wiring::init_logging("warn")?;
    let dir = std::env::temp_dir().join(format!("pshub-bench-reference-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let total = args.events as usize;
    // Per worker: a hire and ten assignments (two versions each) over a year of projects.
    let workers = (total / 21).max(1);
    let projects = (workers / 10).max(3);
    let spec = FirmSpec {
        workers,
        projects,
        entries: 1,
        faults: false,
        ..FirmSpec::default()
    };
    // The firm's own reference data goes through a file, as a sender would stream it.
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let base_file = dir.join("reference.jsonl");
    let base_count = {
        let firm = SimulatedFirm::new(spec);
        let mut out = BufWriter::new(std::fs::File::create(&base_file)?);
        let events = firm.reference_events();
        for event in &events {
            writeln!(out, "{event}")?;
        }
        out.flush()?;
        events.len()
    };
    // Assignments are made as they are sent, a thousand at a time: what is measured is the
    // hub's memory, not a list of every event held by the benchmark.
    let assignment = |n: usize| -> String {
        let (w, k, version) = (n / 20, (n / 2) % 10, 1 + n % 2);
        let project = format!("PRJ-{:04}", (w * 7 + k * 13) % projects + 1);
        let state = if version == 1 { "soft" } else { "approved" };
        json!({
            "id": format!("psa-bench-a{n}"), "source": "psa", "type": "assignment.changed",
            "schema_version": 1, "occurred_at": "2026-02-20T10:00:00Z",
            "data": { "assignment_id": format!("A-{w:06}-{k:02}"), "version": version,
                "worker_id": format!("W-{:05}", w + 1), "project_code": project, "role": "consultant",
                "start": "2026-01-01", "end": "2026-12-31", "hours": "160", "state": state }
        })
        .to_string()
    };
    let assignments_to_send = total.saturating_sub(base_count).min(workers * 20);
    let store = StoreArgs::for_dir(&dir);
    let wired = wiring::open(&store, wiring::config_from_env()?)?;
    let engine = wired.engine.clone();
    let started = Instant::now();
    let count = base_count + assignments_to_send;
    let mut lines = std::io::BufReader::new(std::fs::File::open(&base_file)?).lines();
    loop {
        let chunk = lines
            .by_ref()
            .take(1_000)
            .collect::<std::io::Result<Vec<String>>>()?;
        if chunk.is_empty() {
            break;
        }
        engine.submit_texts(chunk)?;
    }
    // Workers, projects and rate cards are in; what the assignments add is measured.
    let before = rss_mb("VmRSS:");
    let assignments_before = engine.with_hub(|hub| hub.world().assignments());
    let mut next = 0;
    while next < assignments_to_send {
        let end = (next + 1_000).min(assignments_to_send);
        engine.submit_texts((next..end).map(assignment).collect())?;
        next = end;
    }
    let loaded = started.elapsed().as_secs_f64();
    let after = rss_mb("VmRSS:");
    let assignments = engine.with_hub(|hub| hub.world().assignments());
    // The same reference data rebuilt from the store, as at a restart.
    drop(engine);
    drop(wired);
    let rebuilt_at = Instant::now();
    let wired = wiring::open(&store, wiring::config_from_env()?)?;
    let rebuild_seconds = rebuilt_at.elapsed().as_secs_f64();
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let figures = json!({
        "reference_events": count,
        "assignments": assignments,
        "rss_before_mb": round(before),
        "rss_after_mb": round(after),
        "bytes_per_assignment": ((after - before).max(0.0) * 1024.0 * 1024.0 / (assignments - assignments_before).max(1) as f64).round(),
        "peak_rss_mb": round(peak_rss_mb()),
        "load_seconds": round(loaded),
        "rebuild_seconds": round(rebuild_seconds),
        "rebuilt_assignments": wired.engine.with_hub(|hub| hub.world().assignments()),
    });
    if args.json {
        println!("{figures}");
    } else {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    }
    drop(wired);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

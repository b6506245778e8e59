//! `pshub bench generate --entries N --out DIR`: the time-to-bill benchmark's dataset as
//! files, for the harness in `benches/` and the peers it compares pshub with.
//!
//! The firm is the one `bench time-to-bill --entries N` runs (same seed, same sizing), so
//! every bench sees the same data: `DIR/reference.jsonl` holds the reference events in the
//! order the systems send them (FX and rate cards, closed-won deals with their customers,
//! hires and moves, bookings), `DIR/work.jsonl` the work (time and expense approvals,
//! rejections after billing, re-approvals, re-sent duplicates, malformed and conflicting
//! events), one event per line.

use anyhow::{Context, Result, bail};
use pshub_connectors::sandbox::{FirmSpec, SimulatedFirm};
use serde_json::{Value, json};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// About how many time entries and expenses to generate (as `bench time-to-bill --entries`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    entries: u32,
    /// Folder to write `reference.jsonl`, `work.jsonl` and `manifest.json` into; created if
    /// missing, and those three files are replaced.
    #[arg(long)]
    out: PathBuf,
}

/// The firm of `bench time-to-bill --entries N`: one consultant per 150 entries (at least
/// 200), one project per 750 (at least 40), the demo's faults.
pub fn firm_spec(entries: usize) -> FirmSpec {
    FirmSpec {
        workers: (entries / 150).max(200),
        projects: (entries / 750).max(40),
        entries,
        ..FirmSpec::default()
    }
}

/// What was written, as `manifest.json` holds it.
pub struct Written {
    pub reference_events: u64,
    pub work_events: u64,
}

fn write_lines(path: &Path, events: impl Iterator<Item = Value>) -> Result<u64> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut count = 0u64;
    for event in events {
        serde_json::to_writer(&mut writer, &event)?;
        writer.write_all(b"\n")?;
        count += 1;
    }
    writer
        .flush()
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(count)
}

/// Writes the dataset of `entries` into `out`.
pub fn write_dataset(entries: usize, out: &Path) -> Result<Written> {
    if out.as_os_str().is_empty() {
        bail!("--out: give a folder to write the dataset into");
    }
    if out.exists() && !out.is_dir() {
        bail!("--out: '{}' exists and is not a folder", out.display());
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("--out: failed to create the folder {}", out.display()))?;
    let spec = firm_spec(entries);
    let firm = SimulatedFirm::new(spec.clone());
    let reference_events = write_lines(
        &out.join("reference.jsonl"),
        firm.reference_events().into_iter(),
    )?;
    let work_events = write_lines(&out.join("work.jsonl"), firm.work_events())?;
    let manifest = json!({
        "entries": entries,
        "workers": spec.workers,
        "projects": spec.projects,
        "month": spec.month.to_string(),
        "seed": spec.seed,
        "faults": spec.faults,
        "reference_events": reference_events,
        "work_events": work_events,
        "files": ["reference.jsonl", "work.jsonl"],
    });
    let path = out.join("manifest.json");
    std::fs::write(
        &path,
        format!("{}\n", serde_json::to_string_pretty(&manifest)?),
    )
    .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(Written {
        reference_events,
        work_events,
    })
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let written = write_dataset(args.entries as usize, &args.out)?;
    println!(
        "{} reference events to {}, {} work events to {}",
        written.reference_events,
        args.out.join("reference.jsonl").display(),
        written.work_events,
        args.out.join("work.jsonl").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pshub_model::Event;
    use std::io::BufRead;

    fn lines(path: &Path) -> Vec<Value> {
        std::io::BufReader::new(std::fs::File::open(path).unwrap())
            .lines()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn writes_the_time_to_bill_firm_as_two_files() {
        let dir = std::env::temp_dir().join(format!("pshub-generate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = write_dataset(3_000, &dir).unwrap();
        let reference = lines(&dir.join("reference.jsonl"));
        let work = lines(&dir.join("work.jsonl"));
        assert_eq!(reference.len() as u64, written.reference_events);
        assert_eq!(work.len() as u64, written.work_events);

        // The same events, in the same order, as the firm that `bench time-to-bill` runs.
        let firm = SimulatedFirm::new(firm_spec(3_000));
        assert_eq!(reference, firm.reference_events());
        assert!(
            work.iter()
                .eq(firm.work_events().collect::<Vec<_>>().iter())
        );

        let work_types = [
            "time_entry.approved",
            "time_entry.rejected",
            "expense.approved",
            "expense.rejected",
        ];
        assert!(reference.iter().all(|e| {
            let t = e["type"].as_str().unwrap();
            !work_types.contains(&t) && Event::parse(e, |_| true).is_ok()
        }));
        assert!(
            work.iter()
                .all(|e| work_types.contains(&e["type"].as_str().unwrap()))
        );
        let malformed = work
            .iter()
            .filter(|e| Event::parse(e, |_| true).is_err())
            .count();
        assert_eq!(malformed, 5, "only the five deliberately malformed events");
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["work_events"], json!(written.work_events));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_a_file_as_the_folder() {
        let file = std::env::temp_dir().join(format!("pshub-generate-file-{}", std::process::id()));
        std::fs::write(&file, "x").unwrap();
        let error = write_dataset(10, &file).err().unwrap().to_string();
        assert!(error.contains("is not a folder"), "{error}");
        std::fs::remove_file(&file).unwrap();
    }
}

//! `pshub mapping test MAPPING FIXTURE.json…`: a mapping's canonical output on records, or
//! the errors, as the hub would quarantine them. The mappings are the shipped ones and
//! those of the configuration's `[mappings] dir` (or `--dir`).

use anyhow::{Context, Result, bail};
use pshub_mapping::Mappings;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The mapping, as configurations name it: `stripe/invoice.v1`.
    mapping: String,
    /// Records in the source's format, one JSON document per file.
    #[arg(required = true)]
    fixtures: Vec<PathBuf>,
    /// A folder of mappings (`<source>/<record>.v<N>.toml`) over the shipped ones, in place
    /// of the configuration's `[mappings] dir`.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The source name the records come in under (by default the mapping's own).
    #[arg(long)]
    source: Option<String>,
}

pub fn test(args: TestArgs) -> Result<()> {
    let mappings: Arc<Mappings> = match &args.dir {
        Some(dir) => Arc::new(Mappings::with_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => crate::wiring::config_from_env()?.mappings,
    };
    let Some(mapping) = mappings.get(&args.mapping) else {
        bail!(
            "'{}' is not a mapping this hub knows; it knows {}",
            args.mapping,
            mappings.names().join(", ")
        );
    };
    let source = args.source.as_deref().unwrap_or(&mapping.source);
    let mut failed = 0;
    for file in &args.fixtures {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        println!("== {}", file.display());
        let record = match serde_json::from_str(&text) {
            Ok(record) => record,
            Err(e) => {
                failed += 1;
                println!("error: the record is not JSON: {e}");
                continue;
            }
        };
        match pshub_engine::hooks::canonical(mapping, source, &record, |_| true) {
            Ok(Some((envelope, _))) => {
                println!("{}", serde_json::to_string_pretty(&envelope)?)
            }
            Ok(None) => println!("not taken: {} does not take this record", mapping.name),
            Err(error) => {
                failed += 1;
                println!("error: {error}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} records did not map", args.fixtures.len());
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// The source whose payloads are mapped again.
    #[arg(long)]
    source: String,
    /// The mapping version the payloads were mapped by.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    from: u32,
    /// The mapping version to map them by now.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    to: u32,
    /// Only payloads received since this date (YYYY-MM-DD, UTC) or RFC 3339 instant.
    #[arg(long, value_parser = check_since)]
    since: Option<String>,
    /// Show what would change, and change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    remote: crate::operate::Remote,
}

fn check_since(text: &str) -> Result<String, String> {
    pshub_engine::mapping_replay::parse_since(text).map(|_| text.to_string())
}

/// `pshub mapping replay`: `POST /v1/mappings/replay` on a running hub, its answer shown
/// per event.
pub fn replay(args: ReplayArgs) -> Result<()> {
    let api = crate::operate::Api::new(&args.remote)?;
    let report = api.post(
        "/v1/mappings/replay",
        serde_json::json!({
            "source": args.source,
            "from": args.from,
            "to": args.to,
            "since": args.since,
            "dry_run": args.dry_run,
        }),
    )?;
    if args.remote.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let verb = if args.dry_run {
        "would change"
    } else {
        "changed"
    };
    for event in report["events"].as_array().into_iter().flatten() {
        let text = |key: &str| event[key].as_str().unwrap_or("?").to_string();
        println!(
            "{} (seq {}) {} -> {}: {}",
            text("event_id"),
            event["seq"],
            text("from_mapping"),
            text("to_mapping"),
            text("status")
        );
        for change in event["changes"].as_array().into_iter().flatten() {
            println!(
                "  {}: {} -> {}",
                change["field"].as_str().unwrap_or("?"),
                change["before"],
                change["after"]
            );
        }
        if let Some(error) = event["error"].as_str() {
            println!("  {error}");
        }
        let downstream = &event["downstream"];
        for line in downstream["lines"].as_array().into_iter().flatten() {
            let reverses = line["reverses"]
                .as_i64()
                .map(|r| format!(", reversing line {r}"))
                .unwrap_or_default();
            println!(
                "  {verb}: line {} of {} {} on {}{reverses}",
                line["line"],
                line["amount"].as_str().unwrap_or("?"),
                line["currency"].as_str().unwrap_or("?"),
                line["project_code"].as_str().unwrap_or("?")
            );
        }
        for case in downstream["cases"].as_array().into_iter().flatten() {
            println!(
                "  {verb}: case {} {} ({}) {}",
                case["case"],
                case["kind"].as_str().unwrap_or("?"),
                case["owner"].as_str().unwrap_or("?"),
                case["state"].as_str().unwrap_or("?")
            );
        }
        if let Some(result) = event["result"].as_object() {
            println!(
                "  taken in as {}: {}",
                text("replayed_as"),
                result["status"].as_str().unwrap_or("?")
            );
        }
    }
    println!(
        "{} events of {} mapped by version {}: {}",
        report["examined"], args.source, args.from, report["counts"]
    );
    let errors = report["counts"]["errors"].as_u64().unwrap_or(0);
    if errors > 0 {
        bail!("{errors} payloads did not map under version {}", args.to);
    }
    Ok(())
}

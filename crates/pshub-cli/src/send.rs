//! `pshub events send FILE`: JSON lines to a running hub, in batches, with a progress bar.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct SendArgs {
    /// A file of events, one JSON object per line.
    file: PathBuf,
    /// The hub's address.
    #[arg(long, env = "PSHUB_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API token of the admin or integration role.
    #[arg(long, env = "PSHUB_TOKEN")]
    token: String,
    /// Events per request (at most 10,000).
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
}

pub fn run(args: SendArgs) -> Result<()> {
    if !(1..=10_000).contains(&args.batch) {
        bail!("--batch: {} is not from 1 to 10000", args.batch);
    }
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("failed to open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = ProgressBar::new(size);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    let endpoint = format!("{}/v1/events", args.url.trim_end_matches('/'));
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let mut bad_lines = Vec::new();
    let mut batch: Vec<Value> = Vec::with_capacity(args.batch);
    let send = |batch: &mut Vec<Value>, tally: &mut BTreeMap<String, u64>| -> Result<()> {
        let body = serde_json::to_vec(&*batch)?;
        batch.clear();
        let answer: Value = runtime.block_on(async {
            let response = client
                .post(&endpoint)
                .bearer_auth(&args.token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .with_context(|| format!("failed to reach {endpoint}"))?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("the hub answered {status}: {text}");
            }
            Ok(serde_json::from_str(&text)?)
        })?;
        for result in answer["results"].as_array().into_iter().flatten() {
            *tally
                .entry(result["status"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
        Ok(())
    };
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("failed to read line {}", number + 1))?;
        progress.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(value) if value.is_object() => batch.push(value),
            Ok(_) => bad_lines.push(format!("line {}: not a JSON object", number + 1)),
            Err(error) => bad_lines.push(format!("line {}: not JSON: {error}", number + 1)),
        }
        if batch.len() == args.batch {
            send(&mut batch, &mut tally)?;
        }
    }
    if !batch.is_empty() {
        send(&mut batch, &mut tally)?;
    }
    progress.finish_and_clear();
    let counts: Vec<String> = tally
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect();
    println!(
        "sent: {}",
        if counts.is_empty() {
            "nothing".to_string()
        } else {
            counts.join(", ")
        }
    );
    if !bad_lines.is_empty() {
        for line in &bad_lines {
            eprintln!("{line}");
        }
        bail!("{} lines were not sent (see above)", bad_lines.len());
    }
    Ok(())
}

//! `pshub events send FILE`: JSON lines to a running hub, in batches with several in
//! flight, with a progress bar. Each line goes as it is in the file. Every event that was not
//! accepted is reported with its line number, status and reason; the command fails when any
//! was quarantined or in conflict, or when a line could not be read.

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use tokio::task::JoinSet;

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
    /// Events per request.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    parallel: u32,
}

/// One request: its events as text, and the file line of each.
struct Batch {
    body: String,
    lines: Vec<usize>,
}

/// What the hub answered for one event that was not taken as new.
struct Refusal {
    line: usize,
    status: String,
    reason: String,
}

async fn post(
    client: reqwest::Client,
    endpoint: String,
    token: String,
    batch: Batch,
) -> Result<(Vec<usize>, Vec<Value>)> {
    let response = client
        .post(&endpoint)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(batch.body)
        .send()
        .await
        .with_context(|| format!("failed to reach {endpoint}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("the hub answered {status}: {text}");
    }
    let answer: Value = serde_json::from_str(&text)?;
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    if results.len() != batch.lines.len() {
        bail!(
            "the hub answered {} results for {} events",
            results.len(),
            batch.lines.len()
        );
    }
    Ok((batch.lines, results))
}

pub fn run(args: SendArgs) -> Result<()> {
    let url = args.url.trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--url: '{}' is not an http:// or https:// URL", args.url);
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
    let endpoint = format!("{url}/v1/events");
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let mut refusals: Vec<Refusal> = Vec::new();
    let mut bad_lines = Vec::new();
    let batch_size = args.batch as usize;
    let outcome = runtime.block_on(async {
        let mut in_flight: JoinSet<Result<(Vec<usize>, Vec<Value>)>> = JoinSet::new();
        let settle = |done: Result<(Vec<usize>, Vec<Value>)>,
                      tally: &mut BTreeMap<String, u64>,
                      refusals: &mut Vec<Refusal>|
         -> Result<()> {
            let (lines, results) = done?;
            for (line, result) in lines.into_iter().zip(results) {
                let status = result["status"].as_str().unwrap_or("?").to_string();
                *tally.entry(status.clone()).or_default() += 1;
                if status != "accepted" && status != "duplicate" {
                    refusals.push(Refusal {
                        line,
                        status,
                        reason: result["reason"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
            Ok(())
        };
        let mut batch = Batch {
            body: String::from("["),
            lines: Vec::new(),
        };
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        for (number, line) in reader.lines().enumerate() {
            let number = number + 1;
            let line = line.with_context(|| format!("failed to read line {number}"))?;
            progress.inc(line.len() as u64 + 1);
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<&RawValue>(text) {
                Ok(raw) if raw.get().starts_with('{') => {
                    if !batch.lines.is_empty() {
                        batch.body.push(',');
                    }
                    batch.body.push_str(raw.get());
                    batch.lines.push(number);
                }
                Ok(_) => bad_lines.push(format!("line {number}: not a JSON object")),
                Err(error) => bad_lines.push(format!("line {number}: not JSON: {error}")),
            }
            if batch.lines.len() == batch_size {
                if in_flight.len() >= args.parallel as usize
                    && let Some(done) = in_flight.join_next().await
                {
                    settle(done?, &mut tally, &mut refusals)?;
                }
                let full = std::mem::replace(
                    &mut batch,
                    Batch {
                        body: String::from("["),
                        lines: Vec::new(),
                    },
                );
                in_flight.spawn(post(
                    client.clone(),
                    endpoint.clone(),
                    args.token.clone(),
                    Batch {
                        body: full.body + "]",
                        lines: full.lines,
                    },
                ));
            }
        }
        if !batch.lines.is_empty() {
            batch.body.push(']');
            in_flight.spawn(post(
                client.clone(),
                endpoint.clone(),
                args.token.clone(),
                batch,
            ));
        }
        while let Some(done) = in_flight.join_next().await {
            settle(done?, &mut tally, &mut refusals)?;
        }
        Ok::<(), anyhow::Error>(())
    });
    progress.finish_and_clear();
    outcome?;
    refusals.sort_by_key(|r| r.line);
    for refusal in &refusals {
        eprintln!(
            "line {}: {}: {}",
            refusal.line, refusal.status, refusal.reason
        );
    }
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
    for line in &bad_lines {
        eprintln!("{line}");
    }
    match (bad_lines.len(), refusals.len()) {
        (0, 0) => Ok(()),
        (0, refused) => bail!("{refused} events were not accepted (see above)"),
        (bad, 0) => bail!("{bad} lines were not sent (see above)"),
        (bad, refused) => {
            bail!("{bad} lines were not sent and {refused} events were not accepted (see above)")
        }
    }
}

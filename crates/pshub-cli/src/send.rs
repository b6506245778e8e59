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
#[derive(Default)]
struct Batch {
    body: String,
    lines: Vec<usize>,
}

impl Batch {
    fn push(&mut self, event: &str, line: usize) {
        self.body
            .push(if self.lines.is_empty() { '[' } else { ',' });
        self.body.push_str(event);
        self.lines.push(line);
    }

    fn finish(mut self) -> Batch {
        self.body.push(']');
        self
    }
}

/// What the hub answered for one event that was not taken as new.
struct Refusal {
    line: usize,
    status: String,
    reason: String,
}

/// Just enough of an event to know which events must keep their order.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow, default)]
    event_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<DataHead<'a>>,
}

#[derive(serde::Deserialize)]
struct DataHead<'a> {
    #[serde(borrow, default)]
    entry_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    expense_id: Option<std::borrow::Cow<'a, str>>,
}

/// Where an event may go. Work (time entries and expenses) goes to the lane of its entry,
/// so that an entry's approval, rejection and re-approval arrive in file order while other
/// entries travel beside them; anything else (reference data, deals, records) is sent alone
/// in file order, after everything before it was answered and before anything after it.
enum Route {
    Lane(usize),
    InOrder,
}

/// The lane of one event's text among `lanes`, or `None` for what must go in file order
/// (also for text that is not an event: the hub answers that).
pub fn lane_of(text: &str, lanes: usize) -> Option<usize> {
    match serde_json::from_str::<Head<'_>>(text).map(|head| route(&head, lanes)) {
        Ok(Route::Lane(lane)) => Some(lane),
        _ => None,
    }
}

fn route(head: &Head<'_>, lanes: usize) -> Route {
    let kind = head.event_type.as_deref().unwrap_or("");
    let key = head.data.as_ref().and_then(|d| {
        if kind.starts_with("time_entry.") {
            d.entry_id.as_deref().map(|id| ("time", id))
        } else if kind.starts_with("expense.") {
            d.expense_id.as_deref().map(|id| ("expense", id))
        } else {
            None
        }
    });
    match key {
        Some((kind, id)) => {
            let hash = pshub_engine::fingerprint::fingerprint(&[kind, id]);
            Route::Lane((hash % lanes as u64) as usize)
        }
        None => Route::InOrder,
    }
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

type Answer = tokio::task::JoinHandle<Result<(Vec<usize>, Vec<Value>)>>;

/// The requests of a run: one in flight per lane (so each lane keeps its order), and the
/// answers tallied as they come.
struct Sender {
    client: reqwest::Client,
    endpoint: String,
    token: String,
    in_flight: Vec<Option<Answer>>,
    tally: BTreeMap<String, u64>,
    refusals: Vec<Refusal>,
}

impl Sender {
    /// Sends `batch` on `lane` once the lane's previous request was answered.
    async fn send(&mut self, lane: usize, batch: Batch) -> Result<()> {
        self.wait(lane).await?;
        self.in_flight[lane] = Some(tokio::spawn(post(
            self.client.clone(),
            self.endpoint.clone(),
            self.token.clone(),
            batch.finish(),
        )));
        Ok(())
    }

    async fn wait(&mut self, lane: usize) -> Result<()> {
        if let Some(answer) = self.in_flight[lane].take() {
            let (lines, results) = answer.await??;
            for (line, result) in lines.into_iter().zip(results) {
                let status = result["status"].as_str().unwrap_or("?").to_string();
                *self.tally.entry(status.clone()).or_default() += 1;
                if status != "accepted" && status != "duplicate" {
                    self.refusals.push(Refusal {
                        line,
                        status,
                        reason: result["reason"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn wait_all(&mut self) -> Result<()> {
        for lane in 0..self.in_flight.len() {
            self.wait(lane).await?;
        }
        Ok(())
    }
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
    let lanes = args.parallel as usize;
    let mut sender = Sender {
        client: reqwest::Client::new(),
        endpoint: format!("{url}/v1/events"),
        token: args.token.clone(),
        // The lanes of work, and one more for what goes in file order.
        in_flight: (0..=lanes).map(|_| None).collect(),
        tally: BTreeMap::new(),
        refusals: Vec::new(),
    };
    let serial = lanes;
    let mut bad_lines = Vec::new();
    let batch_size = args.batch as usize;
    let outcome = runtime.block_on(async {
        let mut batches: Vec<Batch> = (0..=lanes).map(|_| Batch::default()).collect();
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        for (number, line) in reader.lines().enumerate() {
            let number = number + 1;
            let line = line.with_context(|| format!("failed to read line {number}"))?;
            progress.inc(line.len() as u64 + 1);
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            if !text.starts_with('{') {
                match serde_json::from_str::<&RawValue>(text) {
                    Ok(_) => bad_lines.push(format!("line {number}: not a JSON object")),
                    Err(error) => bad_lines.push(format!("line {number}: not JSON: {error}")),
                }
                continue;
            }
            let routed = match serde_json::from_str::<Head<'_>>(text) {
                Ok(head) => route(&head, lanes),
                // A JSON object whose fields are not what they should be still goes: the
                // hub quarantines it with the field named.
                Err(_) => match serde_json::from_str::<&RawValue>(text) {
                    Ok(_) => Route::InOrder,
                    Err(error) => {
                        bad_lines.push(format!("line {number}: not JSON: {error}"));
                        continue;
                    }
                },
            };
            let lane = match routed {
                Route::Lane(lane) => {
                    // What had to go in order before this is sent and answered first.
                    if !batches[serial].lines.is_empty() {
                        let batch = std::mem::take(&mut batches[serial]);
                        sender.send(serial, batch).await?;
                    }
                    sender.wait(serial).await?;
                    lane
                }
                Route::InOrder => {
                    // Everything before it is answered before it goes.
                    for (lane, pending) in batches.iter_mut().enumerate().take(lanes) {
                        if !pending.lines.is_empty() {
                            sender.send(lane, std::mem::take(pending)).await?;
                        }
                    }
                    for lane in 0..lanes {
                        sender.wait(lane).await?;
                    }
                    serial
                }
            };
            batches[lane].push(text, number);
            if batches[lane].lines.len() == batch_size {
                let batch = std::mem::take(&mut batches[lane]);
                sender.send(lane, batch).await?;
            }
        }
        for (lane, batch) in batches.into_iter().enumerate() {
            if !batch.lines.is_empty() {
                sender.send(lane, batch).await?;
            }
        }
        sender.wait_all().await
    });
    progress.finish_and_clear();
    outcome?;
    let Sender {
        tally,
        mut refusals,
        ..
    } = sender;
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

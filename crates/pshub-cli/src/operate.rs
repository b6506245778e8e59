//! The operators' commands, against a running hub's API: `pshub exceptions
//! list|show|resolve|dismiss|acknowledge`, `pshub dead-letters list|replay`,
//! `pshub quarantine list|replay` and `pshub conflicts list`. Each takes `--url` and `--token`
//! (or `PSHUB_URL` and `PSHUB_TOKEN`), the API's filters, and `--json` for the API's answer
//! as it is. Resolve and dismiss act on the cases named, or on every open case a filter
//! matches, and report what happened to each; they fail when any case could not be acted on.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::PathBuf;

/// Where the hub is, and how to show its answers.
#[derive(clap::Args, Clone, Debug)]
pub struct Remote {
    /// The hub's address.
    #[arg(long, env = "PSHUB_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API token.
    #[arg(long, env = "PSHUB_TOKEN")]
    token: String,
    /// Print the API's answers as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A page of a list.
#[derive(clap::Args, Clone, Debug)]
pub struct PageArgs {
    /// At most this many items (1 to 1000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    limit: Option<u32>,
    /// The cursor a previous page gave (`next`).
    #[arg(long)]
    cursor: Option<String>,
}

/// The exception filters of `GET /v1/exceptions`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CaseFilter {
    /// Only cases of this owning team (integration, finance, pmo, hr).
    #[arg(long)]
    owner: Option<String>,
    /// Only cases in this state (open, acknowledged, resolved, dismissed).
    #[arg(long)]
    state: Option<String>,
    /// Only cases of this kind (missing_rate, cap_exceeded, ...).
    #[arg(long)]
    kind: Option<String>,
}

impl CaseFilter {
    fn is_empty(&self) -> bool {
        self.owner.is_none() && self.state.is_none() && self.kind.is_none()
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        [
            ("owner", &self.owner),
            ("state", &self.state),
            ("kind", &self.kind),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

#[derive(clap::Subcommand)]
pub enum ExceptionsCommand {
    /// List exception cases.
    List {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        filter: CaseFilter,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one case with its evidence.
    Show {
        id: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resolve cases: those named, or every open case the filter matches.
    Resolve(Bulk),
    /// Dismiss cases: those named, or every open case the filter matches.
    Dismiss(Bulk),
    /// Acknowledge cases: the owner has seen them.
    Acknowledge(Bulk),
}

#[derive(clap::Args)]
pub struct Bulk {
    /// The cases to act on (else every open case the filter matches).
    ids: Vec<i64>,
    #[command(flatten)]
    filter: CaseFilter,
    /// A note for the timeline, beside the token's name.
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Subcommand)]
pub enum DeadLettersCommand {
    /// List deliveries that gave up after their retries.
    List {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Send a dead letter again (`line-N` or `call-N`).
    Replay {
        id: String,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(clap::Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined (malformed) events.
    List {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Take a quarantined event again: the corrected event in FILE, or the stored one.
    Replay {
        id: i64,
        /// A file holding the corrected event (one JSON object).
        #[arg(long)]
        corrected: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(clap::Subcommand)]
pub enum ConflictsCommand {
    /// List events re-sent under a known id with other data.
    List {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        page: PageArgs,
    },
}

/// A blocking client of the hub's API.
pub(crate) struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    pub(crate) fn new(remote: &Remote) -> Result<Self> {
        let base = remote.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url: '{}' is not an http:// or https:// URL", remote.url);
        }
        if remote.token.trim().is_empty() {
            bail!("--token: the token is empty");
        }
        Ok(Api {
            base,
            token: remote.token.clone(),
            client: reqwest::Client::new(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    /// Calls the API; answers the status and the JSON body.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let mut request = self
                .client
                .request(method, &url)
                .bearer_auth(&self.token)
                .query(query);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach the hub at {}", self.base))?;
            let status = response.status().as_u16();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            Ok((status, body))
        })
    }

    /// A GET that must succeed.
    /// POSTs a JSON body; an answer other than 200 is an error with the hub's message.
    pub(crate) fn post(&self, path: &str, body: Value) -> Result<Value> {
        let (status, answer) = self.call(reqwest::Method::POST, path, &[], Some(body))?;
        if status != 200 {
            bail!("POST {path} answered {status}: {}", message(&answer));
        }
        Ok(answer)
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        let (status, body) = self.call(reqwest::Method::GET, path, query, None)?;
        if status != 200 {
            bail!("GET {path} answered {status}: {}", message(&body));
        }
        Ok(body)
    }
}

/// The error message of an API answer.
fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .map_or_else(|| body.to_string(), str::to_string)
}

fn page_query(page: &PageArgs) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(limit) = page.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(cursor) = &page.cursor {
        query.push(("cursor", cursor.clone()));
    }
    query
}

/// Fetches a list of the API and prints it.
fn list(
    remote: &Remote,
    path: &str,
    query: &[(&str, String)],
    line: fn(&Value) -> String,
) -> Result<()> {
    let api = Api::new(remote)?;
    print_list(remote, &api.get(path, query)?, line);
    Ok(())
}

/// Prints a list: as JSON, or one line per item from `line`, and the next cursor.
fn print_list(remote: &Remote, body: &Value, line: fn(&Value) -> String) {
    if remote.json {
        println!("{body}");
        return;
    }
    let items = body["items"].as_array().cloned().unwrap_or_default();
    for item in &items {
        println!("{}", line(item));
    }
    match body["next"].as_str() {
        Some(next) => println!("({} shown; more with --cursor {next})", items.len()),
        None => println!("({} shown)", items.len()),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn case_line(case: &Value) -> String {
    format!(
        "{:>6}  {:<12} {:<11} {:<40} {:<16} {}",
        text(&case["id"]),
        text(&case["state"]),
        text(&case["owner"]),
        text(&case["kind"]),
        text(&case["business_key"]),
        text(&case["reason"])
    )
}

pub fn exceptions(command: ExceptionsCommand) -> Result<()> {
    match command {
        ExceptionsCommand::List {
            remote,
            filter,
            page,
        } => {
            let mut query = filter.query();
            query.extend(page_query(&page));
            list(&remote, "/v1/exceptions", &query, case_line)
        }
        ExceptionsCommand::Show { id, remote } => {
            let api = Api::new(&remote)?;
            let case = api.get(&format!("/v1/exceptions/{id}"), &[])?;
            if remote.json {
                println!("{case}");
            } else {
                println!("{}", case_line(&case));
                println!("suggested fix: {}", text(&case["suggested_fix"]));
                println!("correlation id: {}", text(&case["correlation_id"]));
                println!("evidence: {}", case["evidence"]);
            }
            Ok(())
        }
        ExceptionsCommand::Resolve(bulk) => act(bulk, "resolve"),
        ExceptionsCommand::Dismiss(bulk) => act(bulk, "dismiss"),
        ExceptionsCommand::Acknowledge(bulk) => act(bulk, "acknowledge"),
    }
}

/// The open cases a filter matches, every page of them.
fn matching(api: &Api, filter: &CaseFilter) -> Result<Vec<i64>> {
    let mut query = filter.query();
    if filter.state.is_none() {
        query.push(("state", "open".into()));
    }
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page = query.clone();
        page.push(("limit", "1000".into()));
        if let Some(cursor) = &cursor {
            page.push(("cursor", cursor.clone()));
        }
        let body = api.get("/v1/exceptions", &page)?;
        ids.extend(
            body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["id"].as_i64()),
        );
        match body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(ids),
        }
    }
}

fn act(bulk: Bulk, verb: &str) -> Result<()> {
    let api = Api::new(&bulk.remote)?;
    let ids = match (bulk.ids.is_empty(), bulk.filter.is_empty()) {
        (false, true) => bulk.ids.clone(),
        (true, false) => matching(&api, &bulk.filter)?,
        (false, false) => bail!("give case ids or a filter (--owner, --state, --kind), not both"),
        (true, true) => bail!(
            "give the case ids to {verb}, or a filter (--owner, --state, --kind) for every open case it matches"
        ),
    };
    let body = json!({ "note": bulk.note });
    let mut failed = 0usize;
    let mut report = Vec::new();
    for id in &ids {
        let (status, answer) = api.call(
            reqwest::Method::POST,
            &format!("/v1/exceptions/{id}/{verb}"),
            &[],
            Some(body.clone()),
        )?;
        let outcome = if status == 200 {
            match answer["outcome"]["result"].as_str() {
                Some(result) => format!("{verb}d: {result}"),
                None => format!("{verb}d"),
            }
        } else {
            failed += 1;
            format!("not {verb}d ({status}): {}", message(&answer))
        };
        if bulk.remote.json {
            report.push(json!({ "id": id, "status": status, "answer": answer }));
        } else {
            println!("case {id}: {outcome}");
        }
    }
    if bulk.remote.json {
        println!("{}", json!({ "cases": report, "failed": failed }));
    } else {
        println!("{} of {} cases {verb}d", ids.len() - failed, ids.len());
    }
    if failed > 0 {
        bail!("{failed} of {} cases could not be {verb}d", ids.len());
    }
    Ok(())
}

pub fn dead_letters(command: DeadLettersCommand) -> Result<()> {
    match command {
        DeadLettersCommand::List { remote, page } => {
            list(&remote, "/v1/dead-letters", &page_query(&page), |d| {
                format!(
                    "{:<12} {:<30} {:<8} {}",
                    text(&d["id"]),
                    text(&d["operation"]),
                    text(&d["target"]),
                    text(&d["last_error"])
                )
            })
        }
        DeadLettersCommand::Replay { id, note, remote } => {
            let api = Api::new(&remote)?;
            let (status, answer) = api.call(
                reqwest::Method::POST,
                &format!("/v1/dead-letters/{id}/replay"),
                &[],
                Some(json!({ "note": note })),
            )?;
            if remote.json {
                println!("{answer}");
            }
            if status != 200 {
                bail!(
                    "dead letter {id} was not replayed ({status}): {}",
                    message(&answer)
                );
            }
            if !remote.json {
                println!("dead letter {id}: sent again");
            }
            Ok(())
        }
    }
}

pub fn quarantine(command: QuarantineCommand) -> Result<()> {
    match command {
        QuarantineCommand::List { remote, page } => {
            list(&remote, "/v1/quarantine", &page_query(&page), |q| {
                format!(
                    "{:>6}  {:<10} {:<8} {:<24} {}",
                    text(&q["id"]),
                    text(&q["state"]),
                    text(&q["source"]),
                    text(&q["event_id"]),
                    text(&q["reason"])
                )
            })
        }
        QuarantineCommand::Replay {
            id,
            corrected,
            remote,
        } => {
            let api = Api::new(&remote)?;
            let body = match &corrected {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("failed to read {}", path.display()))?;
                    Some(
                        serde_json::from_str::<Value>(&text)
                            .with_context(|| format!("{}: not one JSON object", path.display()))?,
                    )
                }
                None => None,
            };
            let (status, answer) = api.call(
                reqwest::Method::POST,
                &format!("/v1/quarantine/{id}/replay"),
                &[],
                body,
            )?;
            if remote.json {
                println!("{answer}");
            }
            if status != 200 {
                bail!(
                    "quarantined event {id} was not replayed ({status}): {}",
                    message(&answer)
                );
            }
            if !remote.json {
                println!(
                    "quarantined event {id}: {}",
                    text(&answer["result"]["status"])
                );
            }
            Ok(())
        }
    }
}

pub fn conflicts(command: ConflictsCommand) -> Result<()> {
    match command {
        ConflictsCommand::List { remote, page } => {
            list(&remote, "/v1/conflicts", &page_query(&page), |c| {
                format!(
                    "{:>6}  {:<8} {:<24} {:<24} case {}",
                    text(&c["id"]),
                    text(&c["source"]),
                    text(&c["event_id"]),
                    text(&c["type"]),
                    text(&c["case_id"])
                )
            })
        }
    }
}

/// `pshub config reload`: the running hub re-reads its configuration file (as on SIGHUP).
/// The texts of a JSON array, joined with commas (empty for anything else).
fn texts(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `pshub catalog`: every configured system of a running hub, as `GET /v1/catalog` lists it.
pub fn catalog(remote: Remote) -> Result<()> {
    let api = Api::new(&remote)?;
    let catalog = api.get("/v1/catalog", &[])?;
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&catalog)?);
        return Ok(());
    }
    let Some(systems) = catalog["systems"].as_object() else {
        bail!("the hub's catalog is not a list of systems: {catalog}");
    };
    for (name, s) in systems {
        println!("{name} (team {})", s["owner_team"].as_str().unwrap_or("?"));
        println!("  owns: {}", texts(&s["owns"]));
        for inbound in s["inbound"].as_array().into_iter().flatten() {
            let mappings: Vec<String> = inbound["mappings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["name"].as_str().unwrap_or("?").to_string())
                .collect();
            println!(
                "  in: {} over {}{}",
                inbound["connector"].as_str().unwrap_or("?"),
                inbound["transport"].as_str().unwrap_or("?"),
                if mappings.is_empty() {
                    String::new()
                } else {
                    format!(", mapped by {}", mappings.join(", "))
                }
            );
        }
        if let Some(connector) = s["outbound"]["connector"].as_str() {
            println!("  out: {connector}");
        }
        println!("  flows: {}", texts(&s["flows"]));
        let h = &s["health"];
        println!(
            "  health: last seen {}, last success {}, calls {}, error rate {}, breaker {}",
            h["last_seen"].as_str().unwrap_or("never"),
            h["last_success"].as_str().unwrap_or("never"),
            h["calls"].as_u64().map_or("-".into(), |c| c.to_string()),
            h["error_rate"]
                .as_f64()
                .map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
            h["breaker"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}

pub fn config_reload(remote: Remote) -> Result<()> {
    let api = Api::new(&remote)?;
    let (status, body) = api.call(reqwest::Method::POST, "/v1/config/reload", &[], None)?;
    if status != 200 {
        bail!("the hub did not reload ({status}): {}", message(&body));
    }
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        println!(
            "reloaded at {}: routes [{}], default ERP {}, legal entities added [{}], removed [{}]",
            body["reloaded_at"].as_str().unwrap_or_default(),
            texts(&body["routes"]),
            body["default_erp"].as_str().unwrap_or_default(),
            texts(&body["legal_entities_added"]),
            texts(&body["legal_entities_removed"]),
        );
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ShadowArgs {
    /// The `[[routes]]` entry in shadow mode.
    #[arg(long)]
    route: String,
    /// Only this month, YYYY-MM.
    #[arg(long, value_parser = parse_month)]
    period: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

fn parse_month(raw: &str) -> std::result::Result<String, String> {
    pshub_engine::payroll::check_period(raw)
        .map(|_| raw.to_string())
        .map_err(|e| e.to_string())
}

/// `pshub shadow report`: the differences between a shadow route's two ERPs. Exits with 1
/// when there is one, so that a wave's readiness can be scripted.
pub fn shadow_report(args: ShadowArgs) -> Result<()> {
    let api = Api::new(&args.remote)?;
    let mut query = vec![("route", args.route.clone())];
    if let Some(period) = &args.period {
        query.push(("period", period.clone()));
    }
    let report = api.get("/v1/reports/shadow", &query)?;
    let differences = report["differences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if args.remote.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "route {}: {} (primary, {} lines) against {} (shadow, {} lines), {} invoices",
            report["route"].as_str().unwrap_or_default(),
            report["primary"].as_str().unwrap_or_default(),
            report["primary_lines"],
            report["shadow"].as_str().unwrap_or_default(),
            report["shadow_lines"],
            report["invoices"],
        );
        for d in &differences {
            println!(
                "{} {} {}: {}",
                d["kind"].as_str().unwrap_or_default(),
                d["project_code"].as_str().unwrap_or_default(),
                d["key"].as_str().unwrap_or_default(),
                d["detail"].as_str().unwrap_or_default()
            );
        }
        if differences.is_empty() {
            println!("no difference: the wave is ready");
        }
    }
    if !differences.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

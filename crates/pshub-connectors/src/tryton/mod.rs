//! Tryton 8.2 as the hub's ERP, over its JSON-RPC API ([`client`]), in the user's current
//! company, on the accounting baseline of TRYTON.md section 5 (the connector sets up no
//! accounting). What the hub's operations become in Tryton ([`mapping`]):
//!
//! - a provisioned project: one `party.party` for the customer (`code` = the customer id,
//!   unique in Tryton, so a repeated create fails instead of doubling) and one
//!   `project.work` of type project, invoiced by timesheet, with the configured product
//!   and `comment` = `pshub:project:<code>`;
//! - a posted line: one `timesheet.line` on the project's task for its role and rate
//!   (`<role> @ <rate> <ccy>`, created on first use), for the worker's `company.employee`
//!   (party code `EMP-<worker_id>`), with `description` = `pshub:<entry_id>:<n>`;
//! - a reversal before invoicing: the line is deleted; an invoiced line is locked in
//!   Tryton and its reversal is refused, naming the invoice;
//! - expense and milestone lines are refused for now, with that reason;
//! - a worker's costing change: the employee, with its start date (hire) or end date
//!   (termination).
//!
//! Tryton has no idempotency keys, so every create is preceded by a search for the hub's
//! key in the field above: lines one search per delivery round (up to ten batches) and
//! one create per batch. A create whose client went away still commits in Tryton up to
//! about 1.25 s later, so after a start, and after an answer that never came, the first
//! search waits out `recovery_grace` (at least the longest create timed).
//!
//! Only contracts in the company's currency post: Tryton's project invoicing bills in it.
//! Others are refused with that reason, as a case for the integration team.

pub mod client;
pub mod config;
pub mod invoice_lines;
pub mod invoicing;
pub mod local;
pub mod mapping;
pub mod opportunities;
mod psa;
mod worker;

use client::{Client, Rpc, RpcError};
use config::TrytonConfig;
use mapping::*;
use pshub_engine::ports::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Batches per delivery round (see [`Tryton::delivery_pacing`]).
const BATCHES_PER_ROUND: u32 = 10;

pub struct Tryton {
    client: Client,
    config: TrytonConfig,
    known: Mutex<Known>,
    /// No search before this instant (the recovery grace).
    not_before: Mutex<Instant>,
    longest_create: Mutex<Duration>,
    /// When lines of each (project, period) last went to Tryton, for invoicing.
    activity: Mutex<HashMap<(String, invoicing::Period), Instant>>,
    /// Held while a record that two workers may both need is found or made.
    making: Mutex<()>,
}

/// Ids read from Tryton once, by the hub's keys.
#[derive(Default)]
struct Known {
    /// The company's currency: its id and code.
    currency: Option<(i64, String)>,
    product: Option<i64>,
    /// Project code to `project.work` id.
    projects: HashMap<String, i64>,
    /// (project id, task name) to the task's `timesheet.work` id.
    tasks: HashMap<(i64, String), i64>,
    /// Worker id to `company.employee` id.
    employees: HashMap<String, i64>,
    /// Products of standalone invoice lines, by name.
    billed: HashMap<String, invoice_lines::Billed>,
    /// Project id to its party's id.
    parties: HashMap<i64, i64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn outcome<T>(result: Rpc<T>, done: impl FnOnce(T) -> ExternalId) -> Outcome {
    match result {
        Ok(value) => Outcome::Done(done(value)),
        Err(RpcError::User(reason)) => Outcome::Rejected(reason),
        Err(RpcError::Technical {
            message,
            retry_after,
        }) => Outcome::Technical {
            message,
            retry_after,
        },
        Err(RpcError::Unknown(message)) => Outcome::Unknown(message),
    }
}

fn refused<T>(reason: String) -> Rpc<T> {
    Err(RpcError::User(reason))
}

/// The first id of an answer, or why there is none.
fn first(value: &Value, what: &str) -> Rpc<i64> {
    ids(value)
        .first()
        .copied()
        .ok_or_else(|| RpcError::Unknown(format!("Tryton answered {value} for {what}")))
}

/// Lines ready to create: the answers known already, and the lines to create.
struct Prepared {
    answers: Vec<Option<Outcome>>,
    /// Timesheet lines to create.
    new: Vec<NewLine>,
    /// Standalone invoice lines to create: expenses, milestones, credits.
    standalone: Vec<NewLine>,
}

impl Prepared {
    /// The same answer for every line of a batch of `len`.
    fn all(len: usize, answer: Outcome) -> Self {
        Prepared {
            answers: vec![Some(answer); len],
            new: Vec::new(),
            standalone: Vec::new(),
        }
    }
}

/// A line's `description` in Tryton: the kind (but for time), entry and posting its key
/// names (`pshub:<entry_id>:<n>`, `pshub:milestone:<contract>:<milestone>:<n>`).
fn description_of(line: &LinePosting) -> String {
    description_of_key(&line.idempotency_key)
        .unwrap_or_else(|| line_description(&line.source_id, line.posting))
}

/// How a reversal goes: done (its line deleted), or a credit line to create.
enum Reversed {
    Done(String),
    Credit(Value),
}

/// A posted line that is new to Tryton, with its values.
struct NewLine {
    at: usize,
    project_code: String,
    date: chrono::NaiveDate,
    values: Value,
}

impl Tryton {
    pub fn connect(config: TrytonConfig) -> Result<Arc<Self>, String> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(format!("the Tryton connector: {}", problems.join("; ")));
        }
        let client = Client::new(&config)?;
        // The longest create an earlier run timed: the grace after a start covers it.
        let longest = config
            .timings_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or_default();
        Ok(Arc::new(Tryton {
            client,
            not_before: Mutex::new(Instant::now() + config.recovery_grace.max(longest)),
            config,
            known: Mutex::new(Known::default()),
            longest_create: Mutex::new(longest),
            activity: Mutex::new(HashMap::new()),
            making: Mutex::new(()),
        }))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn config(&self) -> &TrytonConfig {
        &self.config
    }

    /// How the hub's delivery worker should call this ERP: rounds of several batches, so
    /// that one commit of the hub records the outcomes of all of them, and a partial round
    /// after `batch_wait`.
    pub fn delivery_pacing(&self) -> (u32, Duration) {
        let round = self
            .config
            .batch_size
            .saturating_mul(BATCHES_PER_ROUND)
            .min(10_000);
        (round.max(self.config.batch_size), self.config.batch_wait)
    }

    /// Waits until a search can trust what it does not find.
    fn settle(&self) {
        let until = *lock(&self.not_before);
        let left = until.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            tracing::debug!(wait_ms = left.as_millis() as u64, "Tryton recovery grace");
            std::thread::sleep(left);
        }
    }

    /// A create, timed: an unanswered one defers the next search by the grace.
    fn create(&self, model: &str, values: Vec<Value>) -> Rpc<Vec<i64>> {
        let started = Instant::now();
        let answer = self
            .client
            .model(model, "create", vec![Value::Array(values)]);
        let took = started.elapsed();
        let longest = {
            let mut longest = lock(&self.longest_create);
            if took > *longest {
                *longest = took;
                if let Some(path) = &self.config.timings_file
                    && let Err(error) = std::fs::write(path, took.as_millis().to_string())
                {
                    tracing::warn!(%error, path = %path.display(), "cannot keep the longest Tryton create");
                }
            }
            *longest
        };
        if let Err(RpcError::Unknown(_)) = &answer {
            *lock(&self.not_before) = Instant::now() + self.config.recovery_grace.max(longest);
        }
        answer.map(|v| ids(&v))
    }

    fn search(&self, model: &str, domain: Value) -> Rpc<Vec<i64>> {
        self.client
            .model(
                model,
                "search",
                vec![domain, json!(0), Value::Null, Value::Null],
            )
            .map(|v| ids(&v))
    }

    fn search_read(&self, model: &str, domain: Value, fields: &[&str]) -> Rpc<Vec<Value>> {
        let rows = self.client.model(
            model,
            "search_read",
            vec![domain, json!(0), Value::Null, Value::Null, json!(fields)],
        )?;
        Ok(rows.as_array().cloned().unwrap_or_default())
    }

    /// The hub's lines among those `domain` selects, by description: their Tryton ids.
    fn lines_by_description(&self, domain: Value) -> Rpc<HashMap<String, i64>> {
        let rows = self.search_read("timesheet.line", domain, &["description"])?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r["description"].as_str()?.to_string(), r["id"].as_i64()?)))
            .collect())
    }

    /// The company's currency code.
    fn currency(&self) -> Rpc<String> {
        self.company_currency().map(|(_, code)| code)
    }

    /// The company's currency, its id and code, read once.
    fn company_currency(&self) -> Rpc<(i64, String)> {
        if let Some(currency) = lock(&self.known).currency.clone() {
            return Ok(currency);
        }
        let company = self.client.company()?;
        let read = self.client.model(
            "company.company",
            "read",
            vec![json!([company]), json!(["currency", "currency.code"])],
        )?;
        let (Some(id), Some(code)) = (
            read[0]["currency"].as_i64(),
            read[0]["currency."]["code"].as_str(),
        ) else {
            return Err(RpcError::User(format!("company {company} has no currency")));
        };
        let currency = (id, code.to_string());
        lock(&self.known).currency = Some(currency.clone());
        Ok(currency)
    }

    /// The configured product of timesheet work, read once.
    fn product(&self) -> Rpc<i64> {
        if let Some(id) = lock(&self.known).product {
            return Ok(id);
        }
        let name = &self.config.product;
        let Some(&id) = self
            .search("product.product", json!([["name", "=", name]]))?
            .first()
        else {
            return refused(format!(
                "Tryton has no product named '{name}' (the connector's `product`); create the service product of the accounting baseline"
            ));
        };
        lock(&self.known).product = Some(id);
        Ok(id)
    }

    fn in_company_currency(&self, project_code: &str, currency: &str) -> Rpc<()> {
        let company = self.currency()?;
        if currency == company {
            return Ok(());
        }
        refused(format!(
            "project {project_code} bills in {currency}, and Tryton's project invoicing bills only in the company currency {company}: route this contract to an ERP that bills {currency}"
        ))
    }

    /// The party of a customer, found by its code or created.
    fn party(&self, code: &str, name: &str) -> Rpc<i64> {
        let find = || self.search("party.party", json!([["code", "=", code]]));
        if let Some(&id) = find()?.first() {
            return Ok(id);
        }
        let values = json!({"name": name, "code": code, "addresses": [["create", [{}]]]});
        match self.create("party.party", vec![values]) {
            Ok(ids) => ids
                .first()
                .copied()
                .ok_or_else(|| RpcError::Unknown(format!("no id for party {code}"))),
            // Another writer made it meanwhile: the code is unique.
            Err(RpcError::User(why)) if why.contains("unique") => {
                find()?.first().copied().ok_or(RpcError::User(why))
            }
            Err(other) => Err(other),
        }
    }

    /// The `project.work` of a project code, from memory or by its comment.
    fn project(&self, project_code: &str) -> Rpc<Option<i64>> {
        if let Some(&id) = lock(&self.known).projects.get(project_code) {
            return Ok(Some(id));
        }
        let found = self
            .search(
                "project.work",
                json!([
                    ["comment", "=", project_comment(project_code)],
                    ["type", "=", "project"]
                ]),
            )?
            .first()
            .copied();
        if let Some(id) = found {
            lock(&self.known)
                .projects
                .insert(project_code.to_string(), id);
        }
        Ok(found)
    }

    fn provision(&self, request: &ProjectRequest) -> Rpc<i64> {
        self.in_company_currency(&request.project_code, request.currency.code())?;
        self.project_work(
            &request.project_code,
            &request.name,
            &request.customer_id,
            &request.customer_name,
        )
    }

    /// The project of a code, found by its comment or made for the customer's party.
    fn project_work(
        &self,
        project_code: &str,
        name: &str,
        customer_id: &str,
        customer_name: &str,
    ) -> Rpc<i64> {
        self.settle();
        if let Some(id) = self.project(project_code)? {
            return Ok(id);
        }
        let party = self.party(customer_id, customer_name)?;
        let values = json!({
            "name": project_name(project_code, name),
            "type": "project",
            "party": party,
            "project_invoice_method": "timesheet",
            "product": self.product()?,
            "list_price": decimal(Decimal::ZERO),
            "comment": project_comment(project_code),
            "timesheet_available": false,
        });
        let id = *self
            .create("project.work", vec![values])?
            .first()
            .ok_or_else(|| RpcError::Unknown("no id for the project".into()))?;
        lock(&self.known)
            .projects
            .insert(project_code.to_string(), id);
        Ok(id)
    }

    /// The `timesheet.work` of a project's task for one bill rate, created on first use.
    fn task(&self, project: i64, name: &str, list_price: Decimal) -> Rpc<i64> {
        let key = (project, name.to_string());
        if let Some(&work) = lock(&self.known).tasks.get(&key) {
            return Ok(work);
        }
        let found = self.search(
            "project.work",
            json!([
                ["parent", "=", project],
                ["name", "=", name],
                ["type", "=", "task"]
            ]),
        )?;
        let task = match found.first() {
            Some(&task) => task,
            None => {
                let values = json!({
                    "name": name,
                    "type": "task",
                    "parent": project,
                    "product": self.product()?,
                    "list_price": decimal(list_price),
                    "timesheet_available": true,
                });
                *self
                    .create("project.work", vec![values])?
                    .first()
                    .ok_or_else(|| RpcError::Unknown(format!("no id for task {name}")))?
            }
        };
        let read = self.client.model(
            "project.work",
            "read",
            vec![json!([task]), json!(["timesheet_works"])],
        )?;
        let work = first(
            &read[0]["timesheet_works"],
            &format!("the timesheet work of task {name}"),
        )?;
        lock(&self.known).tasks.insert(key, work);
        Ok(work)
    }

    /// The employee of a worker, found by its party code (terminated ones too) or created
    /// from `start`.
    fn employee(&self, worker_id: &str, start: Option<chrono::NaiveDate>) -> Rpc<i64> {
        if let Some(&id) = lock(&self.known).employees.get(worker_id) {
            return Ok(id);
        }
        // The ERP's and the PSA's workers may both make a worker's employee: one at a time.
        let _making = lock(&self.making);
        let code = employee_code(worker_id);
        let found = self.client.model_with(
            "company.employee",
            "search",
            vec![
                json!([["party.code", "=", code]]),
                json!(0),
                json!(1),
                Value::Null,
            ],
            json!({"active_test": false}),
        )?;
        let id = match ids(&found).first() {
            Some(&id) => id,
            None => {
                let party = self.party(&code, worker_id)?;
                let mut values = json!({"party": party, "company": self.client.company()?});
                if let Some(start) = start {
                    values["start_date"] = date(start);
                }
                *self
                    .create("company.employee", vec![values])?
                    .first()
                    .ok_or_else(|| RpcError::Unknown(format!("no id for employee {code}")))?
            }
        };
        lock(&self.known)
            .employees
            .insert(worker_id.to_string(), id);
        Ok(id)
    }

    fn costing(&self, request: &CostingRequest) -> Rpc<i64> {
        self.settle();
        let start = (request.status != "terminated").then_some(request.effective_date);
        let id = self.employee(&request.worker_id, start)?;
        let values = match request.status.as_str() {
            "terminated" => json!({"end_date": date(request.effective_date)}),
            _ => return Ok(id),
        };
        self.client
            .model("company.employee", "write", vec![json!([id]), values])?;
        Ok(id)
    }

    /// A worker's hourly cost from a date: the employee's dated cost price (one per
    /// employee and date, so a rate sent again rewrites the same one). Tryton costs a
    /// timesheet line at the price of its date when the line is written.
    fn cost_price(&self, request: &CostPriceRequest) -> Rpc<i64> {
        self.settle();
        let company = self.currency()?;
        if request.currency.code() != company {
            return refused(format!(
                "worker {}'s cost rate is in {}, and Tryton keeps cost prices in the company currency {company}",
                request.worker_id, request.currency
            ));
        }
        let employee = self.employee(&request.worker_id, None)?;
        let price = decimal(request.hourly_cost);
        let found = self.search(
            "company.employee_cost_price",
            json!([
                ["employee", "=", employee],
                ["date", "=", date(request.valid_from)]
            ]),
        )?;
        if let Some(&id) = found.first() {
            self.client.model(
                "company.employee_cost_price",
                "write",
                vec![json!([id]), json!({"cost_price": price})],
            )?;
            return Ok(id);
        }
        let values =
            json!({"employee": employee, "date": date(request.valid_from), "cost_price": price});
        self.create("company.employee_cost_price", vec![values])?
            .first()
            .copied()
            .ok_or_else(|| RpcError::Unknown("no id for the cost price".into()))
    }

    /// Lines made ready to create: one search for what Tryton has already, and the
    /// values of the rest (their projects, tasks and employees found or made).
    fn prepare(&self, lines: &[LinePosting]) -> Prepared {
        let started = Instant::now();
        let mut answers: Vec<Option<Outcome>> = vec![None; lines.len()];
        let descriptions: Vec<String> = lines.iter().map(description_of).collect();
        // Within the lines' dates: Tryton indexes lines by date, not by description, so
        // the lookup reads the lines of those days rather than the whole table.
        let first_day = lines.iter().map(|l| l.date).min();
        let last_day = lines.iter().map(|l| l.date).max();
        let mut domain = vec![json!(["description", "in", descriptions])];
        if let (Some(first_day), Some(last_day)) = (first_day, last_day) {
            domain.push(json!(["date", ">=", date(first_day)]));
            domain.push(json!(["date", "<=", date(last_day)]));
        }
        let mut found = match self.lines_by_description(Value::Array(domain)) {
            Ok(found) => found
                .into_iter()
                .map(|(d, id)| (d, id.to_string()))
                .collect::<HashMap<_, _>>(),
            Err(error) => {
                return Prepared::all(lines.len(), outcome::<()>(Err(error), |_| String::new()));
            }
        };
        // Expenses, milestones and reversals may be standalone invoice lines.
        let others: Vec<&str> = lines
            .iter()
            .zip(&descriptions)
            .filter(|(l, _)| l.kind != "time")
            .map(|(_, d)| d.as_str())
            .collect();
        if !others.is_empty() {
            match self.standalone_by_description(&others) {
                Ok(more) => found.extend(more),
                Err(error) => {
                    return Prepared::all(
                        lines.len(),
                        outcome::<()>(Err(error), |_| String::new()),
                    );
                }
            }
        }
        let mut new = Vec::new();
        let mut standalone = Vec::new();
        for (at, line) in lines.iter().enumerate() {
            if let Some(id) = found.get(&descriptions[at]) {
                answers[at] = Some(Outcome::Done(id.clone()));
                continue;
            }
            let values = match &line.reverses_erp_id {
                Some(original) => match self.reverse(line, original, &descriptions[at]) {
                    Ok(Reversed::Done(id)) => {
                        answers[at] = Some(Outcome::Done(id));
                        continue;
                    }
                    Ok(Reversed::Credit(values)) => Ok((true, values)),
                    Err(error) => Err(error),
                },
                None if line.kind == "time" => self
                    .line_values(line, &descriptions[at])
                    .map(|v| (false, v)),
                None => self
                    .charge_values(line, &descriptions[at])
                    .map(|v| (true, v)),
            };
            match values {
                Ok((is_standalone, values)) => {
                    let line = NewLine {
                        at,
                        project_code: line.project_code.clone(),
                        date: line.date,
                        values,
                    };
                    if is_standalone {
                        standalone.push(line);
                    } else {
                        new.push(line);
                    }
                }
                Err(error) => answers[at] = Some(outcome::<()>(Err(error), |_| String::new())),
            }
        }
        tracing::debug!(
            lines = lines.len(),
            new = new.len(),
            prepare_ms = started.elapsed().as_millis() as u64,
            "lines looked up in Tryton"
        );
        Prepared {
            answers,
            new,
            standalone,
        }
    }

    /// Creates `new` as `model` records in one call; a batch that Tryton refuses is split in
    /// halves until the refused lines are alone, so one bad line never holds back the
    /// others. `answer` turns an id into the step's result.
    fn create_lines(
        &self,
        model: &str,
        new: &[NewLine],
        answers: &mut [Option<Outcome>],
        answer: fn(i64) -> String,
    ) {
        if new.is_empty() {
            return;
        }
        let values = new.iter().map(|n| n.values.clone()).collect();
        match self.create(model, values) {
            Ok(ids) if ids.len() == new.len() => {
                for (line, id) in new.iter().zip(ids) {
                    self.touched(&line.project_code, line.date);
                    answers[line.at] = Some(Outcome::Done(answer(id)));
                }
            }
            Ok(ids) => {
                let message = format!("Tryton gave {} ids for {} lines", ids.len(), new.len());
                for line in new {
                    answers[line.at] = Some(Outcome::Unknown(message.clone()));
                }
            }
            Err(RpcError::User(_)) if new.len() > 1 => {
                let (left, right) = new.split_at(new.len() / 2);
                self.create_lines(model, left, answers, answer);
                self.create_lines(model, right, answers, answer);
            }
            Err(error) => {
                for line in new {
                    answers[line.at] = Some(outcome::<()>(Err(error.clone()), |_| String::new()));
                }
            }
        }
    }

    /// The hub's standalone invoice lines among `descriptions`: their ids as answered.
    fn standalone_by_description(&self, descriptions: &[&str]) -> Rpc<HashMap<String, String>> {
        let rows = self.search_read(
            "account.invoice.line",
            json!([["description", "in", descriptions]]),
            &["description"],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some((
                    r["description"].as_str()?.to_string(),
                    invoice_lines::standalone_id(r["id"].as_i64()?),
                ))
            })
            .collect())
    }

    fn line_values(&self, line: &LinePosting, description: &str) -> Rpc<Value> {
        self.in_company_currency(&line.project_code, line.currency.code())?;
        let Some(project) = self.project(&line.project_code)? else {
            return refused(format!(
                "project {} is not in Tryton: its provisioning has not reached it",
                line.project_code
            ));
        };
        // The task's list price is in the company's currency: the rate where the contract
        // prices in it, else what the line bills per hour after FX.
        let list_price = if line.rate_currency == line.currency {
            line.rate
        } else {
            line.amount
                .checked_div(line.quantity)
                .map(|p| p.round_dp(4))
                .unwrap_or(line.rate)
        };
        let role = line.role.as_deref().unwrap_or(line.billing_class.as_str());
        let task = task_name(role, list_price, line.currency);
        let work = self.task(project, &task, list_price)?;
        let employee = self.employee(&line.worker_id, None)?;
        let Some(duration) = duration(line.quantity) else {
            return refused(format!(
                "{} hours is not a duration Tryton keeps",
                line.quantity
            ));
        };
        Ok(json!({
            "employee": employee,
            "work": work,
            "date": date(line.date),
            "duration": duration,
            "description": description,
        }))
    }

    /// Withdraws a posted line: deleted while it is not invoiced (answered `deleted:<id>`,
    /// also when an earlier attempt already deleted it); once invoiced, where Tryton locks
    /// it, credited on the project's next invoice.
    fn reverse(&self, reversal: &LinePosting, original: &str, description: &str) -> Rpc<Reversed> {
        if let Some(id) = invoice_lines::standalone_of(original) {
            return match self.reverse_standalone(id)? {
                Some(done) => Ok(Reversed::Done(done)),
                None => Ok(Reversed::Credit(self.standalone_credit_values(
                    reversal,
                    id,
                    description,
                )?)),
            };
        }
        let done = format!("deleted:{original}");
        let Ok(id) = original.parse::<i64>() else {
            return refused(format!("'{original}' is not a Tryton timesheet line id"));
        };
        let read = self.search_read(
            "timesheet.line",
            json!([["id", "=", id]]),
            &["invoice_line.invoice"],
        )?;
        let Some(row) = read.first() else {
            return Ok(Reversed::Done(done));
        };
        if row["invoice_line."]["invoice"].as_i64().is_some() {
            return Ok(Reversed::Credit(self.credit_values(
                reversal,
                id,
                description,
            )?));
        }
        self.client
            .model("timesheet.line", "delete", vec![json!([id])])?;
        Ok(Reversed::Done(done))
    }

    /// Whether each key is in Tryton: lines by their description, projects by comment.
    fn find(&self, keys: &[&str]) -> Rpc<Vec<Lookup>> {
        self.settle();
        let mut answers = vec![Lookup::NotApplied; keys.len()];
        let mut lines = Vec::new();
        for (at, key) in keys.iter().enumerate() {
            if let Some(description) = description_of_key(key) {
                lines.push((at, description));
            } else if let Some(code) = key
                .strip_prefix("pshub:opportunity_to_project:erp:")
                .or_else(|| key.strip_prefix("pshub:opportunity_to_project:psa:"))
                && let Some(id) = self.project(code)?
            {
                answers[at] = Lookup::Applied(id.to_string());
            }
        }
        if !lines.is_empty() {
            let wanted: BTreeSet<&str> = lines.iter().map(|(_, d)| d.as_str()).collect();
            let found = self.lines_by_description(json!([["description", "in", wanted]]))?;
            let wanted: Vec<&str> = wanted
                .into_iter()
                .filter(|d| !found.contains_key(*d))
                .collect();
            let standalone = if wanted.is_empty() {
                HashMap::new()
            } else {
                self.standalone_by_description(&wanted)?
            };
            for (at, description) in &lines {
                if let Some(id) = found.get(description) {
                    answers[*at] = Lookup::Applied(id.to_string());
                } else if let Some(id) = standalone.get(description) {
                    answers[*at] = Lookup::Applied(id.clone());
                }
            }
        }
        Ok(answers)
    }
}

/// A timesheet line of the hub's as its read-back record; `None` for a line without the
/// hub's description.
fn read_back_line(row: &Value, price: Decimal, project: &str, currency: &str) -> Option<Value> {
    let (entry, posting) = row["description"]
        .as_str()?
        .strip_prefix("pshub:")?
        .rsplit_once(':')?;
    let hours = read_hours(&row["duration"])?;
    let amount = hours.checked_mul(price)?.round_dp(2);
    let worker = row["employee."]["party."]["code"]
        .as_str()
        .and_then(|c| c.strip_prefix("EMP-"))
        .unwrap_or_default();
    let date = read_date(&row["date"])?;
    Some(json!({
        "id": row["id"], "idempotency_key": format!("pshub:time_to_bill:post_line:time:{entry}:{posting}"),
        "kind": "time", "source_id": entry, "posting": posting.parse::<u32>().ok()?,
        "project_code": project, "worker_id": worker, "date": date.to_string(),
        "quantity": hours.normalize().to_string(), "rate": price.normalize().to_string(),
        "rate_currency": currency, "amount": amount.normalize().to_string(), "currency": currency,
        "invoice": row["invoice_line."]["invoice"],
    }))
}

impl Erp for Tryton {
    fn provision_project(&self, request: &ProjectRequest) -> Outcome {
        outcome(self.provision(request), |id| id.to_string())
    }

    /// Bill rates live on the project's tasks, one per rate, made as lines arrive.
    fn attach_billing_rules(&self, request: &BillingRulesRequest) -> Outcome {
        Outcome::Done(request.erp_id.clone())
    }

    fn update_costing(&self, request: &CostingRequest) -> Outcome {
        outcome(self.costing(request), |id| id.to_string())
    }

    fn update_cost_price(&self, request: &CostPriceRequest) -> Outcome {
        outcome(self.cost_price(request), |id| id.to_string())
    }

    /// Tryton invoices time and materials from timesheets; it keeps no schedule.
    fn issue_schedule(&self, request: &ScheduleRequest) -> Outcome {
        Outcome::Done(format!("{}:v{}", request.project_code, request.version))
    }

    /// One search for what Tryton already holds of a delivery round's lines, then one
    /// create per batch of `batch_size`.
    fn post_lines(&self, lines: &[LinePosting]) -> Vec<Outcome> {
        self.settle();
        let mut prepared = self.prepare(lines);
        let started = Instant::now();
        let size = self.config.batch_size as usize;
        for batch in prepared.new.chunks(size) {
            self.create_lines("timesheet.line", batch, &mut prepared.answers, |id| {
                id.to_string()
            });
        }
        for batch in prepared.standalone.chunks(size) {
            self.create_lines(
                "account.invoice.line",
                batch,
                &mut prepared.answers,
                invoice_lines::standalone_id,
            );
        }
        tracing::debug!(
            created = prepared.new.len(),
            create_ms = started.elapsed().as_millis() as u64,
            "lines created in Tryton"
        );
        prepared
            .answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Outcome::technical("no answer for the line")))
            .collect()
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        match self.find(keys) {
            Ok(answers) => answers,
            Err(error) => keys
                .iter()
                .map(|_| Lookup::Failed(error.message().to_string()))
                .collect(),
        }
    }

    /// The hub's timesheet lines as Tryton holds them (`lines` only), by id: hours from
    /// their duration, the amount at their task's list price in the company's currency,
    /// the project from the task's parent, and the invoice they are on.
    fn read_back(&self, collection: &str, after: u64, limit: u32) -> ReadBack {
        match collection {
            "lines" => {}
            // Tryton keeps prices on tasks and no billing rules of the hub's.
            "billing-rules" => return Ok((Vec::new(), None)),
            other => {
                return Err(format!(
                    "the Tryton connector reads back lines, not {other}"
                ));
            }
        }
        let text = |e: RpcError| e.message().to_string();
        let rows = self
            .client
            .model(
                "timesheet.line",
                "search_read",
                vec![
                    json!([["description", "like", "pshub:%"], ["id", ">", after]]),
                    json!(0),
                    json!(limit),
                    json!([["id", "ASC"]]),
                    json!([
                        "description",
                        "duration",
                        "date",
                        "employee.party.code",
                        "work",
                        "invoice_line.invoice"
                    ]),
                ],
            )
            .map_err(text)?;
        let rows = rows.as_array().cloned().unwrap_or_default();
        // A line's work is the timesheet work of a task: its list price and its project.
        let works: BTreeSet<i64> = rows.iter().filter_map(|r| r["work"].as_i64()).collect();
        let tasks = self
            .search_read(
                "project.work",
                json!([["timesheet_works", "in", works]]),
                &["timesheet_works", "list_price", "parent.comment"],
            )
            .map_err(text)?;
        let mut of_work: HashMap<i64, (Decimal, String)> = HashMap::new();
        for task in &tasks {
            let price = read_decimal(&task["list_price"]).unwrap_or_default();
            let comment = task["parent."]["comment"].as_str().unwrap_or_default();
            let Some(project) = comment.strip_prefix("pshub:project:") else {
                continue;
            };
            for work in ids(&task["timesheet_works"]) {
                of_work.insert(work, (price, project.to_string()));
            }
        }
        let currency = self.currency().map_err(text)?;
        let mut items: Vec<Value> = rows
            .iter()
            .filter_map(|r| {
                let (price, project) = of_work.get(&r["work"].as_i64()?)?;
                read_back_line(r, *price, project, &currency)
            })
            .collect();
        let next = (rows.len() as u32 == limit)
            .then(|| rows.last().and_then(|r| r["id"].as_u64()))
            .flatten();
        if next.is_none() {
            // The last page also holds the standalone lines: expenses, milestones, credits.
            let standalone = self
                .search_read(
                    "account.invoice.line",
                    json!([
                        ["description", "like", "pshub:%"],
                        ["note", "like", "pshub:%"]
                    ]),
                    &["description", "quantity", "unit_price", "note", "invoice"],
                )
                .map_err(text)?;
            items.extend(
                standalone
                    .iter()
                    .filter_map(|r| invoice_lines::read_back_standalone(r, &currency)),
            );
        }
        Ok((items, next))
    }

    fn describe(&self) -> Value {
        json!({
            "kind": "tryton",
            "url": self.config.url,
            "database": self.config.database,
            "user": self.config.user,
            "batch_size": self.config.batch_size,
        })
    }
}

//! A legacy ERP reached through a table of the machine's PostgreSQL (`kind =
//! "legacy_table"`): the hub writes each invoice line as a row of the configured table and
//! reads the statuses the legacy system sets back by its watermark column. During a
//! cut-over in waves it is one of the ERPs `[[routes]]` send work to (docs/ROUTING.md).
//!
//! - `config`: where the table is;
//! - `mapping`: the table's columns and statements;
//! - `client` (this file): the ERP port, idempotent by the table's unique key;
//! - `worker`: statuses back into the hub as `invoice.status_changed`.
//!
//! The table takes invoice lines only: projects are known to it by their code, and the
//! other ERP operations (billing rules, costing, cost prices, schedules) are answered done
//! without a write, since the legacy system keeps them itself.

pub mod config;
pub mod mapping;
pub mod worker;

use config::LegacyTableConfig;
use pshub_engine::ports::*;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::collections::HashMap;
use std::sync::Arc;

pub struct LegacyTable {
    name: String,
    config: LegacyTableConfig,
    pool: PgPool,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for LegacyTable {
    fn drop(&mut self) {
        // Dropped wherever the engine is dropped, possibly inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What went wrong with a statement, as the step's outcome: the database's refusal of a
/// value is the line's (a business refusal), anything else is technical.
fn outcome_of(error: &sqlx::Error) -> Outcome {
    match error {
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("22")) => {
            Outcome::Rejected(format!(
                "the legacy table refused the line: {}",
                db.message()
            ))
        }
        other => Outcome::technical(format!("the legacy table cannot be reached: {other}")),
    }
}

impl LegacyTable {
    /// Connects and creates the table when it is missing.
    pub fn connect(name: &str, config: LegacyTableConfig) -> Result<Arc<Self>, String> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let runtime = crate::client_runtime("pshub-legacy-table")?;
        let pool = runtime
            .block_on(
                PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(config.timeout)
                    .connect(&config.url),
            )
            .map_err(|e| format!("cannot connect to {}: {e}", config::redact(&config.url)))?;
        let table = LegacyTable {
            name: name.to_string(),
            config,
            pool,
            runtime: Some(runtime),
        };
        let create = mapping::create_table(&table.config.table, &table.config.watermark_column);
        table
            .run(sqlx::query(sqlx::AssertSqlSafe(create)).execute(&table.pool))
            .map_err(|e| format!("cannot create {}: {e}", table.config.table))?;
        Ok(Arc::new(table))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &LegacyTableConfig {
        &self.config
    }

    /// Runs a statement's future within the configured timeout.
    fn run<T>(
        &self,
        future: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let runtime = self.runtime.as_ref().ok_or(sqlx::Error::PoolClosed)?;
        runtime.block_on(async {
            tokio::time::timeout(self.config.timeout, future)
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        })
    }

    /// The row ids of the keys the table holds.
    fn ids(&self, keys: &[String]) -> Result<HashMap<String, i64>, sqlx::Error> {
        let sql = mapping::ids_of_keys(&self.config.table);
        let rows = self.run(
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(keys)
                .fetch_all(&self.pool),
        )?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    fn insert(&self, lines: &[&LinePosting]) -> Result<(), sqlx::Error> {
        let c = mapping::Columns::of(lines);
        let sql = mapping::insert_lines(&self.config.table);
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(c.keys)
            .bind(c.kinds)
            .bind(c.sources)
            .bind(c.postings)
            .bind(c.projects)
            .bind(c.workers)
            .bind(c.dates)
            .bind(c.quantities)
            .bind(c.rates)
            .bind(c.rate_currencies)
            .bind(c.amounts)
            .bind(c.currencies)
            .bind(c.tax_codes)
            .bind(c.reverses);
        self.run(query.execute(&self.pool)).map(|_| ())
    }

    /// Inserts `lines` in one statement; a batch the database refuses is split until the
    /// refused line is alone, so that one bad value holds only its own line.
    fn post(&self, lines: &[&LinePosting]) -> Vec<Outcome> {
        if lines.is_empty() {
            return Vec::new();
        }
        match self.insert(lines) {
            Ok(()) => {}
            Err(error) => {
                let refused = outcome_of(&error);
                if !matches!(refused, Outcome::Rejected(_)) || lines.len() == 1 {
                    // A statement that failed wrote nothing: the whole batch is retried.
                    return lines.iter().map(|_| refused.clone()).collect();
                }
                let (a, b) = lines.split_at(lines.len() / 2);
                let mut answers = self.post(a);
                answers.extend(self.post(b));
                return answers;
            }
        }
        let keys: Vec<String> = lines.iter().map(|l| l.idempotency_key.clone()).collect();
        match self.ids(&keys) {
            Ok(ids) => keys
                .iter()
                .map(|k| match ids.get(k) {
                    Some(id) => Outcome::Done(mapping::line_id(*id)),
                    None => Outcome::Unknown(format!("{k} was inserted but cannot be read back")),
                })
                .collect(),
            // Inserted, and the ids not read: the next attempt looks the keys up.
            Err(error) => lines
                .iter()
                .map(|_| {
                    Outcome::Unknown(format!("the inserted lines cannot be read back: {error}"))
                })
                .collect(),
        }
    }
}

impl Erp for LegacyTable {
    fn provision_project(&self, request: &ProjectRequest) -> Outcome {
        // The legacy ERP knows projects by their code.
        Outcome::Done(request.project_code.clone())
    }

    fn attach_billing_rules(&self, request: &BillingRulesRequest) -> Outcome {
        Outcome::Done(request.project_code.clone())
    }

    fn update_costing(&self, request: &CostingRequest) -> Outcome {
        crate::kept_by_the_hub::costing(request)
    }

    fn update_cost_price(&self, request: &CostPriceRequest) -> Outcome {
        crate::kept_by_the_hub::cost_price(request)
    }

    fn issue_schedule(&self, request: &ScheduleRequest) -> Outcome {
        crate::kept_by_the_hub::schedule(request)
    }

    fn post_lines(&self, lines: &[LinePosting]) -> Vec<Outcome> {
        let lines: Vec<&LinePosting> = lines.iter().collect();
        self.post(&lines)
    }

    fn lookup(&self, keys: &[&str]) -> Vec<Lookup> {
        let owned: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        match self.ids(&owned) {
            Ok(ids) => owned
                .iter()
                .map(|k| match ids.get(k) {
                    Some(id) => Lookup::Applied(mapping::line_id(*id)),
                    // Only lines are written; everything else is answered without a write.
                    None => Lookup::NotApplied,
                })
                .collect(),
            Err(error) => keys
                .iter()
                .map(|_| Lookup::Failed(format!("the legacy table cannot be read: {error}")))
                .collect(),
        }
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "legacy_table",
            "connector": self.name,
            "table": self.config.table,
            "database": config::redact(&self.config.url),
        })
    }

    fn read_back(&self, collection: &str, after: u64, limit: u32) -> ReadBack {
        match collection {
            "lines" => {}
            // Billing rules stay with the legacy system.
            "billing-rules" => return Ok((Vec::new(), None)),
            other => return Err(format!("the legacy table holds lines, not {other}")),
        }
        let sql = mapping::page(&self.config.table);
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = self
            .run(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool),
            )
            .map_err(|e| format!("the legacy table cannot be read: {e}"))?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in &rows {
            let read = || -> Result<serde_json::Value, sqlx::Error> {
                Ok(mapping::read_back_record(
                    row.try_get(0)?,
                    &row.try_get::<String, _>(1)?,
                    &row.try_get::<String, _>(2)?,
                    &row.try_get::<String, _>(3)?,
                    row.try_get(4)?,
                    &row.try_get::<String, _>(5)?,
                    &row.try_get::<String, _>(6)?,
                    row.try_get(7)?,
                    row.try_get(8)?,
                    row.try_get(9)?,
                    &row.try_get::<String, _>(10)?,
                    row.try_get(11)?,
                    &row.try_get::<String, _>(12)?,
                    &row.try_get::<String, _>(13)?,
                    row.try_get::<Option<String>, _>(14)?.as_deref(),
                ))
            };
            items
                .push(read().map_err(|e| format!("a row of the legacy table does not read: {e}"))?);
            last = Some(row.try_get::<i64, _>(0).unwrap_or_default());
        }
        let next = (rows.len() as u32 == limit)
            .then_some(last)
            .flatten()
            .map(|l| l as u64);
        Ok((items, next))
    }
}

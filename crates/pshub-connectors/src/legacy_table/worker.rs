//! The connector's worker beside the hub: every `poll_interval` the statuses the legacy
//! system set since the watermark are read and sent into the hub as
//! `invoice.status_changed` events for the hub's invoice of each project month
//! (`INV-<project>-<YYYY-MM>`), from the source that owns invoice status, keyed
//! `<connector>-<invoice>-<status>`, so that `paid` reaches the CRM. Each read starts a few
//! seconds before the watermark, for rows a long transaction stamped earlier than it
//! committed; the watermark starts at the beginning after a restart, and the hub drops
//! repeats by event id. A shadow's statuses are not sent (they are not the invoice's).

use super::LegacyTable;
use chrono::{DateTime, NaiveDate, Utc};
use pshub_engine::Engine;
use pshub_engine::flows::invoice_status::invoice_id;
use pshub_model::Domain;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How far before the watermark each read starts.
const OVERLAP: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// One project month's status as the legacy system set it.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub project_code: String,
    pub period: String,
    pub status: String,
    pub moved: DateTime<Utc>,
}

impl LegacyTable {
    pub fn spawn_worker(
        self: &Arc<Self>,
        engine: Arc<Engine>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        let table = self.clone();
        std::thread::Builder::new()
            .name(format!("pshub-{}", self.name))
            .spawn(move || table.work(&engine, &stop))
    }

    fn work(&self, engine: &Engine, stop: &AtomicBool) {
        let mut watermark = DateTime::<Utc>::UNIX_EPOCH;
        let mut reported: HashSet<String> = HashSet::new();
        while !stop.load(Ordering::Relaxed) {
            // Read from a little before the watermark: a row stamped earlier by a transaction
            // that committed later is still seen (what was sent is not sent again).
            match self.statuses_since(watermark - OVERLAP) {
                Ok(statuses) => {
                    let source = engine.config().owner_of(Domain::InvoiceStatus).to_string();
                    let events: Vec<Value> = statuses
                        .iter()
                        .filter(|s| !crate::shadow_only(engine, &s.project_code, &self.name))
                        .filter_map(|s| self.status_event(&source, s))
                        .filter(|e| !reported.contains(e["id"].as_str().unwrap_or_default()))
                        .collect();
                    let newest = statuses.iter().map(|s| s.moved).max();
                    if events.is_empty() || send(engine, &events, &mut reported) {
                        // Rows moved in the same instant later still match: `>=`.
                        watermark = newest.unwrap_or(watermark).max(watermark);
                    }
                }
                Err(error) => {
                    tracing::warn!(connector = %self.name, %error, "cannot read statuses from the legacy table")
                }
            }
            sleep_unless_stopped(stop, self.config.poll_interval);
        }
    }

    /// Each project month's statuses moved at or after `watermark`, oldest first.
    pub fn statuses_since(&self, watermark: DateTime<Utc>) -> Result<Vec<Status>, String> {
        let sql = super::mapping::statuses_since(&self.config.table, &self.config.watermark_column);
        let rows = self
            .run(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(watermark)
                    .fetch_all(&self.pool),
            )
            .map_err(|e| e.to_string())?;
        rows.iter()
            .map(|r| {
                Ok(Status {
                    project_code: r.try_get(0)?,
                    period: r.try_get(1)?,
                    status: r.try_get(2)?,
                    moved: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| e.to_string())
    }

    fn status_event(&self, source: &str, status: &Status) -> Option<Value> {
        let first = NaiveDate::parse_from_str(&format!("{}-01", status.period), "%Y-%m-%d").ok()?;
        let invoice = invoice_id(&status.project_code, first);
        let at = status
            .moved
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Some(json!({
            "id": format!("{}-{invoice}-{}", self.name, status.status),
            "source": source,
            "type": "invoice.status_changed",
            "schema_version": 1,
            "occurred_at": at,
            "data": { "invoice_id": invoice, "status": status.status, "at": at },
        }))
    }
}

/// Sends the events; answers whether the hub took them.
fn send(engine: &Engine, events: &[Value], reported: &mut HashSet<String>) -> bool {
    match engine.submit(events.to_vec()) {
        Ok(_) => {
            reported.extend(
                events
                    .iter()
                    .filter_map(|e| e["id"].as_str().map(str::to_string)),
            );
            true
        }
        Err(error) => {
            tracing::warn!(%error, "cannot send the legacy table's statuses to the hub");
            false
        }
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}

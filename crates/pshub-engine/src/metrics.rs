//! Counters the engine keeps for `/metrics`. Names are defined here once.

use crate::store::Counters;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub events_received: Counter,
    pub events_duplicate: Counter,
    pub events_conflict: Counter,
    pub events_quarantined: Counter,
    pub reapprovals_suppressed: Counter,
    /// Batches decided while the batch before them was still committing.
    pub batches_decided_ahead: Counter,
    pub lines_posted: Counter,
    pub reversals_posted: Counter,
    pub cases_opened: Counter,
    pub delivery_failures: Counter,
    pub dead_letters: Counter,
    /// `entity_onboarding_seconds` of each legal entity added by a reload, once it posted.
    pub onboarding: std::sync::Mutex<std::collections::BTreeMap<String, f64>>,
    /// What each source's connector did, by (source, event): files taken, polls, ...
    pub connector_events: std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
}

impl Metrics {
    pub fn record_ingest(&self, counters: &Counters) {
        self.events_received.add(counters.received);
        self.events_duplicate.add(counters.duplicates);
        self.events_conflict.add(counters.conflicts);
        self.events_quarantined.add(counters.quarantined);
    }

    /// Counts one event of a source's connector (its typed event logs it).
    pub fn connector_event(&self, source: &str, event: &'static str) {
        let mut events = self
            .connector_events
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *events.entry((source.to_string(), event)).or_insert(0) += 1;
    }

    /// How often `source`'s connector had `event`.
    pub fn connector_count(&self, source: &str, event: &'static str) -> u64 {
        let events = self
            .connector_events
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        events
            .get(&(source.to_string(), event))
            .copied()
            .unwrap_or(0)
    }

    pub fn record_onboarding(&self, entity: &str, seconds: Option<f64>) {
        if let Some(seconds) = seconds {
            let mut onboarding = self.onboarding.lock().unwrap_or_else(|p| p.into_inner());
            onboarding.insert(entity.to_string(), seconds);
        }
    }

    /// The counters in Prometheus' text format, with their help lines.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &Counter); 11] = [
            (
                "pshub_events_received_total",
                "Events received, valid or not.",
                &self.events_received,
            ),
            (
                "pshub_events_duplicate_total",
                "Events suppressed as duplicates.",
                &self.events_duplicate,
            ),
            (
                "pshub_events_conflict_total",
                "Events kept as conflicts (same id, other body).",
                &self.events_conflict,
            ),
            (
                "pshub_events_quarantined_total",
                "Events quarantined as malformed.",
                &self.events_quarantined,
            ),
            (
                "pshub_reapprovals_suppressed_total",
                "Approvals of already billed entries, not billed again.",
                &self.reapprovals_suppressed,
            ),
            (
                "pshub_batches_decided_ahead_total",
                "Batches decided while the batch before them was still being committed.",
                &self.batches_decided_ahead,
            ),
            (
                "pshub_lines_posted_total",
                "Invoice lines posted to the ERP.",
                &self.lines_posted,
            ),
            (
                "pshub_reversals_posted_total",
                "Reversal lines posted to the ERP.",
                &self.reversals_posted,
            ),
            (
                "pshub_exceptions_opened_total",
                "Exception cases opened.",
                &self.cases_opened,
            ),
            (
                "pshub_delivery_failures_total",
                "Outbound attempts that failed technically.",
                &self.delivery_failures,
            ),
            (
                "pshub_dead_letters_total",
                "Steps dead-lettered after their retries.",
                &self.dead_letters,
            ),
        ];
        let mut text = String::new();
        for (name, help, counter) in rows {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                counter.get()
            ));
        }
        let onboarding = self.onboarding.lock().unwrap_or_else(|p| p.into_inner());
        if !onboarding.is_empty() {
            text.push_str("# HELP pshub_entity_onboarding_seconds From the configuration change that added a legal entity to its first posted line.\n# TYPE pshub_entity_onboarding_seconds gauge\n");
            for (entity, seconds) in onboarding.iter() {
                text.push_str(&format!(
                    "pshub_entity_onboarding_seconds{{legal_entity=\"{entity}\"}} {seconds}\n"
                ));
            }
        }
        drop(onboarding);
        let events = self
            .connector_events
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !events.is_empty() {
            text.push_str("# HELP pshub_connector_events_total What each source's connector did: files taken or failed, folder scans, polls.\n# TYPE pshub_connector_events_total counter\n");
            for ((source, event), count) in events.iter() {
                text.push_str(&format!(
                    "pshub_connector_events_total{{source=\"{source}\",event=\"{event}\"}} {count}\n"
                ));
            }
        }
        text
    }
}

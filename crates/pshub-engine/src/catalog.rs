//! The integration catalog (`pshub catalog`, `GET /v1/catalog`): every configured system
//! with the domains it owns, how it reaches the hub and how the hub reaches it (connector,
//! transport, mappings with their versions), the flows that use it, the team that owns it,
//! and its health.

use crate::Engine;
use crate::flows::{self, Calls};
use pshub_model::records::OwnerTeam;
use pshub_model::{Domain, EventType};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// The team that answers for a domain's data: what its cases go to.
fn team_of(domain: Domain) -> OwnerTeam {
    match domain {
        Domain::Worker | Domain::Payroll | Domain::Availability => OwnerTeam::Hr,
        Domain::Assignment | Domain::Time | Domain::Expense | Domain::Milestone => OwnerTeam::Pmo,
        Domain::Customer
        | Domain::Opportunity
        | Domain::Contract
        | Domain::RateCard
        | Domain::CostRate
        | Domain::Fx
        | Domain::InvoiceStatus => OwnerTeam::Finance,
    }
}

/// The team that owns a system: that of most of the domains it owns (the first in the
/// order of `OwnerTeam::ALL` on a tie); the integration team for a system that owns none.
fn owner_team(owns: &[Domain]) -> OwnerTeam {
    OwnerTeam::ALL
        .into_iter()
        .map(|team| (owns.iter().filter(|d| team_of(**d) == team).count(), team))
        .filter(|(count, _)| *count > 0)
        .max_by(|(a, ta), (b, tb)| {
            a.cmp(b).then_with(|| {
                let at = |t: &OwnerTeam| OwnerTeam::ALL.iter().position(|x| x == t);
                at(tb).cmp(&at(ta))
            })
        })
        .map_or(OwnerTeam::Integration, |(_, team)| team)
}

fn millis_text(ms: i64) -> Option<String> {
    (ms > 0)
        .then(|| chrono::DateTime::from_timestamp_millis(ms))
        .flatten()
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

impl Engine {
    /// Every configured system, as the catalog lists it, by name.
    pub fn catalog(&self) -> Value {
        let config = self.config();
        let systems = self.systems();
        let mut names: Vec<String> = systems
            .as_object()
            .map(|all| all.keys().cloned().collect())
            .unwrap_or_default();
        names.extend(config.inbound.keys().cloned());
        names.extend(config.csv_drops.keys().cloned());
        names.extend(config.rest_polls.keys().cloned());
        names.extend(config.amqp_sources.keys().cloned());
        names.extend(config.pg_tables.keys().cloned());
        names.extend(config.nats_sources.keys().cloned());
        names.extend(config.amqp_targets.keys().cloned());
        names.extend(config.pg_table_targets.keys().cloned());
        names.sort();
        names.dedup();
        let erps: Vec<&str> = config.erp_systems();
        let mut all = serde_json::Map::new();
        for name in names {
            let owns: Vec<Domain> = Domain::ALL
                .iter()
                .copied()
                .filter(|d| config.owner_of(*d) == name)
                .collect();
            let mut inbound = Vec::new();
            if config.knows_source(&name) {
                inbound.push(json!({
                    "connector": "events_api",
                    "transport": "HTTP POST /v1/events, canonical events, bearer token",
                }));
            }
            let mappings_of = |names: &[String]| -> Vec<Value> {
                names
                    .iter()
                    .map(|m| match config.mappings.get(m) {
                        Some(mapping) => json!({
                            "name": mapping.name, "record": mapping.record,
                            "version": mapping.version, "target": mapping.target,
                        }),
                        None => json!({ "name": m, "missing": true }),
                    })
                    .collect()
            };
            if let Some(hook) = config.inbound.get(&name) {
                inbound.push(json!({
                    "connector": "webhook",
                    "transport": format!("HTTP POST /v1/hooks/{name}, signed {}", hook.signature.as_str()),
                    "mappings": mappings_of(&hook.mappings),
                }));
            }
            if let Some(drop) = config.csv_drops.get(&name) {
                inbound.push(json!({
                    "connector": "csv_drop",
                    "transport": format!("CSV files in {}", drop.dir.display()),
                    "mappings": mappings_of(&drop.mappings),
                }));
            }
            if let Some(poll) = config.rest_polls.get(&name) {
                inbound.push(json!({
                    "connector": "rest_poll",
                    "transport": format!("HTTP GET {} every {} ms, by modification time", poll.url, poll.poll.as_millis()),
                    "mappings": mappings_of(&poll.mappings),
                }));
            }
            if let Some(nats) = config.nats_sources.get(&name) {
                inbound.push(json!({
                    "connector": "nats",
                    "transport": format!("NATS JetStream {} (stream {}) at {}, acknowledged after commit", nats.subject, nats.stream, nats.url),
                    "mappings": mappings_of(&nats.mappings),
                }));
            }
            if let Some(table) = config.pg_tables.get(&name) {
                inbound.push(json!({
                    "connector": "pg_table",
                    "transport": format!("PostgreSQL table {} at {}, by {} every {} ms", table.table, table.shown_url(), table.watermark, table.poll.as_millis()),
                    "mappings": mappings_of(&table.mappings),
                }));
            }
            if let Some(amqp) = config.amqp_sources.get(&name) {
                inbound.push(json!({
                    "connector": "amqp",
                    "transport": format!("AMQP 0-9-1 queue {} at {}, acknowledged after commit", amqp.queue, amqp.shown_url()),
                    "mappings": mappings_of(&amqp.mappings),
                }));
            }
            let calls_it = |calls: Calls| match calls {
                Calls::Psa => config.psa_system == name,
                Calls::Erp => erps.contains(&name.as_str()),
                Calls::Crm => config.crm_system == name,
                Calls::Tax => config.tax_system.as_deref() == Some(name.as_str()),
            };
            let used_by: Vec<&str> = flows::ALL
                .iter()
                .filter(|flow| {
                    let reads = EventType::ALL
                        .iter()
                        .any(|t| owns.contains(&t.domain()) && flow.reacts_to(*t));
                    reads || flow.calls().iter().any(|c| calls_it(*c))
                })
                .map(|flow| flow.name())
                .collect();
            let described = &systems[&name];
            let breaker = self.breaker(&name);
            let health = json!({
                "last_seen": described.get("last_seen").cloned().unwrap_or(Value::Null),
                "last_success": breaker.and_then(|b| millis_text(b.last_success_ms.load(Ordering::Relaxed))),
                "calls": breaker.map(|b| b.calls.load(Ordering::Relaxed)),
                "failed_calls": breaker.map(|b| b.failed_calls.load(Ordering::Relaxed)),
                "error_rate": breaker.and_then(|b| {
                    let calls = b.calls.load(Ordering::Relaxed);
                    (calls > 0).then(|| b.failed_calls.load(Ordering::Relaxed) as f64 / calls as f64)
                }),
                "breaker": breaker.map(|b| b.state().as_str()),
            });
            all.insert(
                name.clone(),
                json!({
                    "owns": owns.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                    "owner_team": owner_team(&owns).as_str(),
                    "inbound": inbound,
                    "outbound": self.port(&name).map(|port| json!({
                        "connector": port.kind(),
                        "target": port.describe(),
                    })).or_else(|| config.amqp_targets.get(&name).map(|t| json!({
                        "connector": "amqp",
                        "target": { "transport": format!("the outbound stream to exchange {} at {}", t.exchange, t.shown_url()) },
                    }))).or_else(|| config.pg_table_targets.get(&name).map(|t| json!({
                        "connector": "pg_table",
                        "target": { "transport": format!("the outbound stream to table {} at {}", t.table, t.shown_url()) },
                    }))),
                    "flows": used_by,
                    "health": health,
                }),
            );
        }
        Value::Object(all)
    }
}

//! Cut-over in waves (PRODUCT.md section 10): what a reload of the configuration changes
//! while the hub runs, when a newly configured legal entity first posted (the KPI
//! `entity_onboarding_seconds`), and the shadow report of a route that posts to two ERPs.
//!
//! Routing itself is decided where work is written ([`Config::route`], through
//! `Cx::erps_of_project`): a step keeps the ERP it was written for, so a reload changes
//! where new work goes and never moves work in flight.

use crate::config::Config;
use crate::error::{ActionError, Result};
use crate::leakage::{Held, read_all};
use crate::ports::{Port, Systems};
use crate::store::{LineFilter, LineStatus, Page, StoreReader};
use crate::world::World;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Re-reads the configuration from where it came (the file `serve` was started with).
pub type Reloader = Box<dyn Fn() -> std::result::Result<Config, String> + Send + Sync>;

/// What a reload changed.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub at: DateTime<Utc>,
    pub routes: Vec<String>,
    pub legal_entities_added: Vec<String>,
    pub legal_entities_removed: Vec<String>,
    pub default_erp: String,
}

impl Reloaded {
    pub fn to_json(&self) -> Value {
        json!({
            "reloaded_at": self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "routes": self.routes,
            "default_erp": self.default_erp,
            "legal_entities_added": self.legal_entities_added,
            "legal_entities_removed": self.legal_entities_removed,
        })
    }
}

/// The running configuration with the parts a reload may change taken from `new`: the
/// routes, the default ERP, legal entities and their tax codes. Every ERP a route names
/// must be one this process delivers to (a new connector needs a restart).
pub fn merge(
    current: &Config,
    new: Config,
    systems: &Systems,
) -> std::result::Result<(Config, Reloaded), ActionError> {
    for erp in new.erp_systems() {
        match systems.get(erp) {
            Some(Port::Erp(_)) => {}
            Some(other) => {
                return Err(ActionError::Invalid(format!(
                    "the configuration routes ERP work to {erp}, which is a {} here",
                    other.kind()
                )));
            }
            None => {
                return Err(ActionError::Invalid(format!(
                    "the configuration routes ERP work to {erp}, which this process does not deliver to; a new connector takes a restart"
                )));
            }
        }
    }
    let added = new
        .legal_entities
        .keys()
        .filter(|e| !current.legal_entities.contains_key(*e))
        .cloned()
        .collect();
    let removed = current
        .legal_entities
        .keys()
        .filter(|e| !new.legal_entities.contains_key(*e))
        .cloned()
        .collect();
    let mut next = current.clone();
    next.routes = new.routes;
    next.erp_system = new.erp_system;
    next.legal_entities = new.legal_entities;
    next.tax_codes = new.tax_codes;
    next.default_tax_code = new.default_tax_code;
    let reloaded = Reloaded {
        at: Utc::now(),
        routes: next.routes.iter().map(|r| r.name.clone()).collect(),
        legal_entities_added: added,
        legal_entities_removed: removed,
        default_erp: next.erp_system.clone(),
    };
    Ok((next, reloaded))
}

/// A legal entity added by a reload, and when its first line was posted.
#[derive(Debug, Clone)]
pub struct Onboarding {
    pub legal_entity: String,
    pub configured_at: DateTime<Utc>,
    pub first_posted_at: Option<DateTime<Utc>>,
}

impl Onboarding {
    /// `entity_onboarding_seconds`: from the configuration change to the first posted line.
    pub fn seconds(&self) -> Option<f64> {
        let posted = self.first_posted_at?;
        Some((posted - self.configured_at).num_milliseconds().max(0) as f64 / 1_000.0)
    }

    pub fn to_json(&self) -> Value {
        let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        json!({
            "legal_entity": self.legal_entity,
            "configured_at": stamp(self.configured_at),
            "first_posted_at": self.first_posted_at.map(stamp),
            "entity_onboarding_seconds": self.seconds(),
        })
    }
}

/// When the first line of `entity`'s projects was posted (its step done), if one was.
pub fn first_posted(
    world: &World,
    reads: &mut dyn StoreReader,
    entity: &str,
) -> Result<Option<DateTime<Utc>>> {
    let mut first: Option<DateTime<Utc>> = None;
    for project in world
        .projects()
        .filter(|p| p.project.legal_entity == entity)
    {
        let filter = LineFilter {
            project_code: Some(project.project.project_code.to_string()),
            status: Some(LineStatus::Posted),
            ..LineFilter::default()
        };
        for line in reads.lines(&filter, Page::first(100))? {
            let done = line
                .step
                .done_at
                .as_deref()
                .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                .map(|d| d.with_timezone(&Utc));
            if let Some(done) = done {
                first = Some(first.map_or(done, |f| f.min(done)));
            }
        }
    }
    Ok(first)
}

/// One difference between what the two ERPs of a shadow route hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// `missing_in_primary`, `missing_in_shadow`, `quantity`, `amount`, `currency` (per
    /// entry line) or `invoice_total` (per project and month).
    pub kind: &'static str,
    pub key: String,
    pub entry_id: String,
    pub project_code: String,
    pub period: String,
    pub primary: Option<String>,
    pub shadow: Option<String>,
    pub detail: String,
}

impl Difference {
    pub fn to_json(&self) -> Value {
        json!({
            "kind": self.kind, "key": self.key, "entry_id": self.entry_id,
            "project_code": self.project_code, "period": self.period,
            "primary": self.primary, "shadow": self.shadow, "detail": self.detail,
        })
    }
}

/// The shadow report of one route over a period: every difference named.
#[derive(Debug, Clone)]
pub struct ShadowReport {
    pub route: String,
    pub primary: String,
    pub shadow: String,
    pub period: Option<String>,
    pub primary_lines: usize,
    pub shadow_lines: usize,
    pub invoices: usize,
    pub differences: Vec<Difference>,
}

impl ShadowReport {
    pub fn to_json(&self) -> Value {
        json!({
            "route": self.route, "primary": self.primary, "shadow": self.shadow,
            "period": self.period, "primary_lines": self.primary_lines,
            "shadow_lines": self.shadow_lines, "invoices": self.invoices,
            "ready": self.differences.is_empty(),
            "differences": self.differences.iter().map(Difference::to_json).collect::<Vec<_>>(),
        })
    }

    /// One line per difference, for the terminal.
    pub fn text_lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "route {}: {} (primary, {} lines) against {} (shadow, {} lines), {} invoices{}",
            self.route,
            self.primary,
            self.primary_lines,
            self.shadow,
            self.shadow_lines,
            self.invoices,
            self.period
                .as_ref()
                .map(|p| format!(", period {p}"))
                .unwrap_or_default()
        )];
        if self.differences.is_empty() {
            out.push("no difference: the wave is ready".into());
        }
        for d in &self.differences {
            out.push(format!(
                "{} {} {} {}: {}",
                d.kind, d.project_code, d.period, d.key, d.detail
            ));
        }
        out
    }
}

/// Compares what the primary and the shadow ERP of `route` hold for the work the route
/// matches, per entry line (by idempotency key: present in both, same quantity, amount and
/// currency) and per invoice (each project's month, its total in each).
pub fn shadow_report(
    config: &Config,
    systems: &Systems,
    projects: &std::collections::HashSet<String>,
    route_name: &str,
    period: Option<&str>,
) -> std::result::Result<ShadowReport, ActionError> {
    let route = config
        .routes
        .iter()
        .find(|r| r.name == route_name)
        .ok_or_else(|| ActionError::NotFound(format!("route {route_name}")))?;
    let Some(shadow) = route.shadow.as_deref() else {
        return Err(ActionError::WrongState(format!(
            "route {route_name} is not in shadow mode"
        )));
    };
    let range =
        match period {
            Some(p) => Some(crate::costing::month_range(p).ok_or_else(|| {
                ActionError::Invalid(format!("period '{p}' is not a month YYYY-MM"))
            })?),
            None => None,
        };
    let read = |system: &str| -> std::result::Result<BTreeMap<String, Held>, ActionError> {
        let Some(Port::Erp(erp)) = systems.get(system) else {
            return Err(ActionError::Invalid(format!("{system} is not an ERP here")));
        };
        let lines = read_all(erp.as_ref(), "lines", crate::leakage::held)?;
        Ok(lines
            .into_iter()
            .filter(|l| projects.contains(&l.project_code))
            .filter(|l| match (range, l.date) {
                (None, _) => true,
                (Some((from, to)), Some(d)) => from <= d && d <= to,
                (Some(_), None) => false,
            })
            .map(|l| (l.key.clone(), l))
            .collect())
    };
    let primary = read(&route.erp)?;
    let copy = read(shadow)?;
    let mut differences = Vec::new();
    // Per invoice (a project's month, as the hub names it) and currency: each ERP's total.
    let mut totals: BTreeMap<(String, String, String, String), (Decimal, Decimal)> =
        BTreeMap::new();
    for (key, p) in &primary {
        let total = totals.entry(invoice_of(p)).or_default();
        total.0 += p.amount;
        let Some(s) = copy.get(key) else {
            differences.push(difference(
                "missing_in_shadow",
                p,
                Some(p.amount),
                None,
                format!("{} holds the line, {shadow} does not", route.erp),
            ));
            continue;
        };
        if p.quantity != s.quantity {
            differences.push(difference(
                "quantity",
                p,
                Some(p.quantity),
                Some(s.quantity),
                format!(
                    "quantity {} in {}, {} in {shadow}",
                    p.quantity.normalize(),
                    route.erp,
                    s.quantity.normalize()
                ),
            ));
        }
        if p.currency != s.currency {
            differences.push(Difference {
                primary: Some(p.currency.clone()),
                shadow: Some(s.currency.clone()),
                ..difference(
                    "currency",
                    p,
                    None,
                    None,
                    format!(
                        "currency {} in {}, {} in {shadow}",
                        p.currency, route.erp, s.currency
                    ),
                )
            });
        } else if p.amount != s.amount {
            differences.push(difference(
                "amount",
                p,
                Some(p.amount),
                Some(s.amount),
                format!(
                    "amount {} in {}, {} in {shadow}",
                    p.amount.normalize(),
                    route.erp,
                    s.amount.normalize()
                ),
            ));
        }
    }
    for (key, s) in &copy {
        let total = totals.entry(invoice_of(s)).or_default();
        total.1 += s.amount;
        if !primary.contains_key(key) {
            differences.push(difference(
                "missing_in_primary",
                s,
                None,
                Some(s.amount),
                format!("{shadow} holds the line, {} does not", route.erp),
            ));
        }
    }
    for ((invoice, project, period, currency), (p, s)) in &totals {
        if p != s {
            differences.push(Difference {
                kind: "invoice_total",
                key: invoice.clone(),
                entry_id: String::new(),
                project_code: project.clone(),
                period: period.clone(),
                primary: Some(p.normalize().to_string()),
                shadow: Some(s.normalize().to_string()),
                detail: format!(
                    "invoice total {} {currency} in {}, {} {currency} in {shadow}",
                    p.normalize(),
                    route.erp,
                    s.normalize()
                ),
            });
        }
    }
    Ok(ShadowReport {
        route: route.name.clone(),
        primary: route.erp.clone(),
        shadow: shadow.to_string(),
        period: period.map(str::to_string),
        primary_lines: primary.len(),
        shadow_lines: copy.len(),
        invoices: totals.len(),
        differences,
    })
}

/// The projects whose work is the route's: the first route that matches them is this one.
pub fn projects_of_route(
    config: &Config,
    world: &World,
    route: &str,
) -> std::collections::HashSet<String> {
    world
        .projects()
        .map(|p| p.project.project_code.to_string())
        .filter(|code| config.route_of_project(world, code).route == Some(route))
        .collect()
}

/// The invoice a line is on as the hub names them, with its project, month and currency.
fn invoice_of(line: &Held) -> (String, String, String, String) {
    let invoice = line
        .date
        .map(|d| crate::flows::invoice_status::invoice_id(&line.project_code, d))
        .unwrap_or_default();
    (
        invoice,
        line.project_code.clone(),
        month(line.date),
        line.currency.clone(),
    )
}

fn month(date: Option<NaiveDate>) -> String {
    date.map(|d| format!("{:04}-{:02}", d.year(), d.month()))
        .unwrap_or_default()
}

fn difference(
    kind: &'static str,
    line: &Held,
    primary: Option<Decimal>,
    shadow: Option<Decimal>,
    detail: String,
) -> Difference {
    Difference {
        kind,
        key: line.key.clone(),
        entry_id: line.source_id.clone(),
        project_code: line.project_code.clone(),
        period: month(line.date),
        primary: primary.map(|d| d.normalize().to_string()),
        shadow: shadow.map(|d| d.normalize().to_string()),
        detail,
    }
}

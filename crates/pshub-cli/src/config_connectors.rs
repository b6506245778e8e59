//! The configuration file's systems the hub calls: `[connectors.<name>]` tables, each with
//! its `kind` (`tryton`, `legacy_table`); `[erp] connector = "<name>"` names the ERP of
//! work no route matches, and `[[routes]]` send work by legal entity, region or service
//! line to one of them, first match wins (`examples/routing.toml`, docs/ROUTING.md). A
//! Tryton (`examples/tryton.toml`):
//!
//! ```toml
//! [erp]
//! connector = "tryton"
//!
//! [connectors.tryton]
//! kind = "tryton"
//! url = "${PSHUB_TRYTON_URL}"
//! database = "${PSHUB_TRYTON_DATABASE}"
//! user = "${PSHUB_TRYTON_USER}"
//! password = "${PSHUB_TRYTON_PASSWORD}"
//! product = "Consulting hour"
//! batch_size = 500
//! batch_wait_ms = 200
//! recovery_grace_ms = 2000
//! poll_interval_s = 30
//!
//! [connectors.tryton.invoicing]
//! enabled = true
//! period = "month"
//! after_idle_s = 10
//! post = true
//! ```

use pshub_connectors::legacy_table::config::LegacyTableConfig;
use pshub_connectors::tryton::config::{Invoicing, Opportunities, TrytonConfig};
use pshub_engine::config::Route;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

type Text = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSection {
    /// `[erp]` or `[psa]`: the `[connectors.<name>]` that takes the role; else the
    /// sandbox's.
    pub connector: Option<Text>,
}

/// The system name of a connector in the PSA role: a connector is one system per role.
pub fn psa_system(connector: &str) -> String {
    format!("{connector}-psa")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSection {
    kind: Text,
    url: Option<Text>,
    database: Option<Text>,
    user: Option<Text>,
    password: Option<Text>,
    product: Option<Text>,
    expense_product: Option<Text>,
    milestone_product: Option<Text>,
    batch_size: Option<Spanned<i64>>,
    batch_wait_ms: Option<Spanned<i64>>,
    recovery_grace_ms: Option<Spanned<i64>>,
    timeout_ms: Option<Spanned<i64>>,
    poll_interval_s: Option<Spanned<i64>>,
    invoicing: Option<InvoicingSection>,
    opportunities: Option<OpportunitiesSection>,
    /// `legacy_table`: the table and its watermark column.
    table: Option<Text>,
    watermark_column: Option<Text>,
}

impl std::fmt::Debug for ConnectorSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("ConnectorSection")
            .field("kind", self.kind.get_ref())
            .field("url", &self.url.as_ref().map(|u| u.get_ref()))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvoicingSection {
    enabled: Option<bool>,
    period: Option<Text>,
    after_idle_s: Option<Spanned<i64>>,
    post: Option<bool>,
}

/// `[connectors.<name>.opportunities]`: won deals read from Tryton.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpportunitiesSection {
    enabled: Option<bool>,
    rate_card_id: Option<Text>,
    billing_model: Option<Text>,
    legal_entity: Option<Text>,
    region: Option<Text>,
    service_line: Option<Text>,
    country: Option<Text>,
    project_prefix: Option<Text>,
    mapping: Option<Text>,
}

pub const KINDS: [&str; 2] = ["tryton", "legacy_table"];

/// A configured connector, by kind.
#[derive(Debug, Clone)]
pub enum Connector {
    Tryton(Box<TrytonConfig>),
    LegacyTable(LegacyTableConfig),
}

/// `[[routes]]`: one entry of the ERP routing table (first match wins).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    name: Option<Text>,
    legal_entity: Option<OneOrMany>,
    region: Option<OneOrMany>,
    service_line: Option<OneOrMany>,
    erp: Text,
    mode: Option<Text>,
    shadow: Option<Text>,
}

/// A value or a list of them: `legal_entity = "DE01"` or `["DE01", "AT01"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    // Plain strings: a span does not pass through an untagged enum.
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn values(option: &Option<OneOrMany>) -> Vec<String> {
        match option {
            None => Vec::new(),
            Some(OneOrMany::One(value)) => vec![value.clone()],
            Some(OneOrMany::Many(list)) => list.clone(),
        }
    }
}

/// The name of the sandbox's ERP among the systems, which a route may name too.
pub const SANDBOX_ERP: &str = "erp";

/// Every error of `[[routes]]`, each with its line: an ERP that no connector is, a shadow
/// missing or the same as the primary, a mode that is neither, a name given twice.
pub fn check_routes(
    routes: &[RouteSection],
    connectors: &BTreeMap<Text, ConnectorSection>,
    erp_targets: &[String],
    at: impl Fn(Range<usize>) -> String,
) -> Vec<String> {
    let mut errors = Vec::new();
    let known = |name: &str| {
        name == SANDBOX_ERP
            || connectors.keys().any(|k| k.get_ref() == name)
            || erp_targets.iter().any(|t| t == name)
    };
    let mut names = std::collections::BTreeSet::new();
    for (i, route) in routes.iter().enumerate() {
        let here = at(route.erp.span());
        let name = route_name(route, i);
        if !names.insert(name.clone()) {
            errors.push(format!("{here}: [[routes]] name '{name}' is given twice"));
        }
        if !known(route.erp.get_ref()) {
            errors.push(format!(
                "{here}: [[routes]] {name}: erp '{}' names no [connectors.{}] table, no [targets] ERP, nor the sandbox's erp",
                route.erp.get_ref(),
                route.erp.get_ref()
            ));
        }
        let shadow_mode = match route.mode.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("primary") => false,
            Some("shadow") => true,
            Some(other) => {
                errors.push(format!(
                    "{}: [[routes]] {name}: mode '{other}' is not primary or shadow",
                    at(route.mode.as_ref().map_or(route.erp.span(), |m| m.span()))
                ));
                false
            }
        };
        match (&route.shadow, shadow_mode) {
            (None, true) => errors.push(format!(
                "{here}: [[routes]] {name}: mode = \"shadow\" needs shadow, the ERP that receives the copy"
            )),
            (Some(shadow), false) => errors.push(format!(
                "{}: [[routes]] {name}: shadow is given, but mode is not \"shadow\"",
                at(shadow.span())
            )),
            (Some(shadow), true) if shadow.get_ref() == route.erp.get_ref() => errors.push(format!(
                "{}: [[routes]] {name}: the shadow is the primary ERP itself",
                at(shadow.span())
            )),
            (Some(shadow), true) if !known(shadow.get_ref()) => errors.push(format!(
                "{}: [[routes]] {name}: shadow '{}' names no [connectors.{}] table",
                at(shadow.span()),
                shadow.get_ref(),
                shadow.get_ref()
            )),
            _ => {}
        }
        for value in [&route.legal_entity, &route.region, &route.service_line]
            .into_iter()
            .flat_map(OneOrMany::values)
        {
            if value.trim().is_empty() {
                errors.push(format!(
                    "{here}: [[routes]] {name}: a value to match is empty"
                ));
            }
        }
    }
    errors
}

fn route_name(route: &RouteSection, index: usize) -> String {
    route
        .name
        .as_ref()
        .map_or_else(|| format!("route-{}", index + 1), |n| n.get_ref().clone())
}

/// The routes as the engine takes them.
pub fn routes(routes: &[RouteSection]) -> Vec<Route> {
    routes
        .iter()
        .enumerate()
        .map(|(i, r)| Route {
            name: route_name(r, i),
            legal_entities: OneOrMany::values(&r.legal_entity),
            regions: OneOrMany::values(&r.region),
            service_lines: OneOrMany::values(&r.service_line),
            erp: r.erp.get_ref().clone(),
            shadow: r
                .mode
                .as_ref()
                .filter(|m| m.get_ref() == "shadow")
                .and(r.shadow.as_ref())
                .map(|s| s.get_ref().clone()),
        })
        .collect()
}

/// Every error of `[erp]`, `[psa]` and `[connectors]`, each with where it is (`at` turns
/// a span into `FILE:LINE`).
pub fn check(
    erp: &RoleSection,
    psa: &RoleSection,
    connectors: &BTreeMap<Text, ConnectorSection>,
    at: impl Fn(Range<usize>) -> String,
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(name) = &psa.connector {
        match connectors
            .iter()
            .find(|(k, _)| k.get_ref() == name.get_ref())
        {
            None => errors.push(format!(
                "{}: [psa] connector '{}' names no [connectors.{}] table",
                at(name.span()),
                name.get_ref(),
                name.get_ref()
            )),
            Some((_, section)) if section.kind.get_ref() != "tryton" => errors.push(format!(
                "{}: [psa] connector '{}' is a {}, which is no PSA (tryton is)",
                at(name.span()),
                name.get_ref(),
                section.kind.get_ref()
            )),
            Some(_) => {}
        }
    }
    if let Some(name) = &erp.connector
        && !connectors.keys().any(|k| k.get_ref() == name.get_ref())
    {
        errors.push(format!(
            "{}: [erp] connector '{}' names no [connectors.{}] table",
            at(name.span()),
            name.get_ref(),
            name.get_ref()
        ));
    }
    for (name, section) in connectors {
        let here = at(section.kind.span());
        let table = format!("[connectors.{}]", name.get_ref());
        if !KINDS.contains(&section.kind.get_ref().as_str()) {
            errors.push(format!(
                "{here}: {table} kind '{}' is not one of {}",
                section.kind.get_ref(),
                KINDS.join(", ")
            ));
            continue;
        }
        let needs: &[(&str, &Option<Text>)] = if section.kind.get_ref() == "tryton" {
            &[
                ("url", &section.url),
                ("database", &section.database),
                ("user", &section.user),
                ("password", &section.password),
            ]
        } else {
            &[("url", &section.url), ("table", &section.table)]
        };
        for (key, value) in needs {
            if value.is_none() {
                errors.push(format!("{here}: {table} needs {key}"));
            }
        }
        for number in [
            &section.batch_size,
            &section.batch_wait_ms,
            &section.recovery_grace_ms,
            &section.timeout_ms,
            &section.poll_interval_s,
        ]
        .into_iter()
        .flatten()
        {
            if *number.get_ref() < 0 {
                errors.push(format!(
                    "{}: {table} holds a negative number",
                    at(number.span())
                ));
            }
        }
        if let Some(invoicing) = &section.invoicing {
            if let Some(period) = &invoicing.period
                && period.get_ref() != "month"
            {
                errors.push(format!(
                    "{}: {table} invoicing period '{}' is not month (the one period Tryton's project invoicing is run for)",
                    at(period.span()),
                    period.get_ref()
                ));
            }
            if let Some(idle) = &invoicing.after_idle_s
                && !(0..=86_400).contains(idle.get_ref())
            {
                errors.push(format!(
                    "{}: {table} invoicing after_idle_s is {}; give 0 to 86400",
                    at(idle.span()),
                    idle.get_ref()
                ));
            }
        }
        if errors.is_empty() {
            let problems = match connector(section) {
                Connector::Tryton(tryton) => tryton.problems(),
                Connector::LegacyTable(legacy) => legacy.problems(),
            };
            for problem in problems {
                errors.push(format!("{here}: {table} {problem}"));
            }
        }
    }
    errors
}

/// The mapping each Tryton connector makes its won deals' events with: one the hub knows,
/// that makes `opportunity.closed_won`.
pub fn check_mappings(
    connectors: &BTreeMap<Text, ConnectorSection>,
    known: &pshub_mapping::Mappings,
    at: impl Fn(std::ops::Range<usize>) -> String,
) -> Vec<String> {
    let mut errors = Vec::new();
    for (name, section) in connectors {
        let Some(named) = section
            .opportunities
            .as_ref()
            .and_then(|o| o.mapping.as_ref())
        else {
            continue;
        };
        let table = format!("[connectors.{}.opportunities]", name.get_ref());
        match known.get(named.get_ref()) {
            None => errors.push(format!(
                "{}: {table} mapping '{}' is not a mapping this hub knows; it knows {}",
                at(named.span()),
                named.get_ref(),
                known.names().join(", ")
            )),
            Some(mapping) if mapping.target != "opportunity.closed_won" => errors.push(format!(
                "{}: {table} mapping '{}' makes {}, not opportunity.closed_won",
                at(named.span()),
                named.get_ref(),
                mapping.target
            )),
            Some(_) => {}
        }
    }
    errors
}

/// Every connector the file configures, by name (checked when the file was read).
pub fn all(connectors: &BTreeMap<Text, ConnectorSection>) -> Vec<(String, Connector)> {
    connectors
        .iter()
        .map(|(name, section)| (name.get_ref().clone(), connector(section)))
        .collect()
}

fn connector(section: &ConnectorSection) -> Connector {
    if section.kind.get_ref() == "legacy_table" {
        let text = |t: &Option<Text>| t.as_ref().map(|t| t.get_ref().clone()).unwrap_or_default();
        let mut config = LegacyTableConfig::new(&text(&section.url), &text(&section.table));
        if let Some(column) = &section.watermark_column {
            config.watermark_column = column.get_ref().clone();
        }
        if let Some(ms) = &section.timeout_ms {
            config.timeout = Duration::from_millis(*ms.get_ref() as u64);
        }
        if let Some(s) = &section.poll_interval_s {
            config.poll_interval = Duration::from_secs(*s.get_ref() as u64);
        }
        Connector::LegacyTable(config)
    } else {
        Connector::Tryton(Box::new(tryton(section)))
    }
}

fn tryton(section: &ConnectorSection) -> TrytonConfig {
    let text = |t: &Option<Text>| t.as_ref().map(|t| t.get_ref().clone()).unwrap_or_default();
    let millis = |n: &Option<Spanned<i64>>| {
        n.as_ref()
            .map(|n| Duration::from_millis(*n.get_ref() as u64))
    };
    let mut config = TrytonConfig::new(
        &text(&section.url),
        &text(&section.database),
        &text(&section.user),
        &text(&section.password),
    );
    if let Some(product) = &section.product {
        config.product = product.get_ref().clone();
    }
    if let Some(product) = &section.expense_product {
        config.expense_product = product.get_ref().clone();
    }
    if let Some(product) = &section.milestone_product {
        config.milestone_product = product.get_ref().clone();
    }
    if let Some(n) = &section.batch_size {
        config.batch_size = u32::try_from(*n.get_ref()).unwrap_or(u32::MAX);
    }
    config.batch_wait = millis(&section.batch_wait_ms).unwrap_or(config.batch_wait);
    config.recovery_grace = millis(&section.recovery_grace_ms).unwrap_or(config.recovery_grace);
    config.timeout = millis(&section.timeout_ms).unwrap_or(config.timeout);
    if let Some(s) = &section.poll_interval_s {
        config.poll_interval = Duration::from_secs(*s.get_ref() as u64);
    }
    if let Some(o) = section
        .opportunities
        .as_ref()
        .filter(|o| o.enabled != Some(false))
    {
        let text = |t: &Option<Text>, default: &str| {
            t.as_ref()
                .map_or_else(|| default.to_string(), |t| t.get_ref().clone())
        };
        config.opportunities = Some(Opportunities {
            rate_card_id: text(&o.rate_card_id, ""),
            billing_model: text(&o.billing_model, "time_and_materials"),
            legal_entity: text(&o.legal_entity, ""),
            region: text(&o.region, ""),
            service_line: text(&o.service_line, ""),
            country: text(&o.country, ""),
            project_prefix: text(&o.project_prefix, "TRY-"),
            mapping: text(
                &o.mapping,
                pshub_connectors::tryton::config::OPPORTUNITY_MAPPING,
            ),
        });
    }
    if let Some(invoicing) = &section.invoicing {
        let defaults = Invoicing::default();
        config.invoicing = Invoicing {
            enabled: invoicing.enabled.unwrap_or(true),
            after_idle: invoicing
                .after_idle_s
                .as_ref()
                .map(|s| Duration::from_secs(*s.get_ref() as u64))
                .unwrap_or(defaults.after_idle),
            post: invoicing.post.unwrap_or(defaults.post),
        };
    }
    config
}

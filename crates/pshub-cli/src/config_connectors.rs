//! The configuration file's systems the hub calls: `[erp] connector = "<name>"` names one
//! of the `[connectors.<name>]` tables, each with its `kind`. For now one kind, `tryton`
//! (`examples/tryton.toml`):
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

use pshub_connectors::tryton::config::{Invoicing, TrytonConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

type Text = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErpSection {
    /// The `[connectors.<name>]` that is the ERP; else the sandbox's.
    pub connector: Option<Text>,
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

pub const KINDS: [&str; 1] = ["tryton"];

/// Every error of `[erp]` and `[connectors]`, each with where it is (`at` turns a span
/// into `FILE:LINE`).
pub fn check(
    erp: &ErpSection,
    connectors: &BTreeMap<Text, ConnectorSection>,
    at: impl Fn(Range<usize>) -> String,
) -> Vec<String> {
    let mut errors = Vec::new();
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
        for (key, value) in [
            ("url", &section.url),
            ("database", &section.database),
            ("user", &section.user),
            ("password", &section.password),
        ] {
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
            for problem in tryton(section).problems() {
                errors.push(format!("{here}: {table} {problem}"));
            }
        }
    }
    errors
}

/// The ERP connector the file configures, by name (checked when the file was read).
pub fn erp(
    erp: &ErpSection,
    connectors: &BTreeMap<Text, ConnectorSection>,
) -> Option<(String, TrytonConfig)> {
    let name = erp.connector.as_ref()?.get_ref();
    let (_, section) = connectors.iter().find(|(k, _)| k.get_ref() == name)?;
    Some((name.clone(), tryton(section)))
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

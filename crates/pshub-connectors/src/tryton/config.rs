//! What the Tryton connector needs to know: where Tryton is, as whom it logs in, which
//! products its lines carry, and how it batches and recovers. Read from
//! `[connectors.<name>]` with `kind = "tryton"`; the password comes from the environment
//! and is never printed (`Debug` shows `***`).

use std::fmt;
use std::time::Duration;

#[derive(Clone, PartialEq)]
pub struct TrytonConfig {
    /// The system name the hub gives this connector (its `[connectors.<name>]`).
    pub system: String,
    /// The server, `http://127.0.0.1:8000`.
    pub url: String,
    pub database: String,
    /// The connector's own Tryton user (one per hub deployment, never the admin's).
    pub user: String,
    pub password: String,
    /// The service product of timesheet work: `Consulting hour` in the baseline.
    pub product: String,
    /// The products of expense and milestone invoice lines.
    pub expense_product: String,
    pub milestone_product: String,
    /// Lines per search and per create.
    pub batch_size: u32,
    /// How long a partial batch waits for more before it goes out.
    pub batch_wait: Duration,
    /// After a start, or an answer that never came, how long before the first lookup: a
    /// create whose client went away still commits in Tryton up to about 1.25 s later.
    pub recovery_grace: Duration,
    /// Bounds each call.
    pub timeout: Duration,
    /// How often invoice states are read back from Tryton.
    pub poll_interval: Duration,
    pub invoicing: Invoicing,
    /// `[connectors.<name>.opportunities]`: won deals read from Tryton's opportunities.
    pub opportunities: Option<Opportunities>,
    /// Where the longest create timed is kept across restarts (the hub's data folder), so
    /// that the grace after a start covers it.
    pub timings_file: Option<std::path::PathBuf>,
}

/// `[connectors.<name>.invoicing]`: Tryton's own project invoicing, per month.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoicing {
    pub enabled: bool,
    /// How long nothing may have been posted to a project's period before it is invoiced.
    pub after_idle: Duration,
    /// Whether the invoice is posted (numbered) as well as created.
    pub post: bool,
}

impl Default for Invoicing {
    fn default() -> Self {
        Invoicing {
            enabled: false,
            after_idle: Duration::from_secs(60),
            post: true,
        }
    }
}

/// `[connectors.<name>.opportunities]`: Tryton's `sale.opportunity` records that reach
/// `converted` or `won` become `opportunity.closed_won` events, read by `write_date`. What a
/// Tryton opportunity does not hold comes from here: the contract's rate card and billing
/// model, the project's legal entity, region and service line, and the customer's
/// country where the party's address has none.
#[derive(Debug, Clone, PartialEq)]
pub struct Opportunities {
    pub rate_card_id: String,
    pub billing_model: String,
    pub legal_entity: String,
    pub region: String,
    pub service_line: String,
    pub country: String,
    /// The project code is this and the opportunity's number.
    pub project_prefix: String,
    /// The mapping that makes a won deal's event of what is read: `tryton/opportunity.v1`,
    /// or a deployment's own (`[mappings] dir`).
    pub mapping: String,
}

/// The mapping of won deals that pshub ships.
pub const OPPORTUNITY_MAPPING: &str = "tryton/opportunity.v1";

pub const DEFAULT_BATCH_SIZE: u32 = 500;
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(200);
pub const DEFAULT_RECOVERY_GRACE: Duration = Duration::from_millis(2_000);

impl TrytonConfig {
    /// A configuration with the defaults for what `url`, `database`, `user` and
    /// `password` leave out.
    pub fn new(url: &str, database: &str, user: &str, password: &str) -> Self {
        TrytonConfig {
            system: "tryton".into(),
            url: url.trim_end_matches('/').to_string(),
            database: database.to_string(),
            user: user.to_string(),
            password: password.to_string(),
            product: "Consulting hour".into(),
            expense_product: "Expense".into(),
            milestone_product: "Milestone".into(),
            batch_size: DEFAULT_BATCH_SIZE,
            batch_wait: DEFAULT_BATCH_WAIT,
            recovery_grace: DEFAULT_RECOVERY_GRACE,
            timeout: Duration::from_secs(120),
            poll_interval: Duration::from_secs(30),
            invoicing: Invoicing::default(),
            opportunities: None,
            timings_file: None,
        }
    }

    /// Every problem of the settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            problems.push(format!(
                "url: '{}' is not an http:// or https:// URL",
                self.url
            ));
        }
        for (key, value) in [
            ("database", &self.database),
            ("user", &self.user),
            ("password", &self.password),
            ("product", &self.product),
        ] {
            if value.trim().is_empty() {
                problems.push(format!("{key}: is empty"));
            }
        }
        if !(1..=10_000).contains(&self.batch_size) {
            problems.push(format!(
                "batch_size: {} is not from 1 to 10000",
                self.batch_size
            ));
        }
        if self.batch_wait > Duration::from_secs(60) {
            problems.push("batch_wait_ms: more than 60000".into());
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(600) {
            problems.push("timeout_ms: not from 1 to 600000".into());
        }
        if self.poll_interval.is_zero() || self.poll_interval > Duration::from_secs(86_400) {
            problems.push("poll_interval_s: not from 1 to 86400".into());
        }
        if self.recovery_grace > Duration::from_secs(600) {
            problems.push("recovery_grace_ms: more than 600000".into());
        }
        if let Some(o) = &self.opportunities {
            for (key, value) in [
                ("rate_card_id", &o.rate_card_id),
                ("legal_entity", &o.legal_entity),
                ("region", &o.region),
                ("service_line", &o.service_line),
            ] {
                if value.trim().is_empty() {
                    problems.push(format!("opportunities {key}: is required"));
                }
            }
            // A capped contract needs its cap and a fixed fee its milestones, which an
            // opportunity does not hold.
            if o.billing_model != "time_and_materials" {
                problems.push(format!(
                    "opportunities billing_model: '{}' is not time_and_materials (a cap or milestones are not in a Tryton opportunity)",
                    o.billing_model
                ));
            }
            if o.country.len() != 2 || !o.country.chars().all(|c| c.is_ascii_uppercase()) {
                problems.push(format!(
                    "opportunities country: '{}' is not an ISO 3166 country code such as DE",
                    o.country
                ));
            }
        }
        problems
    }
}

impl fmt::Debug for TrytonConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrytonConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &"***")
            .field("product", &self.product)
            .field("batch_size", &self.batch_size)
            .field("batch_wait", &self.batch_wait)
            .field("recovery_grace", &self.recovery_grace)
            .field("invoicing", &self.invoicing)
            .field("opportunities", &self.opportunities)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let config = TrytonConfig::new("http://127.0.0.1:8000", "tryton", "pshub", "s3cret-pw");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn problems_name_their_keys() {
        let mut config = TrytonConfig::new("ftp://x", "", "pshub", "pw");
        config.batch_size = 0;
        let problems = config.problems().join("; ");
        assert!(problems.contains("url: 'ftp://x'"), "{problems}");
        assert!(problems.contains("database: is empty"), "{problems}");
        assert!(problems.contains("batch_size: 0"), "{problems}");
        assert!(
            TrytonConfig::new("http://h:1", "d", "u", "p")
                .problems()
                .is_empty()
        );
    }
}

//! `[targets.<name>]`: systems the hub calls through their REST API (the outbound REST
//! target), each taking a role whose operations its vendor adapter speaks. Checked with
//! their lines like the rest of the file.
//!
//! ```toml
//! [targets.salesforce]
//! connector = "rest"
//! api = "salesforce"              # the vendor API the operations are written for
//! role = "crm"                    # the hub's CRM: write-backs and invoice statuses
//! url = "https://acme.my.salesforce.com"
//! auth = "oauth2"                 # or "api_key", "none"
//! token_url = "https://acme.my.salesforce.com/services/oauth2/token"
//! client_id = "${SALESFORCE_CLIENT_ID}"
//! client_secret = "${SALESFORCE_CLIENT_SECRET}"
//! rate_per_s = 20                 # at most 20 calls a second, shared by all work for it
//! timeout_ms = 30000
//!
//! [targets.avalara]
//! connector = "rest"
//! api = "avalara"                 # AvaTax REST v2
//! role = "tax"                    # the tax of each new invoice line, before the ERP
//! url = "https://rest.avatax.com"
//! auth = "basic"
//! username = "${AVATAX_ACCOUNT_ID}"
//! password = "${AVATAX_LICENSE_KEY}"
//! company_code = "ACME"
//! location_code = "HQ"            # the company location lines are taxed at
//!
//! [targets.netsuite]
//! connector = "rest"
//! api = "netsuite"                # the REST record service, by externalId
//! role = "erp"                    # the default ERP: projects and invoices
//! url = "https://1234567.suitetalk.api.netsuite.com"
//! auth = "oauth2"
//! token_url = "https://1234567.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token"
//! client_id = "${NETSUITE_CLIENT_ID}"
//! client_secret = "${NETSUITE_CLIENT_SECRET}"
//!
//! [targets.warehouse]
//! connector = "amqp"              # the outbound stream of business events to an exchange
//! url = "amqp://pshub:${WAREHOUSE_MQ_PASSWORD}@mq.internal:5672/%2f"
//! exchange = "pshub.out"          # a durable topic exchange; routing key the event's type
//!
//! [targets.landing]
//! connector = "pg_table"          # the outbound stream of business events to a table
//! url = "postgres://pshub:${LANDING_DB_PASSWORD}@db.internal:5432/warehouse"
//! table = "landing.pshub_events"  # made when missing; one row per event, by its key
//! ```

use pshub_connectors::avalara_tax::AvalaraTax;
use pshub_connectors::netsuite_erp::NetSuiteErp;
use pshub_connectors::rest_target::{Auth, RestClient, RestTargetConfig};
use pshub_connectors::salesforce_crm::SalesforceCrm;
use pshub_engine::amqp::AmqpTarget;
use pshub_engine::hooks::Secret;
use pshub_engine::pg_table::{PgTableTarget, is_table_name};
use pshub_engine::ports::Port;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const CONNECTORS: &[&str] = &["rest", "amqp", "pg_table"];
/// The connectors of the outbound stream, which take none of a REST target's settings.
const STREAMS: &[&str] = &["amqp", "pg_table"];
/// Each vendor API, with the role its adapter takes.
const APIS: &[(&str, &str)] = &[
    ("salesforce", "crm"),
    ("avalara", "tax"),
    ("netsuite", "erp"),
];
const ROLES: &[&str] = &["crm", "tax", "erp"];
const DEFAULT_COMPANY_CODE: &str = "DEFAULT";
const DEFAULT_TIMEOUT_MS: i64 = 30_000;
const DEFAULT_API_KEY_HEADER: &str = "X-Api-Key";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    connector: Option<String>,
    api: Option<String>,
    role: Option<String>,
    url: Option<String>,
    auth: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    api_key: Option<String>,
    api_key_header: Option<String>,
    username: Option<String>,
    password: Option<String>,
    company_code: Option<String>,
    location_code: Option<String>,
    rate_per_s: Option<i64>,
    timeout_ms: Option<i64>,
    exchange: Option<String>,
    table: Option<String>,
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Every error of the targets; `at(name)` says where a target's table is.
pub fn check(
    targets: &BTreeMap<String, TargetSection>,
    at: impl Fn(&str) -> String,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut by_role: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, t) in targets {
        let at = at(name);
        let mut fail = |what: String| errors.push(format!("{at}: [targets.{name}] {what}"));
        match t.connector.as_deref() {
            Some("amqp") => {
                check_amqp(t, &mut fail);
                continue;
            }
            Some("pg_table") => {
                check_pg_table(t, &mut fail);
                continue;
            }
            _ => {}
        }
        if t.exchange.is_some() {
            fail("exchange is a setting of connector amqp".into());
        }
        if t.table.is_some() {
            fail("table is a setting of connector pg_table".into());
        }
        let one_of = |value: Option<&str>, key: &str, allowed: &[&str]| match value {
            None => Some(format!("gives no {key}: one of {}", allowed.join(", "))),
            Some(v) if !allowed.contains(&v) => Some(format!(
                "{key} '{v}' is not known; one of {}",
                allowed.join(", ")
            )),
            Some(_) => None,
        };
        let apis: Vec<&str> = APIS.iter().map(|(api, _)| *api).collect();
        for error in [
            one_of(t.connector.as_deref(), "connector", CONNECTORS),
            one_of(t.api.as_deref(), "api", &apis),
            one_of(t.role.as_deref(), "role", ROLES),
        ]
        .into_iter()
        .flatten()
        {
            fail(error);
        }
        if let (Some(api), Some(role)) = (t.api.as_deref(), t.role.as_deref())
            && let Some((_, takes)) = APIS.iter().find(|(a, _)| *a == api)
            && ROLES.contains(&role)
            && *takes != role
        {
            fail(format!(
                "api '{api}' speaks the {takes} role's operations, not role '{role}'"
            ));
        }
        if let Some(role) = t
            .role
            .as_deref()
            .and_then(|r| ROLES.iter().find(|x| **x == r))
        {
            by_role.entry(role).or_default().push(name.clone());
        }
        match t.url.as_deref() {
            None => fail("gives no url: where the API is".into()),
            Some(url) if !is_http(url) => {
                fail(format!("url '{url}' is not an http:// or https:// URL"))
            }
            Some(_) => {}
        }
        let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        match t.auth.as_deref().unwrap_or("none") {
            "none" => {}
            "oauth2" => {
                for (key, value) in [
                    ("token_url", &t.token_url),
                    ("client_id", &t.client_id),
                    ("client_secret", &t.client_secret),
                ] {
                    if !given(value) {
                        fail(format!("auth \"oauth2\" needs {key}"));
                    }
                }
                if let Some(url) = t.token_url.as_deref()
                    && !is_http(url)
                {
                    fail(format!(
                        "token_url '{url}' is not an http:// or https:// URL"
                    ));
                }
            }
            "api_key" => {
                if !given(&t.api_key) {
                    fail("auth \"api_key\" needs api_key".into());
                }
            }
            "basic" => {
                for (key, value) in [("username", &t.username), ("password", &t.password)] {
                    if !given(value) {
                        fail(format!("auth \"basic\" needs {key}"));
                    }
                }
            }
            other => fail(format!(
                "auth '{other}' is not a scheme; use \"oauth2\", \"api_key\", \"basic\" or \"none\""
            )),
        }
        if let Some(rate) = t.rate_per_s
            && !(1..=10_000).contains(&rate)
        {
            fail(format!("rate_per_s {rate} is out of bounds: 1 to 10000"));
        }
        if let Some(ms) = t.timeout_ms
            && !(100..=600_000).contains(&ms)
        {
            fail(format!("timeout_ms {ms} is out of bounds: 100 to 600000"));
        }
    }
    for (role, names) in by_role {
        if names.len() > 1 {
            errors.push(format!(
                "{}: targets {} all take the role {role}; one system takes it",
                at(&names[1]),
                names.join(", ")
            ));
        }
    }
    errors
}

/// An AMQP target's settings: the broker and the exchange; none of a REST target's.
fn check_amqp(t: &TargetSection, fail: &mut impl FnMut(String)) {
    match t.url.as_deref() {
        None => fail("gives no url: the broker, amqp://user:password@host:5672/vhost".into()),
        Some(url) if !(url.starts_with("amqp://") || url.starts_with("amqps://")) => {
            fail("url is not an amqp:// or amqps:// URL".into())
        }
        Some(_) => {}
    }
    match t.exchange.as_deref() {
        None => fail("gives no exchange: where the business events are published".into()),
        Some(exchange)
            if exchange.is_empty()
                || exchange.len() > 255
                || !exchange
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c)) =>
        {
            fail(format!(
                "exchange '{exchange}' is not an exchange name (letters, digits, _ - . :)"
            ))
        }
        Some(_) => {}
    }
    if t.table.is_some() {
        fail("table is a setting of connector pg_table".into());
    }
    refuse_rest_settings(t, "amqp", fail);
}

/// A table target's settings: the database and the table; none of a REST target's.
fn check_pg_table(t: &TargetSection, fail: &mut impl FnMut(String)) {
    match t.url.as_deref() {
        None => {
            fail("gives no url: the database, postgres://user:password@host:5432/database".into())
        }
        Some(url) if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) => {
            fail("url is not a postgres:// URL".into())
        }
        Some(_) => {}
    }
    match t.table.as_deref() {
        None => fail("gives no table: where the business events are written".into()),
        Some(table) if !is_table_name(table) => fail(format!(
            "table '{table}' is not a table name (name or schema.name: letters, digits and _, at most 63 each)"
        )),
        Some(_) => {}
    }
    if t.exchange.is_some() {
        fail("exchange is a setting of connector amqp".into());
    }
    refuse_rest_settings(t, "pg_table", fail);
}

/// An outbound stream's target takes no role, API, authentication or rate.
fn refuse_rest_settings(t: &TargetSection, connector: &str, fail: &mut impl FnMut(String)) {
    for (key, given) in [
        ("api", t.api.is_some()),
        ("role", t.role.is_some()),
        ("auth", t.auth.is_some()),
        ("rate_per_s", t.rate_per_s.is_some()),
    ] {
        if given {
            fail(format!("{key} is not a setting of connector {connector}"));
        }
    }
}

/// The table targets: the outbound stream's tables, by target name.
pub fn pg_table_targets(
    targets: &BTreeMap<String, TargetSection>,
) -> BTreeMap<String, PgTableTarget> {
    targets
        .iter()
        .filter(|(_, t)| t.connector.as_deref() == Some("pg_table"))
        .filter_map(|(name, t)| {
            Some((
                name.clone(),
                PgTableTarget {
                    url: Secret::new(t.url.clone()?),
                    table: t.table.clone()?,
                },
            ))
        })
        .collect()
}

/// The AMQP targets: the outbound stream's exchanges, by target name.
pub fn amqp_targets(targets: &BTreeMap<String, TargetSection>) -> BTreeMap<String, AmqpTarget> {
    targets
        .iter()
        .filter(|(_, t)| t.connector.as_deref() == Some("amqp"))
        .filter_map(|(name, t)| {
            Some((
                name.clone(),
                AmqpTarget {
                    url: Secret::new(t.url.clone()?),
                    exchange: t.exchange.clone()?,
                },
            ))
        })
        .collect()
}

/// The target that takes `role` (`crm`, `tax`), if any.
pub fn target_of_role(targets: &BTreeMap<String, TargetSection>, role: &str) -> Option<String> {
    targets
        .iter()
        .find(|(_, t)| t.role.as_deref() == Some(role))
        .map(|(name, _)| name.clone())
}

/// A connected target: its vendor adapter.
pub enum Connected {
    Crm(Arc<SalesforceCrm>),
    Tax(Arc<AvalaraTax>),
    Erp(Arc<NetSuiteErp>),
}

impl Connected {
    /// The port the engine calls it through.
    pub fn port(&self) -> Port {
        match self {
            Connected::Crm(crm) => Port::Crm(crm.clone()),
            Connected::Tax(tax) => Port::Tax(tax.clone()),
            Connected::Erp(erp) => Port::Erp(erp.clone()),
        }
    }

    /// The client that counts its events on the engine.
    pub fn client(&self) -> &RestClient {
        match self {
            Connected::Crm(crm) => crm.client(),
            Connected::Tax(tax) => tax.client(),
            Connected::Erp(erp) => erp.client(),
        }
    }
}

/// The targets' adapters, by name (the file was checked).
pub fn connect(
    targets: &BTreeMap<String, TargetSection>,
) -> Result<Vec<(String, Connected)>, String> {
    let mut connected = Vec::new();
    for (name, t) in targets
        .iter()
        .filter(|(_, t)| !t.connector.as_deref().is_some_and(|c| STREAMS.contains(&c)))
    {
        let secret = |v: &Option<String>| Secret::new(v.clone().unwrap_or_default());
        let auth = match t.auth.as_deref() {
            Some("oauth2") => Auth::OAuth2 {
                token_url: t.token_url.clone().unwrap_or_default(),
                client_id: t.client_id.clone().unwrap_or_default(),
                client_secret: secret(&t.client_secret),
                scope: t.scope.clone(),
            },
            Some("api_key") => Auth::ApiKey {
                header: t
                    .api_key_header
                    .clone()
                    .unwrap_or_else(|| DEFAULT_API_KEY_HEADER.to_string()),
                key: secret(&t.api_key),
            },
            Some("basic") => Auth::Basic {
                username: t.username.clone().unwrap_or_default(),
                password: secret(&t.password),
            },
            _ => Auth::None,
        };
        let client = RestClient::new(RestTargetConfig {
            name: name.clone(),
            base_url: t.url.clone().unwrap_or_default(),
            auth,
            rate_per_s: t.rate_per_s.and_then(|r| u32::try_from(r).ok()),
            timeout: Duration::from_millis(
                u64::try_from(t.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)).unwrap_or(30_000),
            ),
        })
        .map_err(|e| format!("[targets.{name}]: {e}"))?;
        let adapter = match t.api.as_deref() {
            Some("avalara") => Connected::Tax(Arc::new(AvalaraTax::new(
                client,
                t.company_code
                    .clone()
                    .unwrap_or_else(|| DEFAULT_COMPANY_CODE.to_string()),
                t.location_code.clone(),
            ))),
            Some("netsuite") => Connected::Erp(Arc::new(NetSuiteErp::new(client))),
            _ => Connected::Crm(Arc::new(SalesforceCrm::new(client))),
        };
        connected.push((name.clone(), adapter));
    }
    Ok(connected)
}

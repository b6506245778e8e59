//! `[sources.<name>]` settings of the system-API layer (a source's connector, its signature
//! and its mapping) and `[mappings] dir`. Checked with their lines like the rest of the file.
//!
//! ```toml
//! [mappings]
//! dir = "mappings"                # adds to or replaces the shipped mappings by name
//!
//! [sources.stripe]
//! connector = "webhook"
//! signature = "stripe"            # or "hmac-sha256"
//! secret = "${STRIPE_WEBHOOK_SECRET}"
//! tolerance_s = 300
//! mapping = "stripe/invoice.v1"  # or a list, tried in order: the first that takes a record
//!
//! [sources.bureau]
//! connector = "csv_drop"
//! dir = "drop/bureau"             # relative to the file; done/ and failed/ beneath it
//! columns = ["employee_number", "pay_period", "gross_pay", "currency"]
//! ready = "size_stable"           # or "marker": <file>.ready beside it
//! stable_ms = 2000
//! poll_ms = 1000
//! mapping = "payroll_bureau/actuals.v1"
//! ```

use crate::config_connectors::OneOrMany;
use pshub_engine::csv_drop::{CsvDrop, Ready};
use pshub_engine::hooks::{Inbound, Secret, Signature};
use pshub_mapping::Mappings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The connector kinds a source may name.
const CONNECTORS: &[&str] = &["webhook", "csv_drop"];

/// A CSV drop's defaults: a file is whole when it held still 2 s; the folder is looked at
/// every second.
const DEFAULT_STABLE_MS: i64 = 2_000;
const DEFAULT_POLL_MS: i64 = 1_000;

/// Seconds a Stripe-style signature may lie from now, unless the file says otherwise
/// (Stripe's own libraries use 300).
const DEFAULT_TOLERANCE_S: u64 = 300;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// What the system is, for people reading `GET /v1/systems`.
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    connector: Option<String>,
    signature: Option<String>,
    secret: Option<String>,
    tolerance_s: Option<i64>,
    mapping: Option<OneOrMany>,
    dir: Option<String>,
    columns: Option<Vec<String>>,
    ready: Option<String>,
    stable_ms: Option<i64>,
    poll_ms: Option<i64>,
    delimiter: Option<String>,
}

impl SourceSection {
    /// Whether the source has settings of a connector (else it only names a system).
    fn has_connector_settings(&self) -> bool {
        self.connector.is_some()
            || !self.webhook_settings().is_empty()
            || !self.csv_drop_settings().is_empty()
            || self.mapping.is_some()
    }

    /// The webhook's settings this table gives, by name.
    fn webhook_settings(&self) -> Vec<&'static str> {
        [
            ("signature", self.signature.is_some()),
            ("secret", self.secret.is_some()),
            ("tolerance_s", self.tolerance_s.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// The CSV drop's settings this table gives, by name.
    fn csv_drop_settings(&self) -> Vec<&'static str> {
        [
            ("dir", self.dir.is_some()),
            ("columns", self.columns.is_some()),
            ("ready", self.ready.is_some()),
            ("stable_ms", self.stable_ms.is_some()),
            ("poll_ms", self.poll_ms.is_some()),
            ("delimiter", self.delimiter.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingsSection {
    /// A folder of `<source>/<record>.v<N>.toml`, relative to the file.
    dir: Option<String>,
}

/// The mappings the file makes known: the shipped ones and those of `[mappings] dir`.
pub fn mappings(section: &MappingsSection, folder: &Path) -> Result<Mappings, String> {
    match &section.dir {
        None => Ok(Mappings::shipped()),
        Some(dir) => {
            let dir = folder.join(dir);
            if !dir.is_dir() {
                return Err(format!("[mappings] dir {} is not a folder", dir.display()));
            }
            Mappings::with_dir(&dir).map_err(|e| format!("[mappings] dir: {e}"))
        }
    }
}

/// Every error of the sources' connector settings; `at(name)` says where a source's table is.
pub fn check(
    sources: &BTreeMap<String, SourceSection>,
    mappings: Option<&Mappings>,
    folder: &Path,
    at: impl Fn(&str) -> String,
) -> Vec<String> {
    let mut errors = Vec::new();
    for (name, section) in sources {
        if !section.has_connector_settings() {
            continue;
        }
        let at = at(name);
        let mut fail = |what: String| errors.push(format!("{at}: [sources.{name}] {what}"));
        match section.connector.as_deref() {
            None => fail(format!(
                "has connector settings but no connector; give connector = \"{}\"",
                CONNECTORS.join("\" or \"")
            )),
            Some(kind) if !CONNECTORS.contains(&kind) => fail(format!(
                "connector '{kind}' is not a connector kind; the kinds are {}",
                CONNECTORS.join(", ")
            )),
            Some(_) => {}
        }
        let (own, foreign) = match section.connector.as_deref() {
            Some("csv_drop") => ("csv_drop", section.webhook_settings()),
            _ => ("webhook", section.csv_drop_settings()),
        };
        for setting in foreign {
            fail(format!("{setting} is not a setting of connector {own}"));
        }
        if own == "csv_drop" {
            check_csv_drop(section, folder, &mut fail);
        } else {
            check_webhook(section, &mut fail);
        }
        let named = section
            .mapping
            .is_some()
            .then(|| OneOrMany::values(&section.mapping));
        if own == "csv_drop" && named.is_none() {
            fail("gives no mapping: a CSV row is mapped to a canonical event".into());
        }
        if named.as_ref().is_some_and(Vec::is_empty) {
            fail("mapping names no mapping".into());
        }
        if let (Some(named), Some(known)) = (named, mappings) {
            for mapping in named.iter().filter(|m| known.get(m).is_none()) {
                fail(format!(
                    "mapping '{mapping}' is not a mapping this hub knows; it knows {}",
                    known.names().join(", ")
                ));
            }
        }
    }
    errors
}

/// A webhook's settings: every webhook is signed.
fn check_webhook(section: &SourceSection, fail: &mut impl FnMut(String)) {
    {
        match section.signature.as_deref() {
            None => fail(
                "gives no signature: \"hmac-sha256\" or \"stripe\" (every webhook is signed)"
                    .into(),
            ),
            Some(scheme) if Signature::parse(scheme).is_none() => fail(format!(
                "signature '{scheme}' is not a scheme; use \"hmac-sha256\" or \"stripe\""
            )),
            Some(_) => {}
        }
        match section.secret.as_deref() {
            None => fail(
                "gives no secret (write secret = \"${VARIABLE}\" to read it from the environment)"
                    .into(),
            ),
            Some(secret) if secret.trim().is_empty() => fail("secret is empty".into()),
            Some(_) => {}
        }
        if let Some(tolerance) = section.tolerance_s
            && !(1..=86_400).contains(&tolerance)
        {
            fail(format!(
                "tolerance_s {tolerance} is out of bounds: 1 to 86400 seconds"
            ));
        }
    }
}

/// A CSV drop's settings: its folder, readiness and pacing.
fn check_csv_drop(section: &SourceSection, folder: &Path, fail: &mut impl FnMut(String)) {
    match section.dir.as_deref() {
        None => fail("gives no dir: the folder the files are dropped in".into()),
        Some(dir) if !folder.join(dir).is_dir() => fail(format!(
            "dir {} is not a folder",
            folder.join(dir).display()
        )),
        Some(_) => {}
    }
    if let Some(columns) = &section.columns
        && columns.iter().any(|c| c.trim().is_empty())
    {
        fail("columns holds an empty column name".into());
    }
    if let Some(ready) = section.ready.as_deref()
        && !matches!(ready, "marker" | "size_stable")
    {
        fail(format!(
            "ready '{ready}' is not a rule; use \"size_stable\" or \"marker\" (<file>.ready beside it)"
        ));
    }
    if let Some(ms) = section.stable_ms
        && !(100..=600_000).contains(&ms)
    {
        fail(format!("stable_ms {ms} is out of bounds: 100 to 600000"));
    }
    if let Some(ms) = section.poll_ms
        && !(50..=60_000).contains(&ms)
    {
        fail(format!("poll_ms {ms} is out of bounds: 50 to 60000"));
    }
    if let Some(delimiter) = section.delimiter.as_deref()
        && !(delimiter.len() == 1 && delimiter.is_ascii() && delimiter != "\"")
    {
        fail(format!(
            "delimiter '{delimiter}' must be one ASCII character other than a quote"
        ));
    }
}

/// The CSV drops, as the engine takes them (the file was checked); `folder` is the
/// configuration file's.
pub fn csv_drops(
    sources: &BTreeMap<String, SourceSection>,
    folder: &Path,
) -> BTreeMap<String, CsvDrop> {
    let ms = |ms: Option<i64>, default: i64| {
        std::time::Duration::from_millis(u64::try_from(ms.unwrap_or(default)).unwrap_or(1_000))
    };
    sources
        .iter()
        .filter(|(_, s)| s.connector.as_deref() == Some("csv_drop"))
        .filter_map(|(name, s)| {
            Some((
                name.clone(),
                CsvDrop {
                    dir: folder.join(s.dir.as_deref()?),
                    columns: s.columns.clone().unwrap_or_default(),
                    mappings: OneOrMany::values(&s.mapping),
                    ready: match s.ready.as_deref() {
                        Some("marker") => Ready::Marker,
                        _ => Ready::SizeStable(ms(s.stable_ms, DEFAULT_STABLE_MS)),
                    },
                    poll: ms(s.poll_ms, DEFAULT_POLL_MS),
                    delimiter: s.delimiter.as_deref().map_or(b',', |d| d.as_bytes()[0]),
                },
            ))
        })
        .collect()
}

/// The sources with a connector, as the engine takes them (the file was checked).
pub fn inbound(sources: &BTreeMap<String, SourceSection>) -> BTreeMap<String, Inbound> {
    sources
        .iter()
        .filter(|(_, s)| s.connector.as_deref() == Some("webhook"))
        .filter_map(|(name, s)| {
            Some((
                name.clone(),
                Inbound {
                    signature: Signature::parse(s.signature.as_deref()?)?,
                    secret: Secret::new(s.secret.clone()?),
                    tolerance_s: s
                        .tolerance_s
                        .and_then(|t| u64::try_from(t).ok())
                        .unwrap_or(DEFAULT_TOLERANCE_S),
                    mappings: OneOrMany::values(&s.mapping),
                },
            ))
        })
        .collect()
}

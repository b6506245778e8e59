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
//! ```

use crate::config_connectors::OneOrMany;
use pshub_engine::hooks::{Inbound, Secret, Signature};
use pshub_mapping::Mappings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The connector kinds a source may name.
const CONNECTORS: &[&str] = &["webhook"];

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
}

impl SourceSection {
    /// Whether the source has settings of a connector (else it only names a system).
    fn has_connector_settings(&self) -> bool {
        self.connector.is_some()
            || self.signature.is_some()
            || self.secret.is_some()
            || self.tolerance_s.is_some()
            || self.mapping.is_some()
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
        let named = section
            .mapping
            .is_some()
            .then(|| OneOrMany::values(&section.mapping));
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

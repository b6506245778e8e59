//! The engine's half of the inbound webhook connector (the HTTP half is the API's
//! `POST /v1/hooks/{source}`): a source's settings, the check of its signature, and its
//! payload turned into an event through its mapping, kept as it arrived.
//!
//! What the inbox keeps of a mapped event is the canonical envelope with an `origin`
//! object beside it: the connector, the mapping and its version, the headers that matter
//! and the payload exactly as its bytes arrived. A payload that fails its mapping is
//! quarantined as that same origin record (`mapped_record`), and one whose signature does
//! not verify as `unverified_payload`, which nothing ever applies.

use crate::config::Config;
use crate::hub::Incoming;
use crate::store::{QUARANTINE_MAPPED_RECORD, QUARANTINE_UNVERIFIED};
use hmac::{Hmac, Mac};
use pshub_model::EventError;
use pshub_model::fields::FieldError;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;

/// How a webhook source signs its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// `X-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`.
    HmacSha256,
    /// `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`,
    /// refused when `t` is further than the tolerance from now.
    Stripe,
}

impl Signature {
    pub fn parse(name: &str) -> Option<Signature> {
        match name {
            "hmac-sha256" => Some(Signature::HmacSha256),
            "stripe" => Some(Signature::Stripe),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Signature::HmacSha256 => "hmac-sha256",
            Signature::Stripe => "stripe",
        }
    }

    /// The header the signature travels in.
    pub fn header(self) -> &'static str {
        match self {
            Signature::HmacSha256 => "x-signature",
            Signature::Stripe => "stripe-signature",
        }
    }
}

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: String) -> Secret {
        Secret(secret)
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The secret itself, for the one header that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A connection URL as logs and the catalog may show it: its password masked and its query
/// left out (a driver may take `?password=` there), so that `postgres://u:pw@h/db?sslmode=x`
/// shows as `postgres://u:***@h/db?…`.
pub fn shown_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((url, _)) => (url, "?…"),
        None => (url, ""),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    // The credentials end at the last `@` before the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let shown = match rest[..authority_end].rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => format!("{scheme}://{rest}"),
    };
    format!("{shown}{query}")
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A source whose records arrive on `POST /v1/hooks/{source}` (`[sources.<name>]` with
/// `connector = "webhook"`).
#[derive(Debug, Clone)]
pub struct Inbound {
    pub signature: Signature,
    pub secret: Secret,
    /// Seconds a Stripe-style `t=` may lie from now.
    pub tolerance_s: u64,
    /// The mappings that make its records canonical (`stripe/invoice.v1`), tried in order:
    /// the first whose `when` takes a record maps it. None: the source sends canonical
    /// events.
    pub mappings: Vec<String>,
    /// A source whose requests are change events (Salesforce's Change Data Capture) that
    /// wake the poller of this polling source instead of being mapped: the change says
    /// something changed, the poller's query reads the whole record through its cursor.
    pub wakes: Option<String>,
    /// The entities whose change events wake it (`Opportunity`); none: any.
    pub wake_on: Vec<String>,
}

/// The headers worth keeping beside a payload: the signatures and what names the sender.
pub const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "x-signature",
    "stripe-signature",
    "idempotency-key",
    "x-schema-version",
];

/// The header (or query parameter `schema_version`) by which a request names the version
/// of its records' mapping.
pub const SCHEMA_VERSION_HEADER: &str = "x-schema-version";

/// What became of a request's payload.
pub enum Received {
    /// An event for the engine: mapped and parsed, or quarantined with why.
    Event(Incoming),
    /// The mapping does not take this record (another event type of the vendor's).
    NotTaken(String),
}

type HmacSha256 = Hmac<Sha256>;

impl Inbound {
    /// Checks the request's signature over its raw body; `header` reads a header by its
    /// lower-case name, `now` is in Unix seconds.
    pub fn verify<'h>(
        &self,
        body: &[u8],
        header: impl Fn(&str) -> Option<&'h str>,
        now: i64,
    ) -> Result<(), String> {
        let name = self.signature.header();
        let given = header(name).ok_or_else(|| format!("the request has no {name} header"))?;
        match self.signature {
            Signature::HmacSha256 => {
                let hex = given.strip_prefix("sha256=").ok_or_else(|| {
                    format!("{name} must read sha256=<hex HMAC-SHA256 of the body>")
                })?;
                let mut mac = self.mac();
                mac.update(body);
                check_hex(mac, hex)
            }
            Signature::Stripe => {
                let mut at = None;
                let mut signatures = Vec::new();
                for part in given.split(',') {
                    match part.trim().split_once('=') {
                        Some(("t", t)) => at = t.parse::<i64>().ok(),
                        Some(("v1", v)) => signatures.push(v),
                        _ => {}
                    }
                }
                let at = at.ok_or_else(|| format!("{name} has no t=<unix seconds>"))?;
                if signatures.is_empty() {
                    return Err(format!("{name} has no v1 signature"));
                }
                let age = now.saturating_sub(at).unsigned_abs();
                if age > self.tolerance_s {
                    return Err(format!(
                        "{name} was made {age} s from now, past the tolerance of {} s (a replay, or a clock that is off)",
                        self.tolerance_s
                    ));
                }
                let matches = signatures.iter().any(|hex| {
                    let mut mac = self.mac();
                    mac.update(at.to_string().as_bytes());
                    mac.update(b".");
                    mac.update(body);
                    check_hex(mac, hex).is_ok()
                });
                if matches {
                    Ok(())
                } else {
                    Err(format!("no v1 signature of {name} matches the body"))
                }
            }
        }
    }

    /// The mappings a request is mapped by: the configured ones, or, when the request names
    /// a version of its records (`schema_version`), that version of each configured record.
    pub fn mappings_for(&self, version: Option<u32>) -> Vec<String> {
        match version {
            None => self.mappings.clone(),
            Some(version) => self
                .mappings
                .iter()
                .map(|name| {
                    let record = name.rsplit_once(".v").map_or(name.as_str(), |(r, _)| r);
                    format!("{record}.v{version}")
                })
                .collect(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length.
        HmacSha256::new_from_slice(self.secret.bytes()).expect("HMAC takes any key length")
    }
}

/// Compares in constant time.
fn check_hex(mac: HmacSha256, hex: &str) -> Result<(), String> {
    let expected = decode_hex(hex).ok_or_else(|| "the signature is not hex".to_string())?;
    mac.verify_slice(&expected)
        .map_err(|_| "the signature does not match the body".to_string())
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// How a payload came in, kept beside it: the connector and what it says of the payload
/// (a webhook's headers that matter, a file's name and line), as a JSON object.
#[derive(Debug, Clone)]
pub struct Via(Map<String, Value>);

impl Via {
    /// A webhook's request, with its headers that matter.
    pub fn webhook(headers: &BTreeMap<String, String>) -> Via {
        let mut via = Via::connector("webhook");
        via.0.insert("headers".into(), json!(headers));
        via
    }

    /// A payload of `connector`; [`Via::with`] adds what it says of it.
    pub fn connector(connector: &str) -> Via {
        let mut meta = Map::new();
        meta.insert("connector".into(), Value::from(connector));
        Via(meta)
    }

    pub fn with(mut self, key: &str, value: Value) -> Via {
        self.0.insert(key.into(), value);
        self
    }

    /// The record kept of a payload: how it came, source, mapping, and the payload as its
    /// bytes arrived: the body's own text where it is JSON (its keys in their order, its
    /// numbers as written), else that text as a JSON string.
    pub fn record(&self, source: &str, mapping: Option<&str>, body: &str) -> String {
        let mut meta = self.0.clone();
        meta.insert("source".into(), Value::from(source));
        meta.insert("mapping".into(), json!(mapping));
        let meta = Value::Object(meta).to_string();
        let payload = if serde_json::from_str::<&RawValue>(body).is_ok() {
            body.to_string()
        } else {
            Value::String(body.to_string()).to_string()
        };
        format!(
            "{},\"payload\":{payload}}}",
            meta.strip_suffix('}').unwrap_or(&meta)
        )
    }
}

/// Of a request that did not verify, at most this much of its body is kept: anyone can send
/// one, and the quarantine is not theirs to fill.
pub const UNVERIFIED_KEPT_BYTES: usize = 64 * 1024;

/// A request whose signature did not verify, for the quarantine: kept (its first
/// [`UNVERIFIED_KEPT_BYTES`]), never applied.
pub fn unverified(
    source: &str,
    headers: &BTreeMap<String, String>,
    body: &str,
    why: &str,
) -> Incoming {
    let mut cut = body.len().min(UNVERIFIED_KEPT_BYTES);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    let why = if cut < body.len() {
        format!(
            "{why}; the first {cut} of its {} bytes are kept",
            body.len()
        )
    } else {
        why.to_string()
    };
    let body = &body[..cut];
    Incoming::Invalid {
        error: EventError {
            id: None,
            source: Some(source.to_string()),
            error: FieldError {
                field: "signature".into(),
                problem: format!("{why}; the request was refused and is kept unverified"),
            },
        },
        raw: Via::webhook(headers).record(source, None, body),
        correlation_id: None,
        kind: QUARANTINE_UNVERIFIED,
        at: None,
    }
}

/// A verified payload of `source` as an event: through the first of its mappings that
/// takes the record (a vendor sends several record types to one hook), or as a canonical
/// event when the source has none.
pub fn receive(
    source: &str,
    mappings: &[String],
    headers: &BTreeMap<String, String>,
    body: &str,
    config: &Config,
) -> Received {
    receive_via(source, mappings, &Via::webhook(headers), body, config)
}

/// A payload of `source` that came `via` a connector: through the first of its mappings
/// that takes it, or as a canonical event when the source has none (what the connector
/// said of it is then not kept: the event is its own record).
pub fn receive_via(
    source: &str,
    mappings: &[String],
    via: &Via,
    body: &str,
    config: &Config,
) -> Received {
    if mappings.is_empty() {
        return Received::Event(Incoming::parse(body.to_string(), config));
    }
    map_payload(source, mappings, via, body, None, config)
}

/// A payload of `source` that `mapping` (or its connector) refused, for the quarantine as
/// `mapped_record`: kept as it came, at its file's line when it has one.
pub fn refused_record(
    (source, mapping): (&str, &str),
    via: &Via,
    body: &str,
    at: Option<(&str, u64)>,
    error: FieldError,
    id: Option<String>,
) -> Incoming {
    Incoming::Invalid {
        error: EventError {
            id,
            source: Some(source.to_string()),
            error,
        },
        raw: via.record(source, Some(mapping), body),
        correlation_id: None,
        kind: QUARANTINE_MAPPED_RECORD,
        at: at.map(|(file, line)| Box::new((file.to_string(), line))),
    }
}

/// A payload of `source` that came `via` a connector, through the first of `mappings` that
/// takes it: an event with the payload kept beside it, a record quarantined as
/// `mapped_record` (at `at`, a file's line, when given) with why, or not taken.
pub fn map_payload(
    source: &str,
    mappings: &[String],
    via: &Via,
    body: &str,
    at: Option<(&str, u64)>,
    config: &Config,
) -> Received {
    let refused = |mapping: &str, field: &str, problem: String, id: Option<String>| {
        let error = FieldError {
            field: field.to_string(),
            problem,
        };
        Received::Event(refused_record((source, mapping), via, body, at, error, id))
    };
    let Some(first) = mappings.first() else {
        return Received::NotTaken(format!("{source} has no mapping"));
    };
    let record: Value = match serde_json::from_str(body) {
        Ok(record) => record,
        Err(e) => return refused(first, "", format!("the payload is not JSON: {e}"), None),
    };
    if let Some(path) = pshub_model::json::duplicate_key(body) {
        return refused(
            first,
            &path,
            "appears twice in one object of the payload".into(),
            None,
        );
    }
    for name in mappings {
        let Some(mapping) = config.mappings.get(name) else {
            return refused(
                name,
                "mapping",
                format!("'{name}' is not a mapping this hub knows"),
                None,
            );
        };
        let (envelope, event) =
            match canonical(mapping, source, &record, |s| config.knows_source(s)) {
                Ok(Some(mapped)) => mapped,
                Ok(None) => continue,
                Err(error) => {
                    return refused(name, &error.field, error.problem, mapping.id_of(&record));
                }
            };
        let kept = with_origin(&envelope, &via.record(source, Some(name), body));
        return Received::Event(Incoming::valid(event, kept));
    }
    Received::NotTaken(format!(
        "no mapping of {source} takes this record ({})",
        mappings.join(", ")
    ))
}

/// What the inbox keeps of a mapped event: its canonical envelope with the origin record
/// beside it.
pub fn with_origin(envelope: &Value, origin: &str) -> String {
    let canonical = envelope.to_string();
    format!(
        "{},\"origin\":{origin}}}",
        canonical.strip_suffix('}').unwrap_or(&canonical)
    )
}

/// A kept origin record, read back.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source: String,
    pub mapping: Option<String>,
    /// How it came: the connector and what it said of the payload.
    pub via: Via,
    /// The payload as its bytes arrived.
    pub payload: String,
}

impl Origin {
    /// Reads an origin record (the text [`Via::record`] made).
    pub fn parse(text: &str) -> Result<Origin, String> {
        let mut kept: BTreeMap<String, &RawValue> = serde_json::from_str(text)
            .map_err(|e| format!("the kept payload record does not parse: {e}"))?;
        let payload = kept
            .remove("payload")
            .ok_or("the kept payload record holds no payload")?
            .get();
        // A body that was not JSON is kept as a JSON string of its text.
        let payload = serde_json::from_str::<String>(payload).unwrap_or_else(|_| payload.into());
        let mut meta = Map::new();
        for (key, value) in kept {
            let value: Value = serde_json::from_str(value.get())
                .map_err(|e| format!("the kept payload record's {key} does not parse: {e}"))?;
            meta.insert(key, value);
        }
        let text = |meta: &mut Map<String, Value>, key: &str| match meta.remove(key) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        let source = text(&mut meta, "source").ok_or("the kept payload record names no source")?;
        let mapping = text(&mut meta, "mapping");
        Ok(Origin {
            source,
            mapping,
            via: Via(meta),
            payload,
        })
    }

    /// The origin kept beside a stored event, when a mapping made it; `None` for an event
    /// that arrived canonical.
    pub fn of_stored(raw: &str) -> Option<Result<Origin, String>> {
        Some(Origin::parse(Origin::record_of_stored(raw)?))
    }

    /// The origin record kept beside a stored event, as its text was kept.
    pub fn record_of_stored(raw: &str) -> Option<&str> {
        #[derive(serde::Deserialize)]
        struct Stored<'a> {
            #[serde(borrow)]
            origin: Option<&'a RawValue>,
        }
        let stored: Stored<'_> = serde_json::from_str(raw).ok()?;
        Some(stored.origin?.get())
    }

    /// For a payload mapped again by a replay: the stored event it was first mapped into,
    /// the mapping it was then, and who asked.
    pub fn replay_of(&self) -> Option<&Value> {
        self.via.0.get("replay_of")
    }

    /// The file and line a CSV drop read it from.
    pub fn at(&self) -> Option<(String, u64)> {
        let file = self.via.0.get("file")?.as_str()?.to_string();
        Some((file, self.via.0.get("line")?.as_u64()?))
    }
}

/// Maps a kept origin record again (a replay from the quarantine) under the mapping that
/// refused it, as the hub now has it, with `corrected` as its payload when given.
pub fn remap(stored: &str, corrected: Option<String>, config: &Config) -> Result<Received, String> {
    let origin = Origin::parse(stored)?;
    let mapping = origin
        .mapping
        .clone()
        .ok_or("the kept payload record names no mapping")?;
    let body = corrected.unwrap_or_else(|| origin.payload.clone());
    let at = origin.at();
    let at = at.as_ref().map(|(file, line)| (file.as_str(), *line));
    Ok(map_payload(
        &origin.source,
        &[mapping],
        &origin.via,
        &body,
        at,
        config,
    ))
}

/// A record mapped to a canonical envelope of `source` and checked as the front door checks
/// every event (the envelope, and the event parsed from it); `None` when the mapping does
/// not take it. An error names the canonical
/// field, and says which mapping, version and expression made it, and what it found.
pub fn canonical(
    mapping: &pshub_mapping::Mapping,
    source: &str,
    record: &Value,
    known_source: impl Fn(&str) -> bool,
) -> Result<Option<(Value, pshub_model::Event)>, FieldError> {
    let mut envelope = match mapping.apply(record) {
        Ok(Some(envelope)) => envelope,
        Ok(None) => return Ok(None),
        Err(error) => {
            return Err(FieldError {
                field: error.field.clone(),
                problem: error.problem_of_field(),
            });
        }
    };
    // The configured name is the source: one vendor's mapping serves any of its accounts.
    envelope["source"] = Value::from(source);
    match pshub_model::Event::parse(&envelope, known_source) {
        Ok(event) => Ok(Some((envelope, event))),
        Err(error) => {
            // The canonical record the mapping made is refused: say which expression made it.
            let field = error.error.field;
            let found = envelope
                .pointer(&format!(
                    "/{}",
                    field.replace(['.', '['], "/").replace(']', "")
                ))
                .map_or_else(|| "nothing".to_string(), Value::to_string);
            let path = mapping
                .path_of(&field)
                .map(|path| format!(" (`{path}`)"))
                .unwrap_or_default();
            let problem = format!(
                "mapping {} v{}{path}: {}; found {found}",
                mapping.record_name(),
                mapping.version,
                error.error.problem
            );
            Err(FieldError { field, problem })
        }
    }
}

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
//!
//! [sources.workday]
//! connector = "rest_poll"
//! url = "https://.../Report2/acme/pshub/Workers?format=json&Updated_From={cursor}"
//! records = ".Report_Entry"       # where a page holds its records
//! next = ".nextRecordsUrl"        # where a page names the next one (none: one page)
//! cursor = ".Last_Updated"        # a record's modification time
//! overlap_s = 300
//! poll_ms = 60000
//! start = "2026-01-01T00:00:00Z"  # the first window's start
//! token = "${WORKDAY_TOKEN}"      # Authorization: Bearer
//! mapping = ["workday/worker.v1", "workday/worker_terminated.v1"]
//!
//! [sources.legacy_hr]
//! connector = "pg_table"
//! url = "postgres://pshub:${LEGACY_DB_PASSWORD}@db.internal:5432/hr"
//! table = "hr.worker_changes"     # name or schema.name
//! watermark = "changed_at"        # the row's modification time
//! key = "id"                      # unique per row
//! overlap_s = 60
//! poll_ms = 5000
//! batch = 500                     # rows a page (one commit) takes
//! mapping = "..."                 # required: a row is a record of its columns
//!
//! [sources.field_service]
//! connector = "nats"
//! url = "nats://127.0.0.1:4222"
//! subject = "fieldsvc.timesheets.>"   # the subjects its records arrive on
//! stream = "FIELDSVC"             # the JetStream stream holding them (made when missing)
//! consumer = "pshub-field_service"   # the durable consumer the hub processes share
//! batch = 500                     # messages a batch (one commit) takes
//! mapping = "..."                 # none: each message is a canonical event envelope
//!
//! [sources.ledger]
//! connector = "amqp"
//! url = "amqp://pshub:${LEDGER_MQ_PASSWORD}@mq.internal:5672/%2f"
//! queue = "ledger.events"         # declared durable when missing
//! prefetch = 500                  # messages unacknowledged at most: the largest batch
//! mapping = "..."                 # none: each message is a canonical event envelope
//! ```

use crate::config_connectors::OneOrMany;
use pshub_engine::amqp::{AmqpSource, DEFAULT_PREFETCH};
use pshub_engine::csv_drop::{CsvDrop, Ready};
use pshub_engine::hooks::{Inbound, Secret, Signature};
use pshub_engine::nats_source::{NatsSource, is_jetstream_name};
use pshub_engine::pg_table::{PgTable, is_identifier, is_table_name};
use pshub_engine::rest_poll::RestPoll;
use pshub_mapping::Mappings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Names the bus's consumer and relay count their events under (`pshub_connector_events_total`).
const RESERVED: &[&str] = &["bus", "bus_out"];

/// The connector kinds a source may name.
const CONNECTORS: &[&str] = &[
    "webhook",
    "csv_drop",
    "rest_poll",
    "amqp",
    "pg_table",
    "nats",
];

/// Each connector kind's own settings (besides `connector`, `mapping` and `description`).
const SETTINGS: &[(&str, &[&str])] = &[
    (
        "webhook",
        &["signature", "secret", "tolerance_s", "wakes", "wake_on"],
    ),
    (
        "csv_drop",
        &[
            "dir",
            "columns",
            "ready",
            "stable_ms",
            "poll_ms",
            "delimiter",
        ],
    ),
    (
        "rest_poll",
        &[
            "url",
            "records",
            "next",
            "cursor",
            "overlap_s",
            "poll_ms",
            "start",
            "token",
        ],
    ),
    ("amqp", &["url", "queue", "prefetch"]),
    ("nats", &["url", "subject", "stream", "consumer", "batch"]),
    (
        "pg_table",
        &[
            "url",
            "table",
            "watermark",
            "key",
            "overlap_s",
            "poll_ms",
            "batch",
        ],
    ),
];

/// A polling source's defaults: a window a minute, reaching five minutes back.
const DEFAULT_REST_POLL_MS: i64 = 60_000;
const DEFAULT_OVERLAP_S: i64 = 300;

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
    url: Option<String>,
    records: Option<String>,
    next: Option<String>,
    cursor: Option<String>,
    overlap_s: Option<i64>,
    start: Option<String>,
    token: Option<String>,
    queue: Option<String>,
    prefetch: Option<i64>,
    table: Option<String>,
    watermark: Option<String>,
    key: Option<String>,
    batch: Option<i64>,
    subject: Option<String>,
    stream: Option<String>,
    consumer: Option<String>,
    wakes: Option<String>,
    wake_on: Option<Vec<String>>,
}

impl SourceSection {
    /// Whether the source has settings of a connector (else it only names a system).
    fn has_connector_settings(&self) -> bool {
        self.connector.is_some() || !self.settings_given().is_empty() || self.mapping.is_some()
    }

    /// The connector settings this table gives, by name.
    fn settings_given(&self) -> Vec<&'static str> {
        [
            ("signature", self.signature.is_some()),
            ("secret", self.secret.is_some()),
            ("tolerance_s", self.tolerance_s.is_some()),
            ("dir", self.dir.is_some()),
            ("columns", self.columns.is_some()),
            ("ready", self.ready.is_some()),
            ("stable_ms", self.stable_ms.is_some()),
            ("poll_ms", self.poll_ms.is_some()),
            ("delimiter", self.delimiter.is_some()),
            ("url", self.url.is_some()),
            ("records", self.records.is_some()),
            ("next", self.next.is_some()),
            ("cursor", self.cursor.is_some()),
            ("overlap_s", self.overlap_s.is_some()),
            ("start", self.start.is_some()),
            ("token", self.token.is_some()),
            ("queue", self.queue.is_some()),
            ("prefetch", self.prefetch.is_some()),
            ("table", self.table.is_some()),
            ("watermark", self.watermark.is_some()),
            ("key", self.key.is_some()),
            ("batch", self.batch.is_some()),
            ("subject", self.subject.is_some()),
            ("stream", self.stream.is_some()),
            ("consumer", self.consumer.is_some()),
            ("wakes", self.wakes.is_some()),
            ("wake_on", self.wake_on.is_some()),
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
        if RESERVED.contains(&name.as_str()) {
            fail(format!(
                "'{name}' is the name the bus's own connector events are counted under; name the source otherwise"
            ));
        }
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
        // An unknown kind was named above; its settings are checked as a webhook's.
        let own = CONNECTORS
            .iter()
            .copied()
            .find(|kind| section.connector.as_deref() == Some(kind))
            .unwrap_or("webhook");
        let settings = SETTINGS
            .iter()
            .find(|(kind, _)| *kind == own)
            .map_or(&[][..], |(_, settings)| *settings);
        for setting in section.settings_given() {
            if !settings.contains(&setting) {
                fail(format!("{setting} is not a setting of connector {own}"));
            }
        }
        match own {
            "csv_drop" => check_csv_drop(section, folder, &mut fail),
            "rest_poll" => check_rest_poll(section, &mut fail),
            "amqp" => check_amqp(section, &mut fail),
            "pg_table" => check_pg_table(section, &mut fail),
            "nats" => check_nats(name, section, &mut fail),
            _ => check_webhook(section, &mut fail),
        }
        if let Some(poll) = section.wakes.as_deref()
            && sources.get(poll).and_then(|s| s.connector.as_deref()) != Some("rest_poll")
        {
            fail(format!(
                "wakes '{poll}', which is no [sources.{poll}] with connector = \"rest_poll\""
            ));
        }
        if section.wakes.is_some() && section.mapping.is_some() {
            fail(
                "has both wakes and mapping: a change event wakes a poller and is not mapped"
                    .into(),
            );
        }
        if section
            .wake_on
            .iter()
            .flatten()
            .any(|e| e.trim().is_empty())
        {
            fail("wake_on holds an empty entity name".into());
        }
        let named = section
            .mapping
            .is_some()
            .then(|| OneOrMany::values(&section.mapping));
        if own == "csv_drop" && named.is_none() {
            fail("gives no mapping: a CSV row is mapped to a canonical event".into());
        }
        if own == "rest_poll" && named.is_none() {
            fail("gives no mapping: a polled record is mapped to a canonical event".into());
        }
        if own == "pg_table" && named.is_none() {
            fail("gives no mapping: a table's row is mapped to a canonical event".into());
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
    match section.signature.as_deref() {
        None => fail(
            "gives no signature: \"hmac-sha256\" or \"stripe\" (every webhook is signed)".into(),
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

/// An AMQP source's settings: the broker, the queue and how many messages a batch takes.
fn check_amqp(section: &SourceSection, fail: &mut impl FnMut(String)) {
    match section.url.as_deref() {
        None => fail("gives no url: the broker, amqp://user:password@host:5672/vhost".into()),
        Some(url) if !(url.starts_with("amqp://") || url.starts_with("amqps://")) => {
            fail("url is not an amqp:// or amqps:// URL".into())
        }
        Some(_) => {}
    }
    match section.queue.as_deref() {
        None => fail("gives no queue: the queue its messages are consumed from".into()),
        Some(queue) if queue.trim().is_empty() || queue.len() > 255 => {
            fail(format!("queue '{queue}' must be 1 to 255 bytes"))
        }
        Some(_) => {}
    }
    if let Some(prefetch) = section.prefetch
        && !(1..=10_000).contains(&prefetch)
    {
        fail(format!("prefetch {prefetch} is out of bounds: 1 to 10000"));
    }
}

/// A NATS source's settings: the server, the subjects, the stream that holds them.
fn check_nats(name: &str, section: &SourceSection, fail: &mut impl FnMut(String)) {
    match section.url.as_deref() {
        None => fail("gives no url: the NATS server, nats://host:4222".into()),
        Some(url) => {
            if let Err(why) = crate::wiring::check_bus_url(url) {
                fail(format!("url {why}"));
            }
        }
    }
    match section.subject.as_deref() {
        None => fail("gives no subject: the subjects its records arrive on".into()),
        Some(subject) if !is_subject_filter(subject) => fail(format!(
            "subject '{subject}' is not a NATS subject (tokens separated by dots, no spaces; `*` a whole token, `>` the last)"
        )),
        Some(_) => {}
    }
    match section.stream.as_deref() {
        None => fail("gives no stream: the JetStream stream that holds the subjects".into()),
        Some(stream) if !is_jetstream_name(stream) => fail(format!(
            "stream '{stream}' is not a stream name (letters, digits, _ and -)"
        )),
        Some(_) => {}
    }
    let consumer = section
        .consumer
        .clone()
        .unwrap_or_else(|| NatsSource::default_consumer(name));
    if !is_jetstream_name(&consumer) {
        fail(format!(
            "consumer '{consumer}' is not a consumer name (letters, digits, _ and -); name one with consumer = \"...\""
        ));
    }
    if let Some(batch) = section.batch
        && !(1..=10_000).contains(&batch)
    {
        fail(format!("batch {batch} is out of bounds: 1 to 10000"));
    }
}

/// A NATS subject a consumer may filter on: dot-separated tokens, none empty or with a
/// space, `*` only as a whole token, `>` only as the whole last token.
fn is_subject_filter(subject: &str) -> bool {
    let tokens: Vec<&str> = subject.split('.').collect();
    tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty()
            && !t.chars().any(char::is_whitespace)
            && (*t == "*" || !t.contains('*'))
            && (*t == ">" && i == tokens.len() - 1 || !t.contains('>'))
    })
}

/// A poller's pacing: how far back each window reaches and how often one is read.
fn check_pacing(section: &SourceSection, fail: &mut impl FnMut(String)) {
    if let Some(s) = section.overlap_s
        && !(0..=86_400).contains(&s)
    {
        fail(format!("overlap_s {s} is out of bounds: 0 to 86400"));
    }
    if let Some(ms) = section.poll_ms
        && !(50..=86_400_000).contains(&ms)
    {
        fail(format!("poll_ms {ms} is out of bounds: 50 to 86400000"));
    }
}

/// A PostgreSQL table's settings: the database, the table, its watermark and key, pacing.
fn check_pg_table(section: &SourceSection, fail: &mut impl FnMut(String)) {
    match section.url.as_deref() {
        None => fail("gives no url: the database, postgres://user:password@host:5432/db".into()),
        Some(url) if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) => {
            fail("url is not a postgres:// URL".into())
        }
        Some(_) => {}
    }
    match section.table.as_deref() {
        None => fail("gives no table: the table its rows are read from".into()),
        Some(table) if !is_table_name(table) => fail(format!(
            "table '{table}' is not a table name (letters, digits and _, optionally schema.table)"
        )),
        Some(_) => {}
    }
    for (name, column) in [("watermark", &section.watermark), ("key", &section.key)] {
        match column.as_deref() {
            None => fail(format!(
                "gives no {name}: {}",
                if name == "watermark" {
                    "the column of a row's modification time"
                } else {
                    "a column unique per row"
                }
            )),
            Some(column) if !is_identifier(column) => fail(format!(
                "{name} '{column}' is not a column name (letters, digits and _)"
            )),
            Some(_) => {}
        }
    }
    check_pacing(section, fail);
    if let Some(batch) = section.batch
        && !(1..=10_000).contains(&batch)
    {
        fail(format!("batch {batch} is out of bounds: 1 to 10000"));
    }
}

/// A polling source's settings: where it reads, how a page holds its records, and pacing.
fn check_rest_poll(section: &SourceSection, fail: &mut impl FnMut(String)) {
    match section.url.as_deref() {
        None => fail("gives no url: the first page of a window".into()),
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            fail(format!("url '{url}' is not an http:// or https:// URL"))
        }
        Some(_) => {}
    }
    for (name, expr, required) in [
        ("records", &section.records, true),
        ("cursor", &section.cursor, true),
        ("next", &section.next, false),
    ] {
        match expr.as_deref() {
            None if required => fail(format!(
                "gives no {name}: {}",
                if name == "records" {
                    "the jq path of a page's records (\".records\", \".Report_Entry\")"
                } else {
                    "the jq path of a record's modification time (\".SystemModstamp\")"
                }
            )),
            Some(text) => {
                if let Err(why) = pshub_mapping::Expr::compile(text) {
                    fail(format!("{name}: {why}"));
                }
            }
            None => {}
        }
    }
    check_pacing(section, fail);
    if let Some(start) = section.start.as_deref()
        && pshub_mapping::parse_timestamp(start).is_none()
    {
        fail(format!(
            "start '{start}' is not an RFC 3339 timestamp (2026-01-01T00:00:00Z)"
        ));
    }
    if section
        .token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        fail("token is empty".into());
    }
}

/// The polling sources, as the engine takes them (the file was checked).
pub fn rest_polls(sources: &BTreeMap<String, SourceSection>) -> BTreeMap<String, RestPoll> {
    let compile = |text: &str| pshub_mapping::Expr::compile(text).ok().map(Arc::new);
    sources
        .iter()
        .filter(|(_, s)| s.connector.as_deref() == Some("rest_poll"))
        .filter_map(|(name, s)| {
            let ms = u64::try_from(s.poll_ms.unwrap_or(DEFAULT_REST_POLL_MS)).ok()?;
            let overlap = u64::try_from(s.overlap_s.unwrap_or(DEFAULT_OVERLAP_S)).ok()?;
            Some((
                name.clone(),
                RestPoll {
                    url: s.url.clone()?,
                    records: compile(s.records.as_deref()?)?,
                    next: match s.next.as_deref() {
                        Some(next) => Some(compile(next)?),
                        None => None,
                    },
                    cursor: compile(s.cursor.as_deref()?)?,
                    overlap: Duration::from_secs(overlap),
                    poll: Duration::from_millis(ms),
                    start: match s.start.as_deref() {
                        Some(start) => pshub_mapping::parse_timestamp(start)?,
                        None => chrono::DateTime::UNIX_EPOCH,
                    },
                    token: s.token.clone().map(Secret::new),
                    mappings: OneOrMany::values(&s.mapping),
                },
            ))
        })
        .collect()
}

/// A table source's defaults: a window every 5 s, reaching a minute back, 500 rows a page.
const DEFAULT_PG_POLL_MS: i64 = 5_000;
const DEFAULT_PG_OVERLAP_S: i64 = 60;
const DEFAULT_PG_BATCH: i64 = 500;

/// The table sources, as the engine takes them (the file was checked).
pub fn pg_tables(sources: &BTreeMap<String, SourceSection>) -> BTreeMap<String, PgTable> {
    sources
        .iter()
        .filter(|(_, s)| s.connector.as_deref() == Some("pg_table"))
        .filter_map(|(name, s)| {
            let poll = u64::try_from(s.poll_ms.unwrap_or(DEFAULT_PG_POLL_MS)).ok()?;
            let overlap = u64::try_from(s.overlap_s.unwrap_or(DEFAULT_PG_OVERLAP_S)).ok()?;
            Some((
                name.clone(),
                PgTable {
                    url: Secret::new(s.url.clone()?),
                    table: s.table.clone()?,
                    watermark: s.watermark.clone()?,
                    key: s.key.clone()?,
                    overlap: Duration::from_secs(overlap),
                    poll: Duration::from_millis(poll),
                    batch: u32::try_from(s.batch.unwrap_or(DEFAULT_PG_BATCH)).ok()?,
                    mappings: OneOrMany::values(&s.mapping),
                },
            ))
        })
        .collect()
}

/// The NATS sources, as the engine takes them (the file was checked).
pub fn nats_sources(sources: &BTreeMap<String, SourceSection>) -> BTreeMap<String, NatsSource> {
    sources
        .iter()
        .filter(|(_, s)| s.connector.as_deref() == Some("nats"))
        .filter_map(|(name, s)| {
            Some((
                name.clone(),
                NatsSource {
                    url: s.url.clone()?,
                    subject: s.subject.clone()?,
                    stream: s.stream.clone()?,
                    consumer: s
                        .consumer
                        .clone()
                        .unwrap_or_else(|| NatsSource::default_consumer(name)),
                    batch: usize::try_from(s.batch.unwrap_or(DEFAULT_PG_BATCH)).ok()?,
                    mappings: OneOrMany::values(&s.mapping),
                },
            ))
        })
        .collect()
}

/// The AMQP sources, as the engine takes them (the file was checked).
pub fn amqp_sources(sources: &BTreeMap<String, SourceSection>) -> BTreeMap<String, AmqpSource> {
    sources
        .iter()
        .filter(|(_, s)| s.connector.as_deref() == Some("amqp"))
        .filter_map(|(name, s)| {
            Some((
                name.clone(),
                AmqpSource {
                    url: Secret::new(s.url.clone()?),
                    queue: s.queue.clone()?,
                    prefetch: s
                        .prefetch
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or(DEFAULT_PREFETCH),
                    mappings: OneOrMany::values(&s.mapping),
                },
            ))
        })
        .collect()
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
                    wakes: s.wakes.clone(),
                    wake_on: s.wake_on.clone().unwrap_or_default(),
                },
            ))
        })
        .collect()
}

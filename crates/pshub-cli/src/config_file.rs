//! The configuration file (`--config FILE`, or `PSHUB_CONFIG`): one TOML file, every part of
//! which has a default, so that the sandbox needs none. `examples/pshub.toml` writes the
//! defaults out; the README shows a complete file.
//!
//! - `"${VAR}"` inside a double-quoted string is read from the environment; a variable that
//!   is not set stops the start, naming it and its line.
//! - Relative paths resolve against the file's folder.
//! - Every error names its line (`FILE:LINE: what`), and `pshub config check FILE` lists
//!   them all.
//! - Settings that the environment gave before (`PSHUB_SOURCES`, `PSHUB_TAX_CODES`,
//!   `PSHUB_MAX_DAILY_HOURS`) stay as fallbacks for what the file leaves out.

use crate::config_connectors::{self, ConnectorSection, RoleSection, RouteSection};
use crate::config_sources::{self, MappingsSection, SourceSection};
use crate::config_targets;
use anyhow::{Context, Result, bail};
use pshub_engine::Config;
use pshub_engine::config::{LegalEntity, Masking, Overtime, Region};
use pshub_model::records::Classification;
use pshub_model::{Currency, Domain};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A configuration file as read: its settings, where each came from, and its folder.
pub struct ConfigFile {
    pub path: PathBuf,
    text: String,
    file: FileSections,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the text: it holds what the environment substituted, passwords included.
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("file", &self.file)
            .finish()
    }
}

/// A text the file holds (with where), for settings checked after parsing.
type Text = Spanned<String>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSections {
    #[serde(default)]
    sources: Option<SourcesSection>,
    #[serde(default)]
    owners: BTreeMap<Text, Text>,
    #[serde(default)]
    flows: FlowsSection,
    #[serde(default)]
    payroll: PayrollSection,
    #[serde(default)]
    legal_entities: BTreeMap<Text, LegalEntitySection>,
    #[serde(default)]
    regions: BTreeMap<Text, RegionSection>,
    #[serde(default)]
    masking: BTreeMap<Text, MaskingSection>,
    #[serde(default)]
    customers: CustomersSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    erp: RoleSection,
    #[serde(default)]
    psa: RoleSection,
    #[serde(default)]
    connectors: BTreeMap<Text, ConnectorSection>,
    #[serde(default)]
    routes: Vec<RouteSection>,
    #[serde(default)]
    mappings: MappingsSection,
    /// Systems called through their REST API (`[targets.<name>]`).
    #[serde(default)]
    targets: BTreeMap<String, config_targets::TargetSection>,
    /// The NATS JetStream bus of a deployment of several processes (`nats://HOST:PORT`).
    #[serde(default)]
    bus: Option<Text>,
}

/// `[sources] allowed = ["crm", ...]`, or one `[sources.<name>]` table per system (where
/// later settings of a source go).
#[derive(Debug, Default, Deserialize)]
struct SourcesSection {
    #[serde(default)]
    allowed: Option<Spanned<Vec<Text>>>,
    #[serde(flatten)]
    named: BTreeMap<String, SourceSection>,
}

/// A number as TOML writes it (integer, float or a quoted decimal), kept exact.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Integer(i64),
    Float(f64),
    Text(String),
}

impl Number {
    fn exact(&self) -> std::result::Result<Decimal, String> {
        match self {
            Number::Integer(n) => Ok(Decimal::from(*n)),
            // The shortest text that reads back as the same float: what the file wrote.
            Number::Float(f) => pshub_model::decimal::parse_exact(&f.to_string()),
            Number::Text(text) => pshub_model::decimal::parse_exact(text.trim()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowsSection {
    margin_floor_pct: Option<Spanned<Number>>,
    max_daily_hours: Option<Spanned<Number>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayrollSection {
    variance_threshold_pct: Option<Spanned<Number>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegalEntitySection {
    currency: Option<Text>,
    tax_code: Option<Text>,
    #[serde(default)]
    allowed_tax_codes: BTreeMap<Text, Vec<Text>>,
    /// The tax code of lines of work by a classification of worker (`employee`,
    /// `contractor`), in place of `tax_code`.
    #[serde(default)]
    classification_tax_codes: BTreeMap<Text, Text>,
}

/// `[regions.<code>]`: the working week, and `[regions.<code>.overtime]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionSection {
    weekly_hours: Option<Spanned<Number>>,
    working_days: Option<Vec<Text>>,
    overtime: Option<OvertimeSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OvertimeSection {
    weekly_hours: Option<Spanned<Number>>,
    daily_hours: Option<Spanned<Number>>,
    cost_multiplier: Option<Spanned<Number>>,
    bill_multiplier: Option<Spanned<Number>>,
}

const WEEKDAYS: [(&str, chrono::Weekday); 7] = [
    ("mon", chrono::Weekday::Mon),
    ("tue", chrono::Weekday::Tue),
    ("wed", chrono::Weekday::Wed),
    ("thu", chrono::Weekday::Thu),
    ("fri", chrono::Weekday::Fri),
    ("sat", chrono::Weekday::Sat),
    ("sun", chrono::Weekday::Sun),
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskingSection {
    #[serde(default)]
    drop: Vec<Text>,
    #[serde(default)]
    hash: Vec<Text>,
    #[serde(default)]
    mask: Vec<Text>,
    /// Personal fields the target may see in `resource.changed` (name, email).
    #[serde(default)]
    allow: Vec<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomersSection {
    /// Legal forms dropped from the end of names, on top of the built-in list.
    #[serde(default)]
    legal_forms: Vec<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    /// Folder for local files (as `--data-dir`), relative to the file.
    data_dir: Option<String>,
    /// The store's URL (as `--store`).
    url: Option<String>,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Replaces `${VAR}` inside double-quoted strings with the variable's value, escaped for
/// the string; answers the text, or each variable that is not set with its line.
fn substitute(text: &str, var: impl Fn(&str) -> Option<String>) -> (String, Vec<(usize, String)>) {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut in_basic = false;
        let mut in_literal = false;
        let mut chars = line.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' if in_basic => {
                    out.push(c);
                    if let Some((_, next)) = chars.next() {
                        out.push(next);
                    }
                    continue;
                }
                '"' if !in_literal => in_basic = !in_basic,
                '\'' if !in_basic => in_literal = !in_literal,
                '#' if !in_basic && !in_literal => {
                    out.push_str(&line[at..]);
                    break;
                }
                '$' if in_basic && line[at..].starts_with("${") => {
                    if let Some(end) = line[at..].find('}') {
                        let name = &line[at + 2..at + end];
                        let valid = !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if valid {
                            match var(name) {
                                Some(value) => {
                                    out.push_str(&value.replace('\\', "\\\\").replace('"', "\\\""))
                                }
                                None => missing.push((n + 1, name.to_string())),
                            }
                            for _ in 0..end {
                                chars.next();
                            }
                            continue;
                        }
                    }
                }
                _ => {}
            }
            out.push(c);
        }
    }
    (out, missing)
}

impl ConfigFile {
    /// Reads and checks a file: every error, each with its line, or the file.
    pub fn read(path: &Path) -> std::result::Result<Self, Vec<String>> {
        let raw = std::fs::read_to_string(path).map_err(|e| {
            vec![format!(
                "{}: cannot read the configuration file: {e}",
                path.display()
            )]
        })?;
        Self::parse(path, &raw, |var| std::env::var(var).ok())
    }

    /// Reads the text of a file at `path`, with `var` for its `${VAR}`s.
    fn parse(
        path: &Path,
        raw: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, Vec<String>> {
        let name = path.display().to_string();
        let (text, missing) = substitute(raw, var);
        if !missing.is_empty() {
            return Err(missing
                .into_iter()
                .map(|(line, var)| {
                    format!("{name}:{line}: the environment variable {var} is not set")
                })
                .collect());
        }
        let file: FileSections = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(1, |span| line_of(&text, span.start));
            vec![format!("{name}:{line}: {}", e.message())]
        })?;
        let path = path.to_path_buf();
        let read = ConfigFile { path, text, file };
        let errors = read.check();
        if errors.is_empty() {
            Ok(read)
        } else {
            Err(errors)
        }
    }

    fn at(&self, span: Range<usize>) -> String {
        format!(
            "{}:{}",
            self.path.display(),
            line_of(&self.text, span.start)
        )
    }

    /// The folder relative paths in the file resolve against.
    fn folder(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// `[store] data_dir`, resolved against the file's folder.
    pub fn data_dir(&self) -> Option<PathBuf> {
        let dir = PathBuf::from(self.file.store.data_dir.as_ref()?);
        Some(if dir.is_relative() {
            self.folder().join(dir)
        } else {
            dir
        })
    }

    /// `[store] url`.
    pub fn store_url(&self) -> Option<String> {
        self.file.store.url.clone()
    }

    /// The allowed sources, if the file names them.
    fn sources(&self) -> Option<Vec<String>> {
        let section = self.file.sources.as_ref()?;
        let mut names: Vec<String> = section
            .allowed
            .iter()
            .flat_map(|list| list.get_ref().iter().map(|s| s.get_ref().clone()))
            .chain(section.named.keys().cloned())
            .collect();
        let mut seen = BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));
        Some(names)
    }

    /// Every error of the file's settings, each with its line.
    fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let file = &self.file;
        if let Some(section) = &file.sources {
            let none = section
                .allowed
                .as_ref()
                .is_none_or(|l| l.get_ref().is_empty())
                && section.named.is_empty();
            if none {
                let at = match &section.allowed {
                    Some(list) => list.span(),
                    None => {
                        let at = self.text.find("[sources]").unwrap_or(0);
                        at..at
                    }
                };
                errors.push(format!(
                    "{}: [sources] names no system: give allowed = [\"crm\", ...] or [sources.<name>] tables",
                    self.at(at)
                ));
            }
            let listed = section
                .allowed
                .iter()
                .flat_map(|l| l.get_ref().iter())
                .map(|name| (name.get_ref().as_str(), self.at(name.span())));
            let tables = section.named.keys().map(|name| {
                let at = self.text.find(&format!("sources.{name}")).unwrap_or(0);
                (name.as_str(), self.at(at..at))
            });
            for (name, at) in listed.chain(tables) {
                if !is_system_name(name) {
                    errors.push(format!(
                        "{at}: '{name}' is not a system name (lower-case letters, digits, '-' and '_')"
                    ));
                }
            }
        }
        let sources = self.sources();
        for (domain, owner) in &file.owners {
            if Domain::parse(domain.get_ref()).is_none() {
                errors.push(format!(
                    "{}: [owners] '{}' is not a domain; the domains are {}",
                    self.at(domain.span()),
                    domain.get_ref(),
                    Domain::ALL
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(sources) = &sources
                && !sources.contains(owner.get_ref())
            {
                errors.push(format!(
                    "{}: [owners] {} is owned by '{}', which [sources] does not name",
                    self.at(owner.span()),
                    domain.get_ref(),
                    owner.get_ref()
                ));
            }
        }
        let percent = |errors: &mut Vec<String>,
                       what: &str,
                       number: &Option<Spanned<Number>>,
                       max: Decimal| {
            if let Some(number) = number {
                match number.get_ref().exact() {
                    Ok(n) if n >= Decimal::ZERO && n <= max => {}
                    Ok(n) => errors.push(format!(
                        "{}: {what} is {n}; give a number from 0 to {max}",
                        self.at(number.span())
                    )),
                    Err(e) => errors.push(format!("{}: {what}: {e}", self.at(number.span()))),
                }
            }
        };
        percent(
            &mut errors,
            "[flows] margin_floor_pct",
            &file.flows.margin_floor_pct,
            Decimal::from(100),
        );
        percent(
            &mut errors,
            "[payroll] variance_threshold_pct",
            &file.payroll.variance_threshold_pct,
            Decimal::from(10_000),
        );
        if let Some(hours) = &file.flows.max_daily_hours {
            match hours.get_ref().exact() {
                Ok(h) if h > Decimal::ZERO && h <= Decimal::from(24) => {}
                _ => errors.push(format!(
                    "{}: [flows] max_daily_hours must be a number of hours above 0 and at most 24",
                    self.at(hours.span())
                )),
            }
        }
        for (code, entity) in &file.legal_entities {
            if let Some(currency) = &entity.currency
                && let Err(e) = Currency::parse(currency.get_ref())
            {
                errors.push(format!(
                    "{}: [legal_entities.{}] currency: {e}",
                    self.at(currency.span()),
                    code.get_ref()
                ));
            }
            let codes = entity
                .tax_code
                .iter()
                .chain(entity.allowed_tax_codes.values().flatten());
            for tax_code in codes {
                if tax_code.get_ref().trim().is_empty() {
                    errors.push(format!(
                        "{}: [legal_entities.{}] a tax code is empty",
                        self.at(tax_code.span()),
                        code.get_ref()
                    ));
                }
            }
            for country in entity.allowed_tax_codes.keys() {
                let c = country.get_ref();
                if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                    errors.push(format!(
                        "{}: [legal_entities.{}] allowed_tax_codes: '{c}' is not an ISO 3166 country code such as DE",
                        self.at(country.span()),
                        code.get_ref()
                    ));
                }
            }
        }
        for (code, entity) in &file.legal_entities {
            for (class, tax_code) in &entity.classification_tax_codes {
                if Classification::parse(class.get_ref()).is_none() {
                    errors.push(format!(
                        "{}: [legal_entities.{}] classification_tax_codes: '{}' is not a classification (employee, contractor)",
                        self.at(class.span()),
                        code.get_ref(),
                        class.get_ref()
                    ));
                }
                if tax_code.get_ref().trim().is_empty() {
                    errors.push(format!(
                        "{}: [legal_entities.{}] a tax code is empty",
                        self.at(tax_code.span()),
                        code.get_ref()
                    ));
                }
            }
        }
        for (code, region) in &file.regions {
            let name = code.get_ref();
            let mut bounded = |what: &str,
                               number: &Option<Spanned<Number>>,
                               min_excl: Decimal,
                               max: Decimal| {
                if let Some(number) = number {
                    match number.get_ref().exact() {
                        Ok(n) if n > min_excl && n <= max => {}
                        Ok(n) => errors.push(format!(
                            "{}: [regions.{name}] {what} is {n}; give a number above {min_excl}, at most {max}",
                            self.at(number.span())
                        )),
                        Err(e) => errors.push(format!("{}: [regions.{name}] {what}: {e}", self.at(number.span()))),
                    }
                }
            };
            bounded(
                "weekly_hours",
                &region.weekly_hours,
                Decimal::ZERO,
                Decimal::from(168),
            );
            if let Some(overtime) = &region.overtime {
                bounded(
                    "overtime.weekly_hours",
                    &overtime.weekly_hours,
                    Decimal::ZERO,
                    Decimal::from(168),
                );
                bounded(
                    "overtime.daily_hours",
                    &overtime.daily_hours,
                    Decimal::ZERO,
                    Decimal::from(24),
                );
                bounded(
                    "overtime.cost_multiplier",
                    &overtime.cost_multiplier,
                    Decimal::ZERO,
                    Decimal::from(100),
                );
                bounded(
                    "overtime.bill_multiplier",
                    &overtime.bill_multiplier,
                    Decimal::ZERO,
                    Decimal::from(100),
                );
                if overtime.weekly_hours.is_none() && overtime.daily_hours.is_none() {
                    errors.push(format!(
                        "{}: [regions.{name}.overtime] names neither weekly_hours nor daily_hours; give at least one",
                        self.at(code.span())
                    ));
                }
            }
            for day in region.working_days.iter().flatten() {
                if !WEEKDAYS.iter().any(|(d, _)| *d == day.get_ref().as_str()) {
                    errors.push(format!(
                        "{}: [regions.{name}] working_days: '{}' is not a day (mon, tue, wed, thu, fri, sat, sun)",
                        self.at(day.span()),
                        day.get_ref()
                    ));
                }
            }
        }
        for (target, masking) in &file.masking {
            let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
            for (how, fields) in [
                ("drop", &masking.drop),
                ("hash", &masking.hash),
                ("mask", &masking.mask),
            ] {
                for field in fields {
                    if let Some(first) = seen.insert(field.get_ref(), how) {
                        errors.push(format!(
                            "{}: [masking.{}] '{}' is both in {first} and in {how}",
                            self.at(field.span()),
                            target.get_ref(),
                            field.get_ref()
                        ));
                    }
                }
            }
        }
        errors.extend(config_connectors::check(
            &file.erp,
            &file.psa,
            &file.connectors,
            |span| self.at(span),
        ));
        let erp_targets: Vec<String> = config_targets::target_of_role(&file.targets, "erp")
            .into_iter()
            .collect();
        errors.extend(config_connectors::check_routes(
            &file.routes,
            &file.connectors,
            &erp_targets,
            |span| self.at(span),
        ));
        let mappings = match config_sources::mappings(&file.mappings, self.folder()) {
            Ok(mappings) => Some(mappings),
            Err(error) => {
                let at = self.text.find("[mappings]").unwrap_or(0);
                errors.push(format!("{}: {error}", self.at(at..at)));
                None
            }
        };
        if let Some(known) = &mappings {
            errors.extend(config_connectors::check_mappings(
                &file.connectors,
                known,
                |span| self.at(span),
            ));
        }
        if let Some(sources) = &file.sources {
            errors.extend(config_sources::check(
                &sources.named,
                mappings.as_ref(),
                self.folder(),
                |name| {
                    let at = self.text.find(&format!("sources.{name}")).unwrap_or(0);
                    self.at(at..at)
                },
            ));
        }
        errors.extend(config_targets::check(&file.targets, |name| {
            let at = self.text.find(&format!("targets.{name}")).unwrap_or(0);
            self.at(at..at)
        }));
        if let (Some(connector), Some(target)) = (
            &file.erp.connector,
            config_targets::target_of_role(&file.targets, "erp"),
        ) {
            errors.push(format!(
                "{}: [erp] connector '{}' and [targets.{target}] role = \"erp\" both name the default ERP; keep one",
                self.at(connector.span()),
                connector.get_ref()
            ));
        }
        if let Some(bus) = &file.bus
            && let Err(why) = crate::wiring::check_bus_url(bus.get_ref())
        {
            errors.push(format!("{}: bus {why}", self.at(bus.span())));
        }
        for form in &file.customers.legal_forms {
            if form.get_ref().trim().is_empty() {
                errors.push(format!(
                    "{}: [customers] legal_forms holds an empty form",
                    self.at(form.span())
                ));
            }
        }
        errors
    }

    /// Sets on `config` what the file holds (it was checked when read).
    pub fn apply_to(&self, config: &mut Config) {
        let file = &self.file;
        if let Some(sources) = self.sources() {
            config.sources = sources;
        }
        if let Some(sources) = &file.sources {
            config.inbound = config_sources::inbound(&sources.named);
            config.csv_drops = config_sources::csv_drops(&sources.named, self.folder());
            config.rest_polls = config_sources::rest_polls(&sources.named);
            config.amqp_sources = config_sources::amqp_sources(&sources.named);
            config.pg_tables = config_sources::pg_tables(&sources.named);
            config.nats_sources = config_sources::nats_sources(&sources.named);
        }
        if let Some(bus) = &file.bus {
            config.bus = Some(pshub_engine::config::Bus {
                url: bus.get_ref().clone(),
                ack_wait: crate::wiring::DEFAULT_BUS_ACK_WAIT,
                namespace: pshub_engine::config::Bus::DEFAULT_NAMESPACE.to_string(),
            });
        }
        if let Ok(mappings) = config_sources::mappings(&file.mappings, self.folder()) {
            config.mappings = std::sync::Arc::new(mappings);
        }
        for (domain, owner) in &file.owners {
            if let Some(domain) = Domain::parse(domain.get_ref()) {
                config.owners.insert(domain, owner.get_ref().clone());
            }
        }
        let exact = |n: &Option<Spanned<Number>>| n.as_ref().and_then(|n| n.get_ref().exact().ok());
        if let Some(floor) = exact(&file.flows.margin_floor_pct) {
            config.margin_floor_pct = floor;
        }
        if let Some(hours) = exact(&file.flows.max_daily_hours) {
            config.max_daily_hours = Some(hours);
        }
        if let Some(threshold) = exact(&file.payroll.variance_threshold_pct) {
            config.variance_threshold_pct = threshold;
        }
        if !file.legal_entities.is_empty() {
            // Once entities are named, an entity that is not has no tax code.
            config.tax_codes.clear();
            config.default_tax_code = None;
        }
        for (code, section) in &file.legal_entities {
            let entity = LegalEntity {
                currency: section
                    .currency
                    .as_ref()
                    .and_then(|c| Currency::parse(c.get_ref()).ok()),
                tax_code: section.tax_code.as_ref().map(|t| t.get_ref().clone()),
                allowed_tax_codes: section
                    .allowed_tax_codes
                    .iter()
                    .map(|(country, codes)| {
                        (
                            country.get_ref().clone(),
                            codes.iter().map(|c| c.get_ref().clone()).collect(),
                        )
                    })
                    .collect(),
                classification_tax_codes: section
                    .classification_tax_codes
                    .iter()
                    .filter_map(|(class, code)| {
                        Some((
                            Classification::parse(class.get_ref())?,
                            code.get_ref().clone(),
                        ))
                    })
                    .collect(),
            };
            if let Some(tax_code) = &entity.tax_code {
                config
                    .tax_codes
                    .insert(code.get_ref().clone(), tax_code.clone());
            }
            config.legal_entities.insert(code.get_ref().clone(), entity);
        }
        for (code, section) in &file.regions {
            let mut region = Region::default();
            if let Some(hours) = exact(&section.weekly_hours) {
                region.weekly_hours = hours;
            }
            if let Some(days) = &section.working_days {
                region.working_days = WEEKDAYS
                    .iter()
                    .filter(|(name, _)| days.iter().any(|d| d.get_ref() == name))
                    .map(|(_, day)| *day)
                    .collect();
            }
            region.overtime = section.overtime.as_ref().map(|o| Overtime {
                weekly_hours: exact(&o.weekly_hours),
                daily_hours: exact(&o.daily_hours),
                cost_multiplier: exact(&o.cost_multiplier).unwrap_or(Decimal::ONE),
                bill_multiplier: exact(&o.bill_multiplier).unwrap_or(Decimal::ONE),
            });
            config.regions.insert(code.get_ref().clone(), region);
        }
        let names = |list: &[Text]| list.iter().map(|t| t.get_ref().clone()).collect();
        for (target, section) in &file.masking {
            config.masking.insert(
                target.get_ref().clone(),
                Masking {
                    drop: names(&section.drop),
                    hash: names(&section.hash),
                    mask: names(&section.mask),
                    allow: names(&section.allow),
                },
            );
        }
        config.legal_forms = names(&file.customers.legal_forms);
        if let Some(erp) = &file.erp.connector {
            config.erp_system = erp.get_ref().clone();
        }
        if let Some(psa) = &file.psa.connector {
            config.psa_system = config_connectors::psa_system(psa.get_ref());
        }
        if let Some(crm) = config_targets::target_of_role(&file.targets, "crm") {
            config.crm_system = crm;
        }
        config.tax_system = config_targets::target_of_role(&file.targets, "tax");
        config.amqp_targets = config_targets::amqp_targets(&file.targets);
        config.pg_table_targets = config_targets::pg_table_targets(&file.targets);
        if let Some(erp) = config_targets::target_of_role(&file.targets, "erp") {
            config.erp_system = erp;
        }
        config.routes = config_connectors::routes(&file.routes);
    }

    /// The REST targets the file configures, connected, by name.
    pub fn targets(&self) -> std::result::Result<Vec<(String, config_targets::Connected)>, String> {
        config_targets::connect(&self.file.targets)
    }

    /// Every connector the file configures, by name.
    pub fn connectors(&self) -> Vec<(String, config_connectors::Connector)> {
        config_connectors::all(&self.file.connectors)
    }

    /// The connector `[erp] connector` names, when it is Tryton, with its settings.
    pub fn erp_connector(
        &self,
    ) -> Option<(String, pshub_connectors::tryton::config::TrytonConfig)> {
        let name = self.file.erp.connector.as_ref()?.get_ref();
        self.connectors().into_iter().find_map(|(n, c)| match c {
            config_connectors::Connector::Tryton(t) if &n == name => Some((n, *t)),
            _ => None,
        })
    }

    /// Whether the file sets these (so that the environment's fallbacks stay out).
    pub fn sets_sources(&self) -> bool {
        self.file.sources.is_some()
    }

    pub fn sets_legal_entities(&self) -> bool {
        !self.file.legal_entities.is_empty()
    }

    pub fn sets_max_daily_hours(&self) -> bool {
        self.file.flows.max_daily_hours.is_some()
    }
}

fn is_system_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Reads a file for a command: its errors, one per line, stop the start.
pub fn load(path: &Path) -> Result<ConfigFile> {
    ConfigFile::read(path).or_else(|errors| bail!("{}", errors.join("\n")))
}

/// `pshub config check FILE`: prints each error with its line, or that the file is good.
pub fn check_command(path: &Path) -> Result<()> {
    match ConfigFile::read(path) {
        Ok(file) => {
            let mut config = Config::default();
            file.apply_to(&mut config);
            println!(
                "{}: good; sources {}; owners {}",
                path.display(),
                config.sources.join(", "),
                Domain::ALL
                    .iter()
                    .map(|d| format!("{}={}", d.as_str(), config.owner_of(*d)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(())
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            let count = errors.len();
            Err(anyhow::anyhow!(
                "{} has {count} error{}",
                path.display(),
                if count == 1 { "" } else { "s" }
            ))
            .context("the configuration file is not valid")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pshub-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pshub.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn substitutes_variables_in_double_quoted_strings_only() {
        let vars = |name: &str| (name == "HOST").then(|| "db\"1".to_string());
        let (text, missing) = substitute(
            "url = \"postgres://${HOST}/x\" # ${NOPE}\nlit = '${HOST}'\nother = \"${GONE}\"\n",
            vars,
        );
        assert_eq!(
            text,
            "url = \"postgres://db\\\"1/x\" # ${NOPE}\nlit = '${HOST}'\nother = \"\"\n"
        );
        assert_eq!(missing, vec![(3, "GONE".to_string())]);
    }

    #[test]
    fn each_error_names_its_line() {
        let path = write(
            "errors",
            "[sources]\nallowed = [\"crm\", \"psa\"]\n\n[owners]\nworker = \"hris\"\nworkers = \"psa\"\n\n[flows]\nmargin_floor_pct = 120\n\n[legal_entities.DE01]\ncurrency = \"EURO\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        assert!(
            errors.contains(&format!(
                "{name}:5: [owners] worker is owned by 'hris', which [sources] does not name"
            )),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{name}:6: [owners] 'workers' is not a domain"))),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{name}:9: [flows] margin_floor_pct is 120"))),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{name}:12: [legal_entities.DE01] currency"))),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn a_webhook_source_reaches_the_engine_with_its_mapping_from_the_folder() {
        let path = write(
            "webhook",
            "[mappings]\ndir = \"maps\"\n\n[sources.stripe]\nconnector = \"webhook\"\nsignature = \"stripe\"\nsecret = \"whsec_1\"\ntolerance_s = 120\nmapping = \"stripe/invoice.v1\"\n\n[sources.psa]\nconnector = \"webhook\"\nsignature = \"hmac-sha256\"\nsecret = \"s\"\n\n[sources.crm]\n",
        );
        let maps = path.parent().unwrap().join("maps/acme");
        std::fs::create_dir_all(&maps).unwrap();
        let file = ConfigFile::read(&path).unwrap();
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.sources, ["crm", "psa", "stripe"].map(String::from));
        let stripe = &config.inbound["stripe"];
        assert_eq!(stripe.signature, pshub_engine::hooks::Signature::Stripe);
        assert_eq!(stripe.tolerance_s, 120);
        assert_eq!(stripe.mappings, ["stripe/invoice.v1"]);
        assert_eq!(format!("{:?}", stripe.secret), "Secret(***)");
        assert_eq!(config.inbound["psa"].tolerance_s, 300);
        assert!(!config.inbound.contains_key("crm"));
        assert!(config.mappings.get("stripe/invoice.v1").is_some());
    }

    #[test]
    fn webhook_settings_are_checked_with_their_lines() {
        let path = write(
            "webhook-errors",
            "[sources.stripe]\nconnector = \"webhook\"\nsignature = \"md5\"\ntolerance_s = 0\nmapping = \"stripe/nope.v9\"\n\n[sources.psa]\nconnector = \"ftp\"\nsignature = \"stripe\"\nsecret = \"s\"\n\n[mappings]\ndir = \"missing\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            format!("{name}:1: [sources.stripe] signature 'md5' is not a scheme"),
            format!("{name}:1: [sources.stripe] gives no secret"),
            format!("{name}:1: [sources.stripe] tolerance_s 0 is out of bounds"),
            format!("{name}:7: [sources.psa] connector 'ftp' is not a connector kind"),
            format!("{name}:12: [mappings] dir "),
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        // The mapping is checked against the shipped ones when the folder is missing.
        let path = write(
            "webhook-mapping",
            "[sources.stripe]\nconnector = \"webhook\"\nsignature = \"stripe\"\nsecret = \"s\"\nmapping = \"stripe/nope.v9\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .contains("mapping 'stripe/nope.v9' is not a mapping this hub knows; it knows ")
                && errors[0].contains("stripe/invoice.v1"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_csv_drop_reaches_the_engine_with_its_folder_and_its_checks_name_their_lines() {
        let path = write(
            "csv-drop",
            "[sources.bureau]\nconnector = \"csv_drop\"\ndir = \"drop\"\ncolumns = [\"employee_id\", \"total_cost\"]\nready = \"marker\"\npoll_ms = 200\ndelimiter = \";\"\nmapping = \"payroll_bureau/actuals.v1\"\n",
        );
        let folder = path.parent().unwrap();
        std::fs::create_dir_all(folder.join("drop")).unwrap();
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        let drop = &config.csv_drops["bureau"];
        assert_eq!(drop.dir, folder.join("drop"));
        assert_eq!(drop.columns, ["employee_id", "total_cost"]);
        assert_eq!(drop.ready, pshub_engine::csv_drop::Ready::Marker);
        assert_eq!(drop.poll, std::time::Duration::from_millis(200));
        assert_eq!(drop.delimiter, b';');
        assert_eq!(drop.mappings, ["payroll_bureau/actuals.v1"]);
        assert!(config.knows_source("bureau"));
        assert!(!config.inbound.contains_key("bureau"));

        let path = write(
            "csv-drop-errors",
            "[sources.bureau]\nconnector = \"csv_drop\"\ndir = \"nowhere\"\nready = \"soon\"\nstable_ms = 5\npoll_ms = 0\ndelimiter = \"ab\"\nsignature = \"stripe\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            "dir ",
            "ready 'soon' is not a rule",
            "stable_ms 5 is out of bounds",
            "poll_ms 0 is out of bounds",
            "delimiter 'ab' must be one ASCII character",
            "signature is not a setting of connector csv_drop",
            "gives no mapping",
        ] {
            let expected = format!("{name}:1: [sources.bureau] {expected}");
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 7, "{errors:?}");
    }

    #[test]
    fn a_polling_source_reaches_the_engine_and_its_checks_name_their_lines() {
        let path = write(
            "rest-poll",
            "[sources.workday]\nconnector = \"rest_poll\"\nurl = \"https://wd.example/ccx/service/customreport2/acme/ISU/Workers?format=json&Updated_From={cursor}\"\nrecords = \".Report_Entry\"\ncursor = \".Last_Updated\"\noverlap_s = 120\npoll_ms = 5000\nstart = \"2026-01-01T00:00:00Z\"\ntoken = \"t0ken\"\nmapping = [\"workday/worker.v1\", \"workday/worker_terminated.v1\"]\n",
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        let poll = &config.rest_polls["workday"];
        assert!(poll.url.ends_with("Updated_From={cursor}"));
        assert_eq!(poll.records.text, ".Report_Entry");
        assert!(poll.next.is_none());
        assert_eq!(poll.overlap, std::time::Duration::from_secs(120));
        assert_eq!(poll.poll, std::time::Duration::from_millis(5000));
        assert_eq!(poll.start.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(format!("{:?}", poll.token), "Some(Secret(***))");
        assert_eq!(poll.mappings.len(), 2);
        assert!(config.knows_source("workday"));

        let path = write(
            "rest-poll-errors",
            "[sources.sf]\nconnector = \"rest_poll\"\nurl = \"ftp://x\"\nnext = \".a |||\"\noverlap_s = -1\npoll_ms = 1\nstart = \"March\"\ntoken = \" \"\ndir = \"d\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            "url 'ftp://x' is not an http:// or https:// URL",
            "gives no records",
            "gives no cursor",
            "next: `.a |||` does not parse",
            "overlap_s -1 is out of bounds",
            "poll_ms 1 is out of bounds",
            "start 'March' is not an RFC 3339 timestamp",
            "token is empty",
            "dir is not a setting of connector rest_poll",
            "gives no mapping",
        ] {
            let expected = format!("{name}:1: [sources.sf] {expected}");
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 10, "{errors:?}");
    }

    #[test]
    fn an_amqp_source_reaches_the_engine_and_its_checks_name_their_lines() {
        let path = write(
            "amqp",
            "[sources.ledger]\nconnector = \"amqp\"\nurl = \"amqp://pshub:s3cret@mq.internal:5672/%2f\"\nqueue = \"ledger.events\"\nprefetch = 50\n",
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        let amqp = &config.amqp_sources["ledger"];
        assert_eq!(amqp.queue, "ledger.events");
        assert_eq!(amqp.prefetch, 50);
        assert!(amqp.mappings.is_empty());
        assert_eq!(amqp.shown_url(), "amqp://pshub:***@mq.internal:5672/%2f");
        assert!(!format!("{amqp:?}").contains("s3cret"));

        let path = write(
            "amqp-errors",
            "[sources.mq]\nconnector = \"amqp\"\nurl = \"http://guest:s3cret@x\"\nprefetch = 0\nrecords = \".r\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            "url is not an amqp:// or amqps:// URL",
            "gives no queue",
            "prefetch 0 is out of bounds: 1 to 10000",
            "records is not a setting of connector amqp",
        ] {
            let expected = format!("{name}:1: [sources.mq] {expected}");
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(!errors.iter().any(|e| e.contains("s3cret")), "{errors:?}");
    }

    #[test]
    fn a_table_source_reaches_the_engine_and_its_checks_name_their_lines() {
        let path = write(
            "pg-table",
            "[sources.legacy_hr]\nconnector = \"pg_table\"\nurl = \"postgres://pshub:s3cret@db.internal:5432/hr\"\ntable = \"hr.worker_changes\"\nwatermark = \"changed_at\"\nkey = \"id\"\nbatch = 50\nmapping = \"workday/worker.v1\"\n",
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        let table = &config.pg_tables["legacy_hr"];
        assert_eq!(
            (
                table.table.as_str(),
                table.watermark.as_str(),
                table.key.as_str()
            ),
            ("hr.worker_changes", "changed_at", "id")
        );
        assert_eq!(table.batch, 50);
        assert_eq!(table.overlap, std::time::Duration::from_secs(60));
        assert!(!format!("{table:?}").contains("s3cret"));

        let path = write(
            "pg-table-errors",
            "[sources.t]\nconnector = \"pg_table\"\nurl = \"mysql://root:s3cret@x/db\"\ntable = \"workers; drop table x\"\nwatermark = \"1st\"\nbatch = 0\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            "url is not a postgres:// URL",
            "table 'workers; drop table x' is not a table name",
            "watermark '1st' is not a column name",
            "gives no key",
            "batch 0 is out of bounds: 1 to 10000",
            "gives no mapping",
        ] {
            let expected = format!("{name}:1: [sources.t] {expected}");
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(!errors.iter().any(|e| e.contains("s3cret")), "{errors:?}");
    }

    #[test]
    fn netsuite_takes_the_erp_role_and_routes_may_name_it() {
        let target = "[targets.netsuite]\nconnector = \"rest\"\napi = \"netsuite\"\nrole = \"erp\"\nurl = \"https://1234567.suitetalk.api.netsuite.com\"\nauth = \"oauth2\"\ntoken_url = \"https://1234567.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token\"\nclient_id = \"app\"\nclient_secret = \"s\"\n";
        let path = write(
            "netsuite",
            &format!("{target}\n[[routes]]\nlegal_entity = \"US01\"\nerp = \"netsuite\"\n"),
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.erp_system, "netsuite");
        let targets = file.targets().unwrap();
        assert_eq!(targets[0].1.port().kind(), "erp");

        let path = write(
            "netsuite-twice",
            &format!(
                "[erp]\nconnector = \"legacy\"\n\n[connectors.legacy]\nkind = \"legacy_table\"\nurl = \"postgres://root@127.0.0.1/x\"\ntable = \"erp.lines\"\n\n{target}"
            ),
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains(
                "[erp] connector 'legacy' and [targets.netsuite] role = \"erp\" both name the default ERP"
            )),
            "{errors:?}"
        );
    }

    #[test]
    fn a_nats_source_reaches_the_engine_and_its_checks_name_their_lines() {
        let path = write(
            "nats-source",
            "[sources.field]\nconnector = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nsubject = \"fieldsvc.timesheets.>\"\nstream = \"FIELDSVC\"\nbatch = 50\n",
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        let nats = &config.nats_sources["field"];
        assert_eq!(
            (nats.subject.as_str(), nats.stream.as_str(), nats.batch),
            ("fieldsvc.timesheets.>", "FIELDSVC", 50)
        );
        assert_eq!(nats.consumer, "pshub-field");

        let path = write(
            "nats-source-errors",
            "[sources.f]\nconnector = \"nats\"\nurl = \"http://x\"\nsubject = \"a..b\"\nstream = \"A.B\"\nconsumer = \"staging.f\"\nbatch = 0\n\n[sources.bus]\nconnector = \"nats\"\nurl = \"nats://x:4222\"\nsubject = \"a.>.b\"\nstream = \"S\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            "url 'http://x' is not a NATS URL",
            "subject 'a..b' is not a NATS subject",
            "stream 'A.B' is not a stream name",
            "consumer 'staging.f' is not a consumer name",
            "batch 0 is out of bounds: 1 to 10000",
        ] {
            let expected = format!("{name}:1: [sources.f] {expected}");
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        for expected in [
            "'bus' is the name the bus's own connector events are counted under",
            "subject 'a.>.b' is not a NATS subject",
        ] {
            let expected = format!("{name}:9: [sources.bus] {expected}");
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 7, "{errors:?}");
    }

    #[test]
    fn an_amqp_target_takes_the_outbound_stream_and_its_checks_name_their_lines() {
        let path = write(
            "amqp-target",
            "[targets.warehouse]\nconnector = \"amqp\"\nurl = \"amqp://pshub:s3cret@mq:5672/%2f\"\nexchange = \"pshub.out\"\n",
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.amqp_targets["warehouse"].exchange, "pshub.out");
        assert!(file.targets().unwrap().is_empty(), "no port: a stream");

        let path = write(
            "amqp-target-errors",
            "[targets.w]\nconnector = \"amqp\"\nurl = \"http://x\"\nexchange = \"a b\"\nrole = \"crm\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            "url is not an amqp:// or amqps:// URL",
            "exchange 'a b' is not an exchange name",
            "role is not a setting of connector amqp",
        ] {
            let expected = format!("{name}:1: [targets.w] {expected}");
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn a_table_target_takes_the_outbound_stream_and_its_checks_name_their_lines() {
        let path = write(
            "pg-table-target",
            "[targets.landing]\nconnector = \"pg_table\"\nurl = \"postgres://pshub:s3cret@db:5432/w\"\ntable = \"landing.pshub_events\"\n",
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        let landing = &config.pg_table_targets["landing"];
        assert_eq!(landing.table, "landing.pshub_events");
        assert!(!landing.shown_url().contains("s3cret"));
        assert!(file.targets().unwrap().is_empty(), "no port: a stream");

        let path = write(
            "pg-table-target-errors",
            "[targets.l]\nconnector = \"pg_table\"\nurl = \"mysql://x\"\ntable = \"a; DROP TABLE b\"\nexchange = \"x\"\nauth = \"oauth2\"\n\n[targets.m]\nconnector = \"pg_table\"\nurl = \"postgres://x/y\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for (line, expected) in [
            (1, "[targets.l] url is not a postgres:// URL"),
            (1, "[targets.l] table 'a; DROP TABLE b' is not a table name"),
            (1, "[targets.l] exchange is a setting of connector amqp"),
            (1, "[targets.l] auth is not a setting of connector pg_table"),
            (8, "[targets.m] gives no table"),
        ] {
            let expected = format!("{name}:{line}: {expected}");
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 5, "{errors:?}");
    }

    #[test]
    fn avalara_takes_the_tax_role_with_basic_auth() {
        let path = write(
            "avalara",
            "[targets.avalara]\nconnector = \"rest\"\napi = \"avalara\"\nrole = \"tax\"\nurl = \"https://sandbox-rest.avatax.com\"\nauth = \"basic\"\nusername = \"1100012345\"\npassword = \"lic3nse\"\ncompany_code = \"ACME\"\n",
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.tax_system.as_deref(), Some("avalara"));
        let targets = file.targets().unwrap();
        let port = targets[0].1.port();
        assert_eq!(port.kind(), "tax");
        let described = port.describe();
        assert_eq!(described["auth"], "basic");
        assert_eq!(described["company_code"], "ACME");
        assert!(!described.to_string().contains("lic3nse"), "{described}");

        let path = write(
            "avalara-bad",
            "[targets.avalara]\nconnector = \"rest\"\napi = \"avalara\"\nrole = \"crm\"\nurl = \"https://x\"\nauth = \"basic\"\nusername = \"1100012345\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            format!(
                "{name}:1: [targets.avalara] api 'avalara' speaks the tax role's operations, not role 'crm'"
            ),
            format!("{name}:1: [targets.avalara] auth \"basic\" needs password"),
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn the_bus_is_a_nats_url_checked_with_its_line() {
        let path = write(
            "bus",
            "bus = \"nats://10.0.0.5:4222,nats://10.0.0.6:4222\"\n",
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        let bus = config.bus.expect("a bus");
        assert_eq!(bus.url, "nats://10.0.0.5:4222,nats://10.0.0.6:4222");
        assert_eq!(bus.events_subjects(), "pshub.events.>");
        assert_eq!(bus.events_stream(), "PSHUB_EVENTS");
        assert_eq!(bus.consumer(), "pshub-hub");
        let path = write("bus-bad", "\nbus = \"http://10.0.0.5:4222\"\n");
        let errors = ConfigFile::read(&path).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!(
                "{}:2: bus 'http://10.0.0.5:4222' is not a NATS URL",
                path.display()
            )),
            "{errors:?}"
        );
    }

    #[test]
    fn a_rest_target_takes_the_crm_role_and_its_checks_name_their_lines() {
        let path = write(
            "targets",
            "[targets.salesforce]\nconnector = \"rest\"\napi = \"salesforce\"\nrole = \"crm\"\nurl = \"https://acme.my.salesforce.com\"\nauth = \"oauth2\"\ntoken_url = \"https://acme.my.salesforce.com/services/oauth2/token\"\nclient_id = \"app\"\nclient_secret = \"s\"\nrate_per_s = 20\n",
        );
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.crm_system, "salesforce");
        let targets = file.targets().unwrap();
        assert_eq!(targets.len(), 1);
        let described = targets[0].1.port().describe();
        assert_eq!(described["auth"], "oauth2_client_credentials");
        assert_eq!(described["rate_per_s"], 20);
        assert!(
            !described.to_string().contains("\"s\""),
            "no secret shown: {described}"
        );

        let path = write(
            "targets-bad",
            "[targets.sf]\nconnector = \"soap\"\nrole = \"crm\"\nurl = \"ftp://x\"\nauth = \"oauth2\"\nrate_per_s = 0\ntimeout_ms = 5\n\n[targets.other]\nconnector = \"rest\"\napi = \"salesforce\"\nrole = \"crm\"\nurl = \"http://x\"\nauth = \"api_key\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            format!("{name}:9: [targets.other] auth \"api_key\" needs api_key"),
            format!("{name}:1: [targets.sf] connector 'soap' is not known"),
            format!("{name}:1: [targets.sf] gives no api"),
            format!("{name}:1: [targets.sf] url 'ftp://x' is not an http"),
            format!("{name}:1: [targets.sf] auth \"oauth2\" needs token_url"),
            format!("{name}:1: [targets.sf] auth \"oauth2\" needs client_id"),
            format!("{name}:1: [targets.sf] auth \"oauth2\" needs client_secret"),
            format!("{name}:1: [targets.sf] rate_per_s 0 is out of bounds"),
            format!("{name}:1: [targets.sf] timeout_ms 5 is out of bounds"),
            format!("{name}:1: targets other, sf all take the role crm"),
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 10, "{errors:?}");
    }

    #[test]
    fn a_change_event_source_must_wake_a_polling_source() {
        let path = write(
            "wakes",
            "[sources.cdc]\nconnector = \"webhook\"\nsignature = \"hmac-sha256\"\nsecret = \"s\"\nwakes = \"crm\"\nwake_on = [\"\"]\nmapping = \"stripe/invoice.v1\"\n\n[sources.crm]\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        for expected in [
            "wakes 'crm', which is no [sources.crm] with connector = \"rest_poll\"",
            "wake_on holds an empty entity name",
            "has both wakes and mapping",
        ] {
            let expected = format!("{name}:1: [sources.cdc] {expected}");
            assert!(
                errors.iter().any(|e| e.starts_with(&expected)),
                "{expected} in {errors:?}"
            );
        }
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn a_sources_section_that_names_no_system_is_an_error() {
        let path = write(
            "no-sources",
            "# pshub\n\n[sources]\n\n[flows]\nmargin_floor_pct = 20\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&format!("{}:3: [sources] names no system", path.display())),
            "{errors:?}"
        );
    }

    #[test]
    fn a_syntax_error_or_an_unknown_key_names_its_line() {
        let path = write(
            "syntax",
            "[flows]\nmargin_floor_pct = 20\nmax_daily_hour = 24\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(&format!("{}:3: ", path.display())),
            "{errors:?}"
        );
        assert!(errors[0].contains("max_daily_hour"), "{errors:?}");
        let path = write("broken", "[flows\n");
        let errors = ConfigFile::read(&path).unwrap_err();
        assert!(
            errors[0].starts_with(&format!("{}:1: ", path.display())),
            "{errors:?}"
        );
    }

    #[test]
    fn settings_reach_the_engine_and_paths_resolve_against_the_file() {
        let path = write(
            "good",
            "[sources.crm]\n[sources.psa]\n[sources.hris]\n\n[owners]\nrate_card = \"crm\"\n\n[flows]\nmargin_floor_pct = 25.5\nmax_daily_hours = \"12\"\n\n[legal_entities.DE01]\ncurrency = \"EUR\"\ntax_code = \"DE-VAT19\"\nallowed_tax_codes = { DE = [\"DE-VAT19\"] }\n\n[masking.crm]\ndrop = [\"email\"]\nhash = [\"name\"]\n\n[store]\ndata_dir = \"data\"\n",
        );
        let file = ConfigFile::read(&path).unwrap();
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.sources, vec!["crm", "hris", "psa"]);
        assert_eq!(config.owner_of(Domain::RateCard), "crm");
        assert_eq!(config.owner_of(Domain::Worker), "hris");
        assert_eq!(config.margin_floor_pct.to_string(), "25.5");
        assert_eq!(
            config.max_daily_hours.map(|h| h.to_string()),
            Some("12".into())
        );
        assert_eq!(config.tax_code_for("DE01"), Some("DE-VAT19"));
        assert_eq!(config.tax_code_for("US01"), None);
        assert_eq!(config.masking["crm"].hash, vec!["name"]);
        assert_eq!(file.data_dir(), Some(path.parent().unwrap().join("data")));
    }

    #[test]
    fn route_errors_name_their_lines_and_good_routes_reach_the_engine() {
        let path = write(
            "routes-bad",
            "[connectors.legacy]\nkind = \"legacy_table\"\nurl = \"postgres://root@127.0.0.1/x\"\ntable = \"lines; drop\"\n\n[[routes]]\nlegal_entity = \"DE01\"\nerp = \"sap\"\n\n[[routes]]\nname = \"fr\"\nlegal_entity = \"FR01\"\nerp = \"legacy\"\nmode = \"shadow\"\n\n[[routes]]\nname = \"fr\"\nerp = \"legacy\"\nmode = \"copy\"\nshadow = \"legacy\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let has = |text: &str| errors.iter().any(|e| e.contains(text));
        assert!(
            has(":2: [connectors.legacy] table 'lines; drop' is not a table name"),
            "{errors:?}"
        );
        assert!(
            has(":8: [[routes]] route-1: erp 'sap' names no [connectors.sap] table"),
            "{errors:?}"
        );
        assert!(
            has(":13: [[routes]] fr: mode = \"shadow\" needs shadow"),
            "{errors:?}"
        );
        assert!(
            has(":18: [[routes]] name 'fr' is given twice"),
            "{errors:?}"
        );
        assert!(
            has(":19: [[routes]] fr: mode 'copy' is not primary or shadow"),
            "{errors:?}"
        );
        assert!(
            has(":20: [[routes]] fr: shadow is given, but mode is not \"shadow\""),
            "{errors:?}"
        );

        let path = write(
            "routes-good",
            "[erp]\nconnector = \"legacy\"\n\n[connectors.legacy]\nkind = \"legacy_table\"\nurl = \"postgres://root@127.0.0.1/x\"\ntable = \"erp.lines\"\n\n[[routes]]\nname = \"wave-1\"\nlegal_entity = [\"DE01\", \"AT01\"]\nservice_line = \"advisory\"\nerp = \"erp\"\nmode = \"shadow\"\nshadow = \"legacy\"\n",
        );
        let file = ConfigFile::read(&path).unwrap();
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.erp_system, "legacy");
        assert_eq!(config.routes.len(), 1);
        let route = &config.routes[0];
        assert_eq!(route.name, "wave-1");
        assert_eq!(route.legal_entities, ["DE01", "AT01"]);
        assert_eq!(route.service_lines, ["advisory"]);
        assert_eq!(route.shadow.as_deref(), Some("legacy"));
        let key = |entity, line| pshub_engine::config::RouteKey {
            legal_entity: Some(entity),
            region: Some("emea"),
            service_line: Some(line),
        };
        let routed = config.route(&key("AT01", "advisory"));
        assert_eq!(
            (routed.route, routed.erp, routed.shadow),
            (Some("wave-1"), "erp", Some("legacy"))
        );
        let routed = config.route(&key("AT01", "audit"));
        assert_eq!(
            (routed.route, routed.erp),
            (None, "legacy"),
            "no match: the default ERP"
        );
    }

    #[test]
    fn a_tryton_connector_may_be_the_psa_and_a_legacy_table_may_not() {
        let tryton = "[connectors.tryton]\nkind = \"tryton\"\nurl = \"http://127.0.0.1:8000\"\ndatabase = \"t\"\nuser = \"u\"\npassword = \"p\"\n";
        let path = write(
            "psa-good",
            &format!("[psa]\nconnector = \"tryton\"\n\n{tryton}"),
        );
        let file = ConfigFile::read(&path).unwrap();
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.psa_system, "tryton-psa");
        assert_eq!(config.erp_system, "erp", "the ERP stays the sandbox's");
        let path = write(
            "psa-bad",
            "[psa]\nconnector = \"legacy\"\n\n[connectors.legacy]\nkind = \"legacy_table\"\nurl = \"postgres://root@127.0.0.1/x\"\ntable = \"lines\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e
                    .contains(":2: [psa] connector 'legacy' is a legacy_table, which is no PSA")),
            "{errors:?}"
        );
    }

    #[test]
    fn opportunities_need_what_a_tryton_opportunity_does_not_hold() {
        let path = write(
            "opportunities",
            "[connectors.tryton]\nkind = \"tryton\"\nurl = \"http://127.0.0.1:8000\"\ndatabase = \"t\"\nuser = \"u\"\npassword = \"p\"\n\n[connectors.tryton.opportunities]\nregion = \"emea\"\nbilling_model = \"capped_tm\"\ncountry = \"Germany\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let has = |text: &str| errors.iter().any(|e| e.contains(text));
        assert!(
            has(":2: [connectors.tryton] opportunities rate_card_id: is required"),
            "{errors:?}"
        );
        assert!(has("opportunities legal_entity: is required"), "{errors:?}");
        assert!(
            has("opportunities billing_model: 'capped_tm' is not time_and_materials"),
            "{errors:?}"
        );
        assert!(
            has("opportunities country: 'Germany' is not an ISO 3166 country code"),
            "{errors:?}"
        );
        // The mapping it names is one the hub knows, and makes won deals.
        for (mapping, problem) in [
            (
                "tryton/opportunity.v9",
                "mapping 'tryton/opportunity.v9' is not a mapping this hub knows",
            ),
            (
                "kantata/time_entry.v1",
                "mapping 'kantata/time_entry.v1' makes time_entry.approved, not opportunity.closed_won",
            ),
        ] {
            let path = write(
                "opportunities-mapping",
                &format!(
                    "[connectors.tryton]\nkind = \"tryton\"\nurl = \"http://127.0.0.1:8000\"\ndatabase = \"t\"\nuser = \"u\"\npassword = \"p\"\n\n[connectors.tryton.opportunities]\nrate_card_id = \"RC\"\nlegal_entity = \"DE01\"\nregion = \"emea\"\nservice_line = \"advisory\"\ncountry = \"DE\"\nmapping = \"{mapping}\"\n"
                ),
            );
            let errors = ConfigFile::read(&path).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|e| e
                        .contains(&format!(":14: [connectors.tryton.opportunities] {problem}"))),
                "{errors:?}"
            );
        }
    }

    #[test]
    fn connector_errors_name_their_lines() {
        let path = write(
            "connectors",
            "[erp]\nconnector = \"odoo\"\n\n[connectors.tryton]\nkind = \"tryton\"\nurl = \"ftp://x\"\ndatabase = \"t\"\nuser = \"u\"\npassword = \"p\"\nbatch_size = 0\n\n[connectors.tryton.invoicing]\nperiod = \"week\"\n\n[connectors.legacy]\nkind = \"sap\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        let name = path.display().to_string();
        let has = |text: &str| {
            errors
                .iter()
                .any(|e| e.starts_with(&name) && e.contains(text))
        };
        assert!(
            has(":2: [erp] connector 'odoo' names no [connectors.odoo] table"),
            "{errors:?}"
        );
        assert!(
            has(":13: [connectors.tryton] invoicing period 'week' is not month"),
            "{errors:?}"
        );
        assert!(
            has(":16: [connectors.legacy] kind 'sap' is not one of tryton, legacy_table"),
            "{errors:?}"
        );
        let path = write(
            "connectors-values",
            "[connectors.tryton]\nkind = \"tryton\"\nurl = \"ftp://x\"\ndatabase = \"t\"\nuser = \"u\"\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.contains(":2: [connectors.tryton] needs password")),
            "{errors:?}"
        );
        let path = write(
            "connectors-range",
            "[connectors.tryton]\nkind = \"tryton\"\nurl = \"ftp://x\"\ndatabase = \"t\"\nuser = \"u\"\npassword = \"p\"\nbatch_size = 0\n",
        );
        let errors = ConfigFile::read(&path).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("url: 'ftp://x'")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("batch_size: 0")),
            "{errors:?}"
        );
    }
}

#[cfg(test)]
mod example {
    use super::*;

    #[test]
    fn the_example_file_is_valid_and_writes_out_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pshub.toml");
        let file = ConfigFile::read(&path).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        let defaults = Config::default();
        assert_eq!(config.sources, defaults.sources);
        for domain in Domain::ALL {
            assert_eq!(config.owner_of(*domain), defaults.owner_of(*domain));
        }
        assert_eq!(config.margin_floor_pct, defaults.margin_floor_pct);
        assert_eq!(
            config.variance_threshold_pct,
            defaults.variance_threshold_pct
        );
        assert_eq!(config.tax_code_for("DE01"), defaults.tax_code_for("DE01"));
        assert_eq!(config.max_daily_hours, Some(Decimal::from(24)));
    }

    #[test]
    fn the_tryton_example_reads_its_connection_from_the_environment_only() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tryton.toml");
        let raw = std::fs::read_to_string(&path).unwrap();
        let vars = |name: &str| match name {
            "PSHUB_TRYTON_URL" => Some("http://127.0.0.1:8000".to_string()),
            "PSHUB_TRYTON_DATABASE" => Some("tryton".into()),
            "PSHUB_TRYTON_USER" => Some("pshub".into()),
            "PSHUB_TRYTON_PASSWORD" => Some("s3cret-pw".into()),
            _ => None,
        };
        let file = ConfigFile::parse(&path, &raw, vars).unwrap_or_else(|e| panic!("{e:?}"));
        let (name, tryton) = file.erp_connector().unwrap();
        assert_eq!(name, "tryton");
        assert_eq!(tryton.url, "http://127.0.0.1:8000");
        assert_eq!(tryton.password, "s3cret-pw");
        assert_eq!(tryton.product, "Consulting hour");
        assert_eq!(tryton.batch_size, 500);
        assert!(tryton.invoicing.enabled && tryton.invoicing.post);
        assert!(tryton.invoicing.after_idle <= std::time::Duration::from_secs(10));
        assert!(
            !format!("{file:?}").contains("s3cret-pw"),
            "the password never shows"
        );
        // Only the ERP changes.
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.sources, Config::default().sources);
        // Without the environment, each missing variable is named with its line.
        let errors = ConfigFile::parse(&path, &raw, |_| None).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("PSHUB_TRYTON_PASSWORD is not set")),
            "{errors:?}"
        );
    }

    #[test]
    fn the_connectors_example_reads_its_secrets_from_the_environment() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/connectors.toml");
        let raw = std::fs::read_to_string(&path).unwrap();
        let vars = |name: &str| match name {
            "STRIPE_WEBHOOK_SECRET" => Some("whsec_example".to_string()),
            "PSA_WEBHOOK_SECRET" => Some("psa-example".to_string()),
            "SALESFORCE_TOKEN" | "WORKDAY_TOKEN" => Some("token".to_string()),
            "SALESFORCE_CLIENT_ID" | "SALESFORCE_CLIENT_SECRET" => Some("app".to_string()),
            "SALESFORCE_CDC_SECRET" => Some("cdc".to_string()),
            "AVATAX_ACCOUNT_ID" | "AVATAX_LICENSE_KEY" => Some("avatax".to_string()),
            "LEDGER_MQ_PASSWORD" => Some("mq".to_string()),
            "CONCUR_TOKEN" => Some("concur".to_string()),
            _ => None,
        };
        let file = ConfigFile::parse(&path, &raw, vars).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(
            config.inbound.keys().collect::<Vec<_>>(),
            ["psa", "salesforce_cdc", "stripe"]
        );
        assert_eq!(
            config.inbound["salesforce_cdc"].wakes.as_deref(),
            Some("sf_deals")
        );
        assert_eq!(config.csv_drops.keys().collect::<Vec<_>>(), ["bureau"]);
        assert_eq!(
            config.rest_polls.keys().collect::<Vec<_>>(),
            ["concur", "salesforce", "sf_deals", "workday"]
        );
        assert_eq!(config.owner_of(Domain::Expense), "concur");
        assert_eq!(config.inbound["psa"].mappings.len(), 5);
        assert_eq!(config.crm_system, "salesforce");
        assert_eq!(config.tax_system.as_deref(), Some("avalara"));
        assert_eq!(config.amqp_sources["ledger"].queue, "ledger.events");
        assert!(
            config.csv_drops["bureau"]
                .dir
                .ends_with("examples/drop/bureau")
        );
        assert_eq!(
            config.inbound["stripe"].secret,
            pshub_engine::hooks::Secret::new("whsec_example".into())
        );
        assert!(config.knows_source("stripe"));
        assert_eq!(config.owner_of(Domain::InvoiceStatus), "stripe");
        let errors = ConfigFile::parse(&path, &raw, |_| None).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("STRIPE_WEBHOOK_SECRET is not set")),
            "{errors:?}"
        );
    }

    #[test]
    fn the_routing_example_routes_its_waves_and_defaults_to_the_legacy_erp() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/routing.toml");
        let raw = std::fs::read_to_string(&path).unwrap();
        let vars = |name: &str| match name {
            "PSHUB_LEGACY_URL" => Some("postgres://root@127.0.0.1:5432/legacy".to_string()),
            "PSHUB_TRYTON_URL" => Some("http://127.0.0.1:8000".to_string()),
            _ => Some("x".to_string()),
        };
        let file = ConfigFile::parse(&path, &raw, vars).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.erp_system, "legacy");
        let names: Vec<_> = file.connectors().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["legacy", "tryton"]);
        let of = |entity| {
            let routed = config.route(&pshub_engine::config::RouteKey {
                legal_entity: Some(entity),
                region: Some("emea"),
                service_line: Some("advisory"),
            });
            (routed.erp.to_string(), routed.shadow.map(str::to_string))
        };
        assert_eq!(of("DE01"), ("tryton".into(), None));
        assert_eq!(of("FR01"), ("legacy".into(), Some("tryton".into())));
        assert_eq!(of("US01"), ("legacy".into(), None));
    }

    #[test]
    fn the_complete_file_of_the_readme_is_valid() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n").expect("the README shows a file") + 8;
        let text = &readme[start..start + readme[start..].find("```").unwrap()];
        let path = Path::new("/etc/pshub/pshub.toml");
        let vars =
            |v: &str| (v == "PSHUB_DATABASE_URL").then(|| "postgres://root@127.0.0.1/pshub".into());
        let file = ConfigFile::parse(path, text, vars).unwrap_or_else(|e| panic!("{e:?}"));
        let mut config = Config::default();
        file.apply_to(&mut config);
        assert_eq!(config.tax_code_for("US01"), Some("US-EXEMPT"));
        assert_eq!(config.tax_code_for("FR01"), None);
        assert_eq!(
            file.data_dir(),
            Some(PathBuf::from("/etc/pshub/pshub-data"))
        );
        assert_eq!(
            file.store_url().as_deref(),
            Some("postgres://root@127.0.0.1/pshub")
        );
        assert!(ConfigFile::parse(path, text, |_| None).is_err());
    }
}

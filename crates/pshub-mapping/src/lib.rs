//! Declarative, versioned mappings from a source system's records to canonical events.
//!
//! A mapping file (`mappings/<source>/<record>.v<N>.toml`) names its source, record type,
//! version and target event type, and gives a jq expression (run by jaq) for each field of
//! the envelope and of `data`. Money and time stay out of jq: a field declared `decimal` is
//! read from the text of the number or string its expression yields, exactly, and scaled
//! from minor units in Rust; a field declared `timestamp` turns Unix seconds or RFC 3339
//! into the envelope's form in Rust. The output is a canonical envelope, which the engine
//! parses as it parses any event, so a mapping can produce nothing the front door refuses.
//!
//! Invariant: pure. No IO besides reading the folder `Mappings::with_dir` is given.

mod jq;

use jaq_json::Val;
use pshub_model::currency::Currency;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

pub use jq::Expr;

/// The mappings pshub ships, built into the binary: (file name under `mappings/`, text).
const SHIPPED: &[(&str, &str)] = &[
    (
        "stripe/invoice.v1.toml",
        include_str!("../../../mappings/stripe/invoice.v1.toml"),
    ),
    (
        "stripe/invoice.v2.toml",
        include_str!("../../../mappings/stripe/invoice.v2.toml"),
    ),
    (
        "stripe/charge.v1.toml",
        include_str!("../../../mappings/stripe/charge.v1.toml"),
    ),
    (
        "kantata/time_entry.v1.toml",
        include_str!("../../../mappings/kantata/time_entry.v1.toml"),
    ),
    (
        "kantata/time_entry_rejected.v1.toml",
        include_str!("../../../mappings/kantata/time_entry_rejected.v1.toml"),
    ),
    (
        "kantata/expense.v1.toml",
        include_str!("../../../mappings/kantata/expense.v1.toml"),
    ),
    (
        "kantata/expense_rejected.v1.toml",
        include_str!("../../../mappings/kantata/expense_rejected.v1.toml"),
    ),
    (
        "kantata/resource_request.v1.toml",
        include_str!("../../../mappings/kantata/resource_request.v1.toml"),
    ),
    (
        "kantata/allocation.v1.toml",
        include_str!("../../../mappings/kantata/allocation.v1.toml"),
    ),
    (
        "kantata/rate_card.v1.toml",
        include_str!("../../../mappings/kantata/rate_card.v1.toml"),
    ),
    (
        "concur/expense_allocation.v1.toml",
        include_str!("../../../mappings/concur/expense_allocation.v1.toml"),
    ),
    (
        "tryton/opportunity.v1.toml",
        include_str!("../../../mappings/tryton/opportunity.v1.toml"),
    ),
    (
        "payroll_bureau/actuals.v1.toml",
        include_str!("../../../mappings/payroll_bureau/actuals.v1.toml"),
    ),
    (
        "salesforce/account.v1.toml",
        include_str!("../../../mappings/salesforce/account.v1.toml"),
    ),
    (
        "workday/worker.v1.toml",
        include_str!("../../../mappings/workday/worker.v1.toml"),
    ),
    (
        "workday/worker_terminated.v1.toml",
        include_str!("../../../mappings/workday/worker_terminated.v1.toml"),
    ),
    (
        "salesforce/opportunity.v1.toml",
        include_str!("../../../mappings/salesforce/opportunity.v1.toml"),
    ),
];

/// A timestamp as systems write them: RFC 3339 (`2026-03-01T10:00:00Z`,
/// `2026-03-01T10:00:00.000-08:00`), or ISO 8601 with an offset of four digits, as
/// Salesforce writes `SystemModstamp` (`2026-03-01T10:00:00.000+0000`).
pub fn parse_timestamp(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc))
}

/// Why a record did not map: the mapping and version, the field, the jq expression that
/// failed and the value it found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping {mapping} v{version}, {field} (`{path}`): {problem}{}", found_text(.found))]
pub struct MappingError {
    pub mapping: String,
    pub version: u32,
    /// The canonical field: `id`, `occurred_at`, `data.hours`, ...
    pub field: String,
    /// The jq expression of that field.
    pub path: String,
    /// The value the expression yielded, as JSON (cut to 200 characters).
    pub found: Option<String>,
    pub problem: String,
}

impl MappingError {
    /// The error without its field, for where the field is named beside it.
    pub fn problem_of_field(&self) -> String {
        format!(
            "mapping {} v{} (`{}`): {}{}",
            self.mapping,
            self.version,
            self.path,
            self.problem,
            found_text(&self.found)
        )
    }
}

fn found_text(found: &Option<String>) -> String {
    match found {
        Some(value) => format!("; found {value}"),
        None => String::new(),
    }
}

/// A mapping file that cannot be used, with the file named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct FileError {
    pub file: String,
    pub problem: String,
}

/// How a field's value is read.
#[derive(Debug)]
enum Kind {
    /// Whatever JSON the expression yields (a string, a boolean, an object, an integer).
    Json,
    /// A decimal, exact; `minor_units_of` yields the currency whose minor units the source
    /// counts in (Stripe's `amount_paid: 12345` in EUR is 123.45); `divide_by` a unit the
    /// source counts in (minutes, for hours: 60), refused where it does not divide exactly.
    Decimal {
        minor_units_of: Option<Expr>,
        divide_by: Option<u32>,
    },
    /// Unix seconds (an integer) or an RFC 3339 text, written as RFC 3339 in UTC.
    Timestamp,
    /// A timestamp (RFC 3339 text, or whole Unix seconds) as whole Unix seconds: a record's
    /// version from its modification time, for sources that number no versions.
    UnixSeconds,
    /// A list with one object for each value the expression yields, each object made of
    /// these fields read from that value (a rate card's lines, a report's allocations).
    Each(Vec<Field>),
}

#[derive(Debug)]
struct Field {
    /// Where it goes: `id`, `data.hours`, `data.customer.name`.
    name: String,
    expr: Expr,
    kind: Kind,
}

/// One mapping, compiled.
#[derive(Debug)]
pub struct Mapping {
    /// `<source>/<record>.v<version>`, as configurations and events name it.
    pub name: String,
    pub source: String,
    pub record: String,
    pub version: u32,
    /// The canonical event type it produces.
    pub target: String,
    pub description: String,
    /// Which records it takes; the others are not for this mapping (`apply` answers `None`).
    when: Option<Expr>,
    fields: Vec<Field>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    source: String,
    record: String,
    version: u32,
    target: String,
    #[serde(default)]
    description: String,
    when: Option<String>,
    envelope: BTreeMap<String, toml::Value>,
    data: BTreeMap<String, toml::Value>,
}

/// One field as a mapping file declares it.
enum FieldFile {
    Jq(String),
    Decimal {
        decimal: String,
        minor_units_of: Option<String>,
        divide_by: Option<u32>,
    },
    Timestamp(String),
    UnixSeconds(String),
    Each {
        each: String,
        fields: Vec<(String, FieldFile)>,
    },
}

/// The kinds of field a table declares, each with the settings it takes.
const FIELD_KINDS: &[(&str, &[&str])] = &[
    ("decimal", &["decimal", "minor_units_of", "divide_by"]),
    ("timestamp", &["timestamp"]),
    ("unix_seconds", &["unix_seconds"]),
    ("each", &["each", "fields"]),
];

impl FieldFile {
    /// Reads the declaration of the field `name`: a jq expression, or a table of one kind
    /// with only that kind's settings (a mistyped setting is refused, not ignored: a
    /// `minor_unit_of` left unread would read cents as units).
    fn read(name: &str, value: &toml::Value) -> Result<FieldFile, String> {
        let table = match value {
            toml::Value::String(text) => return Ok(FieldFile::Jq(text.clone())),
            toml::Value::Table(table) => table,
            other => {
                return Err(format!(
                    "{name}: give a jq expression or a table, not a {}",
                    other.type_str()
                ));
            }
        };
        let kinds: Vec<&(&str, &[&str])> = FIELD_KINDS
            .iter()
            .filter(|(kind, _)| table.contains_key(*kind))
            .collect();
        let (kind, settings) = match kinds.as_slice() {
            [one] => **one,
            [] => {
                return Err(format!(
                    "{name}: a table names its kind: decimal, timestamp, unix_seconds or each"
                ));
            }
            many => {
                let named: Vec<&str> = many.iter().map(|(kind, _)| *kind).collect();
                return Err(format!("{name}: names {}; give one", named.join(" and ")));
            }
        };
        if let Some(extra) = table.keys().find(|k| !settings.contains(&k.as_str())) {
            return Err(format!(
                "{name}: '{extra}' is not a setting of a {kind} field ({})",
                settings.join(", ")
            ));
        }
        let text = |key: &str| match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(format!(
                "{name}: {key} is a jq expression, given as a string"
            )),
        };
        let required = |key: &str| text(key).map(|t| t.unwrap_or_default());
        Ok(match kind {
            "decimal" => FieldFile::Decimal {
                decimal: required("decimal")?,
                minor_units_of: text("minor_units_of")?,
                divide_by: match table.get("divide_by") {
                    None => None,
                    Some(toml::Value::Integer(n)) if (1..=i64::from(u32::MAX)).contains(n) => {
                        Some(*n as u32)
                    }
                    Some(other) => {
                        return Err(format!(
                            "{name}: divide_by is {other:?}; give a whole number from 1 to {}",
                            u32::MAX
                        ));
                    }
                },
            },
            "timestamp" => FieldFile::Timestamp(required("timestamp")?),
            "unix_seconds" => FieldFile::UnixSeconds(required("unix_seconds")?),
            _ => {
                let Some(toml::Value::Table(fields)) = table.get("fields") else {
                    return Err(format!(
                        "{name}: a list names the fields of each element in a table `fields`"
                    ));
                };
                if fields.is_empty() {
                    return Err(format!("{name}: a list names no fields"));
                }
                FieldFile::Each {
                    each: required("each")?,
                    fields: fields
                        .iter()
                        .map(|(inner, value)| {
                            Ok((
                                inner.clone(),
                                FieldFile::read(&format!("{name}[].{inner}"), value)?,
                            ))
                        })
                        .collect::<Result<_, String>>()?,
                }
            }
        })
    }
}

/// The envelope fields a mapping gives; `source`, `type` and `schema_version` are its own.
const ENVELOPE: &[&str] = &["id", "occurred_at", "correlation_id"];

impl Mapping {
    /// Reads a mapping from its file's text; `file` names it in errors and must be
    /// `<source>/<record>.v<version>.toml` for what the text says.
    pub fn parse(file: &str, text: &str) -> Result<Mapping, FileError> {
        let fail = |problem: String| FileError {
            file: file.to_string(),
            problem,
        };
        let parsed: MappingFile = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
        let name = format!("{}/{}.v{}", parsed.source, parsed.record, parsed.version);
        if file.trim_end_matches(".toml") != name {
            return Err(fail(format!(
                "the file says source {}, record {}, version {}: name it {name}.toml",
                parsed.source, parsed.record, parsed.version
            )));
        }
        if pshub_model::EventType::parse(&parsed.target).is_none() {
            return Err(fail(format!(
                "target '{}' is not a canonical event type",
                parsed.target
            )));
        }
        for required in ["id", "occurred_at"] {
            if !parsed.envelope.contains_key(required) {
                return Err(fail(format!("[envelope] gives no {required}")));
            }
        }
        if let Some(extra) = parsed
            .envelope
            .keys()
            .find(|k| !ENVELOPE.contains(&k.as_str()))
        {
            return Err(fail(format!(
                "[envelope] {extra} is not an envelope field a mapping gives ({})",
                ENVELOPE.join(", ")
            )));
        }
        let named = parsed
            .envelope
            .iter()
            .map(|(k, f)| (k.clone(), f))
            .chain(parsed.data.iter().map(|(k, f)| (format!("data.{k}"), f)));
        let mut files = Vec::new();
        for (name, value) in named {
            let field = FieldFile::read(&name, value).map_err(fail)?;
            if !name.starts_with("data.") {
                let refused = match (name.as_str(), &field) {
                    (_, FieldFile::Each { .. }) => Some("a list"),
                    (_, FieldFile::UnixSeconds(_)) => Some("Unix seconds"),
                    (_, FieldFile::Decimal { .. }) => Some("a decimal"),
                    ("occurred_at", _) => None,
                    (_, FieldFile::Timestamp(_)) => Some("a timestamp"),
                    _ => None,
                };
                if let Some(what) = refused {
                    return Err(fail(format!(
                        "{name}: an envelope field is text (occurred_at may be a timestamp), not {what}"
                    )));
                }
            }
            files.push((name, field));
        }
        // Every expression of the mapping in one program, which carries jaq's standard
        // library once: in the order `compile_field` takes them back.
        let mut texts: Vec<&str> = parsed.when.as_deref().into_iter().collect();
        for (_, field) in &files {
            field.texts(&mut texts);
        }
        let mut exprs = Expr::compile_all(&texts).map_err(fail)?.into_iter();
        let when = parsed.when.as_ref().and_then(|_| exprs.next());
        let fields = files
            .into_iter()
            .map(|(name, field)| compile_field(name, field, &mut exprs))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| fail("an expression was not compiled".into()))?;
        Ok(Mapping {
            name,
            source: parsed.source,
            record: parsed.record,
            version: parsed.version,
            target: parsed.target,
            description: parsed.description,
            when,
            fields,
        })
    }

    /// Maps one record to a canonical envelope, `None` when the mapping does not take it
    /// (its `when` does not hold), or the first field that fails.
    pub fn apply(&self, record: &Value) -> Result<Option<Value>, Box<MappingError>> {
        let input = Val::from(record.clone());
        if let Some(when) = &self.when {
            let taken = when
                .holds(&input)
                .map_err(|problem| self.error("when", &when.text, None, problem))?;
            if !taken {
                return Ok(None);
            }
        }
        let mut envelope = Map::new();
        envelope.insert("source".into(), Value::from(self.source.clone()));
        envelope.insert("type".into(), Value::from(self.target.clone()));
        envelope.insert("schema_version".into(), Value::from(1));
        let mut data = Map::new();
        for field in &self.fields {
            let value = self.value_of(field, &field.name, &input)?;
            if value.is_null() {
                continue;
            }
            match field.name.strip_prefix("data.") {
                Some(path) => put(&mut data, path, value),
                None => {
                    envelope.insert(field.name.clone(), value);
                }
            }
        }
        envelope.insert("data".into(), Value::Object(data));
        Ok(Some(Value::Object(envelope)))
    }

    /// The event id the mapping gives `record`, where it gives a text: what a record that
    /// fails elsewhere is quarantined under.
    pub fn id_of(&self, record: &Value) -> Option<String> {
        let field = self.fields.iter().find(|f| f.name == "id")?;
        match Value::from(field.expr.first(&Val::from(record.clone())).ok()?) {
            Value::String(id) => Some(id),
            _ => None,
        }
    }

    /// The jq expression that gives a canonical field (`data.hours`), for errors found
    /// after mapping, when the canonical record is checked.
    /// A field inside a list (`data.rates[2].rate`) is given by that list's inner field.
    pub fn path_of(&self, field: &str) -> Option<&str> {
        path_in(&self.fields, field)
    }

    /// The value of `field` on `input`, named `name` in errors (`data.rates[2].rate`).
    fn value_of(&self, field: &Field, name: &str, input: &Val) -> Result<Value, Box<MappingError>> {
        let Kind::Each(inner) = &field.kind else {
            let found = field
                .expr
                .first(input)
                .map_err(|problem| self.error(name, &field.expr.text, None, problem))?;
            return self.read(field, name, Value::from(found), input);
        };
        let items = field
            .expr
            .all(input)
            .map_err(|problem| self.error(name, &field.expr.text, None, problem))?;
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mut object = Map::new();
            for part in inner {
                let value = self.value_of(part, &format!("{name}[{i}].{}", part.name), item)?;
                if !value.is_null() {
                    put(&mut object, &part.name, value);
                }
            }
            list.push(Value::Object(object));
        }
        Ok(Value::Array(list))
    }

    fn read(
        &self,
        field: &Field,
        name: &str,
        found: Value,
        input: &Val,
    ) -> Result<Value, Box<MappingError>> {
        let fail = |problem: String| self.error(name, &field.expr.text, Some(&found), problem);
        match &field.kind {
            Kind::Json => match &found {
                Value::Number(n) if !is_integer(n) => Err(fail(
                    "is a number with a fraction: declare the field { decimal = ... } so that it is read exactly".into(),
                )),
                _ => Ok(found.clone()),
            },
            Kind::Decimal {
                minor_units_of,
                divide_by,
            } => {
                let text = match &found {
                    Value::Null => return Ok(Value::Null),
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return Err(fail("is not a number".into())),
                };
                let mut value = pshub_model::decimal::parse_exact(&text).map_err(fail)?;
                if let Some(currency) = minor_units_of {
                    let code = currency
                        .first(input)
                        .map_err(|problem| self.error(name, &currency.text, None, problem))?;
                    let code = Value::from(code);
                    let currency_of =
                        |problem: String| self.error(name, &currency.text, Some(&code), problem);
                    let text = code
                        .as_str()
                        .ok_or_else(|| currency_of("is not a currency code".into()))?;
                    let currency =
                        Currency::parse(&text.to_ascii_uppercase()).map_err(currency_of)?;
                    value = minor_to_major(value, currency.minor_units()).ok_or_else(|| {
                        fail(format!(
                            "cannot be counted in minor units of {}",
                            currency.code()
                        ))
                    })?;
                }
                if let Some(unit) = divide_by {
                    value = exact_quotient(value, *unit)
                        .ok_or_else(|| fail(format!("does not divide exactly by {unit}")))?;
                }
                Ok(Value::String(value.to_string()))
            }
            Kind::Timestamp => match &found {
                Value::Null => Ok(Value::Null),
                Value::Number(n) => {
                    let seconds = n
                        .as_i64()
                        .ok_or_else(|| fail("is not whole Unix seconds".into()))?;
                    let at = chrono::DateTime::from_timestamp(seconds, 0)
                        .ok_or_else(|| fail("is out of the range of dates".into()))?;
                    Ok(Value::String(at.to_rfc3339_opts(
                        chrono::SecondsFormat::AutoSi,
                        true,
                    )))
                }
                Value::String(text) => {
                    let at = parse_timestamp(text)
                        .ok_or_else(|| fail("is not an RFC 3339 timestamp".into()))?;
                    Ok(Value::String(
                        at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                    ))
                }
                _ => Err(fail("is not a timestamp (Unix seconds or RFC 3339)".into())),
            },
            Kind::UnixSeconds => match &found {
                Value::Null => Ok(Value::Null),
                Value::Number(n) if n.as_i64().is_some() => Ok(found.clone()),
                Value::String(text) => parse_timestamp(text)
                    .map(|at| Value::from(at.timestamp()))
                    .ok_or_else(|| fail("is not an RFC 3339 timestamp".into())),
                _ => Err(fail(
                    "is not a timestamp (whole Unix seconds or RFC 3339)".into(),
                )),
            },
            // Read by `value_of`, which makes the list.
            Kind::Each(_) => Err(fail("a list is read by its fields".into())),
        }
    }

    /// `<source>/<record>`, the mapping without its version.
    pub fn record_name(&self) -> String {
        format!("{}/{}", self.source, self.record)
    }

    /// An error of this mapping about `field`.
    pub fn error(
        &self,
        field: &str,
        path: &str,
        found: Option<&Value>,
        problem: String,
    ) -> Box<MappingError> {
        Box::new(MappingError {
            mapping: self.record_name(),
            version: self.version,
            field: field.to_string(),
            path: path.to_string(),
            found: found.map(|v| {
                let text = v.to_string();
                match text.char_indices().nth(200) {
                    Some((at, _)) => format!("{}…", &text[..at]),
                    None => text,
                }
            }),
            problem,
        })
    }
}

impl FieldFile {
    /// The field's expressions (a list's fields after its own), in the order
    /// `compile_field` takes them.
    fn texts<'t>(&'t self, texts: &mut Vec<&'t str>) {
        match self {
            FieldFile::Jq(text) | FieldFile::Timestamp(text) | FieldFile::UnixSeconds(text) => {
                texts.push(text)
            }
            FieldFile::Decimal {
                decimal,
                minor_units_of,
                ..
            } => {
                texts.push(decimal);
                texts.extend(minor_units_of.as_deref());
            }
            FieldFile::Each { each, fields } => {
                texts.push(each);
                for (_, field) in fields {
                    field.texts(texts);
                }
            }
        }
    }
}

/// One field of a mapping file (a list's fields with it), its expressions taken from
/// `exprs`, compiled in the order [`FieldFile::texts`] gave them.
fn compile_field(
    name: String,
    field: FieldFile,
    exprs: &mut impl Iterator<Item = Expr>,
) -> Option<Field> {
    let (expr, kind) = match field {
        FieldFile::Jq(_) => (exprs.next()?, Kind::Json),
        FieldFile::Decimal {
            minor_units_of,
            divide_by,
            ..
        } => {
            let expr = exprs.next()?;
            let minor_units_of = match minor_units_of {
                Some(_) => Some(exprs.next()?),
                None => None,
            };
            (
                expr,
                Kind::Decimal {
                    minor_units_of,
                    divide_by,
                },
            )
        }
        FieldFile::Timestamp(_) => (exprs.next()?, Kind::Timestamp),
        FieldFile::UnixSeconds(_) => (exprs.next()?, Kind::UnixSeconds),
        FieldFile::Each { fields, .. } => {
            let expr = exprs.next()?;
            let inner = fields
                .into_iter()
                .map(|(inner, field)| compile_field(inner, field, exprs))
                .collect::<Option<Vec<_>>>()?;
            (expr, Kind::Each(inner))
        }
    };
    Some(Field { name, expr, kind })
}

/// The expression that gives `field` among `fields`: the field itself, an object it lies
/// in, or, inside a list (`data.rates[2].rate`), the list's field that gives it.
fn path_in<'f>(fields: &'f [Field], field: &str) -> Option<&'f str> {
    fields.iter().find_map(|f| {
        if f.name == field || field.starts_with(&format!("{}.", f.name)) {
            return Some(f.expr.text.as_str());
        }
        let rest = field.strip_prefix(&format!("{}[", f.name))?;
        let Kind::Each(parts) = &f.kind else {
            return None;
        };
        // An element itself (`data.rates[1]`), or a field of one.
        match rest.split_once("].") {
            Some((_, inner)) => path_in(parts, inner).or(Some(f.expr.text.as_str())),
            None => Some(f.expr.text.as_str()),
        }
    })
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.as_i64().is_some() || n.as_u64().is_some()
}

/// `value` minor units in major units (`12345` cents → `123.45`), exactly.
fn minor_to_major(value: Decimal, minor_units: u32) -> Option<Decimal> {
    let scale = value.scale().checked_add(minor_units)?;
    let mut major = value;
    major.set_scale(scale).ok()?;
    Some(major)
}

/// `value / unit` where that is exact (225 minutes are 3.75 hours; 100 are not a decimal).
/// A quotient is a finite decimal when the unit's factors other than 2 and 5 divide the
/// value's digits; checking the product instead would be fooled by rounding at 28 digits.
fn exact_quotient(value: Decimal, unit: u32) -> Option<Decimal> {
    if unit == 0 {
        return None;
    }
    let mut rest = unit;
    while rest.is_multiple_of(2) {
        rest /= 2;
    }
    while rest.is_multiple_of(5) {
        rest /= 5;
    }
    if value.mantissa() % i128::from(rest) != 0 {
        return None;
    }
    let quotient = value.checked_div(Decimal::from(unit))?.normalize();
    (quotient.checked_mul(Decimal::from(unit))? == value).then_some(quotient)
}

/// Puts `value` at the dotted `path` of `object`, making the objects between.
fn put(object: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            object.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let inner = object
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Value::Object(inner) = inner {
                put(inner, rest, value);
            }
        }
    }
}

/// Every mapping a hub knows, by name: those shipped, then those of a folder, which add to
/// them or replace them by name.
///
/// A shipped mapping is compiled when it is first asked for: a hub pays in memory for the
/// mappings its sources use, not for every vendor's. A folder's are compiled when read, so
/// that a file that does not compile is refused then.
#[derive(Debug, Default)]
pub struct Mappings {
    by_name: BTreeMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    /// The shipped file and its text, for one not yet compiled.
    shipped: Option<(&'static str, &'static str)>,
    mapping: std::sync::OnceLock<Option<Mapping>>,
}

impl Entry {
    fn compiled(mapping: Mapping) -> Entry {
        Entry {
            shipped: None,
            mapping: std::sync::OnceLock::from(Some(mapping)),
        }
    }

    fn get(&self) -> Option<&Mapping> {
        self.mapping
            .get_or_init(|| {
                let (file, text) = self.shipped?;
                Mapping::parse(file, text).ok()
            })
            .as_ref()
    }
}

impl Mappings {
    /// The mappings pshub ships.
    pub fn shipped() -> Mappings {
        let mut mappings = Mappings::default();
        for &(file, text) in SHIPPED {
            // The file's name is the mapping's (`Mapping::parse` holds it to that); one that
            // does not compile fails the tests, not a deployment.
            let entry = Entry {
                shipped: Some((file, text)),
                mapping: std::sync::OnceLock::new(),
            };
            mappings
                .by_name
                .insert(file.trim_end_matches(".toml").to_string(), entry);
        }
        mappings
    }

    /// The shipped mappings and those under `dir` (`<source>/<record>.v<N>.toml`).
    pub fn with_dir(dir: &Path) -> Result<Mappings, FileError> {
        let mut mappings = Mappings::shipped();
        let unreadable = |path: &Path, e: std::io::Error| FileError {
            file: path.display().to_string(),
            problem: format!("cannot be read: {e}"),
        };
        let mut files = Vec::new();
        for source in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
            let source = source.map_err(|e| unreadable(dir, e))?.path();
            if !source.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&source).map_err(|e| unreadable(&source, e))? {
                let file = file.map_err(|e| unreadable(&source, e))?.path();
                if file.extension().is_some_and(|e| e == "toml") {
                    files.push(file);
                }
            }
        }
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| unreadable(&file, e))?;
            let name = file
                .strip_prefix(dir)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            let mapping = Mapping::parse(&name, &text).map_err(|mut e| {
                e.file = file.display().to_string();
                e
            })?;
            mappings
                .by_name
                .insert(mapping.name.clone(), Entry::compiled(mapping));
        }
        Ok(mappings)
    }

    /// A mapping by name: `stripe/invoice.v1`.
    pub fn get(&self, name: &str) -> Option<&Mapping> {
        self.by_name.get(name)?.get()
    }

    /// Every mapping, each compiled.
    pub fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.by_name.values().filter_map(Entry::get)
    }

    /// The names, for errors that list what there is.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests;
